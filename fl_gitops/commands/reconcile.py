"""`fl-gitops reconcile`: the hub job, one pass (`--once`) or a loop (`--watch`).

The CronJob runs `--once` on a schedule; `--watch` is for running it by hand. Each pass
starts from the remote tip, so a pass that died leaves nothing to clean up. With a
signing key (`--signing-key`, or the mounted Secret the CronJob names in
`FL_GIT_SIGNING_KEY_FILE`) every commit the pass makes is signed. Every fetch and push is
bounded by `--git-timeout`; SIGTERM (the Job's `activeDeadlineSeconds`, a node drain) ends
the pass as Ctrl-C does, through its `finally` blocks, so no key copy outlives it.
Inside a clone `--repo` and `--path` may be left out (commands/_discover.py): the pass
then commits to the clone's upstream, the repo the hub syncs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, assert_never

from fl_gitops.commands._common import (
    add_hub_arguments,
    add_repo_arguments,
    locate_experiment,
    open_hub,
    open_repo,
    parse_interval,
    resolve_target,
)
from fl_gitops.commands._interrupt import terminate_once
from fl_gitops.errors import FlGitopsError, InputError

if TYPE_CHECKING:
    from fl_gitops.reconcile import Action

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_arguments(parser, discover=True)
    add_hub_arguments(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--once", action="store_true", help="one pass, then exit (default: on, unless --watch)"
    )
    mode.add_argument(
        "--watch",
        action="store_true",
        help="pass after pass, until Ctrl-C; on a Kubernetes hub, a change to a work wakes "
        "it (default: off)",
    )
    parser.add_argument(
        "--interval",
        default="30s",
        metavar="DURATION",
        help="longest pause between passes with --watch: seconds, or a duration such as "
        "30s or 2m (default: 30s)",
    )
    parser.add_argument(
        "--signing-key",
        metavar="FILE",
        help="sign every commit with this SSH private key file (default: "
        "$FL_GIT_SIGNING_KEY_FILE, else unsigned)",
    )
    parser.add_argument(
        "--git-timeout",
        default="120s",
        metavar="DURATION",
        help="longest one fetch or push may take before it is stopped: seconds, or a "
        "duration such as 90s or 2m (default: 120s)",
    )


def _open_repo(args: argparse.Namespace, git_timeout: float) -> Any:
    """The config repo, with the signing key and the network bound of this command."""
    from fl_gitops.gitops import SigningKey

    key: SigningKey | None
    if args.signing_key:
        key = SigningKey.from_file(args.signing_key)
    else:
        key = SigningKey.from_environment(os.environ)
    # a --repo that cannot be read is the user's to fix (exit 2), as for every command
    return open_repo(args, signing_key=key, network_timeout=git_timeout)


def _action_name(action: Action) -> str:
    """The word a pass's line starts with: the action it carried out."""
    from fl_gitops.reconcile import Aggregate, Finish, RetryRound, StartRound, Wait

    match action:
        case StartRound():
            return "StartRound"
        case Aggregate():
            return "Aggregate"
        case RetryRound():
            return "RetryRound"
        case Finish():
            return "Finish"
        case Wait():
            return "Wait"
        case _:
            assert_never(action)


def _one_pass(repo: object, hub: object, path: str) -> bool:
    """One pass, printed on one line; True when it pushed a new commit."""
    from fl_gitops.reconcile import reconcile_once

    result = reconcile_once(repo, hub, path=path, now=datetime.now(UTC))  # type: ignore[arg-type]
    line = f"{_action_name(result.action)}: {result.message}"
    if result.publish is not None and result.publish.commit:
        pushed = "pushed" if result.publish.pushed else "already there"
        line += f" [{result.publish.branch} {result.publish.commit[:12]}, {pushed}]"
        if result.publish.pull_request_url:
            line += f" {result.publish.pull_request_url}"
    print(line, flush=True)
    return bool(result.publish is not None and result.publish.commit and result.publish.pushed)


def run(args: argparse.Namespace) -> int:
    interval = parse_interval(args.interval)
    git_timeout = parse_interval(args.git_timeout)
    # SIGTERM ends the pass like Ctrl-C: ``finally`` blocks run, exit 143.
    with terminate_once():
        resolve_target(args)
        repo = _open_repo(args, git_timeout)
        try:
            locate_experiment(repo, args)  # the path named, or the repo's only experiment
            return _run(args, repo, interval)
        finally:
            repo.close()


def _run(args: argparse.Namespace, repo: Any, interval: float) -> int:
    hub = open_hub(args)
    if not args.watch:
        _one_pass(repo, hub, args.path)
        return 0
    from fl_gitops.hub import ChangeWatcher

    while True:
        try:
            if _one_pass(repo, hub, args.path):
                # A commit changes what the hub will hold (a new roster, new works) and so
                # what is worth watching: the next pass reads it and watches that.
                continue
        except InputError:
            raise
        except FlGitopsError as exc:  # the hub, Git or the store: try again next pass
            print(f"warning: pass failed, retrying in {interval:.0f}s: {exc}", file=sys.stderr)
        # Between passes the clone is free for a pass run by hand on the same --workdir.
        with repo.idle():
            if isinstance(hub, ChangeWatcher):
                # a real hub wakes the next pass when a work's status changes; the interval
                # stays the longest wait, for what no watch sees (Git, the store, the clock)
                hub.wait_for_change(interval)
            else:
                time.sleep(interval)
