"""Write a ManifestWork's status the way OCM's work agent does, for the local hub.

The local hub must produce exactly what the reconcile job would read on a real hub, or
the simulation would test a different program. So the status is not hand-written per
state: the agent's rules are followed instead. Each manifest gets an entry in
``status.resourceStatus.manifests`` (its ordinal, group/version/kind/resource, name and
namespace) with Applied, Available and StatusFeedbackSynced conditions; the Job's
feedback values come from evaluating the work's own ``feedbackRules`` against a Job
status like the Job controller writes. A rule whose path finds nothing gives no value,
as the agent does; a path that yields a structure, or a syntax this module does not
evaluate, sets StatusFeedbackSynced to False.

``WellKnownStatus`` for a batch/v1 Job is the agent's built-in pair ``JobComplete``
(``.status.conditions[?(@.type=="Complete")].status``) and ``JobSucceeded``
(``.status.succeeded``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "MANIFEST_APPLIED",
    "MANIFEST_AVAILABLE",
    "WELL_KNOWN_JOB_PATHS",
    "WORK_APPLIED",
    "WORK_AVAILABLE",
    "JsonPathError",
    "evaluate_path",
    "feedback",
    "job_status",
    "resource_meta",
    "set_condition",
    "set_true",
]

WELL_KNOWN_JOB_PATHS: tuple[tuple[str, str], ...] = (
    ("JobComplete", '.status.conditions[?(@.type=="Complete")].status'),
    ("JobSucceeded", ".status.succeeded"),
)

# The (type, reason, message) of each True condition the agent writes once it has applied
# a manifest (per entry of resourceStatus.manifests) or the whole work (status.conditions).
MANIFEST_APPLIED = ("Applied", "AppliedManifestComplete", "Apply manifest complete")
MANIFEST_AVAILABLE = ("Available", "ResourceAvailable", "Resource is available")
WORK_APPLIED = ("Applied", "AppliedManifestWorkComplete", "Apply manifest work complete")
WORK_AVAILABLE = ("Available", "ResourcesAvailable", "All resources are available")

# Plural resource names of the kinds a rendered ManifestWork carries; others are guessed
# the way Kubernetes' default pluralization does it.
_PLURALS = {"Namespace": "namespaces", "ConfigMap": "configmaps", "Job": "jobs"}

_STEP = re.compile(
    r"""\.(?P<field>[A-Za-z_][A-Za-z0-9_-]*)
      | \[(?P<index>\d+)\]
      | \[\?\(@\.(?P<key>[A-Za-z_][A-Za-z0-9_-]*)\s*==\s*(?P<q>["'])(?P<value>[^"']*)(?P=q)\)\]""",
    re.VERBOSE,
)


class JsonPathError(ValueError):
    """A JSONPath the local agent cannot evaluate, or whose result is not a scalar."""


def job_status(succeeded: bool | None) -> dict[str, Any]:
    """A batch/v1 Job's ``status`` as the Job controller leaves it (backoffLimit 0).

    Args:
        succeeded: True once complete, False once failed, None while its pod runs.
    """
    if succeeded is None:
        return {"active": 1, "ready": 1}
    if succeeded:
        return {
            "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"},
            ],
        }
    return {
        "failed": 1,
        "conditions": [
            {"type": "FailureTarget", "status": "True"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"},
        ],
    }


def evaluate_path(obj: Any, path: str) -> list[Any]:
    """Every match of a simple Kubernetes JSONPath (``.a.b``, ``[0]``, ``[?(@.k=="v")]``).

    Raises:
        JsonPathError: the path uses syntax beyond those three forms.
    """
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if text.startswith("$"):
        text = text[1:]
    matches: list[Any] = [obj]
    position = 0
    while position < len(text):
        step = _STEP.match(text, position)
        if step is None:
            raise JsonPathError(f"unsupported JSONPath {path!r} at {text[position:]!r}")
        position = step.end()
        following: list[Any] = []
        for item in matches:
            if step.group("field") is not None:
                if isinstance(item, Mapping) and step.group("field") in item:
                    following.append(item[step.group("field")])
            elif step.group("index") is not None:
                index = int(step.group("index"))
                if isinstance(item, list) and index < len(item):
                    following.append(item[index])
            elif isinstance(item, list):
                key, value = step.group("key"), step.group("value")
                following += [
                    e for e in item if isinstance(e, Mapping) and str(e.get(key)) == value
                ]
        matches = following
    return matches


def _field_value(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"name": name, "fieldValue": {"type": "Boolean", "boolean": value}}
    if isinstance(value, int):
        return {"name": name, "fieldValue": {"type": "Integer", "integer": value}}
    if isinstance(value, str):
        return {"name": name, "fieldValue": {"type": "String", "string": value}}
    raise JsonPathError(f"{name}: the value is a {type(value).__name__}, not a scalar")


def feedback(
    kind: str, obj: Mapping[str, Any], rules: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The feedback values the rules give for ``obj``, and the errors met.

    Args:
        kind: the object's kind (``WellKnownStatus`` only knows ``Job`` here).
        obj: the object, with its ``status``.
        rules: the ``feedbackRules`` of the work's matching ``manifestConfigs`` entry.

    Returns:
        ``(values, errors)``: values in rule order, in the CRD's ``fieldValue`` shape.
    """
    values: list[dict[str, Any]] = []
    errors: list[str] = []
    for rule in rules:
        if rule.get("type") == "WellKnownStatus":
            paths = list(WELL_KNOWN_JOB_PATHS) if kind == "Job" else []
        else:
            paths = [
                (str(p.get("name")), str(p.get("path")))
                for p in rule.get("jsonPaths") or []
                if isinstance(p, Mapping)
            ]
        for name, path in paths:
            try:
                found = evaluate_path(obj, path)
                if len(found) > 1:
                    raise JsonPathError(f"{name}: {path} matched {len(found)} values")
                if found:
                    values.append(_field_value(name, found[0]))
            except JsonPathError as exc:
                errors.append(str(exc))
    return values, errors


def resource_meta(ordinal: int, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The ``resourceMeta`` the agent writes for the manifest at ``ordinal``."""
    api_version = str(manifest.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    kind = str(manifest.get("kind", ""))
    plural = _PLURALS.get(kind) or _pluralize(kind.lower())
    meta = manifest.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    out: dict[str, Any] = {
        "ordinal": ordinal,
        "group": group,
        "version": version,
        "kind": kind,
        "resource": plural,
        "name": str(meta.get("name", "")),
    }
    if meta.get("namespace"):
        out["namespace"] = str(meta["namespace"])
    return out


def _pluralize(word: str) -> str:
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def set_condition(
    conditions: list[dict[str, Any]],
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: str,
    observed_generation: int | None = None,
) -> None:
    """Add or update a condition in place; its transition time moves only on a change."""
    new: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    }
    if observed_generation is not None:
        new["observedGeneration"] = observed_generation
    for index, old in enumerate(conditions):
        if old.get("type") == type_:
            if old.get("status") == status:
                new["lastTransitionTime"] = old.get("lastTransitionTime", now)
            conditions[index] = new
            return
    conditions.append(new)


def set_true(
    conditions: list[dict[str, Any]],
    condition: tuple[str, str, str],
    now: str,
    observed_generation: int,
) -> None:
    """Set one of the agent's True conditions (``MANIFEST_APPLIED``...) in place."""
    type_, reason, message = condition
    set_condition(
        conditions,
        type_=type_,
        status="True",
        reason=reason,
        message=message,
        now=now,
        observed_generation=observed_generation,
    )
