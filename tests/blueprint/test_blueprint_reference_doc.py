"""docs/blueprint-reference.md is generated from the schema and kept up to date."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fl_gitops.blueprint import blueprint_schema
from fl_gitops.blueprint.reference import render_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "blueprint-reference.md"


def _fields(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(section, field, schema) for every named field outside spec.placement."""
    for name, child in node.get("properties", {}).items():
        sub = f"{path}.{name}" if path else name
        yield path, name, child
        if sub == "spec.placement":
            continue
        if "properties" in child:
            yield from _fields(child, sub)
        elif child.get("type") == "array" and "properties" in child.get("items", {}):
            yield from _fields(child["items"], f"{sub}[]")


def _section(text: str, path: str) -> str:
    heading = f"## `{path}`\n" if path else "## Top level\n"
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def test_committed_reference_is_up_to_date():
    assert DOC.read_text() == render_reference(), (
        "regenerate: python -m fl_gitops.blueprint.reference > docs/blueprint-reference.md"
    )


def test_module_prints_the_reference():
    proc = subprocess.run(
        [sys.executable, "-m", "fl_gitops.blueprint.reference"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == DOC.read_text()


def test_every_field_has_a_row_in_its_section():
    text = render_reference()
    fields = list(_fields(blueprint_schema()))
    assert len(fields) > 60
    for section, name, _ in fields:
        assert f"| `{name}` |" in _section(text, section), f"{section}.{name}"


def test_every_field_is_described():
    undescribed = [
        f"{section}.{name}"
        for section, name, child in _fields(blueprint_schema())
        if not child.get("description")
    ]
    assert undescribed == []


def test_placement_section_lists_the_placement_spec_fields_and_points_at_ocm():
    placement = _section(render_reference(), "spec.placement")
    for name in ("clusterSets", "numberOfClusters", "predicates", "tolerations"):
        assert f"| `{name}` |" in placement
    assert "PlacementSpec" in placement
    assert "open-cluster-management-io/api" in placement


def test_constraints_are_in_words():
    text = render_reference()
    name_row = next(
        line for line in text.splitlines() if line.startswith("| `name` | string | yes")
    )
    assert name_row == (
        "| `name` | string | yes |  | a DNS-1123 label (lowercase letters, digits and '-', "
        "starting and ending alphanumeric); non-empty; at most 40 characters | The experiment's "
        "name; every generated name derives from it. |"
    )
    assert "text matching" not in text
