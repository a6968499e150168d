"""`fl-gitops render`: compile blueprints into their experiment trees, or check them.

With ``--check`` nothing is written: exit 1 with a diff when the files under DIR differ
from a fresh render, 0 otherwise, so a config repo's CI and pre-commit hook can insist
that what is committed is what the blueprint says.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fl_gitops.blueprint import Blueprint, load_blueprint, read_bounded
from fl_gitops.errors import InputError

if TYPE_CHECKING:
    from fl_gitops.render._offline import OfflineRender

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("blueprints", nargs="+", metavar="BLUEPRINT", help="blueprint files")
    parser.add_argument(
        "--inventory",
        required=True,
        metavar="INV",
        help="ManagedClusters, as `kubectl get managedclusters -o yaml` prints them",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="the config repo's root")
    parser.add_argument(
        "--round", type=int, metavar="N", help="render round N (default: the tree's)"
    )
    parser.add_argument("--bootstrap", action="store_true", help="also render the hub bootstrap")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff if DIR differs from a fresh render",
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help=(
            "render even when the placement selects fewer clusters than "
            "spec.completion.minClusters, none included (default: refuse, exit 2)"
        ),
    )
    parser.add_argument("--templates", metavar="DIR", help="your own templates (override by name)")
    parser.add_argument(
        "--now",
        metavar="TIME",
        help=(
            "evaluation time for taint tolerationSeconds, ISO 8601 (default: the newest "
            "timestamp in the inventory, so a snapshot renders the same bytes whenever "
            "it is rendered; a `render --check` in CI must not depend on the clock)"
        ),
    )


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


def run(args: argparse.Namespace) -> int:
    from fl_gitops.placement import load_inventory
    from fl_gitops.render import BOOTSTRAP_DIR, apply_changes, diff_text, plan_changes
    from fl_gitops.render._offline import render_offline
    from fl_gitops.render.health import argocd_cm_health_entries

    if args.round is not None and args.round < 1:
        raise InputError(f"--round: expected a round >= 1, got {args.round}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: {out} is not a directory")
    clusters = load_inventory(args.inventory)
    now = _now(args.now, clusters)
    # --check covers a bootstrap/ that is there, so CI sees it drift without --bootstrap
    bootstrap = args.bootstrap or (args.check and (out / BOOTSTRAP_DIR).is_dir())
    health = argocd_cm_health_entries() if bootstrap else None
    # Render everything before writing anything: a failure leaves DIR untouched.
    renders, loaded = [], []
    for name in args.blueprints:
        path = Path(name)
        text = read_bounded(path)
        blueprint = load_blueprint(path, text=text)
        if args.round is not None and args.round > blueprint.rounds:
            raise InputError(
                f"--round {args.round}: past the last round of {name} "
                f"(spec.rounds is {blueprint.rounds})"
            )
        loaded.append(blueprint)
        renders.append(
            render_offline(
                blueprint,
                text,
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
        for name, blueprint, r in zip(args.blueprints, loaded, renders, strict=True):
            _refuse_short_roster(name, blueprint, r)
    plans = [(r, plan_changes(out, r.tree)) for r in renders]
    if args.check:
        dirty = False
        for r, changes in plans:
            if changes.empty:
                print(f"up to date: {r.tree.experiment_dir}")
                continue
            dirty = True
            sys.stdout.write(diff_text(out, r.tree, changes))
            count = len(changes.added) + len(changes.changed) + len(changes.removed)
            print(
                f"out of date: {r.tree.experiment_dir}: {count} files differ from a fresh render",
                file=sys.stderr,
            )
        return 1 if dirty else 0
    for r, changes in plans:
        apply_changes(out, r.tree, changes)
        written = len(changes.added) + len(changes.changed)
        print(
            f"rendered {r.tree.experiment_dir}: round {r.state.round}, "
            f"{len(r.tree.roster)} clusters placed ({r.feasible} feasible of {r.inventory}); "
            f"{written} files written, {len(changes.removed)} removed, "
            f"{len(r.tree.files) - written} unchanged"
        )
    return 0
