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

With secure aggregation (``spec.strategy.secureAggregation``) each of a round's Jobs also
reports ``secagg``: one compact JSON object (``SecAggReport``) with the phase it ran and
what that phase made public: the cluster's share key, a mask key and the digest of the
sealed shares it wrote to the store, or the digest of its reveal. Only the training phase
reports ``digest`` (then the digest of the masked input in the store), ``numExamples`` and
``metrics``; the other phases report ``secagg`` alone. Keys and digests are public values:
what the channel adds is that the hub knows which cluster sent them.

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
from fl_gitops.tensors._digest import UPDATE_DIGEST_PATTERN, is_digest

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
    "SECAGG_KEY",
    "SECAGG_PHASES",
    "UNCLIPPED_KEY",
    "HubReport",
    "ReportError",
    "SecAggReport",
    "parse_report",
    "report_data",
    "result_name",
    "secagg_report_data",
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
# With secure aggregation: the phase's public values (``SecAggReport``), one JSON object.
SECAGG_KEY = "secagg"
OPTIONAL_REPORT_KEYS = (UNCLIPPED_KEY, SECAGG_KEY)
#: A secure round's Jobs, in order: the experiment's share key (once), the round's mask
#: key and sealed shares, training (masked input, and the next round's mask key and
#: shares), the survivors' reveal.
SECAGG_PHASES = ("keys", "share", "train", "reveal")
_SECAGG_FIELDS = {"phase", "shareKey", "maskKey", "shares", "reveal"}
MAX_SECAGG_BYTES = 1024
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
class SecAggReport:
    """What one secure-aggregation Job made public (each None when its phase has none).

    ``share_key``: the cluster's share key (X25519, hex), in every phase that knows it;
    ``mask_key`` and ``shares``: a mask key's public half and the digest of the sealed
    shares of it and of a self-mask seed (the ``share`` phase's, or in ``train`` the next
    round's); ``reveal``: the digest of the reveal the ``reveal`` phase wrote.
    """

    phase: str
    share_key: str | None = None
    mask_key: str | None = None
    shares: str | None = None
    reveal: str | None = None

    def fields(self) -> dict[str, str]:
        """The report's values under their JSON names, those it has (``HubReport.secagg``)."""
        doc = {
            "phase": self.phase,
            "shareKey": self.share_key,
            "maskKey": self.mask_key,
            "shares": self.shares,
            "reveal": self.reveal,
        }
        return {k: v for k, v in doc.items() if v is not None}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> SecAggReport:
        """Back from ``fields()`` (values already checked by ``parse_report``)."""
        return cls(
            phase=fields["phase"],
            share_key=fields.get("shareKey"),
            mask_key=fields.get("maskKey"),
            shares=fields.get("shares"),
            reveal=fields.get("reveal"),
        )

    def to_text(self) -> str:
        return json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))


def _secagg(value: object) -> SecAggReport:
    if not isinstance(value, str) or len(value) > MAX_SECAGG_BYTES:
        raise ReportError(
            f"{SECAGG_KEY}: expected a JSON object of at most {MAX_SECAGG_BYTES} bytes"
        )
    try:
        raw = json.loads(value, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ReportError(f"{SECAGG_KEY}: not a JSON object") from None
    if not isinstance(raw, dict) or not set(raw) <= _SECAGG_FIELDS:
        raise ReportError(
            f"{SECAGG_KEY}: expected an object of {', '.join(sorted(_SECAGG_FIELDS))}"
        )
    if raw.get("phase") not in SECAGG_PHASES:
        raise ReportError(f"{SECAGG_KEY}.phase: expected one of {', '.join(SECAGG_PHASES)}")
    for key, prefix, what in (
        ("shareKey", "sha256:", "64 lowercase hex (an X25519 key)"),
        ("maskKey", "sha256:", "64 lowercase hex (an X25519 key)"),
        ("shares", "", "sha256: and 64 lowercase hex"),
        ("reveal", "", "sha256: and 64 lowercase hex"),
    ):
        # A key is 64 lowercase hex, as a digest's hex part is: one pattern for both.
        item = raw.get(key)
        if item is not None and not (isinstance(item, str) and is_digest(prefix + item)):
            raise ReportError(f"{SECAGG_KEY}.{key}: expected {what}")
    if ("maskKey" in raw) != ("shares" in raw):
        raise ReportError(f"{SECAGG_KEY}: maskKey and shares go together")
    return SecAggReport(
        phase=raw["phase"],
        share_key=raw.get("shareKey"),
        mask_key=raw.get("maskKey"),
        shares=raw.get("shares"),
        reveal=raw.get("reveal"),
    )


@dataclass(frozen=True)
class HubReport:
    """One cluster's report for one round, as read back through the hub.

    ``unclipped`` is None when the cluster reported no clip bit (a round without
    client-side clipping); ``secagg`` None without secure aggregation, else the checked
    values of its ``secagg`` key under their JSON names (``SecAggReport.from_fields``
    gives them typed). A secure round's phases other than training report ``secagg``
    alone: ``digest`` is then empty and ``num_examples`` 0.
    """

    digest: str
    num_examples: int
    metrics: dict[str, float] = field(default_factory=dict)
    unclipped: bool | None = None
    secagg: dict[str, str] | None = None


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
    secagg: SecAggReport | None = None,
) -> dict[str, str]:
    """The result ConfigMap's ``data`` a client writes: three strings, each checked first,
    and a fourth, ``unclipped``, when the round clips on the clusters (``unclipped`` given),
    and ``secagg`` with secure aggregation.

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
    if secagg is not None:
        data[SECAGG_KEY] = secagg.to_text()
    parse_report(data)
    return data


def secagg_report_data(secagg: SecAggReport) -> dict[str, str]:
    """The ``data`` of a secure round's Job that is not its training (``secagg`` alone).

    Raises:
        ReportError: as ``report_data``.
    """
    data = {SECAGG_KEY: secagg.to_text()}
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
    secagg = None
    if values.get(SECAGG_KEY) is not None:
        secagg = _secagg(values.get(SECAGG_KEY)).fields()
        if secagg["phase"] != "train":
            return HubReport("", 0, {}, None, secagg)
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
    return HubReport(digest, int(count), _metrics(texts[METRICS_KEY]), unclipped, secagg)
