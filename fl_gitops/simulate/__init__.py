"""The loop on one machine: a bare config repo, a file store, a hub, warm workers.

The hub is a ``LocalHub`` (``LocalPlayers``), or a real API server whose other parties
``KubePlayers`` plays (``simulate --hub kubernetes``); that one needs the Kubernetes
client, so it loads only when that hub is chosen.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fl_gitops.simulate._agent import LocalPlayers, Players, SyncResult
from fl_gitops.simulate._run import SimulationOptions, SimulationReport, run_simulation

if TYPE_CHECKING:
    from fl_gitops.simulate._kube import ARGOCD_MANAGER, KubePlayers

# These need the Kubernetes client: imported on first use (PEP 562), or by run_simulation
# when the hub is kubernetes.
_LAZY: dict[str, str] = {
    "ARGOCD_MANAGER": "fl_gitops.simulate._kube",
    "KubePlayers": "fl_gitops.simulate._kube",
}

__all__ = [
    "ARGOCD_MANAGER",
    "KubePlayers",
    "LocalPlayers",
    "Players",
    "SimulationOptions",
    "SimulationReport",
    "SyncResult",
    "run_simulation",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fl_gitops.simulate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
