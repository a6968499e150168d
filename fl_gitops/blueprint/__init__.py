"""The experiment blueprint: its schema, its loader, and the typed value it yields."""

from fl_gitops.blueprint._load import blueprint_schema, load_blueprint, parse_duration
from fl_gitops.blueprint._model import (
    ArgoCD,
    Blueprint,
    Completion,
    GitOps,
    Reconcile,
    Store,
    Strategy,
)
from fl_gitops.blueprint._schema import API_VERSION, KIND, STRATEGY_NAMES
from fl_gitops.blueprint._yaml import read_bounded

__all__ = [
    "API_VERSION",
    "KIND",
    "STRATEGY_NAMES",
    "ArgoCD",
    "Blueprint",
    "Completion",
    "GitOps",
    "Reconcile",
    "Store",
    "Strategy",
    "blueprint_schema",
    "load_blueprint",
    "parse_duration",
    "read_bounded",
]
