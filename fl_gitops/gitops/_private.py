"""Private scratch directories for key material, that never outlive the process holding them.

git and ssh need some secrets as files: an ssh key with mode 0600 (a Secret volume mounts it
readable by a group, and ssh refuses that), the askpass helper, the signing key. Those
copies live in a directory of their own (mode 0700) named after the process that made it,
``fl-gitops-<kind>-<pid>-<random>`` under the temporary directory. It is removed when its
owner is done (a ``finally``, or the owner's ``close``); a process killed before that
(SIGKILL, an OOM kill) leaves it behind, so every new owner first sweeps the directories
of processes that are no longer running. A directory of a live process, even another
pass's, is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

__all__ = ["make_private_dir", "sweep_stale_private_dirs"]

_PREFIX = "fl-gitops-"
_NAME_RE = re.compile(r"^fl-gitops-(?P<kind>[a-z]+)-(?P<pid>[0-9]+)-")


def make_private_dir(kind: str, *, root: Path | None = None) -> Path:
    """A new directory only this user can enter, after sweeping stale ones of ``kind``.

    Args:
        kind: what it holds (``auth``, ``signing``): part of its name.
        root: where to make it (the temporary directory by default).

    Returns:
        The new directory, mode 0700.
    """
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    sweep_stale_private_dirs(base)
    path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{kind}-{os.getpid()}-", dir=base))
    os.chmod(path, stat.S_IRWXU)
    return path


def sweep_stale_private_dirs(root: Path | None = None) -> list[Path]:
    """Remove the private directories left by processes of this user that are gone.

    Returns:
        The directories removed.
    """
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        match = _NAME_RE.match(entry.name)
        if match is None:
            continue
        try:
            info = entry.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
            continue
        if _alive(int(match["pid"])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process with that pid: not ours to judge
        return True
    with contextlib.suppress(OSError):
        # A zombie is gone for our purpose (its finally blocks will never run).
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True
