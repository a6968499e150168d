"""Write a ManifestWork's status the way OCM's work agent does, where no agent runs.

``LocalHub`` and the simulation's writers for a real API server (which put the result
through the status subresource) both call ``write_applied_report`` and
``write_job_report``. They must produce exactly what the reconcile job would read on a
real hub, or the simulation would test a different program. So the status is not hand-written per
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

``conditionRules`` are evaluated too (OCM's ``pkg/work/spoke/conditions``): the
well-known ``Complete`` rule of a batch/v1 Job is True once the Job has a ``Complete`` or
``Failed`` condition that is True, with the message "Job is finished" (else False, "Job
is not finished"), written on the manifest's entry with reason ``ConditionRuleEvaluated``
and the work's generation. The work then gets one condition per rule-made type,
aggregated over its manifests (reason ``ConditionRulesAggregated``: False if any is
False, Unknown if any is Unknown or none is True, else True), and a rule-made condition
from an older generation is dropped, as the agent's status controller does. A work whose
``Complete`` condition is True is one the agent no longer applies. CEL rules are not
evaluated here: such a rule gives an Unknown condition that says so.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fl_gitops.errors import FlGitopsError
from fl_gitops.hub.errors import HubNotFound
from fl_gitops.reports import result_name

__all__ = [
    "CONDITION_RULE_REASON_PREFIX",
    "MANIFEST_APPLIED",
    "MANIFEST_AVAILABLE",
    "WELL_KNOWN_JOB_PATHS",
    "WORK_APPLIED",
    "WORK_AVAILABLE",
    "JsonPathError",
    "aggregate_rule_conditions",
    "evaluate_condition_rules",
    "evaluate_path",
    "feedback",
    "job_status",
    "prune_rule_conditions",
    "resource_meta",
    "set_condition",
    "set_true",
    "write_applied_report",
    "write_job_report",
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

# Every condition a condition rule makes has a reason starting with this (the agent tells
# rule-made conditions from its own by it, when it prunes or aggregates them).
CONDITION_RULE_REASON_PREFIX = "ConditionRule"
_RULE_EVALUATED = "ConditionRuleEvaluated"
_RULES_AGGREGATED = "ConditionRulesAggregated"

# Plural resource names of the kinds a rendered ManifestWork carries; others are guessed
# the way Kubernetes' default pluralization does it.
_PLURALS = {"Namespace": "namespaces", "ConfigMap": "configmaps", "Job": "jobs"}

_STEP = re.compile(
    r"""\.(?P<field>[A-Za-z_][A-Za-z0-9_-]*)
      | \[(?P<index>\d+)\]
      | \[\?\(@\.(?P<key>[A-Za-z_][A-Za-z0-9_-]*)\s*==\s*(?P<q>["'])(?P<value>[^"']*)(?P=q)\)\]""",
    re.VERBOSE,
)


class JsonPathError(ValueError, FlGitopsError):
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


def _job_finished(obj: Mapping[str, Any]) -> bool:
    """The well-known Job rule: a ``Complete`` or ``Failed`` condition that is True."""
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    if not isinstance(conditions, list):
        return False
    return any(
        isinstance(c, Mapping)
        and c.get("type") in ("Complete", "Failed")
        and c.get("status") == "True"
        for c in conditions
    )


def evaluate_condition_rules(
    meta: Mapping[str, Any], obj: Mapping[str, Any], rules: Sequence[Mapping[str, Any]]
) -> list[dict[str, str]]:
    """The conditions the ``conditionRules`` give for one applied object.

    Args:
        meta: the manifest's ``resourceMeta`` (its group, version and kind choose the
            well-known rules).
        obj: the object, with its ``status``.
        rules: the ``conditionRules`` of the work's matching ``manifestConfigs`` entries.

    Returns:
        One ``{type, status, reason, message}`` per rule that applies, in rule order. A
        ``WellKnownConditions`` rule with no well-known rule for this kind gives none,
        as on the agent.
    """
    out: list[dict[str, str]] = []
    for rule in rules:
        condition = str(rule.get("condition", ""))
        rule_type = rule.get("type")
        if rule_type == "WellKnownConditions":
            gvk = (meta.get("group"), meta.get("version"), meta.get("kind"))
            if (gvk, condition) != (("batch", "v1", "Job"), "Complete"):
                continue
            finished = _job_finished(obj)
            out.append(
                {
                    "type": condition,
                    "status": "True" if finished else "False",
                    "reason": _RULE_EVALUATED,
                    "message": "Job is finished" if finished else "Job is not finished",
                }
            )
        elif rule_type == "CEL":
            out.append(
                {
                    "type": condition,
                    "status": "Unknown",
                    "reason": "ConditionRuleInternalError",
                    "message": "the local work agent does not evaluate CEL expressions",
                }
            )
        else:
            out.append(
                {
                    "type": condition,
                    "status": "Unknown",
                    "reason": "ConditionRuleInvalid",
                    "message": f"unrecognized condition rule type {rule_type}",
                }
            )
    return out


def _rule_made(condition: Mapping[str, Any]) -> bool:
    return str(condition.get("reason", "")).startswith(CONDITION_RULE_REASON_PREFIX)


def prune_rule_conditions(conditions: list[dict[str, Any]], generation: int) -> None:
    """Drop, in place, rule-made conditions from another generation of the spec.

    A spec change is the only way a rule can go away, so a rule-made condition not
    written for the current generation belongs to a rule that no longer exists, or to
    the previous round's Job (this is how last round's ``Complete`` stops blocking the
    agent from applying the next round).
    """
    conditions[:] = [
        c for c in conditions if not (_rule_made(c) and c.get("observedGeneration") != generation)
    ]


def aggregate_rule_conditions(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The work-level conditions aggregated from its manifests' rule-made ones.

    Returns:
        One ``{type, status, reason, message}`` per rule-made type, sorted by type.
        ``Progressing`` is True when any manifest is; any other type is False when any
        is False, Unknown when any is Unknown or none is True, else True. The message is
        the manifest's own when only one manifest has the type.
    """
    tallies: dict[str, dict[str, Any]] = {}
    for entry in entries:
        for condition in entry.get("conditions") or []:
            if not isinstance(condition, Mapping) or not _rule_made(condition):
                continue
            tally = tallies.setdefault(
                str(condition.get("type")), {"True": 0, "False": 0, "Unknown": 0, "message": ""}
            )
            status = str(condition.get("status"))
            if status in ("True", "False", "Unknown"):
                tally[status] += 1
            if condition.get("message"):
                tally["message"] = str(condition["message"])
    out: list[dict[str, str]] = []
    for type_, tally in sorted(tallies.items()):
        if type_ == "Progressing":
            status = "True" if tally["True"] else "Unknown" if tally["Unknown"] else "False"
        elif tally["False"]:
            status = "False"
        elif tally["Unknown"] or not tally["True"]:
            status = "Unknown"
        else:
            status = "True"
        total = tally["True"] + tally["False"] + tally["Unknown"]
        message = (
            tally["message"]
            if total == 1 and tally["message"]
            else f"Aggregated from {total} manifest conditions"
        )
        out.append(
            {"type": type_, "status": status, "reason": _RULES_AGGREGATED, "message": message}
        )
    return out


# -- the status of a whole work --------------------------------------------------------------


def _manifests(work: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    manifests = work.get("spec", {}).get("workload", {}).get("manifests") or []
    return [m for m in manifests if isinstance(m, Mapping)]


def _identity(meta: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(meta.get(k, "")) for k in ("group", "resource", "namespace", "name"))


def _entries(work: Mapping[str, Any], status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per manifest of the current spec, keeping conditions of the same object.

    The agent rebuilds the list from the spec: an object no longer in the spec (the
    previous round's Job) loses its entry.
    """
    resource_status = status.get("resourceStatus")
    old = (resource_status.get("manifests") if isinstance(resource_status, Mapping) else None) or []
    by_identity = {_identity(e.get("resourceMeta", {})): e for e in old}
    entries = []
    for ordinal, manifest in enumerate(_manifests(work)):
        meta = resource_meta(ordinal, manifest)
        previous = by_identity.get(_identity(meta), {})
        entry: dict[str, Any] = {
            "resourceMeta": meta,
            "conditions": copy.deepcopy(previous.get("conditions", [])),
        }
        if "statusFeedback" in previous:
            entry["statusFeedback"] = copy.deepcopy(previous["statusFeedback"])
        entries.append(entry)
    return entries


def _matches(value: str, pattern: str) -> bool:
    """The agent's name and namespace match: equal, or ``*`` standing for any run."""
    if value == pattern or pattern == "*":
        return True
    parts = (re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(".*".join(parts), value) is not None


def _config_for(
    configs: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The feedback rules and the condition rules the ``manifestConfigs`` give a resource.

    As on the agent, every entry whose identifier matches (group and resource exactly,
    namespace and name with ``*`` wildcards) is read in order, and each list is the
    first matching entry's that is not empty.
    """
    feedback_rules: list[Mapping[str, Any]] = []
    condition_rules: list[Mapping[str, Any]] = []
    for config in configs:
        ident = config.get("resourceIdentifier") or {}
        if not (
            str(ident.get("group", "")) == meta.get("group", "")
            and ident.get("resource") == meta.get("resource")
            and _matches(str(meta.get("namespace", "")), str(ident.get("namespace", "")))
            and _matches(str(meta.get("name", "")), str(ident.get("name", "")))
        ):
            continue
        if not feedback_rules:
            feedback_rules = [
                r for r in config.get("feedbackRules") or [] if isinstance(r, Mapping)
            ]
        if not condition_rules:
            condition_rules = [
                r for r in config.get("conditionRules") or [] if isinstance(r, Mapping)
            ]
    return feedback_rules, condition_rules


def _completed(conditions: Sequence[Mapping[str, Any]]) -> bool:
    """The work's ``Complete`` condition is True: the agent applies it no more."""
    return any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)


def write_applied_report(work: dict[str, Any], *, now: str) -> bool:
    """Write, into ``work``, what the agent's apply step writes: applied, no feedback yet.

    As on the agent, rule-made conditions of an older generation are dropped first (its
    status controller does this as soon as the spec changes, and only then does the
    apply run), and a work whose ``Complete`` condition is True for its current
    generation is not applied again.

    Args:
        work: the ManifestWork, changed in place.
        now: the time for the conditions' ``lastTransitionTime``.

    Returns:
        False when the work is complete and nothing was written.
    """
    generation = int(work["metadata"].get("generation", 1))
    status = work.setdefault("status", {})
    work_conditions = status.setdefault("conditions", [])
    prune_rule_conditions(work_conditions, generation)
    if _completed(work_conditions):
        return False
    entries = _entries(work, status)
    for entry in entries:
        prune_rule_conditions(entry["conditions"], generation)
        set_true(entry["conditions"], MANIFEST_APPLIED, now, generation)
    status["resourceStatus"] = {"manifests": entries}
    set_true(work_conditions, WORK_APPLIED, now, generation)
    return True


def write_job_report(
    work: dict[str, Any],
    *,
    job_name: str,
    succeeded: bool | None,
    now: str,
    where: str,
    result: Mapping[str, str] | None = None,
) -> None:
    """Write, into ``work``, the status the agent reports once it has read the Job.

    Every manifest applied and available; the Job's feedback evaluated from the work's
    own ``feedbackRules``, and its conditions from its ``conditionRules``, against a Job
    that completed (True), failed (False) or is still running (None); work conditions
    Applied, Available and the rule-made ones aggregated (``Complete`` for the rendered
    works), all with ``observedGeneration`` equal to the current generation. As on the
    agent, a StatusFeedbackSynced condition whose values changed is written anew (it
    moves to the end of the list, with a new transition time).

    The Job's result ConfigMap (``reports.result_name(job_name)``) is evaluated as the
    Job left it: the manifest (created empty, ``CreateOnly``, so the agent never resets
    it) with ``data`` as the Job patched it, so its ``JSONPaths`` rules give the reported
    values as strings, and nothing when the Job wrote nothing.

    Args:
        work: the ManifestWork, changed in place.
        job_name: the Job of the spec to report on.
        succeeded: the Job's outcome so far.
        now: the time for the conditions' ``lastTransitionTime``.
        where: the work's namespace (its cluster), for the error message.
        result: the ``data`` the Job wrote into its result ConfigMap, if any.

    Raises:
        HubNotFound: the spec has no Job ``job_name``.
    """
    manifests = _manifests(work)
    job_names = [
        str(m.get("metadata", {}).get("name"))
        for m in manifests
        if m.get("kind") == "Job" and isinstance(m.get("metadata"), Mapping)
    ]
    if job_name not in job_names:
        has = f" (it has {', '.join(job_names)})" if job_names else ""
        name = work.get("metadata", {}).get("name")
        raise HubNotFound(f"ManifestWork {where}/{name} has no Job {job_name} in its spec{has}")
    generation = int(work["metadata"].get("generation", 1))
    status = work.setdefault("status", {})
    entries = _entries(work, status)
    configs = work.get("spec", {}).get("manifestConfigs") or []
    for manifest, entry in zip(manifests, entries, strict=True):
        conditions = entry["conditions"]
        for condition in (MANIFEST_APPLIED, MANIFEST_AVAILABLE):
            set_true(conditions, condition, now, generation)
        meta = entry["resourceMeta"]
        feedback_rules, condition_rules = _config_for(configs, meta)
        obj = dict(manifest)
        if meta["kind"] == "Job" and meta["name"] == job_name:
            obj["status"] = job_status(succeeded)
        elif meta["kind"] == "ConfigMap" and meta["name"] == result_name(job_name) and result:
            obj["data"] = {str(k): v for k, v in result.items()}
        values: list[dict[str, Any]] = []
        errors: list[str] = []
        if feedback_rules:
            values, errors = feedback(meta["kind"], obj, feedback_rules)
        if values != (entry.get("statusFeedback") or {}).get("values", []):
            conditions[:] = [c for c in conditions if c.get("type") != "StatusFeedbackSynced"]
        entry["statusFeedback"] = {"values": values} if values else {}
        set_condition(
            conditions,
            type_="StatusFeedbackSynced",
            status="False" if errors else "True",
            reason=(
                "StatusFeedbackSyncFailed"
                if errors
                else "StatusFeedbackSynced"
                if feedback_rules
                else "NoStatusFeedbackSynced"
            ),
            message=f"Sync status feedback failed with error {'; '.join(errors)}" if errors else "",
            now=now,
            observed_generation=generation,
        )
        for made in evaluate_condition_rules(meta, obj, condition_rules):
            set_condition(conditions, now=now, observed_generation=generation, **_fields(made))
        prune_rule_conditions(conditions, generation)
    status["resourceStatus"] = {"manifests": entries}
    work_conditions = status.setdefault("conditions", [])
    for condition in (WORK_APPLIED, WORK_AVAILABLE):
        set_true(work_conditions, condition, now, generation)
    for made in aggregate_rule_conditions(entries):
        set_condition(work_conditions, now=now, observed_generation=generation, **_fields(made))
    prune_rule_conditions(work_conditions, generation)


def _fields(made: Mapping[str, str]) -> dict[str, str]:
    """A rule-made condition as ``set_condition``'s keyword arguments."""
    return {
        "type_": made["type"],
        "status": made["status"],
        "reason": made["reason"],
        "message": made["message"],
    }
