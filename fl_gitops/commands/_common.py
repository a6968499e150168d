"""Arguments and objects the hub-side commands share: the config repo and the hub."""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import Any

from fl_gitops.errors import InputError

__all__ = [
    "add_hub_arguments",
    "add_repo_arguments",
    "open_hub",
    "open_repo",
    "parse_interval",
]


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


def open_repo(args: argparse.Namespace) -> Any:
    """Clone or fetch the config repo named on the command line."""
    from fl_gitops.gitops import ConfigRepo, Credentials

    workdir = Path(args.workdir) if args.workdir else _default_workdir(args.repo, args.branch)
    credentials = Credentials.from_environment(os.environ)
    return ConfigRepo.open(args.repo, branch=args.branch, workdir=workdir, credentials=credentials)


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
