"""`fl-gitops simulate`: run an experiment's whole loop on this machine, and show it.

What it prints fits where it goes (commands/_output): on a terminal, colour and a live
progress display; to a pipe or a file, plain lines, never wrapped, and a reader that goes
away (``| head -1``) ends the run quietly with 141. ``-o json|yaml`` prints the end-of-run
summary as one document on stdout (keys in docs/cli.md), the running commentary going to
stderr; ``-q`` prints only the final model's digest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fl_gitops.commands._output import add_output_arguments, emit, is_terminal

if TYPE_CHECKING:
    from fl_gitops.simulate import SimulationReport

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("blueprint", metavar="BLUEPRINT", help="the blueprint file (a YAML path)")
    parser.add_argument(
        "--clusters",
        type=int,
        default=10,
        metavar="N",
        help="size of the generated fleet, 1 to 10000 clusters (default: 10)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="R",
        help="number of rounds, at least 1 (default: the blueprint's spec.rounds)",
    )
    parser.add_argument(
        "--workdir",
        default="fl-sim",
        metavar="DIR",
        help="the directory the run keeps its repo, store and report in; run again with "
        "the same DIR to resume (default: fl-sim)",
    )
    parser.add_argument(
        "--inventory",
        metavar="INV",
        help="a YAML or JSON file of ManagedClusters to place on (default: a fleet of "
        "--clusters generated to match the placement)",
    )
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="the chance that each Job fails, a probability from 0 to below 1 (default: 0)",
    )
    parser.add_argument(
        "--stragglers",
        type=int,
        default=0,
        metavar="K",
        help="K clusters a round that finish late, 0 to --clusters (default: 0)",
    )
    parser.add_argument(
        "--straggler-delay",
        metavar="DURATION",
        help="with --stragglers: how late they finish, in simulated time, a duration such "
        "as 90s, 5m or 2h (default: 60s)",
    )
    parser.add_argument(
        "--byzantine",
        type=int,
        default=0,
        metavar="K",
        help="the last K clusters of the roster poison their updates every round, 0 to "
        "--clusters (default: 0)",
    )
    parser.add_argument(
        "--byzantine-kind",
        default="signflip",
        choices=["signflip", "scale"],
        help="with --byzantine: the attack, signflip (a step against the descent "
        "direction, --byzantine-factor times the honest one) or scale (the honest step "
        "--byzantine-factor times over) (default: signflip)",
    )
    parser.add_argument(
        "--byzantine-factor",
        type=float,
        metavar="X",
        help="with --byzantine: the attack's multiplier, a number (default: 10)",
    )
    parser.add_argument(
        "--tamper-store",
        type=int,
        default=0,
        metavar="K",
        help="after K clusters report in a round, replace their updates in the store (with "
        "matching metadata), as a party with write access to the bucket would; the hub's "
        "reports must reject them; 0 to --clusters (default: 0)",
    )
    parser.add_argument(
        "--aggregation-shards",
        type=int,
        metavar="N",
        help="aggregate each round in N shards by tensor slice (the blueprint's "
        "spec.aggregation.shards, overridden), run as the hub's shard Job would run them, "
        "in local worker processes; 1 to 64 (default: the blueprint's, 1 unless set)",
    )
    parser.add_argument(
        "--centralized",
        action="store_true",
        help="also train the model centrally on all the data, as a baseline for the "
        "report and the plot (default: off)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="Jobs run in parallel, at least 1 (default: the number of cores)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the generated fleet and of the simulated faults, an integer (default: 0)",
    )
    parser.add_argument(
        "--no-plot",
        action="store_true",
        help="do not draw DIR/rounds.png (default: drawn when a round was aggregated)",
    )
    parser.add_argument(
        "--hub",
        default="local",
        choices=["local", "kubernetes"],
        help="local: an in-memory hub (the default); kubernetes: a real API server, read "
        "through the same client the reconcile job uses (see `fl-gitops dev-hub`)",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="with --hub kubernetes: the kubeconfig file of the API server to use "
        "(default: $KUBECONFIG, else ~/.kube/config)",
    )
    parser.add_argument(
        "--context",
        metavar="NAME",
        help="with --hub kubernetes: the kubeconfig context (default: its current context)",
    )
    add_output_arguments(parser)


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


def summary(report: SimulationReport, workdir: Path) -> dict[str, Any]:
    """The end-of-run document of ``-o json|yaml`` (keys in docs/cli.md, in this order).

    ``final`` is the model the run ended with and the last round's metrics; a failed run
    has its reason in ``message`` and ``final`` is null, as no model was finished.
    """
    last = report.rounds[-1] if report.rounds else {}
    finished = report.phase == "Completed"
    report_file = workdir / "report.json"
    return {
        "experiment": report.experiment,
        "state": report.phase,
        "message": report.message,
        "already_finished": report.already_finished,
        "rounds": [
            {
                "round": r["round"],
                "accuracy": r["accuracy"],
                "loss": r["loss"],
                "contributors": r["contributors"],
                "rejected": r["rejected"],
                "seconds": r["seconds"],
                "epsilon": r.get("epsilon"),
                "model": r["model"],
            }
            for r in report.rounds
        ],
        "final": {
            "digest": report.final_model,
            "path": report.final_model_path or None,
            "accuracy": last.get("accuracy"),
            "loss": last.get("loss"),
        }
        if finished
        else None,
        "centralized_accuracy": report.centralized_accuracy,
        "tampered": report.tampered,
        "workdir": str(workdir),
        "report": str(report_file) if report_file.is_file() else None,
        "plot": str(workdir / "rounds.png") if report.plotted else None,
        "config_repo": report.config_repo,
        "seconds": round(report.seconds, 3),
    }


def run(args: argparse.Namespace) -> int:
    # cli.main answers the first Ctrl-C and ignores later ones (commands/_interrupt.py).
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fl_gitops.commands._interrupt import terminate_once
    from fl_gitops.commands._output import console as make_console
    from fl_gitops.history import RoundRow, rounds_table
    from fl_gitops.simulate import SimulationOptions, run_simulation

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
        aggregation_shards=args.aggregation_shards,
        centralized=args.centralized,
        jobs=args.jobs or 0,
        seed=args.seed,
        plot=not args.no_plot,
        hub=args.hub,
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
        context=args.context,
    )
    document = args.output != "text"
    # With -o json|yaml stdout is the document's alone: the commentary goes to stderr.
    console = make_console(stderr=document)
    chatty = not args.quiet
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not (chatty and is_terminal(console.file)),  # a bar only on a terminal
    )
    tasks: dict[str, Any] = {}

    def say(text: str) -> None:
        if chatty:
            console.print(text, soft_wrap=True)

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "start":
            verb = "resuming" if data["resumed"] else "starting"
            say(
                f"{verb} [bold]{escape(data['experiment'])}[/bold]: {data['rounds']} rounds "
                f"over {data['clusters']} clusters in {escape(data['workdir'])}"
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
            say(
                f"[yellow]not synced[/yellow]: {escape(data['object'])}: "
                f"{escape(data['reason'])} (the rest of the loop does not need it)"
            )
        elif kind == "tampered":
            say(
                f"[red]tampered[/red]: round {data['round']}: {escape(data['cluster'])}'s "
                "update replaced in the store, metadata rewritten to match"
            )
        elif kind == "shards":
            progress.update(
                tasks["jobs"],
                total=data["shards"],
                completed=data["done"],
                description=f"round {data['round']}: shards done",
            )
        elif kind == "round":
            progress.update(tasks["rounds"], completed=data["round"])
            acc = f"{100 * data['accuracy']:.2f}%" if data["accuracy"] is not None else "-"
            loss = f"{data['loss']:.4f}" if data["loss"] is not None else "-"
            say(
                f"round {data['round']:>3}: accuracy {acc}, loss {loss}, "
                f"{data['contributors']} contributors, {data['rejected']} rejected, "
                f"{data['seconds']:.2f}s"
                + (f", epsilon {data['epsilon']:.3f}" if data.get("epsilon") is not None else "")
            )

    with terminate_once():  # SIGTERM: a clean stop, exit 143, like Ctrl-C's 130
        try:
            report = run_simulation(Path(args.blueprint), options, on_event=on_event)
        finally:
            if tasks:
                progress.stop()
    workdir = Path(args.workdir)
    code = 0 if report.phase == "Completed" else 1
    if document:
        if report.phase != "Completed" and report.message:
            print(f"error: {report.experiment}: {report.phase}: {report.message}", file=sys.stderr)
        emit(args, summary(report, workdir), lambda: None)
        return code
    if args.quiet:  # what a script needs: the final model's digest, or the reason on stderr
        if report.phase == "Completed":
            console.print(report.final_model, soft_wrap=True, markup=False, highlight=False)
        else:
            print(f"error: {report.experiment}: {report.phase}: {report.message}", file=sys.stderr)
        return code
    if report.already_finished:
        # Nothing ran: the report the run wrote when it ended is kept as it was.
        said = "already completed" if report.phase == "Completed" else "already failed"
        console.print(
            f"{escape(report.experiment)}: {said} in {escape(str(workdir))}", soft_wrap=True
        )
        if report.phase != "Completed" and report.message:
            console.print(f"reason: {escape(report.message)}", soft_wrap=True)
        if (workdir / "report.json").is_file():
            console.print(f"report: {escape(str(workdir / 'report.json'))}", soft_wrap=True)
        else:  # removed since: Git still holds every round (`fl-gitops history`)
            console.print(
                f"report: none, {escape(str(workdir / 'report.json'))} was removed", soft_wrap=True
            )
        return code
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
            epsilon=r.get("epsilon"),
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
        console.print(f"  {escape(report.final_model_path)}", soft_wrap=True)
    else:
        console.print(
            f"[red]{escape(report.experiment)}: {report.phase}[/red]: {escape(report.message)}",
            soft_wrap=True,
        )
    if report.plotted:
        console.print(f"plot: {escape(str(workdir / 'rounds.png'))}", soft_wrap=True)
    for item in report.tampered:
        if not item["aggregated"]:
            verdict = "its attempt was not aggregated (see the log for why)"
        elif item["rejected"]:
            verdict = f"rejected ({escape(str(item['rejected']))})"
        else:
            verdict = "NOT rejected"
        console.print(
            f"tampered update of {item['cluster']} ({item['job']}): {verdict}", soft_wrap=True
        )
    console.print(f"report: {escape(str(workdir / 'report.json'))}", soft_wrap=True)
    console.print(
        f"history: git --git-dir {escape(report.config_repo)} log --stat main", soft_wrap=True
    )
    console.print(f"took {report.seconds:.1f}s")
    if args.verbose:  # where the time went, and why each refused update was refused
        spent = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(report.timings.items()))
        console.print(f"  time spent: {spent or 'none'}", soft_wrap=True, markup=False)
        for r in report.rounds:
            for cluster, reason in sorted((r.get("rejected_reasons") or {}).items()):
                console.print(
                    f"  round {r['round']}: {cluster} rejected: {reason}",
                    soft_wrap=True,
                    markup=False,
                    highlight=False,
                )
    return code
