"""One pure reading of a shards' Indexed Job as the API server returns it.

The reconcile pass waits for the shards level-triggered: each pass reads the Job again and
needs one answer, which indexes are done, which failed, whether the Job is over. This
module turns the Job's ``status`` (as the Job controller writes it) into a
``ShardJobState``, reads the ending message each succeeded index's pod left in its status
(``shard_messages``: the kubelet writes it with the node's credentials, so a party that can
write to the store but not to the hub cannot change it), and tells a Job made for this
round's shards from another object that took its name. Pure, with no Kubernetes client, so
that it is tested on the shapes every Kubernetes version writes and a hub of any kind can
share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from fl_gitops.hub._protocol import ShardJobState, parse_shard_message
from fl_gitops.hub.errors import trim_detail

__all__ = [
    "COMPLETION_INDEX_ANNOTATION",
    "is_same_job",
    "parse_indexes",
    "shard_job_state",
    "shard_messages",
]

#: The annotation the Job controller gives each pod of an Indexed Job: its index, in decimal.
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"

_RANGE = re.compile(r"(\d{1,9})(?:-(\d{1,9}))?")
_INDEX = re.compile(r"0|[1-9]\d{0,8}")


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


def _get(node: object, *keys: str) -> Any:
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _owned_by(pod: Mapping[str, Any], uid: str) -> bool:
    """Whether the Job of ``uid`` is the pod's controller (the Job controller's own mark)."""
    owners = _get(pod, "metadata", "ownerReferences")
    if not isinstance(owners, list):
        return False
    return any(
        isinstance(owner, Mapping) and owner.get("uid") == uid and owner.get("controller") is True
        for owner in owners
    )


def _completion_index(pod: Mapping[str, Any], shards: int) -> int | None:
    text = _get(pod, "metadata", "annotations", COMPLETION_INDEX_ANNOTATION)
    if not isinstance(text, str) or _INDEX.fullmatch(text) is None:
        return None
    index = int(text)
    return index if index < shards else None


def _ending(pod: Mapping[str, Any], container: str) -> tuple[bool, object]:
    """(whether ``container`` ended with exit code 0, the message it left)."""
    statuses = _get(pod, "status", "containerStatuses")
    for status in statuses if isinstance(statuses, list) else ():
        if isinstance(status, Mapping) and status.get("name") == container:
            terminated = _get(status, "state", "terminated")
            code = _get(terminated, "exitCode")
            if code == 0 and not isinstance(code, bool):
                return True, _get(terminated, "message")
            return False, None
    return False, None


def shard_messages(
    job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], shards: int, container: str
) -> dict[int, str]:
    """Each succeeded index's ending message, as its pod's status holds it.

    A pod counts when the Job ``job`` is its controller (an ownerReference with the Job's
    uid and ``controller: true``: a label alone names a Job by name, and another Job may
    have had that name), its phase is ``Succeeded``, its completion-index annotation is an
    index of the Job, and its ``container`` terminated with exit code 0. Its message is
    what :func:`parse_shard_message` accepts; an index whose counted pods left anything
    else, or differing messages (two pods of one index that disagree: one of them is not
    the shard's), is left out, so the merge refuses the round rather than pick one. The
    messages are a pod's output and are never shown.

    Args:
        job: the Job as the API server returned it (its ``metadata.uid``).
        pods: the pods listed by the Job's ``job-name`` label, as the server returned them.
        shards: the Job's completions.
        container: the shard container's name.

    Returns:
        ``{index: "sha256:<hex>"}`` for the indexes with one agreed message.
    """
    uid = _get(job, "metadata", "uid")
    if not isinstance(uid, str) or not uid:
        return {}
    found: dict[int, set[str | None]] = {}
    for pod in pods:
        if not isinstance(pod, Mapping) or not _owned_by(pod, uid):
            continue
        index = _completion_index(pod, shards)
        if index is None or _get(pod, "status", "phase") != "Succeeded":
            continue
        ended, message = _ending(pod, container)
        if ended:
            found.setdefault(index, set()).add(parse_shard_message(message))
    return {
        index: value
        for index, values in sorted(found.items())
        if len(values) == 1 and (value := next(iter(values))) is not None
    }
