"""validate_object(): every rendered kind validates strictly, and mistakes are named."""

from __future__ import annotations

from typing import Any

import pytest

from fl_gitops.validate import Problem, crd_schema, validate_object

from .conftest import SAMPLES, load_sample


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_kind_validates(name):
    assert validate_object(load_sample(name)) == []


def test_the_samples_cover_every_kind_fl_gitops_renders():
    kinds = {load_sample(name)["kind"] for name in SAMPLES}
    assert kinds >= {
        "Placement",
        "PlacementDecision",
        "ManifestWork",
        "ConfigMap",
        "CronJob",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Application",
        "ApplicationSet",
        "AppProject",
        "Kustomization",
    }


INVALID = [
    # (sample, field path, value, reported path, message)
    (
        "placement",
        ("spec", "predicates", 0, "requiredClusterSelector", "labelSelector", "matchLabel"),
        {},
        "spec.predicates[0].requiredClusterSelector.labelSelector.matchLabel",
        'unknown field; did you mean "matchLabels"?',
    ),
    (
        "placement",
        ("spec", "numberOfClusters"),
        "10",
        "spec.numberOfClusters",
        'expected integer, got string "10"',
    ),
    (
        "placement",
        ("metadata", "name"),
        "p" * 64,
        "metadata.name",
        "must also be a label value (at most 63 characters): OCM labels the "
        "PlacementDecisions with it",
    ),
    (
        "placementdecision",
        ("status", "decisions", 0, "clusterName"),
        7,
        "status.decisions[0].clusterName",
        "expected string, got integer 7",
    ),
    (
        "manifestwork",
        ("spec", "deleteOption", "propagationPolicy"),
        "Background",
        "spec.deleteOption.propagationPolicy",
        'must be one of "Foreground", "Orphan", "SelectivelyOrphan" (got "Background")',
    ),
    (
        "manifestwork",
        ("spec", "workload", "manifests", 1, "spec", "backoffLimit"),
        "0",
        "spec.workload.manifests[1].spec.backoffLimit",
        'expected integer, got string "0"',
    ),
    (
        "configmap",
        ("data", "state json"),
        "x",
        'data["state json"]',
        "\"state json\" is not a valid ConfigMap key: use letters, digits, '-', '_' and '.' "
        "(and not '.' or '..')",
    ),
    (
        "configmap",
        ("metadata", "namespace"),
        "FL",
        "metadata.namespace",
        "\"FL\" is not a DNS-1123 label: use lower-case letters, digits and '-', "
        "starting and ending with a letter or digit",
    ),
    (
        "cronjob",
        ("metadata", "name"),
        "c" * 53,
        "metadata.name",
        "53 characters is too long: a CronJob leaves 11 characters for its Jobs' names, at most 52",
    ),
    (
        "cronjob",
        ("spec", "jobTemplate", "spec", "template", "spec", "containers", 0, "args"),
        "reconcile",
        "spec.jobTemplate.spec.template.spec.containers[0].args",
        'expected array, got string "reconcile"',
    ),
    (
        "cronjob",
        ("spec", "jobTemplate", "spec", "template", "metadata", "labels", "fl-gitops.io/x"),
        "a b",
        'spec.jobTemplate.spec.template.metadata.labels["fl-gitops.io/x"]',
        "\"a b\" is not a valid label value: use letters, digits, '-', '_' and '.', "
        "starting and ending with a letter or digit",
    ),
    (
        "serviceaccount",
        ("automountServiceAccountToken",),
        "no",
        "automountServiceAccountToken",
        'expected boolean, got string "no"',
    ),
    (
        "role",
        ("rules", 0, "verb"),
        ["get"],
        "rules[0].verb",
        'unknown field; did you mean "verbs"?',
    ),
    (
        "rolebinding",
        ("roleRef", "name"),
        None,
        "roleRef.name",
        "expected string, got null null",
    ),
    (
        "application",
        ("spec", "syncPolicy", "automated", "selfheal"),
        True,
        "spec.syncPolicy.automated.selfheal",
        'unknown field; did you mean "selfHeal"?',
    ),
    (
        "applicationset",
        ("spec", "generators", 0, "git", "directories", 0, "exclude"),
        "yes",
        "spec.generators[0].git.directories[0].exclude",
        'expected boolean, got string "yes"',
    ),
    (
        "appproject",
        ("spec", "destinations", 0, "cluster"),
        "in-cluster",
        "spec.destinations[0].cluster",
        "unknown field; allowed: name, namespace, server",
    ),
    (
        "appproject",
        ("spec", "namespaceResourceWhitelist", 0, "kind"),
        ["ManifestWork"],
        "spec.namespaceResourceWhitelist[0].kind",
        'expected string, got array ["ManifestWork"]',
    ),
    (
        "kustomization",
        ("commonLabels",),
        {"fl-gitops.io/experiment": 3},
        'commonLabels["fl-gitops.io/experiment"]',
        "expected string, got integer 3",
    ),
]


@pytest.mark.parametrize(
    ("name", "field", "value", "path", "message"),
    INVALID,
    ids=[f"{case[0]}-{case[3]}" for case in INVALID],
)
def test_a_mistake_in_each_kind_is_reported_at_its_field(name, field, value, path, message):
    obj = load_sample(name)
    _set(obj, field, value)
    problems = validate_object(obj)
    assert [(problem.path, problem.message) for problem in problems] == [(path, message)]


def test_an_unknown_field_deep_in_an_embedded_job_names_the_manifestwork_and_the_full_path(sample):
    work = sample("manifestwork")
    container = work["spec"]["workload"]["manifests"][1]["spec"]["template"]["spec"]["containers"][
        0
    ]
    container["imagee"] = container.pop("image")
    problems = validate_object(work, where="clusters/cluster-007/work.yaml#0")
    assert [str(problem) for problem in problems] == [
        "clusters/cluster-007/work.yaml#0: ManifestWork/fl-digits-fedavg: "
        "spec.workload.manifests[1].spec.template.spec.containers[0].imagee: "
        'unknown field; did you mean "image"?'
    ]


def test_a_label_value_with_a_newline_is_reported_in_full(sample):
    work = sample("manifestwork")
    work["metadata"]["labels"]["fl-gitops.io/round"] = "3\n"
    assert [str(problem) for problem in validate_object(work)] == [
        'ManifestWork/fl-digits-fedavg: metadata.labels["fl-gitops.io/round"]: '
        "\"3\\n\" is not a valid label value: use letters, digits, '-', '_' and '.', "
        "starting and ending with a letter or digit"
    ]


def test_a_job_name_longer_than_63_is_rejected_although_a_subdomain_allows_253(sample):
    work = sample("manifestwork")
    work["spec"]["workload"]["manifests"][1]["metadata"]["name"] = "j" * 64
    assert validate_object(work) == [
        Problem(
            where="",
            kind="ManifestWork",
            name="fl-digits-fedavg",
            path="spec.workload.manifests[1].metadata.name",
            message="64 characters is too long: a Job's name becomes a pod label value, at most 63",
        )
    ]


def test_a_name_longer_than_253_is_rejected(sample):
    config = sample("configmap")
    config["metadata"]["name"] = "c" * 254
    assert [problem.message for problem in validate_object(config)] == [
        f'"{"c" * 254}" is 254 characters long; at most 253 are allowed'
    ]


def test_an_unknown_kind_is_a_problem_not_a_pass():
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert [str(problem) for problem in validate_object(obj, where="w.yaml#0")] == [
        'w.yaml#0: Widget/w: unknown kind: no schema for kind "Widget" in '
        'apiVersion "example.com/v1"'
    ]


def test_a_core_kind_name_under_a_foreign_group_is_unknown():
    obj = {"apiVersion": "batch.example.com/v1", "kind": "Job", "metadata": {"name": "j"}}
    assert [problem.message for problem in validate_object(obj)] == [
        'unknown kind: no schema for kind "Job" in apiVersion "batch.example.com/v1"'
    ]


def test_an_unknown_kind_inside_a_manifestwork_is_reported_at_its_index(sample):
    work = sample("manifestwork")
    work["spec"]["workload"]["manifests"].append({"apiVersion": "v1", "kind": "Widget"})
    assert [(problem.path, problem.message) for problem in validate_object(work)] == [
        (
            "spec.workload.manifests[2]",
            'unknown kind: no schema for kind "Widget" in apiVersion "v1"',
        )
    ]


def test_an_embedded_manifest_needs_api_version_and_kind(sample):
    work = sample("manifestwork")
    del work["spec"]["workload"]["manifests"][0]["kind"]
    assert [(problem.path, problem.message) for problem in validate_object(work)] == [
        ("spec.workload.manifests[0].kind", "required field is missing")
    ]


def test_missing_apiversion_metadata_and_name_are_reported():
    assert [(p.path, p.message) for p in validate_object({"kind": "ConfigMap"})] == [
        ("apiVersion", "required field is missing")
    ]
    assert [
        (p.path, p.message) for p in validate_object({"apiVersion": "v1", "kind": "ConfigMap"})
    ] == [("metadata", "required field is missing")]
    nameless = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "fl"}}
    assert [(p.path, p.message) for p in validate_object(nameless)] == [
        ("metadata.name", "required field is missing")
    ]


def test_map_type_lists_in_a_crd_reject_two_items_with_the_same_key(sample):
    work = sample("manifestwork")
    json_paths = work["spec"]["manifestConfigs"][0]["feedbackRules"][1]["jsonPaths"]
    json_paths[1]["name"] = "failed"
    assert [str(p) for p in validate_object(work)] == [
        "ManifestWork/fl-digits-fedavg: spec.manifestConfigs[0].feedbackRules[1].jsonPaths[1]: "
        "duplicate item: same name as item [0]"
    ]


def test_an_unknown_metadata_field_in_a_custom_resource_is_rejected(sample):
    placement = sample("placement")
    placement["metadata"]["labelz"] = {}
    assert [(p.path, p.message) for p in validate_object(placement)] == [
        ("metadata.labelz", 'unknown field; did you mean "labels"?')
    ]


def test_a_volume_mount_must_name_a_declared_volume(sample):
    work = sample("manifestwork")
    pod = work["spec"]["workload"]["manifests"][1]["spec"]["template"]["spec"]
    pod["volumes"][0]["name"] = "rounds"
    assert [(p.path, p.message) for p in validate_object(work)] == [
        (
            "spec.workload.manifests[1].spec.template.spec.containers[0].volumeMounts[0].name",
            'no volume named "round" among the pod\'s volumes',
        )
    ]


def test_duplicate_volume_and_container_names_are_each_reported(sample):
    work = sample("manifestwork")
    pod = work["spec"]["workload"]["manifests"][1]["spec"]["template"]["spec"]
    pod["volumes"].append({"name": "round", "emptyDir": {}})
    pod["initContainers"] = [{"name": "client", "image": "busybox:1.36"}]
    where = "spec.workload.manifests[1].spec.template.spec"
    assert [(p.path, p.message) for p in validate_object(work)] == [
        (f"{where}.volumes[1].name", 'duplicate volume name "round"'),
        (f"{where}.containers[0].name", 'duplicate container name "client"'),
    ]


def test_a_bad_selector_label_is_rejected(sample):
    placement = sample("placement")
    selector = placement["spec"]["predicates"][0]["requiredClusterSelector"]["labelSelector"]
    selector["matchLabels"] = {"pool": "digits\n"}
    assert [p.path for p in validate_object(placement)] == [
        "spec.predicates[0].requiredClusterSelector.labelSelector.matchLabels.pool"
    ]


def test_an_applicationset_template_may_hold_template_placeholders(sample):
    appset = sample("applicationset")
    assert appset["spec"]["template"]["metadata"]["labels"]["fl-gitops.io/experiment"].startswith(
        "{{"
    )
    assert validate_object(appset) == []


def test_a_list_is_validated_item_by_item(sample):
    items = [sample("serviceaccount"), sample("role")]
    items[1]["rules"][0]["verbs"] = "get"
    problems = validate_object({"apiVersion": "v1", "kind": "List", "items": items})
    assert [(p.path, p.message) for p in problems] == [
        ("items[1].rules[0].verbs", 'expected array, got string "get"')
    ]


def test_a_non_mapping_document_is_a_problem():
    assert [p.message for p in validate_object(["a"])] == [
        "expected a Kubernetes object (a mapping), got array"
    ]


def test_problem_text_leaves_out_unknown_parts():
    assert str(Problem("", "", "", "", "m")) == "m"
    assert str(Problem("f.yaml:3", "", "", "", "not valid YAML")) == "f.yaml:3: not valid YAML"
    assert str(Problem("f#1", "Job", "j", "spec", "m")) == "f#1: Job/j: spec: m"


def test_crd_schema_of_placement_spec_checks_a_blueprint_placement():
    from jsonschema import Draft202012Validator

    spec_schema = crd_schema("cluster.open-cluster-management.io/v1beta1", "Placement")[
        "properties"
    ]["spec"]
    validator = Draft202012Validator(spec_schema)
    assert validator.is_valid({"clusterSets": ["fl-fleet"], "numberOfClusters": 3})
    assert not validator.is_valid({"clusterSet": ["fl-fleet"]})


def test_crd_schema_is_a_fresh_copy_each_time():
    first = crd_schema("work.open-cluster-management.io/v1", "ManifestWork")
    first["properties"].clear()
    assert crd_schema("work.open-cluster-management.io/v1", "ManifestWork")["properties"]


def test_crd_schema_names_an_unknown_kind():
    with pytest.raises(
        KeyError, match=r"no schema for kind 'Widget' in apiVersion 'example\.com/v1'"
    ):
        crd_schema("example.com/v1", "Widget")
