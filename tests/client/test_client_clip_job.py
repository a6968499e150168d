"""The Job's side of client-side clipping: a round config with ``dp`` makes `fl-gitops
client` (real torch on digits, a real file:// store) clip the trained update to the clip
it names and report the bit through the hub; the report contract's ``unclipped`` key, and
the round config's ``dp`` errors, each naming the file and field."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fl_gitops.aggregate.strategies._arith import squared_distance
from fl_gitops.aggregate.strategies.dp import client_clip_bound
from fl_gitops.client.clip import update_norm
from fl_gitops.client.roundconfig import parse_round_config
from fl_gitops.errors import InputError
from fl_gitops.models import bytes_to_tensors, initial_model_bytes, tensors_to_bytes
from fl_gitops.reports import ReportError, parse_report, report_data
from fl_gitops.store import ModelStore
from fl_gitops.tensors import BF16, narrow, values_f64

MODEL = {"builtin": "mlp", "args": {"hidden": 32}, "seed": 0}
DATA = {"builtin": "digits", "args": {}, "partition": {"kind": "iid", "seed": 7}}
DIGEST = "sha256:" + "ab" * 32


def _config(store_uri: str, digest: str, dp: dict | None) -> dict:
    cfg = {
        "apiVersion": "fl-gitops.io/v1alpha1",
        "kind": "RoundConfig",
        "experiment": "digits-client-dp",
        "round": 1,
        "cluster": "cluster-002",
        "rosterIndex": 1,
        "rosterSize": 4,
        "store": {"uri": store_uri},
        "globalModel": {"digest": digest},
        "model": MODEL,
        "data": DATA,
        "train": {"epochs": 1, "batchSize": 16, "optimizer": {"name": "sgd", "lr": 0.05}},
        "strategy": {"name": "fedavg", "options": {}},
    }
    if dp is not None:
        cfg["dp"] = dp
    return cfg


def _bf16_model() -> bytes:
    """Round 0's weights rounded to BF16: a BF16 global model."""
    tensors = bytes_to_tensors(initial_model_bytes(MODEL, DATA))
    return tensors_to_bytes({k: narrow(v) for k, v in tensors.items()})


def _job(
    tmp: Path, dp: dict | None, model: bytes | None = None
) -> tuple[float, dict[str, str], ModelStore, str]:
    """Run the Job as its container does; the stored update's distance to the global
    model, the result file's data, the store and the global model's digest."""
    store = ModelStore.open(f"file://{tmp / 'store'}")
    digest = store.put_model(initial_model_bytes(MODEL, DATA) if model is None else model)
    path = tmp / "round.json"
    path.write_text(json.dumps(_config(store.uri, digest, dp)))
    result = tmp / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FL_")}
    env.update(FL_ROUND_CONFIG=str(path), FL_RESULT_FILE=str(result))
    proc = subprocess.run(
        [sys.executable, "-m", "fl_gitops.cli", "client"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    base = bytes_to_tensors(store.get_model(digest))
    update = bytes_to_tensors(store.get_update(1, "cluster-002"))
    return update_norm(update, base), json.loads(result.read_text()), store, digest


def test_the_job_clips_its_trained_update_to_the_rounds_clip_and_reports_the_bit(tmp_path):
    # Unclipped first, to know this training's norm; then a clip below it and one above.
    free, data, _, _ = _job(tmp_path / "free", None)
    assert "unclipped" not in data
    assert parse_report(data).unclipped is None
    clip = free / 4
    norm, data, _, _ = _job(tmp_path / "tight", {"clipping": "client", "clipNorm": clip})
    assert norm == pytest.approx(clip, rel=1e-6) and norm <= clip
    assert data["unclipped"] == "false"
    assert parse_report(data).unclipped is False
    loose, data, _, _ = _job(tmp_path / "loose", {"clipping": "client", "clipNorm": free * 2})
    assert loose == pytest.approx(free, rel=1e-9)  # the same seeded training, untouched
    assert data["unclipped"] == "true"
    assert parse_report(data).unclipped is True


def test_a_bf16_models_job_trains_checks_and_clips_its_bf16_update(tmp_path):
    # Before, the Job's finite check raised TypeError on BF16 arrays, and the clip skipped
    # BF16 tensors (not dtype kind "f"), so the hub would have refused every update.
    model = _bf16_model()
    free, data, store, digest = _job(tmp_path / "free", None, model)
    update = bytes_to_tensors(store.get_update(1, "cluster-002"))
    assert {v.dtype for v in update.values()} == {BF16}
    assert free > 0 and "unclipped" not in data

    clip = free / 4
    norm, data, store, digest = _job(
        tmp_path / "tight", {"clipping": "client", "clipNorm": clip}, model
    )
    update = bytes_to_tensors(store.get_update(1, "cluster-002"))
    base = bytes_to_tensors(store.get_model(digest))
    assert {v.dtype for v in update.values()} == {BF16}
    assert clip * (1 - 2**-6) < norm <= clip  # within BF16's rounding of the clip
    # measured as the hub measures it: float64 over the widened values
    hub = math.sqrt(
        sum(
            squared_distance(values_f64(update[k]).ravel(), values_f64(base[k]).ravel())
            for k in base
        )
    )
    assert hub <= client_clip_bound(clip)
    assert data["unclipped"] == "false"


def test_the_bit_is_reported_only_as_true_or_false_and_parsed_strictly():
    assert "unclipped" not in report_data(DIGEST, 3, {})
    assert report_data(DIGEST, 3, {}, unclipped=True)["unclipped"] == "true"
    assert report_data(DIGEST, 3, {}, unclipped=False)["unclipped"] == "false"
    good = report_data(DIGEST, 3, {})
    for bad in ("True", "1", "", "yes"):
        with pytest.raises(ReportError) as err:
            parse_report({**good, "unclipped": bad})
        assert str(err.value) == 'unclipped: expected "true" or "false"'
    with pytest.raises(ReportError):
        parse_report({**good, "unclipped": True})  # feedback values are strings


@pytest.mark.parametrize(
    ("dp", "message"),
    [
        ({"clipping": "client"}, "dp.clipNorm: required field is missing"),
        ({"clipping": "client", "clipNorm": 0}, "dp.clipNorm: expected a number > 0, got 0"),
        (
            {"clipping": "server", "clipNorm": 1.0},
            'dp.clipping: expected one of client, got "server"',
        ),
        (
            {"clipping": "client", "clipNorm": 1.0, "noise": 1},
            "dp.noise: unknown field (expected one of: clipNorm, clipping)",
        ),
    ],
)
def test_a_round_configs_dp_errors_name_the_file_and_field(dp: dict, message: str) -> None:
    cfg = _config("file:///tmp/x", DIGEST, dp)
    with pytest.raises(InputError) as err:
        parse_round_config(cfg, source="/etc/fl-gitops/round/round.json")
    assert str(err.value) == f"/etc/fl-gitops/round/round.json: {message}"
