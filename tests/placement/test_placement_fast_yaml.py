"""The fast YAML path of load_inventory: the same objects as the YAML 1.1 walker, or none.

``fast_documents`` reads with yaml_rs (YAML 1.2) and must decline whatever the walker
(libyaml events, YAML 1.1) would read differently; load_inventory then falls back to the
walker, which also locates every syntax error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fl_gitops.errors import InventoryError
from fl_gitops.placement import generate_inventory, inventory_list, load_inventory
from fl_gitops.placement._fastyaml import fast_documents
from fl_gitops.placement._inventory import _YamlReader


def walker(text: str) -> list[Any]:
    return _YamlReader("f", 100).documents(text)


def kubectl_yaml(size: int, seed: int = 5) -> str:
    """A fleet as `fl-gitops inventory` writes it (PyYAML, block style, kubectl's shape)."""
    fleet = inventory_list(generate_inventory(size, mix=True, seed=seed))
    return yaml.dump(fleet, Dumper=yaml.CSafeDumper, sort_keys=False)


def test_a_generated_inventory_takes_the_fast_path_and_reads_as_the_walker_does() -> None:
    text = kubectl_yaml(300)
    fast = fast_documents(text)
    assert fast is not None
    assert fast == walker(text)


def test_the_fast_path_agrees_with_the_walker_on_kubectl_shaped_values() -> None:
    # values kubectl prints plain, and quoted ones that only look like numbers or booleans
    text = (
        "kind: List\nitems:\n- metadata:\n    name: a\n    uid: 5938e909-be3d-4765-aa88-be82\n"
        "    labels:\n      openshiftVersion-major-minor: '4.14'\n      gpu: 'true'\n"
        "      zone: 'on'\n  spec:\n    leaseDurationSeconds: 60\n    taints: []\n"
        "  status:\n    allocatable: {}\n    capacity:\n      cpu: '8'\n      memory: 32Gi\n"
        "    version:\n      kubernetes: v1.30.6\n"
    )
    fast = fast_documents(text)
    assert fast is not None
    assert fast == walker(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("x: yes\n", True),  # YAML 1.1 booleans: 1.2 reads a string
        ("x: Off\n", False),
        ("x: 0777\n", 511),  # 1.1 octal: 1.2 reads 777
        ("x: 0o17\n", "0o17"),  # 1.2 octal: 1.1 reads a string
        ("x: 1e3\n", "1e3"),  # 1.2 float: 1.1 needs a dot and a signed exponent
        ("x: 1.5e3\n", "1.5e3"),
        ("x: +.5\n", "+.5"),
        ("x: _5\n", "_5"),  # yaml_rs reads 5
        ("x: .Nan\n", ".Nan"),
        ("x: 190:20:30\n", 685230),  # 1.1 sexagesimal
        ("x: 2026-01-05T10:00:00Z\n", "2026-01-05T10:00:00Z"),  # timestamps stay text
        # UUIDs (clusterID claims) skip the scalar check: text in both versions
        ("x: 12345678-1234-1234-1234-123456789012\n", "12345678-1234-1234-1234-123456789012"),
        ("x: 1E000000-0000-0000-0000-00000000000A\n", "1E000000-0000-0000-0000-00000000000A"),
    ],
)
def test_yaml_1_1_readings_are_kept(tmp_path: Path, text: str, value: object) -> None:
    document = f"kind: ManagedCluster\nmetadata:\n  name: a\nspec:\n  {text}"
    path = tmp_path / "clusters.yaml"
    path.write_text(document)
    assert load_inventory(path)[0]["spec"]["x"] == value


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [1]\nb: *x\n",  # anchors and aliases: the walker counts them
        "a: !!set {x}\n",  # tags the walker refuses
        "a: !foo x\n",
        "<<: {a: 1}\n",  # merge keys, refused
        "a: |\n  x\n",  # block scalars
        "a: [1, 2]\n",  # flow collections other than [] and {}
        "? a\n: b\n",  # complex keys
        "a: 1\n---\nb: 2\n",  # several documents
        "%YAML 1.1\n---\na: yes\n",
        "a:\tb\n",
        "a: b\u2028c\n",
        "[]: x\n",
        "",
    ],
)
def test_what_kubectl_never_writes_goes_to_the_walker(text: str) -> None:
    assert fast_documents(text) is None


def test_a_syntax_error_deep_in_a_large_inventory_is_located(tmp_path: Path) -> None:
    lines = kubectl_yaml(200).splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if i > 3000 and line.startswith("    labels:"))
    lines.insert(at + 1, "      broken: [unclosed\n")
    path = tmp_path / "clusters.yaml"
    path.write_text("".join(lines))
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value).startswith(f"{path}:{at + 3}:")
    assert ": invalid YAML: " in str(error.value)


def test_a_duplicate_key_is_refused_at_its_mapping(tmp_path: Path) -> None:
    # the walker used to keep the last of two keys silently; yaml_rs refuses them, and the
    # walker, asked to locate the error, now refuses them too
    text = kubectl_yaml(3).replace("  metadata:\n", "  metadata:\n    name: x\n", 1)
    path = tmp_path / "clusters.yaml"
    path.write_text(text)
    line = text[: text.index("    name: x\n")].count("\n") + 1
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value) == (
        f"{path}:{line}:5: a key appears twice in this mapping; each may appear once"
    )


def test_json_and_yaml_of_one_fleet_load_the_same(tmp_path: Path) -> None:
    fleet = inventory_list(generate_inventory(50, mix=True, seed=9))
    as_yaml = tmp_path / "fleet.yaml"
    as_yaml.write_text(yaml.dump(fleet, Dumper=yaml.CSafeDumper, sort_keys=False))
    as_json = tmp_path / "fleet.json"
    as_json.write_text(json.dumps(fleet))
    assert load_inventory(as_yaml) == load_inventory(as_json) == fleet["items"]


# Scalars and lines built from the characters where YAML 1.1 and 1.2 part ways.
_CHARS = "0123456789._-+:eExobOnNyYtTfFaAiI~=<!&*'\"#[]{},?|>% \\"
_scalar = st.text(alphabet=_CHARS, max_size=6)
_line = st.one_of(
    st.builds(
        lambda i, k, v: f"{i}{k}: {v}", st.sampled_from(["", "  ", "- ", "  - "]), _scalar, _scalar
    ),
    st.builds(lambda i, v: f"{i}k: {v}", st.sampled_from(["", "  ", "- "]), _scalar),
    st.builds(lambda i, v: f"{i}- {v}", st.sampled_from(["", "  "]), _scalar),
    st.builds(lambda v: f"k: [{v}, {v}]", _scalar),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_line, min_size=1, max_size=5))
def test_whenever_the_fast_path_answers_it_reads_as_the_walker_does(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    fast = fast_documents(text)
    if fast is None:
        return
    try:
        expected = walker(text)
    except InventoryError:
        pytest.fail(f"the fast path read what the walker refuses: {text!r}")
    assert repr(fast) == repr(expected), text
