"""The loop on one machine: a bare config repo, a file store, a local hub, warm workers."""

from fl_gitops.simulate._run import SimulationOptions, SimulationReport, run_simulation

__all__ = ["SimulationOptions", "SimulationReport", "run_simulation"]
