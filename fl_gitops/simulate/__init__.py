"""The loop on one machine: a bare config repo, a file store, a hub, warm workers.

The hub is a ``LocalHub`` (``LocalPlayers``), or a real API server whose other parties
``KubePlayers`` plays (``simulate --hub kubernetes``); that one needs the Kubernetes
client, so it loads only when that hub is chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fl_gitops._lazy import lazy_getattr
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


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
