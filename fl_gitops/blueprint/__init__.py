"""The experiment blueprint: its schema, its loader, the typed value it yields, and the
starter that `fl-gitops init` writes."""

from fl_gitops.blueprint._load import (
    blueprint_schema,
    load_blueprint,
    parse_duration,
    with_defaults,
)
from fl_gitops.blueprint._model import (
    Aggregation,
    ArgoCD,
    Blueprint,
    Completion,
    GitOps,
    Reconcile,
    Store,
    Strategy,
)
from fl_gitops.blueprint._schema import API_VERSION, KIND, STRATEGY_NAMES, default
from fl_gitops.blueprint._starter import DEFAULT_NAME, check_name, starter_blueprint
from fl_gitops.blueprint._yaml import read_bounded

__all__ = [
    "API_VERSION",
    "DEFAULT_NAME",
    "KIND",
    "STRATEGY_NAMES",
    "Aggregation",
    "ArgoCD",
    "Blueprint",
    "Completion",
    "GitOps",
    "Reconcile",
    "Store",
    "Strategy",
    "blueprint_schema",
    "check_name",
    "default",
    "load_blueprint",
    "parse_duration",
    "read_bounded",
    "starter_blueprint",
    "with_defaults",
]
