"""The seam between the reconcile pass and the OCM hub.

The reconcile pass asks the hub two questions: which clusters did the placement choose,
and how far has each cluster's Job for this round got. ``KubernetesHub`` answers from a
real hub's API server, ``LocalHub`` from memory (for the simulation and tests); both
return the same types and raise the same ``HubError`` family.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from fl_gitops.hub._status import ClusterStatus

__all__ = ["ChangeWatcher", "Hub"]


class Hub(Protocol):
    """What the reconcile pass reads from the hub. Read-only: Argo CD does the writing."""

    def decided_clusters(self, namespace: str, placement: str) -> list[str]:
        """Every cluster in every PlacementDecision of ``placement`` in ``namespace``.

        OCM pages decisions (100 per PlacementDecision, labelled
        ``cluster.open-cluster-management.io/placement=<placement>``); all pages are
        merged, de-duplicated and sorted by name. No decisions: an empty list.

        Raises:
            HubError: a subclass saying why the hub could not answer.
        """
        ...

    def job_statuses(
        self,
        *,
        work_name: str,
        job_name: str,
        clusters: Sequence[str],
        experiment: str | None = None,
    ) -> dict[str, ClusterStatus]:
        """Each cluster's state for the Job ``job_name`` of ManifestWork ``work_name``.

        Args:
            work_name: the ManifestWork's name (the same in every cluster's namespace).
            job_name: this round's Job; feedback about another Job is not counted.
            clusters: the roster; the result has exactly these keys.
            experiment: the experiment's name, when known: lets a hub read every work
                with one list call by the ``fl-gitops.io/experiment`` label.

        Returns:
            ``{cluster: ClusterStatus}`` interpreted by ``interpret_work``.

        Raises:
            HubError: a subclass saying why the hub could not answer.
        """
        ...


@runtime_checkable
class ChangeWatcher(Protocol):
    """A hub that can wait for a change instead of being polled (``reconcile --watch``)."""

    def wait_for_change(self, timeout: float) -> bool:
        """Block until what the last answers came from changes (True) or ``timeout`` (False)."""
        ...
