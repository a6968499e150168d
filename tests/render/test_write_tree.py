"""Writing a rendered tree: whole files with a manifest's mode, whatever the umask, and
nothing left behind when a write fails."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fl_gitops.render import apply_changes, plan_changes
from fl_gitops.render._render import RenderedTree

EXP = "experiments/fleet"


def _tree(count: int) -> RenderedTree:
    files = {f"{EXP}/works/cluster-{i:05d}.yaml": f"n: {i}\n".encode() * 50 for i in range(count)}
    files[f"{EXP}/placement.yaml"] = b"kind: Placement\n"
    return RenderedTree(experiment_dir=EXP, files=dict(sorted(files.items())), roster=())


@pytest.mark.parametrize("count", [3, 600])
def test_every_file_whole_with_a_manifests_mode_under_a_strict_umask(
    tmp_path: Path, count: int
) -> None:
    tree = _tree(count)
    old = os.umask(0o077)
    try:
        apply_changes(tmp_path, tree, plan_changes(tmp_path, tree))
    finally:
        os.umask(old)
    for rel, data in tree.files.items():
        path = tmp_path / rel
        assert path.read_bytes() == data
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "a temporary file was left"
    assert plan_changes(tmp_path, tree).empty


def test_a_failed_write_leaves_no_temporary_file_and_the_old_file_whole(tmp_path: Path) -> None:
    tree = _tree(600)
    apply_changes(tmp_path, tree, plan_changes(tmp_path, tree))
    changed = {rel: data + b"x: 1\n" for rel, data in tree.files.items()}
    # A directory where one file must go: its rename fails, and the write stops there.
    blocked = f"{EXP}/works/cluster-00300.yaml"
    (tmp_path / blocked).unlink()
    (tmp_path / blocked).mkdir()
    new = RenderedTree(experiment_dir=EXP, files=changed, roster=())
    with pytest.raises(OSError):
        apply_changes(tmp_path, new, plan_changes(tmp_path, new))
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "a temporary file was left"
    for rel in tree.files:
        if rel != blocked:
            assert (tmp_path / rel).read_bytes() in (tree.files[rel], changed[rel])
