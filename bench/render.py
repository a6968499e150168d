"""Placement, rendering and writing at fleet scale, against bare Jinja in the same run.

    python bench/render.py [--sizes 1000 10000] [--repeat 3] [--out-base DIR]

For each fleet size, every cluster is feasible and placed (the reference blueprint with
`numberOfClusters` removed), so each stage handles N clusters. Prints clusters/s per stage,
the end-to-end time of `fl-gitops render` (inventory file in, tree on disk out; the
target is under 5 s at 10,000 clusters), and the ratio of our rendering to bare Jinja
rendering the same templates with the same values (no sandbox, no finalize check, no
StrictUndefined). `fl-gitops render` is timed with the inventory as YAML and as JSON
(`kubectl get managedclusters -o json`), and `validate --rendered` over the whole tree.
Best of --repeat runs for each figure. Files are written under --out-base (default: the
system temp dir): creating 10,000 files costs what the filesystem charges, so compare
a disk with tmpfs (`--out-base /dev/shm`) to see it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fl_gitops.blueprint import load_blueprint  # noqa: E402
from fl_gitops.placement import (  # noqa: E402
    evaluate_placement,
    generate_inventory,
    inventory_list,
    load_inventory,
)
from fl_gitops.render import apply_changes, plan_changes, render_experiment  # noqa: E402
from fl_gitops.render._env import SHIPPED_TEMPLATES  # noqa: E402
from fl_gitops.render._names import Names  # noqa: E402
from fl_gitops.render._offline import initial_round_state  # noqa: E402
from fl_gitops.render._render import (  # noqa: E402
    _client_env,
    _fill_round_config,
    _round_config_base,
    _round_config_text,
    _shared_context,
)
from fl_gitops.render._yaml import YamlText, yaml_block, yaml_inline  # noqa: E402
from fl_gitops.validate import validate_tree  # noqa: E402

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _best(fn, repeat: int, setup=None) -> tuple[float, object]:
    """Best time of ``repeat`` runs; ``setup`` runs before each, outside the timing."""
    best, result = float("inf"), None
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _blueprint_without_cluster_limit(tmp: Path) -> Path:
    text = (REPO / "blueprints/digits-fedavg.yaml").read_text()
    path = tmp / "blueprint.yaml"
    path.write_text(text.replace("    numberOfClusters: 10\n", ""))
    return path


def _bare_jinja(blueprint, state, roster) -> int:
    """The same ManifestWork template and values through a plain jinja2.Environment."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(SHIPPED_TEMPLATES)),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["yaml"] = yaml_inline
    env.filters["yaml_block"] = yaml_block
    template = env.get_template("manifestwork.yaml.j2")
    names = Names(blueprint.name, blueprint.namespace, state.round)
    ctx = _shared_context(blueprint, names, state)
    config_text = _round_config_text(_round_config_base(blueprint, state), len(roster))
    total = 0
    for index, cluster in enumerate(roster):
        total += len(
            template.render(
                ctx,
                cluster=YamlText(cluster),
                round_config=_fill_round_config(config_text, cluster, index),
                env=_client_env(blueprint, names, cluster),
            )
        )
    return total


def bench(size: int, repeat: int, tmp: Path) -> dict[str, float]:
    blueprint_path = _blueprint_without_cluster_limit(tmp)
    blueprint = load_blueprint(blueprint_path)
    clusters = generate_inventory(size, spec=blueprint.placement, seed=1)
    inventory = tmp / f"inventory-{size}.yaml"
    inventory.write_text(yaml.safe_dump(inventory_list(clusters), sort_keys=False))
    inventory_json = tmp / f"inventory-{size}.json"
    inventory_json.write_text(json.dumps(inventory_list(clusters)))
    state = initial_round_state(blueprint)

    t_load, loaded = _best(lambda: load_inventory(inventory), repeat)
    t_place, result = _best(
        lambda: evaluate_placement(
            blueprint.placement,
            loaded,
            placement_name=blueprint.name,
            namespace=blueprint.namespace,
            now=NOW,
        ),
        repeat,
    )
    roster = result.decided
    assert len(roster) == size, f"expected all {size} clusters placed, got {len(roster)}"
    t_render, tree = _best(lambda: render_experiment(blueprint, roster=roster, state=state), repeat)
    t_bare, _ = _best(lambda: _bare_jinja(blueprint, state, roster), repeat)

    out = tmp / "out"

    def write() -> None:
        apply_changes(out, tree, plan_changes(out, tree))

    t_write, _ = _best(write, repeat, setup=lambda: shutil.rmtree(out, ignore_errors=True))

    cli_out = tmp / "cli-out"

    def clear() -> None:
        shutil.rmtree(cli_out, ignore_errors=True)

    def cli(inv: Path) -> None:
        out = cli_out
        subprocess.run(
            [
                sys.executable,
                "-m",
                "fl_gitops.cli",
                "render",
                str(blueprint_path),
                "--inventory",
                str(inv),
                "--out",
                str(out),
                "--now",
                NOW.isoformat(),
            ],
            check=True,
            capture_output=True,
        )

    t_cli, _ = _best(lambda: cli(inventory), repeat, setup=clear)
    t_cli_json, _ = _best(lambda: cli(inventory_json), repeat, setup=clear)
    t_validate, problems = _best(lambda: validate_tree(tmp / "cli-out"), 1)
    assert problems == [], problems[:3]
    return {
        "size": size,
        "load": t_load,
        "place": t_place,
        "render": t_render,
        "bare": t_bare,
        "write": t_write,
        "cli": t_cli,
        "cli_json": t_cli_json,
        "validate": t_validate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out-base", default=None, help="where to write (default: temp dir)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.out_base) as tmp:
        for size in args.sizes:
            rows.append(bench(size, args.repeat, Path(tmp)))
    head = (
        f"{'clusters':>9} {'load inv/s':>11} {'place/s':>10} {'render/s':>10} "
        f"{'bare jinja/s':>13} {'write/s':>10} {'validate/s':>11} {'render÷bare':>12} "
        f"{'CLI s (yaml)':>13} {'CLI s (json)':>13}"
    )
    print(head)
    for r in rows:
        n = r["size"]
        print(
            f"{n:>9} {n / r['load']:>11,.0f} {n / r['place']:>10,.0f} {n / r['render']:>10,.0f} "
            f"{n / r['bare']:>13,.0f} {n / r['write']:>10,.0f} {n / r['validate']:>11,.0f} "
            f"{r['render'] / r['bare']:>12.2f} {r['cli']:>13.2f} {r['cli_json']:>13.2f}"
        )
    print(
        "CLI s = `fl-gitops render` in a fresh process: imports, blueprint, inventory file, "
        "placement, render, sample validation, write (target: < 5 s at 10,000 clusters). "
        f"Written under {args.out_base or tempfile.gettempdir()}."
    )


if __name__ == "__main__":
    main()
