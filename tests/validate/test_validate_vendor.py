"""The vendored CRD copies: reproducible from the shared folder, and described in SOURCES.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fl_gitops.schemas import vendor

CRDS = Path(vendor.__file__).parent / "crds"
REPO = Path(__file__).resolve().parents[2]
SHARED = next(
    (
        candidate
        for candidate in (REPO.parent / "shared", Path("/work/shared"))
        if (candidate / "ocm-crds" / "README.md").is_file()
    ),
    None,
)


@pytest.mark.skipif(SHARED is None, reason="no shared/ folder with the upstream CRDs here")
def test_rerunning_the_vendor_script_gives_the_same_bytes(tmp_path):
    assert SHARED is not None
    vendor.vendor(SHARED, tmp_path)
    shipped = {path.name: path.read_bytes() for path in CRDS.glob("*.json")}
    fresh = {path.name: path.read_bytes() for path in tmp_path.glob("*.json")}
    assert sorted(fresh) == sorted(shipped)
    changed = [name for name in shipped if shipped[name] != fresh[name]]
    assert changed == []


def test_sources_describe_every_shipped_schema():
    sources = json.loads((CRDS / "SOURCES.json").read_text())
    shipped = sorted(path.name for path in CRDS.glob("*.json") if path.name != "SOURCES.json")
    assert sorted(sources) == shipped
    for name, source in sources.items():
        if source["handWritten"]:
            assert hashlib.sha256((CRDS / name).read_bytes()).hexdigest() == source["sha256"]
        else:
            assert source["repository"].startswith("https://github.com/")
            assert len(source["commit"]) == 40
            assert len(source["sha256"]) == 64


def test_appproject_is_marked_hand_written():
    sources = json.loads((CRDS / "SOURCES.json").read_text())
    assert sources["argoproj.io_v1alpha1_AppProject.json"]["handWritten"] is True
    assert sources["work.open-cluster-management.io_v1_ManifestWork.json"]["handWritten"] is False


def test_descriptions_are_stripped_but_a_field_named_description_stays():
    schema = {
        "type": "object",
        "description": "an object",
        "properties": {
            "description": {"type": "string", "description": "a field"},
            "items": {"type": "array", "items": {"type": "string", "description": "x"}},
        },
    }
    assert vendor.strip_descriptions(schema) == {
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "items": {"type": "array", "items": {"type": "string"}},
        },
    }


def test_a_copy_that_differs_from_its_readme_digest_is_refused(tmp_path):
    folder = tmp_path / "ocm-crds"
    folder.mkdir()
    (folder / "README.md").write_text(
        "Source repository: https://github.com/example/api\n"
        "Commit: " + "a" * 40 + "\n\n"
        "| File here | Path in repository | sha256 |\n|---|---|---|\n"
        "| x.yaml | crds/x.yaml | " + "0" * 64 + " |\n"
    )
    (folder / "x.yaml").write_text("kind: CustomResourceDefinition\n")
    (tmp_path / "argocd-crds").mkdir()
    with pytest.raises(ValueError, match="differs from the README's 0000"):
        vendor.vendor(tmp_path, tmp_path / "out")


def test_readme_tables_are_parsed_into_sources(tmp_path):
    (tmp_path / "README.md").write_text(
        "| File | Upstream repo | Upstream path | sha256 |\n|---|---|---|---|\n"
        "| a.yaml | https://github.com/example/cd | manifests/a.yaml | " + "1" * 64 + " |\n\n"
        "- Commit (repo HEAD): " + "b" * 40 + "\n"
    )
    assert vendor.read_sources(tmp_path) == [
        vendor.Source(
            file="a.yaml",
            repository="https://github.com/example/cd",
            path="manifests/a.yaml",
            commit="b" * 40,
            sha256="1" * 64,
        )
    ]
