"""Local training on real digits data: it learns, it is deterministic, FedProx holds it close."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fl_gitops.client.data import load_local_data, server_test_set  # noqa: E402
from fl_gitops.client.roundconfig import OptimizerConfig, TrainConfig  # noqa: E402
from fl_gitops.client.train import (  # noqa: E402
    client_seed,
    evaluate,
    evaluate_bytes,
    train_centralized,
    train_local,
)
from fl_gitops.models import bytes_to_tensors, initial_model_bytes  # noqa: E402
from fl_gitops.models.torch import build_model, load_tensors, module_to_tensors  # noqa: E402

DIGITS = {"builtin": "digits", "args": {}, "partition": {"kind": "iid", "seed": 0}}
MLP = {"builtin": "mlp", "args": {"hidden": 32}, "seed": 0}
SGD = TrainConfig(epochs=5, batch_size=16, optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9))


def _fresh(model_cfg=MLP):
    base = bytes_to_tensors(initial_model_bytes(model_cfg, DIGITS))
    return load_tensors(build_model(model_cfg, DIGITS), base), base


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("name", "floor"), [("logreg", 0.8), ("mlp", 0.8), ("cnn", 0.55)])
def test_a_cluster_learns_its_part_of_digits(name: str, floor: float) -> None:
    module, base = _fresh({"builtin": name})
    data = load_local_data(DIGITS, 3, 10)
    before = evaluate(base, *server_test_set(DIGITS), model_cfg={"builtin": name}, data_cfg=DIGITS)
    metrics = train_local(module, data, SGD, seed=1)
    assert metrics["train_accuracy"] > 0.8
    after = evaluate(
        module_to_tensors(module),
        *server_test_set(DIGITS),
        model_cfg={"builtin": name},
        data_cfg=DIGITS,
    )
    assert before["accuracy"] < 0.3 < floor < after["accuracy"]
    assert after["loss"] < before["loss"]


def test_centralized_mlp_reaches_the_protocols_accuracy() -> None:
    cfg = TrainConfig(
        epochs=10, batch_size=16, optimizer=OptimizerConfig("sgd", 0.05, momentum=0.9)
    )
    test = train_centralized(MLP, DIGITS, cfg, seed=0)
    assert test["accuracy"] >= 0.96


def test_same_seed_gives_bit_identical_weights() -> None:
    data = load_local_data(DIGITS, 0, 10)
    runs = []
    for _ in range(2):
        module, _ = _fresh()
        train_local(module, data, SGD, seed=42)
        runs.append(module_to_tensors(module))
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])
    module, _ = _fresh()
    train_local(module, data, SGD, seed=43)
    assert not np.array_equal(module_to_tensors(module)["out.weight"], runs[0]["out.weight"])


def test_fedprox_keeps_the_update_closer_to_the_global_model() -> None:
    data = load_local_data({**DIGITS, "partition": {"kind": "dirichlet", "alpha": 0.3}}, 2, 10)

    def drift(mu: float) -> float:
        module, base = _fresh()
        train_local(module, data, SGD, seed=0, prox_mu=mu)
        after = module_to_tensors(module)
        return float(np.sqrt(sum(((after[k] - base[k]) ** 2).sum() for k in base)))

    plain, prox = drift(0.0), drift(1.0)
    assert prox < 0.8 * plain


def test_adam_with_weight_decay_trains_too() -> None:
    module, _ = _fresh()
    cfg = TrainConfig(
        epochs=3, batch_size=16, optimizer=OptimizerConfig("adam", 0.01, weight_decay=1e-4)
    )
    metrics = train_local(module, load_local_data(DIGITS, 1, 10), cfg, seed=0)
    assert metrics["train_accuracy"] > 0.9
    assert set(metrics) == {"train_accuracy", "train_loss", "train_loss_last_epoch"}


def test_evaluate_bytes_agrees_with_evaluate() -> None:
    data = initial_model_bytes(MLP, DIGITS)
    X, y = server_test_set(DIGITS)
    assert evaluate_bytes(data, X, y, model_cfg=MLP, data_cfg=DIGITS) == evaluate(
        bytes_to_tensors(data), X, y, model_cfg=MLP, data_cfg=DIGITS
    )


def test_client_seeds_differ_by_cluster_and_round() -> None:
    seeds = {client_seed(0, r, i) for r in (1, 2) for i in range(10)}
    assert len(seeds) == 20
    assert client_seed(0, 1, 3) == client_seed(0, 1, 3)
