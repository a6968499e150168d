"""The simulation's Job controller writes the status the hub's reader reads back.

``KubeJobController`` (``simulate --hub kubernetes``) plays Kubernetes' Job controller on a
development hub; what it writes must read back through ``shard_job_state`` (the function
``KubernetesHub`` reads every Job with) as the state it wrote, or the simulated hub would
test a reader against a writer that disagrees with it. The full loop runs against the real
API server in tests/apiserver/test_simulate_kubernetes_shards.py.
"""

from __future__ import annotations

import pytest

from fl_gitops.hub import ShardJobSpec, ShardJobState
from fl_gitops.hub._jobstatus import parse_indexes, shard_job_state
from fl_gitops.render import shard_job_manifest
from fl_gitops.simulate._kube import _spec_of, _status_of, index_ranges

T = "2026-12-02T04:00:00Z"


@pytest.mark.parametrize(
    ("indexes", "text"),
    [(set(), ""), ({3}, "3"), ({0, 1, 2, 4}, "0-2,4"), ({0, 2, 4, 5, 6, 9}, "0,2,4-6,9")],
)
def test_indexes_are_written_as_the_job_controller_writes_them(indexes, text):
    assert index_ranges(indexes) == text
    assert parse_indexes(text, 10) == frozenset(indexes)


@pytest.mark.parametrize(
    "state",
    [
        ShardJobState(exists=True, active=3),
        ShardJobState(exists=True, succeeded=frozenset({0, 2}), active=1),
        ShardJobState(exists=True, succeeded=frozenset({0, 1, 2}), complete=True),
        ShardJobState(
            exists=True,
            succeeded=frozenset({0}),
            failed_indexes=frozenset({1}),
            failed=True,
            reason="FailedIndexes: shard index 1 failed 3 times (backoffLimitPerIndex 2)",
        ),
    ],
)
def test_the_status_written_reads_back_as_the_state_it_was_written_for(state):
    job = {"status": {k: v for k, v in _status_of(state, T, T).items() if v is not None}}

    assert shard_job_state(job, 3) == state


SPEC = ShardJobSpec(
    namespace="fl-system",
    name="exp-agg-r2-0123abcd",
    experiment="exp",
    round=2,
    shards=3,
    image="img:1",
    args=("aggregate", "--shard", "auto/3"),
    service_account="exp-aggregate",
    active_deadline_seconds=600,
    backoff_limit_per_index=2,
    env=({"name": "FL_LOG", "value": "info"},),
)


@pytest.mark.parametrize("version", [(1, 20), (1, 30)], ids=["shared-budget", "per-index"])
def test_the_job_on_the_server_gives_back_what_running_it_needs(version):
    job = shard_job_manifest(SPEC, server_version=version)
    job["spec"].pop("completionMode")  # what a 1.20 server drops, among others

    again = _spec_of(job)

    assert (again.namespace, again.name, again.shards, again.args) == (
        SPEC.namespace,
        SPEC.name,
        SPEC.shards,
        SPEC.args,
    )
    assert (again.experiment, again.round, again.image) == ("exp", 2, "img:1")
    assert again.backoff_limit_per_index == 2
    assert again.active_deadline_seconds == 600
    assert {"name": "FL_LOG", "value": "info"} in again.env
