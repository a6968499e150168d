"""The small interfaces every strategy implements: a plan, and the combining step it owns.

A strategy does not read files. It turns its validated options into a :class:`Plan` whose
:class:`Combiner` is the strategy's own combining step, and the engine
(:mod:`fl_gitops.aggregate._engine`) runs it over the updates it has read and checked. The
step runs over one :class:`Slice` of the tensors at a time, with every update's values there
side by side (a :class:`Block`), in three phases:

1. ``partials(block)``, when the strategy needs statistics of the whole updates before it
   combines (Krum's pairwise squared distances): one slice's part, summed by the engine over
   every slice in model order. Each update's L2 distance to the global model (what norm
   clipping needs) is such a statistic too; the engine sums it while it checks each update
   (``needs_norms``), as it must for the norm bound anyway.
2. ``choose(pool)``: from the summed statistics, which updates go in, each one's clip factor
   and weight, and what the round record says: a :class:`Choice`.
3. ``choice.combine(block)`` for each slice, then ``choice.finish(...)`` for each tensor (the
   division, DP noise, a server step with explicit state).

So a sharded aggregation (``fl_gitops.aggregate._shards``) runs phase 1 on each shard, adds
the partials, chooses once, and runs phase 3 on each shard: ``combine`` must give each
element from its own column, ``partials`` be a sum over the slice's elements, and
``finish`` work element by element (a shard calls it on its slice of a tensor). A choice
whose combine is a weighted sum of its updates (``linear``) lets the engine build that sum
update by update, as it reads each file once, instead of holding K slices side by side;
the arithmetic (:mod:`._arith`) is the same.

Strategies share no base class: the Protocols are the seams, as pre-commit's ``Language``
is; state is an explicit value, passed in and returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from fl_gitops.aggregate.strategies._arith import write_tensor

__all__ = [
    "F64",
    "Block",
    "ByCoordinate",
    "Choice",
    "Combiner",
    "Coordinate",
    "Plan",
    "Pool",
    "Slice",
    "Step",
    "Strategy",
    "TooFewUpdates",
    "options_object",
]

F64 = npt.NDArray[np.float64]

# (K x c stack of one slice from every update, K weights) -> the c combined values.
Coordinate = Callable[[F64, F64], F64]


@dataclass(frozen=True)
class Slice:
    """Elements ``[offset, offset + size)`` of one tensor, flattened."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class Block:
    """One slice of the round: every update's values there, side by side.

    Attributes:
        slice: where in the model.
        values: K x size float64, the updates' values (exact copies), in cluster order.
        read_base: reads the global model's values of the slice, in the model's dtype
            (only clipping needs them, so they are read on demand).
    """

    slice: Slice
    values: F64
    read_base: Callable[[], np.ndarray[Any, Any]] = field(repr=False)

    def base(self) -> np.ndarray[Any, Any]:
        return self.read_base()


@dataclass(frozen=True)
class Pool:
    """What a combiner chooses from: the round's valid updates, in cluster order.

    Attributes:
        clusters: their names.
        weights: ``num_examples`` when the combiner is ``weighted``, else 1.0 each.
        norms: each one's L2 distance to the global model when the combiner
            ``needs_norms``, else None.
        stats: the combiner's ``partials`` summed over every slice, else None.
        seed: the round's seed (the only randomness: DP noise).
    """

    clusters: tuple[str, ...]
    weights: tuple[float, ...]
    norms: tuple[float, ...] | None = None
    stats: F64 | None = None
    seed: int = 0


class TooFewUpdates(Exception):
    """A combiner cannot run on this many valid updates (the engine reports it as
    ``NotEnoughUpdates``, with the round's rejections); never leaves the engine."""

    def __init__(self, needed: int, requirement: str) -> None:
        self.needed = needed
        self.requirement = requirement
        super().__init__(requirement)


class Step(Protocol):
    """A server step on one tensor: ``(base, combined, state) -> (new, state)``.

    ``state`` maps each of the strategy's ``state_names`` to that tensor's state, or to None
    on the first round. All arrays are float64 with the tensor's shape.
    """

    def __call__(
        self, base: F64, combined: F64, state: Mapping[str, F64 | None]
    ) -> tuple[F64, dict[str, F64]]: ...


class Choice(Protocol):
    """A combiner's decision for one round, and the combining it then does.

    ``keep`` indexes the pool (cluster order); ``scales``, ``weights`` and ``shares`` are
    per kept update: its clip factor (``u ← base + s·(u − base)``, 1.0: as is), the weight
    its values are summed with, and its share of the result (summing to 1).
    """

    @property
    def keep(self) -> tuple[int, ...]: ...

    @property
    def scales(self) -> tuple[float, ...]: ...

    @property
    def weights(self) -> tuple[float, ...]: ...

    @property
    def shares(self) -> tuple[float, ...]: ...

    @property
    def linear(self) -> bool:
        """True when ``combine`` is Σ wᵢ·ũᵢ over the kept rows (``_arith.weighted_sum``)."""
        ...

    @property
    def record(self) -> Mapping[str, Any]:
        """What goes into the round record (JSON-able), e.g. Krum's scores."""
        ...

    def combine(self, block: Block) -> F64:
        """The combined float64 values of one slice, from the kept updates side by side."""
        ...

    def finish(
        self,
        name: str,
        values: F64,
        out: np.ndarray[Any, Any],
        floating: bool,
        read_base: Callable[[], F64],
        state: Mapping[str, F64 | None],
    ) -> dict[str, F64]:
        """Turn one whole tensor's combined values into the new model's, written to ``out``.

        Called once per tensor in name order (DP draws its noise in that order). ``values``
        (float64, the tensor's shape) may be changed in place; ``read_base`` reads the
        global model's tensor in float64; ``state`` is the tensor's previous state by family.

        Returns:
            The tensor's new state by family (empty for a strategy without state).
        """
        ...


class Combiner(Protocol):
    """A strategy's combining step for one round (see the module docstring for its phases)."""

    @property
    def weighted(self) -> bool:
        """Whether the pool's weights are ``num_examples`` (else 1.0 each)."""
        ...

    @property
    def folds(self) -> bool:
        """True when ``choose`` keeps every valid update unclipped and its choice is linear
        whatever the pool: the engine may then sum the updates as it checks them."""
        ...

    @property
    def needs_norms(self) -> bool:
        """Whether ``choose`` needs each update's L2 distance to the global model."""
        ...

    @property
    def state_names(self) -> tuple[str, ...]:
        """The state families kept per tensor across rounds (``m``, ``v``...)."""
        ...

    @property
    def partials(self) -> Callable[[Block], F64] | None:
        """One slice's statistics, summed over the slices into ``Pool.stats``; or None.

        It may overwrite ``block.values``: each block is read once in this phase, and the
        pod and a shard refill their stack for the next one."""
        ...

    def require(self, n: int) -> None:
        """Raises TooFewUpdates when ``n`` valid updates are too few for this combiner."""
        ...

    def choose(self, pool: Pool) -> Choice:
        """Decide which updates go in, with what weight and clip factor."""
        ...


@dataclass(frozen=True)
class ByCoordinate:
    """The choice of a robust coordinate-wise statistic: every update, unweighted (a
    cluster's ``num_examples`` must not buy it influence), ``coordinate`` on each slice."""

    coordinate: Coordinate
    n: int
    record: Mapping[str, Any] = field(default_factory=dict)
    linear: bool = False

    @property
    def keep(self) -> tuple[int, ...]:
        return tuple(range(self.n))

    @property
    def scales(self) -> tuple[float, ...]:
        return (1.0,) * self.n

    @property
    def weights(self) -> tuple[float, ...]:
        return (1.0,) * self.n

    @property
    def shares(self) -> tuple[float, ...]:
        return (1.0 / self.n,) * self.n

    def combine(self, block: Block) -> F64:
        return self.coordinate(block.values, np.ones(self.n, dtype=np.float64))

    def finish(
        self,
        name: str,
        values: F64,
        out: np.ndarray[Any, Any],
        floating: bool,
        read_base: Callable[[], F64],
        state: Mapping[str, F64 | None],
    ) -> dict[str, F64]:
        write_tensor(out, values)
        return {}


@dataclass(frozen=True)
class Plan:
    """How to aggregate one round, from a strategy and its validated options.

    Attributes:
        strategy: the strategy's name.
        options: its options, defaults filled in.
        combiner: the strategy's combining step.
    """

    strategy: str
    options: Mapping[str, Any]
    combiner: Combiner

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.combiner.state_names


def options_object(
    properties: Mapping[str, Any] | None = None, *, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A strategy's options schema: a mapping of these properties and no others.

    Every strategy refuses an option it does not know, so that a misspelt option fails the
    blueprint instead of being ignored.
    """
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties or {})}
    if required:
        schema["required"] = list(required)
    schema["additionalProperties"] = False
    return schema


class Strategy(Protocol):
    """What the ``STRATEGIES`` table holds."""

    @property
    def name(self) -> str: ...

    @property
    def summary(self) -> str: ...

    @property
    def options_schema(self) -> Mapping[str, Any]: ...

    def plan(self, options: Mapping[str, Any]) -> Plan:
        """Turn validated options (defaults filled in) into a plan."""
        ...


@dataclass(frozen=True)
class Coordinatewise:
    """The combiner of a robust coordinate-wise strategy: every valid update, unweighted,
    ``coordinate`` on each slice (the median, the trimmed mean)."""

    coordinate: Coordinate
    weighted: bool = False
    folds: bool = False
    needs_norms: bool = False
    state_names: tuple[str, ...] = ()
    partials: None = None

    def require(self, n: int) -> None:
        del n

    def choose(self, pool: Pool) -> ByCoordinate:
        return ByCoordinate(self.coordinate, len(pool.clusters))
