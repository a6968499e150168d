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

import errno
import math
import os
import stat
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from fl_gitops.errors import UpdateRejected
from fl_gitops.reports import MAX_METRIC_MAGNITUDE, MAX_METRICS, METRIC_NAME
from fl_gitops.store import MalformedMetadata, UnreadableUpdate
from fl_gitops.tensors import Header, HeaderError, is_digest, is_update_digest, read_header

__all__ = [
    "DEFAULT_MAX_NUM_EXAMPLES",
    "DEFAULT_MEDIAN_DISTANCE_MULTIPLE",
    "DEFAULT_SIZE_SLACK",
    "DigestMismatch",
    "DistanceBoundExceeded",
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
    "TooManyExamples",
    "UnreadableUpdate",
    "UpdateFileMissing",
    "UpdateMeta",
    "UpdateTooLarge",
    "WrongBaseModel",
    "check_file",
    "check_header",
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


class DistanceBoundExceeded(UpdateRejected):
    """The update is farther from the global model than the bound relative to the round's
    own spread (a multiple of its median distance): one scaled update cannot take a round
    over, with no bound configured."""


class TooManyExamples(UpdateRejected):
    """The update claims more examples than one cluster may weigh (``max_num_examples``)."""


MAX_NUM_EXAMPLES = 2**53  # the largest count a float64 weight holds exactly

# The defaults are the blueprint's (spec.influence; a test ties them): on unless turned off.
DEFAULT_MEDIAN_DISTANCE_MULTIPLE = 10.0
DEFAULT_MAX_NUM_EXAMPLES = 10_000_000


@dataclass(frozen=True)
class Limits:
    """Bounds on updates, safe by default: one cluster's influence on a round is bounded
    with nothing configured.

    Attributes:
        max_update_bytes: the largest update file accepted; None means the global model's
            size plus ``DEFAULT_SIZE_SLACK``.
        max_l2_norm: if set, reject updates whose distance to the global model (the L2 norm
            of the update minus the base, over all tensors) is larger.
        min_updates: fewer valid updates than this and the round is not aggregated.
        median_distance_multiple: reject updates whose distance to the global model is
            larger than this multiple of the round's median distance (the lower middle one
            for an even count, so that of two updates a scaled one is still refused; with a
            single update only ``max_l2_norm`` applies). None turns it off.
        max_num_examples: the most examples one cluster's update may weigh; None, no bound
            (beyond 2^53, which a float64 weight holds exactly).
        cap_num_examples: above ``max_num_examples``, weigh the update as that many
            examples instead of rejecting it.
    """

    max_update_bytes: int | None = None
    max_l2_norm: float | None = None
    min_updates: int = 1
    median_distance_multiple: float | None = DEFAULT_MEDIAN_DISTANCE_MULTIPLE
    max_num_examples: int | None = DEFAULT_MAX_NUM_EXAMPLES
    cap_num_examples: bool = False

    def __post_init__(self) -> None:
        multiple = self.median_distance_multiple
        if multiple is not None and not (math.isfinite(multiple) and multiple > 0):
            raise ValueError("median_distance_multiple: expected a finite number > 0")
        if self.max_num_examples is not None and self.max_num_examples < 1:
            raise ValueError("max_num_examples: expected an integer >= 1")

    def record(self) -> dict[str, Any]:
        """The bounds as the round record keeps them (what a re-aggregation must use)."""
        return {
            "max_update_bytes": self.max_update_bytes,
            "max_l2_norm": self.max_l2_norm,
            "min_updates": self.min_updates,
            "median_distance_multiple": self.median_distance_multiple,
            "max_num_examples": self.max_num_examples,
            "cap_num_examples": self.cap_num_examples,
        }


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


def _bounded_int(value: object, high: int) -> bool:
    return _int(value) and 0 <= value <= high  # type: ignore[operator]


def check_meta(cluster: str, meta: Mapping[str, Any], expect: Expectation) -> UpdateMeta:
    """Check an update's metadata against the round being aggregated.

    Nothing of the metadata reaches a reason but a value already checked to be a digest or
    a round number: the metadata comes from a cluster, or from whoever can write the store.
    Above ``max_num_examples`` the update is rejected, or capped to it when
    ``cap_num_examples`` (the returned ``num_examples`` is then the cap).

    Raises:
        NotOnRoster, MalformedMetadata, StaleRound, WrongBaseModel, TooManyExamples: with
            the reason.
    """
    if expect.roster is not None and cluster not in expect.roster:
        raise NotOnRoster(cluster, f"cluster is not on the roster of round {expect.round}")
    if not isinstance(meta, Mapping):
        raise MalformedMetadata(cluster, "metadata is not a JSON object")
    if meta.get("cluster", cluster) != cluster:
        raise MalformedMetadata(cluster, f"metadata names another cluster than {cluster!r}")
    for key in ("round", "base_model", "sha256", "num_examples"):
        if key not in meta:
            raise MalformedMetadata(cluster, f"metadata has no {key!r}")
    round_ = meta["round"]
    if not _int(round_):
        raise MalformedMetadata(cluster, "round: expected an integer")
    if round_ != expect.round:
        shown = f"round {round_}" if _bounded_int(round_, 2**31) else "another round"
        raise StaleRound(cluster, f"update is for {shown}, expected round {expect.round}")
    digest = meta["sha256"]
    if not is_update_digest(digest):
        raise MalformedMetadata(
            cluster,
            "sha256: expected 'blake3-blocks:', 'blake3:' or 'sha256:' and 64 lowercase hex digits",
        )
    base = meta["base_model"]
    if base != expect.base_digest:
        shown = base if is_digest(base) else "another model"
        raise WrongBaseModel(
            cluster, f"update was trained from {shown}, expected {expect.base_digest}"
        )
    n = meta["num_examples"]
    # Bounded so that a weight times a tensor value cannot overflow float64 when summed.
    if not _int(n) or not 1 <= n <= MAX_NUM_EXAMPLES:
        raise MalformedMetadata(
            cluster, f"num_examples: expected an integer from 1 to {MAX_NUM_EXAMPLES}"
        )
    ceiling = expect.limits.max_num_examples
    if ceiling is not None and n > ceiling:
        if not expect.limits.cap_num_examples:
            raise TooManyExamples(
                cluster, f"num_examples is over the ceiling of {ceiling} for one cluster"
            )
        n = ceiling
    raw_metrics = meta.get("metrics", {})
    if not isinstance(raw_metrics, Mapping):
        raise MalformedMetadata(cluster, "metrics: expected a map of names to numbers")
    metrics: dict[str, float] = {}
    for name, value in sorted(raw_metrics.items(), key=lambda kv: str(kv[0])):
        # Metrics are informative: a badly named, non-number, non-finite or absurd one is
        # left out, not fatal; the names kept are the hub's (they reach the record).
        if (
            len(metrics) < MAX_METRICS
            and isinstance(name, str)
            and METRIC_NAME.fullmatch(name)
            and (_int(value) or isinstance(value, float))
            and math.isfinite(value)
            and abs(value) <= MAX_METRIC_MAGNITUDE
        ):
            metrics[name] = float(value)
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
        info = os.stat(path)
        size = info.st_size
    except FileNotFoundError:
        raise UpdateFileMissing(cluster, "metadata is present but the update file is not") from None
    except OSError as exc:
        raise UnreadableUpdate(cluster, f"update file cannot be read ({_code(exc)})") from None
    if not stat.S_ISREG(info.st_mode):
        # Reading a FIFO would wait for ever; a directory or a device is no update.
        raise UnreadableUpdate(cluster, "update file is not a regular file")
    if size > expect.max_bytes:
        raise UpdateTooLarge(
            cluster, f"update file is {size} bytes, larger than the bound of {expect.max_bytes}"
        )
    try:
        header = read_header(path)
    except HeaderError as exc:
        raise NotSafetensors(cluster, f"not a valid safetensors file: {exc}") from None
    except OSError as exc:
        raise UnreadableUpdate(cluster, f"update file cannot be read ({_code(exc)})") from None
    return check_header(cluster, header, expect)


def check_header(cluster: str, header: Header, expect: Expectation) -> Header:
    """Check an update's parsed header against the global model's: names, dtypes, shapes.

    The part of :func:`check_file` after the header is read, for headers read elsewhere
    (a shard reads a store's update by byte range).

    Raises:
        TensorNamesMismatch, DtypeMismatch, ShapeMismatch: with the reason.
    """
    want = expect.base_header.tensors
    got = header.tensors
    if set(got) != set(want):
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            # Names from the update's header: counted, not shown.
            parts.append(f"{len(extra)} the global model does not have")
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
            shape = got[name].shape
            shown = f"shape {list(shape)}" if len(shape) <= 8 else f"{len(shape)} dimensions"
            raise ShapeMismatch(
                cluster,
                f"tensor {name!r} has {shown}, expected {list(want[name].shape)}",
            )
    return header


def _code(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def roster_set(roster: Collection[str] | None) -> frozenset[str] | None:
    """Normalise a roster argument (None means: every cluster is welcome)."""
    return None if roster is None else frozenset(roster)
