"""A cluster given a BF16 global model trains it in bfloat16 and writes a BF16 update."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fl_gitops.client.data import LocalData, builtin_split  # noqa: E402
from fl_gitops.client.roundconfig import OptimizerConfig, TrainConfig  # noqa: E402
from fl_gitops.client.train import evaluate_bytes, train_local  # noqa: E402
from fl_gitops.models import bytes_to_tensors, initial_model_bytes, tensors_to_bytes  # noqa: E402
from fl_gitops.models.torch import build_model, load_tensors, module_to_tensors  # noqa: E402
from fl_gitops.tensors import BF16, narrow, parse_header, widen  # noqa: E402

DATA = {"builtin": "digits"}
MODEL = {"builtin": "mlp", "seed": 1}


def bf16_global() -> bytes:
    """Round 0's weights of the built-in MLP, rounded to BF16: a BF16 global model."""
    tensors = bytes_to_tensors(initial_model_bytes(MODEL, DATA))
    return tensors_to_bytes({k: narrow(v) for k, v in tensors.items()})


def test_a_bf16_global_model_trains_in_bfloat16_into_a_bf16_update() -> None:
    data = bf16_global()
    base = bytes_to_tensors(data)
    module = load_tensors(build_model(MODEL, DATA), base)
    assert {p.dtype for p in module.parameters()} == {torch.bfloat16}
    # Loaded bit for bit.
    for k, v in module.state_dict().items():
        assert v.view(torch.int16).numpy().tobytes() == base[k].tobytes()

    split = builtin_split(DATA)
    local = LocalData(split.X_train[:300], split.y_train[:300], None, None, split.num_classes)
    cfg = TrainConfig(epochs=3, batch_size=32, optimizer=OptimizerConfig("sgd", 0.1))
    before = evaluate_bytes(data, split.X_test, split.y_test, model_cfg=MODEL, data_cfg=DATA)
    metrics = train_local(module, local, cfg, seed=7)

    update = module_to_tensors(module)
    assert all(v.dtype == BF16 for v in update.values())
    out = tensors_to_bytes(update)
    header = parse_header(out, len(out))
    # What the hub's update check compares: the global model's names, dtypes and shapes.
    assert header.signature() == parse_header(data, len(data)).signature()
    assert {t.dtype for t in header.tensors.values()} == {"BF16"}
    # It learned: the update moved the weights and the model got better.
    moved = sum(float(np.abs(widen(update[k]) - widen(base[k])).sum()) for k in update)
    assert moved > 0
    after = evaluate_bytes(out, split.X_test, split.y_test, model_cfg=MODEL, data_cfg=DATA)
    assert after["accuracy"] > before["accuracy"] + 0.2, (before, after)
    assert np.isfinite(metrics["train_loss"])


def test_the_same_bf16_round_gives_the_same_update_bytes() -> None:
    data = bf16_global()
    split = builtin_split(DATA)
    local = LocalData(split.X_train[:100], split.y_train[:100], None, None, split.num_classes)
    cfg = TrainConfig(epochs=1, batch_size=16)
    outs = []
    for _ in range(2):
        module = load_tensors(build_model(MODEL, DATA), bytes_to_tensors(data))
        train_local(module, local, cfg, seed=3)
        outs.append(tensors_to_bytes(module_to_tensors(module)))
    assert outs[0] == outs[1]
