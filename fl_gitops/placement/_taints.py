"""Taints and tolerations, as OCM's TaintToleration filter applies them.

For each taint of a cluster: ``PreferNoSelect`` never filters (OCM has not implemented
it and always selects such clusters); ``NoSelectIfNew`` does not filter a cluster that
is already in the Placement's decisions; any other taint must be matched by a
toleration (empty effect or key match any; ``Equal`` compares values, ``Exists`` does
not). A toleration with ``tolerationSeconds`` stops matching once ``timeAdded +
tolerationSeconds`` is not after ``now``; a taint without ``timeAdded`` counts as added
at the zero time, so such a toleration has already expired, as in OCM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fl_gitops.placement._spec import TolerationSpec

__all__ = ["parse_time", "untolerated_taint"]

_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


def parse_time(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp as Kubernetes writes it (``2024-05-01T10:00:00Z``).

    Returns:
        An aware datetime, or ``None`` for a missing or unparseable value.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _tolerates(toleration: TolerationSpec, taint: Mapping[str, Any], now: datetime) -> bool:
    if toleration.effect and toleration.effect != taint.get("effect"):
        return False
    if toleration.key and toleration.key != taint.get("key"):
        return False
    if toleration.operator == "Equal" and toleration.value != (taint.get("value") or ""):
        return False
    if toleration.seconds is None:
        return True
    added = parse_time(taint.get("timeAdded")) or _ZERO_TIME
    try:
        expires = added + timedelta(seconds=toleration.seconds)
    except OverflowError:
        return toleration.seconds > 0
    return now < expires


def untolerated_taint(
    taints: Sequence[Mapping[str, Any]],
    tolerations: Sequence[TolerationSpec],
    *,
    in_previous: bool,
    now: datetime,
) -> Mapping[str, Any] | None:
    """The first taint that keeps a cluster out, or ``None`` if it may be selected.

    Args:
        taints: the cluster's ``spec.taints``.
        tolerations: the Placement's tolerations.
        in_previous: whether the cluster is in the Placement's current decisions.
        now: the evaluation time (aware).
    """
    for taint in taints:
        effect = taint.get("effect")
        if effect == "PreferNoSelect":
            continue
        if effect == "NoSelectIfNew" and in_previous:
            continue
        if not any(_tolerates(t, taint, now) for t in tolerations):
            return taint
    return None
