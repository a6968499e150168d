"""What the reconcile job reads from the OCM hub, behind one small interface.

The reconcile pass needs two answers from the hub: the clusters a Placement decided
(``decided_clusters``) and how far each cluster's Job of this round has got
(``job_statuses``). ``KubernetesHub`` reads them from a real hub's API server;
``LocalHub`` keeps them in memory (or a JSON file) for the simulation and tests, and
also plays the placement controller, Argo CD's apply and the work agent. Both interpret
a ManifestWork with the same pure function, ``interpret_work``, and raise the same
``HubError`` family (``fl_gitops.hub.errors``). ``KubernetesHub`` (and ``translate``) load
on first use, with the official client; nothing else here imports it.

    hub = KubernetesHub.from_config()                     # in a pod: its ServiceAccount
    roster = hub.decided_clusters("fl-system", "digits-fedavg")
    statuses = hub.job_statuses(
        work_name="fl-digits-fedavg", job_name="fl-digits-fedavg-r3",
        clusters=roster, experiment="digits-fedavg",
    )
    progress = summarize(statuses)                        # 7 succeeded, 1 failed, ...

A succeeded Job's ``ClusterStatus`` also carries what it reported through its result
ConfigMap (``report``: a ``fl_gitops.reports.HubReport``, or None and ``report_problem``),
read back from the work agent's status feedback: the reconcile pass accepts an update only
when it matches that report.

docs/hub.md explains the states, the stale-status guard, the reports and the RBAC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fl_gitops._lazy import lazy_getattr
from fl_gitops.hub._local import LocalHub
from fl_gitops.hub._protocol import (
    SHARD_MESSAGE_ENV,
    ChangeWatcher,
    Hub,
    ShardJobSpec,
    ShardJobState,
    ShardRunner,
    parse_shard_message,
)
from fl_gitops.hub._status import (
    ClusterStatus,
    JobState,
    RoundProgress,
    feedback_values,
    interpret_work,
    missing_work,
    summarize,
)
from fl_gitops.hub.errors import (
    HubConfigError,
    HubConflict,
    HubError,
    HubForbidden,
    HubNotFound,
    HubUnavailable,
)
from fl_gitops.labels import EXPERIMENT_LABEL

if TYPE_CHECKING:
    from fl_gitops.hub._kubernetes import KubernetesHub, translate

# The official Kubernetes client is imported with these, on first use (PEP 562): a LocalHub,
# the simulation and the reconcile pass over a local hub never import it.
_LAZY: dict[str, str] = {
    "KubernetesHub": "fl_gitops.hub._kubernetes",
    "translate": "fl_gitops.hub._kubernetes",
}

__all__ = [
    "EXPERIMENT_LABEL",
    "SHARD_MESSAGE_ENV",
    "ChangeWatcher",
    "ClusterStatus",
    "Hub",
    "HubConfigError",
    "HubConflict",
    "HubError",
    "HubForbidden",
    "HubNotFound",
    "HubUnavailable",
    "JobState",
    "KubernetesHub",
    "LocalHub",
    "RoundProgress",
    "ShardJobSpec",
    "ShardJobState",
    "ShardRunner",
    "feedback_values",
    "interpret_work",
    "missing_work",
    "parse_shard_message",
    "summarize",
    "translate",
]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
