"""Read a blueprint's YAML with ruamel.yaml, keeping where every key and value came from.

Blueprints are reviewed in pull requests, so an error must point at a line. ruamel's
round-trip loader keeps positions; this module turns its tree into plain Python data plus
a map from field path to (line, column), and refuses hostile input before it costs much:
files over a size bound, binary junk, and alias bombs (aliases are counted while the tree
is copied, so a billion laughs stops after a few dozen reuses, not after a billion).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

from fl_gitops.errors import BlueprintError

__all__ = ["MAX_ALIASES", "MAX_BYTES", "MAX_NODES", "Document", "load_document"]

MAX_BYTES = 1024 * 1024  # a blueprint is a page of YAML; 1 MiB is generous
MAX_ALIASES = 64  # reuses of an anchored node
MAX_NODES = 100_000  # scalars, mappings and sequences after alias expansion
MAX_DEPTH = 64

Path_ = tuple[str | int, ...]


@dataclass
class Document:
    """Plain data (dict/list/str/int/float/bool/None) and where each piece came from."""

    file: str
    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """The 1-based (line, column) of a path, or of its nearest located ancestor."""
        table = self.key_positions if key else self.positions
        probe = tuple(path)
        if key and probe in table:
            return table[probe]
        while probe:
            if probe in self.positions:
                return self.positions[probe]
            if probe in self.key_positions:
                return self.key_positions[probe]
            probe = probe[:-1]
        return self.positions.get((), (1, 1))


def load_document(path: str | Path, *, text: bytes | None = None) -> Document:
    """Load one YAML document with positions, or raise a located ``BlueprintError``.

    Args:
        path: the file to read (also the name shown in errors).
        text: the file's bytes, when already read.
    """
    file = str(path)
    if text is None:
        try:
            size = Path(path).stat().st_size
        except OSError as exc:
            raise BlueprintError(f"cannot read the file: {exc.strerror}", file=file) from exc
        if size > MAX_BYTES:
            raise BlueprintError(
                f"file is {size} bytes; a blueprint may be at most {MAX_BYTES} bytes", file=file
            )
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise BlueprintError(f"cannot read the file: {exc.strerror}", file=file) from exc
    if len(text) > MAX_BYTES:
        raise BlueprintError(
            f"file is {len(text)} bytes; a blueprint may be at most {MAX_BYTES} bytes", file=file
        )
    source = _decode(text, file)
    if not source.strip():
        raise BlueprintError(
            "the file is empty; expected an Experiment (apiVersion: fl-gitops.io/v1alpha1)",
            file=file,
            line=1,
            column=1,
        )
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        docs = list(yaml.load_all(source))
    except MarkedYAMLError as exc:
        raise _located(exc, file) from None
    except YAMLError as exc:
        raise BlueprintError(f"not valid YAML: {exc}", file=file) from None
    docs = [d for d in docs if d is not None]
    if not docs:
        raise BlueprintError(
            "the file holds no YAML document; expected an Experiment", file=file, line=1, column=1
        )
    if len(docs) > 1:
        raise BlueprintError(
            f"the file holds {len(docs)} YAML documents; expected exactly one Experiment",
            file=file,
            line=1,
        )
    doc = Document(file=file, data=None)
    copier = _Copier(doc)
    doc.data = copier.copy(docs[0], (), 0)
    doc.positions.setdefault((), (1, 1))
    return doc


def _decode(text: bytes, file: str) -> str:
    if b"\x00" in text:
        offset = text.index(b"\x00")
        raise BlueprintError(
            "binary data (a NUL byte); expected YAML text",
            file=file,
            line=text.count(b"\n", 0, offset) + 1,
        )
    try:
        source = text.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BlueprintError(
            f"not UTF-8 text (byte 0x{text[exc.start]:02x}); expected YAML in UTF-8",
            file=file,
            line=text.count(b"\n", 0, exc.start) + 1,
        ) from None
    bad = next((c for c in source if _is_forbidden_control(c)), None)
    if bad is not None:
        offset = source.index(bad)
        raise BlueprintError(
            f"control character U+{ord(bad):04X}; expected printable YAML text",
            file=file,
            line=source.count("\n", 0, offset) + 1,
        )
    return source


def _is_forbidden_control(char: str) -> bool:
    code = ord(char)
    return (code < 0x20 and char not in "\t\n\r") or code == 0x7F


def _located(exc: MarkedYAMLError, file: str) -> BlueprintError:
    mark = exc.problem_mark or exc.context_mark
    problem = (exc.problem or exc.context or "not valid YAML").strip()
    if "'\\t'" in problem or "\\t" in problem:
        problem = "a tab character; YAML indentation must use spaces"
    elif "found duplicate key" in (exc.problem or "") or "duplicate key" in str(exc):
        problem = str(exc.problem or "duplicate key").strip()
        problem = problem.replace("found ", "") + " (each key may appear once)"
    line = mark.line + 1 if mark else 0
    column = mark.column + 1 if mark else 0
    return BlueprintError(f"not valid YAML: {problem}", file=file, line=line, column=column)


class _Copier:
    """Copies ruamel's tree into plain data, recording positions and counting aliases."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.nodes = 0
        self.aliases = 0
        self.seen: set[int] = set()

    def copy(self, node: Any, path: Path_, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise BlueprintError(
                f"the document expands to over {MAX_NODES} values; expected a small blueprint",
                file=self.doc.file,
            )
        if depth > MAX_DEPTH:
            line, col = self.doc.where(path)
            raise BlueprintError(
                f"nesting deeper than {MAX_DEPTH} levels",
                file=self.doc.file,
                line=line,
                column=col,
                field=_dotted(path),
            )
        if isinstance(node, CommentedMap | CommentedSeq):
            if id(node) in self.seen:
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    line, col = self.doc.where(path)
                    raise BlueprintError(
                        f"more than {MAX_ALIASES} alias references; "
                        "expected a blueprint without alias bombs",
                        file=self.doc.file,
                        line=line,
                        column=col,
                        field=_dotted(path),
                    )
            self.seen.add(id(node))
        if isinstance(node, CommentedMap):
            return dict(self._copy_map(node, path, depth))
        if isinstance(node, CommentedSeq):
            out = []
            for i, item in enumerate(node):
                try:
                    line, col = node.lc.item(i)
                    self.doc.positions[(*path, i)] = (line + 1, col + 1)
                except (KeyError, TypeError, IndexError):
                    pass
                out.append(self.copy(item, (*path, i), depth + 1))
            return out
        return _scalar(node)

    def _copy_map(self, node: CommentedMap, path: Path_, depth: int) -> Iterator[tuple[str, Any]]:
        for key in node:
            value = node[key]
            if not isinstance(key, str):
                try:
                    line, col = node.lc.key(key)
                except (KeyError, TypeError):
                    line, col = self.doc.where(path)
                    line, col = line - 1, col - 1
                raise BlueprintError(
                    f"key {key!r} is a {_type_name(_scalar(key))}; expected a string key",
                    file=self.doc.file,
                    line=line + 1,
                    column=col + 1,
                    field=_dotted(path),
                )
            sub = (*path, key)
            try:
                kline, kcol = node.lc.key(key)
                self.doc.key_positions[sub] = (kline + 1, kcol + 1)
                vline, vcol = node.lc.value(key)
                self.doc.positions[sub] = (vline + 1, vcol + 1)
            except (KeyError, TypeError):
                pass
            yield key, self.copy(value, sub, depth + 1)


def _scalar(node: Any) -> Any:
    """ruamel's scalar subclasses to plain Python values; dates stay the text they were."""
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, ScalarBoolean):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, _dt.datetime | _dt.date):
        return node.isoformat()
    if hasattr(node, "value"):  # TaggedScalar and friends
        return str(node.value)
    return str(node)


def _type_name(value: Any) -> str:
    return type(value).__name__


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
