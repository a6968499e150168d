"""Argo CD health checks (Lua) for the OCM kinds an experiment syncs.

Argo CD has no built-in health for ManifestWork or Placement: without these scripts an
FL round shows Healthy the moment its ManifestWorks exist. The hub bootstrap puts them
into ``argocd-cm`` under ``resource.customizations.health.<group>_<kind>``; this module
is the one place that knows the files and the keys, so the bootstrap renderer and the
docs cannot drift from the scripts. The scripts are package data, read with
``importlib.resources``.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["HEALTH_CHECKS", "argocd_cm_health_entries", "argocd_cm_key", "health_script"]

# kind -> (API group, script file in this package)
HEALTH_CHECKS: dict[str, tuple[str, str]] = {
    "ManifestWork": ("work.open-cluster-management.io", "manifestwork.lua"),
    "Placement": ("cluster.open-cluster-management.io", "placement.lua"),
}


def _check(kind: str) -> tuple[str, str]:
    try:
        return HEALTH_CHECKS[kind]
    except KeyError:
        known = ", ".join(sorted(HEALTH_CHECKS))
        raise ValueError(f"no health check for kind {kind!r}; expected one of: {known}") from None


def health_script(kind: str) -> str:
    """Return the Lua health script for an OCM kind.

    Args:
        kind: ``"ManifestWork"`` or ``"Placement"``.

    Returns:
        The script's text, as Argo CD expects it in ``argocd-cm``.

    Raises:
        ValueError: there is no script for that kind.
    """
    _, filename = _check(kind)
    return resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")


def argocd_cm_key(kind: str) -> str:
    """Return the ``argocd-cm`` data key for a kind's health check.

    Raises:
        ValueError: there is no script for that kind.
    """
    group, _ = _check(kind)
    return f"resource.customizations.health.{group}_{kind}"


def argocd_cm_health_entries() -> dict[str, str]:
    """Return every health check as ``argocd-cm`` data entries (key -> Lua), sorted by key."""
    entries = {argocd_cm_key(kind): health_script(kind) for kind in HEALTH_CHECKS}
    return dict(sorted(entries.items()))
