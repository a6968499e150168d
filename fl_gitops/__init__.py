"""fl-gitops: federated learning across an OCM fleet, run the GitOps way."""

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
)

__version__ = "0.1.0"

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
    "__version__",
]
