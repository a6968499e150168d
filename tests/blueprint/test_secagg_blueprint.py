"""spec.strategy.secureAggregation: accepted with the weighted-sum strategies, refused
(located, saying why, exit 2) with what it cannot run with and on impossible parameters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fl_gitops.blueprint import load_blueprint
from fl_gitops.errors import BlueprintError

sys.path.insert(0, str(Path(__file__).parent))
from cases import variant

_STRATEGY = "  strategy:\n    name: fedavg\n    options: {}\n"
_SA = "    secureAggregation: {threshold: 7, neighbours: 9, clipRange: 0.5}\n"


def _write(tmp_path: Path, strategy: str = _STRATEGY, sa: str = _SA, **subs: str) -> Path:
    text = variant(_STRATEGY, strategy + sa)
    for old, new in subs.items():
        text = text.replace(old.replace("_", " "), new)
    path = tmp_path / "sa.yaml"
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(path)
    return str(caught.value).removeprefix(str(path))


@pytest.mark.parametrize("name", ["fedavg", "fedavgm", "fedprox", "fedadam", "fedyogi"])
def test_the_weighted_sum_strategies_take_it_with_bits_defaulted(tmp_path, name):
    strategy = _STRATEGY.replace("fedavg", name)
    blueprint = load_blueprint(_write(tmp_path, strategy))
    assert blueprint.strategy.secure_aggregation == {
        "threshold": 7,
        "neighbours": 9,
        "clipRange": 0.5,
        "bits": 64,
    }


@pytest.mark.parametrize("name", ["fedmedian", "fedtrimmedavg", "krum", "multikrum"])
def test_the_robust_strategies_are_refused_at_the_strategy_name(tmp_path, name):
    options = "{f: 1}" if "krum" in name else "{}"
    strategy = f"  strategy:\n    name: {name}\n    options: {options}\n"
    assert _error(_write(tmp_path, strategy)) == (
        f":30:11: spec.strategy.name: strategy {name!r} cannot run with secureAggregation: "
        "it needs each cluster's update apart, and the hub sees only their masked sum; "
        "expected one of fedavg, fedavgm, fedprox, fedadam, fedyogi, fedadagrad, or no "
        "secureAggregation block"
    )


def test_sharded_aggregation_is_refused_at_shards(tmp_path):
    sa = _SA + "  aggregation:\n    shards: 4\n"
    message = _error(_write(tmp_path, sa=sa))
    assert message.startswith(":34:13: spec.aggregation.shards: secureAggregation is not built")


def test_dp_is_refused_beside_it(tmp_path):
    sa = _SA + "    dp: {clipNorm: 1.0}\n"
    assert _error(_write(tmp_path, sa=sa)).startswith(
        ":33:9: spec.strategy.dp: dp cannot run with secureAggregation"
    )


def test_a_threshold_above_the_fleet_is_refused(tmp_path):
    sa = "    secureAggregation: {threshold: 11, neighbours: 20, clipRange: 0.5}\n"
    assert _error(_write(tmp_path, sa=sa)) == (
        ":32:36: spec.strategy.secureAggregation.threshold: threshold 11 is above "
        "placement.numberOfClusters 10: no round could rebuild a secret; expected at most "
        "the clusters placed"
    )


def test_a_threshold_of_half_the_holders_is_refused(tmp_path):
    sa = "    secureAggregation: {threshold: 5, neighbours: 9, clipRange: 0.5}\n"
    assert _error(_write(tmp_path, sa=sa)) == (
        ":32:36: spec.strategy.secureAggregation.threshold: expected more than half of "
        "neighbours + 1 and at most neighbours + 1 (6 to 10), got 5"
    )


def test_a_grid_under_4096_levels_is_refused_at_bits_by_the_cli_with_exit_2(tmp_path):
    sa = "    secureAggregation: {threshold: 7, neighbours: 9, clipRange: 0.5, bits: 32}\n"
    path = _write(tmp_path, sa=sa)
    script = Path(sys.executable).with_name("fl-gitops")
    proc = subprocess.run(
        [str(script), "validate", str(path)], capture_output=True, text=True, timeout=120
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        f"error: {path}:32:76: spec.strategy.secureAggregation.bits: 32 bits leave 42 levels "
        "for 10 clusters weighing up to 10000000 examples each (at least 4096 needed): raise "
        "bits or lower influence.numExamples.max\n"
    )
    assert "Traceback" not in proc.stderr
