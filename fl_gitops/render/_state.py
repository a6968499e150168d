"""Read the round state an earlier render or reconcile pass left in the tree.

Git is the only record of which round an experiment is in; the round-state ConfigMap in
the experiment directory is that record's readable form. A re-render reads it back so that
`render --check` compares against the same round, not against round 1.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from fl_gitops.errors import InputError
from fl_gitops.render._names import Layout
from fl_gitops.render._render import PHASES, RoundState

__all__ = ["read_round_state"]


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
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{path}: not a round-state ConfigMap (data.round, data.globalModelDigest): {exc}"
        ) from None
    if round_ < 1 or attempt < 1 or phase not in PHASES or not digest.startswith("sha256:"):
        raise InputError(
            f"{path}: data.round must be >= 1, data.phase one of {', '.join(PHASES)}, "
            "data.globalModelDigest a sha256: digest"
        )
    return RoundState(
        round=round_, model_digest=digest, phase=phase, message=message, attempt=attempt
    )
