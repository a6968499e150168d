"""The strategy a blueprint names is built once, at load, as the aggregation will run it.

The DP block wraps the named strategy in the DP wrapper there (its noise default is the
wrapper's own), a combination the wrapper cannot run is refused at the ``dp`` key, and the
schema's strategy names are the registry's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fl_gitops.aggregate.strategies import STRATEGIES, dp
from fl_gitops.blueprint import STRATEGY_NAMES, blueprint_schema, load_blueprint
from fl_gitops.reconcile._pass import _strategy

sys.path.insert(0, str(Path(__file__).parent))
from cases import variant


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("fl-gitops")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fl_gitops.cli"]


def _strategy_block(block: str) -> str:
    return variant("  strategy:\n    name: fedavg\n    options: {}\n", block)


def test_a_dp_block_is_built_into_the_wrapper_once_at_load(tmp_path):
    path = tmp_path / "dp.yaml"
    path.write_text(
        _strategy_block(
            "  strategy:\n    name: fedprox\n    options: {mu: 0.1}\n"
            "    dp: {clipNorm: 2.0, seed: 3}\n"
        )
    )
    blueprint = load_blueprint(path)
    wrapper = {
        "clipping_norm": 2.0,
        "inner": "fedprox",
        "inner_options": {"mu": 0.1},
        "noise_multiplier": 1.0,
    }
    assert (blueprint.strategy.effective_name, blueprint.strategy.effective_options) == (
        "dp-fixed-clipping",
        wrapper,
    )
    # The blueprint's own block carries the same default, for the round record.
    assert blueprint.strategy.dp == {
        "clipNorm": 2.0,
        "noiseMultiplier": 1.0,
        "seed": 3,
        "delta": 1e-5,
        "samplingRate": 1.0,
        "clipping": "server",
    }
    # The reconcile pass runs exactly what was loaded.
    assert _strategy(blueprint) == ("dp-fixed-clipping", wrapper)


def test_without_dp_the_named_strategy_runs(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text(_strategy_block("  strategy:\n    name: fedprox\n    options: {mu: 0.1}\n"))
    blueprint = load_blueprint(path)
    assert blueprint.strategy.dp is None
    assert _strategy(blueprint) == ("fedprox", {"mu": 0.1})


def test_the_noise_default_is_the_wrappers_own():
    spec = blueprint_schema()["properties"]["spec"]["properties"]
    noise = spec["strategy"]["properties"]["dp"]["properties"]["noiseMultiplier"]
    assert (
        noise["default"] == dp.STRATEGY.options_schema["properties"]["noise_multiplier"]["default"]
    )


def test_validate_refuses_krum_under_dp_at_the_dp_key(tmp_path):
    path = tmp_path / "krum-dp.yaml"
    path.write_text(
        _strategy_block("  strategy:\n    name: krum\n    options: {}\n    dp: {clipNorm: 1.0}\n")
    )
    proc = subprocess.run(
        [*_cli(), "validate", str(path)], capture_output=True, text=True, timeout=120
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2,
        "",
        f"error: {path}:32:9: spec.strategy.dp: strategy 'krum' cannot run under dp: its "
        "noise is calibrated for a mean; expected one of fedavg, fedavgm, fedprox, fedadam, "
        "fedyogi, fedadagrad, or no dp block\n",
    )


def test_the_schemas_strategy_names_are_the_registrys():
    spec = blueprint_schema()["properties"]["spec"]["properties"]
    names = spec["strategy"]["properties"]["name"]["enum"]
    # Every strategy in the table but the DP wrapper, reached through the dp block.
    assert names == [name for name in STRATEGIES if name != dp.STRATEGY.name]
    assert list(STRATEGY_NAMES) == names
    assert set(dp.INNER) <= set(names)
