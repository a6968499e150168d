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
import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["replaced_atomically", "write_atomic"]

# Temporary names: one random token per process (a container's pid repeats from run to
# run, and a killed run's file must not block the next), then a counter: no random bytes
# drawn per file.
_TOKEN = uuid.uuid4().hex[:12]
_serial = itertools.count()


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
    tmp = target.with_name(f".{target.name}.{_TOKEN}-{next(_serial)}.tmp")
    try:
        yield tmp
        if durable:
            _fsync(tmp, os.O_RDONLY)
        os.chmod(tmp, mode)  # the umask does not decide the file's mode
        os.replace(tmp, target)
    except BaseException:
        # Removed only when the write failed: after the rename there is nothing to remove
        # (a tree of 10,000 files paid a failing unlink per file).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
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
    """Write ``data`` to ``path`` as :func:`replaced_atomically` does, with the fewest
    system calls (one open, write, close and rename per file; the directory made only when
    it is missing): a render writes 10,000 of these.

    Raises:
        OSError: the file cannot be written, flushed or renamed.
    """
    target = os.fspath(path)
    head, name = os.path.split(target)
    if head and not os.path.isdir(head):
        os.makedirs(head, exist_ok=True)
    tmp = os.path.join(head, f".{name}.{_TOKEN}-{next(_serial)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask does not decide the file's mode
            view = memoryview(data).cast("B")
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        with contextlib.suppress(OSError):
            _fsync(Path(head or "."), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
