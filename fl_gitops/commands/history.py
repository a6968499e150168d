"""`fl-gitops history`: the experiment's rounds from the Git log, as a table or a plot.

``-o json``/``-o yaml`` print one document (:func:`history_document`); ``-q`` prints one
line per round, ``<round> <model digest>``. The old ``--json`` (hidden) still prints the
bare list of rounds it always did, so scripts written against it keep working.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fl_gitops.commands._common import (
    add_repo_arguments,
    console,
    locate_experiment,
    open_repo,
    resolve_target,
)
from fl_gitops.commands._output import add_output_arguments, emit
from fl_gitops.errors import InputError

if TYPE_CHECKING:
    from fl_gitops.history import RoundRow

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_arguments(parser, discover=True)
    parser.add_argument(
        "--plot",
        metavar="PNG",
        help="also draw accuracy and loss (and epsilon, with DP) per round into this PNG file "
        "(default: no plot)",
    )
    add_output_arguments(parser)
    # The old spelling, kept for scripts: the bare list of rows it always printed (the
    # "rounds" of -o json), and its "plot:" line on stdout after it.
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)


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
    resolve_target(args, quiet=args.quiet)
    repo = open_repo(args)
    path, folder = locate_experiment(repo, args)
    rows = round_rows(repo, path)
    document = history_document(path, rows)
    if args.json:
        print(json.dumps(document["rounds"], indent=2))
    elif args.quiet and args.output == "text":
        for row in rows:
            print(f"{row.round} {row.model}")
    else:
        emit(args, document, lambda: console().print(rounds_table(rows, title=path)))
    # a note beside a document goes to stderr, so that stdout parses as the document
    note = sys.stdout if args.json or args.output == "text" else sys.stderr
    if plot is not None:
        if not rows:
            print("plot: none drawn, no round has been aggregated yet", file=note)
            return 0
        try:
            plot_rounds(rows, plot, title=_experiment_name(folder, path))
        except ModuleNotFoundError as exc:
            raise InputError(f"--plot needs {exc.name}: pip install 'fl-gitops[train]'") from None
        except OSError as exc:
            raise InputError(f"--plot {args.plot}: cannot be written: {exc.strerror}") from None
        print(f"plot: {args.plot}", file=note)
    return 0


def history_document(path: str, rows: list[RoundRow]) -> dict[str, Any]:
    """The rounds as the document ``-o json`` prints (docs/cli.md): the table's facts.

    Keys, in order: experiment (its path in the repo), rounds: ``[{round, commit,
    committed_at, model, accuracy, loss, held_out, contributors, rejected, seconds,
    epsilon, delta, metrics, rejected_reasons}]``, oldest first; ``epsilon`` is the DP
    budget spent after the round at ``delta`` (both None without DP).
    """
    return {
        "experiment": path,
        "rounds": [
            {
                "round": r.round,
                "commit": r.commit,
                "committed_at": r.committed_at.isoformat() if r.committed_at else None,
                "model": r.model,
                "accuracy": r.accuracy,
                "loss": r.loss,
                "held_out": r.held_out,
                "contributors": r.contributors,
                "rejected": r.rejected,
                "seconds": r.seconds,
                "epsilon": r.epsilon,
                "delta": r.delta,
                "metrics": {k: r.metrics[k] for k in sorted(r.metrics)},
                "rejected_reasons": {k: r.rejected_reasons[k] for k in sorted(r.rejected_reasons)},
            }
            for r in rows
        ],
    }


def _experiment_name(folder: Path, path: str) -> str:
    """The experiment's name for the plot's title (its blueprint's ``metadata.name``), or
    its path when the blueprint does not load: the plot of a history never fails on it."""
    from fl_gitops.blueprint import load_blueprint
    from fl_gitops.errors import FlGitopsError

    try:
        return load_blueprint(folder / "blueprint.yaml").name
    except (FlGitopsError, OSError):
        return path
