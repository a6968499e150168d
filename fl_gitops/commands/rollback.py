"""`fl-gitops rollback --to-round N`: a new commit that puts the experiment back at round N."""

from __future__ import annotations

import argparse

from fl_gitops.commands._common import (
    add_repo_arguments,
    experiment_path,
    open_repo,
    require_experiment,
)
from fl_gitops.errors import InputError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_arguments(parser)
    parser.add_argument("--to-round", type=int, required=True, metavar="N")


def run(args: argparse.Namespace) -> int:
    from fl_gitops.reconcile import rollback

    if args.to_round < 1:
        raise InputError(f"--to-round: expected a round >= 1, got {args.to_round}")
    path = experiment_path(args)
    repo = open_repo(args)
    require_experiment(repo, path, args)
    result = rollback(repo, path, args.to_round)
    print(f"rolled back to round {args.to_round}: {result.branch} {result.commit}")
    return 0
