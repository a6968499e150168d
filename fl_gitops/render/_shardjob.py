"""The manifest of one round's aggregation shards: a ``batch/v1`` Indexed Job.

The reconcile job creates this Job through the API server (it is ephemeral compute, a
pure function of the round's inputs, not desired state in Git: docs/architecture.md), yet
it is rendered like every other manifest, from a template through the one sandboxed
environment, so its values reach YAML only through the escaping filters, a user's
``--templates`` directory can override it by name, and the same spec gives the same
bytes. What the hub supports is an input too: ``backoffLimitPerIndex`` (Kubernetes 1.29)
and ``podFailurePolicy`` (1.26) are written only for a hub that knows them, since an
older API server drops unknown fields silently and the Job would run with no retry bound.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fl_gitops.errors import TemplateError
from fl_gitops.labels import EXPERIMENT_LABEL, ROUND_LABEL
from fl_gitops.render._env import make_env
from fl_gitops.render._render import _render

if TYPE_CHECKING:
    from fl_gitops.hub import ShardJobSpec

__all__ = [
    "BACKOFF_LIMIT_PER_INDEX",
    "COMPONENT",
    "COMPONENT_LABEL",
    "INDEXED_JOBS",
    "POD_FAILURE_POLICY",
    "SHARD_CONTAINER",
    "TEMPLATE",
    "TERMINATION_MESSAGE_PATH",
    "TTL_SECONDS_AFTER_FINISHED",
    "shard_job_labels",
    "shard_job_manifest",
]

TEMPLATE = "aggregation-job.yaml.j2"
SHARD_CONTAINER = "shard"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT = "aggregation"
# The Kubernetes versions (major, minor) that bring what the Job uses: Indexed completion
# (beta and on by default in 1.22), the pod failure policy (beta, on, 1.26) and the
# per-index retry limit (beta, on, 1.29).
INDEXED_JOBS = (1, 22)
POD_FAILURE_POLICY = (1, 26)
BACKOFF_LIMIT_PER_INDEX = (1, 29)
# A day: the reconcile pass deletes the Job once it merged the round; this only removes
# the Job of an experiment nobody reconciles any more. Long enough that a pass running
# hours late still finds the finished Job (and does not run the shards again).
TTL_SECONDS_AFTER_FINISHED = 86400
# Where the shard container writes its ending message (the sha256 of its decision file),
# which the kubelet copies into the pod's status (``terminationMessagePolicy: File``): the
# container's FL_TERMINATION_LOG (hub.SHARD_MESSAGE_ENV) names this path.
TERMINATION_MESSAGE_PATH = "/dev/termination-log"


def shard_job_labels(spec: ShardJobSpec) -> dict[str, str]:
    """The labels of the Job and its pods: the experiment's and the round's, as the other
    manifests carry them, plus the component. No Argo CD tracking label: Argo CD must not
    take the Job for a resource of the experiment's Application (and prune it)."""
    return {
        "app.kubernetes.io/managed-by": "fl-gitops",
        "app.kubernetes.io/part-of": "fl-gitops",
        COMPONENT_LABEL: COMPONENT,
        EXPERIMENT_LABEL: spec.experiment,
        ROUND_LABEL: str(spec.round),
    }


def shard_job_manifest(
    spec: ShardJobSpec,
    *,
    server_version: tuple[int, int],
    template_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The Indexed Job that runs ``spec``'s shards, for a hub serving ``server_version``.

    Args:
        spec: the round's shards, as the reconcile pass built them.
        server_version: the hub's Kubernetes (major, minor). From 1.29 each index has its
            own retries (``backoffLimitPerIndex``, ``maxFailedIndexes: 0``); before, the
            Job gets ``backoffLimit`` = shards x retries, the same budget shared. From
            1.26 a ``podFailurePolicy`` spares an evicted shard its retries and fails the
            Job at once on an input error (exit 2).
        template_dir: the user's templates, overriding the shipped one by name.

    Returns:
        The Job as a plain mapping, ready to be sent to the API server.

    Raises:
        ValueError: ``spec.shards`` is below 1. (Whether the hub runs Indexed Jobs at all,
            1.22 and newer, is the hub's check: ``KubernetesHub`` says so to the user.)
        TemplateError: the template failed, or did not render one Job.
    """
    if spec.shards < 1:
        raise ValueError(f"a shard Job needs at least one shard, got {spec.shards}")
    per_index = tuple(server_version) >= BACKOFF_LIMIT_PER_INDEX
    env = [_plain(entry) for entry in spec.env]
    if not any(entry.get("name") == "HOME" for entry in env):
        # the root filesystem is read-only: HOME is the writable /tmp, as in the CronJob
        env.insert(0, {"name": "HOME", "value": "/tmp"})
    job = {
        "name": spec.name,
        "namespace": spec.namespace,
        "labels": shard_job_labels(spec),
        "shards": spec.shards,
        "per_index": per_index,
        "backoff_limit_per_index": spec.backoff_limit_per_index,
        "backoff_limit": spec.shards * spec.backoff_limit_per_index,
        "active_deadline_seconds": spec.active_deadline_seconds,
        "ttl_seconds_after_finished": TTL_SECONDS_AFTER_FINISHED,
        "pod_failure_policy": tuple(server_version) >= POD_FAILURE_POLICY,
        "service_account": spec.service_account,
        "image_pull_secrets": [{"name": name} for name in spec.image_pull_secrets],
        "image": spec.image,
        "args": list(spec.args),
        "termination_message_path": TERMINATION_MESSAGE_PATH,
        "env": env,
        "store_secret": spec.store_secret or "",
        "resources": _plain(spec.resources),
    }
    # The shipped templates' own rendering and its error mapping (render._render).
    text = _render(make_env(template_dir), TEMPLATE, {"job": job})
    try:
        manifest = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # where, never what: the text holds the spec's values
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise TemplateError(f"{TEMPLATE}: the rendered Job is not YAML{where}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "Job":
        raise TemplateError(f"{TEMPLATE}: the template did not render one Job")
    return manifest


def _plain(value: Any) -> Any:
    """``value`` as plain dicts and lists (a spec's mappings may be read-only views)."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
