"""Local training on a cluster, and evaluation of a model on some examples.

One function trains a module on a cluster's data for a few epochs with SGD (momentum,
weight decay) or Adam, seeded so that the same round config gives the same update; with
FedProx it adds the proximal term μ/2·||w − w_global||² to every step's loss (Li et al.
2020, "Federated optimization in heterogeneous networks"). The other evaluates a model on
labelled examples, which the hub uses on the held-out test set after each round.

Batches are drawn by indexing whole-set tensors with a seeded permutation, not through a
DataLoader: a cluster's part of digits is about 135 examples, and the loader's overhead
would dominate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fl_gitops.client.data import LocalData, builtin_split
from fl_gitops.client.roundconfig import TrainConfig
from fl_gitops.models import bytes_to_tensors, initial_model_bytes
from fl_gitops.models.torch import build_model, load_tensors

__all__ = [
    "client_seed",
    "evaluate",
    "evaluate_bytes",
    "evaluate_module",
    "train_centralized",
    "train_local",
]

_EVAL_BATCH = 4096


def client_seed(train_seed: int, round_number: int, roster_index: int) -> int:
    """A per-cluster, per-round seed from the blueprint's one: clusters shuffle differently."""
    state = np.random.SeedSequence([train_seed, round_number, roster_index]).generate_state(1)
    return int(state[0])


def _tensors(
    X: np.ndarray, y: np.ndarray, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    # torch.tensor copies: the cached built-in arrays are read-only.
    return torch.tensor(np.asarray(X), dtype=dtype), torch.tensor(np.asarray(y), dtype=torch.long)


def _input_dtype(module: nn.Module) -> torch.dtype:
    """The dtype the features are fed in: the module's own (bfloat16 for a BF16 global
    model, whose layers refuse float32 inputs), float32 for a module without parameters."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _optimizer(module: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    o = cfg.optimizer
    if o.name == "adam":
        return torch.optim.Adam(module.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(
        module.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay
    )


def evaluate_module(module: nn.Module, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean cross-entropy loss and accuracy (a fraction) of a module on ``(X, y)``."""
    Xt, yt = _tensors(X, y, _input_dtype(module))
    was_training = module.training
    module.eval()
    loss_sum = 0.0
    correct = 0
    with torch.no_grad():
        for i in range(0, len(yt), _EVAL_BATCH):
            out = module(Xt[i : i + _EVAL_BATCH])
            target = yt[i : i + _EVAL_BATCH]
            loss_sum += float(F.cross_entropy(out, target, reduction="sum"))
            correct += int((out.argmax(dim=1) == target).sum())
    module.train(was_training)
    n = max(len(yt), 1)
    return {"accuracy": correct / n, "loss": loss_sum / n}


def evaluate(
    model_tensors: Mapping[str, np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    *,
    model_cfg: Mapping[str, Any],
    data_cfg: Mapping[str, Any],
) -> dict[str, float]:
    """Evaluate a model given as numpy tensors (e.g. a new global model) on ``(X, y)``.

    Args:
        model_tensors: the model's weights by state_dict name.
        X: features, one row per example.
        y: integer labels.
        model_cfg: the ``model`` object, to build the module.
        data_cfg: the ``data`` object, for a built-in model's sizes.

    Returns:
        ``{"accuracy": fraction, "loss": mean cross-entropy}``.
    """
    module = load_tensors(build_model(model_cfg, data_cfg), model_tensors)
    return evaluate_module(module, X, y)


def evaluate_bytes(
    model_bytes: bytes | bytearray,
    X: np.ndarray,
    y: np.ndarray,
    *,
    model_cfg: Mapping[str, Any],
    data_cfg: Mapping[str, Any],
) -> dict[str, float]:
    """``evaluate`` for a safetensors file's bytes (what the store hands out)."""
    return evaluate(bytes_to_tensors(model_bytes), X, y, model_cfg=model_cfg, data_cfg=data_cfg)


def train_local(
    module: nn.Module,
    data: LocalData,
    cfg: TrainConfig,
    *,
    seed: int,
    prox_mu: float = 0.0,
) -> dict[str, float]:
    """Train ``module`` in place on the cluster's data.

    Args:
        module: the model, holding the global weights on entry.
        data: the cluster's training (and optional local test) data.
        cfg: epochs, batch size and optimizer.
        seed: seeds the shuffles (and torch's RNG for modules that draw, e.g. dropout).
        prox_mu: FedProx's μ; 0 trains plainly.

    Returns:
        Metrics: ``train_loss`` and ``train_accuracy`` of the trained model on the local
        training data, ``train_loss_last_epoch`` (mean over the last epoch's batches), and
        ``test_loss``/``test_accuracy`` when the cluster has local test data.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    X, y = _tensors(data.X_train, data.y_train, _input_dtype(module))
    optimizer = _optimizer(module, cfg)
    anchor = [p.detach().clone() for p in module.parameters()] if prox_mu > 0 else []
    module.train()
    n = len(y)
    last_epoch = 0.0
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = F.cross_entropy(module(X[idx]), y[idx])
            if anchor:
                prox = sum(
                    ((p - a) ** 2).sum() for p, a in zip(module.parameters(), anchor, strict=True)
                )
                loss = loss + 0.5 * prox_mu * prox
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            total += loss.item() * len(idx)
        last_epoch = total / n
    metrics = {
        f"train_{k}": v for k, v in evaluate_module(module, data.X_train, data.y_train).items()
    }
    metrics["train_loss_last_epoch"] = last_epoch
    if data.X_test is not None and data.y_test is not None:
        metrics.update(
            {f"test_{k}": v for k, v in evaluate_module(module, data.X_test, data.y_test).items()}
        )
    return metrics


def train_centralized(
    model_cfg: Mapping[str, Any],
    data_cfg: Mapping[str, Any],
    cfg: TrainConfig,
    *,
    seed: int = 0,
) -> dict[str, float]:
    """The centralized baseline: the same model and optimizer on the whole training part.

    Starts from round 0's weights (``initial_model_bytes``), trains ``cfg.epochs`` epochs
    on the built-in set's full 75%, and evaluates on the held-out 25%: the figure federated
    runs of the same protocol are compared with.

    Returns:
        ``{"accuracy": fraction, "loss": mean cross-entropy}`` on the held-out test set.
    """
    split = builtin_split(data_cfg)
    module = load_tensors(
        build_model(model_cfg, data_cfg), bytes_to_tensors(initial_model_bytes(model_cfg, data_cfg))
    )
    data = LocalData(split.X_train, split.y_train, None, None, split.num_classes)
    train_local(module, data, cfg, seed=seed)
    return evaluate_module(module, split.X_test, split.y_test)
