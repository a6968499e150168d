"""Files written so that a reader, or a crash, never sees half of one: the one way to.

A file is written beside its destination under a hidden temporary name, flushed to disk
(``fsync``), renamed over the destination, and the directory flushed too, so that after
a power loss the file is either the old one or the whole new one. Model files are written
this way by the store and rendered manifests by ``render``; it lives at the bottom of the
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
def replaced_atomically(path: str | os.PathLike[str], *, mode: int = 0o644) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; once it succeeds, the file
    is flushed, given ``mode`` and renamed onto ``path`` (then the directory is flushed);
    if it fails, the temporary file is removed and ``path`` is untouched.

    Args:
        path: the destination; its directory is created if missing.
        mode: the new file's permission bits.

    Raises:
        OSError: the file cannot be written, flushed or renamed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        _fsync(tmp, os.O_RDONLY)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    # Make the rename itself durable; a file system that cannot flush a directory
    # (some network mounts) has still renamed the file whole.
    with contextlib.suppress(OSError):
        _fsync(target.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def write_atomic(
    path: str | os.PathLike[str], data: bytes | bytearray | memoryview, *, mode: int = 0o644
) -> None:
    """Write ``data`` to ``path`` through :func:`replaced_atomically`.

    Raises:
        OSError: the file cannot be written, flushed or renamed.
    """
    with replaced_atomically(path, mode=mode) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
