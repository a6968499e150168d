"""The shards' ending messages, read back from their pods through a real kube-apiserver.

Each shard pod ends by writing the sha256 of the decision file it wrote as its termination
message, which the kubelet copies into the pod's status with the node's credentials; once
the Job is complete, ``KubernetesHub.shard_job`` lists the Job's pods and hands each
index's message to the merge (``ShardJobState.messages``), which checks the shard's files
in the store against it.

The server is Kubernetes 1.20.2 with no kube-controller-manager and no kubelet: the tests
make the pods as the Job controller would (its labels, the completion-index annotation,
the Job as controlling owner) and write their ending through the pod status subresource
as the kubelet would, and the Job's Complete condition as the Job controller would. The
last tests check that ``KubeJobController`` (which plays both in ``simulate --hub
kubernetes``) writes pods that read back the same way; its local runner is stood in for
by a fixed state there, since running the shards' workers is tests/simulate's business.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from fl_gitops.hub import KubernetesHub, ShardJobSpec, ShardJobState
from fl_gitops.render import Names
from fl_gitops.simulate._kube import KubeJobController

EXP = "digits-fedavg"
OLD_HUB = (1, 20)  # lets the tests reach the API calls on this 1.20 server
INDEX = "batch.kubernetes.io/job-completion-index"
T = "2026-12-02T04:00:00Z"


def digest(seed: str) -> str:
    """A ``sha256:<hex>`` as a shard writes it."""
    import hashlib

    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def make_spec(namespace: str, shards: int = 3) -> ShardJobSpec:
    inputs = "sha256:" + uuid.uuid4().hex * 2
    names = Names(EXP, namespace, 3)
    return ShardJobSpec(
        namespace=namespace,
        name=names.aggregation_job(inputs),
        experiment=EXP,
        round=3,
        shards=shards,
        image="ghcr.io/example/fl-gitops:0.1.0",
        args=("aggregate", "--inputs-digest", inputs, "--shard", f"auto/{shards}"),
        service_account=names.aggregation,
        active_deadline_seconds=3600,
        backoff_limit_per_index=2,
    )


def _read_job(admin: Any, spec: ShardJobSpec) -> dict[str, Any]:
    from kubernetes import client as k8s

    answer = k8s.BatchV1Api(admin).read_namespaced_job(
        spec.name, spec.namespace, _preload_content=False
    )
    job: dict[str, Any] = json.loads(answer.data)
    return job


def _complete(admin: Any, spec: ShardJobSpec) -> None:
    """The Job controller's Complete condition, through the Job's status subresource."""
    from kubernetes import client as k8s

    done = {"type": "Complete", "status": "True", "lastProbeTime": T, "lastTransitionTime": T}
    status = {"succeeded": spec.shards, "completionTime": T, "conditions": [done]}
    k8s.BatchV1Api(admin).patch_namespaced_job_status(spec.name, spec.namespace, {"status": status})


def _pod(
    admin: Any,
    spec: ShardJobSpec,
    index: int | str,
    message: str | None,
    *,
    owner_uid: str | None = None,
    controller: bool = True,
    phase: str = "Succeeded",
    exit_code: int = 0,
    container: str = "shard",
) -> str:
    """A pod of the Job made as the Job controller makes it, then ended as the kubelet
    ends it: ``phase``, the container terminated with ``exit_code`` and ``message``."""
    from kubernetes import client as k8s

    uid = owner_uid or _read_job(admin, spec)["metadata"]["uid"]
    name = f"{spec.name}-{index}-{uuid.uuid4().hex[:5]}"
    core = k8s.CoreV1Api(admin)
    body = {
        "metadata": {
            "name": name,
            "labels": {"job-name": spec.name, "controller-uid": uid},
            "annotations": {INDEX: str(index)},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": spec.name,
                    "uid": uid,
                    "controller": controller,
                }
            ],
        },
        "spec": {
            "serviceAccountName": spec.service_account,
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "containers": [{"name": container, "image": spec.image}],
        },
    }
    core.create_namespaced_pod(spec.namespace, body)
    terminated: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": T,
        "finishedAt": T,
    }
    if message is not None:
        terminated["message"] = message
    status = {
        "phase": phase,
        "containerStatuses": [
            {
                "name": container,
                "image": spec.image,
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        ],
    }
    core.patch_namespaced_pod_status(name, spec.namespace, {"status": status})
    return name


@pytest.fixture
def hub(admin: Any) -> KubernetesHub:
    return KubernetesHub(admin, min_indexed_version=OLD_HUB)


@pytest.fixture
def job(admin: Any, namespace: str, hub: KubernetesHub) -> ShardJobSpec:
    """A three-shard Job created by the hub, with its pods' ServiceAccount (which the
    ServiceAccount admission plugin wants before any pod of the Job is made)."""
    from kubernetes import client as k8s

    spec = make_spec(namespace)
    k8s.CoreV1Api(admin).create_namespaced_service_account(
        namespace, {"metadata": {"name": spec.service_account}}
    )
    assert hub.shard_job(spec) == ShardJobState(exists=True)
    return spec


def _done(messages: dict[int, str]) -> ShardJobState:
    return ShardJobState(
        exists=True, succeeded=frozenset({0, 1, 2}), complete=True, messages=messages
    )


# -- the messages of a complete Job ---------------------------------------------------------


def test_a_complete_jobs_state_carries_each_shards_ending_message(hub, admin, job):
    for index in range(3):
        _pod(admin, job, index, digest(f"decision {index}"))
    # a pass before the Job controller marks the Job complete reads no pod
    assert hub.shard_job(job) == ShardJobState(exists=True)

    _complete(admin, job)

    assert hub.shard_job(job, create=False) == _done({i: digest(f"decision {i}") for i in range(3)})


def test_the_kubelets_trailing_newline_is_not_part_of_the_message(hub, admin, job):
    for index in range(3):
        _pod(admin, job, index, digest(f"d{index}") + "\n")
    _complete(admin, job)

    assert hub.shard_job(job).messages == {i: digest(f"d{i}") for i in range(3)}


def test_a_pod_labelled_as_the_jobs_but_owned_by_another_job_is_ignored(hub, admin, job):
    # Another Job of the same name (deleted, made again) labels its pods job-name alike.
    for index in range(3):
        _pod(admin, job, index, digest(f"decision {index}"))
    _pod(admin, job, 1, digest("forged"), owner_uid=str(uuid.uuid4()))
    _pod(admin, job, 2, digest("not its controller"), controller=False)
    _complete(admin, job)

    assert hub.shard_job(job).messages == {i: digest(f"decision {i}") for i in range(3)}


@pytest.mark.parametrize(
    "message",
    [
        None,  # an empty termination log
        "done",
        "sha256:" + "ab" * 31,  # too short
        "sha256:" + "AB" * 32,  # the digest is written in lowercase
        "blake3:" + "ab" * 32,
        "sha256:" + "ab" * 32 + " and more",
        "Traceback (most recent call last):\n  ...",  # what FallbackToLogsOnError would give
    ],
    ids=["empty", "word", "short", "upper", "other-algorithm", "trailing-text", "log"],
)
def test_a_message_that_is_not_a_sha256_digest_leaves_its_index_out(hub, admin, job, message):
    _pod(admin, job, 0, message)
    for index in (1, 2):
        _pod(admin, job, index, digest(f"decision {index}"))
    _complete(admin, job)

    state = hub.shard_job(job)

    assert state.complete and state.succeeded == frozenset({0, 1, 2})
    assert state.messages == {1: digest("decision 1"), 2: digest("decision 2")}


def test_two_succeeded_pods_of_one_index_that_disagree_drop_it(hub, admin, job):
    for index in range(3):
        _pod(admin, job, index, digest(f"decision {index}"))
    _pod(admin, job, 2, digest("another decision"))  # both say they ended index 2
    _pod(admin, job, 0, digest("decision 0"))  # the same message twice: agreed
    _complete(admin, job)

    assert hub.shard_job(job).messages == {0: digest("decision 0"), 1: digest("decision 1")}


def test_a_succeeded_pod_that_disagrees_by_an_unreadable_message_drops_the_index(hub, admin, job):
    for index in range(3):
        _pod(admin, job, index, digest(f"decision {index}"))
    _pod(admin, job, 1, "not a digest")
    _complete(admin, job)

    assert hub.shard_job(job).messages == {0: digest("decision 0"), 2: digest("decision 2")}


def test_only_a_succeeded_pod_whose_shard_exited_0_at_an_index_of_the_job_counts(hub, admin, job):
    for index in range(3):
        _pod(admin, job, index, digest(f"decision {index}"))
    # a failed attempt of index 0 (retried, then succeeded above) leaves no doubt
    _pod(admin, job, 0, digest("failed try"), phase="Failed", exit_code=1)
    # pods that do not count, each with a message the merge must not see
    _pod(admin, job, 1, digest("a"), exit_code=3)  # status says Succeeded, shard did not
    _pod(admin, job, 2, digest("b"), container="sidecar")  # no shard container ended
    _pod(admin, job, 3, digest("c"))  # beyond the Job's 3 completions
    _pod(admin, job, "01", digest("d"))  # not how the controller writes an index
    _complete(admin, job)

    assert hub.shard_job(job).messages == {i: digest(f"decision {i}") for i in range(3)}


def test_a_complete_job_whose_pods_are_gone_has_no_messages(hub, admin, job):
    # the pod garbage collector may remove finished pods: the merge then refuses the round
    _complete(admin, job)

    assert hub.shard_job(job) == _done({})


def test_the_pods_are_read_across_pages(admin, job):
    hub = KubernetesHub(admin, min_indexed_version=OLD_HUB, page_size=2)
    for index in range(3):
        _pod(admin, job, index, digest(f"decision {index}"))
    _pod(admin, job, 1, digest("forged"), owner_uid=str(uuid.uuid4()))
    _complete(admin, job)

    assert hub.shard_job(job).messages == {i: digest(f"decision {i}") for i in range(3)}


# -- the simulation's Job controller and kubelet -----------------------------------------


class FixedRunner:
    """Stands in for ``LocalHub``'s workers: reports the indexes the test says ended."""

    def __init__(self) -> None:
        self.state = ShardJobState(exists=True, active=3)
        self.deleted: list[tuple[str, str]] = []

    def shard_job(self, spec: ShardJobSpec, *, create: bool = True) -> ShardJobState:
        return self.state

    def delete_shard_job(self, namespace: str, name: str) -> bool:
        self.deleted.append((namespace, name))
        return True


def _pods(admin: Any, spec: ShardJobSpec) -> list[dict[str, Any]]:
    from kubernetes import client as k8s

    answer = k8s.CoreV1Api(admin).list_namespaced_pod(
        spec.namespace, label_selector=f"job-name={spec.name}", _preload_content=False
    )
    pods: list[dict[str, Any]] = json.loads(answer.data)["items"]
    return sorted(pods, key=lambda p: p["metadata"]["annotations"][INDEX])


def test_the_simulations_kubelet_writes_pods_the_hub_reads_the_messages_from(hub, admin, job):
    runner = FixedRunner()
    controller = KubeJobController(admin, runner)  # type: ignore[arg-type]
    messages = {i: digest(f"decision {i}") for i in range(3)}

    runner.state = ShardJobState(
        exists=True,
        succeeded=frozenset({0, 2}),
        active=1,
        messages={0: messages[0], 2: messages[2]},
    )
    controller.advance(job.namespace, job.name)
    first = {p["metadata"]["name"]: p["metadata"]["uid"] for p in _pods(admin, job)}
    assert len(first) == 2
    runner.state = _done(messages)
    controller.advance(job.namespace, job.name)
    controller.advance(job.namespace, job.name)  # the Job is over: nothing more

    pods = _pods(admin, job)
    uid = _read_job(admin, job)["metadata"]["uid"]
    assert [p["metadata"]["annotations"][INDEX] for p in pods] == ["0", "1", "2"]
    for index, pod in enumerate(pods):
        meta = pod["metadata"]
        assert meta["name"].startswith(f"{job.name}-{index}-") and len(meta["name"]) <= 63
        assert meta["labels"]["job-name"] == job.name
        assert meta["labels"]["controller-uid"] == uid
        assert meta["labels"]["fl-gitops.io/experiment"] == EXP  # the template's labels
        (owner,) = meta["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("Job", uid, True)
        (container,) = pod["spec"]["containers"]
        assert (container["name"], container["image"]) == ("shard", job.image)
        assert pod["status"]["phase"] == "Succeeded"
        (status,) = pod["status"]["containerStatuses"]
        assert status["state"]["terminated"] == {
            **status["state"]["terminated"],
            "exitCode": 0,
            "reason": "Completed",
            "message": messages[index],
        }
    # the pods made on the first advance were neither made again nor replaced
    now = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}
    assert first.items() <= now.items()
    assert hub.shard_job(job) == _done(messages)


def test_the_simulations_garbage_collector_deletes_a_deleted_jobs_pods(hub, admin, job):
    runner = FixedRunner()
    controller = KubeJobController(admin, runner)  # type: ignore[arg-type]
    runner.state = _done({i: digest(f"decision {i}") for i in range(3)})
    controller.advance(job.namespace, job.name)
    assert len(_pods(admin, job)) == 3

    assert hub.delete_shard_job(job.namespace, job.name) is True
    controller.forget(job.namespace, job.name)

    assert _pods(admin, job) == []
    assert runner.deleted == [(job.namespace, job.name)]
