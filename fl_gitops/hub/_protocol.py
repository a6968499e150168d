"""The seam between the reconcile pass and the OCM hub.

The reconcile pass asks the hub two questions: which clusters did the placement choose,
and how far has each cluster's Job for this round got. ``KubernetesHub`` answers from a
real hub's API server, ``LocalHub`` from memory (for the simulation and tests); both
return the same types and raise the same ``HubError`` family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from fl_gitops.hub._status import ClusterStatus
from fl_gitops.tensors import is_digest

__all__ = [
    "SHARD_MESSAGE_ENV",
    "ChangeWatcher",
    "Hub",
    "ShardJobSpec",
    "ShardJobState",
    "ShardRunner",
    "parse_shard_message",
]

#: The shard container's environment variable naming where it writes its ending message:
#: the rendered Job sets it to its ``terminationMessagePath`` (``/dev/termination-log``),
#: a local hub to a file per attempt that it reads back as the kubelet would.
SHARD_MESSAGE_ENV = "FL_TERMINATION_LOG"


def parse_shard_message(text: object) -> str | None:
    """A shard's ending message as the hub read it back: the ``sha256:<hex>`` of its
    decision file, surrounding whitespace aside; None for anything else (never shown: it
    is a pod's output)."""
    if not isinstance(text, str) or len(text) > 4096:
        return None
    value = text.strip()
    return value if is_digest(value) else None


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


@dataclass(frozen=True)
class ShardJobSpec:
    """One round's sharded aggregation as the hub runs it: a ``batch/v1`` Indexed Job.

    Built by the reconcile pass from the blueprint and the round; everything a shard pod
    needs beyond it is in the store, in the inputs document whose digest ``args`` carries
    (``fl-gitops aggregate --inputs URI --inputs-digest sha256:... --shard auto/N --out
    URI``): the Job's spec is written through the API server, the store is not trusted.

    ``name`` is a function of the round's inputs (experiment, round, attempt, the inputs'
    digest), so that a pass that was killed finds the Job the last one created, and a Job
    made for other inputs is never mistaken for this round's.
    """

    namespace: str
    name: str
    experiment: str
    round: int
    shards: int
    image: str
    args: tuple[str, ...]
    service_account: str
    active_deadline_seconds: int
    backoff_limit_per_index: int
    resources: Mapping[str, Any] = field(default_factory=dict)
    image_pull_secrets: tuple[str, ...] = ()
    # The Secret holding the store's credentials, given to the shard container whole as
    # ``envFrom`` (as the reconcile CronJob gets it); never a secret's value.
    store_secret: str | None = None
    # Further environment of the shard container, in the Kubernetes EnvVar form.
    env: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class ShardJobState:
    """How far a round's shards have got, read level-triggered from the hub.

    ``exists`` False: there is no such Job (never created, or deleted). ``complete``: every
    index succeeded. ``failed``: the Job failed as a whole (its deadline passed, or an index
    used up its retries); ``reason`` says which, in the hub's words, never a pod's output.

    ``messages``: for each succeeded index, what its pod reported as it ended, through the
    hub (a Kubernetes pod's termination message, which the kubelet writes into the pod's
    status with the node's credentials): the ``sha256:<hex>`` of the decision file the
    shard wrote (:func:`parse_shard_message`; anything else is left out). The merge checks the
    shards' files in the store against them: a party that can write to the bucket but not
    to the hub cannot swap a shard's output after it ended.
    """

    exists: bool
    succeeded: frozenset[int] = frozenset()
    failed_indexes: frozenset[int] = frozenset()
    active: int = 0
    complete: bool = False
    failed: bool = False
    reason: str = ""
    messages: Mapping[int, str] = field(default_factory=dict)


@runtime_checkable
class ShardRunner(Protocol):
    """A hub that can run a round's aggregation shards (``spec.aggregation.shards > 1``).

    The one write the reconcile pass makes to the hub, besides nothing: the shards' Job is
    ephemeral compute, a pure function of the round's inputs, not desired state in Git
    (see docs/architecture.md). ``KubernetesHub`` creates a real Indexed Job; ``LocalHub``
    runs the same ``fl-gitops aggregate --shard`` entrypoint in local worker processes.
    """

    def shard_job(self, spec: ShardJobSpec, *, create: bool = True) -> ShardJobState:
        """The state of ``spec``'s Job, creating it first when it does not exist and
        ``create`` is true. Idempotent: calling it again with the same spec never makes a
        second Job.

        Raises:
            HubError: a subclass saying why the hub could not answer (or refused the Job).
        """
        ...

    def delete_shard_job(self, namespace: str, name: str) -> bool:
        """Delete the Job and its pods (background propagation); False if there was none.

        Raises:
            HubError: a subclass saying why the hub could not answer.
        """
        ...
