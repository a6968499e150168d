"""`fl-gitops history`: the experiment's rounds from the Git log, as a table or a plot."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from fl_gitops.commands._common import (
    add_repo_arguments,
    console,
    experiment_path,
    open_repo,
    require_experiment,
)
from fl_gitops.errors import InputError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_arguments(parser)
    parser.add_argument("--plot", metavar="PNG", help="also draw accuracy and loss per round")
    parser.add_argument("--json", action="store_true", help="rows as JSON instead of a table")


def _check_plot_path(text: str) -> Path:
    """Refuse a ``--plot`` file that cannot be written before the repo is even cloned."""
    out = Path(text)
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise InputError(f"--plot {text}: is a directory; expected a PNG file to write")
    if not parent.is_dir():
        raise InputError(f"--plot {text}: no such directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise InputError(f"--plot {text}: cannot be written (permission denied)")
    return out


def run(args: argparse.Namespace) -> int:

    from fl_gitops.history import plot_rounds, round_rows, rounds_table

    plot = _check_plot_path(args.plot) if args.plot else None
    path = experiment_path(args)
    repo = open_repo(args)
    require_experiment(repo, path, args)
    rows = round_rows(repo, path)
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
        console().print(rounds_table(rows, title=path))
    if plot is not None:
        if not rows:
            print("plot: none drawn, no round has been aggregated yet")
            return 0
        try:
            plot_rounds(rows, plot, title=path)
        except ModuleNotFoundError as exc:
            raise InputError(f"--plot needs {exc.name}: pip install 'fl-gitops[train]'") from None
        except OSError as exc:
            raise InputError(f"--plot {args.plot}: cannot be written: {exc.strerror}") from None
        print(f"plot: {args.plot}")
    return 0
