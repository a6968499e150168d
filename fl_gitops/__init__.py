"""fl-gitops: federated learning across an OCM fleet, run the GitOps way.

The whole public API is named here, grouped by what a caller does from Python:

- render: ``load_blueprint`` → ``Blueprint``; ``load_inventory`` and ``evaluate_placement``
  (``PlacementResult``) → ``render_experiment`` with a ``RoundState`` (or
  ``render_offline``) → ``RenderedTree``, written by ``plan_changes`` and ``apply_changes``
  (``Changes``, ``diff_text`` for a preview); ``validate_tree`` checks what was written.
- aggregate: ``aggregate_round`` over ``Update`` s, bounded by ``Limits``, gives an
  ``AggregateResult`` (or raises ``NotEnoughUpdates``); ``aggregate_from_store`` reads a
  round from a ``ModelStore``; ``STRATEGIES`` and ``validate_options`` name the strategies.
- reconcile: ``reconcile_once`` over a ``ConfigRepo`` and a ``Hub`` (``LocalHub``,
  ``KubernetesHub``) gives a ``PassResult`` whose ``action`` is one of ``StartRound``,
  ``Aggregate``, ``RetryRound``, ``Finish``, ``Wait``; ``rollback`` gives a
  ``PublishResult``; ``run_simulation`` runs the loop with ``SimulationOptions`` and returns
  a ``SimulationReport``.

Errors import eagerly; everything else loads on first use (PEP 562), so that
``fl-gitops render`` never pays for the Kubernetes client, GitPython or torch. The
``TYPE_CHECKING`` block gives the lazy names their types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fl_gitops._lazy import lazy_getattr
from fl_gitops.errors import (
    BlueprintError,
    FlGitopsError,
    GitError,
    HubError,
    InputError,
    InventoryError,
    RenderedObjectError,
    StoreError,
    StrategyOptionsError,
    TemplateError,
    UpdateRejected,
    WorkTooLarge,
)

if TYPE_CHECKING:
    from fl_gitops.aggregate import (
        AggregateResult,
        Limits,
        NotEnoughUpdates,
        Update,
        aggregate_from_store,
        aggregate_round,
    )
    from fl_gitops.aggregate.strategies import STRATEGIES, validate_options
    from fl_gitops.blueprint import Blueprint, blueprint_schema, load_blueprint
    from fl_gitops.client import RoundConfig, load_round_config, run_client
    from fl_gitops.devhub import ApiServer, Identity, KubeAssets
    from fl_gitops.gitops import (
        Change,
        CommitInfo,
        ConfigRepo,
        Credentials,
        PublishHooks,
        PublishResult,
        PullRequestSpec,
        SigningKey,
    )
    from fl_gitops.hub import (
        ClusterStatus,
        Hub,
        HubConfigError,
        HubConflict,
        HubForbidden,
        HubNotFound,
        HubUnavailable,
        JobState,
        KubernetesHub,
        LocalHub,
        ShardJobSpec,
        ShardJobState,
        ShardRunner,
    )
    from fl_gitops.placement import (
        PlacementResult,
        decision_pages,
        evaluate_placement,
        generate_inventory,
        load_inventory,
    )
    from fl_gitops.reconcile import (
        Action,
        Aggregate,
        Finish,
        PassHooks,
        PassResult,
        RetryRound,
        StartRound,
        Wait,
        reconcile_once,
        rollback,
    )
    from fl_gitops.render import (
        Changes,
        RenderedTree,
        RoundState,
        apply_changes,
        diff_text,
        plan_changes,
        read_round_state,
        render_experiment,
    )
    from fl_gitops.render._offline import OfflineRender, render_offline
    from fl_gitops.reports import HubReport
    from fl_gitops.simulate import SimulationOptions, SimulationReport, run_simulation
    from fl_gitops.store import ModelStore, NotInStore
    from fl_gitops.tensors import HeaderError
    from fl_gitops.validate import Problem, validate_object, validate_tree

__version__ = "0.1.0"

# public name -> the module that defines it (the TYPE_CHECKING block above lists the same)
_LAZY: dict[str, str] = {
    # render
    "Blueprint": "fl_gitops.blueprint",
    "load_blueprint": "fl_gitops.blueprint",
    "blueprint_schema": "fl_gitops.blueprint",
    "load_inventory": "fl_gitops.placement",
    "evaluate_placement": "fl_gitops.placement",
    "PlacementResult": "fl_gitops.placement",
    "decision_pages": "fl_gitops.placement",
    "generate_inventory": "fl_gitops.placement",
    "RoundState": "fl_gitops.render",
    "read_round_state": "fl_gitops.render",
    "render_experiment": "fl_gitops.render",
    "RenderedTree": "fl_gitops.render",
    "render_offline": "fl_gitops.render._offline",
    "OfflineRender": "fl_gitops.render._offline",
    "Changes": "fl_gitops.render",
    "plan_changes": "fl_gitops.render",
    "apply_changes": "fl_gitops.render",
    "diff_text": "fl_gitops.render",
    "validate_object": "fl_gitops.validate",
    "validate_tree": "fl_gitops.validate",
    "Problem": "fl_gitops.validate",
    # aggregate
    "ModelStore": "fl_gitops.store",
    "NotInStore": "fl_gitops.store",
    "HeaderError": "fl_gitops.tensors",
    "aggregate_round": "fl_gitops.aggregate",
    "aggregate_from_store": "fl_gitops.aggregate",
    "AggregateResult": "fl_gitops.aggregate",
    "Limits": "fl_gitops.aggregate",
    "Update": "fl_gitops.aggregate",
    "NotEnoughUpdates": "fl_gitops.aggregate",
    "STRATEGIES": "fl_gitops.aggregate.strategies",
    "validate_options": "fl_gitops.aggregate.strategies",
    "run_client": "fl_gitops.client",
    "RoundConfig": "fl_gitops.client",
    "load_round_config": "fl_gitops.client",
    # reconcile
    "ConfigRepo": "fl_gitops.gitops",
    "Credentials": "fl_gitops.gitops",
    "PublishResult": "fl_gitops.gitops",
    "PublishHooks": "fl_gitops.gitops",
    "Change": "fl_gitops.gitops",
    "CommitInfo": "fl_gitops.gitops",
    "PullRequestSpec": "fl_gitops.gitops",
    "SigningKey": "fl_gitops.gitops",
    "Hub": "fl_gitops.hub",
    "KubernetesHub": "fl_gitops.hub",
    "LocalHub": "fl_gitops.hub",
    "ShardJobSpec": "fl_gitops.hub",
    "ShardJobState": "fl_gitops.hub",
    "ShardRunner": "fl_gitops.hub",
    "ClusterStatus": "fl_gitops.hub",
    "HubReport": "fl_gitops.reports",
    "JobState": "fl_gitops.hub",
    "HubNotFound": "fl_gitops.hub",
    "HubConflict": "fl_gitops.hub",
    "HubForbidden": "fl_gitops.hub",
    "HubUnavailable": "fl_gitops.hub",
    "HubConfigError": "fl_gitops.hub",
    "reconcile_once": "fl_gitops.reconcile",
    "PassResult": "fl_gitops.reconcile",
    "PassHooks": "fl_gitops.reconcile",
    "Action": "fl_gitops.reconcile",
    "StartRound": "fl_gitops.reconcile",
    "Aggregate": "fl_gitops.reconcile",
    "RetryRound": "fl_gitops.reconcile",
    "Finish": "fl_gitops.reconcile",
    "Wait": "fl_gitops.reconcile",
    "rollback": "fl_gitops.reconcile",
    "run_simulation": "fl_gitops.simulate",
    "SimulationOptions": "fl_gitops.simulate",
    "SimulationReport": "fl_gitops.simulate",
    "ApiServer": "fl_gitops.devhub",
    "KubeAssets": "fl_gitops.devhub",
    "Identity": "fl_gitops.devhub",
}

# Every public name, written out for type checkers and linters; a test holds it equal to
# the eager errors, __version__ and _LAZY (whose TYPE_CHECKING imports it mirrors).
__all__ = [
    "STRATEGIES",
    "Action",
    "Aggregate",
    "AggregateResult",
    "ApiServer",
    "Blueprint",
    "BlueprintError",
    "Change",
    "Changes",
    "ClusterStatus",
    "CommitInfo",
    "ConfigRepo",
    "Credentials",
    "Finish",
    "FlGitopsError",
    "GitError",
    "HeaderError",
    "Hub",
    "HubConfigError",
    "HubConflict",
    "HubError",
    "HubForbidden",
    "HubNotFound",
    "HubReport",
    "HubUnavailable",
    "Identity",
    "InputError",
    "InventoryError",
    "JobState",
    "KubeAssets",
    "KubernetesHub",
    "Limits",
    "LocalHub",
    "ModelStore",
    "NotEnoughUpdates",
    "NotInStore",
    "OfflineRender",
    "PassHooks",
    "PassResult",
    "PlacementResult",
    "Problem",
    "PublishHooks",
    "PublishResult",
    "PullRequestSpec",
    "RenderedObjectError",
    "RenderedTree",
    "RetryRound",
    "RoundConfig",
    "RoundState",
    "ShardJobSpec",
    "ShardJobState",
    "ShardRunner",
    "SigningKey",
    "SimulationOptions",
    "SimulationReport",
    "StartRound",
    "StoreError",
    "StrategyOptionsError",
    "TemplateError",
    "Update",
    "UpdateRejected",
    "Wait",
    "WorkTooLarge",
    "__version__",
    "aggregate_from_store",
    "aggregate_round",
    "apply_changes",
    "blueprint_schema",
    "decision_pages",
    "diff_text",
    "evaluate_placement",
    "generate_inventory",
    "load_blueprint",
    "load_inventory",
    "load_round_config",
    "plan_changes",
    "read_round_state",
    "reconcile_once",
    "render_experiment",
    "render_offline",
    "rollback",
    "run_client",
    "run_simulation",
    "validate_object",
    "validate_options",
    "validate_tree",
]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
