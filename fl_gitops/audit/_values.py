"""Values read from Git for an audit, each checked against its pattern before it is used.

Round records, round state and trailers are files and messages in a repository that an
attacker may have written. The audit reads each field through one of these functions: it
gets the value only if it has the field's shape (a digest, a cluster name, a small
non-negative integer), and None otherwise, so nothing else from a file can reach a report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from fl_gitops.store import is_cluster_name
from fl_gitops.tensors import is_digest, is_update_digest

__all__ = [
    "RoundStateView",
    "as_cluster",
    "as_count",
    "as_digest",
    "as_name",
    "as_update_digest",
    "parse_mapping",
    "parse_round_state",
    "safe_author",
]

# An experiment is a Kubernetes object name.
_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_COUNT_RE = re.compile(r"0|[1-9][0-9]{0,15}")
# A commit author as shown: "name <email>" in letters, digits and common punctuation.
_AUTHOR_RE = re.compile(r"[\w .,'()+-]{1,100} <[\w.+-]{0,64}@?[\w.-]{0,190}>")
_PHASES = ("Running", "Completed", "Failed")
_MAX_FILE = 1 << 20  # a record or a round state is a few KiB; refuse to parse megabytes


def as_digest(value: object) -> str | None:
    """``sha256:<64 hex>``, or None."""
    return value if is_digest(value) else None


def as_update_digest(value: object) -> str | None:
    """An update's digest (``blake3-blocks:``, ``blake3:`` or ``sha256:`` and 64 hex), or None."""
    return value if is_update_digest(value) else None


def as_cluster(value: object) -> str | None:
    """A cluster name, or None."""
    return value if is_cluster_name(value) else None


def as_name(value: object) -> str | None:
    """An experiment (object) name, or None."""
    return value if isinstance(value, str) and _NAME_RE.fullmatch(value) else None


def as_count(value: object) -> int | None:
    """A non-negative integer, given as a number or as its decimal string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 2**53 else None
    if isinstance(value, str) and _COUNT_RE.fullmatch(value):
        return int(value)
    return None


def safe_author(author: str) -> str:
    """The commit's author if it reads as ``name <email>``, else a description."""
    return author if _AUTHOR_RE.fullmatch(author) else "an author whose name is not shown"


def parse_mapping(data: bytes) -> dict[str, Any] | None:
    """A YAML document that is a mapping, or None (too big, not YAML, not a mapping)."""
    if len(data) > _MAX_FILE:
        return None
    try:
        obj = yaml.load(data, Loader=yaml.CSafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


@dataclass(frozen=True)
class RoundStateView:
    """The round-state ConfigMap's fields an audit compares (None: absent or malformed)."""

    round: int | None
    attempt: int | None
    phase: str | None
    model: str | None
    experiment: str | None
    blueprint: str | None


def parse_round_state(data: bytes) -> RoundStateView | None:
    """``hub/round-state.yaml``'s data, each field checked; None if it is no ConfigMap."""
    obj = parse_mapping(data)
    fields = obj.get("data") if obj is not None else None
    if not isinstance(fields, Mapping):
        return None
    phase = fields.get("phase", "Running")
    attempt = as_count(fields.get("attempt", "1"))
    return RoundStateView(
        round=as_count(fields.get("round")),
        attempt=attempt,
        phase=phase if phase in _PHASES else None,
        model=as_digest(fields.get("globalModelDigest")),
        experiment=as_name(fields.get("experiment")),
        blueprint=as_digest(fields.get("blueprintDigest")),
    )
