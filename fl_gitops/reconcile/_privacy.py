"""A DP experiment's privacy budget and adaptive clip, carried from round to round in Git.

Each round record's ``dp`` block holds what that round did (its clip, its noise) and what
the experiment has spent so far: ``accounting``, the runs of ``(noiseMultiplier,
samplingRate, rounds)`` of every aggregated round, and the ``epsilon`` they add up to at
``delta``. So one record is enough to recompute the epsilon (``_accountant``), and the next
round starts from the previous record alone: its spent budget, and, with adaptive
clipping, its ``nextClipNorm`` as this round's clip. The reconcile pass reads the previous
record here, passes the clip to the aggregation, and stops the experiment before a round
would take epsilon above ``targetEpsilon``.

With client-side clipping (``clipping: client``) the round's clip also goes to the
clusters: the pass renders it into each round config (``round_clip``, through the round
state), passes the bits the clusters reported through the hub to the aggregation, and
keeps them beside the round's updates in the store (``rounds/<N>/record.json``, adaptive
only: ``verify --reaggregate`` makes the next clip from them again). Not in Git: like the
true fraction and the list of clipped clusters of server-side adaptive clipping, which
clusters were clipped is a statistic of their updates, and the record publishes only the
noisy fraction; the store, which holds every update in the clear, is where such things are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fl_gitops.aggregate.strategies._accountant import Run, epsilon_of_runs, extend_runs
from fl_gitops.blueprint import Blueprint
from fl_gitops.render import Layout

__all__ = [
    "Prior",
    "bits_record",
    "budget_stop",
    "clips_on_clusters",
    "dp_record",
    "next_clip",
    "read_bits",
    "read_prior",
    "round_clip",
    "round_options",
    "spent_runs",
]


@dataclass(frozen=True)
class Prior:
    """What the previous round's record says: the budget spent and the clip it chose."""

    runs: tuple[Run, ...] = ()
    next_clip: float | None = None


def _runs(value: object) -> tuple[Run, ...]:
    """The record's ``accounting`` runs, or none when it holds anything else."""
    if not isinstance(value, list):
        return ()
    out: list[Run] = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 3):
            return ()
        z, q, n = item
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in item):
            return ()
        out.append((float(z), float(q), int(n)))
    return tuple(out)


def spent_runs(dp: Mapping[str, Any]) -> tuple[Run, ...]:
    """The budget a round record's ``dp`` block says is spent, as accountant runs."""
    return _runs(dp.get("accounting"))


def read_prior(experiment_dir: Path, round_: int, layout: Layout | None = None) -> Prior:
    """The budget spent and the clip chosen by round ``round_ - 1``, from its record.

    Returns:
        An empty ``Prior`` for round 1, or when that record is missing or has no ``dp``.
    """
    if round_ <= 1:
        return Prior()
    layout = layout or Layout()
    dp = _record_dp(experiment_dir / layout.history(round_ - 1))
    if dp is None:
        return Prior()
    clip = dp.get("nextClipNorm")
    next_clip = None
    if isinstance(clip, int | float) and not isinstance(clip, bool) and clip > 0:
        next_clip = float(clip)
    runs = _runs(dp.get("accounting"))
    if not runs:
        # A record written before records carried their accounting: count the rounds
        # from every record's own noise multiplier and sampling rate instead.
        runs = _counted(experiment_dir, layout, round_ - 1)
    return Prior(runs=runs, next_clip=next_clip)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _record_dp(path: Path) -> Mapping[str, Any] | None:
    """A round record's ``dp`` block, or None (no record, not YAML, no block)."""
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    dp = record.get("dp") if isinstance(record, Mapping) else None
    return dp if isinstance(dp, Mapping) else None


def _counted(experiment_dir: Path, layout: Layout, last: int) -> tuple[Run, ...]:
    """The runs of rounds 1 to ``last`` from each record's ``noiseMultiplier`` and
    ``samplingRate`` (1.0 when it has none); a round whose record has no ``dp`` block ran
    without DP and is not counted."""
    runs: list[Run] = []
    for n in range(1, last + 1):
        dp = _record_dp(experiment_dir / layout.history(n))
        if dp is None or not _is_number(dp.get("noiseMultiplier")):
            continue
        rate = dp.get("samplingRate", 1.0)
        runs = extend_runs(
            runs, float(dp["noiseMultiplier"]), float(rate) if _is_number(rate) else 1.0
        )
    return tuple(runs)


def clips_on_clusters(blueprint: Blueprint) -> bool:
    """Whether the blueprint's clusters clip their own updates (``dp.clipping: client``)."""
    dp = blueprint.strategy.dp
    return dp is not None and dp.get("clipping") == "client"


def round_clip(blueprint: Blueprint, prior: Prior) -> float:
    """This round's clip: with adaptive clipping the one the previous round chose, else
    (and in the first round) the blueprint's ``clipNorm``."""
    dp = blueprint.strategy.dp
    assert dp is not None
    if dp.get("adaptive") is not None and prior.next_clip is not None:
        return prior.next_clip
    return float(dp["clipNorm"])


def next_clip(blueprint: Blueprint, record_dp: Mapping[str, Any]) -> float:
    """The clip of the round after the one whose record's ``dp`` block is ``record_dp``."""
    chosen = record_dp.get("nextClipNorm")
    if isinstance(chosen, int | float) and not isinstance(chosen, bool) and chosen > 0:
        return float(chosen)
    return round_clip(blueprint, Prior())


def round_options(
    blueprint: Blueprint,
    options: Mapping[str, Any],
    prior: Prior,
    unclipped: Mapping[str, bool] | None = None,
) -> dict[str, Any]:
    """The aggregation's options for this round: with adaptive clipping, the clip the
    previous round chose (the blueprint's clipNorm for the first round); with client-side
    clipping, the bit each cluster reported through the hub (``unclipped``)."""
    out = dict(options)
    dp = blueprint.strategy.dp
    if dp and dp.get("adaptive") is not None and prior.next_clip is not None:
        out["clipping_norm"] = prior.next_clip
    if clips_on_clusters(blueprint):
        out["unclipped"] = dict(sorted((unclipped or {}).items()))
    return out


def _rate(dp: Mapping[str, Any]) -> tuple[float, float, float]:
    return float(dp["noiseMultiplier"]), float(dp["samplingRate"]), float(dp["delta"])


def dp_record(blueprint: Blueprint, done: Mapping[str, Any], prior: Prior) -> dict[str, Any]:
    """The round record's ``dp`` block: what the aggregation did (``done``, its record's
    ``dp``) and the budget spent after this round.

    ``epsilon`` is None when a round had no noise (no guarantee at all).
    """
    dp = blueprint.strategy.dp
    assert dp is not None
    z, q, delta = _rate(dp)
    runs = extend_runs(prior.runs, z, q)
    eps = epsilon_of_runs(runs, delta)
    out: dict[str, Any] = {
        "clipNorm": done.get("clipping_norm", dp["clipNorm"]),
        "noiseMultiplier": z,
        "noiseStd": done.get("noise_std"),
        "seed": done.get("seed"),
    }
    if done.get("clipping") == "client":
        out["clipping"] = "client"
    if "next_clipping_norm" in done:
        out.update(
            nextClipNorm=done["next_clipping_norm"],
            noisyUnclippedFraction=done["noisy_unclipped_fraction"],
            sumNoiseMultiplier=done["sum_noise_multiplier"],
            clippedCountStddev=done["clipped_count_stddev"],
            targetQuantile=done["target_quantile"],
            learningRate=done["learning_rate"],
        )
    out.update(
        samplingRate=q,
        delta=delta,
        accounting=[[rz, rq, n] for rz, rq, n in runs],
        epsilon=None if eps == float("inf") else round(eps, 6),
    )
    if dp.get("targetEpsilon") is not None:
        out["targetEpsilon"] = dp["targetEpsilon"]
    return out


def budget_stop(blueprint: Blueprint, runs: Sequence[Run], next_round: int) -> str | None:
    """Why round ``next_round`` must not start (the reason for the Completed state), or
    None when it fits the blueprint's ``targetEpsilon`` (or there is none)."""
    dp = blueprint.strategy.dp
    if not dp or dp.get("targetEpsilon") is None:
        return None
    target = float(dp["targetEpsilon"])
    z, q, delta = _rate(dp)
    eps = epsilon_of_runs(extend_runs(runs, z, q), delta)
    if eps <= target:
        return None
    return (
        f"privacy budget reached: round {next_round} would spend epsilon {eps:.4g} "
        f"> targetEpsilon {target:g}"
    )


def bits_record(round_: int, attempt: int, model: str, bits: Mapping[str, bool]) -> dict[str, Any]:
    """What the store keeps of a client-clipped adaptive round (``rounds/<N>/record.json``):
    the bits the next clip was made from, with the attempt and the model they made, so that
    a retried round's bits are never taken for another attempt's."""
    return {
        "round": round_,
        "attempt": attempt,
        "model": model,
        "reportedUnclipped": dict(sorted(bits.items())),
    }


def read_bits(record: Mapping[str, Any] | None, model: str) -> dict[str, bool] | str:
    """The bits of ``bits_record`` for the round whose model is ``model``, or why not."""
    if record is None:
        return "the store has no reported clip bits for the round (rounds/<N>/record.json)"
    if record.get("model") != model:
        return "the store's reported clip bits are of another aggregation of the round"
    bits = record.get("reportedUnclipped")
    if not isinstance(bits, Mapping) or not all(isinstance(b, bool) for b in bits.values()):
        return "the store's reported clip bits are not a mapping of cluster to true or false"
    return {str(c): bool(b) for c, b in bits.items()}
