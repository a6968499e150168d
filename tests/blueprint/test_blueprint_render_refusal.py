"""A bad blueprint stops `fl-gitops render` before it writes a single byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from fl_gitops.blueprint import load_blueprint
from fl_gitops.cli import main
from fl_gitops.placement import generate_inventory, inventory_list

sys.path.insert(0, str(Path(__file__).parent))
from cases import REFERENCE, variant

NOW = "2025-06-01T00:00:00Z"


def _snapshot(root: Path) -> dict[str, tuple[str, bytes, int]]:
    """Every path under root: its kind, its bytes and its modification time."""
    out: dict[str, tuple[str, bytes, int]] = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        if path.is_dir():
            out[str(path.relative_to(root))] = ("dir", b"", stat.st_mtime_ns)
        else:
            out[str(path.relative_to(root))] = ("file", path.read_bytes(), stat.st_mtime_ns)
    return out


def _inventory(tmp_path: Path, blueprint: Path) -> Path:
    clusters = generate_inventory(30, spec=load_blueprint(blueprint).placement, mix=True)
    inventory = tmp_path / "clusters.yaml"
    inventory.write_text(yaml.safe_dump(inventory_list(clusters), sort_keys=True))
    return inventory


def test_failed_render_leaves_the_output_tree_byte_for_byte_untouched(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(REFERENCE)
    inventory = _inventory(tmp_path, good)
    out = tmp_path / "repo"
    args = ["--inventory", str(inventory), "--out", str(out), "--now", NOW]
    assert main(["render", str(good), *args]) == 0
    before = _snapshot(out)
    assert any(name.endswith("kustomization.yaml") for name in before)

    # A valid change that would rewrite files, then a bad blueprint: neither may land.
    changed = tmp_path / "changed.yaml"
    changed.write_text(variant("rounds: 30", "rounds: 40"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(variant("path: experiments/digits-fedavg", "path: ../outside"))
    proc = subprocess.run(
        [sys.executable, "-m", "fl_gitops.cli", "render", str(changed), str(bad), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr == (
        f"error: {bad}:52:11: spec.gitops.path: expected a relative path of names separated "
        "by '/', without '.', '..' or a leading '/', got string '../outside'\n"
    )
    assert _snapshot(out) == before
    assert not (tmp_path / "outside").exists()


def test_failed_render_does_not_create_the_output_directory(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(REFERENCE)
    bad = tmp_path / "bad.yaml"
    bad.write_text(variant("    timeout: 30m", "    timeout: 30m\n    timeout: 1h"))
    out = tmp_path / "fresh"
    code = main(
        ["render", str(bad), "--inventory", str(_inventory(tmp_path, good)), "--out", str(out)]
    )
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: {bad}:29:5: spec.completion.timeout: duplicate key 'timeout' "
        "(first at line 28, column 5); each key may appear once in a mapping\n"
    )
    assert not out.exists()
