"""Offline rendering: blueprint + ManagedCluster inventory → the experiment tree.

Steps 1 to 3 of the loop with no hub: the Placement is evaluated over the inventory with
OCM's semantics, which gives the roster and the PlacementDecision preview; the round state
comes from the tree itself (or round 1 with round 0's model, whose digest is known offline).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from fl_gitops.blueprint import Blueprint
from fl_gitops.errors import RenderedObjectError, TemplateError
from fl_gitops.render._names import Layout
from fl_gitops.render._render import RenderedTree, RoundState, render_experiment
from fl_gitops.render._state import read_roster, read_round_state, read_secagg

__all__ = ["OfflineRender", "check_rendered_sample", "initial_round_state", "render_offline"]


@dataclass(frozen=True)
class OfflineRender:
    """A rendered tree and how it was decided (for the CLI's summary and refusals).

    ``filtered`` is how many clusters each step of the placement removed and
    ``unmatched`` which requirements they missed (``PlacementResult.filtered`` and
    ``.unmatched``): the CLI reads them to say why a placement selected too few clusters.
    """

    tree: RenderedTree
    state: RoundState
    feasible: int
    inventory: int
    roster_source: str = "preview"
    filtered: Mapping[str, int] = field(default_factory=dict)
    unmatched: Mapping[str, int] = field(default_factory=dict)


def initial_round_state(blueprint: Blueprint, *, round_: int = 1) -> RoundState:
    """Round ``round_`` starting from round 0's model (seeded or the user's checkpoint)."""
    from fl_gitops.models import initial_model_digest

    digest = initial_model_digest(
        blueprint.client["model"], blueprint.client["data"], source=blueprint.file
    )
    return RoundState(round=round_, model_digest=digest)


def render_offline(
    blueprint: Blueprint,
    blueprint_bytes: bytes,
    clusters: Sequence[Mapping[str, Any]],
    out: Path | None,
    *,
    now: datetime,
    round_: int | None = None,
    bootstrap: bool = False,
    template_dir: str | Path | None = None,
    health_checks: Mapping[str, str] | None = None,
) -> OfflineRender:
    """Render one experiment against an inventory, reading the round state under ``out``.

    With ``out`` None (``render --out -``, which streams the manifests and writes no
    tree) there is no tree to read: round 1's state (or ``round_``'s) from the blueprint
    alone, no previous works and no committed roster, as in a fresh config repo.

    Raises:
        InputError: the placement cannot be evaluated, or a template fails.
        RenderedObjectError: a rendered object fails its schema.
    """
    from fl_gitops.placement import decision_pages, evaluate_placement

    experiment_dir = None if out is None else out / blueprint.gitops.path
    existing = None if experiment_dir is None else read_round_state(experiment_dir)
    if round_ is None:
        state = existing or initial_round_state(blueprint)
    elif existing is not None and existing.round == round_:
        state = existing
    else:
        state = initial_round_state(blueprint, round_=round_)
    works = None if experiment_dir is None else experiment_dir / Layout().works_dir
    previous = sorted(p.stem for p in works.glob("*.yaml")) if works and works.is_dir() else []
    result = evaluate_placement(
        blueprint.placement,
        clusters,
        placement_name=blueprint.name,
        namespace=blueprint.namespace,
        now=now,
        previous=previous,
    )
    pages = decision_pages(result, placement_name=blueprint.name, namespace=blueprint.namespace)
    roster, source = list(result.decided), "preview"
    committed = None if experiment_dir is None else read_roster(experiment_dir)
    if committed is not None and committed.source == "hub" and committed.matches(state):
        # Once the reconcile job has taken the roster from the hub's PlacementDecisions,
        # the hub is the truth: render what it committed, and drop the preview, so that
        # `render --check` in the config repo's CI agrees with the reconcile job's commits.
        roster, source, pages = list(committed.clusters), "hub", []
    secagg = None if experiment_dir is None else read_secagg(experiment_dir)
    if secagg is not None and (secagg.round, secagg.attempt, secagg.phase) != (
        state.round,
        state.attempt,
        state.secagg,
    ):
        secagg = None  # another round's: this one starts from its first phase
    tree = render_experiment(
        blueprint,
        roster=roster,
        state=state,
        secagg=None if secagg is None else secagg.to_json(),
        roster_source=source,
        decision_pages=pages,
        blueprint_bytes=blueprint_bytes,
        template_dir=template_dir,
        bootstrap=bootstrap,
        health_checks=health_checks,
    )
    check_rendered_sample(tree, user_templates=template_dir is not None)
    return OfflineRender(
        tree=tree,
        state=state,
        feasible=len(result.feasible),
        inventory=len(clusters),
        roster_source=source,
        filtered=result.filtered,
        unmatched=result.unmatched,
    )


def check_rendered_sample(tree: RenderedTree, *, user_templates: bool = False) -> None:
    """Validate every object except all but one ManifestWork and all but one page of the
    PlacementDecision preview, strictly.

    The per-cluster ManifestWorks come from one template with YAML-safe values, so one
    of them stands for all; parsing 10,000 of them back would cost more than rendering.
    The preview's pages (100 decisions each) come from one builder likewise: at 10,000
    clusters its 100 pages were most of this check's time. `fl-gitops validate
    --rendered` checks them all.

    Raises:
        TemplateError: with ``user_templates``, a user's template made a bad object.
        RenderedObjectError: otherwise (a bug in a shipped template).
    """
    from fl_gitops.validate import validate_object

    works_prefix = f"{tree.experiment_dir}/{tree.layout.works_dir}/"
    sampled_work = False
    problems: list[str] = []
    for rel, data in tree.files.items():
        own = (
            tree.layout.blueprint,
            tree.layout.roster,
            tree.layout.kustomization,
            tree.layout.secagg,
        )
        if any(rel == f"{tree.experiment_dir}/{name}" for name in own):
            continue
        if rel.startswith(works_prefix):
            if sampled_work:
                continue
            sampled_work = True
        documents = (o for o in yaml.load_all(data, Loader=yaml.CSafeLoader) if o is not None)
        try:
            if rel == f"{tree.experiment_dir}/{tree.layout.preview}":
                # The first page only, and only it parsed: the loader reads lazily.
                objects = list(itertools.islice(documents, 1))
            else:
                objects = list(documents)
        except yaml.YAMLError as exc:
            problems.append(f"{rel}: not valid YAML: {exc}")
            continue
        for index, obj in enumerate(objects):
            problems += [str(p) for p in validate_object(obj, where=f"{rel}#{index}")]
    if problems:
        error = TemplateError if user_templates else RenderedObjectError
        raise error("rendered objects fail their schemas:\n  " + "\n  ".join(problems[:20]))
