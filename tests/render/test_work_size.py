"""`fl-gitops render` refuses a round whose ManifestWork OCM would refuse for its size.

OCM's webhook counts, for each manifest, its JSON plus two to four bytes of protobuf
framing, and refuses a work over 512000 bytes. The sizes here are computed by a
stand-alone oracle (compact JSON of manifests holding no floats and no ``<>&``), not by
the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fl_gitops.cli import main

REPO = Path(__file__).resolve().parents[2]
REFERENCE = (REPO / "blueprints" / "digits-fedavg.yaml").read_text()
EXP = "experiments/digits-fedavg"
NOW = "2026-11-28T00:00:00Z"
LIMIT = 500 * 1024


def _oracle(manifests: list[dict]) -> int:
    total = 0
    for manifest in manifests:
        size = len(json.dumps(manifest, separators=(",", ":"), ensure_ascii=False).encode())
        varint = 1 if size < 2**7 else 2 if size < 2**14 else 3
        total += 1 + size + varint
    return total


def _blueprint(tmp_path: Path, env_bytes: int) -> Path:
    env = f"    env:\n      - name: BIG\n        value: {'x' * env_bytes}\n"
    text = REFERENCE.replace("  store:\n", env + "  store:\n", 1)
    path = tmp_path / f"big-{env_bytes}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An inventory, and each placed cluster's work size as a function of the BIG value."""
    root = tmp_path_factory.mktemp("size")
    inventory = root / "managedclusters.yaml"
    blueprint = _blueprint(root, 1)
    argv = ["inventory", str(blueprint), "--clusters", "12", "--out", str(inventory)]
    assert main(argv) == 0
    out = root / "small"
    argv = ["render", str(blueprint), "--inventory", str(inventory), "--out", str(out)]
    assert main([*argv, "--now", NOW]) == 0
    base: dict[str, int] = {}
    for path in sorted((out / EXP / "works").glob("*.yaml")):
        manifests = yaml.safe_load(path.read_text())["spec"]["workload"]["manifests"]
        # the same work with a 400000-byte value: the Job's length needs a 3-byte varint
        manifests[2]["spec"]["template"]["spec"]["containers"][0]["env"][-1]["value"] = (
            "x" * 400_000
        )
        base[path.stem] = _oracle(manifests) - 400_000
    return {"inventory": inventory, "base": base}


def _render(blueprint: Path, inventory: Path, out: Path) -> int:
    argv = ["render", str(blueprint), "--inventory", str(inventory), "--out", str(out)]
    return main([*argv, "--now", NOW])


def test_a_round_over_the_limit_is_refused_naming_the_cluster_and_nothing_is_written(
    fleet, tmp_path, capsys
):
    clusters = sorted(fleet["base"])
    first = clusters[0]
    size = fleet["base"][first] + 520_000
    out = tmp_path / "repo"
    assert _render(_blueprint(tmp_path, 520_000), fleet["inventory"], out) == 2
    assert capsys.readouterr().err == (
        f"error: round 1: the hub would refuse ManifestWork fl-digits-fedavg for cluster "
        f"{first} ({EXP}/works/{first}.yaml): its manifests are {size} bytes as OCM counts "
        f"them, over the limit of 512000 bytes (500 KiB); so are the works of "
        f"{len(clusters) - 1} more clusters. Make what the blueprint puts into every work "
        "smaller: spec.client.env, the labels, and the model, data and strategy options "
        "(they go into the round config)\n"
    )
    assert not out.exists()

    # A tree rendered before stays as it was, byte for byte.
    assert _render(_blueprint(tmp_path, 1), fleet["inventory"], out) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert _render(_blueprint(tmp_path, 520_000), fleet["inventory"], out) == 2
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_the_limit_is_512000_bytes_exactly(fleet, tmp_path, capsys):
    largest = max(fleet["base"].values())
    fits = LIMIT - largest  # the largest work is then exactly at the limit
    biggest = [c for c, base in fleet["base"].items() if base == largest]
    assert _render(_blueprint(tmp_path, fits), fleet["inventory"], tmp_path / "a") == 0
    capsys.readouterr()
    assert _render(_blueprint(tmp_path, fits + 1), fleet["inventory"], tmp_path / "b") == 2
    others = len(biggest) - 1
    more = {0: "", 1: "; so is the work of 1 more cluster"}.get(
        others, f"; so are the works of {others} more clusters"
    )
    assert capsys.readouterr().err == (
        f"error: round 1: the hub would refuse ManifestWork fl-digits-fedavg for cluster "
        f"{biggest[0]} ({EXP}/works/{biggest[0]}.yaml): its manifests are 512001 bytes as "
        f"OCM counts them, over the limit of 512000 bytes (500 KiB){more}. Make what the "
        "blueprint puts into every work smaller: spec.client.env, the labels, and the "
        "model, data and strategy options (they go into the round config)\n"
    )
    assert not (tmp_path / "b").exists()


def test_a_rendered_tree_near_the_limit_still_validates(fleet, tmp_path, capsys):
    largest = max(fleet["base"].values())
    out = tmp_path / "repo"
    assert _render(_blueprint(tmp_path, LIMIT - largest), fleet["inventory"], out) == 0
    capsys.readouterr()
    assert main(["validate", "--rendered", str(out)]) == 0
    assert capsys.readouterr().err == ""


def _work(cluster: str, data_bytes: int) -> bytes:
    work = {
        "apiVersion": "work.open-cluster-management.io/v1",
        "kind": "ManifestWork",
        "metadata": {"name": "fl-x", "namespace": cluster},
        "spec": {
            "workload": {
                "manifests": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": "cm", "namespace": "fl-gitops"},
                        "data": {"big": "x" * data_bytes},
                    }
                ]
            }
        },
    }
    return yaml.safe_dump(work, width=10**9).encode()


def test_works_of_other_sizes_than_the_measured_one_are_measured_near_the_limit():
    from fl_gitops.errors import WorkTooLarge
    from fl_gitops.render._size import check_work_sizes

    # the work's size less its data, once the data needs a 3-byte varint
    manifest = yaml.safe_load(_work("a", 400_000))["spec"]["workload"]["manifests"][0]
    empty = _oracle([manifest]) - 400_000
    works = {
        "works/a.yaml": _work("a", 10),  # the one measured exactly: far below
        "works/b.yaml": _work("b", 200_000),  # far below by its estimate: not parsed
        "works/c.yaml": _work("c", LIMIT - empty),  # exactly at the limit: parsed, fits
        "works/d.yaml": _work("d", LIMIT - empty + 1),  # one byte over: parsed, refused
        "works/e.yaml": _work("e", LIMIT * 2),  # far over: counted
    }
    with pytest.raises(WorkTooLarge) as caught:
        check_work_sizes(works, round_=4)
    assert (caught.value.cluster, caught.value.size, caught.value.limit) == ("d", LIMIT + 1, LIMIT)
    assert str(caught.value) == (
        "round 4: the hub would refuse ManifestWork fl-x for cluster d (works/d.yaml): its "
        "manifests are 512001 bytes as OCM counts them, over the limit of 512000 bytes "
        "(500 KiB); so is the work of 1 more cluster. Make what the blueprint puts into every "
        "work smaller: spec.client.env, the labels, and the model, data and strategy options "
        "(they go into the round config)"
    )
    del works["works/d.yaml"], works["works/e.yaml"]
    check_work_sizes(works, round_=4)
    check_work_sizes({}, round_=4)
