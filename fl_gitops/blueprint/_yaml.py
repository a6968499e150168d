"""Read a blueprint's YAML with ruamel.yaml, keeping where every key and value came from.

Blueprints are reviewed in pull requests, so an error must point at a line. ruamel's
round-trip loader keeps positions; this module turns its tree into plain Python data plus
a map from field path to (line, column), and refuses hostile input before it costs much:
files over a size bound (checked before reading), binary junk, nesting too deep for the
recursive composer, and alias bombs (aliases are counted while the tree is copied, so a
billion laughs stops after a few dozen reuses, not after a billion).

Loading is two passes. The first walks ruamel's event stream, which is iterative and
cheap: it finds syntax errors, duplicate keys (with the field path and the first
occurrence), excessive depth and absurd numbers, and words each in plain language. Only
then does ruamel compose the tree, which it does recursively.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    DocumentStartEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from ruamel.yaml.scalarbool import ScalarBoolean

from fl_gitops.contracts import API_VERSION
from fl_gitops.errors import BlueprintError

__all__ = [
    "MAX_ALIASES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "Document",
    "dotted",
    "load_document",
    "read_bounded",
]

MAX_BYTES = 1024 * 1024  # a blueprint is a page of YAML; 1 MiB is generous
MAX_ALIASES = 64  # reuses of an anchored node
MAX_NODES = 100_000  # scalars, mappings and sequences after alias expansion
MAX_DEPTH = 64  # nested mappings and lists
MAX_NUMBER_DIGITS = 100  # Python refuses to convert ints over 4300 digits: stop far sooner

Path_ = tuple[str | int, ...]

_NUMBER = re.compile(
    r"[-+]?(0x[0-9a-fA-F_]+|0o[0-7_]+|[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?|\.[0-9]+)"
)


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


def read_bounded(path: str | Path) -> bytes:
    """A blueprint file's bytes, refusing one over ``MAX_BYTES`` before reading it all.

    The size is checked twice: ``stat`` first (cheap, refuses a 5 MB file without reading
    it) and again while reading, for files that lie about their size (``/dev/zero``, a
    FIFO, a file still growing).

    Raises:
        BlueprintError: unreadable, a directory, or too large.
    """
    file = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_BYTES:
            raise _too_big(size, file)
        with open(path, "rb") as handle:
            text = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BlueprintError(f"cannot read the file: {reason}", file=file) from None
    if len(text) > MAX_BYTES:
        raise _too_big(None, file)
    return text


def _too_big(size: int | None, file: str) -> BlueprintError:
    shown = f"{size} bytes" if size is not None else f"over {MAX_BYTES} bytes"
    return BlueprintError(
        f"the file is {shown}; a blueprint may be at most {MAX_BYTES} bytes", file=file
    )


def load_document(path: str | Path, *, text: bytes | None = None) -> Document:
    """Load one YAML document with positions, or raise a located ``BlueprintError``.

    Args:
        path: the file to read (also the name shown in errors).
        text: the file's bytes, when already read.

    Raises:
        BlueprintError: the file cannot be read, is too big, is not UTF-8 YAML text, is
            not exactly one document, or is hostile (deep, alias bomb, absurd numbers).
    """
    file = str(path)
    if text is None:
        text = read_bounded(path)
    if len(text) > MAX_BYTES:
        raise _too_big(len(text), file)
    source = _decode(text, file)
    if not source.strip():
        raise BlueprintError(
            f"the file is empty; expected an Experiment (apiVersion: {API_VERSION})",
            file=file,
            line=1,
            column=1,
        )
    starts = _prescan(source, file)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        docs = list(yaml.load_all(source))
    except MarkedYAMLError as exc:
        raise _located(exc, file) from None
    except (YAMLError, ValueError, RecursionError) as exc:  # pragma: no cover - prescan's job
        raise BlueprintError(f"not valid YAML: {exc}", file=file) from None
    present = [i for i, d in enumerate(docs) if d is not None]
    if not present:
        raise BlueprintError(
            "the file holds only comments; expected an Experiment", file=file, line=1, column=1
        )
    if len(present) > 1:
        line, column = starts[present[1]] if present[1] < len(starts) else (1, 1)
        raise BlueprintError(
            f"a second YAML document starts here (the file holds {len(present)}); "
            "expected exactly one Experiment per file",
            file=file,
            line=line,
            column=column,
        )
    doc = Document(file=file, data=None)
    copier = _Copier(doc)
    doc.data = copier.copy(docs[present[0]], (), 0)
    doc.positions.setdefault((), (1, 1))
    return doc


def _decode(text: bytes, file: str) -> str:
    if text.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise BlueprintError("UTF-16 text; expected YAML in UTF-8", file=file, line=1)
    if b"\x00" in text:
        offset = text.index(b"\x00")
        raise BlueprintError(
            "binary data (a NUL byte); expected YAML text",
            file=file,
            line=text.count(b"\n", 0, offset) + 1,
            column=offset - (text.rfind(b"\n", 0, offset) + 1) + 1,
        )
    try:
        source = text.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BlueprintError(
            f"not UTF-8 text (byte 0x{text[exc.start]:02x}); expected YAML in UTF-8",
            file=file,
            line=text.count(b"\n", 0, exc.start) + 1,
            column=exc.start - (text.rfind(b"\n", 0, exc.start) + 1) + 1,
        ) from None
    bad = next((c for c in source if _is_forbidden_control(c)), None)
    if bad is not None:
        offset = source.index(bad)
        line = source.count("\n", 0, offset) + 1
        column = offset - (source.rfind("\n", 0, offset) + 1) + 1
        raise BlueprintError(
            f"control character U+{ord(bad):04X}; expected printable YAML text",
            file=file,
            line=line,
            column=column,
        )
    return source


def _is_forbidden_control(char: str) -> bool:
    code = ord(char)
    return (code < 0x20 and char not in "\t\n\r") or code == 0x7F or 0x80 <= code < 0xA0


@dataclass
class _Frame:
    """One open mapping or sequence while walking events."""

    path: Path_
    is_map: bool
    expect_key: bool = True
    key: str | int = "?"
    index: int = 0
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)


def _prescan(source: str, file: str) -> list[tuple[int, int]]:
    """Walk the event stream once: syntax, duplicate keys, depth, numbers.

    Returns the 1-based (line, column) where each document starts.
    """
    frames: list[_Frame] = []
    starts: list[tuple[int, int]] = []
    last_quoted: ScalarEvent | None = None
    try:
        for event in YAML(typ="rt").parse(source):
            if isinstance(event, DocumentStartEvent):
                starts.append(_mark(event.start_mark))
                frames.clear()
                continue
            if isinstance(event, CollectionEndEvent):
                frames.pop()
                _node_done(frames)
                continue
            if not isinstance(event, NodeEvent):
                continue
            path, is_key = _node_path(frames)
            if isinstance(event, ScalarEvent):
                if event.style in ("'", '"') and event.end_mark.line > event.start_mark.line:
                    last_quoted = event
                if is_key:
                    _check_duplicate(frames[-1], event, path, file)
                elif event.style is None:
                    _check_number(event, path, file)
                _node_done(frames)
            elif isinstance(event, AliasEvent):
                if is_key:
                    frames[-1].key = "?"
                _node_done(frames)
            elif isinstance(event, MappingStartEvent | SequenceStartEvent):
                if is_key:
                    frames[-1].key = "?"
                if len(frames) >= MAX_DEPTH:
                    line, column = _mark(event.start_mark)
                    raise BlueprintError(
                        f"nesting deeper than {MAX_DEPTH} levels; expected a blueprint",
                        file=file,
                        line=line,
                        column=column,
                        field=_dotted(path[:8]) + ("..." if len(path) > 8 else ""),
                    )
                frames.append(_Frame(path=path, is_map=isinstance(event, MappingStartEvent)))
    except MarkedYAMLError as exc:
        raise _located(exc, file, last_quoted, source) from None
    except YAMLError as exc:
        raise BlueprintError(f"not valid YAML: {exc}", file=file) from None
    return starts


def _node_path(frames: list[_Frame]) -> tuple[Path_, bool]:
    """The path of the node about to start, and whether it is a mapping key."""
    if not frames:
        return (), False
    top = frames[-1]
    if top.is_map:
        if top.expect_key:
            return (*top.path, "?"), True
        return (*top.path, top.key), False
    path = (*top.path, top.index)
    top.index += 1
    return path, False


def _node_done(frames: list[_Frame]) -> None:
    """A node ended: in a mapping, a key is followed by its value and a value by a key."""
    if frames and frames[-1].is_map:
        frames[-1].expect_key = not frames[-1].expect_key


def _check_duplicate(frame: _Frame, event: ScalarEvent, path: Path_, file: str) -> None:
    key = str(event.value)
    line, column = _mark(event.start_mark)
    if key in frame.seen and key != "<<":
        first_line, first_column = frame.seen[key]
        raise BlueprintError(
            f"duplicate key {key!r} (first at line {first_line}, column {first_column}); "
            "each key may appear once in a mapping",
            file=file,
            line=line,
            column=column,
            field=_dotted((*frame.path, key)),
        )
    frame.seen[key] = (line, column)
    frame.key = key


def _check_number(event: ScalarEvent, path: Path_, file: str) -> None:
    value = str(event.value)
    if len(value) > MAX_NUMBER_DIGITS and _NUMBER.fullmatch(value):
        line, column = _mark(event.start_mark)
        raise BlueprintError(
            f"a number of {len(value)} characters; expected at most {MAX_NUMBER_DIGITS}",
            file=file,
            line=line,
            column=column,
            field=_dotted(path),
        )


def _mark(mark: Any) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


_FOUND = {
    "'<stream end>'": "the end of the file",
    "'<block end>'": "a line indented less",
    "'<block mapping start>'": "a mapping",
    "'<block sequence start>'": "a list",
    "'?'": "a key",
    "'-'": "a list item",
    "'<scalar>'": "a value",
}


def _located(
    exc: MarkedYAMLError,
    file: str,
    last_quoted: ScalarEvent | None = None,
    source: str = "",
) -> BlueprintError:
    """A ruamel syntax error, reworded for people and pointed at the line to fix."""
    mark = exc.problem_mark or exc.context_mark
    problem = (exc.problem or exc.context or "not valid YAML").strip()
    context = (exc.context or "").strip()
    cmark = exc.context_mark
    where = f" (line {cmark.line + 1}, column {cmark.column + 1})" if cmark else ""
    if "'\\t'" in problem or "\\t" in problem:
        problem = "a tab character; YAML indentation and separation must use spaces"
    elif problem.startswith("found character"):
        char = problem.split("'")[1] if "'" in problem else "this character"
        problem = f"a value cannot start with {char!r}; quote the value"
    elif problem == "mapping values are not allowed here":
        problem = "unexpected ':'; quote a value that contains ': ', or fix this line's indentation"
        if mark is not None:
            problem += _missing_colon_hint(source, mark.line)
    elif problem == "could not find expected ':'" and cmark:
        problem = "expected 'key: value' but this line has no ':'"
        mark = cmark
    elif problem.startswith("expected <block end>"):
        problem = "bad indentation: this line does not line up with the keys above it"
    elif context.startswith("while parsing a flow") and cmark:
        bracket = "[" if "sequence" in context else "{"
        closer = "]" if bracket == "[" else "}"
        found = problem.split("but got ")[-1]
        problem = (
            f"the {bracket!r} at line {cmark.line + 1}, column {cmark.column + 1} is not "
            f"closed: expected ',' or {closer!r}, found {_FOUND.get(found, found)}"
        )
    elif context == "while scanning a quoted scalar" and cmark:
        problem = "this quoted string is never closed"
        mark = cmark
    elif problem.startswith("found duplicate key"):
        key = problem.split('"')[1] if '"' in problem else "?"
        problem = f"duplicate key {key!r}; each key may appear once in a mapping"
    elif problem.startswith("found undefined alias"):
        name = problem.split("'")[1] if "'" in problem else "?"
        problem = f"alias *{name} refers to no anchor &{name} defined before it"
    else:
        problem = problem.removeprefix("found ")
        if context and where:
            problem += f" ({context.removeprefix('while ')}{where})"
    if (
        last_quoted is not None
        and mark is not None
        and last_quoted.end_mark.line >= mark.line - 1
        and mark is not cmark
    ):
        start, end = _mark(last_quoted.start_mark), last_quoted.end_mark.line + 1
        problem += (
            f"; the quoted string at line {start[0]}, column {start[1]} runs on to line "
            f"{end}: is its closing quote missing?"
        )
    line = mark.line + 1 if mark else 0
    column = mark.column + 1 if mark else 0
    return BlueprintError(f"not valid YAML: {problem}", file=file, line=line, column=column)


def _missing_colon_hint(source: str, line: int) -> str:
    """When the line above reads like a key without its ':', say so."""
    lines = source.splitlines()
    above = next(
        (
            (i, lines[i].strip())
            for i in range(min(line, len(lines)) - 1, -1, -1)
            if lines[i].strip() and not lines[i].lstrip().startswith("#")
        ),
        None,
    )
    if above is None:
        return ""
    number, text = above
    if ":" in text or text.startswith(("-", "[", "{", "'", '"')):
        return ""
    return f"; is a ':' missing on line {number + 1}?"


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
        if depth > MAX_DEPTH:  # aliases can nest what the event walk saw as shallow
            line, col = self.doc.where(path)
            raise BlueprintError(
                f"nesting deeper than {MAX_DEPTH} levels; expected a blueprint",
                file=self.doc.file,
                line=line,
                column=col,
                field=_dotted(path[:8]) + ("..." if len(path) > 8 else ""),
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
        value = _scalar(node)
        if isinstance(value, float) and not math.isfinite(value):
            line, col = self.doc.where(path)
            raise BlueprintError(
                f"expected a finite number, got {node!s}",
                file=self.doc.file,
                line=line,
                column=col,
                field=_dotted(path),
            )
        return value

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
                    f"key {_show_key(key)} is {_kind_of(key)}; expected a string key"
                    + (f' (quote it: "{key}")' if _is_plain_scalar(key) else ""),
                    file=self.doc.file,
                    line=line + 1,
                    column=col + 1,
                    field=_dotted(path),
                )
            sub = (*path, key)
            try:
                kline, kcol = node.lc.key(key)
                self.doc.key_positions[sub] = (kline + 1, kcol + 1)
                if value is None:
                    # An empty value's mark is the next token, often lines later: the
                    # key is where a reader looks.
                    self.doc.positions[sub] = (kline + 1, kcol + 1)
                else:
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


def _is_plain_scalar(key: Any) -> bool:
    return key is None or isinstance(key, bool | int | float | _dt.date)


def _show_key(key: Any) -> str:
    if isinstance(key, tuple):
        return "[" + ", ".join(_show_key(k) for k in key) + "]"
    if key is None:
        return "null"
    if isinstance(key, bool):
        return str(key).lower()
    if isinstance(key, _dt.date):
        return key.isoformat()
    return repr(_scalar(key))


def _kind_of(key: Any) -> str:
    if isinstance(key, tuple):
        return "a list"
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "a boolean"
    if isinstance(key, int):
        return "an integer"
    if isinstance(key, float):
        return "a number"
    if isinstance(key, _dt.date):
        return "a date"
    return f"a {type(key).__name__}"


def dotted(path: Iterable[str | int]) -> str:
    """``("spec", "client", "env", 0, "name")`` → ``spec.client.env[0].name``.

    A key that is not printable (a newline, a line separator, a control character) is
    shown quoted and escaped, so that an error stays on one line and a key cannot forge
    a line of the CLI's output.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = part if part.isprintable() else repr(part)
        out += f".{name}" if out else name
    return out


_dotted = dotted
