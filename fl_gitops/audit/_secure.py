"""A secure round audited from Git and the store: its masked inputs, and its model rebuilt.

The store never holds a secure round's updates in the clear, only each survivor's masked
input (named by the round's attempt and holders, its digest in the round record) and the
survivors' reveals. The round's reveal phase committed ``secagg.yaml`` (U2, the mask keys,
the grid); from it and the store the unmasking is done again and the strategy run on the
mean, as the reconcile pass did, and the model compared with the committed one. The
reveals' digests went through the hub and Git does not hold them, so they are read
unchecked: a replaced reveal rebuilds a wrong secret, and the model then differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fl_gitops.audit._walk import Aggregation
from fl_gitops.errors import FlGitopsError
from fl_gitops.store import ModelStore

if TYPE_CHECKING:
    from fl_gitops.secagg import RoundContext
    from fl_gitops.secagg._loop import SecAggRound

__all__ = ["masked_names", "reaggregate_secure"]


def _record(agg: Aggregation) -> tuple[SecAggRound, RoundContext] | None:
    """The round's reveal record (read by the walk, which put any reason it is missing on
    the entry) and its context."""
    from fl_gitops.secagg._loop import params_of

    blueprint = agg.blueprint
    section = blueprint.strategy.secure_aggregation if blueprint is not None else None
    if blueprint is None or not section or agg.secagg is None:
        return None
    return agg.secagg, agg.secagg.ctx(blueprint.name, params_of(section))


def masked_names(agg: Aggregation) -> dict[str, str] | None:
    """Each survivor's masked input's name in ``rounds/<N>/aggregation/``."""
    from fl_gitops.secagg._loop import message_name

    found = _record(agg)
    if found is None:
        return None
    record, ctx = found
    return {c: message_name("masked", record.attempt, ctx.roster_id, c) for c in record.survivors}


def reaggregate_secure(store: ModelStore, agg: Aggregation) -> None:
    """Unmask the round again from the store and run its strategy on the mean."""
    from fl_gitops.reconcile._secure import aggregate_sum, stored_reveals, unmask_from
    from fl_gitops.render import RoundState

    found = _record(agg)
    if found is None or agg.blueprint is None or agg.base is None:
        agg.entry.notes.append("not re-aggregated: the round's secure record cannot be read")
        return
    record, ctx = found
    blueprint = agg.blueprint
    if set(record.survivors) != set(agg.contributors):
        agg.entry.problem(
            f"the reveal's survivors are {len(record.survivors)} clusters, the round "
            f"recorded {len(agg.contributors)} contributors"
        )
        return
    for cluster, said in record.survivors.items():
        if (agg.updates or {}).get(cluster) != said.get("digest"):
            agg.entry.problem(
                "the reveal record's masked input is not the round record's", cluster=cluster
            )
            return
    state = RoundState(round=agg.round, model_digest=agg.base)
    try:
        reveals = stored_reveals(
            store, agg.round, record, ctx.roster_id, dict.fromkeys(record.survivors)
        )
        unmasked = unmask_from(blueprint, state, record, reveals, store)
        result = aggregate_sum(
            blueprint,
            state,
            unmasked,
            store,
            strategy=blueprint.strategy.effective_name,
            options=dict(blueprint.strategy.effective_options),
        )
    except FlGitopsError as exc:
        agg.entry.problem(f"re-aggregation failed ({type(exc).__name__})")
        return
    if result.digest != agg.model:
        agg.entry.problem(
            f"re-aggregated model is {result.digest}, the round committed {agg.model} "
            "(unmasked again from the store's masked inputs and reveals)"
        )
