"""Built-in data sets follow the digits protocol; user data comes through an entrypoint."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from fl_gitops.client.data import builtin_split, load_local_data, server_test_set
from fl_gitops.errors import InputError
from fl_gitops.models import data_dims

DIGITS = {"builtin": "digits", "args": {}, "partition": {"kind": "iid", "seed": 0}}


def test_digits_protocol_split_is_stratified_75_25_and_standardized() -> None:
    split = builtin_split(DIGITS)
    assert split.X_train.shape == (1347, 64) and split.X_test.shape == (450, 64)
    assert split.X_train.dtype == np.float32 and split.y_train.dtype == np.int64
    # stratified: each class keeps its share in both parts
    train_share = np.bincount(split.y_train) / len(split.y_train)
    test_share = np.bincount(split.y_test) / len(split.y_test)
    assert np.abs(train_share - test_share).max() < 0.01
    # standardized with the training part's statistics (constant pixels stay at 0)
    assert np.abs(split.X_train.mean(axis=0)).max() < 1e-5
    std = split.X_train.std(axis=0)
    assert np.allclose(std[std > 0], 1.0, atol=1e-4)
    assert np.abs(split.X_test.mean(axis=0)).max() > 1e-3  # not re-centred on the test part


def test_digits_are_loaded_once_per_process_and_read_only() -> None:
    a = builtin_split(DIGITS)
    assert builtin_split({"builtin": "digits"}) is a
    with pytest.raises(ValueError):
        a.X_train[0, 0] = 1.0


def test_cluster_parts_of_digits_cover_the_training_part() -> None:
    parts = [load_local_data(DIGITS, i, 10) for i in range(10)]
    assert sum(p.num_examples for p in parts) == 1347
    X_test, y_test = server_test_set(DIGITS)
    assert X_test.shape == (450, 64) and len(y_test) == 450
    assert all(p.X_test is None for p in parts)


def test_synthetic_sizes_come_from_args_without_loading() -> None:
    cfg = {"builtin": "synthetic", "args": {"n_samples": 400, "n_features": 12, "n_classes": 4}}
    assert data_dims(cfg, {}) == (12, 4)
    part = load_local_data(cfg, 0, 4)
    assert part.X_train.shape[1] == 12 and part.num_classes == 4
    assert part.num_examples == 75  # 300 training examples over 4 clusters


def test_synthetic_with_too_few_informative_features_is_an_input_error() -> None:
    cfg = {"builtin": "synthetic", "args": {"n_features": 3, "n_classes": 10}}
    with pytest.raises(InputError) as err:
        data_dims(cfg, {}, source="round.json")
    assert str(err.value) == (
        "round.json: data.args: 10 classes need at least 5 informative features, got 2 "
        "(raise n_features or n_informative)"
    )


def test_model_args_that_contradict_the_data_set_are_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        data_dims(DIGITS, {"in_features": 32}, source="round.json")
    assert str(err.value) == (
        "round.json: model.args.in_features: the digits data set has 64, got 32"
    )


@pytest.fixture
def user_data(tmp_path, monkeypatch):
    """A user module reading a CSV from a volume, the way a cluster's data would be."""
    volume = tmp_path / "volume"
    volume.mkdir()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    y = (X[:, 0] > 0).astype(int)
    np.savetxt(volume / "train.csv", np.column_stack([X, y]), delimiter=",")
    (tmp_path / "mydata.py").write_text(
        textwrap.dedent(
            """
            import os
            import numpy as np

            def load(path, split_at=30):
                a = np.loadtxt(os.path.join(path, "train.csv"), delimiter=",")
                X, y = a[:, :-1], a[:, -1].astype(int)
                return {"train": (X[:split_at], y[:split_at]), "test": (X[split_at:], y[split_at:])}

            def broken(path):
                raise FileNotFoundError(os.path.join(path, "missing.csv"))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return volume


def test_user_data_entrypoint_reads_the_volume_with_its_args(user_data) -> None:
    cfg = {"entrypoint": "mydata:load", "args": {"split_at": 25}, "path": str(user_data)}
    data = load_local_data(cfg, 0, 1)
    assert data.X_train.shape == (25, 5) and data.X_train.dtype == np.float32
    assert data.X_test is not None and data.X_test.shape == (15, 5)
    assert data.num_classes == 2


def test_user_data_that_fails_is_an_input_error_naming_the_entrypoint(user_data) -> None:
    cfg = {"entrypoint": "mydata:broken", "path": str(user_data)}
    with pytest.raises(InputError) as err:
        load_local_data(cfg, 0, 1, source="round.json")
    assert str(err.value) == (
        f"round.json: data.entrypoint mydata:broken: failed: FileNotFoundError: "
        f"{user_data}/missing.csv"
    )


def test_user_data_as_a_torch_dataset_is_stacked(tmp_path, monkeypatch) -> None:
    pytest.importorskip("torch")
    (tmp_path / "tds.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch.utils.data import TensorDataset

            def load(path):
                return TensorDataset(torch.ones(6, 1, 8, 8), torch.arange(6) % 3)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_local_data({"entrypoint": "tds:load", "path": "/data"}, 0, 1)
    assert data.X_train.shape == (6, 1, 8, 8)
    assert data.y_train.tolist() == [0, 1, 2, 0, 1, 2]
    assert data.num_classes == 3
