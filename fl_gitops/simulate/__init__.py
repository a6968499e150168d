"""The loop on one machine: a bare config repo, a file store, a hub, warm workers.

The hub is a ``LocalHub`` (``LocalPlayers``), or a real API server whose other parties
``KubePlayers`` plays (``simulate --hub kubernetes``).
"""

from fl_gitops.simulate._agent import LocalPlayers, Players, SyncResult
from fl_gitops.simulate._kube import ARGOCD_MANAGER, KubePlayers
from fl_gitops.simulate._run import SimulationOptions, SimulationReport, run_simulation

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
