"""The checks Kubernetes makes that its JSON schemas do not state.

Schemas type ``metadata.name`` as a string; the API server also wants a DNS-1123 name,
label keys and values of the right shape, ConfigMap keys it can turn into file names, and
pod specs whose volume mounts name a declared volume. These checks run after the schema
check, on whatever parts have the expected types, and yield ``(path, message)`` pairs.

Name rules by kind (Kubernetes' own, plus one of OCM's):

- Namespace: DNS-1123 label; Service: DNS-1035 label;
- Job: DNS-1123 subdomain of at most 63 characters (the name becomes a pod label value);
- CronJob: DNS-1123 subdomain of at most 52 characters (11 are left for the Job suffix);
- Placement: DNS-1123 subdomain that is also a label value (the placement controller
  labels its PlacementDecisions with the Placement's name);
- every other kind: DNS-1123 subdomain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fl_gitops.validate.names import (
    check_annotation_key,
    check_configmap_key,
    check_dns1035_label,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_label_key,
    check_label_value,
)

__all__ = ["ANNOTATIONS_MAX_BYTES", "Finding", "check_names", "name_rule"]

Path = tuple[str | int, ...]
Finding = tuple[Path, str]
ANNOTATIONS_MAX_BYTES = 256 * 1024
_SKIP_WALK: Mapping[tuple[str, str], tuple[Path, ...]] = {
    # Argo CD fills these in per generated Application: '{{...}}' is not a label value.
    ("argoproj.io", "ApplicationSet"): (("spec", "template"), ("spec", "templatePatch")),
    # Each embedded manifest is checked as an object of its own.
    ("work.open-cluster-management.io", "ManifestWork"): (("spec", "workload", "manifests"),),
    ("work.open-cluster-management.io", "ManifestWorkReplicaSet"): (
        ("spec", "manifestWorkTemplate", "workload", "manifests"),
    ),
}


def _max_length(limit: int, why: str) -> Callable[[str], str | None]:
    def check(name: str) -> str | None:
        error = check_dns1123_subdomain(name)
        if error is None and len(name) > limit:
            error = f"{len(name)} characters is too long: {why}, at most {limit}"
        return error

    return check


def _placement_name(name: str) -> str | None:
    error = check_dns1123_subdomain(name)
    if error is None and check_label_value(name) is not None:
        error = (
            "must also be a label value (at most 63 characters): OCM labels the "
            "PlacementDecisions with it"
        )
    return error


_NAME_RULES: Mapping[tuple[str, str], Callable[[str], str | None]] = {
    ("", "Namespace"): check_dns1123_label,
    ("", "Service"): check_dns1035_label,
    ("batch", "Job"): _max_length(63, "a Job's name becomes a pod label value"),
    ("batch", "CronJob"): _max_length(52, "a CronJob leaves 11 characters for its Jobs' names"),
    ("cluster.open-cluster-management.io", "Placement"): _placement_name,
}


def name_rule(group: str, kind: str) -> Callable[[str], str | None]:
    """The check Kubernetes applies to ``metadata.name`` for this kind."""
    return _NAME_RULES.get((group, kind), check_dns1123_subdomain)


def _check_labels(path: Path, labels: Any) -> Iterator[Finding]:
    if not isinstance(labels, Mapping):
        return
    for key, value in labels.items():
        error = check_label_key(key)
        if error is not None:
            yield (*path, key), error
        if value is not None:
            error = check_label_value(value)
            if error is not None:
                yield (*path, key), error


def _check_annotations(path: Path, annotations: Any) -> Iterator[Finding]:
    if not isinstance(annotations, Mapping):
        return
    size = 0
    for key, value in annotations.items():
        error = check_annotation_key(key)
        if error is not None:
            yield (*path, key), error
        size += len(str(key).encode()) + len(str(value or "").encode())
    if size > ANNOTATIONS_MAX_BYTES:
        yield path, f"annotations total {size} bytes; at most {ANNOTATIONS_MAX_BYTES} allowed"


def _check_metadata_maps(path: Path, metadata: Any) -> Iterator[Finding]:
    if isinstance(metadata, Mapping):
        yield from _check_labels((*path, "labels"), metadata.get("labels"))
        yield from _check_annotations((*path, "annotations"), metadata.get("annotations"))


def _named(items: Any) -> Iterator[tuple[int, str]]:
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                yield index, item["name"]


def _check_unique_labels(path: Path, items: Any, seen: set[str], noun: str) -> Iterator[Finding]:
    """Each item's ``name`` is a DNS-1123 label not in ``seen`` (which it is added to)."""
    for index, name in _named(items):
        where = (*path, index, "name")
        error = check_dns1123_label(name)
        if error is not None:
            yield where, error
        if name in seen:
            yield where, f'duplicate {noun} name "{name}"'
        seen.add(name)


def _check_pod_spec(path: Path, spec: Mapping[str, Any]) -> Iterator[Finding]:
    volumes: set[str] = set()
    yield from _check_unique_labels((*path, "volumes"), spec.get("volumes"), volumes, "volume")
    containers: set[str] = set()
    for field in ("initContainers", "containers", "ephemeralContainers"):
        items = spec.get(field)
        yield from _check_unique_labels((*path, field), items, containers, "container")
        for index, container in enumerate(items if isinstance(items, list) else []):
            mounts = container.get("volumeMounts") if isinstance(container, Mapping) else None
            for mount_index, name in _named(mounts):
                if name not in volumes:
                    yield (
                        (*path, field, index, "volumeMounts", mount_index, "name"),
                        f'no volume named "{name}" among the pod\'s volumes',
                    )


def _walk(path: Path, node: Any, skip: tuple[Path, ...]) -> Iterator[Finding]:
    """Label selectors and pod templates anywhere in the object."""
    if path in skip:
        return
    if isinstance(node, Mapping):
        if path and path[-1] in ("template", "jobTemplate") and "metadata" in node:
            yield from _check_metadata_maps((*path, "metadata"), node["metadata"])
        if path and path[-1] == "spec" and isinstance(node.get("containers"), list):
            yield from _check_pod_spec(path, node)
        for key, value in node.items():
            if key == "matchLabels":
                yield from _check_labels((*path, key), value)
            elif key == "matchExpressions" and isinstance(value, list):
                for index, expression in enumerate(value):
                    if isinstance(expression, Mapping) and "key" in expression:
                        error = check_label_key(expression["key"])
                        if error is not None:
                            yield (*path, key, index, "key"), error
            elif key != "metadata" or path:
                yield from _walk((*path, key), value, skip)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk((*path, index), item, skip)


def check_names(group: str, kind: str, obj: Mapping[str, Any]) -> Iterator[Finding]:
    """Names, namespace, labels, annotations, selectors, pod specs and ConfigMap keys."""
    metadata = obj.get("metadata")
    if metadata is None:
        yield ("metadata",), "required field is missing"
    elif isinstance(metadata, Mapping):
        name = metadata.get("name")
        if name is None:
            if not metadata.get("generateName"):
                yield ("metadata", "name"), "required field is missing"
        elif isinstance(name, str):
            error = name_rule(group, kind)(name)
            if error is not None:
                yield ("metadata", "name"), error
        namespace = metadata.get("namespace")
        if isinstance(namespace, str):
            error = check_dns1123_label(namespace)
            if error is not None:
                yield ("metadata", "namespace"), error
        yield from _check_metadata_maps(("metadata",), metadata)
    if (group, kind) == ("", "ConfigMap"):
        seen: set[str] = set()
        for field in ("data", "binaryData"):
            data = obj.get(field)
            for key in data if isinstance(data, Mapping) else ():
                error = check_configmap_key(key)
                if error is not None:
                    yield (field, key), error
                elif key in seen:
                    yield (field, key), "key is in both data and binaryData"
                seen.add(key)
    yield from _walk((), obj, _SKIP_WALK.get((group, kind), ()))
