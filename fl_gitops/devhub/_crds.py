"""The OCM and Argo CD CustomResourceDefinitions, rebuilt from the vendored schemas.

A development hub must serve the same kinds a real OCM hub with Argo CD serves, with the
same schemas, or the API server's pruning and defaulting would test something else. The
package already ships those schemas (``fl_gitops/schemas/crds``, copied from the upstream
CRDs by ``fl_gitops.schemas.vendor`` with their names, scope and subresources); this module
turns each back into an installable ``apiextensions.k8s.io/v1`` object, so the CRDs exist
once in the tree. Only ``description`` keywords are missing, which change nothing the
server does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from fl_gitops.devhub._server import DevHubError
from fl_gitops.validate.catalog import known_crds, split_api_version

__all__ = ["crd_objects", "install_crds"]

_CRD_API = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")


def _vendored(file_name: str) -> Mapping[str, Any]:
    import importlib.resources

    text = (importlib.resources.files("fl_gitops.schemas") / "crds" / file_name).read_text("utf-8")
    data: Mapping[str, Any] = json.loads(text)
    return data


def crd_objects(groups: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One CRD object per vendored kind (of ``groups``, when given), sorted by name.

    Raises:
        ValueError: a kind vendored in more than one version (the storage version would
            have to be guessed).
    """
    wanted = set(groups) if groups is not None else None
    crds: dict[str, dict[str, Any]] = {}
    for (api_version, _kind), file_name in sorted(known_crds().items()):
        group, version = split_api_version(api_version)
        if wanted is not None and group not in wanted:
            continue
        data = _vendored(file_name)
        name = f"{data['plural']}.{group}"
        if name in crds:
            raise ValueError(f"{name}: more than one vendored version; pick a storage version")
        entry: dict[str, Any] = {
            "name": version,
            "served": True,
            "storage": True,
            "schema": {"openAPIV3Schema": data["openAPIV3Schema"]},
        }
        if data.get("subresources"):
            entry["subresources"] = data["subresources"]
        crds[name] = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": group,
                "names": {
                    "kind": data["kind"],
                    "listKind": data.get("listKind", f"{data['kind']}List"),
                    "plural": data["plural"],
                    "singular": data.get("singular", str(data["kind"]).lower()),
                },
                "scope": data["scope"],
                "versions": [entry],
            },
        }
    return [crds[name] for name in sorted(crds)]


def install_crds(api_client: Any, crds: Iterable[Mapping[str, Any]], timeout: float = 60) -> None:
    """Create (or replace) each CRD and wait until the server says it is Established.

    Raises:
        DevHubError: the server refused one, or did not establish it in time.
    """
    from kubernetes import client as k8s

    api: Any = k8s.CustomObjectsApi(api_client)  # answers are plain dicts
    group, version, plural = _CRD_API
    names = []
    for crd in crds:
        name = crd["metadata"]["name"]
        names.append(name)
        try:
            api.create_cluster_custom_object(group, version, plural, dict(crd))
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise DevHubError(f"install CRD {name}: {exc.status} {exc.reason}") from exc
            current = api.get_cluster_custom_object(group, version, plural, name)
            body = {**crd, "metadata": {**crd["metadata"], **_keep(current)}}
            api.replace_cluster_custom_object(group, version, plural, name, body)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = api.get_cluster_custom_object(group, version, plural, name)
            status = crd.get("status") or {}
            conditions = {c.get("type"): c for c in status.get("conditions") or []}
            if conditions.get("Established", {}).get("status") == "True":
                break
            if time.monotonic() > deadline:
                raise DevHubError(f"CRD {name} was not Established within {timeout:.0f}s")
            time.sleep(0.1)


def _keep(current: Mapping[str, Any]) -> dict[str, Any]:
    return {"resourceVersion": current["metadata"]["resourceVersion"]}
