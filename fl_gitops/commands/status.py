"""`fl-gitops status`: where an experiment stands: round, each cluster's Job, last metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from fl_gitops.commands._common import (
    add_hub_arguments,
    add_repo_arguments,
    console,
    experiment_path,
    open_hub,
    open_repo,
    require_experiment,
)
from fl_gitops.errors import InputError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_arguments(parser)
    add_hub_arguments(parser, optional=True)


def run(args: argparse.Namespace) -> int:
    import yaml
    from rich.table import Table

    from fl_gitops.blueprint import load_blueprint
    from fl_gitops.history import round_rows
    from fl_gitops.render import Layout, Names, read_round_state

    path = experiment_path(args)
    if args.local_hub and not Path(args.local_hub).is_dir():
        # a hub that is not there would read as one where no cluster has started
        raise InputError(f"--local-hub {args.local_hub}: no such directory (a local hub's dir)")
    repo = open_repo(args)
    exp_dir = require_experiment(repo, path, args)
    layout = Layout()
    blueprint = load_blueprint(exp_dir / layout.blueprint)
    state = read_round_state(exp_dir)
    out = console()
    if state is None:
        out.print(f"{blueprint.name}: not started (no round state yet)")
        return 0
    out.print(
        f"[bold]{blueprint.name}[/bold]: {state.phase}, round {state.round} of "
        f"{blueprint.rounds} (attempt {state.attempt}); model {state.model_digest[:19]}"
    )
    if state.message:
        out.print(f"  {state.message}")
    roster_file = exp_dir / layout.roster
    roster = []
    if roster_file.is_file():
        roster = list(yaml.safe_load(roster_file.read_text()).get("clusters") or [])
    hub = open_hub(args)
    if roster and state.phase == "Running":
        table = Table(title=f"round {state.round}: {len(roster)} clusters")
        table.add_column("cluster")
        table.add_column("state")
        table.add_column("detail")
        if hub is None:
            for cluster in roster:
                table.add_row(cluster, "-", "not read (--no-hub)")
        else:
            names = Names(blueprint.name, blueprint.namespace, state.round, state.attempt)
            statuses = hub.job_statuses(
                work_name=names.work, job_name=names.job, clusters=roster, experiment=blueprint.name
            )
            for cluster in roster:
                status = statuses[cluster]
                table.add_row(cluster, str(status.state.value), status.reason)
        out.print(table)
    rows = round_rows(repo, path)
    if rows:
        last = rows[-1]
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(last.metrics.items()))
        out.print(
            f"last aggregated: round {last.round}, {last.contributors} contributors, "
            f"{last.rejected} rejected; {metrics}"
        )
    return 0
