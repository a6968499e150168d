"""`fl-gitops verify`: audit an experiment from its Git history and its model store alone."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from fl_gitops.commands._common import add_repo_arguments, open_repo
from fl_gitops.errors import GitError, InputError, StoreError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_arguments(parser)
    parser.add_argument(
        "--store", metavar="URI", help="the model store (default: the blueprint's at the tip)"
    )
    parser.add_argument(
        "--allowed-signers",
        metavar="FILE",
        help="an SSH allowed_signers file; every round commit must be signed by a key in it "
        "(without it, signatures are not checked, and the report says so)",
    )
    parser.add_argument(
        "--reaggregate",
        action="store_true",
        help="also recompute every round's model from its stored updates, bit for bit",
    )
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="text or json"
    )


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
    if args.output == "json":
        print(json.dumps(report_json(report), indent=2))
    else:
        print("\n".join(report_lines(report)))
    return 0 if report.ok else 1


def _signers_beside(repo: str) -> str | None:
    """An ``allowed_signers`` file beside a local repo (where ``simulate`` leaves its own)."""
    if "://" in repo and not repo.startswith("file://"):
        return None
    local = Path(repo.removeprefix("file://"))
    beside = local.parent / "allowed_signers"
    return str(beside) if local.is_dir() and beside.is_file() else None
