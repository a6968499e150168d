"""Arguments and objects the hub-side commands share: the config repo and the hub.

A bad ``--repo`` (a path that is no repo, an unreachable URL, a missing branch) and a
``--path`` with no experiment are a user's input: they are refused here, once, as an
``InputError`` (exit 2) that names the flag, and a ``--path`` that holds no blueprint lists
the experiments the repo does hold, so the user sees what to type instead.

Inside a clone neither flag is needed (:func:`resolve_target`, :mod:`._discover`): the
flag, then ``FL_GITOPS_REPO``/``FL_GITOPS_PATH``/``FL_GITOPS_BRANCH``, then the work tree
the cwd is in and the experiment folder the cwd is under, then the repo's only experiment
(:func:`locate_experiment`). The hub's flags have ``FL_GITOPS_KUBECONFIG`` and
``FL_GITOPS_LOCAL_HUB`` as defaults.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from fl_gitops.errors import GitError, InputError

__all__ = [
    "BRANCH_ENV",
    "KUBECONFIG_ENV",
    "LOCAL_HUB_ENV",
    "PATH_ENV",
    "REPO_ENV",
    "add_hub_arguments",
    "add_repo_arguments",
    "console",
    "experiment_path",
    "hub_configured",
    "list_experiments",
    "locate_experiment",
    "named",
    "open_hub",
    "open_repo",
    "parse_interval",
    "require_experiment",
    "resolve_target",
    "shown_repo",
]

BLUEPRINT_FILE = "blueprint.yaml"
# How many experiments an error lists, and how deep under the root it looks for them.
_LISTED = 20
_DEPTH = 6
# A folder name is shown only when it is plainly a path (no control or shell characters).
_SHOWN_RE = re.compile(r"[A-Za-z0-9._/-]{1,200}")
_SHOWN_URL_RE = re.compile(r"[A-Za-z0-9._/:@~+*%=-]{1,500}")


REPO_ENV = "FL_GITOPS_REPO"
PATH_ENV = "FL_GITOPS_PATH"
BRANCH_ENV = "FL_GITOPS_BRANCH"
KUBECONFIG_ENV = "FL_GITOPS_KUBECONFIG"
LOCAL_HUB_ENV = "FL_GITOPS_LOCAL_HUB"
DEFAULT_BRANCH = "main"


def add_repo_arguments(parser: argparse.ArgumentParser, *, discover: bool = False) -> None:
    """``--repo``, ``--path``, ``--branch`` and ``--workdir``.

    With ``discover`` the first three may be left out: they come from the environment
    (``FL_GITOPS_REPO``, ``FL_GITOPS_PATH``, ``FL_GITOPS_BRANCH``), else from the git work
    tree the command runs in (:mod:`fl_gitops.commands._discover`); :func:`resolve_target`
    fills them in. Without it (``verify``) ``--repo`` and ``--path`` stay required.
    """
    if discover:
        parser.add_argument(
            "--repo",
            metavar="URL",
            help="the config repo: a path, file://, https or ssh URL (default: "
            f"${REPO_ENV}, else the upstream of the git work tree you are in, else that "
            "work tree; its committed, pushed branch is read, never uncommitted edits)",
        )
        parser.add_argument(
            "--path",
            metavar="PATH",
            help="the experiment's folder in the repo, e.g. experiments/digits (default: "
            f"${PATH_ENV}, else the experiment folder you are in, else the repo's only one)",
        )
        parser.add_argument(
            "--branch",
            metavar="NAME",
            help=f"the target branch (default: ${BRANCH_ENV}, else the upstream branch of "
            f"the work tree you are in, else {DEFAULT_BRANCH})",
        )
    else:
        parser.add_argument(
            "--repo",
            required=True,
            metavar="URL",
            help="the config repo: a path, file://, https or ssh URL (required)",
        )
        parser.add_argument(
            "--path",
            required=True,
            metavar="PATH",
            help="the experiment's folder in the repo, e.g. experiments/digits (required)",
        )
        parser.add_argument(
            "--branch",
            default=DEFAULT_BRANCH,
            metavar="NAME",
            help=f"the target branch (default: {DEFAULT_BRANCH})",
        )
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        help="where to keep the clone (default: a cache directory per repo and branch, "
        "under $XDG_CACHE_HOME/fl-gitops/repos or ~/.cache/fl-gitops/repos)",
    )


def add_hub_arguments(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    """``--kubeconfig``, ``--context``, ``--local-hub`` (and ``--no-hub`` when optional)."""
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help=f"the hub's kubeconfig file (default: ${KUBECONFIG_ENV}, else the pod's "
        "service account in a cluster, else $KUBECONFIG or ~/.kube/config"
        + ("; with none of them, no hub is read)" if optional else ")"),
    )
    parser.add_argument(
        "--context",
        metavar="NAME",
        help="the kubeconfig context to use (default: the kubeconfig's current context)",
    )
    parser.add_argument(
        "--local-hub",
        metavar="DIR",
        help="a local hub's directory instead of Kubernetes, e.g. a simulation's "
        f"<workdir>/hub (default: ${LOCAL_HUB_ENV}, else none)",
    )
    if optional:
        parser.add_argument(
            "--no-hub",
            action="store_true",
            help="read Git and the store only, never the hub (default: read the hub)",
        )


def resolve_target(args: argparse.Namespace, *, quiet: bool = False) -> None:
    """Fill in ``--repo``, ``--branch`` and ``--path`` a user left out.

    In order: the flag, the environment (``FL_GITOPS_REPO``, ``FL_GITOPS_BRANCH``,
    ``FL_GITOPS_PATH``), then the git work tree the cwd is in. ``args.path`` stays None when
    neither names it: :func:`locate_experiment` then takes the repo's only experiment. A
    discovered repo is said on stderr (unless ``quiet``), with what it does not see.

    Raises:
        InputError: no ``--repo`` given and the cwd is in no git work tree.
    """
    from fl_gitops.commands._discover import discover_work_tree, experiment_under

    args.repo_shown = None
    args.from_env = from_env = {}
    if hasattr(args, "local_hub"):
        # a hub flag the user typed outranks either environment default
        typed = args.kubeconfig or args.context or args.local_hub
        if not typed and os.environ.get(LOCAL_HUB_ENV):
            args.local_hub = os.environ[LOCAL_HUB_ENV]
            from_env["local_hub"] = LOCAL_HUB_ENV
        elif not typed and os.environ.get(KUBECONFIG_ENV):
            args.kubeconfig = os.environ[KUBECONFIG_ENV]
            from_env["kubeconfig"] = KUBECONFIG_ENV
    for dest, variable in (("path", PATH_ENV), ("repo", REPO_ENV), ("branch", BRANCH_ENV)):
        if getattr(args, dest) is None and os.environ.get(variable):
            setattr(args, dest, os.environ[variable])
            from_env[dest] = variable
    if args.repo is not None:
        args.branch = args.branch or DEFAULT_BRANCH
        return
    try:
        cwd = Path.cwd()
    except OSError:  # the folder the shell stands in was removed
        raise InputError(
            f"--repo: not given, ${REPO_ENV} is not set and the current directory is gone; "
            "expected --repo URL (a path, file://, https or ssh) or to run inside a clone"
        ) from None
    tree = discover_work_tree(cwd)
    if tree is None:
        raise InputError(
            f"--repo: not given, ${REPO_ENV} is not set and {cwd} is in no git work tree; "
            "expected --repo URL (a path, file://, https or ssh) or to run inside a clone"
        )
    args.repo = tree.url
    args.branch = args.branch or tree.branch or DEFAULT_BRANCH
    if tree.upstream:
        args.repo_shown = _shown_url(tree.url, f"the upstream of {tree.top}")
        where = f"{args.repo_shown}, the upstream of the work tree {tree.top}"
        unseen = "uncommitted or unpushed changes are not seen"
    else:
        where = f"the work tree {tree.top} (it has no upstream)"
        unseen = "uncommitted changes are not seen"
    if args.path is None:
        args.path = experiment_under(tree.top, cwd)
    if not quiet:
        print(f"repo: {where}, branch {args.branch}; {unseen}", file=sys.stderr)


def named(args: argparse.Namespace, dest: str) -> str:
    """How a message names where a value came from: its flag, or the variable that set it."""
    variable = getattr(args, "from_env", {}).get(dest)
    return f"${variable}" if variable else f"--{dest.replace('_', '-')}"


def _shown_url(url: str, instead: str) -> str:
    """A URL read from a repo's config as a message may show it: no password, no oddities."""
    from fl_gitops.gitops import redact

    text = redact(url)
    return text if _SHOWN_URL_RE.fullmatch(text) else instead


def shown_repo(args: argparse.Namespace) -> str:
    """``--repo`` as messages show it (a discovered URL redacted, or said in words)."""
    return str(getattr(args, "repo_shown", None) or args.repo)


def _default_workdir(url: str, branch: str) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(f"{url}#{branch}".encode()).hexdigest()[:16]
    return cache / "fl-gitops" / "repos" / key


def console() -> Any:
    """The text console of :mod:`fl_gitops.commands._output` (plain to a pipe)."""
    from fl_gitops.commands._output import console as _console

    return _console()


def _check_local_repo(url: str, shown: str | None = None, flag: str = "--repo") -> None:
    """A local ``--repo`` must be a directory git can read, said before git says it worse."""
    shown = shown or url
    if "://" in url and not url.startswith("file://"):
        return
    text = url.removeprefix("file://")
    if not url.startswith("file://") and ":" in text and not text.startswith(("/", ".", "~")):
        return  # scp-like user@host:path
    local = Path(text).expanduser()
    if not local.exists():
        raise InputError(f"{flag} {shown}: no such directory; expected a git repo (path or URL)")
    if not local.is_dir():
        raise InputError(f"{flag} {shown}: not a directory; expected a git repo (path or URL)")
    if not ((local / "HEAD").is_file() or (local / ".git").exists()):
        raise InputError(f"{flag} {shown}: not a git repository (no .git, not a bare repo)")


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

    _check_local_repo(args.repo, shown_repo(args), named(args, "repo"))
    workdir = Path(args.workdir) if args.workdir else _default_workdir(args.repo, args.branch)
    credentials = Credentials.from_environment(os.environ)
    try:
        return ConfigRepo.open(
            args.repo, branch=args.branch, workdir=workdir, credentials=credentials, **options
        )
    except GitError as exc:
        # gitops has already redacted credentials from the text
        raise InputError(
            f"{named(args, 'repo')} {shown_repo(args)} (branch {args.branch}): "
            f"cannot be read: {exc}"
        ) from None


def experiment_path(args: argparse.Namespace) -> str:
    """``--path`` as a folder inside the repo: relative, no ``..``, no empty name.

    Raises:
        InputError: a path that would leave the repo or names nothing.
    """
    if args.path is None:
        raise InputError("--path: not given; expected the experiment's folder in the repo")
    text = str(args.path).strip().strip("/")
    parts = PurePosixPath(text).parts if text else ()
    if not parts or any(part in ("..", ".") for part in parts):
        raise InputError(
            f"{named(args, 'path')} {args.path!r}: expected a folder inside the repo, "
            "e.g. experiments/digits"
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
    where = (
        f"{named(args, 'path')} {path}: no experiment ({BLUEPRINT_FILE}) in "
        f"{shown_repo(args)} ({args.branch})"
    )
    if not found and not more:
        raise InputError(f"{where}; the repo holds no experiment")
    listed = ", ".join(found)
    if more:
        listed += f"{', ' if found else ''}and {more} more"
    raise InputError(f"{where}; the repo holds: {listed}")


def locate_experiment(repo: Any, args: argparse.Namespace) -> tuple[str, Path]:
    """The experiment's path in the repo and its folder in the clone.

    ``--path`` (or ``FL_GITOPS_PATH``, or the folder the cwd is in) when one was named;
    else the only experiment the checked-out repo holds.

    Raises:
        InputError: the path named holds no experiment, or none was named and the repo
            holds none or several (listed, with ``--path`` named).
    """
    if args.path is not None:
        path = experiment_path(args)
        return path, require_experiment(repo, path, args)
    found, more = list_experiments(Path(repo.root))
    if len(found) == 1 and not more:
        args.path = found[0]
        return found[0], Path(repo.root) / found[0]
    where = f"{shown_repo(args)} ({args.branch})"
    if not found and not more:
        raise InputError(f"--path: not given, and {where} holds no experiment ({BLUEPRINT_FILE})")
    listed = ", ".join(found)
    if more:
        listed += f"{', ' if found else ''}and {more} more"
    raise InputError(
        f"--path: not given, and {where} holds {len(found) + more} experiments: {listed}; "
        "name one with --path, or run the command inside its folder"
    )


def hub_configured(args: argparse.Namespace) -> bool:
    """Whether a hub was named or can be found where the Kubernetes client looks.

    Named: ``--kubeconfig``, ``--context`` or ``--local-hub`` (or their environment
    defaults). Found: a pod's service account (``KUBERNETES_SERVICE_HOST``), ``$KUBECONFIG``
    or ``~/.kube/config``. Without any, ``status`` reports what Git and the store know.
    """
    if args.kubeconfig or args.context or args.local_hub:
        return True
    if os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get("KUBECONFIG"):
        return True
    return (Path.home() / ".kube" / "config").exists()


def open_hub(args: argparse.Namespace) -> Any:
    """The hub named on the command line, or None with --no-hub.

    Raises:
        InputError: a ``--kubeconfig`` (or ``--context``) that cannot be used, naming it.
    """
    if getattr(args, "no_hub", False):
        return None
    if args.local_hub:
        from fl_gitops.hub import LocalHub

        return LocalHub(Path(args.local_hub))
    import yaml

    from fl_gitops.hub import HubConfigError, KubernetesHub

    flag = named(args, "kubeconfig")
    if args.kubeconfig:
        file = Path(args.kubeconfig)
        if not file.exists():
            raise InputError(f"{flag} {args.kubeconfig}: no such file; expected a kubeconfig")
        if not file.is_file():
            raise InputError(f"{flag} {args.kubeconfig}: not a file; expected a kubeconfig")
    try:
        return KubernetesHub.from_config(kubeconfig=args.kubeconfig, context=args.context)
    except yaml.YAMLError as exc:
        # the client parses the file itself and lets YAML's error through; its text quotes
        # the file, so only the place is said
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        where = f"{flag} {args.kubeconfig}" if args.kubeconfig else "the default kubeconfig"
        raise InputError(f"{where}: not valid YAML{at}; expected a kubeconfig") from None
    except (AttributeError, KeyError) as exc:
        where = f"{flag} {args.kubeconfig}" if args.kubeconfig else "the default kubeconfig"
        raise InputError(f"{where}: not a kubeconfig ({type(exc).__name__})") from None
    except HubConfigError as exc:
        if args.kubeconfig:
            raise InputError(f"{flag} {args.kubeconfig}: {exc}") from None
        if args.context:
            raise InputError(f"--context {args.context}: {exc}") from None
        raise


def parse_interval(text: str) -> float:
    """Seconds in an interval such as 30s, 2m or 45."""
    from fl_gitops.blueprint import parse_duration

    if text.isdigit():
        return float(text)
    seconds = parse_duration(text)
    if seconds <= 0:
        raise InputError(f"--interval: expected a duration such as 30s or 2m, got {text!r}")
    return seconds
