"""Which pod's ending message counts for a shard's index, on shapes no API server writes.

The real cases (pods and their status written through a real kube-apiserver, another
Job's pods, unreadable and disagreeing messages) are in
tests/apiserver/test_shard_job_messages.py. Here: what ``shard_messages`` makes of
objects a server would refuse to store (a Job with no uid, malformed owner lists, a
boolean exit code), which must leave the index out rather than raise.
"""

from __future__ import annotations

from typing import Any

import pytest

from fl_gitops.hub._jobstatus import shard_messages

UID = "6f1c1a52-0d3b-4c1e-9f8e-2b6c3f4d5e6a"
MESSAGE = "sha256:" + "ab" * 32


def _pod(**changes: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {
            "annotations": {"batch.kubernetes.io/job-completion-index": "0"},
            "ownerReferences": [{"kind": "Job", "uid": UID, "controller": True}],
        },
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {"name": "shard", "state": {"terminated": {"exitCode": 0, "message": MESSAGE}}}
            ],
        },
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        pod[section][field] = value
    return pod


JOB = {"metadata": {"uid": UID}}


def test_a_well_formed_pod_gives_its_index_message():
    assert shard_messages(JOB, [_pod()], 1, "shard") == {0: MESSAGE}


@pytest.mark.parametrize("job", [{}, {"metadata": {"uid": ""}}, {"metadata": None}])
def test_a_job_without_a_uid_owns_no_pod(job):
    assert shard_messages(job, [_pod()], 1, "shard") == {}


@pytest.mark.parametrize(
    "pod",
    [
        _pod(metadata__ownerReferences={"uid": UID, "controller": True}),
        _pod(metadata__ownerReferences=[{"uid": UID, "controller": "true"}]),
        _pod(metadata__annotations=None),
        _pod(metadata__annotations={"batch.kubernetes.io/job-completion-index": 0}),
        _pod(status__containerStatuses=None),
        _pod(
            status__containerStatuses=[
                {"name": "shard", "state": {"terminated": {"exitCode": False, "message": MESSAGE}}}
            ]
        ),
        _pod(status__containerStatuses=[{"name": "shard", "state": {"running": {}}}]),
        "not a pod",
    ],
    ids=[
        "owners-not-a-list",
        "controller-not-true",
        "no-annotations",
        "index-not-text",
        "no-container-statuses",
        "boolean-exit-code",
        "still-running",
        "not-a-mapping",
    ],
)
def test_a_malformed_pod_is_not_counted(pod):
    assert shard_messages(JOB, [pod], 1, "shard") == {}
    # and it does not hide a well-formed pod of the same index
    assert shard_messages(JOB, [pod, _pod()], 1, "shard") == {0: MESSAGE}
