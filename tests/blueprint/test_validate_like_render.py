"""`validate` refuses what `render` refuses with no inventory, located (issue 11).

The vendored Placement CRD leaves operators as free strings: the API server accepts
``in``, and OCM then marks the Placement misconfigured and selects nothing. A config
repo's CI runs `validate` first, so these must fail there, at the line, not at render.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fl_gitops.cli import main

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"
FLEET = REPO / "examples" / "config-repo" / "inventory" / "managedclusters.yaml"
CLAIM = "spec.placement.predicates[0].requiredClusterSelector.claimSelector.matchExpressions[0]"


def _blueprint(tmp_path: Path, old: str, new: str) -> Path:
    text = STOCK.read_text()
    assert text.count(old) == 1
    path = tmp_path / "blueprint.yaml"
    path.write_text(text.replace(old, new))
    return path


CASES = {
    "lowercase-in": (
        "operator: In",
        "operator: in",
        f"21:27: {CLAIM}.operator: 'in' is not a valid operator; "
        "expected one of In, NotIn, Exists, DoesNotExist; did you mean 'In'?",
    ),
    "unknown-operator": (
        "operator: In",
        "operator: Matches",
        f"21:27: {CLAIM}.operator: 'Matches' is not a valid operator; "
        "expected one of In, NotIn, Exists, DoesNotExist",
    ),
    "in-without-values": (
        "values: [eu-west-1, us-east-1]",
        "values: []",
        f"22:25: {CLAIM}.values: operator In needs at least one value",
    ),
    "exists-with-values": (
        "operator: In",
        "operator: Exists",
        f"22:25: {CLAIM}.values: operator Exists takes no values",
    ),
    "toleration-case": (
        "operator: Exists\n  completion",
        "operator: exists\n  completion",
        "25:19: spec.placement.tolerations[0].operator: 'exists' is not valid; "
        "expected Equal or Exists; did you mean 'Exists'?",
    ),
    "spread-policy": (
        "numberOfClusters: 10\n",
        "numberOfClusters: 10\n    spreadPolicy:\n      spreadConstraints:\n"
        "        - topologyKey: region\n          topologyKeyType: Label\n",
        "14:7: spec.placement.spreadPolicy: spreadPolicy is not supported by offline placement",
    ),
    "toleration-operator": (
        "operator: Exists\n  completion",
        "operator: Gt\n  completion",
        "25:19: spec.placement.tolerations[0].operator: 'Gt' is not valid; "
        "expected Equal or Exists",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_refuses_at_the_line_what_render_refuses(tmp_path, capsys, case):
    old, new, located = CASES[case]
    blueprint = _blueprint(tmp_path, old, new)
    assert main(["validate", str(blueprint)]) == 2
    assert capsys.readouterr().err == f"error: {blueprint}:{located}\n"
    # render refuses it too, the same way, and writes nothing.
    out = tmp_path / "out"
    assert main(["render", str(blueprint), "--inventory", str(FLEET), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {blueprint}:{located}\n"
    assert not out.exists()


STORE_EXPECTED = (
    "spec.store.uri: expected an s3://bucket/prefix or file:///path URI (the schemes "
    "fl-gitops supports: s3, file) or an absolute path, not a relative one, got string "
)


@pytest.mark.parametrize(
    "uri", ["data/store", "./store", "gs://bucket/models", "memory://store", "s3:///no-bucket"]
)
def test_a_store_uri_of_another_scheme_or_a_relative_path_is_refused(tmp_path, capsys, uri):
    blueprint = _blueprint(tmp_path, "uri: s3://fl-models/digits-fedavg", f"uri: {uri}")
    assert main(["validate", str(blueprint)]) == 2
    assert capsys.readouterr().err == f"error: {blueprint}:47:10: {STORE_EXPECTED}{uri!r}\n"


@pytest.mark.parametrize("uri", ["s3://fl-models/x", "file:///srv/fl/store", "/srv/fl/store"])
def test_the_supported_store_uris_validate(tmp_path, capsys, uri):
    blueprint = _blueprint(tmp_path, "uri: s3://fl-models/digits-fedavg", f"uri: {uri}")
    assert main(["validate", str(blueprint)]) == 0
    assert capsys.readouterr().err == ""
