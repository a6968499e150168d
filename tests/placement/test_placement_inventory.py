"""Reading ManagedCluster inventories: the shapes kubectl prints, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fl_gitops.errors import InventoryError
from fl_gitops.placement import generate_inventory, inventory_list, load_inventory

KUBECTL_LIST = """\
apiVersion: v1
items:
- apiVersion: cluster.open-cluster-management.io/v1
  kind: ManagedCluster
  metadata:
    creationTimestamp: "2024-05-01T10:00:00Z"
    labels:
      cluster.open-cluster-management.io/clusterset: fl-silos
      fl-gitops.io/dataset: digits
    name: cluster-001
  spec:
    hubAcceptsClient: true
    taints:
    - effect: NoSelect
      key: gpu
      timeAdded: 2024-05-02T10:00:00Z
  status:
    allocatable:
      cpu: 15500m
      memory: 61Gi
    capacity:
      cpu: "16"
      memory: 64Gi
    clusterClaims:
    - name: region.open-cluster-management.io
      value: eu-west-1
- apiVersion: cluster.open-cluster-management.io/v1
  kind: ManagedCluster
  metadata:
    name: cluster-002
kind: List
metadata:
  resourceVersion: ""
"""


def write(tmp_path: Path, text: str, name: str = "clusters.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_kubectl_list_loads_every_item_in_file_order(tmp_path: Path) -> None:
    clusters = load_inventory(write(tmp_path, KUBECTL_LIST))
    assert [c["metadata"]["name"] for c in clusters] == ["cluster-001", "cluster-002"]
    # timestamps stay strings, as in JSON, even when YAML leaves them unquoted
    assert clusters[0]["spec"]["taints"][0]["timeAdded"] == "2024-05-02T10:00:00Z"
    assert clusters[0]["status"]["capacity"]["cpu"] == "16"


def test_single_cluster_multi_document_stream_and_json_are_accepted(tmp_path: Path) -> None:
    single = "kind: ManagedCluster\nmetadata:\n  name: solo\n"
    assert [c["metadata"]["name"] for c in load_inventory(write(tmp_path, single))] == ["solo"]

    stream = "---\nkind: ManagedCluster\nmetadata: {name: a}\n---\n" + KUBECTL_LIST
    names = [c["metadata"]["name"] for c in load_inventory(write(tmp_path, stream, "s.yaml"))]
    assert names == ["a", "cluster-001", "cluster-002"]

    as_json = json.dumps(yaml.safe_load(KUBECTL_LIST), default=str)
    from_json = load_inventory(write(tmp_path, as_json, "clusters.json"))
    assert [c["metadata"]["name"] for c in from_json] == ["cluster-001", "cluster-002"]


def test_generated_inventory_round_trips_through_yaml_and_json(tmp_path: Path) -> None:
    fleet = generate_inventory(30, mix=True, seed=3)
    document = inventory_list(fleet)
    assert document["kind"] == "List" and document["apiVersion"] == "v1"
    as_yaml = write(tmp_path, yaml.safe_dump(document), "fleet.yaml")
    as_json = write(tmp_path, json.dumps(document), "fleet.json")
    assert load_inventory(as_yaml) == fleet
    assert load_inventory(as_json) == fleet


def test_an_item_that_is_not_a_managed_cluster_is_named(tmp_path: Path) -> None:
    text = "kind: List\nitems:\n- kind: ManagedCluster\n  metadata: {name: a}\n- kind: Pod\n"
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value) == f"{path}:5:9: items[1]: kind is 'Pod', expected ManagedCluster"


def test_a_cluster_without_a_name_is_named_by_document_and_index(tmp_path: Path) -> None:
    text = "kind: ManagedCluster\nmetadata: {name: a}\n---\nkind: List\nitems:\n- metadata: {}\n"
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value) == (
        f"{path}:6:13: document 2: items[0]: metadata.name: expected a non-empty string"
    )


def test_an_unquoted_non_string_label_value_asks_for_quotes(tmp_path: Path) -> None:
    text = "kind: ManagedCluster\nmetadata:\n  name: a\n  labels:\n    gpu: true\n"
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value) == (
        f"{path}:5:10: cluster a: metadata.labels.gpu: expected a string, got bool True "
        "(quote the value)"
    )


def test_a_bad_value_in_a_json_inventory_is_located_at_its_line_and_column(
    tmp_path: Path,
) -> None:
    """The fast parsers keep no positions: the file is read again with them for the error."""
    text = (
        '[{"kind": "ManagedCluster", "metadata": {"name": "a"}},\n'
        ' {"kind": "ManagedCluster",\n'
        '  "metadata": {"name": "b", "labels": {"zone": 7}}}]\n'
    )
    path = tmp_path / "clusters.json"
    path.write_text(text)
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value) == (
        f"{path}:3:48: items[1] (b): metadata.labels.zone: expected a string, got int 7 "
        "(quote the value)"
    )


def test_a_cluster_listed_twice_is_refused(tmp_path: Path) -> None:
    text = "kind: List\nitems:\n- metadata: {name: a}\n- metadata: {name: a}\n"
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value) == (
        f"{path}:4:3: items[1]: cluster 'a' is listed twice (first at {path}: items[0])"
    )


def test_a_bad_quantity_names_the_cluster_and_field(tmp_path: Path) -> None:
    text = "kind: ManagedCluster\nmetadata: {name: a}\nstatus:\n  allocatable: {cpu: lots}\n"
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value) == (
        f"{path}:4:22: cluster a: status.allocatable.cpu: 'lots' is not a quantity "
        "(expected e.g. 500m, 4, 16Gi, 1e3)"
    )


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: List\nitems:\n- metadata: {name: a\n")
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value).startswith(f"{path}:4:1: invalid YAML: ")


def test_files_over_the_size_bound_are_refused_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, KUBECTL_LIST)
    size = path.stat().st_size
    with pytest.raises(InventoryError) as error:
        load_inventory(path, max_bytes=100)
    assert str(error.value) == f"{path}: {size} bytes is more than the limit of 100"


def test_alias_bombs_are_refused(tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        refs = ", ".join([f"*{chr(96 + i)}"] * 10)
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [{refs}]")
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(InventoryError) as error:
        load_inventory(path, max_aliases=50)
    assert str(error.value) == (
        f"{path}:7:8: more than 50 YAML aliases; an inventory needs none (is this kubectl output?)"
    )


def test_a_missing_file_is_an_inventory_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value) == f"{path}: cannot read the inventory: No such file or directory"
