"""The dp block's accountant and adaptive clipping fields: defaults, and located refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fl_gitops.blueprint import load_blueprint

sys.path.insert(0, str(Path(__file__).parent))
from cases import variant


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("fl-gitops")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fl_gitops.cli"]


def _write(tmp_path: Path, dp: str) -> Path:
    path = tmp_path / "dp.yaml"
    path.write_text(
        variant(
            "  strategy:\n    name: fedavg\n    options: {}\n",
            f"  strategy:\n    name: fedavg\n    options: {{}}\n    dp:\n{dp}",
        )
    )
    return path


def _validate(path: Path) -> tuple[int, str, str]:
    proc = subprocess.run(
        [*_cli(), "validate", str(path)], capture_output=True, text=True, timeout=120
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_delta_and_sampling_rate_default_and_the_count_noise_is_the_fleet_over_twenty(tmp_path):
    path = _write(tmp_path, "      clipNorm: 1.0\n      noiseMultiplier: 0.8\n      adaptive: {}\n")
    blueprint = load_blueprint(path)
    # The placement asks for 10 clusters: the paper's default, 10 / 20.
    assert blueprint.strategy.dp == {
        "clipNorm": 1.0,
        "noiseMultiplier": 0.8,
        "delta": 1e-5,
        "samplingRate": 1.0,
        "clipping": "server",
        "adaptive": {"targetQuantile": 0.5, "learningRate": 0.2, "clippedCountStddev": 0.5},
    }


def test_the_adaptive_block_reaches_the_wrapper_as_its_options(tmp_path):
    path = _write(
        tmp_path,
        "      clipNorm: 2.0\n      noiseMultiplier: 0.8\n"
        "      adaptive: {targetQuantile: 0.7, learningRate: 0.1, clippedCountStddev: 3}\n",
    )
    options = load_blueprint(path).strategy.effective_options
    assert options["adaptive"] == {
        "target_quantile": 0.7,
        "learning_rate": 0.1,
        "clipped_count_stddev": 3,
    }
    assert (options["clipping_norm"], options["noise_multiplier"]) == (2.0, 0.8)


def test_validate_refuses_a_target_epsilon_that_one_round_would_exceed(tmp_path):
    path = _write(tmp_path, "      clipNorm: 1.0\n      targetEpsilon: 2\n")
    assert _validate(path) == (
        2,
        "",
        f"error: {path}:34:22: spec.strategy.dp.targetEpsilon: one round already spends "
        "epsilon 4.729 > targetEpsilon 2 (noiseMultiplier 1, samplingRate 1, delta 1e-05); "
        "raise targetEpsilon or noiseMultiplier\n",
    )


def test_validate_accepts_a_target_epsilon_that_a_round_fits_in(tmp_path):
    path = _write(tmp_path, "      clipNorm: 1.0\n      targetEpsilon: 5\n")
    code, _out, err = _validate(path)
    assert (code, err) == (0, "")


def test_validate_refuses_a_count_noise_that_leaves_nothing_for_the_sum(tmp_path):
    path = _write(
        tmp_path,
        "      clipNorm: 1.0\n      noiseMultiplier: 1.2\n      adaptive:\n"
        "        clippedCountStddev: 0.6\n",
    )
    assert _validate(path) == (
        2,
        "",
        f"error: {path}:36:29: spec.strategy.dp.adaptive.clippedCountStddev: "
        "clippedCountStddev 0.6 must be above noiseMultiplier / 2 = 0.6: the noisy count "
        "would spend the whole privacy budget; raise clippedCountStddev above it, or lower "
        "noiseMultiplier\n",
    )


def test_validate_says_when_the_refused_count_noise_is_the_default(tmp_path):
    path = _write(tmp_path, "      clipNorm: 1.0\n      noiseMultiplier: 1.0\n      adaptive: {}\n")
    assert _validate(path) == (
        2,
        "",
        f"error: {path}:35:17: spec.strategy.dp.adaptive: clippedCountStddev 0.5 must be above "
        "noiseMultiplier / 2 = 0.5: the noisy count would spend the whole privacy budget "
        "(the default: expected clusters per round / 20); raise clippedCountStddev above it, "
        "or lower noiseMultiplier\n",
    )
