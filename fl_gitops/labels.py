"""The labels fl-gitops writes on rendered objects and reads back from the hub.

The renderer sets them and the hub reads ManifestWorks by them; one definition keeps the
writer and the readers from drifting apart. A module of its own so that neither side
imports the other (rendering never loads the Kubernetes client).
"""

from __future__ import annotations

__all__ = ["EXPERIMENT_LABEL", "ROUND_LABEL"]

EXPERIMENT_LABEL = "fl-gitops.io/experiment"
ROUND_LABEL = "fl-gitops.io/round"
