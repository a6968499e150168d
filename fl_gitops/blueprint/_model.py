"""The typed, validated blueprint that the rest of fl-gitops reads.

Frozen, so that rendering can treat it as a value: the same blueprint always renders the
same bytes. Sections that are passed through to a manifest or to the client untouched
(the PlacementSpec, the client's model/data/train settings) stay plain mappings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fl_gitops.blueprint._schema import default

# Defaults are the schema's (``_schema.default``): the loader fills them from there
# (``_load.with_defaults``, before anything reads the document), and these fields take
# the same values for code that builds a section by hand.

__all__ = [
    "Aggregation",
    "ArgoCD",
    "Blueprint",
    "Completion",
    "GitOps",
    "Influence",
    "Reconcile",
    "Store",
    "Strategy",
]


@dataclass(frozen=True)
class Completion:
    """When a round may be aggregated: everyone done, or the timeout with a quorum."""

    min_clusters: int
    timeout: str
    timeout_seconds: float
    retries: int = default("spec", "completion", "retries")


@dataclass(frozen=True)
class Strategy:
    """The aggregation strategy and its (validated, defaults filled) options.

    ``name``, ``options`` and ``dp`` are what the blueprint says (``dp`` with its defaults
    filled); ``effective_name`` and ``effective_options`` are what the aggregation runs,
    built once at load: the named strategy, or the DP wrapper around it.
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    dp: dict[str, Any] | None = None
    # spec.strategy.secureAggregation with bits filled: threshold, neighbours, clipRange.
    secure_aggregation: dict[str, Any] | None = None
    effective_name: str = field(kw_only=True)
    effective_options: dict[str, Any] = field(kw_only=True)


@dataclass(frozen=True)
class Store:
    """Where models and updates live; credentials are a Secret's name, never values."""

    uri: str
    secret_ref: str | None = None
    max_update_bytes: int | None = None
    update_norm_bound: float | None = None


@dataclass(frozen=True)
class Influence:
    """How much one cluster may move the global model: on by default, so that one scaled
    update or one inflated example count never takes a round over unconfigured."""

    median_distance_multiple: float | None = default(
        "spec", "influence", "distance", "medianMultiple"
    )
    max_num_examples: int = default("spec", "influence", "numExamples", "max")
    above_max_num_examples: str = default("spec", "influence", "numExamples", "above")


@dataclass(frozen=True)
class Aggregation:
    """How a round is aggregated on the hub: in the reconcile pod (one shard), or split by
    tensor slice over an Indexed Job's pods when one pod's disk, memory or cores are not
    enough (``fl_gitops.aggregate._shards``)."""

    shards: int = default("spec", "aggregation", "shards")
    resources: dict[str, Any] = field(default_factory=dict)
    active_deadline_seconds: int = default("spec", "aggregation", "activeDeadlineSeconds")
    backoff_limit_per_index: int = default("spec", "aggregation", "backoffLimitPerIndex")


@dataclass(frozen=True)
class GitOps:
    """The config repo and how rounds reach it."""

    repo: str
    branch: str
    path: str
    mode: str = default("spec", "gitops", "mode")
    credentials_secret_ref: str | None = None
    pull_request: dict[str, Any] = field(default_factory=dict)
    signing_secret_ref: str | None = None


@dataclass(frozen=True)
class Reconcile:
    """The hub's reconcile CronJob."""

    schedule: str
    image: str
    image_pull_secrets: tuple[str, ...] = ()
    active_deadline_seconds: int = default("spec", "reconcile", "activeDeadlineSeconds")


@dataclass(frozen=True)
class ArgoCD:
    """Where Argo CD runs on the hub and which project syncs experiments."""

    namespace: str = default("spec", "argocd", "namespace")
    project: str = default("spec", "argocd", "project")
    server: str = default("spec", "argocd", "server")


@dataclass(frozen=True)
class Blueprint:
    """One experiment, as written in its blueprint file.

    ``digest`` is the sha256 of the file's bytes: commits record it (``FL-Blueprint``) so
    a round can be traced to the exact blueprint that produced it.
    """

    file: str
    digest: str
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    rounds: int
    placement: dict[str, Any]
    completion: Completion
    strategy: Strategy
    client: dict[str, Any]
    evaluation_server: bool
    store: Store
    gitops: GitOps
    reconcile: Reconcile
    argocd: ArgoCD
    influence: Influence = field(default_factory=Influence)
    aggregation: Aggregation = field(default_factory=Aggregation)
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
