"""fl-gitops: federated learning across an OCM fleet, run the GitOps way.

The whole public API is named here. Errors import eagerly; everything else loads on first
use (PEP 562), so that `fl-gitops render` never pays for the Kubernetes client, GitPython
or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

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

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY: dict[str, str] = {
    "Blueprint": "fl_gitops.blueprint",
    "load_blueprint": "fl_gitops.blueprint",
    "blueprint_schema": "fl_gitops.blueprint",
    "load_inventory": "fl_gitops.placement",
    "evaluate_placement": "fl_gitops.placement",
    "decision_pages": "fl_gitops.placement",
    "generate_inventory": "fl_gitops.placement",
    "RoundState": "fl_gitops.render",
    "render_experiment": "fl_gitops.render",
    "validate_object": "fl_gitops.validate",
    "validate_tree": "fl_gitops.validate",
    "ModelStore": "fl_gitops.store",
    "aggregate_round": "fl_gitops.aggregate",
    "aggregate_from_store": "fl_gitops.aggregate",
    "STRATEGIES": "fl_gitops.aggregate.strategies",
    "run_client": "fl_gitops.client",
    "ConfigRepo": "fl_gitops.gitops",
    "Hub": "fl_gitops.hub",
    "KubernetesHub": "fl_gitops.hub",
    "LocalHub": "fl_gitops.hub",
    "reconcile_once": "fl_gitops.reconcile",
    "rollback": "fl_gitops.reconcile",
    "run_simulation": "fl_gitops.simulate",
    "ApiServer": "fl_gitops.devhub",
}

__all__ = [
    "BlueprintError",
    "FlGitopsError",
    "GitError",
    "HubError",
    "InputError",
    "InventoryError",
    "RenderedObjectError",
    "StoreError",
    "StrategyOptionsError",
    "TemplateError",
    "UpdateRejected",
    "WorkTooLarge",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fl_gitops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
