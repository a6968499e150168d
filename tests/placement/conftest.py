"""Shared pieces for the offline placement tests: a ManagedCluster builder, the
reference placement of the stock blueprint, a fixed clock, the OCM CRD schemas and
``evaluate`` (one placement, ``exp/fl``, evaluated offline)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from fl_gitops.placement import evaluate_placement

from ..crds import ocm_crd_schema

# The stock blueprint, whose spec.placement is the reference placement.
STOCK_BLUEPRINT = Path(__file__).resolve().parents[2] / "blueprints" / "digits-fedavg.yaml"

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)

# The type of the ``cluster`` fixture: ``cluster("name", labels=..., taints=...)``.
Make = Callable[..., dict[str, Any]]


def evaluate(spec: dict[str, Any] | None, clusters: list[dict[str, Any]], now: datetime, **kw: Any):
    """``evaluate_placement`` of placement ``exp/fl``."""
    return evaluate_placement(spec, clusters, placement_name="fl", namespace="exp", now=now, **kw)


def make_cluster(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    claims: dict[str, str] | None = None,
    taints: list[dict[str, Any]] | None = None,
    cpu: str | None = None,
    memory: str | None = None,
    clusterset: str | None = "fl-silos",
) -> dict[str, Any]:
    """A small ManagedCluster with just the fields a test needs."""
    all_labels = dict(labels or {})
    if clusterset is not None:
        all_labels["cluster.open-cluster-management.io/clusterset"] = clusterset
    status: dict[str, Any] = {
        "clusterClaims": [{"name": k, "value": v} for k, v in (claims or {}).items()]
    }
    if cpu is not None or memory is not None:
        resources = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
        status["allocatable"] = dict(resources)
        status["capacity"] = dict(resources)
    return {
        "apiVersion": "cluster.open-cluster-management.io/v1",
        "kind": "ManagedCluster",
        "metadata": {"name": name, "labels": all_labels},
        "spec": {"hubAcceptsClient": True, "taints": list(taints or [])},
        "status": status,
    }


@pytest.fixture
def cluster() -> Make:
    return make_cluster


@pytest.fixture
def reference_spec() -> dict[str, Any]:
    return yaml.safe_load(STOCK_BLUEPRINT.read_text())["spec"]["placement"]


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def crd_schema() -> Callable[[str], dict[str, Any]]:
    """Load ``openAPIV3Schema`` of an OCM CRD by its upstream file name (vendored copy)."""

    def load(file_name: str) -> dict[str, Any]:
        return ocm_crd_schema(file_name)

    return load
