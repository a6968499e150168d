"""Checks an update must pass before it is aggregated, one exception class per reason.

An update that fails a check is rejected for good (kopf's "permanent" error, for that
cluster), recorded with its reason, and the other updates are still aggregated. An update
that is simply not there yet (no JSON metadata in the store) is not a rejection: the store
does not list it, and the reconcile job waits for it.

The cheap checks (:func:`check_meta`, :func:`check_file`) read the metadata and the file's
header only. The checks on the bytes themselves (digest, NaN or Inf, L2 norm) need a pass over
the data; :mod:`fl_gitops.aggregate` makes that pass, fused with its own reading where it
can, and raises :class:`DigestMismatch`, :class:`NonFiniteValues` or
:class:`NormBoundExceeded` from it. Nothing is ever unpickled: a file that is not safetensors
is refused on its first bytes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from fl_gitops.errors import UpdateRejected
from fl_gitops.store import MalformedMetadata
from fl_gitops.tensors import Header, HeaderError, read_header

__all__ = [
    "DEFAULT_SIZE_SLACK",
    "DigestMismatch",
    "DtypeMismatch",
    "Expectation",
    "Limits",
    "MalformedMetadata",
    "NonFiniteValues",
    "NormBoundExceeded",
    "NotOnRoster",
    "NotReported",
    "NotSafetensors",
    "ShapeMismatch",
    "StaleRound",
    "TensorNamesMismatch",
    "UpdateFileMissing",
    "UpdateMeta",
    "UpdateTooLarge",
    "WrongBaseModel",
    "check_file",
    "check_meta",
    "roster_set",
]

# By default an update may be this much larger than the global model's file (its header
# may differ a little: offsets, metadata), and no larger.
DEFAULT_SIZE_SLACK = 1024 * 1024


class NotOnRoster(UpdateRejected):
    """The cluster is not on the round's roster."""


class NotReported(UpdateRejected):
    """The cluster reported no result through the hub, the authority for its update."""


class StaleRound(UpdateRejected):
    """The update says it belongs to another round."""


class WrongBaseModel(UpdateRejected):
    """The update was trained from another global model than this round's."""


class UpdateFileMissing(UpdateRejected):
    """The metadata is there but the tensor file is not."""


class UpdateTooLarge(UpdateRejected):
    """The update file is larger than the bound."""


class NotSafetensors(UpdateRejected):
    """The file is not well-formed safetensors: truncated, a pickle, a lying header."""


class TensorNamesMismatch(UpdateRejected):
    """The update's tensor names differ from the global model's."""


class ShapeMismatch(UpdateRejected):
    """A tensor's shape differs from the global model's."""


class DtypeMismatch(UpdateRejected):
    """A tensor's dtype differs from the global model's."""


class DigestMismatch(UpdateRejected):
    """The file's bytes do not hash to the digest the hub reported (or, by hand, the
    ``sha256`` its metadata records)."""


class NonFiniteValues(UpdateRejected):
    """A tensor holds NaN or Inf."""


class NormBoundExceeded(UpdateRejected):
    """The L2 norm of the update minus the global model is over the bound."""


MAX_NUM_EXAMPLES = 2**53  # the largest count a float64 weight holds exactly


@dataclass(frozen=True)
class Limits:
    """Bounds on updates.

    Attributes:
        max_update_bytes: the largest update file accepted; None means the global model's
            size plus ``DEFAULT_SIZE_SLACK``.
        max_l2_norm: if set, reject updates whose distance to the global model (the L2 norm
            of the update minus the base, over all tensors) is larger.
        min_updates: fewer valid updates than this and the round is not aggregated.
        median_distance_multiple: if set, reject updates whose distance to the global model
            is larger than this multiple of the round's median distance (the lower middle
            one for an even count), so that one scaled update is refused with no bound
            configured.
        max_num_examples: the most examples one cluster's update may weigh; None, no bound.
        cap_num_examples: above ``max_num_examples``, weigh the update as that many
            examples instead of rejecting it.
    """

    max_update_bytes: int | None = None
    max_l2_norm: float | None = None
    min_updates: int = 1
    median_distance_multiple: float | None = None
    max_num_examples: int | None = None
    cap_num_examples: bool = False


@dataclass(frozen=True)
class Expectation:
    """What every update of a round must agree with."""

    round: int
    base_digest: str
    base_header: Header
    roster: frozenset[str] | None = None
    limits: Limits = field(default_factory=Limits)

    @property
    def max_bytes(self) -> int:
        if self.limits.max_update_bytes is not None:
            return self.limits.max_update_bytes
        return self.base_header.file_size + DEFAULT_SIZE_SLACK


@dataclass(frozen=True)
class UpdateMeta:
    """The fields of an update's metadata that aggregation uses, checked."""

    cluster: str
    round: int
    base_model: str
    sha256: str
    num_examples: int
    metrics: dict[str, float]


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_meta(cluster: str, meta: Mapping[str, Any], expect: Expectation) -> UpdateMeta:
    """Check an update's metadata against the round being aggregated.

    Raises:
        NotOnRoster, MalformedMetadata, StaleRound, WrongBaseModel: with the reason.
    """
    if expect.roster is not None and cluster not in expect.roster:
        raise NotOnRoster(cluster, f"cluster is not on the roster of round {expect.round}")
    if not isinstance(meta, Mapping):
        raise MalformedMetadata(cluster, "metadata is not a JSON object")
    if meta.get("cluster", cluster) != cluster:
        raise MalformedMetadata(
            cluster, f"metadata names cluster {meta.get('cluster')!r}, not {cluster!r}"
        )
    for key in ("round", "base_model", "sha256", "num_examples"):
        if key not in meta:
            raise MalformedMetadata(cluster, f"metadata has no {key!r}")
    round_ = meta["round"]
    if not _int(round_):
        raise MalformedMetadata(cluster, f"round: expected an integer, got {round_!r}")
    if round_ != expect.round:
        raise StaleRound(cluster, f"update is for round {round_}, expected round {expect.round}")
    digest = meta["sha256"]
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise MalformedMetadata(cluster, f"sha256: expected 'sha256:<hex>', got {digest!r}")
    base = meta["base_model"]
    if base != expect.base_digest:
        raise WrongBaseModel(
            cluster, f"update was trained from {base}, expected {expect.base_digest}"
        )
    n = meta["num_examples"]
    # Bounded so that a weight times a tensor value cannot overflow float64 when summed.
    if not _int(n) or not 1 <= n <= MAX_NUM_EXAMPLES:
        raise MalformedMetadata(
            cluster,
            f"num_examples: expected an integer from 1 to {MAX_NUM_EXAMPLES}, got {n!r}",
        )
    raw_metrics = meta.get("metrics", {})
    if not isinstance(raw_metrics, Mapping):
        raise MalformedMetadata(cluster, "metrics: expected a map of names to numbers")
    metrics: dict[str, float] = {}
    for name, value in sorted(raw_metrics.items()):
        # Metrics are informative: a non-number or non-finite one is left out, not fatal.
        if (_int(value) or isinstance(value, float)) and math.isfinite(value):
            metrics[str(name)] = float(value)
    return UpdateMeta(
        cluster=cluster,
        round=round_,
        base_model=base,
        sha256=digest,
        num_examples=n,
        metrics=metrics,
    )


def check_file(cluster: str, path: str | os.PathLike[str], expect: Expectation) -> Header:
    """Check an update file's size and header against the global model's.

    Reads the header only; the data is checked while it is read for aggregation.

    Returns:
        The update's parsed header.

    Raises:
        UpdateFileMissing, UpdateTooLarge, NotSafetensors, TensorNamesMismatch,
        DtypeMismatch, ShapeMismatch: with the reason.
    """
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise UpdateFileMissing(cluster, "metadata is present but the update file is not") from None
    if size > expect.max_bytes:
        raise UpdateTooLarge(
            cluster, f"update file is {size} bytes, larger than the bound of {expect.max_bytes}"
        )
    try:
        header = read_header(path)
    except HeaderError as exc:
        raise NotSafetensors(cluster, f"not a valid safetensors file: {exc}") from None
    want = expect.base_header.tensors
    got = header.tensors
    if set(got) != set(want):
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        raise TensorNamesMismatch(
            cluster, f"tensor names differ from the global model's: {'; '.join(parts)}"
        )
    for name in want:
        if got[name].dtype != want[name].dtype:
            raise DtypeMismatch(
                cluster,
                f"tensor {name!r} has dtype {got[name].dtype}, expected {want[name].dtype}",
            )
        if got[name].shape != want[name].shape:
            raise ShapeMismatch(
                cluster,
                f"tensor {name!r} has shape {list(got[name].shape)}, "
                f"expected {list(want[name].shape)}",
            )
    return header


def roster_set(roster: Collection[str] | None) -> frozenset[str] | None:
    """Normalise a roster argument (None means: every cluster is welcome)."""
    return None if roster is None else frozenset(roster)
