"""The Argo CD health scripts, run in a real Lua 5.1 the way Argo CD runs them.

Argo CD (gopher-lua, Lua 5.1) loads only the base, table and a safe os library, sets the
live object as the global ``obj`` and reads the table the chunk returns. ``run_health``
does the same: the chunk runs in an environment holding nothing else, so a script that
reaches for ``string`` or ``math`` fails here as it would in Argo CD. Every object is
first checked against the CRD's own schema, so the fixtures keep the real shapes.
"""

from __future__ import annotations

import copy
import functools
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from lupa import lua51

from fl_gitops.cli import main as cli_main
from fl_gitops.hub import JobState, interpret_work
from fl_gitops.render.health import argocd_cm_health_entries, argocd_cm_key, health_script

from ..crds import ocm_crd_schema
from ..hub.manifestwork_cases import ARGO_HEALTH, CASES

EXAMPLE = Path(__file__).parents[2] / "examples/config-repo"
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

# What Argo CD's Lua VM offers a health script: the base library, table and os.
SANDBOX = """
function(source, obj)
  local env = {
    obj = obj, assert = assert, error = error, ipairs = ipairs, next = next,
    pairs = pairs, pcall = pcall, select = select, tonumber = tonumber,
    tostring = tostring, type = type, unpack = unpack, table = table,
  }
  local chunk, err = loadstring(source, "=health.lua")
  if chunk == nil then
    error(err)
  end
  setfenv(chunk, env)
  return chunk()
end
"""


def to_lua(lua: Any, value: Any) -> Any:
    """Convert decoded JSON to Lua values: dicts to tables, lists to 1-based arrays."""
    if isinstance(value, dict):
        table = lua.table()
        for key, item in value.items():
            if item is not None:
                table[key] = to_lua(lua, item)
        return table
    if isinstance(value, list):
        table = lua.table()
        for index, item in enumerate(value, start=1):
            table[index] = to_lua(lua, item)
        return table
    return value


@functools.cache
def crd_schema(filename: str) -> dict[str, Any]:
    return ocm_crd_schema(filename)


def run_health(kind: str, obj: dict[str, Any], *, check_schema: bool = True) -> dict[str, str]:
    filename = {
        "ManifestWork": "0000_00_work.open-cluster-management.io_manifestworks.crd.yaml",
        "Placement": "0000_02_clusters.open-cluster-management.io_placements.crd.yaml",
    }[kind]
    if check_schema:
        jsonschema.validate(obj, crd_schema(filename))
    lua = lua51.LuaRuntime()
    hs = lua.eval(SANDBOX)(health_script(kind), to_lua(lua, obj))
    result = dict(hs.items())
    assert set(result) == {"status", "message"}
    assert result["status"] in STATUSES
    assert isinstance(result["message"], str) and result["message"]
    return result


# --- ManifestWork fixtures, in the shape the renderer and the work agent write ----------

T0 = "2026-03-01T10:00:00Z"
JOB = "fl-digits-fedavg-r3"
PREVIOUS_JOB = "fl-digits-fedavg-r2"


def job_manifest(name: str = JOB, backoff_limit: int | None = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "train", "image": "ghcr.io/example/fl-gitops:0.1.0"},
                ],
            }
        }
    }
    if backoff_limit is not None:
        spec["backoffLimit"] = backoff_limit
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "fl-gitops"},
        "spec": spec,
    }


def condition(kind: str, status: str, reason: str, message: str, generation: int = 2):
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": T0,
        "observedGeneration": generation,
    }


APPLIED = condition("Applied", "True", "AppliedManifestWorkComplete", "Apply manifest complete")
AVAILABLE = condition("Available", "True", "ResourcesAvailable", "All resources are available")


def integer(name: str, value: int) -> dict[str, Any]:
    return {"name": name, "fieldValue": {"type": "Integer", "integer": value}}


def string(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "fieldValue": {"type": "String", "string": value}}


def job_status(name: str = JOB, values=(), conditions=()) -> dict[str, Any]:
    return {
        "resourceMeta": {
            "ordinal": 2,
            "group": "batch",
            "version": "v1",
            "kind": "Job",
            "resource": "jobs",
            "name": name,
            "namespace": "fl-gitops",
        },
        "conditions": [
            condition("Applied", "True", "AppliedManifestComplete", "Apply manifest complete"),
            condition("Available", "True", "ResourceAvailable", "Resource is available"),
            condition("StatusFeedbackSynced", "True", "StatusFeedbackSynced", ""),
            *conditions,
        ],
        "statusFeedback": {"values": list(values)},
    }


def manifestwork(
    conditions: list[dict[str, Any]] | None = None,
    job_entries: list[dict[str, Any]] | None = None,
    backoff_limit: int | None = 0,
) -> dict[str, Any]:
    work: dict[str, Any] = {
        "apiVersion": "work.open-cluster-management.io/v1",
        "kind": "ManifestWork",
        "metadata": {
            "name": "fl-digits-fedavg",
            "namespace": "cluster-007",
            "generation": 2,
            "labels": {"fl-gitops.io/experiment": "digits-fedavg", "fl-gitops.io/round": "3"},
        },
        "spec": {
            "workload": {
                "manifests": [
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fl-gitops"}},
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": JOB, "namespace": "fl-gitops"},
                        "data": {"round.json": "{}"},
                    },
                    job_manifest(backoff_limit=backoff_limit),
                ]
            },
            "manifestConfigs": [
                {
                    "resourceIdentifier": {
                        "group": "batch",
                        "resource": "jobs",
                        "name": JOB,
                        "namespace": "fl-gitops",
                    },
                    "feedbackRules": [
                        {"type": "WellKnownStatus"},
                        {
                            "type": "JSONPaths",
                            "jsonPaths": [
                                {"name": "failed", "path": ".status.failed"},
                                {"name": "succeeded", "path": ".status.succeeded"},
                            ],
                        },
                    ],
                }
            ],
        },
    }
    if conditions is not None:
        configmap = {
            "resourceMeta": {
                "ordinal": 1,
                "group": "",
                "version": "v1",
                "kind": "ConfigMap",
                "resource": "configmaps",
                "name": JOB,
                "namespace": "fl-gitops",
            },
            "conditions": [
                condition("Applied", "True", "AppliedManifestComplete", "Apply manifest complete"),
            ],
        }
        work["status"] = {
            "conditions": conditions,
            "resourceStatus": {"manifests": [configmap, *(job_entries or [])]},
        }
    return work


def test_manifestwork_without_status_is_progressing():
    assert run_health("ManifestWork", manifestwork()) == {
        "status": "Progressing",
        "message": "Waiting for the work agent to report status",
    }


def test_manifestwork_with_empty_conditions_is_progressing():
    assert run_health("ManifestWork", manifestwork(conditions=[]))["status"] == "Progressing"


def test_manifestwork_not_applied_is_degraded_with_the_agents_reason():
    failed = condition(
        "Applied", "False", "AppliedManifestWorkFailed", "Failed to apply manifest work"
    )
    assert run_health("ManifestWork", manifestwork(conditions=[failed])) == {
        "status": "Degraded",
        "message": "Manifests not applied: Applied=False (AppliedManifestWorkFailed): "
        "Failed to apply manifest work",
    }


def test_manifestwork_degraded_condition_is_degraded():
    degraded = condition("Degraded", "True", "ResourcesDegraded", "Job is crash looping")
    health = run_health("ManifestWork", manifestwork(conditions=[APPLIED, degraded]))
    assert health == {
        "status": "Degraded",
        "message": "Degraded=True (ResourcesDegraded): Job is crash looping",
    }


def test_manifestwork_still_applying_is_progressing():
    applying = condition("Progressing", "True", "Applying", "Applying manifests")
    assert run_health("ManifestWork", manifestwork(conditions=[applying])) == {
        "status": "Progressing",
        "message": "Waiting for the manifests to be applied",
    }


def test_manifestwork_applied_without_feedback_yet_is_progressing():
    assert run_health("ManifestWork", manifestwork(conditions=[APPLIED, AVAILABLE])) == {
        "status": "Progressing",
        "message": f"Waiting for status feedback from Job {JOB}",
    }


def test_feedback_from_the_previous_rounds_job_is_stale():
    stale = job_status(
        PREVIOUS_JOB,
        values=[string("JobComplete", "True"), integer("JobSucceeded", 1)],
    )
    work = manifestwork(conditions=[APPLIED, AVAILABLE], job_entries=[stale])
    assert run_health("ManifestWork", work) == {
        "status": "Progressing",
        "message": f"Status feedback is for Job {PREVIOUS_JOB} of an earlier round, "
        f"waiting for Job {JOB}",
    }


def test_current_job_wins_over_a_leftover_entry_for_the_previous_job():
    entries = [
        job_status(PREVIOUS_JOB, values=[integer("failed", 1)]),
        job_status(JOB, values=[string("JobComplete", "True"), integer("JobSucceeded", 1)]),
    ]
    work = manifestwork(conditions=[APPLIED, AVAILABLE], job_entries=entries)
    assert run_health("ManifestWork", work)["status"] == "Healthy"


def test_running_job_is_progressing():
    # A running Job has no Complete condition and zero counts, which its status omits.
    work = manifestwork(conditions=[APPLIED, AVAILABLE], job_entries=[job_status(JOB)])
    assert run_health("ManifestWork", work) == {
        "status": "Progressing",
        "message": f"Job {JOB} is running",
    }


def test_succeeded_job_is_healthy():
    values = [string("JobComplete", "True"), integer("JobSucceeded", 1), integer("succeeded", 1)]
    work = manifestwork(conditions=[APPLIED, AVAILABLE], job_entries=[job_status(JOB, values)])
    assert run_health("ManifestWork", work) == {
        "status": "Healthy",
        "message": f"Job {JOB} succeeded",
    }


def test_succeeded_count_alone_is_healthy_before_the_complete_condition_lands():
    work = manifestwork(
        conditions=[APPLIED, AVAILABLE],
        job_entries=[job_status(JOB, [integer("JobSucceeded", 1), integer("succeeded", 1)])],
    )
    assert run_health("ManifestWork", work)["status"] == "Healthy"


def test_failed_pod_beyond_the_backoff_limit_is_degraded():
    work = manifestwork(
        conditions=[APPLIED, AVAILABLE], job_entries=[job_status(JOB, [integer("failed", 1)])]
    )
    assert run_health("ManifestWork", work) == {
        "status": "Degraded",
        "message": f"Job {JOB} failed: 1 failed pods, backoffLimit 0",
    }


def test_failed_pod_within_the_backoff_limit_is_retrying():
    work = manifestwork(
        conditions=[APPLIED, AVAILABLE],
        job_entries=[job_status(JOB, [integer("failed", 1)])],
        backoff_limit=2,
    )
    assert run_health("ManifestWork", work) == {
        "status": "Progressing",
        "message": f"Job {JOB} is retrying: 1 failed pods, backoffLimit 2",
    }


def test_unset_backoff_limit_means_the_kubernetes_default_of_six():
    def health(failed: int) -> str:
        work = manifestwork(
            conditions=[APPLIED, AVAILABLE],
            job_entries=[job_status(JOB, [integer("failed", failed)])],
            backoff_limit=None,
        )
        return run_health("ManifestWork", work)["status"]

    assert (health(6), health(7)) == ("Progressing", "Degraded")


def test_success_after_a_retry_is_healthy():
    values = [string("JobComplete", "True"), integer("succeeded", 1), integer("failed", 1)]
    work = manifestwork(
        conditions=[APPLIED, AVAILABLE], job_entries=[job_status(JOB, values)], backoff_limit=2
    )
    assert run_health("ManifestWork", work)["status"] == "Healthy"


def test_failed_condition_feedback_is_degraded():
    # An optional JSONPaths value: JobFailed = .status.conditions[?(@.type=="Failed")].status
    work = manifestwork(
        conditions=[APPLIED, AVAILABLE],
        job_entries=[job_status(JOB, [string("JobFailed", "True")])],
        backoff_limit=3,
    )
    assert run_health("ManifestWork", work) == {
        "status": "Degraded",
        "message": f"Job {JOB} failed (0 failed pods)",
    }


def test_job_finished_without_success_per_condition_rules_is_degraded():
    # conditionRules WellKnownConditions sets Complete=True once the Job is Complete or Failed.
    finished = condition("Complete", "True", "ConditionRuleEvaluated", "Job is finished")
    work = manifestwork(
        conditions=[APPLIED, AVAILABLE],
        job_entries=[job_status(JOB, conditions=[finished])],
        backoff_limit=3,
    )
    assert run_health("ManifestWork", work) == {
        "status": "Degraded",
        "message": f"Job {JOB} finished without succeeding",
    }


def test_conditions_from_an_older_generation_are_stale():
    old = [
        condition("Applied", "True", "AppliedManifestWorkComplete", "Apply complete", 1),
        condition("Available", "True", "ResourcesAvailable", "All available", 1),
    ]
    values = [string("JobComplete", "True"), integer("JobSucceeded", 1)]
    work = manifestwork(conditions=old, job_entries=[job_status(JOB, values)])
    assert run_health("ManifestWork", work) == {
        "status": "Progressing",
        "message": "Status is for generation 1, waiting for the work agent to observe generation 2",
    }


def test_stale_generation_hides_an_old_failure():
    old = [condition("Applied", "False", "AppliedManifestWorkFailed", "Failed to apply", 1)]
    assert run_health("ManifestWork", manifestwork(conditions=old))["status"] == "Progressing"


def test_manifestwork_without_a_job_is_healthy_once_available():
    work = manifestwork(conditions=[APPLIED, AVAILABLE])
    work["spec"]["workload"]["manifests"] = work["spec"]["workload"]["manifests"][:2]
    assert run_health("ManifestWork", work) == {
        "status": "Healthy",
        "message": "Manifests applied and available",
    }
    work["status"]["conditions"] = [APPLIED]
    assert run_health("ManifestWork", work)["status"] == "Progressing"


def test_numbers_handed_over_as_strings_still_compare():
    # Argo CD decodes a json.Number into a Lua string; the scripts must not trip on it.
    old = [condition("Applied", "True", "AppliedManifestWorkComplete", "Apply complete", 1)]
    work = manifestwork(conditions=old, job_entries=[job_status(JOB, [integer("failed", 1)])])
    work["metadata"]["generation"] = "2"
    work["status"]["conditions"][0]["observedGeneration"] = "1"
    assert run_health("ManifestWork", work, check_schema=False)["status"] == "Progressing"
    work["status"]["conditions"][0]["observedGeneration"] = "2"
    work["status"]["resourceStatus"]["manifests"][1]["statusFeedback"]["values"][0]["fieldValue"][
        "integer"
    ] = "1"
    assert run_health("ManifestWork", work, check_schema=False) == {
        "status": "Degraded",
        "message": f"Job {JOB} failed: 1 failed pods, backoffLimit 0",
    }


def test_fixtures_are_checked_against_the_crd_schema():
    work = manifestwork(conditions=[APPLIED], job_entries=[job_status(JOB)])
    work["status"]["resourceStatus"]["manifests"][1]["statusFeedback"]["values"] = [
        {"name": "loss", "fieldValue": {"type": "Float", "float": 0.5}}
    ]
    with pytest.raises(jsonschema.ValidationError, match="'Float' is not one of"):
        run_health("ManifestWork", work)


# --- the same objects as interpret_work ------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_health_and_interpret_work_agree_on_every_shared_case(case):
    state = interpret_work(copy.deepcopy(case.work), job_name=case.job_name).state
    health = run_health("ManifestWork", copy.deepcopy(case.work))["status"]
    assert (state, health) == (case.state, case.health)
    assert health in ARGO_HEALTH[state]


def test_the_shared_cases_cover_every_state_and_every_health_it_may_show():
    shown = {(case.state, case.health) for case in CASES}
    assert shown == {
        (state, health) for state, healths in ARGO_HEALTH.items() for health in healths
    }
    assert set(ARGO_HEALTH) == set(JobState)
    assert len({case.name for case in CASES}) == len(CASES)


def test_a_job_that_failed_to_sync_its_feedback_is_degraded_with_the_agents_reason():
    work = manifestwork(conditions=[APPLIED, AVAILABLE], job_entries=[job_status(JOB)])
    work["status"]["resourceStatus"]["manifests"][1]["conditions"][2].update(
        status="False",
        reason="StatusFeedbackSyncFailed",
        message="Sync status feedback failed with error boom",
    )
    assert run_health("ManifestWork", work) == {
        "status": "Degraded",
        "message": f"Status feedback from Job {JOB} failed: StatusFeedbackSynced=False "
        "(StatusFeedbackSyncFailed): Sync status feedback failed with error boom",
    }


def test_a_work_being_deleted_is_pending_deletion():
    work = manifestwork(conditions=[APPLIED, AVAILABLE])
    work["metadata"]["deletionTimestamp"] = T0
    assert run_health("ManifestWork", work) == {
        "status": "Progressing",
        "message": "Pending deletion",
    }


def test_an_applied_condition_without_observed_generation_is_not_trusted():
    applied = dict(APPLIED)
    del applied["observedGeneration"]
    assert run_health("ManifestWork", manifestwork(conditions=[applied])) == {
        "status": "Progressing",
        "message": "Condition Applied has no observedGeneration, waiting for the work agent "
        "to observe generation 2",
    }


# --- Placement -----------------------------------------------------------------------


def placement(conditions=None, selected: int | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "cluster.open-cluster-management.io/v1beta1",
        "kind": "Placement",
        "metadata": {"name": "digits-fedavg", "namespace": "fl-system", "generation": 1},
        "spec": {
            "clusterSets": ["fl-silos"],
            "predicates": [
                {
                    "requiredClusterSelector": {
                        "labelSelector": {"matchLabels": {"fl-gitops.io/dataset": "digits"}}
                    }
                }
            ],
        },
    }
    if conditions is not None or selected is not None:
        obj["status"] = {}
        if conditions is not None:
            obj["status"]["conditions"] = conditions
        if selected is not None:
            obj["status"]["numberOfSelectedClusters"] = selected
    return obj


def satisfied(status: str, reason: str, message: str, generation: int | None = 1):
    c = condition("PlacementSatisfied", status, reason, message)
    if generation is None:
        del c["observedGeneration"]
    else:
        c["observedGeneration"] = generation
    return c


def test_placement_satisfied_is_healthy_with_the_cluster_count():
    ok = satisfied("True", "AllDecisionsScheduled", "All cluster decisions scheduled")
    assert run_health("Placement", placement([ok], selected=10)) == {
        "status": "Healthy",
        "message": "10 clusters selected (AllDecisionsScheduled): All cluster decisions scheduled",
    }


def test_placement_without_bindings_is_degraded():
    bad = satisfied(
        "False",
        "NoManagedClusterSetBindings",
        "No valid ManagedClusterSetBindings found in placement namespace",
        generation=None,
    )
    assert run_health("Placement", placement([bad], selected=0)) == {
        "status": "Degraded",
        "message": "Placement not satisfied, 0 clusters selected (NoManagedClusterSetBindings): "
        "No valid ManagedClusterSetBindings found in placement namespace",
    }


def test_placement_with_too_few_clusters_is_degraded():
    short = satisfied("False", "NotAllDecisionsScheduled", "2 cluster decisions unscheduled")
    health = run_health("Placement", placement([short], selected=8))
    assert health["status"] == "Degraded"
    assert health["message"].startswith("Placement not satisfied, 8 clusters selected")


def test_placement_without_status_is_progressing():
    assert run_health("Placement", placement()) == {
        "status": "Progressing",
        "message": "Waiting for the placement controller to schedule (0 clusters selected)",
    }


def test_placement_with_a_stale_condition_is_progressing():
    ok = satisfied("True", "AllDecisionsScheduled", "All cluster decisions scheduled")
    obj = placement([ok], selected=3)
    obj["metadata"]["generation"] = 2
    assert run_health("Placement", obj) == {
        "status": "Progressing",
        "message": "Waiting for the placement controller to observe generation 2 "
        "(3 clusters selected)",
    }


def test_placement_with_unknown_satisfaction_is_progressing():
    unknown = satisfied("Unknown", "Scheduling", "Scheduling in progress")
    assert run_health("Placement", placement([unknown], selected=0))["status"] == "Progressing"


# --- the scripts themselves ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ManifestWork", "Placement"])
def test_scripts_use_nothing_beyond_argocds_default_libraries(kind):
    # The sandbox has no string/math; a script touching them would raise here.
    obj = manifestwork() if kind == "ManifestWork" else placement()
    assert run_health(kind, copy.deepcopy(obj))["status"] == "Progressing"


def test_sandbox_rejects_the_string_library():
    lua = lua51.LuaRuntime()
    with pytest.raises(lua51.LuaError, match="attempt to index global 'string'"):
        lua.eval(SANDBOX)("return string.format('%d', 1)", lua.table())


def test_argocd_cm_keys_name_group_and_kind():
    assert argocd_cm_key("ManifestWork") == (
        "resource.customizations.health.work.open-cluster-management.io_ManifestWork"
    )
    entries = argocd_cm_health_entries()
    assert list(entries) == [
        "resource.customizations.health.cluster.open-cluster-management.io_Placement",
        "resource.customizations.health.work.open-cluster-management.io_ManifestWork",
    ]
    assert entries[argocd_cm_key("Placement")] == health_script("Placement")


def test_unknown_kind_is_refused_with_the_known_kinds():
    with pytest.raises(ValueError) as info:
        health_script("PlacementDecision")
    assert str(info.value) == (
        "no health check for kind 'PlacementDecision'; expected one of: ManifestWork, Placement"
    )


# --- against the renderer's own output ------------------------------------------------

INVENTORY = """\
apiVersion: v1
kind: List
items:
  - apiVersion: cluster.open-cluster-management.io/v1
    kind: ManagedCluster
    metadata:
      name: cluster-001
      labels:
        cluster.open-cluster-management.io/clusterset: fl-silos
        fl-gitops.io/dataset: digits
    spec:
      hubAcceptsClient: true
    status:
      clusterClaims:
        - name: region.open-cluster-management.io
          value: eu-west-1
      conditions:
        - type: ManagedClusterConditionAvailable
          status: "True"
          reason: ManagedClusterAvailable
          message: Managed cluster is available
          lastTransitionTime: "2026-01-01T00:00:00Z"
"""


def test_rendered_manifestwork_goes_from_progressing_to_healthy_or_degraded(tmp_path):
    blueprint = tmp_path / "experiments/digits-fedavg/blueprint.yaml"
    blueprint.parent.mkdir(parents=True)
    shutil.copy(EXAMPLE / "experiments/digits-fedavg/blueprint.yaml", blueprint)
    inventory = tmp_path / "managedclusters.yaml"
    inventory.write_text(INVENTORY)
    argv = ["render", str(blueprint), "--inventory", str(inventory), "--out", str(tmp_path)]
    assert cli_main([*argv, "--now", "2026-03-01T00:00:00Z", "--allow-empty"]) == 0
    work = yaml.safe_load((blueprint.parent / "works/cluster-001.yaml").read_text())
    assert run_health("ManifestWork", work)["status"] == "Progressing"

    job = next(m for m in work["spec"]["workload"]["manifests"] if m["kind"] == "Job")
    name = job["metadata"]["name"]
    entry = job_status(name, [string("JobComplete", "True"), integer("JobSucceeded", 1)])
    entry["resourceMeta"]["namespace"] = job["metadata"]["namespace"]
    work["metadata"]["generation"] = 2
    work["status"] = {
        "conditions": [APPLIED, AVAILABLE],
        "resourceStatus": {"manifests": [entry]},
    }
    assert run_health("ManifestWork", work) == {
        "status": "Healthy",
        "message": f"Job {name} succeeded",
    }
    entry["statusFeedback"]["values"] = [integer("failed", 1)]
    assert run_health("ManifestWork", work)["status"] == "Degraded"
