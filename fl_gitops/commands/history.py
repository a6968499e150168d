"""`fl-gitops history`: the experiment's rounds from the Git log, as a table or a plot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fl_gitops.commands._common import add_repo_arguments, open_repo

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_arguments(parser)
    parser.add_argument("--plot", metavar="PNG", help="also draw accuracy and loss per round")
    parser.add_argument("--json", action="store_true", help="rows as JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fl_gitops.history import plot_rounds, round_rows, rounds_table

    repo = open_repo(args)
    rows = round_rows(repo, args.path.strip("/"))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "round": r.round,
                        "commit": r.commit,
                        "model": r.model,
                        "accuracy": r.accuracy,
                        "loss": r.loss,
                        "contributors": r.contributors,
                        "rejected": r.rejected,
                        "seconds": r.seconds,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
    else:
        Console().print(rounds_table(rows, title=args.path))
    if args.plot:
        plot_rounds(rows, Path(args.plot), title=args.path)
        print(f"plot: {args.plot}")
    return 0
