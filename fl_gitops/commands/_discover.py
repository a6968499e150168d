"""Where you stand is enough: the config repo and the experiment found from the cwd.

Inside a clone of a config repo, ``history``, ``status``, ``rollback`` and ``reconcile``
need neither ``--repo`` nor ``--path``. The work tree is found as git finds it (walking up
from the cwd to the first folder with a ``.git`` entry: a directory, or the ``.git`` file of
a worktree or submodule), in plain Python, since only ``fl_gitops/gitops`` runs git.

Which repo the commands then read is a choice, made here: the **upstream** of the branch
checked out (``branch.<name>.remote`` and ``.merge`` in the repo's config, the place
``git push`` goes), and only when the branch has none, the work tree itself. Why not the
work tree's own path: the experiment lives where the hub's Argo CD reads it. A clone is
often rounds behind (the reconcile job pushes a commit per round), so ``status`` would show
an old round; and ``reconcile`` and ``rollback`` must commit where the hub will see it
(git refuses a push into a clone's checked-out branch, and a commit that stayed in the
clone would never reach the hub). So, as with Argo CD, uncommitted and unpushed edits in
the clone are not seen; the commands say which repo and branch they read.

The experiment: the folder holding ``blueprint.yaml`` that the cwd is in or under (it must
exist on the branch read, too), else the only one the repo holds (decided once the clone is
open, by :func:`fl_gitops.commands._common.locate_experiment`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["WorkTree", "discover_work_tree", "experiment_under", "find_top"]

BLUEPRINT_FILE = "blueprint.yaml"
# A .git file, HEAD or config larger than this is not one git wrote: not read.
_MAX_FILE = 1 << 20
_SECTION_RE = re.compile(r'\s*\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]\s*(.*)$')
_KEY_RE = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?$")


@dataclass(frozen=True)
class WorkTree:
    """A git work tree found from the cwd, and the repo and branch the commands read.

    Attributes:
        top: the work tree's top folder (what ``git rev-parse --show-toplevel`` prints).
        url: the repo to read: the checked-out branch's upstream remote URL, else ``top``.
        branch: the branch to read there (the upstream's), or None (detached HEAD).
        upstream: whether ``url`` is the upstream remote (False: the work tree itself).
    """

    top: Path
    url: str
    branch: str | None
    upstream: bool


def find_top(start: Path) -> Path | None:
    """The top folder of the work tree ``start`` is in, or None outside any.

    As git does it: the nearest folder, from ``start`` up, holding a ``.git`` directory
    (with a ``HEAD``) or a ``.git`` file (``gitdir: ...``, a worktree or a submodule).
    ``GIT_CEILING_DIRECTORIES`` stops the walk as it stops git's.
    """
    ceilings = {
        Path(p).resolve()
        for p in os.environ.get("GIT_CEILING_DIRECTORIES", "").split(os.pathsep)
        if p and os.path.isabs(p)
    }
    here = start.resolve()
    while True:
        if _git_dir(here) is not None:
            return here
        if here.parent == here or here.parent in ceilings:
            return None
        here = here.parent


def discover_work_tree(start: Path) -> WorkTree | None:
    """The work tree ``start`` is in, with the repo and branch to read, or None."""
    top = find_top(start)
    if top is None:
        return None
    git_dir = _git_dir(top)
    assert git_dir is not None
    branch = _head_branch(git_dir)
    config = _read_config(_common_dir(git_dir) / "config")
    if branch is not None:
        settings = config.get(("branch", branch), {})
        remote = settings.get("remote")
        merge = settings.get("merge", "")
        if remote and remote != "." and merge.startswith("refs/heads/"):
            url = config.get(("remote", remote), {}).get("url")
            if url:
                return WorkTree(top, _absolute(url, top), merge.removeprefix("refs/heads/"), True)
    return WorkTree(top, str(top), branch, False)


def experiment_under(top: Path, start: Path) -> str | None:
    """The experiment folder (relative to ``top``, POSIX) that ``start`` is in or under."""
    top = top.resolve()
    here = start.resolve()
    while here == top or top in here.parents:
        if here != top and (here / BLUEPRINT_FILE).is_file():
            return PurePosixPath(*here.relative_to(top).parts).as_posix()
        if here == top:
            return None
        here = here.parent
    return None


def _read_small(path: Path) -> str | None:
    """A small text file git keeps, or None when it is missing, large or unreadable."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_FILE:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _git_dir(folder: Path) -> Path | None:
    """The git directory that ``folder/.git`` stands for, or None when it is not one."""
    dot = folder / ".git"
    if dot.is_dir():
        return dot if (dot / "HEAD").is_file() else None
    text = _read_small(dot)
    if text is None or not text.startswith("gitdir:"):
        return None
    target = Path(text[len("gitdir:") :].strip())
    target = target if target.is_absolute() else folder / target
    return target if (target / "HEAD").is_file() else None


def _common_dir(git_dir: Path) -> Path:
    """Where a worktree's shared config lives (its ``commondir``), else ``git_dir``."""
    text = _read_small(git_dir / "commondir")
    if not text or not text.strip():
        return git_dir
    common = Path(text.strip())
    return common if common.is_absolute() else git_dir / common


def _head_branch(git_dir: Path) -> str | None:
    """The branch checked out (``ref: refs/heads/<name>`` in HEAD), None when detached."""
    text = (_read_small(git_dir / "HEAD") or "").strip()
    if text.startswith("ref: refs/heads/"):
        return text.removeprefix("ref: refs/heads/") or None
    return None


def _read_config(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    """The ``[section "sub"] key = value`` entries of a git config file (the last wins).

    Enough for ``branch.<b>.remote``/``merge`` and ``remote.<r>.url``: comments, quoted
    values and ``[section.sub]`` are understood; includes are not followed (a repo that
    sets its remote through an include is read as the work tree itself).
    """
    entries: dict[tuple[str, str], dict[str, str]] = {}
    section: tuple[str, str] | None = None
    for raw in (_read_small(path) or "").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        match = _SECTION_RE.match(line)
        if match:
            name, sub, rest = match.group(1), match.group(2), match.group(3)
            if sub is None and "." in name:
                name, sub = name.split(".", 1)  # the old [branch.main] spelling
            section = (name.lower(), (sub or "").replace('\\"', '"').replace("\\\\", "\\"))
            line = rest.strip()
            if not line or line[0] in "#;":
                continue
        if section is None:
            continue
        key = _KEY_RE.match(line)
        if key:
            entries.setdefault(section, {})[key.group(1).lower()] = _value(key.group(2) or "")
    return entries


def _value(text: str) -> str:
    """A config value without its trailing comment and with its quotes removed."""
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append({"n": "\n", "t": "\t"}.get(text[i + 1], text[i + 1]))
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch in "#;" and not quoted:
            break
        else:
            out.append(ch)
        i += 1
    return "".join(out).strip()


def _absolute(url: str, top: Path) -> str:
    """A remote URL as given, or a relative local path made absolute from the work tree."""
    if "://" in url or url.startswith("/") or re.match(r"^[^/]+@[^/]+:", url):
        return url
    if re.match(r"^[A-Za-z0-9.-]+:", url) and not url.startswith("."):
        return url  # host:path, scp-like
    return str((top / os.path.expanduser(url)).resolve())
