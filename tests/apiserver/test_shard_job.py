"""The sharded round's Indexed Job through KubernetesHub, against a real kube-apiserver.

The server is Kubernetes 1.20.2: it has no Indexed Jobs, so the version gate refuses it
as it would refuse a real 1.20 hub, and the other tests lower the gate
(``min_indexed_version``) to exercise the API calls. 1.20 keeps the Job but drops the
fields it does not know (``completionMode``, ``completedIndexes``, ``failedIndexes``), and
there is no kube-controller-manager here, so no Job controller runs pods or writes status:
the tests write the status through the status subresource, as that controller would, with
the fields 1.20 keeps (tests/hub/test_shard_job_status.py reads the newer fields).

The RBAC is what ``fl-gitops render`` writes for ``spec.aggregation.shards: 3``, applied
as Argo CD would; the identity is the reconcile ServiceAccount's own token. With it the
hub reads the shards' pods (their ending messages, tests/apiserver/test_shard_job_messages.py)
and can do nothing else to any pod.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from fl_gitops.cli import main as cli_main
from fl_gitops.devhub import ApiServer
from fl_gitops.errors import InputError
from fl_gitops.hub import (
    HubConfigError,
    HubConflict,
    HubForbidden,
    KubernetesHub,
    ShardJobSpec,
    ShardJobState,
)
from fl_gitops.render import Names

from .hubside import apply_objects, delete_objects, service_account_token
from .test_shard_job_messages import _complete, _pod, digest

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "blueprints" / "digits-fedavg.yaml"
INVENTORY = REPO / "examples" / "config-repo" / "inventory" / "managedclusters.yaml"
EXP = "digits-fedavg"
OLD_HUB = (1, 20)  # lets the tests reach the API calls on this 1.20 server


def make_spec(namespace: str, round_: int = 3, shards: int = 3) -> ShardJobSpec:
    digest = "sha256:" + uuid.uuid4().hex * 2
    names = Names(EXP, namespace, round_)
    return ShardJobSpec(
        namespace=namespace,
        name=names.aggregation_job(digest),
        experiment=EXP,
        round=round_,
        shards=shards,
        image="ghcr.io/example/fl-gitops:0.1.0",
        args=("aggregate", "--inputs-digest", digest, "--shard", f"auto/{shards}"),
        service_account=names.aggregation,
        active_deadline_seconds=3600,
        backoff_limit_per_index=2,
        resources={"requests": {"cpu": "1"}},
        store_secret="fl-store-credentials",
    )


def _jobs(admin: Any, namespace: str) -> list[dict[str, Any]]:
    from kubernetes import client as k8s

    answer = k8s.BatchV1Api(admin).list_namespaced_job(namespace, _preload_content=False)
    items: list[dict[str, Any]] = json.loads(answer.data)["items"]
    return items


def _write_status(admin: Any, spec: ShardJobSpec, status: dict[str, Any]) -> None:
    """What the Job controller would write, through the status subresource."""
    from kubernetes import client as k8s

    k8s.BatchV1Api(admin).patch_namespaced_job_status(spec.name, spec.namespace, {"status": status})


def _condition(kind: str, reason: str, message: str) -> dict[str, str]:
    time = "2026-12-02T04:00:00Z"
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": time,
        "lastTransitionTime": time,
    }


@pytest.fixture
def hub(admin: Any) -> KubernetesHub:
    return KubernetesHub(admin, min_indexed_version=OLD_HUB)


# -- the version gate ------------------------------------------------------------------------


def test_a_hub_older_than_1_22_is_refused_and_no_job_is_made(admin, namespace):
    hub = KubernetesHub(admin)

    with pytest.raises(HubConfigError) as caught:
        hub.shard_job(make_spec(namespace))

    assert str(caught.value) == (
        "spec.aggregation.shards > 1 needs Kubernetes 1.22 or newer for Indexed Jobs; "
        "this hub serves 1.20"
    )
    assert isinstance(caught.value, InputError)  # the CLI exits 2, no traceback
    assert _jobs(admin, namespace) == []
    assert hub.server_version() == (1, 20)


# -- create, find again, read, delete ------------------------------------------------------


def test_a_second_pass_finds_the_job_the_first_created_and_makes_no_other(hub, admin, namespace):
    spec = make_spec(namespace)

    first = hub.shard_job(spec)
    again = KubernetesHub(admin, min_indexed_version=OLD_HUB).shard_job(spec)

    assert first == again == ShardJobState(exists=True)
    (job,) = _jobs(admin, namespace)
    assert job["metadata"]["name"] == spec.name
    assert job["metadata"]["labels"]["fl-gitops.io/round"] == "3"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    assert job["spec"]["backoffLimit"] == 6  # 1.20: no per-index retries
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == list(spec.args)
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_passes_racing_to_create_the_job_make_exactly_one(admin, namespace):
    spec = make_spec(namespace)
    hubs = [KubernetesHub(admin, min_indexed_version=OLD_HUB) for _ in range(4)]
    answers: list[ShardJobState] = []
    start = threading.Barrier(len(hubs))

    def run(hub: KubernetesHub) -> None:
        start.wait()
        answers.append(hub.shard_job(spec))

    threads = [threading.Thread(target=run, args=(h,)) for h in hubs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [ShardJobState(exists=True)] * 4
    assert [j["metadata"]["name"] for j in _jobs(admin, namespace)] == [spec.name]


def test_without_create_an_absent_job_is_reported_and_not_made(hub, admin, namespace):
    assert hub.shard_job(make_spec(namespace), create=False) == ShardJobState(exists=False)
    assert _jobs(admin, namespace) == []


def test_the_state_is_read_from_the_status_the_job_controller_writes(hub, admin, namespace):
    spec = make_spec(namespace)
    hub.shard_job(spec)

    _write_status(admin, spec, {"active": 3, "startTime": "2026-12-02T04:00:00Z"})
    assert hub.shard_job(spec) == ShardJobState(exists=True, active=3)

    # 1.20 drops completedIndexes: no index counts as done before the Job is Complete
    _write_status(admin, spec, {"active": 2, "succeeded": 1, "completedIndexes": "1"})
    assert hub.shard_job(spec) == ShardJobState(exists=True, active=2)

    done = _condition("Complete", "", "")
    _write_status(admin, spec, {"active": 0, "succeeded": 3, "conditions": [done]})
    assert hub.shard_job(spec, create=False) == ShardJobState(
        exists=True, succeeded=frozenset({0, 1, 2}), complete=True
    )


def test_a_failed_job_is_read_with_the_controllers_reason(hub, admin, namespace):
    spec = make_spec(namespace)
    hub.shard_job(spec)
    failed = _condition(
        "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
    )

    _write_status(admin, spec, {"active": 0, "failed": 7, "conditions": [failed]})

    assert hub.shard_job(spec) == ShardJobState(
        exists=True,
        failed=True,
        reason="BackoffLimitExceeded: Job has reached the specified backoff limit",
    )


def test_a_deleted_job_is_gone_and_deleting_it_again_says_so(hub, admin, namespace):
    spec = make_spec(namespace)
    hub.shard_job(spec)

    assert hub.delete_shard_job(namespace, spec.name) is True
    assert hub.shard_job(spec, create=False) == ShardJobState(exists=False)
    assert hub.delete_shard_job(namespace, spec.name) is False
    assert _jobs(admin, namespace) == []


def test_a_job_of_that_name_not_made_for_the_round_is_refused_and_left_alone(hub, admin, namespace):
    from kubernetes import client as k8s

    spec = make_spec(namespace)
    theirs = {
        "metadata": {"name": spec.name, "labels": {"team": "other"}},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "shard", "image": "busybox", "args": ["sleep"]}],
                }
            }
        },
    }
    k8s.BatchV1Api(admin).create_namespaced_job(namespace, theirs)

    with pytest.raises(HubConflict) as caught:
        hub.shard_job(spec)

    assert str(caught.value) == (
        f"hub {admin.configuration.host}: job {namespace}/{spec.name} exists but was not made "
        f"for round 3's 3 shards of experiment {EXP} (its labels or the shard container's "
        "image, command or arguments differ); fl-gitops neither adopts nor replaces it: "
        "delete it or find what made it"
    )
    (job,) = _jobs(admin, namespace)
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["sleep"]


def test_another_round_is_another_job(hub, admin, namespace):
    hub.shard_job(make_spec(namespace, round_=3))
    hub.shard_job(make_spec(namespace, round_=4))

    rounds = sorted(j["metadata"]["labels"]["fl-gitops.io/round"] for j in _jobs(admin, namespace))
    assert rounds == ["3", "4"]


# -- the rendered RBAC ---------------------------------------------------------------------


@dataclass
class Sharded:
    namespace: str
    other: str
    reconcile: Any  # ApiClient with the reconcile ServiceAccount's token
    shard: Any  # ApiClient with the shards' ServiceAccount's token


@pytest.fixture(scope="module")
def sharded(apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sharded]:
    """The experiment's RBAC for three shards, rendered, applied, and its two identities."""
    from kubernetes import client as k8s

    tmp = tmp_path_factory.mktemp("shard-rbac")
    namespace, other = (f"t-{uuid.uuid4().hex[:10]}" for _ in range(2))
    text = REFERENCE.read_text().replace("namespace: fl-system", f"namespace: {namespace}")
    text = text.replace("\n  store:\n", "\n  aggregation:\n    shards: 3\n  store:\n", 1)
    blueprint = tmp / "blueprint.yaml"
    blueprint.write_text(text)
    out = tmp / "out"
    argv = ["render", str(blueprint), "--inventory", str(INVENTORY), "--out", str(out)]
    assert cli_main(argv) == 0
    rbac_text = (out / "experiments" / EXP / "hub" / "reconcile-rbac.yaml").read_text()
    rbac = [doc for doc in yaml.safe_load_all(rbac_text) if doc]
    names = Names(EXP, namespace, 1)
    with apiserver.api_client() as admin:
        core = k8s.CoreV1Api(admin)
        for name in (namespace, other):
            core.create_namespace({"metadata": {"name": name}})
        apply_objects(admin, rbac)
        tokens = [
            service_account_token(admin, namespace, n) for n in (names.reconcile, names.aggregation)
        ]
        try:
            with (
                apiserver.api_client(token=tokens[0]) as reconcile,
                apiserver.api_client(token=tokens[1]) as shard,
            ):
                yield Sharded(namespace, other, reconcile, shard)
        finally:
            delete_objects(admin, [o for o in rbac if "namespace" not in o["metadata"]])
            for name in (namespace, other):
                core.delete_namespace(name)


def _can(
    client: Any, verb: str, resource: str, group: str, namespace: str, subresource: str = ""
) -> bool:
    from kubernetes import client as k8s

    review = k8s.AuthorizationV1Api(client).create_self_subject_access_review(
        k8s.V1SelfSubjectAccessReview(
            spec=k8s.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k8s.V1ResourceAttributes(
                    verb=verb,
                    resource=resource,
                    group=group,
                    namespace=namespace,
                    subresource=subresource or None,
                )
            )
        )
    )
    return bool(review.status.allowed)


def test_the_reconcile_account_creates_reads_and_deletes_the_shards_job_in_its_namespace(
    sharded,
):
    hub = KubernetesHub(sharded.reconcile, min_indexed_version=OLD_HUB)
    spec = make_spec(sharded.namespace)

    assert hub.shard_job(spec) == ShardJobState(exists=True)
    assert hub.shard_job(spec) == ShardJobState(exists=True)
    assert hub.delete_shard_job(sharded.namespace, spec.name) is True
    assert hub.shard_job(spec, create=False) == ShardJobState(exists=False)
    for verb in ("create", "get", "list", "watch", "delete"):
        assert _can(sharded.reconcile, verb, "jobs", "batch", sharded.namespace), verb
    for verb in ("update", "patch", "deletecollection"):
        assert not _can(sharded.reconcile, verb, "jobs", "batch", sharded.namespace), verb


def test_the_reconcile_account_can_make_no_job_elsewhere_and_no_pod_at_all(sharded):
    from kubernetes import client as k8s

    hub = KubernetesHub(sharded.reconcile, min_indexed_version=OLD_HUB)

    with pytest.raises(HubForbidden) as caught:
        hub.shard_job(make_spec(sharded.other))
    assert "403 Forbidden" in str(caught.value) and f'in the namespace "{sharded.other}"' in str(
        caught.value
    )
    for namespace in (sharded.namespace, sharded.other):
        assert not _can(sharded.reconcile, "create", "pods", "", namespace)
        assert not _can(sharded.reconcile, "create", "pods/exec", "", namespace)
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    with pytest.raises(k8s.ApiException) as refused:
        k8s.CoreV1Api(sharded.reconcile).create_namespaced_pod(sharded.namespace, pod)
    assert refused.value.status == 403


def test_the_reconcile_account_reads_its_shards_ending_messages_and_only_reads_pods(sharded, admin):
    hub = KubernetesHub(sharded.reconcile, min_indexed_version=OLD_HUB)
    spec = make_spec(sharded.namespace)
    hub.shard_job(spec)
    for index in range(3):  # the Job controller's and the kubelet's writes
        _pod(admin, spec, index, digest(f"decision {index}"))
    _complete(admin, spec)

    assert hub.shard_job(spec).messages == {i: digest(f"decision {i}") for i in range(3)}
    for verb in ("get", "list"):
        assert _can(sharded.reconcile, verb, "pods", "", sharded.namespace), verb
        assert not _can(sharded.reconcile, verb, "pods", "", sharded.other), verb
    for verb in ("watch", "create", "update", "patch", "delete", "deletecollection"):
        assert not _can(sharded.reconcile, verb, "pods", "", sharded.namespace), verb
    for sub in ("pods/log", "pods/exec", "pods/attach", "pods/portforward", "pods/status"):
        resource, _, subresource = sub.partition("/")
        for verb in ("get", "create", "patch"):
            assert not _can(
                sharded.reconcile, verb, resource, "", sharded.namespace, subresource
            ), (sub, verb)


def _rules(client: Any, namespace: str) -> set[tuple[str, str, str]]:
    """Every (group, resource, verb) ``client`` may use in ``namespace``, as the RBAC
    authorizer itself lists them (a SelfSubjectRulesReview)."""
    from kubernetes import client as k8s

    review = k8s.AuthorizationV1Api(client).create_self_subject_rules_review(
        k8s.V1SelfSubjectRulesReview(spec=k8s.V1SelfSubjectRulesReviewSpec(namespace=namespace))
    )
    return {
        (group, resource, verb)
        for rule in review.status.resource_rules
        for group in rule.api_groups or [""]
        for resource in rule.resources or []
        for verb in rule.verbs
    }


def test_shards_give_the_reconcile_account_what_one_pod_has_plus_the_job_and_reading_pods(
    sharded,
):
    # what every ServiceAccount may do (self reviews, discovery) is the shards' account's
    everyone = _rules(sharded.shard, sharded.namespace)
    granted = _rules(sharded.reconcile, sharded.namespace) - everyone

    one_pod = {
        (group, resource, verb)
        for group, resources in (
            ("cluster.open-cluster-management.io", ("placements", "placementdecisions")),
            ("work.open-cluster-management.io", ("manifestworks",)),
        )
        for resource in resources
        for verb in ("get", "list", "watch")
    }
    jobs = {("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")}
    assert granted == one_pod | jobs | {("", "pods", "get"), ("", "pods", "list")}


def test_the_shards_account_may_do_nothing_on_the_hub(sharded):
    for verb in ("get", "list", "create", "delete"):
        for resource, group in (
            ("jobs", "batch"),
            ("pods", ""),
            ("secrets", ""),
            ("configmaps", ""),
        ):
            assert not _can(sharded.shard, verb, resource, group, sharded.namespace)
    assert not _can(
        sharded.shard,
        "get",
        "placementdecisions",
        "cluster.open-cluster-management.io",
        sharded.namespace,
    )
