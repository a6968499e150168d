"""The API version of fl-gitops's own documents: one definition for writers and readers.

The blueprint (``Experiment``), the roster and round records and the round config a Job
reads all carry it; the schema checks it, rendering writes it and ``validate`` recognises
it. A module of its own, importing nothing, so that any side may use it.
"""

from __future__ import annotations

__all__ = ["API_GROUP", "API_VERSION"]

API_GROUP = "fl-gitops.io"
API_VERSION = f"{API_GROUP}/v1alpha1"
