"""OCM's limit on a ManifestWork's manifests: counted as the hub counts, checked in validate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from fl_gitops.cli import main
from fl_gitops.validate import MANIFEST_LIMIT, manifests_size, validate_object
from fl_gitops.validate.size import manifest_json_size, manifest_size

from .conftest import VALID

# A ManifestWork's first manifest as a kube-apiserver 1.20 returned it (GET, raw JSON)
# after it was applied from YAML: keys sorted, compact, <, > and & escaped as Go does,
# U+2028 escaped, é kept as UTF-8, a float with no fraction written as an integer.
APPLIED = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "cm", "namespace": "ns", "labels": {"b": "2", "a": "1"}},
    "data": {"z": "<&> \u2028 é 100.0", "y": "x"},
}
SERVED = (
    b'{"apiVersion":"v1","data":{"y":"x","z":"\\u003c\\u0026\\u003e \\u2028 \xc3\xa9 100.0"},'
    b'"kind":"ConfigMap","metadata":{"labels":{"a":"1","b":"2"},"name":"cm","namespace":"ns"}}'
)
JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "j", "namespace": "ns"},
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "c",
                        "image": "i",
                        "resources": {"limits": {"cpu": 0.5, "memory": 1.0}},
                    }
                ],
            }
        },
    },
}
JOB_SERVED = (
    b'{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","namespace":"ns"},'
    b'"spec":{"backoffLimit":0,"template":{"spec":{"containers":[{"image":"i","name":"c",'
    b'"resources":{"limits":{"cpu":0.5,"memory":1}}}],"restartPolicy":"Never"}}}}'
)


def test_the_limit_is_ocms_default_of_500_kib():
    assert MANIFEST_LIMIT == 512_000


def test_json_is_counted_as_the_api_server_encodes_it():
    assert manifest_json_size(APPLIED) == len(SERVED)
    assert manifest_json_size(JOB) == len(JOB_SERVED)


@pytest.mark.parametrize(
    ("value", "go"),
    [(1e-7, "1e-7"), (1e-5, "0.00001"), (1.5e21, "1.5e+21"), (123.25, "123.25"), (-2.0, "-2")],
)
def test_floats_are_counted_as_go_writes_them(value, go):
    assert manifest_json_size({"v": value}) == len('{"v":}') + len(go)


def test_each_manifest_adds_a_tag_byte_and_the_varint_of_its_length():
    small = {"kind": "x" * 10}  # 21 bytes of JSON
    assert manifest_size(small) == 1 + 21 + 1
    big = {"kind": "x" * 20_000}  # 20011 bytes: a 3-byte varint
    assert manifest_size(big) == 1 + 20_011 + 3


def test_ocms_own_example_is_512192_bytes():
    # pkg/work/webhook/common/validator_test.go: Secrets with 300 KiB and 200 KiB of data
    # "exceed the limit" with "the size of manifests is 512192 bytes". Its manifests are
    # built with Unstructured.MarshalJSON, which ends each with a newline: one byte each.
    def secret(size: int) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"namespace": "test", "name": "test"},
            "data": "a" * size,
        }

    manifests = [secret(300 * 1024), secret(200 * 1024)]
    assert manifests_size(manifests) + 2 == 512_192


def _work_over_the_limit(namespace: str = "cluster-007") -> dict:
    work = yaml.safe_load((VALID / "manifestwork.yaml").read_text())
    work["metadata"]["namespace"] = namespace
    work["spec"]["workload"]["manifests"][0]["data"]["round.json"] = "x" * MANIFEST_LIMIT
    return work


def test_a_manifestwork_over_the_limit_is_a_problem_naming_its_cluster():
    work = _work_over_the_limit()
    size = manifests_size(work["spec"]["workload"]["manifests"])
    assert size > MANIFEST_LIMIT
    assert [str(p) for p in validate_object(work, where="works/cluster-007.yaml#0")] == [
        "works/cluster-007.yaml#0: ManifestWork/fl-digits-fedavg: spec.workload.manifests: "
        f"the manifests are {size} bytes as OCM counts them, over its limit of 512000 bytes "
        "(500 KiB): the hub would refuse this ManifestWork for cluster cluster-007"
    ]


def test_a_manifestwork_at_the_limit_is_fine():
    work = _work_over_the_limit()
    manifests = work["spec"]["workload"]["manifests"]
    over = manifests_size(manifests) - MANIFEST_LIMIT
    manifests[0]["data"]["round.json"] = "x" * (MANIFEST_LIMIT - over)
    assert manifests_size(manifests) == MANIFEST_LIMIT
    assert validate_object(work) == []


def test_a_manifestworkreplicaset_template_has_the_same_limit():
    work = _work_over_the_limit()
    replica_set = {
        "apiVersion": "work.open-cluster-management.io/v1alpha1",
        "kind": "ManifestWorkReplicaSet",
        "metadata": {"name": "fl-digits-fedavg", "namespace": "fl-system"},
        "spec": {
            "cascadeDeletionPolicy": "Background",
            "placementRefs": [{"name": "digits-fedavg"}],
            "manifestWorkTemplate": work["spec"],
        },
    }
    size = manifests_size(work["spec"]["workload"]["manifests"])
    assert [str(p) for p in validate_object(replica_set)] == [
        "ManifestWorkReplicaSet/fl-digits-fedavg: spec.manifestWorkTemplate.workload.manifests: "
        f"the manifests are {size} bytes as OCM counts them, over its limit of 512000 bytes "
        "(500 KiB): the hub would refuse this ManifestWorkReplicaSet"
    ]


def test_validate_rendered_refuses_a_tree_with_a_work_over_the_limit(tmp_path: Path, capsys):
    tree = tmp_path / "tree"
    shutil.copytree(VALID, tree)
    work = _work_over_the_limit("cluster-042")
    (tree / "manifestwork.yaml").write_text(yaml.safe_dump(work, width=10**9))
    size = manifests_size(work["spec"]["workload"]["manifests"])
    assert main(["validate", "--rendered", str(tree)]) == 2
    assert capsys.readouterr().err == (
        f"error: {tree}/manifestwork.yaml#0: ManifestWork/fl-digits-fedavg: "
        f"spec.workload.manifests: the manifests are {size} bytes as OCM counts them, over "
        "its limit of 512000 bytes (500 KiB): the hub would refuse this ManifestWork for "
        "cluster cluster-042\n"
    )
