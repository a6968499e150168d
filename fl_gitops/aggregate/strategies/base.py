"""The one small interface every strategy implements, and the plan it hands to aggregation.

A strategy does not read files. It turns its validated options into a :class:`Plan`: how
updates are combined coordinate by coordinate (a weighted mean, a coordinate-wise statistic,
or a Krum selection followed by a mean) and, optionally, a server step that moves the global
model using the combined value and explicit state (momentum, optimizer moments). The
streaming aggregator in :mod:`fl_gitops.aggregate` runs the plan. Strategies share no base
class: the :class:`Strategy` Protocol is the seam, as pre-commit's ``Language`` is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["F64", "Coordinate", "Plan", "Step", "Strategy", "coordinate_plan", "options_object"]

F64 = npt.NDArray[np.float64]

# (K x c stack of one chunk from every update, K weights) -> the c combined values.
Coordinate = Callable[[F64, F64], F64]


class Step(Protocol):
    """A server step on one tensor: ``(base, combined, state) -> (new, state)``.

    ``state`` maps each of the plan's ``state_names`` to that tensor's state, or to None on
    the first round. All arrays are float64 with the tensor's shape.
    """

    def __call__(
        self, base: F64, combined: F64, state: Mapping[str, F64 | None]
    ) -> tuple[F64, dict[str, F64]]: ...


@dataclass(frozen=True)
class Plan:
    """How to aggregate one round, from a strategy and its validated options.

    Attributes:
        strategy: the strategy's name.
        options: its options, defaults filled in.
        combine: ``mean`` (weighted by ``num_examples`` if ``weighted``), ``coordinate``
            (``coordinate`` applied to each chunk of the K updates) or ``krum`` (select
            ``krum_m`` updates by Krum's score with ``krum_f`` Byzantine clusters, then a
            weighted mean of those).
        step: a server step applied per tensor after combining; None means the combined
            value is the new model.
        state_names: the state families the step keeps per tensor (``m``, ``v``...).
        clip_norm: clip each update's distance to the global model to this L2 norm.
        noise_multiplier: add Gaussian noise of std ``noise_multiplier * clip_norm / K`` to
            the mean (server-side fixed-clipping DP).
    """

    strategy: str
    options: Mapping[str, Any]
    combine: Literal["mean", "coordinate", "krum"] = "mean"
    weighted: bool = True
    coordinate: Coordinate | None = None
    krum_f: int = 0
    krum_m: int | None = 1
    step: Step | None = None
    state_names: tuple[str, ...] = ()
    clip_norm: float | None = None
    noise_multiplier: float = 0.0
    record: Mapping[str, Any] = field(default_factory=dict)


def coordinate_plan(strategy: str, options: Mapping[str, Any], coordinate: Coordinate) -> Plan:
    """The plan of a robust statistic: ``coordinate`` over each chunk of the K updates,
    unweighted (a cluster's ``num_examples`` must not buy it influence)."""
    return Plan(
        strategy=strategy,
        options=dict(options),
        combine="coordinate",
        weighted=False,
        coordinate=coordinate,
    )


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
