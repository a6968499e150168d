"""Arguments and objects the hub-side commands share: the config repo and the hub.

A bad ``--repo`` (a path that is no repo, an unreachable URL, a missing branch) and a
``--path`` with no experiment are a user's input: they are refused here, once, as an
``InputError`` (exit 2) that names the flag, and a ``--path`` that holds no blueprint lists
the experiments the repo does hold, so the user sees what to type instead.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

from fl_gitops.errors import GitError, InputError

__all__ = [
    "add_hub_arguments",
    "add_repo_arguments",
    "console",
    "experiment_path",
    "list_experiments",
    "open_hub",
    "open_repo",
    "parse_interval",
    "require_experiment",
]

BLUEPRINT_FILE = "blueprint.yaml"
# How many experiments an error lists, and how deep under the root it looks for them.
_LISTED = 20
_DEPTH = 6
# A folder name is shown only when it is plainly a path (no control or shell characters).
_SHOWN_RE = re.compile(r"[A-Za-z0-9._/-]{1,200}")


def add_repo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo", required=True, metavar="URL", help="the config repo (path, file://, https, ssh)"
    )
    parser.add_argument(
        "--path", required=True, metavar="PATH", help="the experiment, e.g. experiments/digits"
    )
    parser.add_argument("--branch", default="main", help="the target branch (default: main)")
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        help="where to keep the clone (default: a cache directory per repo and branch)",
    )


def add_hub_arguments(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    parser.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: in-cluster)")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument(
        "--local-hub", metavar="DIR", help="a local hub's directory instead of Kubernetes"
    )
    if optional:
        parser.add_argument("--no-hub", action="store_true", help="read Git only")


def _default_workdir(url: str, branch: str) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(f"{url}#{branch}".encode()).hexdigest()[:16]
    return cache / "fl-gitops" / "repos" / key


def console() -> Any:
    """The text console of :mod:`fl_gitops.commands._output` (plain to a pipe)."""
    from fl_gitops.commands._output import console as _console

    return _console()


def _check_local_repo(url: str) -> None:
    """A local ``--repo`` must be a directory git can read, said before git says it worse."""
    if "://" in url and not url.startswith("file://"):
        return
    text = url.removeprefix("file://")
    if not url.startswith("file://") and ":" in text and not text.startswith(("/", ".", "~")):
        return  # scp-like user@host:path
    local = Path(text).expanduser()
    if not local.exists():
        raise InputError(f"--repo {url}: no such directory; expected a git repo (path or URL)")
    if not local.is_dir():
        raise InputError(f"--repo {url}: not a directory; expected a git repo (path or URL)")
    if not ((local / "HEAD").is_file() or (local / ".git").exists()):
        raise InputError(f"--repo {url}: not a git repository (no .git, not a bare repo)")


def open_repo(args: argparse.Namespace, **options: Any) -> Any:
    """Clone or fetch the config repo named on the command line.

    Args:
        args: the parsed ``--repo``, ``--branch`` and ``--workdir``.
        options: passed on to ``ConfigRepo.open`` (signing key, network timeout).

    Raises:
        InputError: ``--repo`` is no repo, cannot be reached or read, or has no such branch
            (exit 2: the user fixes the flag).
    """
    from fl_gitops.gitops import ConfigRepo, Credentials

    _check_local_repo(args.repo)
    workdir = Path(args.workdir) if args.workdir else _default_workdir(args.repo, args.branch)
    credentials = Credentials.from_environment(os.environ)
    try:
        return ConfigRepo.open(
            args.repo, branch=args.branch, workdir=workdir, credentials=credentials, **options
        )
    except GitError as exc:
        # gitops has already redacted credentials from the text
        raise InputError(
            f"--repo {args.repo} (branch {args.branch}): cannot be read: {exc}"
        ) from None


def experiment_path(args: argparse.Namespace) -> str:
    """``--path`` as a folder inside the repo: relative, no ``..``, no empty name.

    Raises:
        InputError: a path that would leave the repo or names nothing.
    """
    text = str(args.path).strip().strip("/")
    parts = PurePosixPath(text).parts if text else ()
    if not parts or any(part in ("..", ".") for part in parts):
        raise InputError(
            f"--path {args.path!r}: expected a folder inside the repo, e.g. experiments/digits"
        )
    return "/".join(parts)


def list_experiments(root: Path) -> tuple[list[str], int]:
    """The folders under ``root`` that hold a blueprint, sorted, and how many more were found.

    Hidden folders (``.git``, ``.history``) are skipped; names that are not plain paths are
    counted but never shown, since they come from the repo, not from the user.
    """
    shown: list[str] = []
    hidden = 0
    base_depth = len(root.parts)
    for current, dirs, files in os.walk(root):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if len(here.parts) - base_depth >= _DEPTH:
            dirs[:] = []
        if here != root and BLUEPRINT_FILE in files:
            rel = here.relative_to(root).as_posix()
            if _SHOWN_RE.fullmatch(rel):
                shown.append(rel)
            else:
                hidden += 1
    shown.sort()
    more = hidden + max(0, len(shown) - _LISTED)
    return shown[:_LISTED], more


def require_experiment(repo: Any, path: str, args: argparse.Namespace) -> Path:
    """The experiment's folder in the checked-out repo, or an error listing the ones there.

    Raises:
        InputError: ``path`` holds no blueprint (exit 2), with the experiments the repo holds.
    """
    exp_dir = Path(repo.root) / path
    if (exp_dir / BLUEPRINT_FILE).is_file():
        return exp_dir
    found, more = list_experiments(Path(repo.root))
    where = f"--path {path}: no experiment ({BLUEPRINT_FILE}) in {args.repo} ({args.branch})"
    if not found and not more:
        raise InputError(f"{where}; the repo holds no experiment")
    listed = ", ".join(found)
    if more:
        listed += f"{', ' if found else ''}and {more} more"
    raise InputError(f"{where}; the repo holds: {listed}")


def open_hub(args: argparse.Namespace) -> Any:
    """The hub named on the command line, or None with --no-hub."""
    if getattr(args, "no_hub", False):
        return None
    if args.local_hub:
        from fl_gitops.hub import LocalHub

        return LocalHub(Path(args.local_hub))
    from fl_gitops.hub import KubernetesHub

    return KubernetesHub.from_config(kubeconfig=args.kubeconfig, context=args.context)


def parse_interval(text: str) -> float:
    """Seconds in an interval such as 30s, 2m or 45."""
    from fl_gitops.blueprint import parse_duration

    if text.isdigit():
        return float(text)
    seconds = parse_duration(text)
    if seconds <= 0:
        raise InputError(f"--interval: expected a duration such as 30s or 2m, got {text!r}")
    return seconds
