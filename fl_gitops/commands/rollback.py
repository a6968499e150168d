"""`fl-gitops rollback --to-round N`: a new commit that puts the experiment back at round N.

Inside a clone, the commit goes to the clone's upstream (the repo the hub syncs), never
into the clone itself: see :mod:`fl_gitops.commands._discover`.
"""

from __future__ import annotations

import argparse

from fl_gitops.commands._common import (
    add_repo_arguments,
    locate_experiment,
    open_repo,
    resolve_target,
)
from fl_gitops.errors import InputError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_arguments(parser, discover=True)
    parser.add_argument(
        "--to-round",
        type=int,
        required=True,
        metavar="N",
        help="the round to restart from, a round number >= 1 that has started (required)",
    )


def run(args: argparse.Namespace) -> int:
    from fl_gitops.reconcile import rollback

    if args.to_round < 1:
        raise InputError(f"--to-round: expected a round >= 1, got {args.to_round}")
    resolve_target(args)
    repo = open_repo(args)
    path, _ = locate_experiment(repo, args)
    result = rollback(repo, path, args.to_round)
    print(f"rolled back to round {args.to_round}: {result.branch} {result.commit}")
    return 0
