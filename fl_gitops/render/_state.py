"""Read the round state an earlier render or reconcile pass left in the tree.

Git is the only record of which round an experiment is in; the round-state ConfigMap in
the experiment directory is that record's readable form. A re-render reads it back so that
`render --check` compares against the same round, not against round 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from fl_gitops.errors import InputError
from fl_gitops.render._names import Layout
from fl_gitops.render._render import PHASES, RoundState
from fl_gitops.reports import SECAGG_PHASES
from fl_gitops.secagg._loop import SecAggRound

__all__ = ["RosterRecord", "read_roster", "read_round_state", "read_secagg"]


def read_round_state(experiment_dir: Path) -> RoundState | None:
    """The round state recorded under ``experiment_dir``, or None when there is none yet.

    Raises:
        InputError: the file exists but is not a round-state ConfigMap.
    """
    path = experiment_dir / Layout().round_state
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        obj = yaml.load(text, Loader=yaml.CSafeLoader)
        data = obj["data"]
        round_ = int(data["round"])
        digest = str(data["globalModelDigest"])
        phase = str(data.get("phase", "Running"))
        message = str(data.get("message", ""))
        attempt = int(data.get("attempt", 1))
        clip = data.get("clipNorm")
        clip_norm = None if clip is None else float(str(clip))
        secagg = data.get("secureAggregation")
        secagg = None if secagg is None else str(secagg)
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{path}: not a round-state ConfigMap (data.round, data.globalModelDigest): {exc}"
        ) from None
    if clip_norm is not None and not 0 < clip_norm < float("inf"):
        raise InputError(f"{path}: data.clipNorm must be a finite number > 0")
    if secagg is not None and secagg not in SECAGG_PHASES:
        raise InputError(
            f"{path}: data.secureAggregation must be one of {', '.join(SECAGG_PHASES)}"
        )
    if round_ < 1 or attempt < 1 or phase not in PHASES or not digest.startswith("sha256:"):
        raise InputError(
            f"{path}: data.round must be >= 1, data.phase one of {', '.join(PHASES)}, "
            "data.globalModelDigest a sha256: digest"
        )
    return RoundState(
        round=round_,
        model_digest=digest,
        phase=phase,
        message=message,
        attempt=attempt,
        clip_norm=clip_norm,
        secagg=secagg,
    )


def read_secagg(experiment_dir: Path) -> SecAggRound | None:
    """The secure-aggregation record (``secagg.yaml``) under ``experiment_dir``, or None.

    Raises:
        InputError: the file exists but is not such a record.
    """
    path = experiment_dir / Layout().secagg
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        doc = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "SecAggRound":
        raise InputError(f"{path}: not a SecAggRound record")
    return SecAggRound.from_json(doc, source=str(path))


@dataclass(frozen=True)
class RosterRecord:
    """The roster a round acted on (``roster.yaml``), and where it came from."""

    round: int
    attempt: int
    source: str  # "preview" (offline placement) or "hub" (the hub's PlacementDecisions)
    clusters: tuple[str, ...]
    step: str | None = None  # a secure round's phase

    def matches(self, state: RoundState | None) -> bool:
        """Whether this is the roster of the state's round, attempt and phase."""
        current = (state.round, state.attempt, state.secagg) if state is not None else (1, 1, None)
        return (self.round, self.attempt, self.step) == current


def read_roster(experiment_dir: Path) -> RosterRecord | None:
    """The roster record under ``experiment_dir``, or None when there is none.

    Raises:
        InputError: the file exists but is not a roster record.
    """
    path = experiment_dir / Layout().roster
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
        return RosterRecord(
            round=int(data["round"]),
            attempt=int(data.get("attempt", 1)),
            source=str(data.get("source", "preview")),
            clusters=tuple(str(c) for c in data.get("clusters") or ()),
            step=None if data.get("step") is None else str(data["step"]),
        )
    except FileNotFoundError:
        return None
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a roster record: {exc}") from None
