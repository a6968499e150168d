"""How big OCM counts a ManifestWork's manifests, and the limit its webhook enforces.

A hub refuses a ManifestWork whose manifests are too big, and it does so at Argo CD's
sync, long after the pull request that made the work merged. So both `fl-gitops render`
and `fl-gitops validate --rendered` count the way the hub does and refuse first.

OCM's work webhook (open-cluster-management-io/ocm, ``pkg/work/webhook/common/
validator.go``, ``ValidateManifests``) adds up ``manifest.Size()`` over
``spec.workload.manifests`` and refuses a total above its limit, ``500 * 1024`` bytes
unless the hub's webhook runs with another ``--manifestLimit``. ``Size()`` is the
protobuf size of the manifest's ``runtime.RawExtension``: the raw JSON bytes, one tag
byte, and the varint of their length. The raw JSON is the manifest as the API server
encodes it for the webhook: compact, with ``<``, ``>``, ``&``, U+2028 and U+2029
escaped as ``\\u003c``... (Go's encoder), non-ASCII text as UTF-8, and a float with no
fraction written as an integer (checked against a kube-apiserver 1.20 reading back a
ManifestWork). The same rule applies to a ManifestWorkReplicaSet's template.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

__all__ = [
    "MANIFEST_LIMIT",
    "manifest_json_size",
    "manifest_size",
    "manifests_size",
    "size_message",
]

#: OCM's default limit on the sum of a ManifestWork's manifest sizes, in bytes.
MANIFEST_LIMIT = 500 * 1024

# Characters Go's encoding/json escapes inside strings beyond what Python's does, with
# the bytes each one takes once escaped minus the bytes it takes as UTF-8.
_GO_ESCAPES = {"<": 5, ">": 5, "&": 5, "\u2028": 3, "\u2029": 3}


def _go_float(value: float) -> str:
    """A float the way Go's encoding/json writes a float64."""
    if not math.isfinite(value):
        return json.dumps(value)  # not JSON; Go refuses it, any length will do
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    magnitude = abs(value)
    if 1e-6 <= magnitude < 1e21:
        return format(Decimal(repr(value)), "f")
    mantissa, _, exponent = repr(value).partition("e")
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"


def _float_correction(value: Any) -> int:
    """Bytes Go's text of every float in ``value`` takes beyond Python's ``repr``."""
    if isinstance(value, Mapping):
        return sum(_float_correction(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_float_correction(v) for v in value)
    if isinstance(value, float):
        return len(_go_float(value)) - len(repr(value))
    return 0


def manifest_json_size(manifest: Any) -> int:
    """Bytes of the manifest's JSON as the API server hands it to OCM's webhook."""
    text = json.dumps(manifest, ensure_ascii=False, separators=(",", ":"), default=str)
    size = len(text.encode("utf-8", "surrogatepass")) + _float_correction(manifest)
    return size + sum(text.count(char) * extra for char, extra in _GO_ESCAPES.items())


def _varint_size(number: int) -> int:
    size = 1
    while number >= 0x80:
        number >>= 7
        size += 1
    return size


def manifest_size(manifest: Any) -> int:
    """What OCM's webhook counts for one manifest: its JSON plus the protobuf framing."""
    size = manifest_json_size(manifest)
    return 1 + size + _varint_size(size)


def manifests_size(manifests: Sequence[Any]) -> int:
    """The total OCM's webhook compares with its limit, for one work's manifests."""
    return sum(manifest_size(m) for m in manifests)


def size_message(size: int, *, kind: str, cluster: str | None = None) -> str:
    """What is wrong with manifests of ``size`` bytes (over ``MANIFEST_LIMIT``).

    Args:
        size: the total, from ``manifests_size``.
        kind: ``ManifestWork`` or ``ManifestWorkReplicaSet``.
        cluster: a ManifestWork's namespace, which names its cluster.
    """
    whom = f"this {kind}" + (f" for cluster {cluster}" if cluster else "")
    return (
        f"the manifests are {size} bytes as OCM counts them, over its limit of "
        f"{MANIFEST_LIMIT} bytes (500 KiB): the hub would refuse {whom}"
    )
