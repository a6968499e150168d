"""A round's model recomputed from the store, bit for bit, and compared with the committed one.

Aggregation is deterministic (a fixed order, DP noise from a seed the blueprint fixes), so
anyone holding the repo and the store can redo a round: the same base model, the same
updates (each taken as the hub reported it: its digest and example count), the strategy
and options of the blueprint as of that commit, the strategy's state after the round
before. The bounds that chose the contributors are off (they were already accepted, and
their updates are checked against the hub's digests first), but for the round's clip when
the clusters clipped their own updates (``dp.clipping: client``): an update beyond it was
not clipped, and is named. What is compared is the model's digest and, with adaptive
clipping, the next clip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fl_gitops.audit._values import as_count, as_update_digest
from fl_gitops.audit._walk import Aggregation
from fl_gitops.blueprint import Strategy
from fl_gitops.errors import FlGitopsError
from fl_gitops.store import ModelStore

__all__ = ["reaggregate"]


def reaggregate(store: ModelStore, agg: Aggregation) -> None:
    """Recompute ``agg``'s model from ``store`` and put any difference on its entry."""
    from fl_gitops.aggregate import NotEnoughUpdates, aggregate_from_store
    from fl_gitops.aggregate.checks import Limits
    from fl_gitops.reports import HubReport

    if agg.secure is not None:
        from fl_gitops.audit._secure import reaggregate_secure

        reaggregate_secure(store, agg)
        return
    entry, blueprint = agg.entry, agg.blueprint
    if blueprint is None or agg.base is None or agg.model is None or not agg.contributors:
        entry.notes.append("not re-aggregated: the record or the blueprint cannot be read")
        return
    clusters = agg.candidates
    reported: dict[str, HubReport] = {}
    fallback: list[str] = []
    for cluster in clusters:
        digest = (agg.updates or {}).get(cluster)
        count = agg.num_examples.get(cluster)
        if digest is None or count is None:
            meta = _store_meta(store, agg.round, cluster)
            if meta is None:
                entry.problem(
                    f"not re-aggregated: no readable update of round {agg.round}", cluster=cluster
                )
                return
            if count is None:
                fallback.append(cluster)
            digest = digest or meta[0]
            count = count if count is not None else meta[1]
        reported[cluster] = HubReport(digest, count, {})
    if fallback:
        entry.notes.append(
            f"re-aggregated with the store's example counts for {len(fallback)} clusters "
            "(the record has none)"
        )
    dp = blueprint.strategy.dp or {}
    bits = _reported_bits(store, agg)
    if isinstance(bits, str):
        entry.problem(f"not re-aggregated: {bits}")
        return
    options = _options(blueprint.strategy, agg.dp, bits)
    influence = blueprint.influence
    limits = Limits(
        max_update_bytes=blueprint.store.max_update_bytes,
        max_l2_norm=_client_clip(options),
        min_updates=1,
        max_num_examples=influence.max_num_examples,
        cap_num_examples=influence.above_max_num_examples == "cap",
    )
    try:
        result = aggregate_from_store(
            store,
            agg.round,
            agg.base,
            strategy=blueprint.strategy.effective_name,
            options=options,
            roster=agg.roster,
            limits=limits,
            seed=int(dp.get("seed", 0)) + agg.round,
            clusters=clusters,
            reported=reported,
        )
    except NotEnoughUpdates as exc:
        for cluster, reason in sorted(exc.rejected.items()):
            entry.problem(f"rejected on re-aggregation: {reason}", cluster=cluster)
        entry.problem("re-aggregation found too few valid updates")
        return
    except FlGitopsError as exc:
        entry.problem(f"re-aggregation failed ({type(exc).__name__})")
        return
    for cluster, reason in sorted(result.rejected.items()):
        entry.problem(f"rejected on re-aggregation: {reason}", cluster=cluster)
    if tuple(result.contributors) != agg.contributors:
        entry.problem(
            f"re-aggregation made the model of {len(result.contributors)} contributors, "
            f"the round recorded {len(agg.contributors)}"
        )
    if result.digest != agg.model:
        entry.problem(f"re-aggregated model is {result.digest}, the round committed {agg.model}")
    chosen = (agg.dp or {}).get("nextClipNorm")
    redone = result.record.get("dp", {}).get("next_clipping_norm")
    if chosen is not None and chosen != redone:
        entry.problem(f"the record's nextClipNorm is {chosen}, re-aggregation chose {redone}")
    _check_epsilon(agg)


def _check_epsilon(agg: Aggregation) -> None:
    """The record's epsilon against the accountant run on the record's own rounds."""
    from fl_gitops.aggregate.strategies._accountant import epsilon_of_runs
    from fl_gitops.reconcile._privacy import spent_runs

    dp = agg.dp or {}
    said, delta = dp.get("epsilon"), dp.get("delta")
    runs = spent_runs(dp)
    if not isinstance(said, int | float) or not isinstance(delta, int | float) or not runs:
        return
    try:
        spent = round(epsilon_of_runs(runs, float(delta)), 6)
    except ValueError:
        agg.entry.problem("the record's dp accounting cannot be read")
        return
    if spent != said:
        agg.entry.problem(f"the record's epsilon is {said}, its accounting gives {spent}")


def _options(
    strategy: Strategy, dp: Mapping[str, Any] | None, bits: Mapping[str, bool] | None
) -> dict[str, Any]:
    """The options the round ran with: the blueprint's, with adaptive clipping's clip for
    that round as its record says (a wrong one shows in the model's digest), and with
    client-side clipping the bits the clusters reported, as the store keeps them."""
    options = dict(strategy.effective_options)
    clip = (dp or {}).get("clipNorm")
    adaptive = (strategy.dp or {}).get("adaptive") is not None
    if adaptive and isinstance(clip, int | float) and not isinstance(clip, bool) and clip > 0:
        options["clipping_norm"] = float(clip)
    if options.get("clipping") == "client":
        options["unclipped"] = dict(bits or {})
    return options


def _reported_bits(store: ModelStore, agg: Aggregation) -> dict[str, bool] | str | None:
    """With client-side adaptive clipping, the clip bits the round's next clip was made
    from, which only the store keeps (``reconcile._privacy.bits_record``), or why they
    cannot be had; None when the round needs none."""
    from fl_gitops.reconcile._privacy import read_bits

    blueprint = agg.blueprint
    assert blueprint is not None and agg.model is not None
    dp = blueprint.strategy.dp or {}
    if dp.get("clipping") != "client" or dp.get("adaptive") is None:
        return None
    try:
        record = store.get_round_record(agg.round)
    except FlGitopsError as exc:
        return f"the store's reported clip bits cannot be read ({type(exc).__name__})"
    return read_bits(record, agg.model)


def _client_clip(options: Mapping[str, Any]) -> float | None:
    """With client-side clipping, the farthest a contributor may be from the base model:
    the clip the round ran with, as the hub bounded it (an update beyond it was not
    clipped on its cluster and should not have been taken). None otherwise: the other
    bounds that chose the contributors are not redone."""
    if options.get("clipping") != "client":
        return None
    from fl_gitops.aggregate.strategies.dp import client_clip_bound

    return client_clip_bound(float(options["clipping_norm"]))


def _store_meta(store: ModelStore, round_: int, cluster: str) -> tuple[str, int] | None:
    """The store's own digest and example count for an update (a fallback, not the authority)."""
    try:
        meta = store.read_update_meta(round_, cluster)
    except FlGitopsError:
        return None
    digest, count = as_update_digest(meta.get("sha256")), as_count(meta.get("num_examples"))
    if digest is None or count is None:
        return None
    return digest, count
