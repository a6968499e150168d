"""`fl-gitops render`: compile blueprints into their experiment trees, or check them.

With ``--check`` nothing is written: exit 1 with a diff when the files under DIR differ
from a fresh render, 0 otherwise, so a config repo's CI and pre-commit hook can insist
that what is committed is what the blueprint says. ``--out -`` prints the manifests as one
YAML stream instead of writing a tree (``helm template``'s habit); ``-`` as BLUEPRINT or
``--inventory`` reads standard input; ``-o json|yaml`` reports what was (or, with
``--check``, would be) written as one document whose keys docs/cli.md lists.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fl_gitops.blueprint import Blueprint, load_blueprint
from fl_gitops.commands._output import add_output_arguments, console, emit
from fl_gitops.commands._stdin import STDIN, STDIN_NAME, read_blueprint, refuse_two_stdins
from fl_gitops.errors import InputError, InventoryError

if TYPE_CHECKING:
    from fl_gitops.render._offline import OfflineRender
    from fl_gitops.render._write import Changes

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "blueprints",
        nargs="+",
        metavar="BLUEPRINT",
        help="blueprint files (YAML paths); '-' reads one from standard input",
    )
    parser.add_argument(
        "--inventory",
        required=True,
        metavar="INV",
        help="a YAML or JSON file of ManagedClusters, as `kubectl get managedclusters -o "
        "yaml` prints them; '-' reads it from standard input (not with a BLUEPRINT '-')",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the config repo's root directory, where the tree is written; '-' prints "
        "every manifest to stdout as one YAML stream (`# Source: <path>` before each, as "
        "`helm template` does) and writes nothing",
    )
    parser.add_argument(
        "--round",
        type=int,
        metavar="N",
        help="render round N, an integer from 1 to spec.rounds (default: the round the "
        "tree's hub/round-state.yaml holds, else 1)",
    )
    parser.add_argument(
        "--bootstrap",
        action="store_true",
        help="also render the hub bootstrap under bootstrap/ (default: off; --check "
        "covers a bootstrap/ that exists)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a unified diff on stdout if DIR differs from a "
        "fresh render, 0 if not (default: write)",
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help=(
            "render even when the placement selects fewer clusters than "
            "spec.completion.minClusters, none included (default: refuse, exit 2)"
        ),
    )
    parser.add_argument(
        "--templates",
        metavar="DIR",
        help="a directory of your own Jinja templates, each overriding the shipped one of "
        "the same file name (default: the shipped templates)",
    )
    parser.add_argument(
        "--now",
        metavar="TIME",
        help=(
            "evaluation time for taint tolerationSeconds, ISO 8601 such as "
            "2026-01-31T12:00:00Z (default: the newest timestamp in the inventory, so a "
            "snapshot renders the same bytes whenever it is rendered; a `render --check` "
            "in CI must not depend on the clock)"
        ),
    )
    add_output_arguments(parser)


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _inventory_time(clusters: list[dict[str, Any]]) -> datetime:
    """The moment the inventory describes: its newest timestamp (or the epoch)."""
    newest = datetime(1970, 1, 1, tzinfo=UTC)
    for cluster in clusters:
        stamps = [cluster.get("metadata", {}).get("creationTimestamp")]
        stamps += [t.get("timeAdded") for t in cluster.get("spec", {}).get("taints") or []]
        conditions = (cluster.get("status") or {}).get("conditions") or []
        stamps += [c.get("lastTransitionTime") for c in conditions]
        for stamp in stamps:
            value = _parse_time(stamp)
            if value is not None and value > newest:
                newest = value
    return newest


def _now(text: str | None, clusters: list[dict[str, Any]]) -> datetime:
    if text is None:
        return _inventory_time(clusters)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--now: expected an ISO 8601 time, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _refuse_short_roster(name: str, blueprint: Blueprint, render: OfflineRender) -> None:
    """Refuse a preview roster below the quorum: a CI job whose `kubectl get` failed
    would otherwise commit a round that no cluster runs, and exit 0 doing it.

    A roster the reconcile job took from the hub is the hub's word and is not refused.
    """
    quorum = blueprint.completion.min_clusters
    placed = len(render.tree.roster)
    if render.roster_source != "preview" or placed >= quorum:
        return
    from fl_gitops.placement import explain_selection

    selected = "no cluster" if placed == 0 else f"{placed} cluster{'s' if placed != 1 else ''}"
    why = explain_selection(render.filtered, inventory=render.inventory, unmatched=render.unmatched)
    raise InputError(
        f"{name}: spec.placement selected {selected}, fewer than "
        f"spec.completion.minClusters ({quorum}): {why}; "
        "nothing written (--allow-empty renders such a round anyway)"
    )


def _refuse_conflicts(args: argparse.Namespace) -> None:
    """Flags that cannot work together, refused by the names the user typed."""
    refuse_two_stdins(
        [*(("BLUEPRINT", b) for b in args.blueprints), ("--inventory", args.inventory)]
    )
    if args.out == STDIN and args.check:
        raise InputError(
            "--check and --out -: --check compares with a tree on disk, and --out - writes "
            "none (give --out DIR with --check)"
        )
    if args.out == STDIN and args.output != "text":
        raise InputError(
            f"--out - and -o {args.output}: --out - prints the manifests themselves on "
            "stdout, which leaves no room for a report document"
        )


def _load_inventory(name: str) -> list[dict[str, Any]]:
    """The inventory file, or standard input for ``-`` (errors then name ``<stdin>``)."""
    from fl_gitops.placement import load_inventory

    if name != STDIN:
        return load_inventory(name)
    device = "/dev/stdin"
    try:
        return load_inventory(device)
    except InventoryError as exc:
        text = str(exc)
        if text.startswith(device):
            raise InventoryError(STDIN_NAME + text[len(device) :]) from None
        raise


def _summary(
    blueprint: Blueprint, r: OfflineRender, changes: Changes, *, applied: bool
) -> dict[str, Any]:
    """One experiment's part of the report document (keys in docs/cli.md)."""
    touched = len(changes.added) + len(changes.changed)
    return {
        "experiment": blueprint.name,
        "namespace": blueprint.namespace,
        "path": r.tree.experiment_dir,
        "round": r.state.round,
        "clusters": {
            "placed": len(r.tree.roster),
            "feasible": r.feasible,
            "inventory": r.inventory,
            "source": r.roster_source,
        },
        "applied": applied,
        "up_to_date": changes.empty,
        "added": list(changes.added),
        "changed": list(changes.changed),
        "removed": list(changes.removed),
        "unchanged": len(r.tree.files) - touched,
        "files": sorted(r.tree.files),
    }


def run(args: argparse.Namespace) -> int:
    from fl_gitops.render import BOOTSTRAP_DIR, apply_changes, diff_text, plan_changes
    from fl_gitops.render._offline import render_offline
    from fl_gitops.render._write import manifest_stream
    from fl_gitops.render.health import argocd_cm_health_entries

    _refuse_conflicts(args)
    if args.round is not None and args.round < 1:
        raise InputError(f"--round: expected a round >= 1, got {args.round}")
    stream = args.out == STDIN
    out = None if stream else Path(args.out)
    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"--out: {out} is not a directory")
    clusters = _load_inventory(args.inventory)
    now = _now(args.now, clusters)
    # --check covers a bootstrap/ that is there, so CI sees it drift without --bootstrap
    bootstrap = args.bootstrap or bool(
        args.check and out is not None and (out / BOOTSTRAP_DIR).is_dir()
    )
    health = argocd_cm_health_entries() if bootstrap else None
    # Render everything before writing anything: a failure leaves DIR untouched.
    renders, loaded, names = [], [], []
    for arg in args.blueprints:
        name, data = read_blueprint(arg)
        blueprint = load_blueprint(name, text=data)
        if args.round is not None and args.round > blueprint.rounds:
            raise InputError(
                f"--round {args.round}: past the last round of {name} "
                f"(spec.rounds is {blueprint.rounds})"
            )
        names.append(name)
        loaded.append(blueprint)
        renders.append(
            render_offline(
                blueprint,
                data,
                clusters,
                out,
                now=now,
                round_=args.round,
                bootstrap=bootstrap,
                template_dir=args.templates,
                health_checks=health,
            )
        )
    if not args.allow_empty:
        for name, blueprint, r in zip(names, loaded, renders, strict=True):
            _refuse_short_roster(name, blueprint, r)
    if out is None:
        for r in renders:
            for chunk in manifest_stream(r.tree):
                sys.stdout.buffer.write(chunk)
        return 0
    plans = [(r, plan_changes(out, r.tree)) for r in renders]
    con = console()
    if args.check:
        return _check(args, out, loaded, plans, diff_text, con)
    for r, changes in plans:
        apply_changes(out, r.tree, changes)
    document = {
        "out": str(out),
        "check": False,
        "experiments": [
            _summary(b, r, c, applied=True) for b, (r, c) in zip(loaded, plans, strict=True)
        ],
    }

    def text() -> None:
        if args.quiet:
            return
        for r, changes in plans:
            written = len(changes.added) + len(changes.changed)
            con.print(
                f"rendered {r.tree.experiment_dir}: round {r.state.round}, "
                f"{len(r.tree.roster)} clusters placed ({r.feasible} feasible of "
                f"{r.inventory}); {written} files written, {len(changes.removed)} removed, "
                f"{len(r.tree.files) - written} unchanged",
                markup=False,
                highlight=False,
            )
            if args.verbose:
                for verb, paths in (
                    ("added", changes.added),
                    ("changed", changes.changed),
                    ("removed", changes.removed),
                ):
                    for path in paths:
                        con.print(f"  {verb}: {path}", markup=False, highlight=False)

    emit(args, document, text)
    return 0


def _check(
    args: argparse.Namespace,
    out: Path,
    loaded: list[Blueprint],
    plans: list[tuple[OfflineRender, Changes]],
    diff_text: Any,
    con: Any,
) -> int:
    """``--check``: the diff on stdout (text) or the document (json/yaml); exit 1 if any."""
    dirty = False
    document = {
        "out": str(out),
        "check": True,
        "experiments": [
            _summary(b, r, c, applied=False) for b, (r, c) in zip(loaded, plans, strict=True)
        ],
    }
    text_mode = args.output == "text"
    for r, changes in plans:
        if changes.empty:
            if text_mode and not args.quiet:
                con.print(f"up to date: {r.tree.experiment_dir}", markup=False, highlight=False)
            continue
        dirty = True
        if text_mode and not args.quiet:
            sys.stdout.flush()
            sys.stdout.write(diff_text(out, r.tree, changes))
        count = len(changes.added) + len(changes.changed) + len(changes.removed)
        print(
            f"out of date: {r.tree.experiment_dir}: {count} files differ from a fresh render",
            file=sys.stderr,
        )
    emit(args, document, lambda: None)
    return 1 if dirty else 0
