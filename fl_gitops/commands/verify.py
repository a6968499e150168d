"""`fl-gitops verify`: audit an experiment from its Git history and its model store alone.

Reports through the shared output contract (``commands/_output``): ``-o json|yaml`` print the
audit's one document (``audit.report_json``, keys in docs/cli.md), ``-q`` only the problems
and the verdict; the exit code is 1 when any check fails, whatever the format.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fl_gitops.commands._common import add_repo_arguments, open_repo
from fl_gitops.commands._output import add_output_arguments, emit
from fl_gitops.errors import GitError, InputError, StoreError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_arguments(parser)
    parser.add_argument(
        "--store",
        metavar="URI",
        help="the model store's URI, e.g. file:///srv/store or s3://bucket/prefix (default: "
        "the store the blueprint names at the branch's tip)",
    )
    parser.add_argument(
        "--allowed-signers",
        metavar="FILE",
        help="an SSH allowed_signers file (ssh-keygen's format); every round commit must be "
        "signed by a key in it (default: none, and then signatures are not checked and the "
        "report says so)",
    )
    parser.add_argument(
        "--reaggregate",
        action="store_true",
        help="also recompute every round's model from its stored updates, bit for bit "
        "(default: off; reads every update once)",
    )
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from fl_gitops.audit import report_json, report_lines, verify_experiment
    from fl_gitops.gitops import HistoryReader
    from fl_gitops.store import ModelStore

    signers = Path(args.allowed_signers) if args.allowed_signers else None
    if signers is not None and not signers.is_file():
        raise InputError(f"--allowed-signers {signers}: expected an allowed_signers file")
    try:
        repo = open_repo(args)
    except GitError as exc:
        raise InputError(f"--repo: cannot be read: {exc}") from None
    history = HistoryReader(repo.root, allowed_signers=signers)

    def open_store(uri: str) -> ModelStore:
        try:
            return ModelStore.from_env(uri, os.environ)
        except StoreError as exc:
            raise InputError(f"--store: cannot be opened: {exc}") from None

    report = verify_experiment(
        history,
        args.path,
        open_store=open_store,
        store_uri=args.store,
        allowed_signers=str(signers) if signers is not None else None,
        reaggregate_rounds=args.reaggregate,
    )
    if signers is None:
        report.signers_hint = _signers_beside(args.repo)

    def text() -> None:
        lines = report_lines(report)
        if args.quiet:  # what a script reads: the problems and the verdict
            lines = [line for line in lines if line.startswith("  problem  ")] + lines[-1:]
        print("\n".join(lines))

    emit(args, report_json(report), text)
    return 0 if report.ok else 1


def _signers_beside(repo: str) -> str | None:
    """An ``allowed_signers`` file beside a local repo (where ``simulate`` leaves its own)."""
    if "://" in repo and not repo.startswith("file://"):
        return None
    local = Path(repo.removeprefix("file://"))
    beside = local.parent / "allowed_signers"
    return str(beside) if local.is_dir() and beside.is_file() else None
