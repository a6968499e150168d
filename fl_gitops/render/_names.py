"""Every generated name and path, derived from the experiment name in one place.

The reconcile job, the hub and the renderer all need to agree on what the round's Job is
called and where a cluster's ManifestWork file lives; deriving them here keeps them in step.
"""

from __future__ import annotations

from dataclasses import dataclass

from fl_gitops.reports import result_name
from fl_gitops.tensors import model_path

__all__ = ["Layout", "Names", "model_uri"]


@dataclass(frozen=True)
class Names:
    """Kubernetes object names for one experiment and round."""

    experiment: str
    namespace: str
    round: int
    attempt: int = 1
    # A secure round's short Jobs (``keys``, ``share``, ``reveal``) have their own names;
    # its training Job is named as any round's.
    step: str = ""

    @property
    def placement(self) -> str:
        return self.experiment

    @property
    def work(self) -> str:
        """The ManifestWork: stable across rounds, so the work agent updates it in place."""
        return f"fl-{self.experiment}"

    @property
    def job(self) -> str:
        """The round's Job (and its ConfigMap): new each round and each retry of a round,
        since a Job's pod template is immutable and a finished Job is never run again."""
        suffix = f"-a{self.attempt}" if self.attempt > 1 else ""
        step = f"-{self.step}" if self.step else ""
        return f"fl-{self.experiment}-r{self.round}{suffix}{step}"

    @property
    def result(self) -> str:
        """The round's result ConfigMap, which the Job fills and the work agent reads back
        (per Job, like the Job: a retry reports afresh)."""
        return result_name(self.job)

    @property
    def client_account(self) -> str:
        """The Job's ServiceAccount on the cluster (when the blueprint names none)."""
        return f"fl-{self.experiment}-client"

    @property
    def reporter(self) -> str:
        """The Role (and RoleBinding) letting the Job write exactly its result ConfigMap:
        stable across rounds, its one resourceName moved to each round's ConfigMap."""
        return f"fl-{self.experiment}-report"

    @property
    def secagg_secret(self) -> str:
        """The cluster's own Secret of secure aggregation (its share key, its next mask
        key and seed): one per experiment, created empty by the work, filled by the Job."""
        return f"fl-{self.experiment}-secagg"

    @property
    def round_state(self) -> str:
        return f"{self.experiment}-round-state"

    @property
    def reconcile(self) -> str:
        return f"{self.experiment}-reconcile"

    @property
    def aggregation(self) -> str:
        """The ServiceAccount of the shards' pods (``spec.aggregation.shards > 1``): its own,
        with no Role, since a shard needs only the store."""
        return f"{self.experiment}-aggregate"

    def aggregation_job(self, inputs_digest: str) -> str:
        """The Indexed Job of this round's shards, named by the inputs it aggregates
        (``sha256:<hex>`` of the inputs document): a killed pass finds it again, and a Job
        made for other inputs (another attempt, other updates) is never taken for it."""
        suffix = f"-a{self.attempt}" if self.attempt > 1 else ""
        rest = f"-agg-r{self.round}{suffix}-{inputs_digest[7:15]}"
        # At most 60 characters: the Job controller labels its pods with the Job's name
        # (a label value, 63 at most) and names each pod's host `<name>-<index>`, which
        # Kubernetes keeps within 63 for an Indexed Job's indexes (up to 63 for 64
        # shards). A long experiment name is cut; the Job's labels name it whole.
        return f"{self.experiment[: max(1, 60 - len(rest))]}{rest}"

    @property
    def works_reader(self) -> str:
        """Cluster-scoped, so the hub namespace is part of it."""
        return f"fl-gitops-{self.namespace}-{self.experiment}-read-works"

    @property
    def application(self) -> str:
        return f"fl-{self.experiment}"


@dataclass(frozen=True)
class Layout:
    """Paths inside the experiment directory (relative to it)."""

    blueprint: str = "blueprint.yaml"
    kustomization: str = "kustomization.yaml"
    placement: str = "placement.yaml"
    round_state: str = "hub/round-state.yaml"
    reconcile_rbac: str = "hub/reconcile-rbac.yaml"
    reconcile_cronjob: str = "hub/reconcile-cronjob.yaml"
    works_dir: str = "works"
    preview: str = "preview/placementdecisions.yaml"
    roster: str = "roster.yaml"
    application: str = "argocd/application.yaml"
    history_dir: str = ".history"
    secagg: str = "secagg.yaml"

    def history(self, round_: int) -> str:
        return f"{self.history_dir}/round-{round_}.yaml"

    def work(self, cluster: str) -> str:
        return f"{self.works_dir}/{cluster}.yaml"

    def owned(self, path: str) -> bool:
        """Whether render owns ``path``: it may rewrite or delete it, never user files."""
        return path in (
            self.kustomization,
            self.placement,
            self.round_state,
            self.reconcile_rbac,
            self.reconcile_cronjob,
            self.preview,
            self.roster,
            self.application,
            self.secagg,
        ) or (path.startswith(f"{self.works_dir}/") and path.endswith(".yaml"))


def model_uri(store_uri: str, digest: str) -> str:
    """Where a content-addressed global model lives in the store."""
    return f"{store_uri.rstrip('/')}/{model_path(digest)}"
