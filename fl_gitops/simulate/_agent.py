"""Argo CD and OCM's work agent, played on one machine.

After each push, `sync` reads the remote tip and hands what Argo CD would sync (the
kustomization's resources) to the hub's players: a `LocalHub` (through `LocalPlayers`),
or a real API server (`fl_gitops.simulate._kube.KubePlayers`), which prune what left.
Each synced ManifestWork's Job becomes the command line its container would run: its
command and args, its env, and its ConfigMap volumes written out as files (paths under a
mount are rewritten to the files' local place). The results are reported on the hub the
way the work agent's status feedback would report them.

The authenticated channel is played too: each Job gets ``FL_RESULT_FILE`` (its result
file, in place of the result ConfigMap it would patch on a cluster), and once it ran the
agent hands what the file holds to the hub as the result ConfigMap's data, whose feedback
the work's own rules read back (``LocalHub``), or writes that status through the status
subresource (``KubePlayers``). A file that is missing, too large or not a map of strings
is no data at all, as a ConfigMap the Job never patched.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from fl_gitops.gitops import BareRepo
from fl_gitops.hub import ClusterStatus, LocalHub
from fl_gitops.placement import PlacementResult
from fl_gitops.reports import RESULT_FILE_ENV
from fl_gitops.simulate._workers import JobSpec, job_env

# The rendered Job's name for its Secret, and the file the simulation gives it instead
# (fl_gitops.client.secure reads either; not imported here: it imports the protocol).
SECAGG_SECRET_ENV = "FL_SECAGG_SECRET"
SECAGG_SECRET_FILE_ENV = "FL_SECAGG_SECRET_FILE"

if TYPE_CHECKING:
    from fl_gitops.client.roundconfig import RoundConfig

__all__ = ["LocalAgent", "LocalPlayers", "Players", "RoundWork", "SyncResult", "read_result"]

# A ConfigMap holds at most 1 MiB; a report is three short strings.
MAX_RESULT_BYTES = 64 * 1024


@dataclass
class SyncResult:
    """What one sync did: applied objects as the hub stored them, and what was skipped."""

    applied: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # "Kind ns/name" -> why

    @property
    def works(self) -> list[dict[str, Any]]:
        return [o for o in self.applied if o.get("kind") == "ManifestWork"]


class Players(Protocol):
    """The parties of a hub other than the reconcile job, as the simulation plays them."""

    def register(self, clusters: Sequence[Mapping[str, Any]]) -> None:
        """OCM's registration: the fleet's ManagedClusters and their namespaces."""

    def ensure_namespace(self, name: str) -> None:
        """A namespace the hub's administrator made (the experiment's)."""

    def place(self, result: PlacementResult, *, namespace: str, placement: str) -> None:
        """OCM's placement controller: the decisions of ``placement``."""

    def decided_clusters(self, namespace: str, placement: str) -> list[str]:
        """What the placement controller decided (as the reconcile pass reads it)."""
        ...

    def sync(self, objects: Sequence[Mapping[str, Any]], *, experiment: str) -> SyncResult:
        """Argo CD: apply exactly ``objects``, prune the experiment's leftovers."""
        ...

    def report_job(
        self,
        cluster: str,
        work_name: str,
        *,
        job_name: str,
        succeeded: bool | None,
        result: Mapping[str, str] | None = None,
    ) -> None:
        """The work agent: the work's status once its Job ran (``result``: the data the
        Job wrote into its result ConfigMap)."""

    def job_statuses(
        self,
        *,
        work_name: str,
        job_name: str,
        clusters: Sequence[str],
        experiment: str | None = None,
    ) -> dict[str, ClusterStatus]:
        """Each cluster's state, as the reconcile pass reads it."""
        ...

    def batch(self) -> contextlib.AbstractContextManager[Any]:
        """Group writes (a local hub writes its files once)."""
        ...


class LocalPlayers:
    """The players over a ``LocalHub``, which keeps only decisions and ManifestWorks."""

    def __init__(self, hub: LocalHub) -> None:
        self.hub = hub

    def register(self, clusters: Sequence[Mapping[str, Any]]) -> None:
        """Nothing to keep: a local hub has no ManagedClusters."""

    def ensure_namespace(self, name: str) -> None:
        """Nothing to keep: a local hub has no namespaces."""

    def place(self, result: PlacementResult, *, namespace: str, placement: str) -> None:
        self.hub.set_decisions(namespace, placement, list(result.decided))

    def decided_clusters(self, namespace: str, placement: str) -> list[str]:
        return self.hub.decided_clusters(namespace, placement)

    def sync(self, objects: Sequence[Mapping[str, Any]], *, experiment: str) -> SyncResult:
        works = [dict(o) for o in objects if o.get("kind") == "ManifestWork"]
        with self.hub.batch():
            self.hub.sync_works(works, experiment=experiment)
        return SyncResult(applied=works)

    def report_job(
        self,
        cluster: str,
        work_name: str,
        *,
        job_name: str,
        succeeded: bool | None,
        result: Mapping[str, str] | None = None,
    ) -> None:
        self.hub.report_job(
            cluster, work_name, job_name=job_name, succeeded=succeeded, result=result
        )

    def job_statuses(
        self,
        *,
        work_name: str,
        job_name: str,
        clusters: Sequence[str],
        experiment: str | None = None,
    ) -> dict[str, ClusterStatus]:
        return self.hub.job_statuses(
            work_name=work_name, job_name=job_name, clusters=clusters, experiment=experiment
        )

    @contextlib.contextmanager
    def batch(self) -> Iterator[LocalPlayers]:
        with self.hub.batch():
            yield self


@dataclass(frozen=True)
class RoundWork:
    """One cluster's ManifestWork, as synced: the names the agent reports on, the Job to
    run, the round config the Job reads (read once, here) and the file the Job writes its
    report to (the result ConfigMap's stand-in)."""

    cluster: str
    work_name: str
    job_name: str
    spec: JobSpec
    config: RoundConfig
    result_file: Path

    @property
    def round(self) -> int:
        return self.config.round


class LocalAgent:
    """Syncs the config repo to the hub's players and prepares each Job to run locally."""

    def __init__(
        self,
        hub: Players,
        *,
        remote: Path,
        branch: str,
        jobs_dir: Path,
        path: str,
        experiment: str,
        base_env: Mapping[str, str],
    ) -> None:
        self.hub = hub
        self.remote = remote
        self.branch = branch
        self.jobs_dir = jobs_dir
        self.path = path
        self.experiment = experiment
        self.base_env = dict(base_env)
        self.last_sync = SyncResult()
        # Each cluster's own local state (its secure-aggregation Secret), one dir each.
        self.clusters_dir = jobs_dir.parent / "clusters"

    def sync(self) -> list[RoundWork]:
        """Apply the ManifestWorks at the tip of the remote's ``branch`` (with pruning), as
        Argo CD would.

        Reads the synced files straight from the bare remote (``BareRepo.read_blobs``, one
        ``git cat-file --batch`` per read) rather than fetching into a checkout: what Argo
        CD sees is exactly the pushed commit.
        """
        remote = BareRepo(self.remote)
        base = self.path.strip("/")
        (kustomization,) = remote.read_blobs(self.branch, [f"{base}/kustomization.yaml"])
        objects: list[dict[str, Any]] = []
        if kustomization is not None:
            resources = yaml.load(kustomization, Loader=yaml.CSafeLoader)["resources"]
            paths = [f"{base}/{rel}" for rel in resources]
            for text in remote.read_blobs(self.branch, paths):
                objects += [o for o in yaml.load_all(text or b"", Loader=yaml.CSafeLoader) if o]
        self.last_sync = self.hub.sync(objects, experiment=self.experiment)
        # the works as the hub stored them: what a work agent would read
        return [self._prepare(work) for work in self.last_sync.works]

    def report(self, work: RoundWork, *, succeeded: bool | None) -> None:
        """The work agent's status for the Job, with what the Job wrote into its result
        ConfigMap (its result file) once it ran."""
        result = read_result(work.result_file) if succeeded is not None else None
        self.hub.report_job(
            work.cluster,
            work.work_name,
            job_name=work.job_name,
            succeeded=succeeded,
            result=result,
        )

    def _prepare(self, work: Mapping[str, Any]) -> RoundWork:
        cluster = work["metadata"]["namespace"]
        manifests = work["spec"]["workload"]["manifests"]
        job = next(m for m in manifests if m.get("kind") == "Job")
        config_maps = {m["metadata"]["name"]: m for m in manifests if m.get("kind") == "ConfigMap"}
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        job_dir = self.jobs_dir / cluster / job["metadata"]["name"]
        shutil.rmtree(job_dir, ignore_errors=True)
        mounts: list[tuple[str, str]] = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            local = job_dir / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                data = config_maps[volume["configMap"]["name"]].get("data", {})
                for key, value in data.items():
                    (local / key).write_text(value, encoding="utf-8")
            elif "persistentVolumeClaim" in volume:
                # A cluster's own data: <workdir>/data/<cluster>/<claim> when the user made it.
                claim = volume["persistentVolumeClaim"]["claimName"]
                source = self.jobs_dir.parent / "data" / cluster / claim
                if source.is_dir():
                    shutil.rmtree(local)
                    local.symlink_to(source.resolve(), target_is_directory=True)
            mounts.append((mount["mountPath"].rstrip("/"), str(local)))
        mounts.sort(key=lambda m: -len(m[0]))

        def local_path(value: str) -> str:
            for mount_path, local in mounts:
                if value == mount_path or value.startswith(mount_path + "/"):
                    return local + value[len(mount_path) :]
            return value

        argv = [*container.get("command", []), *container.get("args", [])]
        env = [
            {"name": e["name"], "value": local_path(str(e.get("value", "")))} if "value" in e else e
            for e in container.get("env", [])
        ]
        result_file = job_dir / "result.json"
        extra = {"HOME": str(job_dir), RESULT_FILE_ENV: str(result_file)}
        secret = next((e.get("value") for e in env if e.get("name") == SECAGG_SECRET_ENV), None)
        if secret:
            # The cluster's Secret, played by a file of the cluster's own local state (never
            # under the hub's directory or the store, which the reconcile pass reads).
            name = str(secret).rpartition("/")[2]
            extra[SECAGG_SECRET_FILE_ENV] = str(self.clusters_dir / cluster / f"{name}.json")
        spec = JobSpec(
            cluster=cluster,
            argv=tuple(local_path(str(a)) for a in argv),
            env=job_env({**self.base_env, **extra}, env),
        )
        from fl_gitops.client.job import CONFIG_ENV
        from fl_gitops.client.roundconfig import load_round_config

        config = load_round_config(dict(spec.env)[CONFIG_ENV], cluster=cluster)
        return RoundWork(
            cluster=cluster,
            work_name=work["metadata"]["name"],
            job_name=job["metadata"]["name"],
            spec=spec,
            config=config,
            result_file=result_file,
        )


def read_result(path: Path) -> dict[str, str] | None:
    """The data a Job wrote to its result file, as its result ConfigMap would hold it.

    None (nothing patched) when the file is missing, over ``MAX_RESULT_BYTES``, or not a
    JSON object of strings: the hub reads what the Job wrote, and a parse of a cluster's
    values (``reports.parse_report``) decides later what it is worth.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_RESULT_BYTES + 1)
    except OSError:
        return None
    if len(raw) > MAX_RESULT_BYTES:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return None
    return {str(k): v for k, v in data.items()}


def pending(works: Sequence[RoundWork], hub: Players, experiment: str) -> list[RoundWork]:
    """The works whose current Job has not reported a result yet."""
    from fl_gitops.hub import JobState

    if not works:
        return []
    statuses = hub.job_statuses(
        work_name=works[0].work_name,
        job_name=works[0].job_name,
        clusters=[w.cluster for w in works],
        experiment=experiment,
    )
    done = {JobState.SUCCEEDED, JobState.FAILED}
    return [w for w in works if statuses[w.cluster].state not in done]
