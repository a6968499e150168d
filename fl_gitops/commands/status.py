"""`fl-gitops status`: where an experiment stands: round, each cluster's Job, last metrics.

Git says the round, its state and the placed clusters (the round's roster file), the
round records say the last metrics, and the hub says how each cluster's Job is doing. A
hub is optional: with none named (no ``--kubeconfig``, ``--context``, ``--local-hub``, no
pod service account, no ``$KUBECONFIG`` or ``~/.kube/config``) status reports what Git and
the store know, and says how to point it at a hub, instead of failing on a kubeconfig the
user never meant to use. One that is named and broken stays an error (exit 2).

``-o json``/``-o yaml`` print one document with the keys of :func:`status_document`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from fl_gitops.commands._common import (
    add_hub_arguments,
    add_repo_arguments,
    console,
    hub_configured,
    locate_experiment,
    named,
    open_hub,
    open_repo,
    resolve_target,
    shown_repo,
)
from fl_gitops.commands._output import add_output_arguments, emit
from fl_gitops.errors import FlGitopsError, InputError

__all__ = ["HUB_HINT", "add_arguments", "run"]

HUB_HINT = (
    "no hub read: point status at one with --kubeconfig FILE (and --context NAME), or "
    "--local-hub DIR for a simulation (its <workdir>/hub, e.g. fl-sim/hub)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_arguments(parser, discover=True)
    add_hub_arguments(parser, optional=True)
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    resolve_target(args, quiet=args.quiet)
    if args.local_hub and not Path(args.local_hub).is_dir():
        # a hub that is not there would read as one where no cluster has started
        raise InputError(
            f"{named(args, 'local_hub')} {args.local_hub}: no such directory (a local hub's dir)"
        )
    hub, hub_kind = _hub(args)
    repo = open_repo(args)
    path, exp_dir = locate_experiment(repo, args)
    doc = status_document(args, repo, path, exp_dir, hub, hub_kind)
    emit(args, doc, lambda: _print_text(args, doc))
    return 0


def _hub(args: argparse.Namespace) -> tuple[Any, str]:
    """The hub to read and its kind (``kubernetes``, ``local`` or ``none``)."""
    if args.no_hub or not hub_configured(args):
        return None, "none"
    return open_hub(args), "local" if args.local_hub else "kubernetes"


def status_document(
    args: argparse.Namespace, repo: Any, path: str, exp_dir: Path, hub: Any, hub_kind: str
) -> dict[str, Any]:
    """Where the experiment stands, as the document ``-o json`` prints (docs/cli.md).

    Keys, in order: experiment, path, repo, branch, state (a round-state phase, or
    ``NotStarted``), round, rounds, attempt, model, message, clusters (``[{name, state,
    reason}]``), aggregation (the round's shards' Job when ``spec.aggregation.shards`` > 1:
    ``{job, shards, done, active, complete, failed, reason}``, or null), metrics (the last
    aggregated round: ``{round, contributors, rejected, accuracy, loss, held_out,
    values}``, or null), hub (``{kind, read, hint}``).
    """
    import yaml

    from fl_gitops.blueprint import load_blueprint
    from fl_gitops.history import round_rows
    from fl_gitops.render import Layout, Names, read_round_state

    layout = Layout()
    blueprint = load_blueprint(exp_dir / layout.blueprint)
    state = read_round_state(exp_dir)
    roster: list[str] = []
    roster_file = exp_dir / layout.roster
    if state is not None and roster_file.is_file():
        loaded = yaml.safe_load(roster_file.read_text(encoding="utf-8")) or {}
        if isinstance(loaded, dict):
            roster = [str(c) for c in loaded.get("clusters") or []]
    clusters: list[dict[str, Any]] = []
    read = False
    if state is not None and state.phase == "Running" and roster:
        if hub is not None:
            names = Names(
                blueprint.name, blueprint.namespace, state.round, state.attempt, state.step
            )
            statuses = hub.job_statuses(
                work_name=names.work, job_name=names.job, clusters=roster, experiment=blueprint.name
            )
            read = True
            clusters = [
                {
                    "name": c,
                    "state": str(statuses[c].state.value),
                    "reason": statuses[c].reason,
                }
                for c in roster
            ]
        else:
            stored = _stored_updates(blueprint.store.uri, state.round)
            why = "not read (--no-hub)" if args.no_hub else "no hub read"
            clusters = [
                {
                    "name": c,
                    "state": "Unknown",
                    "reason": f"{why}; "
                    + (
                        "its update is in the store"
                        if stored is not None and c in stored
                        else "no update in the store yet"
                        if stored is not None
                        else "the store was not read"
                    ),
                }
                for c in roster
            ]
    else:
        clusters = [{"name": c, "state": "-", "reason": ""} for c in roster]
    aggregation = None
    if state is not None and state.phase == "Running" and hub is not None:
        aggregation = _shards(hub, blueprint, state)
    rows = round_rows(repo, path)
    metrics = None
    if rows:
        last = rows[-1]
        metrics = {
            "round": last.round,
            "contributors": last.contributors,
            "rejected": last.rejected,
            "accuracy": last.accuracy,
            "loss": last.loss,
            "held_out": last.held_out,
            "values": {k: last.metrics[k] for k in sorted(last.metrics)},
        }
    return {
        "experiment": blueprint.name,
        "path": path,
        "repo": shown_repo(args),
        "branch": args.branch,
        "state": state.phase if state is not None else "NotStarted",
        "round": state.round if state is not None else None,
        "rounds": blueprint.rounds,
        "attempt": state.attempt if state is not None else None,
        "model": state.model_digest if state is not None else None,
        "message": (state.message or None) if state is not None else None,
        "clusters": clusters,
        "aggregation": aggregation,
        "metrics": metrics,
        "hub": {
            "kind": hub_kind,
            "read": read,
            "hint": None if hub_kind != "none" or args.no_hub else HUB_HINT,
        },
    }


def _shards(hub: Any, blueprint: Any, state: Any) -> dict[str, Any] | None:
    """The round's shards' Job (``spec.aggregation.shards`` > 1) as the hub has it, or None
    when there is none: how many shards are done and running, and its failure if it failed."""
    from fl_gitops.reconcile._sharded import shards_in_progress
    from fl_gitops.store import ModelStore

    try:
        found = shards_in_progress(
            hub, ModelStore.from_env(blueprint.store.uri, os.environ), blueprint, state
        )
    except (FlGitopsError, OSError, ValueError) as exc:
        print(f"warning: the shards' Job was not read: {exc}", file=sys.stderr)
        return None
    if found is None:
        return None
    spec, job = found
    return {
        "job": f"{spec.namespace}/{spec.name}",
        "shards": spec.shards,
        "done": len(job.succeeded),
        "active": job.active,
        "complete": job.complete,
        "failed": job.failed,
        "reason": job.reason or None,
    }


def _stored_updates(uri: str, round_: int) -> set[str] | None:
    """The clusters whose update for the round is in the store, or None when unreadable."""
    from fl_gitops.store import ModelStore

    try:
        return set(ModelStore.from_env(uri, os.environ).list_updates(round_))
    except (FlGitopsError, OSError, ValueError) as exc:
        print(f"warning: the store was not read: {exc}", file=sys.stderr)
        return None


def _print_text(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """The text report: a line on the round, a table of clusters, the last metrics."""
    from rich.markup import escape
    from rich.table import Table

    out = console()
    name = escape(doc["experiment"])
    if doc["state"] == "NotStarted":
        out.print(f"{name}: not started (no round state yet)")
    elif args.quiet:
        out.print(f"{name}: {doc['state']}, round {doc['round']} of {doc['rounds']}")
        return
    else:
        out.print(
            f"[bold]{name}[/bold]: {doc['state']}, round {doc['round']} of "
            f"{doc['rounds']} (attempt {doc['attempt']}); model "
            f"{doc['model'] if args.verbose else doc['model'][:19]}"
        )
        if doc["message"]:
            out.print(f"  {escape(doc['message'])}")
    if doc["clusters"] and doc["state"] == "Running" and not args.quiet:
        table = Table(title=f"round {doc['round']}: {len(doc['clusters'])} clusters")
        table.add_column("cluster")
        table.add_column("state")
        table.add_column("detail")
        for cluster in doc["clusters"]:
            table.add_row(cluster["name"], cluster["state"], escape(cluster["reason"]))
        out.print(table)
    shards = doc["aggregation"]
    if shards is not None and not args.quiet:
        how = (
            f"failed: {escape(shards['reason'] or 'the Job failed')}"
            if shards["failed"]
            else f"{shards['done']} of {shards['shards']} shards done, {shards['active']} running"
        )
        out.print(f"aggregating round {doc['round']} in {shards['shards']} shards: {how} "
                  f"(Job {escape(shards['job'])})")  # fmt: skip
    last = doc["metrics"]
    if last is not None and not args.quiet:
        measured = []
        if last["accuracy"] is not None:
            measured.append(f"accuracy {100 * last['accuracy']:.2f}%")
        if last["loss"] is not None:
            measured.append(f"loss {last['loss']:.4f}")
        if measured:
            data = "held-out data" if last["held_out"] else "the clusters' training data"
            measured[-1] += f" (on {data})"
        measured += [f"{k}={v:.4f}" for k, v in last["values"].items()]
        out.print(
            f"last aggregated: round {last['round']}, {last['contributors']} contributors, "
            f"{last['rejected']} rejected; {', '.join(measured)}"
        )
    if doc["hub"]["hint"] and not args.quiet:
        out.print(doc["hub"]["hint"])
    if args.verbose and not args.quiet:
        out.print(f"repo: {escape(doc['repo'])} ({doc['branch']}), path {escape(doc['path'])}")
