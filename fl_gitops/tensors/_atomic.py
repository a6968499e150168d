"""Files written so that a reader, or a crash, never sees half of one: the one way to.

A file is written beside its destination under a hidden temporary name, flushed to disk
(``fsync``), renamed over the destination, and the directory flushed too, so that after
a power loss the file is either the old one or the whole new one. Model files are written
this way by the store; rendered manifests by ``render`` too, without the flushes (a work
tree for git, which flushes none of its own: 20,000 fsyncs were most of a 10,000-cluster
render on a disk); it lives at the bottom of the
package graph, with the format and the digests, so that every side may use it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["replaced_atomically", "write_atomic"]


@contextlib.contextmanager
def replaced_atomically(
    path: str | os.PathLike[str], *, mode: int = 0o644, durable: bool = True
) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; once it succeeds, the file
    is flushed, given ``mode`` and renamed onto ``path`` (then the directory is flushed);
    if it fails, the temporary file is removed and ``path`` is untouched.

    Args:
        path: the destination; its directory is created if missing.
        mode: the new file's permission bits.
        durable: flush the file and its directory (``fsync``). Without it the file is
            still replaced whole (a reader or a crash sees the old or the new one, never
            half), but a power loss may lose the newest version: enough for a Git work
            tree, whose files git itself never flushes.

    Raises:
        OSError: the file cannot be written, flushed or renamed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        if durable:
            _fsync(tmp, os.O_RDONLY)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if not durable:
        return
    # Make the rename itself durable; a file system that cannot flush a directory
    # (some network mounts) has still renamed the file whole.
    with contextlib.suppress(OSError):
        _fsync(target.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes | bytearray | memoryview,
    *,
    mode: int = 0o644,
    durable: bool = True,
) -> None:
    """Write ``data`` to ``path`` through :func:`replaced_atomically`.

    Raises:
        OSError: the file cannot be written, flushed or renamed.
    """
    with (
        replaced_atomically(path, mode=mode, durable=durable) as tmp,
        open(tmp, "wb") as handle,
    ):
        handle.write(data)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
