"""The model store: where global models, updates and strategy state live between rounds.

The client on each cluster and the reconcile job on the hub never talk to each other; they
meet here. The store sits behind an fsspec URI (a bare path or ``file://`` by default,
``memory://`` in tests, ``s3://`` with the ``s3`` extra), with the layout of
``docs/contracts.md``:

    models/sha256-<hex>.safetensors          a global model, content-addressed
    rounds/<N>/updates/<cluster>.safetensors  one cluster's trained weights
    rounds/<N>/updates/<cluster>.json         its metadata, written last: "complete"
    rounds/<N>/record.json                    the round record the aggregator wrote
    state/<strategy>/round-<N>.safetensors    server-side strategy state after round N

Every write is atomic: on a local file system a temporary name is renamed into place, on an
object store a single PUT (or a completed multipart upload) is all or nothing. Reads of
content-addressed objects verify their digest. Credentials come from the backend's own
environment variables (``AWS_ACCESS_KEY_ID``...) or from a JSON file of storage options named
by ``FL_STORE_OPTIONS_FILE`` (a mounted Secret), never from a blueprint; error messages name
URIs and digests, never option values.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeGuard

from fl_gitops import __version__
from fl_gitops.errors import StoreError, UpdateRejected
from fl_gitops.tensors import (
    is_digest,
    model_path,
    replaced_atomically,
    sha256_digest,
    sha256_file,
    update_block_list,
    update_block_list_file,
    write_atomic,
)

__all__ = [
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "OPTIONS_FILE_ENV",
    "MalformedMetadata",
    "ModelStore",
    "NotInStore",
    "UnreadableUpdate",
    "block_list_path",
    "check_cluster_name",
    "check_digest",
    "held_path",
    "is_cluster_name",
    "open_regular",
    "parse_metadata",
    "read_regular",
    "storage_options_from_env",
]

OPTIONS_FILE_ENV = "FL_STORE_OPTIONS_FILE"

# An update's JSON metadata is a few hundred bytes; anything past these bounds is refused
# (that cluster's update only) before it can cost the round memory or recursion.
MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_DEPTH = 8

# Cluster names are Kubernetes object names (ManagedCluster): a DNS subdomain. The pattern
# also keeps them safe as one path component: no "/", and no leading "." (so not "..").
_CLUSTER_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_AGGREGATION_NAME_RE = re.compile(r"[a-z0-9][a-z0-9.-]{0,127}")
_STRATEGY_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_UPDATE_EXT = ".safetensors"
_BLOCKS_EXT = ".blocks"


def block_list_path(update_path: str) -> str | None:
    """Where the store keeps the block list of the update at ``update_path`` (a path or a
    URI): beside it, ``<cluster>.blocks``; None for a path that is not an update file's."""
    if not update_path.endswith(_UPDATE_EXT):
        return None
    return update_path[: -len(_UPDATE_EXT)] + _BLOCKS_EXT


class NotInStore(StoreError):
    """The object is not in the store (as opposed to a store that cannot be read)."""


class MalformedMetadata(UpdateRejected):
    """An update's JSON metadata cannot be read or lacks a field (permanent for that cluster)."""


class UnreadableUpdate(UpdateRejected):
    """A cluster's update file or metadata is not a regular file the store can read: a
    symbolic link (never followed), a FIFO, a directory, a device, or unreadable."""


def _depth(value: object) -> int:
    """How deeply a parsed JSON value nests (iteratively: no recursion to exhaust)."""
    deepest = 0
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            todo.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_digest(digest: object, *, what: str = "digest") -> str:
    """Return ``digest`` if it reads ``sha256:<64 lowercase hex>``.

    Raises:
        StoreError: naming ``what`` and the value found.
    """
    if not is_digest(digest):
        raise StoreError(f"{what}: expected 'sha256:<64 lowercase hex digits>', got {digest!r}")
    return digest


def is_cluster_name(value: object) -> TypeGuard[str]:
    """True for a cluster name as the store spells it (a DNS subdomain, one path component):
    the one test, for the store and for anything that reads names back from a file."""
    return isinstance(value, str) and _CLUSTER_RE.fullmatch(value) is not None


def check_cluster_name(cluster: object) -> str:
    """Return ``cluster`` if it is a valid cluster name (a DNS subdomain, one path component).

    Raises:
        StoreError: naming the value found.
    """
    if not is_cluster_name(cluster):
        raise StoreError(
            f"cluster name {cluster!r}: expected lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return cluster


def _check_round(round_: object) -> int:
    if not isinstance(round_, int) or isinstance(round_, bool) or round_ < 0:
        raise StoreError(f"round {round_!r}: expected an integer >= 0")
    return round_


def storage_options_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Read storage options from the JSON file named by ``FL_STORE_OPTIONS_FILE``, if set.

    The file is a JSON object passed to the fsspec backend as keyword arguments (for s3fs:
    ``key``, ``secret``, ``endpoint_url``, ``client_kwargs``...). Mount it from a Secret.

    Raises:
        StoreError: the file cannot be read or is not a JSON object (its contents are
            never shown).
    """
    path = environ.get(OPTIONS_FILE_ENV)
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            options = json.load(f)
    except OSError as exc:
        raise StoreError(f"{OPTIONS_FILE_ENV}={path}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise StoreError(f"{OPTIONS_FILE_ENV}={path}: not valid JSON") from None
    if not isinstance(options, dict):
        raise StoreError(f"{OPTIONS_FILE_ENV}={path}: expected a JSON object of storage options")
    return options


def _redact(uri: str) -> str:
    """Drop any ``user:password@`` from a URI before it goes into a message."""
    return re.sub(r"(^[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1***@", uri)


def _describe(exc: BaseException) -> str:
    # Backend errors can be long (XML bodies); keep the type and a trimmed message.
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _descend(fd: int, parts: Sequence[str]) -> int:
    """The directory ``parts`` below the open directory ``fd``, each step opened without
    following a link; ``fd`` is consumed (closed) and the innermost one returned.

    Raises:
        OSError: a step is missing, a link (ELOOP) or not a directory (ENOTDIR); nothing
            is left open.
    """
    for part in parts:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            inner = os.open(part, flags, dir_fd=fd)
        finally:
            os.close(fd)
        fd = inner
    return fd


def open_regular(directory: str, rel: str, cluster: str) -> int:
    """Open ``directory/rel`` for reading, following no link below ``directory``, without
    blocking, and only if it is a regular file; return the descriptor.

    Raises:
        FileNotFoundError: nothing there.
        UnreadableUpdate: a link (or under one), a FIFO, a directory, a device, or a file
            that cannot be opened: ``cluster``'s update is refused, with the reason.
        OSError: ``directory`` itself cannot be opened.
    """
    parts = rel.split("/")
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = _descend(fd, parts[:-1])
        try:
            out = os.open(
                parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd
            )
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            reason = f"{parts[-1]} is a symbolic link or under one (never followed)"
        else:
            reason = f"{parts[-1]} cannot be opened ({_errno(exc)})"
        raise UnreadableUpdate(cluster, reason) from None
    mode = os.fstat(out).st_mode
    if not stat.S_ISREG(mode):
        os.close(out)
        raise UnreadableUpdate(cluster, f"{parts[-1]} is {_kind(mode)}, not a regular file")
    return out


def read_regular(fd: int, limit: int, name: str, cluster: str) -> bytes | None:
    """At most ``limit`` bytes from an open file, or None when it holds more.

    Raises:
        UnreadableUpdate: the read failed (the errno's name, never the bytes).
    """
    chunks = []
    total = 0
    try:
        while total <= limit:
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise UnreadableUpdate(cluster, f"{name} cannot be read ({_errno(exc)})") from None
    data = b"".join(chunks)
    return None if len(data) > limit else data


def parse_metadata(raw: bytes | None, cluster: str) -> dict[str, Any]:
    """An update's JSON metadata from its bytes (None: over ``MAX_METADATA_BYTES``), checked
    to be a UTF-8 JSON object nested at most ``MAX_METADATA_DEPTH`` deep.

    Raises:
        MalformedMetadata: with the reason (never the bytes).
    """
    if raw is None:
        raise MalformedMetadata(
            cluster, f"metadata is larger than the bound of {MAX_METADATA_BYTES} bytes"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMetadata(cluster, "metadata is not valid UTF-8") from None
    deep = f"metadata nests deeper than the bound of {MAX_METADATA_DEPTH}"
    try:
        meta = json.loads(text)
    except RecursionError:
        raise MalformedMetadata(cluster, deep) from None
    except ValueError:
        raise MalformedMetadata(cluster, "metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise MalformedMetadata(cluster, "metadata is not a JSON object")
    if _depth(meta) > MAX_METADATA_DEPTH:
        raise MalformedMetadata(cluster, deep)
    return meta


def held_path(fd: int, fallback: str) -> str:
    """A path that reads the file open at ``fd`` (``/proc/self/fd/N``), where there is one."""
    held = f"/proc/self/fd/{fd}"
    return held if os.path.exists(held) else fallback


def _errno(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def _is_local(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


class ModelStore:
    """A model store rooted at one fsspec URI. Build it with :meth:`open`."""

    def __init__(self, fs: Any, root: str, uri: str) -> None:
        # ``fs``: an fsspec AbstractFileSystem, typed loosely so that importing the store
        # (as every aggregation does, for its errors) does not import fsspec.
        self.fs = fs
        self.root = root.rstrip("/")
        self.uri = uri
        self._local = _is_local(fs)

    # ---------------------------------------------------------------- construction

    @classmethod
    def open(cls, uri: str, storage_options: Mapping[str, Any] | None = None) -> ModelStore:
        """Open the store at ``uri`` (a bare path means a local directory).

        Args:
            uri: ``/path``, ``file:///path``, ``memory://name``, ``s3://bucket/prefix``...
            storage_options: keyword arguments for the fsspec backend (credentials,
                ``endpoint_url``); see :func:`storage_options_from_env`.

        Raises:
            StoreError: the URI's backend is not installed or does not accept the options.
        """
        if not isinstance(uri, str) or not uri:
            raise StoreError(f"store URI {uri!r}: expected a path or an fsspec URI")
        import fsspec  # 35-50 ms (asyncio with it): only where a store is opened

        try:
            fs, root = fsspec.core.url_to_fs(uri, **dict(storage_options or {}))
        except ImportError as exc:
            scheme = uri.split("://", 1)[0]
            raise StoreError(
                f"store URI {_redact(uri)}: the '{scheme}' backend is not installed "
                f"(for s3: pip install 'fl-gitops[s3]'): {_describe(exc)}"
            ) from None
        except (ValueError, TypeError) as exc:
            raise StoreError(f"store URI {_redact(uri)}: {_describe(exc)}") from None
        if _is_local(fs):
            root = os.path.abspath(root)
            uri = "file://" + root
        return cls(fs, root, uri)

    @classmethod
    def from_env(cls, uri: str, environ: Mapping[str, str]) -> ModelStore:
        """Open ``uri`` with the storage options of :func:`storage_options_from_env`."""
        return cls.open(uri, storage_options_from_env(environ))

    def __repr__(self) -> str:
        return f"ModelStore({_redact(self.uri)!r})"

    # ---------------------------------------------------------------- paths

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def _uri(self, rel: str) -> str:
        return str(self.fs.unstrip_protocol(self._path(rel)))

    @staticmethod
    def _model_rel(digest: str) -> str:
        check_digest(digest, what="model digest")
        return model_path(digest)

    @staticmethod
    def _update_rel(round_: int, cluster: str, ext: str) -> str:
        _check_round(round_)
        check_cluster_name(cluster)
        return f"rounds/{round_}/updates/{cluster}.{ext}"

    @staticmethod
    def _state_rel(strategy: str, round_: int) -> str:
        _check_round(round_)
        if not _STRATEGY_RE.fullmatch(strategy):
            raise StoreError(f"strategy name {strategy!r}: expected lowercase letters, digits, '-'")
        return f"state/{strategy}/round-{round_}.safetensors"

    # ---------------------------------------------------------------- raw I/O

    def _write(self, rel: str, data: bytes | bytearray | memoryview) -> None:
        path = self._path(rel)
        try:
            if self._local:
                write_atomic(path, data)
            else:
                # One PUT: an object store never shows a partial object.
                self.fs.pipe_file(path, bytes(data))
        except Exception as exc:  # OSError, or backend-specific errors (botocore...)
            raise StoreError(f"cannot write {_redact(self._uri(rel))}: {_describe(exc)}") from exc

    def _write_file(self, rel: str, local_path: str) -> None:
        path = self._path(rel)
        try:
            if self._local:
                with replaced_atomically(path) as tmp:
                    self.fs.cp_file(local_path, str(tmp))
            else:
                self.fs.put_file(local_path, path)
        except Exception as exc:
            raise StoreError(f"cannot write {_redact(self._uri(rel))}: {_describe(exc)}") from exc

    def _read(self, rel: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(rel)))
        except FileNotFoundError:
            raise NotInStore(f"{_redact(self._uri(rel))}: not found in the store") from None
        except Exception as exc:
            raise StoreError(f"cannot read {_redact(self._uri(rel))}: {_describe(exc)}") from exc

    def _exists(self, rel: str) -> bool:
        try:
            return bool(self.fs.exists(self._path(rel)))
        except Exception as exc:
            raise StoreError(f"cannot read {_redact(self._uri(rel))}: {_describe(exc)}") from exc

    def _open_local(self, rel: str, cluster: str | None) -> int:
        """Open a file under the root without following any symbolic link below the root,
        without blocking (a FIFO), and only if it is a regular file; return its descriptor.

        Raises:
            NotInStore: there is nothing at ``rel``.
            UnreadableUpdate: a link, a FIFO, a directory, a device, or unreadable
                (``cluster`` is the one whose file it is; without one, a StoreError).
        """
        try:
            return self._open_checked(rel, cluster or "")
        except UnreadableUpdate as exc:
            if cluster is not None:
                raise
            raise StoreError(f"{_redact(self._uri(rel))}: {exc.reason}") from None

    def _open_checked(self, rel: str, cluster: str) -> int:
        try:
            return open_regular(self.root, rel, cluster)
        except FileNotFoundError:
            raise NotInStore(f"{_redact(self._uri(rel))}: not found in the store") from None
        except OSError as exc:
            raise StoreError(f"cannot read {_redact(self.uri)}: {_describe(exc)}") from None

    def _read_bounded(self, rel: str, cluster: str, limit: int) -> bytes | None:
        """At most ``limit`` bytes of a cluster's file, or None when it holds more."""
        if self._local:
            fd = self._open_local(rel, cluster)
            try:
                return read_regular(fd, limit, rel.rsplit("/", 1)[-1], cluster)
            finally:
                os.close(fd)
        else:
            try:
                data = bytes(self.fs.cat_file(self._path(rel), start=0, end=limit + 1))
            except FileNotFoundError:
                raise NotInStore(f"{_redact(self._uri(rel))}: not found in the store") from None
            except Exception as exc:
                raise StoreError(
                    f"cannot read {_redact(self._uri(rel))}: {_describe(exc)}"
                ) from exc
        return None if len(data) > limit else data

    @contextlib.contextmanager
    def _local_copy(self, rel: str) -> Iterator[str]:
        path = self._path(rel)
        if self._local:
            fd = self._open_local(rel, None)
            try:
                held = f"/proc/self/fd/{fd}"
                yield held if os.path.exists(held) else path
            finally:
                os.close(fd)
            return
        fd, tmp = tempfile.mkstemp(prefix="fl-gitops-", suffix=".safetensors")
        os.close(fd)
        try:
            try:
                self.fs.get_file(path, tmp)
            except FileNotFoundError:
                raise StoreError(f"{_redact(self._uri(rel))}: not found in the store") from None
            except Exception as exc:
                raise StoreError(
                    f"cannot read {_redact(self._uri(rel))}: {_describe(exc)}"
                ) from exc
            yield tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # ---------------------------------------------------------------- global models

    def model_uri(self, digest: str) -> str:
        """The full URI of the global model with this digest (it may not exist yet)."""
        return self._uri(self._model_rel(digest))

    def has_model(self, digest: str) -> bool:
        """Whether the store holds the model with this digest."""
        return self._exists(self._model_rel(digest))

    def put_model(self, data: bytes | bytearray | memoryview) -> str:
        """Store a global model under its digest and return ``sha256:<hex>``.

        Idempotent: storing the same bytes again writes nothing.
        """
        digest = sha256_digest(data)
        rel = self._model_rel(digest)
        if not self._exists(rel):
            self._write(rel, data)
        return digest

    def put_model_file(self, path: str | os.PathLike[str]) -> str:
        """Like :meth:`put_model`, from a local file (no copy of it in memory)."""
        digest = sha256_file(path)
        rel = self._model_rel(digest)
        if not self._exists(rel):
            self._write_file(rel, os.fspath(path))
        return digest

    def get_model(self, digest: str) -> bytes:
        """Return the bytes of the global model with this digest, verified.

        Raises:
            StoreError: missing, or its bytes do not hash to ``digest``.
        """
        rel = self._model_rel(digest)
        data = self._read(rel)
        actual = sha256_digest(data)
        if actual != digest:
            raise StoreError(
                f"{_redact(self._uri(rel))}: corrupt: its bytes hash to {actual}, not {digest}"
            )
        return data

    @contextlib.contextmanager
    def model_file(self, digest: str) -> Iterator[str]:
        """Yield a local path to the verified global model (a temp copy for remote stores).

        Raises:
            StoreError: missing, or its bytes do not hash to ``digest``.
        """
        rel = self._model_rel(digest)
        with self._local_copy(rel) as path:
            actual = sha256_file(path)
            if actual != digest:
                raise StoreError(
                    f"{_redact(self._uri(rel))}: corrupt: its bytes hash to {actual}, not {digest}"
                )
            yield path

    # ---------------------------------------------------------------- updates

    def update_uri(self, round_: int, cluster: str) -> str:
        """The URI of a cluster's update tensor file for a round."""
        return self._uri(self._update_rel(round_, cluster, "safetensors"))

    def _update_record(
        self, round_: int, cluster: str, digest: str, meta: Mapping[str, Any]
    ) -> dict[str, Any]:
        record = dict(meta)
        record.update(
            round=_check_round(round_),
            cluster=check_cluster_name(cluster),
            sha256=digest,
            fl_gitops_version=__version__,
        )
        check_digest(record.get("base_model"), what=f"update {cluster} round {round_}: base_model")
        n = record.get("num_examples")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise StoreError(
                f"update {cluster} round {round_}: num_examples: expected an integer >= 0, "
                f"got {n!r}"
            )
        record.setdefault("metrics", {})
        return record

    def _put_update_meta(self, round_: int, cluster: str, record: Mapping[str, Any]) -> None:
        text = json.dumps(record, sort_keys=True, indent=2, allow_nan=False) + "\n"
        self._write(self._update_rel(round_, cluster, "json"), text.encode())

    def put_update(
        self,
        round_: int,
        cluster: str,
        data: bytes | bytearray | memoryview,
        meta: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Store a cluster's update: the tensor file first, then its block list (which a
        shard checks the slice it reads against), then its JSON metadata.

        Args:
            round_: the round the update belongs to.
            cluster: the cluster's name.
            data: the safetensors bytes of the trained weights.
            meta: at least ``base_model`` and ``num_examples``; ``metrics`` defaults to
                ``{}``. ``round``, ``cluster``, ``sha256`` (the update's digest, named by
                its algorithm: ``blake3-blocks:<hex>``) and ``fl_gitops_version`` are filled in
                here.

        Returns:
            The metadata record as written.

        Raises:
            StoreError: a bad name or field, or the write failed.
        """
        digest, blocks = update_block_list(data)
        record = self._update_record(round_, cluster, digest, meta)
        self._write(self._update_rel(round_, cluster, "safetensors"), data)
        self._write(self._update_rel(round_, cluster, "blocks"), blocks)
        self._put_update_meta(round_, cluster, record)
        return record

    def put_update_file(
        self,
        round_: int,
        cluster: str,
        path: str | os.PathLike[str],
        meta: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Like :meth:`put_update`, from a local safetensors file (no copy in memory)."""
        digest, blocks = update_block_list_file(path)
        record = self._update_record(round_, cluster, digest, meta)
        self._write_file(self._update_rel(round_, cluster, "safetensors"), os.fspath(path))
        self._write(self._update_rel(round_, cluster, "blocks"), blocks)
        self._put_update_meta(round_, cluster, record)
        return record

    def list_updates(self, round_: int) -> list[str]:
        """The clusters whose update for ``round_`` is complete (its JSON exists), sorted.

        On a local store the listing never follows a link: a cluster whose JSON is a link
        (or a FIFO...) is listed, and reading it refuses it with the reason.
        """
        bases = self._names_in(f"rounds/{_check_round(round_)}/updates")
        clusters = set()
        for base in bases:
            if base.endswith(".json") and _CLUSTER_RE.fullmatch(base[: -len(".json")]):
                clusters.add(base[: -len(".json")])
        return sorted(clusters)

    def _names_in(self, rel: str) -> list[str]:
        """The names in a directory under the root (none when it is not there); on a local
        store reached without following a link."""
        if self._local:
            return self._list_local(rel)
        try:
            names = self.fs.ls(self._path(rel), detail=False)
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise StoreError(f"cannot list {_redact(self._uri(rel))}: {_describe(exc)}") from exc
        return [str(name).rstrip("/").rsplit("/", 1)[-1] for name in names]

    def _list_local(self, rel: str) -> list[str]:
        """The names in a directory under the root, reached without following a link."""
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list {_redact(self.uri)}: {_describe(exc)}") from None
        try:
            fd = _descend(fd, rel.split("/"))
        except FileNotFoundError:
            return []
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise StoreError(
                    f"{_redact(self._uri(rel))}: a symbolic link or not a directory "
                    "(never followed)"
                ) from None
            raise StoreError(f"cannot list {_redact(self._uri(rel))}: {_describe(exc)}") from None
        try:
            return os.listdir(fd)
        except OSError as exc:
            raise StoreError(f"cannot list {_redact(self._uri(rel))}: {_describe(exc)}") from None
        finally:
            os.close(fd)

    def read_update_meta(self, round_: int, cluster: str) -> dict[str, Any]:
        """Return a cluster's update metadata for a round, as stored (checked by ``checks``).

        Read with bounds (``MAX_METADATA_BYTES``, ``MAX_METADATA_DEPTH``), never through a
        link; nothing of its bytes reaches a reason.

        Raises:
            NotInStore: there is no metadata.
            StoreError: the store cannot be read.
            MalformedMetadata: too large, too deep, not UTF-8, not a JSON object.
            UnreadableUpdate: a link, a FIFO, a directory, a device, or unreadable.
        """
        raw = self._read_bounded(
            self._update_rel(round_, cluster, "json"), cluster, MAX_METADATA_BYTES
        )
        return parse_metadata(raw, cluster)

    @contextlib.contextmanager
    def update_file(self, round_: int, cluster: str, max_bytes: int | None = None) -> Iterator[str]:
        """Yield a local path to a cluster's update tensor file.

        On a local store the file is opened once, never through a link, and only if it is
        a regular file; the path yielded reads that open file (``/proc/self/fd/N`` where
        there is one), so that the file cannot be swapped for a link or another file while
        the round reads it. On a remote store, a temporary copy (refused first when it is
        larger than ``max_bytes``), removed on exit. The digest is not checked here:
        ``checks`` does that and turns a mismatch into a rejection of that cluster.

        Raises:
            NotInStore: there is no update file.
            UnreadableUpdate: a link, a FIFO, a directory, a device, unreadable, or too
                large to copy.
            StoreError: the store cannot be read.
        """
        rel = self._update_rel(round_, cluster, "safetensors")
        if not self._local:
            if max_bytes is not None:
                try:
                    size = int(self.fs.size(self._path(rel)))
                except FileNotFoundError:
                    raise NotInStore(f"{_redact(self._uri(rel))}: not found in the store") from None
                except Exception as exc:
                    raise StoreError(
                        f"cannot read {_redact(self._uri(rel))}: {_describe(exc)}"
                    ) from exc
                if size > max_bytes:
                    raise UnreadableUpdate(
                        cluster,
                        f"update file is {size} bytes, larger than the bound of {max_bytes}",
                    )
            with self._local_copy(rel) as path:
                yield path
            return
        fd = self._open_local(rel, cluster)
        try:
            yield held_path(fd, self._path(rel))
        finally:
            os.close(fd)

    def get_update(self, round_: int, cluster: str) -> bytes:
        """Return a cluster's update bytes (unverified; see :meth:`update_file`)."""
        return self._read(self._update_rel(round_, cluster, "safetensors"))

    # ---------------------------------------------------------------- round records

    def put_round_record(self, round_: int, record: Mapping[str, Any]) -> None:
        """Write ``rounds/<N>/record.json`` (what the aggregator did in round N)."""
        text = json.dumps(dict(record), sort_keys=True, indent=2, allow_nan=False) + "\n"
        self._write(f"rounds/{_check_round(round_)}/record.json", text.encode())

    def get_round_record(self, round_: int) -> dict[str, Any] | None:
        """Return round N's record, or None when it has not been written."""
        rel = f"rounds/{_check_round(round_)}/record.json"
        if not self._exists(rel):
            return None
        try:
            record = json.loads(self._read(rel))
        except ValueError:
            raise StoreError(f"{_redact(self._uri(rel))}: not valid JSON") from None
        if not isinstance(record, dict):
            raise StoreError(f"{_redact(self._uri(rel))}: not a JSON object")
        return record

    # ---------------------------------------------------------------- a round's aggregation

    @staticmethod
    def _aggregation_rel(round_: int, name: str) -> str:
        _check_round(round_)
        if not _AGGREGATION_NAME_RE.fullmatch(name):
            raise StoreError(f"aggregation file name {name!r}: expected [a-z0-9.-] names")
        return f"rounds/{round_}/aggregation/{name}"

    def aggregation_uri(self, round_: int, name: str) -> str:
        """The URI of ``rounds/<N>/aggregation/<name>``: a sharded round's inputs document
        and its shards' directory (``fl_gitops.aggregate._inputs``)."""
        return self._uri(self._aggregation_rel(round_, name))

    def put_aggregation_file(
        self, round_: int, name: str, data: bytes | bytearray | memoryview
    ) -> str:
        """Write ``rounds/<N>/aggregation/<name>`` unless it already holds these bytes
        (idempotent; a file changed in the store since is written again); return its URI."""
        rel = self._aggregation_rel(round_, name)
        if not (self._exists(rel) and self._read(rel) == bytes(data)):
            self._write(rel, data)
        return self._uri(rel)

    def list_aggregation(self, round_: int) -> list[str]:
        """The names in ``rounds/<N>/aggregation/`` (inputs documents, shard directories),
        sorted; none when the folder is not there."""
        names = set(self._names_in(f"rounds/{_check_round(round_)}/aggregation"))
        return sorted(n for n in names if _AGGREGATION_NAME_RE.fullmatch(n))

    def remove_aggregation(self, round_: int, name: str) -> None:
        """Remove ``rounds/<N>/aggregation/<name>`` and what it holds (a merged round's
        shard directory: its slices add up to a whole model); nothing there is no error."""
        rel = self._aggregation_rel(round_, name)
        try:
            if self._exists(rel):
                self.fs.rm(self._path(rel), recursive=True)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise StoreError(f"cannot remove {_redact(self._uri(rel))}: {_describe(exc)}") from exc

    # ---------------------------------------------------------------- strategy state

    def put_state(self, strategy: str, round_: int, data: bytes | bytearray | memoryview) -> None:
        """Store a strategy's server-side state after ``round_`` (safetensors bytes)."""
        self._write(self._state_rel(strategy, round_), data)

    def state_uri(self, strategy: str, round_: int) -> str:
        """The URI of a strategy's state after ``round_`` (it may not exist)."""
        return self._uri(self._state_rel(strategy, round_))

    def get_state(self, strategy: str, round_: int) -> bytes | None:
        """Return a strategy's state after ``round_``, or None when there is none."""
        rel = self._state_rel(strategy, round_)
        if not self._exists(rel):
            return None
        return self._read(rel)
