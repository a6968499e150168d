"""Reading an inventory of ManagedClusters from a file.

Offline rendering takes what ``kubectl get managedclusters -o yaml`` prints (a
``kind: List``); a single ManagedCluster, a multi-document YAML stream or JSON work too.
The file can be large (10,000 clusters, 16 MB), so it is parsed with the json module for
JSON, and YAML with the Rust parser yaml_rs when :mod:`._fastyaml` can tell that it reads
the file as YAML 1.1 does; otherwise (and to locate any syntax error at its line) from
PyYAML's C (libyaml) parser's events. A size bound and a bound on YAML aliases keep a
hostile file from blowing up later processing. Every problem is an
:class:`~fl_gitops.errors.InventoryError` naming the file, the line and column, the
document and item, the field, and what was expected (the fast parsers keep no positions,
so a file with an error is read again with them, by ruamel.yaml, for its message).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from fl_gitops.errors import InventoryError
from fl_gitops.placement._fastyaml import fast_documents
from fl_gitops.placement._quantity import parse_quantity

__all__ = ["MAX_ALIASES", "MAX_BYTES", "inventory_list", "load_inventory"]

MAX_BYTES = 200 * 1024 * 1024
MAX_ALIASES = 100
_LIST_KINDS = ("List", "ManagedClusterList")
_TAINT_EFFECTS = ("NoSelect", "PreferNoSelect", "NoSelectIfNew")


_STR = "tag:yaml.org,2002:str"
_SCALAR_TAGS = (
    _STR,
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
)
_COLLECTION_TAGS = (None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _YamlReader:
    """Build Python values straight from libyaml's parse events.

    PyYAML's own C loader composes a node tree (with two position objects per node)
    before constructing values, which costs about a second per MB; building values
    from the C parser's events is several times faster and lets us count aliases as
    they come. Plain scalars resolve as YAML 1.1 does in PyYAML's safe loader, except
    timestamps, which stay strings (as in JSON and in what Kubernetes stores).
    """

    def __init__(self, path: str, max_aliases: int) -> None:
        self._path = path
        self._max_aliases = max_aliases
        self._resolver = yaml.resolver.Resolver()
        self._constructor = yaml.constructor.SafeConstructor()
        self._plain: dict[str, object] = {}

    def _error(self, event: Any, message: str) -> InventoryError:
        mark = event.start_mark
        return InventoryError(f"{self._path}:{mark.line + 1}:{mark.column + 1}: {message}")

    def _scalar(self, event: Any) -> object:
        tag = event.tag
        if tag is None and event.implicit[0]:
            tag = self._resolver.resolve(yaml.ScalarNode, event.value, (True, False))
            if tag == "tag:yaml.org,2002:merge":
                raise self._error(event, "YAML merge keys (<<) are not supported")
        elif tag is None or tag == "!" or tag == "tag:yaml.org,2002:timestamp":
            return event.value
        if tag == "tag:yaml.org,2002:timestamp":
            tag = _STR
        if tag not in _SCALAR_TAGS:
            raise self._error(event, f"unsupported YAML tag {tag}")
        node = yaml.ScalarNode(tag, event.value)
        try:
            return self._constructor.yaml_constructors[tag](self._constructor, node)
        except (ValueError, yaml.YAMLError) as error:
            raise self._error(event, f"{event.value!r} is not a valid {tag}: {error}") from error

    def documents(self, text: str) -> list[Any]:
        """Parse every document of ``text``."""
        loader = yaml.CSafeLoader(text)
        plain = self._plain
        anchors: dict[str, object] = {}
        aliases = 0
        stack: list[tuple[list[object], str | None, bool, Any]] = []
        current: list[object] = []
        documents = current
        append = current.append
        get_event = loader.get_event
        try:
            while (event := get_event()) is not None:
                kind = event.__class__
                if kind is yaml.ScalarEvent:
                    if event.tag is None and event.implicit[0]:
                        raw = event.value
                        value = (
                            plain[raw]
                            if raw in plain
                            else plain.setdefault(raw, self._scalar(event))
                        )
                    elif event.tag is None:
                        value = event.value
                    else:
                        value = self._scalar(event)
                    if event.anchor is not None:
                        anchors[event.anchor] = value
                    append(value)
                elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                    if event.tag not in _COLLECTION_TAGS:
                        raise self._error(event, f"unsupported YAML tag {event.tag}")
                    stack.append((current, event.anchor, kind is yaml.MappingStartEvent, event))
                    current = []
                    append = current.append
                elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                    items = current
                    current, anchor, is_mapping, start = stack.pop()
                    append = current.append
                    if is_mapping:
                        pairs = iter(items)
                        try:
                            value = dict(zip(pairs, pairs, strict=True))
                        except TypeError as error:
                            raise self._error(start, "a mapping key must be a scalar") from error
                        if 2 * len(value) != len(items):
                            raise self._error(
                                start, "a key appears twice in this mapping; each may appear once"
                            )
                    else:
                        value = items
                    if anchor is not None:
                        anchors[anchor] = value
                    append(value)
                elif kind is yaml.AliasEvent:
                    aliases += 1
                    if aliases > self._max_aliases:
                        raise self._error(
                            event,
                            f"more than {self._max_aliases} YAML aliases; an inventory needs "
                            "none (is this kubectl output?)",
                        )
                    if event.anchor not in anchors:
                        raise self._error(event, f"alias *{event.anchor} has no finished anchor")
                    append(anchors[event.anchor])
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            at = f"{self._path}:{mark.line + 1}:{mark.column + 1}" if mark else self._path
            raise InventoryError(f"{at}: invalid YAML: {error.problem or error}") from error
        except yaml.YAMLError as error:
            raise InventoryError(f"{self._path}: invalid YAML: {error}") from error
        finally:
            loader.dispose()
        return documents


def _where(path: str, document: int, many: bool) -> str:
    return f"{path}: document {document + 1}" if many else path


class _Bad(InventoryError):
    """A ManagedCluster that is not one: where in it (``path``, keys and indexes from the
    item down) and what was expected; ``load_inventory`` adds the file, line and column."""

    def __init__(self, path: tuple[str | int, ...], message: str, named: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.named = named


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _string_map(value: object, path: tuple[str | int, ...]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise _Bad(path, f"expected a mapping of strings, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise _Bad(
                (*path, str(key)),
                f"expected a string, got {type(item).__name__} {item!r} (quote the value)",
            )


def _check_cluster(obj: object) -> dict[str, Any]:
    """``obj`` once it is a ManagedCluster fl-gitops can place.

    Raises:
        _Bad: where in it, and what was expected.
    """
    if not isinstance(obj, dict):
        raise _Bad((), f"expected a ManagedCluster mapping, got {type(obj).__name__}")
    kind = obj.get("kind")
    if kind is not None and kind != "ManagedCluster":
        raise _Bad(("kind",), f"kind is {kind!r}, expected ManagedCluster")
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        raise _Bad(("metadata", "name"), "expected a non-empty string")
    try:
        _check_named(obj, metadata)
    except _Bad as bad:
        bad.named = name
        raise
    return obj


def _check_named(obj: dict[str, Any], metadata: Any) -> None:
    _string_map(metadata.get("labels"), ("metadata", "labels"))
    spec = obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise _Bad(("spec",), "expected a mapping")
    taints = spec.get("taints") or []
    if not isinstance(taints, list):
        raise _Bad(("spec", "taints"), "expected a list")
    for index, taint in enumerate(taints):
        at: tuple[str | int, ...] = ("spec", "taints", index)
        if not isinstance(taint, Mapping) or not isinstance(taint.get("key"), str):
            raise _Bad(at, "expected a mapping with a string key")
        if taint.get("effect") not in _TAINT_EFFECTS:
            raise _Bad(
                (*at, "effect"),
                f"{taint.get('effect')!r} is not one of {', '.join(_TAINT_EFFECTS)}",
            )
        value = taint.get("value")
        if value is not None and not isinstance(value, str):
            raise _Bad((*at, "value"), f"expected a string, got {value!r} (quote the value)")
    status = obj.get("status") or {}
    if not isinstance(status, Mapping):
        raise _Bad(("status",), "expected a mapping")
    claims = status.get("clusterClaims") or []
    if not isinstance(claims, list):
        raise _Bad(("status", "clusterClaims"), "expected a list")
    for index, claim in enumerate(claims):
        if (
            not isinstance(claim, Mapping)
            or not isinstance(claim.get("name"), str)
            or not isinstance(claim.get("value"), str)
        ):
            raise _Bad(
                ("status", "clusterClaims", index), "expected a mapping with string name and value"
            )
    for field in ("allocatable", "capacity"):
        amounts = status.get(field) or {}
        if not isinstance(amounts, Mapping):
            raise _Bad(("status", field), "expected a mapping")
        for resource, amount in amounts.items():
            try:
                parse_quantity(amount)
            except ValueError as error:
                raise _Bad(("status", field, str(resource)), str(error)) from error


def _locate(text: str, document: int, path: Sequence[str | int]) -> tuple[int, int] | None:
    """The 1-based line and column of ``path`` in document ``document`` of ``text``: the
    value there, or the mapping that lacks the key; None when it cannot be told. Parsed
    again with positions (ruamel.yaml, which reads JSON too) only for an error's message:
    the fast parsers keep none."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        docs = list(YAML(typ="rt", pure=True).load_all(text))
        node: Any = docs[document]
    except (YAMLError, IndexError, ValueError):
        return None
    at = (node.lc.line, node.lc.col) if hasattr(node, "lc") else None
    for part in path:
        try:
            lc: Any = getattr(node, "lc", None)
            if isinstance(part, int) and isinstance(node, list):
                at = lc.item(part)
                node = node[part]
            elif isinstance(node, dict) and part in node:
                at = lc.value(part)
                node = node[part]
            else:
                break
        except (AttributeError, IndexError, KeyError, TypeError):
            break
    return None if at is None else (at[0] + 1, at[1] + 1)


def _documents(text: str, path: str, max_aliases: int) -> list[Any]:
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as error:
            if stripped[:1] == "[" or "\n---" in text:
                raise InventoryError(
                    f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}"
                ) from error
            # a flow-style YAML mapping is not JSON; let YAML read it
    fast = fast_documents(text)
    if fast is not None:
        return fast
    return _YamlReader(path, max_aliases).documents(text)


def load_inventory(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_BYTES,
    max_aliases: int = MAX_ALIASES,
) -> list[dict[str, Any]]:
    """Read ManagedClusters from a YAML or JSON file.

    Args:
        path: a ``kind: List`` (or ``ManagedClusterList``) of ManagedClusters, a single
            ManagedCluster, a multi-document YAML stream of either, or a JSON array.
        max_bytes: refuse larger files (default 200 MB).
        max_aliases: refuse YAML with more aliases than this (kubectl writes none).

    Returns:
        The ManagedCluster objects, in file order.

    Raises:
        InventoryError: the file cannot be read, is too large, is not YAML/JSON, or an
            item is not a ManagedCluster with a name; the message names the file, the
            document and item index, and what was expected.
    """
    name = os.fspath(path)
    try:
        size = os.stat(name).st_size
        if size > max_bytes:
            raise InventoryError(f"{name}: {size} bytes is more than the limit of {max_bytes}")
        with open(name, encoding="utf-8") as handle:
            text = handle.read(max_bytes + 1)
    except OSError as error:
        raise InventoryError(f"{name}: cannot read the inventory: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise InventoryError(f"{name}: not UTF-8 text (byte {error.start})") from error
    if len(text) > max_bytes:
        raise InventoryError(f"{name}: more than the limit of {max_bytes} bytes")
    documents = _documents(text, name, max_aliases)
    many = len(documents) > 1
    clusters: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for number, document in enumerate(documents):
        where = _where(name, number, many)
        if document is None:
            continue
        if isinstance(document, list):
            items: Sequence[object] = document
            prefix = f"{where}: "
        elif isinstance(document, dict) and document.get("kind") in _LIST_KINDS:
            items = document.get("items") or []
            if not isinstance(items, list):
                raise InventoryError(f"{where}: items: expected a list of ManagedClusters")
            prefix = f"{where}: "
        elif isinstance(document, dict):
            items = [document]
            prefix = ""
        else:
            raise InventoryError(
                f"{where}: expected a List of ManagedClusters or a ManagedCluster, got "
                f"{type(document).__name__}"
            )
        for index, item in enumerate(items):
            at = f"{prefix}items[{index}]" if prefix else where
            try:
                cluster = _check_cluster(item)
            except _Bad as bad:
                raise _located(bad, text, name, number, many, document, index) from None
            cluster_name = cluster["metadata"]["name"]
            if cluster_name in seen:
                twice = _Bad(
                    (), f"cluster {cluster_name!r} is listed twice (first at {seen[cluster_name]})"
                )
                raise _located(twice, text, name, number, many, document, index)
            seen[cluster_name] = at
            clusters.append(cluster)
    return clusters


def _located(
    bad: _Bad, text: str, name: str, number: int, many: bool, document: object, index: int
) -> InventoryError:
    """``bad`` as the user reads it: ``file:line:col: [document N: ][items[i] (name): ]
    field: what was expected``."""
    listed = isinstance(document, list) or (
        isinstance(document, dict) and document.get("kind") in _LIST_KINDS
    )
    inside: tuple[str | int, ...] = (index,) if isinstance(document, list) else ("items", index)
    full = (*inside, *bad.path) if listed else bad.path
    spot = _locate(text, number, full)
    head = f"{name}:{spot[0]}:{spot[1]}" if spot else name
    parts = [head]
    if many:
        parts.append(f"document {number + 1}")
    if listed:
        parts.append(f"items[{index}]" + (f" ({bad.named})" if bad.named else ""))
    elif bad.named:
        parts.append(f"cluster {bad.named}")
    if bad.path and bad.path != ("kind",):
        parts.append(_dotted(bad.path))
    return InventoryError(": ".join(parts) + f": {bad.message}")


def inventory_list(clusters: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Wrap ManagedClusters in the ``kind: List`` document kubectl prints.

    Args:
        clusters: ManagedCluster objects.

    Returns:
        ``{"apiVersion": "v1", "kind": "List", "items": [...], "metadata": {...}}``.
    """
    return {
        "apiVersion": "v1",
        "items": [dict(c) for c in clusters],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }
