"""`fl-gitops client`: one round on one cluster, against a real file:// store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fl_gitops.client.data import load_local_data
from fl_gitops.client.roundconfig import parse_round_config
from fl_gitops.errors import InputError, StoreError
from fl_gitops.models import bytes_to_tensors, initial_model_bytes
from fl_gitops.reports import parse_report
from fl_gitops.store import ModelStore
from fl_gitops.tensors import sha256_digest, update_digest

MODEL = {"builtin": "mlp", "args": {"hidden": 32}, "seed": 0}
DATA = {
    "builtin": "digits",
    "args": {},
    "partition": {"kind": "dirichlet", "alpha": 0.5, "seed": 7},
}


def _config(store_uri: str, digest: str, **over) -> dict:
    cfg = {
        "apiVersion": "fl-gitops.io/v1alpha1",
        "kind": "RoundConfig",
        "experiment": "digits-fedavg",
        "round": 1,
        "cluster": "cluster-007",
        "rosterIndex": 3,
        "rosterSize": 10,
        "store": {"uri": store_uri},
        "globalModel": {"digest": digest},
        "model": MODEL,
        "data": DATA,
        "train": {
            "epochs": 2,
            "batchSize": 16,
            "optimizer": {"name": "sgd", "lr": 0.05},
            "seed": 0,
        },
        "strategy": {"name": "fedavg", "options": {}},
    }
    cfg.update(over)
    return cfg


@pytest.fixture
def store(tmp_path: Path) -> tuple[ModelStore, str]:
    """A file:// store holding round 0's model; returns the store and the model's digest."""
    s = ModelStore.open(f"file://{tmp_path / 'store'}")
    return s, s.put_model(initial_model_bytes(MODEL, DATA))


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FL_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "fl_gitops.cli", "client", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
    )


def test_client_subprocess_writes_a_verified_update(store, tmp_path: Path) -> None:
    s, digest = store
    cfg_path = tmp_path / "round.json"
    cfg_path.write_text(json.dumps(_config(s.uri, digest)))
    result = tmp_path / "result.json"
    env = {"FL_ROUND_CONFIG": str(cfg_path), "FL_CLUSTER": "cluster-007"}
    proc = _run([], {**env, "FL_RESULT_FILE": str(result)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("cluster-007 round 1: trained on ")
    assert proc.stdout.rstrip().endswith(f"reported to result file {result}")

    meta = json.loads((tmp_path / "store/rounds/1/updates/cluster-007.json").read_text())
    update_bytes = (tmp_path / "store/rounds/1/updates/cluster-007.safetensors").read_bytes()
    assert meta["sha256"] == update_digest(update_bytes)
    assert meta["base_model"] == digest
    assert (meta["round"], meta["cluster"]) == (1, "cluster-007")
    assert meta["num_examples"] == load_local_data(DATA, 3, 10).num_examples
    assert set(meta["metrics"]) >= {"train_accuracy", "train_loss"}
    assert meta["fl_gitops_version"]
    update = bytes_to_tensors(update_bytes)
    base = bytes_to_tensors(s.get_model(digest))
    assert {k: (v.shape, v.dtype) for k, v in update.items()} == {
        k: (v.shape, v.dtype) for k, v in base.items()
    }
    assert not np.array_equal(update["out.weight"], base["out.weight"])
    assert s.list_updates(1) == ["cluster-007"]
    # what it reported through the hub's channel is that update, parsed as the hub does
    report = parse_report(json.loads(result.read_text()))
    assert (report.digest, report.num_examples) == (meta["sha256"], meta["num_examples"])
    assert report.metrics == meta["metrics"]


def test_bad_config_exits_2_naming_the_file_and_field_and_writes_nothing(store, tmp_path) -> None:
    s, digest = store
    cfg = _config(s.uri, digest)
    cfg["train"]["batchSize"] = 0
    cfg_path = tmp_path / "round.json"
    cfg_path.write_text(json.dumps(cfg))
    proc = _run(["--config", str(cfg_path)], {})
    assert proc.returncode == 2
    assert proc.stderr == f"error: {cfg_path}: train.batchSize: expected an integer >= 1, got 0\n"
    assert s.list_updates(1) == []
    assert not (tmp_path / "store/rounds").exists()


def test_missing_config_exits_2(tmp_path) -> None:
    proc = _run([], {})
    assert proc.returncode == 2
    assert proc.stderr == "error: no round config: pass --config PATH or set FL_ROUND_CONFIG\n"


def test_wrong_global_model_digest_fails_and_writes_no_update(store, tmp_path) -> None:
    from fl_gitops.client import run_client

    s, _ = store
    missing = "sha256:" + "a" * 64
    with pytest.raises(StoreError) as err:
        run_client(_config(s.uri, missing), environ={})
    assert "not found in the store" in str(err.value)
    assert s.list_updates(1) == []


def test_diverging_training_writes_no_update(store) -> None:
    from fl_gitops.client import run_client
    from fl_gitops.errors import FlGitopsError

    s, digest = store
    cfg = _config(s.uri, digest)
    cfg["train"]["optimizer"] = {"name": "sgd", "lr": 1e30}
    with pytest.raises(FlGitopsError) as err:
        run_client(cfg, environ={})
    assert str(err.value).startswith("cluster-007 round 1: training diverged: tensor ")
    assert s.list_updates(1) == []


def test_run_client_in_process_takes_the_cluster_from_the_jobs_environment(store) -> None:
    from fl_gitops.client import run_client

    s, digest = store
    cfg = _config(s.uri, digest, round=2)
    del cfg["cluster"]
    record = run_client(cfg, environ={"FL_CLUSTER": "cluster-001"})
    assert (record["cluster"], record["round"]) == ("cluster-001", 2)
    assert s.list_updates(2) == ["cluster-001"]
    again = run_client(cfg, environ={"FL_CLUSTER": "cluster-001"})
    assert again["sha256"] == record["sha256"]  # seeded: a retried Job sends the same bytes


def test_fedprox_mu_is_read_from_the_strategy_options(store) -> None:
    s, digest = store
    cfg = parse_round_config(
        _config(s.uri, digest, strategy={"name": "fedprox", "options": {"mu": 0.1}})
    )
    assert cfg.fedprox_mu == 0.1
    assert parse_round_config(_config(s.uri, digest)).fedprox_mu == 0.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"apiVersion": "v1"}, 'apiVersion: expected fl-gitops.io/v1alpha1, got "v1"'),
        ({"rosterIndex": 10}, "rosterIndex: expected an integer < rosterSize (10), got 10"),
        (
            {"globalModel": {"digest": "md5:x"}},
            'globalModel.digest: expected "sha256:" and 64 hex digits, got "md5:x"',
        ),
        (
            {"model": {"builtin": "resnet"}},
            'model.builtin: expected one of logreg, mlp, cnn, got "resnet"',
        ),
        (
            {"model": {"entrypoint": "not an entrypoint"}},
            'model.entrypoint: expected "package.module:function", got "not an entrypoint"',
        ),
        (
            {"data": {"builtin": "digits", "partition": {"kind": "dirichlet"}}},
            "data.partition.alpha: required field is missing",
        ),
        (
            {"data": {"builtin": "digits", "partition": {"kind": "iid", "alpha": 1}}},
            "data.partition.alpha: unknown field (expected one of: kind, seed)",
        ),
        ({"data": {"entrypoint": "m:f"}}, "data.path: required field is missing"),
        (
            {"train": {"optimizer": {"name": "adam", "lr": 0.1, "momentum": 0.9}}},
            "train.optimizer.momentum: unknown field (expected one of: lr, name, weightDecay)",
        ),
        (
            {"train": {"optimizer": {"name": "sgd", "lr": -1}}},
            "train.optimizer.lr: expected a number > 0, got -1",
        ),
        (
            {"strategy": {"name": "fedprox", "options": {"mu": "big"}}},
            'strategy.options.mu: expected a number, got "big"',
        ),
    ],
)
def test_round_config_errors_name_the_file_and_field(change: dict, message: str) -> None:
    cfg = _config("file:///tmp/x", "sha256:" + "0" * 64, **change)
    with pytest.raises(InputError) as err:
        parse_round_config(cfg, source="/etc/fl-gitops/round/round.json")
    assert str(err.value) == f"/etc/fl-gitops/round/round.json: {message}"


def test_cluster_in_config_and_environment_must_agree() -> None:
    cfg = _config("file:///tmp/x", "sha256:" + "0" * 64)
    with pytest.raises(InputError) as err:
        parse_round_config(cfg, source="round.json", cluster="cluster-001")
    assert str(err.value) == (
        'round.json: cluster: is "cluster-007" but FL_CLUSTER is "cluster-001"'
    )


def test_config_that_is_not_json_names_line_and_column(tmp_path) -> None:
    from fl_gitops.client.roundconfig import load_round_config

    path = tmp_path / "round.json"
    path.write_text('{"round": 1,\n  oops}')
    with pytest.raises(InputError) as err:
        load_round_config(path)
    assert str(err.value) == (
        f"{path}:2:3: not valid JSON: Expecting property name enclosed in double quotes"
    )


def test_user_model_and_data_from_entrypoints_train_from_a_checkpoint(
    tmp_path, monkeypatch
) -> None:
    from fl_gitops.client import run_client
    from fl_gitops.models import initial_model_bytes as initial
    from fl_gitops.models.torch import init_model_from_entrypoint

    (tmp_path / "clinic.py").write_text(
        textwrap.dedent(
            """
            import os
            import numpy as np
            from torch import nn

            def build(width=8):
                return nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 3))

            def load(path, n=60):
                a = np.load(os.path.join(path, "part.npy"))[:n]
                return {"train": (a[:40, :4], a[:40, 4].astype(int)),
                        "test": (a[40:, :4], a[40:, 4].astype(int))}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    volume = tmp_path / "volume"
    volume.mkdir()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    np.save(volume / "part.npy", np.column_stack([X, np.argmax(X[:, :3], axis=1)]))

    model = {"entrypoint": "clinic:build", "args": {"width": 8}, "seed": 0}
    ck = init_model_from_entrypoint(model)
    ck_path = tmp_path / "round0.safetensors"
    ck_path.write_bytes(ck)
    model["checkpoint"] = {"uri": f"file://{ck_path}", "digest": sha256_digest(ck)}
    data = {"entrypoint": "clinic:load", "args": {"n": 60}, "path": str(volume)}
    s = ModelStore.open(f"file://{tmp_path / 'store'}")
    digest = s.put_model(initial(model, data))
    assert digest == sha256_digest(ck)

    record = run_client(_config(s.uri, digest, model=model, data=data), environ={})
    assert record["num_examples"] == 40
    assert set(record["metrics"]) == {
        "test_accuracy",
        "test_loss",
        "train_accuracy",
        "train_loss",
        "train_loss_last_epoch",
    }
    update = bytes_to_tensors(s.get_update(1, "cluster-007"))
    assert sorted(update) == ["0.bias", "0.weight", "2.bias", "2.weight"]
