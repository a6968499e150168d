"""The real OCM CRD schemas for tests, from the structural copies the package ships.

CI runs on a clean clone without the upstream folder; the copies are the upstream CRDs
with descriptions removed (tests/validate/test_validate_vendor.py proves it wherever the
upstream folder is present), so fixtures validate against real schemas everywhere.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

VENDORED = Path(__file__).resolve().parents[1] / "fl_gitops" / "schemas" / "crds"


@cache
def _by_upstream_file() -> dict[str, Path]:
    sources = json.loads((VENDORED / "SOURCES.json").read_text())
    return {
        Path(entry["copiedFrom"]).name: VENDORED / name
        for name, entry in sources.items()
        if entry.get("copiedFrom")
    }


def ocm_crd_schema(upstream_file: str) -> dict[str, Any]:
    """``openAPIV3Schema`` of a CRD, named by its upstream file name (as in shared/ocm-crds)."""
    return json.loads(_by_upstream_file()[upstream_file].read_text())["openAPIV3Schema"]
