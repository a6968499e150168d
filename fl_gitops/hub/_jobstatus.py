"""One pure reading of a shards' Indexed Job as the API server returns it.

The reconcile pass waits for the shards level-triggered: each pass reads the Job again and
needs one answer, which indexes are done, which failed, whether the Job is over. This
module turns the Job's ``status`` (as the Job controller writes it) into a
``ShardJobState``, and tells a Job made for this round's shards from another object that
took its name. Pure, with no Kubernetes client, so that it is tested on the shapes every
Kubernetes version writes and a hub of any kind can share it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fl_gitops.hub._protocol import ShardJobState
from fl_gitops.hub.errors import trim_detail

__all__ = ["is_same_job", "parse_indexes", "shard_job_state"]

_RANGE = re.compile(r"(\d{1,9})(?:-(\d{1,9}))?")


def parse_indexes(text: object, count: int) -> frozenset[int]:
    """The indexes an Indexed Job's ``completedIndexes`` or ``failedIndexes`` names.

    The controller writes sorted, comma-separated indexes and ranges: ``"0-2,4"``. Indexes
    at or beyond ``count`` (not this Job's) are left out, and so is an unreadable part,
    since one garbled entry must not hide the others from a level-triggered reader.

    Args:
        text: the field's value; None or "" for none.
        count: the Job's completions.

    Returns:
        The set of indexes in ``range(count)``.
    """
    if not isinstance(text, str) or not text:
        return frozenset()
    found: set[int] = set()
    for part in text.split(","):
        match = _RANGE.fullmatch(part.strip())
        if match is None:
            continue
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        found.update(range(first, min(last, count - 1) + 1))
    return frozenset(found)


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    conditions = status.get("conditions")
    for condition in conditions if isinstance(conditions, list) else ():
        if (
            isinstance(condition, Mapping)
            and condition.get("type") == kind
            and condition.get("status") == "True"
        ):
            return condition
    return None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def shard_job_state(job: Mapping[str, Any], shards: int) -> ShardJobState:
    """What the Job ``job`` (a ``batch/v1`` Job object) says about its ``shards`` indexes.

    ``succeeded`` comes from ``status.completedIndexes``; a Job whose ``Complete``
    condition is true has every index done even where the hub writes no
    ``completedIndexes`` (a hub without Indexed Jobs). ``failed`` is the ``Failed``
    condition, or ``FailureTarget`` (1.31+: the controller decided the Job failed and is
    stopping its pods). ``reason`` is the condition's reason and message, trimmed: the
    controller's words, never a pod's output.

    Args:
        job: the Job as the API server returned it.
        shards: the number of indexes the round's plan has.

    Returns:
        The state, with ``exists`` true.
    """
    status = job.get("status")
    status = status if isinstance(status, Mapping) else {}
    complete = _condition(status, "Complete") is not None
    failure = _condition(status, "Failed") or _condition(status, "FailureTarget")
    succeeded = parse_indexes(status.get("completedIndexes"), shards)
    if complete:
        succeeded = frozenset(range(shards))
    reason = ""
    if failure is not None:
        words = trim_detail(failure.get("reason"), 60) or "Failed"
        message = trim_detail(failure.get("message"), 200)
        reason = f"{words}: {message}" if message else words
    return ShardJobState(
        exists=True,
        succeeded=succeeded,
        failed_indexes=parse_indexes(status.get("failedIndexes"), shards),
        active=_count(status.get("active")),
        complete=complete and failure is None,
        failed=failure is not None,
        reason=reason,
    )


def _container(job: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    node: Any = job
    for key in ("spec", "template", "spec", "containers"):
        node = node.get(key) if isinstance(node, Mapping) else None
    for container in node if isinstance(node, list) else ():
        if isinstance(container, Mapping) and container.get("name") == name:
            return container
    return None


def is_same_job(found: Mapping[str, Any], wanted: Mapping[str, Any], container: str) -> bool:
    """Whether the Job ``found`` on the hub is the Job ``wanted`` was rendered as.

    Compared on what names the work: every label of ``wanted`` (experiment, round,
    component) with its value, and the shard container's image, command and arguments
    (which carry the inputs' digest); the fields the API server fills in or drops (an
    older hub drops those it does not know) are not compared.
    """
    meta = found.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    wanted_labels = wanted["metadata"]["labels"]
    if not isinstance(labels, Mapping) or any(
        labels.get(key) != value for key, value in wanted_labels.items()
    ):
        return False
    mine, theirs = _container(wanted, container), _container(found, container)
    if mine is None or theirs is None:
        return False
    return all(theirs.get(key) == mine.get(key) for key in ("image", "command", "args"))
