"""Put a rendered tree on disk, or compare it with what is there (`render --check`).

``render --out -`` writes no tree: :func:`manifest_stream` gives it as one YAML stream,
each file a document preceded by ``# Source: <path>``, as ``helm template`` prints.

Only paths the renderer owns are rewritten or removed (the blueprint, round records and a
team's own files are never touched). Unchanged files are not rewritten, so a no-op render
leaves mtimes and the Git index alone; each changed file is replaced atomically (whole,
never half) but not flushed to disk one by one: the tree is a Git work tree, whose files
git itself never flushes, and on a disk the 2 fsyncs per file took most of a
10,000-cluster render (threads were measured too and gained nothing: the file system's
own work on one directory is the cost).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fl_gitops.render._render import RenderedTree
from fl_gitops.tensors import write_atomic

__all__ = ["Changes", "apply_changes", "diff_text", "manifest_stream", "plan_changes"]


@dataclass(frozen=True)
class Changes:
    """What writing a tree would do, each a sorted list of paths relative to the output."""

    added: list[str]
    changed: list[str]
    removed: list[str]

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def plan_changes(out: Path, tree: RenderedTree) -> Changes:
    """Compare ``tree`` with the files under ``out``, reading each file at most once.

    Each directory is listed once and only the names it holds are read: a first render of
    10,000 clusters otherwise tried (and failed) to open 10,000 files that were not there.
    """
    added, changed = [], []
    listed: dict[Path, set[str]] = {}
    for rel, data in tree.files.items():
        path = out / rel
        names = listed.get(path.parent)
        if names is None:
            try:
                names = listed[path.parent] = set(os.listdir(path.parent))
            except (FileNotFoundError, NotADirectoryError):
                names = listed[path.parent] = set()
        if path.name not in names:
            added.append(rel)
            continue
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            added.append(rel)
            continue
        except IsADirectoryError:
            changed.append(rel)
            continue
        if current != data:
            changed.append(rel)
    removed = []
    for top in tree.owned_dirs():
        base = out / top
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if not path.is_file():
                continue
            rel = path.relative_to(out).as_posix()
            if rel not in tree.files and tree.owned(rel):
                removed.append(rel)
    return Changes(added=added, changed=changed, removed=sorted(removed))


def apply_changes(out: Path, tree: RenderedTree, changes: Changes) -> None:
    """Write added and changed files atomically, then remove stale owned files."""
    for rel in [*changes.added, *changes.changed]:
        write_atomic(os.path.join(out, rel), tree.files[rel], durable=False)
    for rel in changes.removed:
        (out / rel).unlink(missing_ok=True)
        _prune_empty_dirs((out / rel).parent, stop=out)


def diff_text(out: Path, tree: RenderedTree, changes: Changes, *, max_lines: int = 400) -> str:
    """A unified diff from what is on disk to what a fresh render gives, capped for CI logs."""
    lines: list[str] = []
    for rel in sorted([*changes.added, *changes.changed, *changes.removed]):
        old = _read_text(out / rel)
        new = tree.files[rel].decode("utf-8", "replace") if rel in tree.files else ""
        lines.extend(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=f"a/{rel}" if rel not in changes.added else "/dev/null",
                tofile=f"b/{rel}" if rel not in changes.removed else "/dev/null",
            )
        )
        if len(lines) > max_lines:
            more = len(changes.added) + len(changes.changed) + len(changes.removed)
            lines = lines[:max_lines]
            lines.append(f"... diff cut at {max_lines} lines ({more} files differ)\n")
            break
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def manifest_stream(tree: RenderedTree) -> Iterator[bytes]:
    """The tree as one YAML stream, file by file in path order, nothing written.

    Each file starts a document (``---``) with a ``# Source: <path relative to the
    output>`` comment, the way ``helm template`` marks where each manifest comes from, so
    ``grep``, ``yq`` and ``kubeconform`` read the stream and a reader finds the file.
    A file holding several documents keeps its own ``---`` separators.
    """
    for rel in sorted(tree.files):
        data = tree.files[rel]
        yield b"---\n# Source: " + rel.encode("utf-8") + b"\n"
        body = data[4:] if data.startswith(b"---\n") else data
        yield body if body.endswith(b"\n") or not body else body + b"\n"


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except (FileNotFoundError, IsADirectoryError):
        return ""


def _prune_empty_dirs(path: Path, *, stop: Path) -> None:
    while path != stop and path.is_dir() and not any(path.iterdir()):
        path.rmdir()
        path = path.parent
