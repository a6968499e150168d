"""What a cluster reports about its update through the hub: the authority for a round.

The model store is shared: anyone who can write to the bucket can replace a cluster's
update and rewrite its metadata to match. The hub is not shared: each cluster's work agent
writes its own ManifestWork's status with the cluster's own credentials. So each Job writes
its update's digest, ``num_examples`` and metrics into a per-round result ConfigMap (the
work creates it empty with ``updateStrategy: CreateOnly``, and a Role lets the Job
``get``/``patch`` exactly that one object), a ``JSONPaths`` feedback rule reads the three
values back as strings, and the reconcile pass accepts an update only when its bytes hash
to the digest reported here, weighed by the ``num_examples`` reported here.

This module is the one home of that contract: the ConfigMap's keys (which are also the
feedback names), what the client writes, and the strict parse of what the hub returns.
With client-side clipping (``spec.strategy.dp.clipping: client``) each Job also reports
whether its update was within the round's clip before it clipped it (``unclipped``:
``"true"`` or ``"false"``): the one bit adaptive clipping needs from each cluster, which
the hub cannot measure itself once the update is clipped. That key is optional (rounds
without client clipping neither write it nor render its feedback rule); whether a round
needs it is the reconcile pass's to say.

It imports nothing of fl_gitops but the digest pattern and the error root, so that the
client, the hubs, the aggregation and ``verify`` can all use it. A parse failure says which
value was wrong and what was expected, never what the value was: the values come from a
cluster.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from fl_gitops.errors import FlGitopsError
from fl_gitops.tensors._digest import UPDATE_DIGEST_PATTERN

__all__ = [
    "DIGEST_KEY",
    "MAX_METRICS",
    "MAX_METRICS_BYTES",
    "MAX_NUM_EXAMPLES",
    "METRICS_KEY",
    "METRIC_NAME",
    "NUM_EXAMPLES_KEY",
    "OPTIONAL_REPORT_KEYS",
    "REPORT_KEYS",
    "RESULT_CONFIGMAP_ENV",
    "RESULT_FILE_ENV",
    "UNCLIPPED_KEY",
    "HubReport",
    "ReportError",
    "parse_report",
    "report_data",
    "result_name",
]

# The result ConfigMap's data keys, which the rendered feedback rules use as their names.
DIGEST_KEY = "digest"
NUM_EXAMPLES_KEY = "numExamples"
METRICS_KEY = "metrics"
REPORT_KEYS = (DIGEST_KEY, NUM_EXAMPLES_KEY, METRICS_KEY)
# Reported only in rounds that clip on the clusters (and read back by a feedback rule
# rendered only for those rounds): "true" when the update's distance to the global model
# was at most the round's clip before the Job clipped it, else "false".
UNCLIPPED_KEY = "unclipped"
OPTIONAL_REPORT_KEYS = (UNCLIPPED_KEY,)
_BITS = {"true": True, "false": False}

# The Job's environment: the result ConfigMap as ``<namespace>/<name>`` (rendered), or a
# file to write the same data to instead (the simulation's channel, set by its agent).
RESULT_CONFIGMAP_ENV = "FL_RESULT_CONFIGMAP"
RESULT_FILE_ENV = "FL_RESULT_FILE"

# Bounds on what one cluster may report (the status feedback is small by design).
MAX_NUM_EXAMPLES = 2**53 - 1  # what a JSON number holds exactly; the blueprint's ceiling is lower
MAX_METRICS = 16
MAX_METRICS_BYTES = 2048
MAX_METRIC_MAGNITUDE = 1e15
METRIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_DIGEST_RE = re.compile(UPDATE_DIGEST_PATTERN)
_INT_RE = re.compile(r"0|[1-9][0-9]{0,15}")


class ReportError(ValueError, FlGitopsError):
    """A reported value is missing or not what the contract allows (says which, never the value)."""


@dataclass(frozen=True)
class HubReport:
    """One cluster's report for one round, as read back through the hub.

    ``unclipped`` is None when the cluster reported no clip bit (a round without
    client-side clipping).
    """

    digest: str
    num_examples: int
    metrics: dict[str, float] = field(default_factory=dict)
    unclipped: bool | None = None


def result_name(job: str) -> str:
    """The result ConfigMap of the round's Job ``job``: one per Job, so a retry of a round
    (a new Job name) starts from an empty one, and no report outlives its round."""
    return f"{job}-result"


def report_data(
    digest: str,
    num_examples: int,
    metrics: Mapping[str, float],
    *,
    unclipped: bool | None = None,
) -> dict[str, str]:
    """The result ConfigMap's ``data`` a client writes: three strings, each checked first,
    and a fourth, ``unclipped``, when the round clips on the clusters (``unclipped`` given).

    Raises:
        ReportError: a value the hub side would refuse (so a client never reports one).
    """
    data = {
        DIGEST_KEY: digest,
        NUM_EXAMPLES_KEY: str(num_examples),
        METRICS_KEY: json.dumps(
            {k: float(v) for k, v in sorted(metrics.items())},
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
        ),
    }
    if unclipped is not None:
        data[UNCLIPPED_KEY] = "true" if unclipped else "false"
    parse_report(data)
    return data


def _metrics(text: str) -> dict[str, float]:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_METRICS_BYTES:
        raise ReportError(f"{METRICS_KEY}: longer than {MAX_METRICS_BYTES} bytes")
    try:
        raw = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ReportError(f"{METRICS_KEY}: not a JSON object") from None
    if not isinstance(raw, dict):
        raise ReportError(f"{METRICS_KEY}: not a JSON object")
    if len(raw) > MAX_METRICS:
        raise ReportError(f"{METRICS_KEY}: more than {MAX_METRICS} metrics")
    metrics: dict[str, float] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not METRIC_NAME.fullmatch(name):
            raise ReportError(f"{METRICS_KEY}: a metric name is not [a-z][a-z0-9_]{{0,31}}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ReportError(f"{METRICS_KEY}.{name}: expected a number")
        number = float(value)
        if not math.isfinite(number) or abs(number) > MAX_METRIC_MAGNITUDE:
            raise ReportError(f"{METRICS_KEY}.{name}: expected a finite number within ±1e15")
        metrics[name] = number
    return dict(sorted(metrics.items()))


def _refuse_constant(_: str) -> float:
    raise ValueError("NaN and Infinity are not JSON")


def parse_report(values: Mapping[str, object]) -> HubReport:
    """Parse the feedback values (or a result ConfigMap's data) into a :class:`HubReport`.

    Every value must be a string, as the JSONPaths feedback of a ConfigMap's ``data``
    gives them. ``unclipped`` may be absent (the report's ``unclipped`` is then None);
    when present it must be exactly ``"true"`` or ``"false"``.

    Raises:
        ReportError: a value is missing, not a string, or outside the contract.
    """
    texts: dict[str, str] = {}
    for key in REPORT_KEYS:
        value = values.get(key)
        if value is None:
            raise ReportError(f"{key}: not reported")
        if not isinstance(value, str):
            raise ReportError(f"{key}: expected a string")
        texts[key] = value
    digest = texts[DIGEST_KEY]
    if len(digest) > 128 or not _DIGEST_RE.fullmatch(digest):
        raise ReportError(
            f"{DIGEST_KEY}: expected blake3-blocks:, blake3: or sha256: and 64 lowercase hex"
        )
    count = texts[NUM_EXAMPLES_KEY]
    if not _INT_RE.fullmatch(count) or int(count) > MAX_NUM_EXAMPLES:
        raise ReportError(f"{NUM_EXAMPLES_KEY}: expected an integer from 0 to 2^53 - 1")
    bit = values.get(UNCLIPPED_KEY)
    unclipped = None
    if bit is not None:
        if not isinstance(bit, str) or bit not in _BITS:
            raise ReportError(f'{UNCLIPPED_KEY}: expected "true" or "false"')
        unclipped = _BITS[bit]
    return HubReport(digest, int(count), _metrics(texts[METRICS_KEY]), unclipped)
