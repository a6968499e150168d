"""The hub's side of a round: check the updates, combine them by a strategy, write the model.

- ``_engine``: ``aggregate_round`` (and ``aggregate_from_store`` over the model store),
  streaming the updates in a fixed order in bounded memory, deterministic to the byte;
- ``_shards``: the same round in N shards by tensor slice (``aggregate_shard``,
  ``merge_shards``), to the same bytes, their shared directory a path or a store URI;
- ``_inputs``: a sharded round's inputs document (``RoundInputs``, ``collect_inputs``,
  ``read_inputs``), what the reconcile pass hands the shards' Job through the store;
- ``checks``: one ``UpdateRejected`` subclass per reason an update is refused;
- ``strategies``: one module per strategy behind a small Protocol, and the ``STRATEGIES``
  table the blueprint's strategy name is checked against.

A pure core with numpy: it reads the safetensors files through ``fl_gitops.tensors`` and
the store through ``fl_gitops.store``, and imports nothing of the client or the models, nor
torch (an import-graph test holds it there). The names below load on first use (PEP 562):
loading a blueprint checks its strategy against ``fl_gitops.aggregate.strategies`` without
importing the engine or the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fl_gitops._lazy import lazy_getattr

if TYPE_CHECKING:
    from fl_gitops.aggregate._engine import (
        AggregateResult,
        NotEnoughUpdates,
        Update,
        aggregate_from_store,
        aggregate_round,
        load_state,
    )
    from fl_gitops.aggregate._inputs import RoundInputs, collect_inputs, read_inputs
    from fl_gitops.aggregate._shards import ShardPlan, aggregate_shard, merge_shards
    from fl_gitops.aggregate.checks import Limits

# public name -> the module that defines it
_LAZY: dict[str, str] = {
    "AggregateResult": "fl_gitops.aggregate._engine",
    "NotEnoughUpdates": "fl_gitops.aggregate._engine",
    "Update": "fl_gitops.aggregate._engine",
    "aggregate_from_store": "fl_gitops.aggregate._engine",
    "aggregate_round": "fl_gitops.aggregate._engine",
    "load_state": "fl_gitops.aggregate._engine",
    "RoundInputs": "fl_gitops.aggregate._inputs",
    "collect_inputs": "fl_gitops.aggregate._inputs",
    "read_inputs": "fl_gitops.aggregate._inputs",
    "ShardPlan": "fl_gitops.aggregate._shards",
    "aggregate_shard": "fl_gitops.aggregate._shards",
    "merge_shards": "fl_gitops.aggregate._shards",
    "Limits": "fl_gitops.aggregate.checks",
}

__all__ = [
    "AggregateResult",
    "Limits",
    "NotEnoughUpdates",
    "RoundInputs",
    "ShardPlan",
    "Update",
    "aggregate_from_store",
    "aggregate_round",
    "aggregate_shard",
    "collect_inputs",
    "load_state",
    "merge_shards",
    "read_inputs",
]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
