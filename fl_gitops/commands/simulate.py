"""`fl-gitops simulate`: run an experiment's whole loop on this machine, and show it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("blueprint", metavar="BLUEPRINT")
    parser.add_argument("--clusters", type=int, default=10, metavar="N", help="fleet size (10)")
    parser.add_argument("--rounds", type=int, metavar="R", help="override spec.rounds")
    parser.add_argument(
        "--workdir", default="fl-sim", metavar="DIR", help="run here; run again to resume (fl-sim)"
    )
    parser.add_argument("--inventory", metavar="INV", help="ManagedClusters instead of generated")
    parser.add_argument(
        "--fail-rate", type=float, default=0.0, help="each Job fails with this chance"
    )
    parser.add_argument(
        "--stragglers", type=int, default=0, metavar="K", help="K late clusters a round"
    )
    parser.add_argument(
        "--straggler-delay",
        help="with --stragglers: how late they are, in simulated time (60s)",
    )
    parser.add_argument(
        "--byzantine", type=int, default=0, metavar="K", help="K poisoning clusters"
    )
    parser.add_argument(
        "--byzantine-kind", default="signflip", choices=["signflip", "scale"], help="the attack"
    )
    parser.add_argument(
        "--byzantine-factor", type=float, help="with --byzantine: the attack's factor (10)"
    )
    parser.add_argument(
        "--tamper-store",
        type=int,
        default=0,
        metavar="K",
        help="after K clusters report in a round, replace their updates in the store (with "
        "matching metadata), as a party with write access to the bucket would; the hub's "
        "reports must reject them",
    )
    parser.add_argument(
        "--centralized", action="store_true", help="also train centrally, for comparison"
    )
    parser.add_argument(
        "--jobs", type=int, metavar="N", help="parallel Jobs, at least 1 (default: cores)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--hub",
        default="local",
        choices=["local", "kubernetes"],
        help="local: an in-memory hub (the default); kubernetes: a real API server, read "
        "through the same client the reconcile job uses (see `fl-gitops dev-hub`)",
    )
    parser.add_argument(
        "--kubeconfig", metavar="FILE", help="with --hub kubernetes: the API server to use"
    )
    parser.add_argument("--context", help="with --hub kubernetes: the kubeconfig context")


def _refuse_ignored_flags(args: argparse.Namespace) -> None:
    """A flag that would do nothing, or a value the run cannot use, is refused by the name
    the user typed, before anything is made: a silent no-op hides a mistaken experiment.

    Raises:
        InputError: which flag, and what it needs.
    """
    from fl_gitops.errors import InputError

    if args.straggler_delay is not None and not args.stragglers:
        raise InputError("--straggler-delay: only used with --stragglers K (K >= 1)")
    if args.byzantine_factor is not None and not args.byzantine:
        raise InputError("--byzantine-factor: only used with --byzantine K (K >= 1)")
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs: expected at least 1, got {args.jobs}")


def _straggler_delay(text: str | None) -> float:
    """--straggler-delay's seconds (60 when not given), its errors named by that flag."""
    from fl_gitops.commands._common import parse_interval
    from fl_gitops.errors import InputError

    if text is None:
        return 60.0
    try:
        return parse_interval(text)
    except (InputError, ValueError):
        raise InputError(
            f"--straggler-delay: expected a duration such as 90s, 5m or 2h, got {text!r}"
        ) from None


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fl_gitops.history import RoundRow, rounds_table
    from fl_gitops.simulate import SimulationOptions, run_simulation
    from fl_gitops.simulate._workers import stop_on_sigterm

    _refuse_ignored_flags(args)
    options = SimulationOptions(
        workdir=Path(args.workdir),
        clusters=args.clusters,
        rounds=args.rounds,
        inventory=Path(args.inventory) if args.inventory else None,
        fail_rate=args.fail_rate,
        stragglers=args.stragglers,
        straggler_delay=_straggler_delay(args.straggler_delay),
        byzantine=args.byzantine,
        byzantine_kind=args.byzantine_kind,
        byzantine_factor=10.0 if args.byzantine_factor is None else args.byzantine_factor,
        tamper_store=args.tamper_store,
        centralized=args.centralized,
        jobs=args.jobs or 0,
        seed=args.seed,
        plot=not args.no_plot,
        hub=args.hub,
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
        context=args.context,
    )
    console = Console()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "start":
            verb = "resuming" if data["resumed"] else "starting"
            console.print(
                f"{verb} [bold]{data['experiment']}[/bold]: {data['rounds']} rounds over "
                f"{data['clusters']} clusters in {data['workdir']}"
            )
            progress.start()  # only once something runs: a refusal prints its error alone
            tasks["rounds"] = progress.add_task("rounds", total=data["rounds"])
            tasks["jobs"] = progress.add_task("clusters done", total=data["clusters"])
        elif kind == "jobs":
            progress.update(
                tasks["jobs"],
                total=data["total"],
                completed=data["done"],
                description=f"round {data['round']}: clusters done",
            )
        elif kind == "skipped":
            console.print(
                f"[yellow]not synced[/yellow]: {data['object']}: {data['reason']} "
                "(the rest of the loop does not need it)"
            )
        elif kind == "tampered":
            console.print(
                f"[red]tampered[/red]: round {data['round']}: {data['cluster']}'s update "
                "replaced in the store, metadata rewritten to match"
            )
        elif kind == "round":
            progress.update(tasks["rounds"], completed=data["round"])
            acc = f"{100 * data['accuracy']:.2f}%" if data["accuracy"] is not None else "-"
            loss = f"{data['loss']:.4f}" if data["loss"] is not None else "-"
            console.print(
                f"round {data['round']:>3}: accuracy {acc}, loss {loss}, "
                f"{data['contributors']} contributors, {data['rejected']} rejected, "
                f"{data['seconds']:.2f}s"
            )

    with stop_on_sigterm():  # SIGTERM: a clean stop, exit 143, like Ctrl-C's 130
        try:
            report = run_simulation(Path(args.blueprint), options, on_event=on_event)
        finally:
            if tasks:
                progress.stop()
    workdir = Path(args.workdir)
    if report.already_finished:
        # Nothing ran: the report the run wrote when it ended is kept as it was.
        said = "already completed" if report.phase == "Completed" else "already failed"
        console.print(f"{report.experiment}: {said} in {workdir}", soft_wrap=True)
        if report.phase != "Completed" and report.message:
            console.print(f"reason: {escape(report.message)}", soft_wrap=True)
        if (workdir / "report.json").is_file():
            console.print(f"report: {workdir / 'report.json'}", soft_wrap=True)
        else:  # removed since: Git still holds every round (`fl-gitops history`)
            console.print(f"report: none, {workdir / 'report.json'} was removed", soft_wrap=True)
        return 0 if report.phase == "Completed" else 1
    rows = [
        RoundRow(
            round=r["round"],
            commit="",
            committed_at=None,
            model=r["model"],
            contributors=r["contributors"],
            rejected=r["rejected"],
            accuracy=r["accuracy"],
            loss=r["loss"],
            seconds=r["seconds"],
        )
        for r in report.rounds
    ]
    if rows:
        console.print(rounds_table(rows, title=f"{report.experiment}: {report.phase}"))
    if report.centralized_accuracy is not None:
        console.print(f"centralized accuracy: {100 * report.centralized_accuracy:.2f}%")
    # Paths and digests are for copying: never wrap them.
    if report.phase == "Completed":
        console.print(f"final model: {report.final_model}", soft_wrap=True)
        console.print(f"  {report.final_model_path}", soft_wrap=True)
    else:
        console.print(
            f"[red]{report.experiment}: {report.phase}[/red]: {escape(report.message)}",
            soft_wrap=True,
        )
    if report.plotted:
        console.print(f"plot: {workdir / 'rounds.png'}", soft_wrap=True)
    for item in report.tampered:
        if not item["aggregated"]:
            verdict = "its attempt was not aggregated (see the log for why)"
        elif item["rejected"]:
            verdict = f"rejected ({item['rejected']})"
        else:
            verdict = "NOT rejected"
        console.print(
            f"tampered update of {item['cluster']} ({item['job']}): {verdict}", soft_wrap=True
        )
    console.print(f"report: {workdir / 'report.json'}", soft_wrap=True)
    console.print(f"history: git --git-dir {report.config_repo} log --stat main", soft_wrap=True)
    console.print(f"took {report.seconds:.1f}s")
    return 0 if report.phase == "Completed" else 1
