"""The inputs document of a sharded round: what every shard needs that the reconcile pass knows.

Why: a shard runs in a pod of its own (an Indexed Job's), with nothing of the pass but its
arguments. The pass writes one document into the store, under the round's folder, named
by its digest (``rounds/<N>/aggregation/inputs-<hex>.json``), and gives the shards its URI
and its digest (``fl-gitops aggregate --inputs URI --inputs-digest sha256:... --shard
auto/N --out URI``). The arguments come through the API server; the store is not trusted
(anyone with write access to the bucket could rewrite the document), so a shard refuses a
document whose bytes do not hash to the digest it was given, naming both.

The document holds the round as the pass decided it: the base model and the prior state
(their URIs and digests: the shard checks the bytes it reads against them), the strategy
and its options, the roster, the bounds, the seed, the grid's chunk, every candidate with
what its cluster reported through the hub (the digest its bytes must hash to, its
examples and metrics: the authority, as ``aggregate_from_store``'s ``reported``) and the
store's metadata as the pass read it, and the updates refused before aggregation with
their reasons. Serialized canonically (sorted keys, no spaces, ASCII), so the same round
gives the same bytes and the same digest in every pass: a killed pass writes the same
document again and finds the same Job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fl_gitops.aggregate._engine import Update, stored_meta
from fl_gitops.aggregate.checks import Limits
from fl_gitops.errors import InputError, StoreError
from fl_gitops.reports import HubReport
from fl_gitops.store import ModelStore
from fl_gitops.tensors import DEFAULT_CHUNK, is_digest

__all__ = [
    "FORMAT",
    "INDEX_ENV",
    "MAX_INPUTS_BYTES",
    "Candidate",
    "InputsError",
    "RoundInputs",
    "collect_inputs",
    "inputs_name",
    "opened_round",
    "parse_inputs",
    "read_inputs",
    "shard_index",
]

FORMAT = "fl-gitops/aggregation-inputs/v1"
#: Set by a Kubernetes Indexed Job in each pod: the pod's completion index (``--shard auto/N``).
INDEX_ENV = "JOB_COMPLETION_INDEX"
#: The largest inputs document read (10,000 candidates with their metadata fit well within).
MAX_INPUTS_BYTES = 64 * 1024 * 1024


class InputsError(InputError):
    """An inputs document that does not hash to its digest, or is not one (exit 2)."""


@dataclass(frozen=True)
class Candidate:
    """One update the shards aggregate: where it is and what its cluster reported."""

    cluster: str
    update: str  # its URI in the store
    meta: Mapping[str, Any]  # the store's metadata, as the pass read it
    digest: str  # reported through the hub: the update's bytes must hash to it
    num_examples: int
    metrics: Mapping[str, float] = field(default_factory=dict)

    def as_update(self) -> Update:
        """The ``Update`` the engine checks: the store's metadata, the hub's report over it."""
        report = HubReport(self.digest, self.num_examples, dict(self.metrics))
        # A file store's update is read as a local file (pread), not through fsspec.
        path = self.update.removeprefix("file://")
        return Update(self.cluster, path, dict(self.meta), report)


@dataclass(frozen=True)
class RoundInputs:
    """A round's aggregation as the reconcile pass decided it (see the module docstring)."""

    store: str
    round: int
    base_model: str
    base_digest: str
    strategy: str
    options: Mapping[str, Any]
    state: str | None
    state_digest: str | None
    roster: tuple[str, ...] | None
    limits: Limits
    seed: int
    chunk: int
    candidates: tuple[Candidate, ...]
    rejected: Mapping[str, str]

    def document(self) -> dict[str, Any]:
        """The JSON document (before canonical serialization)."""
        return {
            "format": FORMAT,
            "store": self.store,
            "round": self.round,
            "base_model": {"uri": self.base_model, "digest": self.base_digest},
            "strategy": {"name": self.strategy, "options": dict(self.options)},
            "state": (
                None if self.state is None else {"uri": self.state, "digest": self.state_digest}
            ),
            "roster": None if self.roster is None else list(self.roster),
            "limits": self.limits.record(),
            "seed": self.seed,
            "chunk": self.chunk,
            "candidates": [
                {
                    "cluster": c.cluster,
                    "update": c.update,
                    "meta": dict(c.meta),
                    "digest": c.digest,
                    "num_examples": c.num_examples,
                    "metrics": dict(c.metrics),
                }
                for c in self.candidates
            ],
            "rejected": dict(sorted(self.rejected.items())),
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON: the same round gives the same bytes, in every pass."""
        text = json.dumps(
            self.document(), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
            allow_nan=False,
        )  # fmt: skip
        return text.encode("ascii")

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of :meth:`to_bytes`."""
        return "sha256:" + hashlib.sha256(self.to_bytes()).hexdigest()


def inputs_name(digest: str) -> str:
    """The document's name in the round's aggregation folder, from its digest."""
    return f"inputs-{digest.removeprefix('sha256:')}.json"


def collect_inputs(
    store: ModelStore,
    round: int,
    base_digest: str,
    *,
    strategy: str,
    options: Mapping[str, Any] | None,
    roster: Collection[str] | None,
    limits: Limits,
    seed: int,
    clusters: Collection[str],
    reported: Mapping[str, HubReport],
    chunk: int = DEFAULT_CHUNK,
) -> RoundInputs:
    """The round's inputs, read from the store as ``aggregate_from_store`` reads them.

    The same refusals before aggregation, with the same reasons (no report through the
    hub, no metadata, unreadable metadata); the update files themselves are the shards'
    to read and check, by range.

    Raises:
        StoreError: the store cannot be read, or the base model is not there.
    """
    if not store.has_model(base_digest):
        raise StoreError(f"{store.model_uri(base_digest)}: not found in the store")
    state = store.get_state(strategy, round - 1) if round > 0 else None
    rejected: dict[str, str] = {}
    candidates = []
    for cluster in sorted(clusters):
        meta, report, reason = stored_meta(store, round, cluster, reported)
        if meta is None or report is None:
            rejected[cluster] = reason
            continue
        candidates.append(
            Candidate(
                cluster=cluster,
                update=store.update_uri(round, cluster),
                meta=meta,
                digest=report.digest,
                num_examples=report.num_examples,
                metrics=dict(report.metrics),
            )
        )
    state_uri = None if state is None else store.state_uri(strategy, round - 1)
    return RoundInputs(
        store=store.uri,
        round=round,
        base_model=store.model_uri(base_digest),
        base_digest=base_digest,
        strategy=strategy,
        options=dict(options or {}),
        state=state_uri,
        state_digest=None if state is None else "sha256:" + hashlib.sha256(state).hexdigest(),
        roster=None if roster is None else tuple(sorted(roster)),
        limits=limits,
        seed=seed,
        chunk=chunk,
        candidates=tuple(candidates),
        rejected=rejected,
    )


def read_inputs(uri: str, digest: str, flag: str = "--inputs") -> RoundInputs:
    """Read the document at ``uri`` (a path or a store URI), refused unless its bytes hash
    to ``digest``, the one the Job's arguments carry.

    Raises:
        InputsError: unreadable, too large, another digest, or not an inputs document.
    """
    if not is_digest(digest):
        raise InputsError(f"--inputs-digest: expected sha256:<64 hex digits>, got {digest!r}")
    try:
        data = _read_bounded(uri)
    except FileNotFoundError:
        raise InputsError(f"{flag} {uri}: not found") from None
    except StoreError as exc:
        raise InputsError(f"{flag} {uri}: {exc}") from None
    except OSError as exc:
        raise InputsError(f"{flag} {uri}: cannot read it ({type(exc).__name__})") from None
    if data is None:
        raise InputsError(f"{flag} {uri}: larger than {MAX_INPUTS_BYTES} bytes; refused")
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise InputsError(
            f"{flag} {uri}: its bytes hash to {actual}, not to --inputs-digest {digest}: "
            "refused (changed in the store since the reconcile pass wrote it)"
        )
    return parse_inputs(data, f"{flag} {uri}")


def _read_bounded(uri: str) -> bytes | None:
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    if "://" not in uri:
        with open(uri, "rb") as f:
            data = f.read(MAX_INPUTS_BYTES + 1)
    else:
        import fsspec

        from fl_gitops.store import storage_options_from_env

        fs, key = fsspec.core.url_to_fs(uri, **storage_options_from_env(os.environ))
        data = bytes(fs.cat_file(key, start=0, end=MAX_INPUTS_BYTES + 1))
    return None if len(data) > MAX_INPUTS_BYTES else data


def _field(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = doc.get(key) if isinstance(doc, Mapping) else None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise InputsError(f"{where}: field {key}: missing or of the wrong type")
    return value


def parse_inputs(data: bytes, where: str) -> RoundInputs:
    """The document's bytes (already checked against their digest) as ``RoundInputs``.

    Raises:
        InputsError: not JSON, another format, or a field missing or of the wrong type
            (named; its value is not repeated).
    """
    try:
        doc = json.loads(data)
    except ValueError:
        raise InputsError(f"{where}: not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputsError(f"{where}: not an inputs document (format {FORMAT} expected)")
    base = _field(doc, "base_model", dict, where)
    strategy = _field(doc, "strategy", dict, where)
    state = doc.get("state")
    if state is not None and not isinstance(state, dict):
        raise InputsError(f"{where}: field state: expected an object or null")
    roster = doc.get("roster")
    if roster is not None and not (
        isinstance(roster, list) and all(isinstance(c, str) for c in roster)
    ):
        raise InputsError(f"{where}: field roster: expected a list of names or null")
    try:
        limits = Limits(**_field(doc, "limits", dict, where))
    except (TypeError, ValueError):
        raise InputsError(f"{where}: field limits: not the bounds a pass writes") from None
    candidates = []
    for k, item in enumerate(_field(doc, "candidates", list, where)):
        at = f"{where}: candidates[{k}]"
        if not isinstance(item, dict):
            raise InputsError(f"{at}: expected an object")
        metrics = _field(item, "metrics", dict, at)
        candidates.append(
            Candidate(
                cluster=_field(item, "cluster", str, at),
                update=_field(item, "update", str, at),
                meta=_field(item, "meta", dict, at),
                digest=_field(item, "digest", str, at),
                num_examples=_field(item, "num_examples", int, at),
                metrics={str(m): float(v) for m, v in metrics.items()},
            )
        )
    rejected = _field(doc, "rejected", dict, where)
    chunk = _field(doc, "chunk", int, where)
    if chunk < 1 or chunk & (chunk - 1):
        raise InputsError(f"{where}: field chunk: expected a power of two")
    return RoundInputs(
        store=_field(doc, "store", str, where),
        round=_field(doc, "round", int, where),
        base_model=_field(base, "uri", str, f"{where}: base_model"),
        base_digest=_field(base, "digest", str, f"{where}: base_model"),
        strategy=_field(strategy, "name", str, f"{where}: strategy"),
        options=_field(strategy, "options", dict, f"{where}: strategy"),
        state=None if state is None else _field(state, "uri", str, f"{where}: state"),
        state_digest=None if state is None else _field(state, "digest", str, f"{where}: state"),
        roster=None if roster is None else tuple(roster),
        limits=limits,
        seed=_field(doc, "seed", int, where),
        chunk=chunk,
        candidates=tuple(candidates),
        rejected={str(c): str(r) for c, r in rejected.items()},
    )


@contextlib.contextmanager
def opened_round(
    inputs: RoundInputs, environ: Mapping[str, str]
) -> Iterator[tuple[str, list[Update], bytes | None]]:
    """The base model as a verified local file, the updates, the verified prior state.

    Yields:
        ``(base path, updates, state bytes or None)`` for ``aggregate_shard``.

    Raises:
        StoreError: the base model or the state is missing, or its bytes do not hash to
            the digest the document names.
    """
    store = ModelStore.from_env(inputs.store, environ)
    state = None
    if inputs.state_digest is not None:
        state = store.get_state(inputs.strategy, inputs.round - 1)
        actual = None if state is None else "sha256:" + hashlib.sha256(state).hexdigest()
        if actual != inputs.state_digest:
            raise StoreError(
                f"{inputs.state}: the prior state's bytes hash to {actual}, not to the "
                f"{inputs.state_digest} the inputs document names"
            )
    with store.model_file(inputs.base_digest) as base:
        yield base, [c.as_update() for c in inputs.candidates], state


def shard_index(text: str, environ: Mapping[str, str], flag: str = "--shard") -> tuple[int, int]:
    """``--shard``'s ``I/N``, where ``auto/N`` takes I from ``JOB_COMPLETION_INDEX`` (which
    a Kubernetes Indexed Job sets in each pod).

    Raises:
        InputError: naming the flag or the variable, and what was expected.
    """
    from fl_gitops.aggregate._shards import parse_shard

    left, sep, right = text.partition("/")
    if left != "auto" or not sep:
        return parse_shard(text, flag)
    _, of = parse_shard(f"0/{right}", flag)
    raw = environ.get(INDEX_ENV)
    if raw is None or raw == "":
        raise InputError(
            f"{flag} {text}: {INDEX_ENV} is not set (an Indexed Job sets it in each pod; "
            "by hand, give I/N)"
        )
    try:
        index = int(raw)
    except ValueError:
        index = -1
    if not 0 <= index < of:
        raise InputError(f"{flag} {text}: {INDEX_ENV} must be an integer 0 to {of - 1}")
    return index, of
