"""The torch side of the models: built-in modules, user modules, and weights as numpy.

The store, the checks and the strategies handle models as dicts of numpy tensors
(safetensors files, float32 or BF16); only training and evaluation need torch. This module
turns a model config into an ``nn.Module`` and moves weights between the two worlds. The
built-in modules are laid out from ``fl_gitops.models.builtin_specs`` so that the torch-free
round-0 weights load into them with ``strict=True``. This module imports the numpy side
(``fl_gitops.models``), never the other way.

A user model is an entrypoint ``package.module:function`` called with the config's
``args`` that returns an ``nn.Module``; its round-0 weights come from a checkpoint, which
``init_model_from_entrypoint`` can make.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from fl_gitops.errors import InputError
from fl_gitops.models import builtin_specs, cnn_side, model_dims, tensors_to_bytes
from fl_gitops.plugins import resolve_entrypoint
from fl_gitops.tensors import BF16

__all__ = [
    "CNN",
    "MLP",
    "LogReg",
    "build_model",
    "init_model_from_entrypoint",
    "load_tensors",
    "module_to_tensors",
]


class LogReg(nn.Module):
    """Multinomial logistic regression: one linear layer on the flattened input."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))  # type: ignore[no-any-return]


class MLP(nn.Module):
    """``layers`` hidden ReLU layers of width ``hidden``, then a linear output."""

    def __init__(
        self, in_features: int, num_classes: int, hidden: int = 64, layers: int = 1
    ) -> None:
        super().__init__()
        widths = [in_features] + [hidden] * layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.out(h)  # type: ignore[no-any-return]


class CNN(nn.Module):
    """Two 3x3 conv + ReLU + 2x2 max-pool blocks and a linear head, for small square images.

    The input is ``side*side`` features (digits: 64, an 8x8 image) read as one channel.
    """

    def __init__(self, in_features: int, num_classes: int, channels: int = 8) -> None:
        super().__init__()
        self.side = cnn_side(in_features)
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.fc = nn.Linear(2 * channels * (self.side // 4) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(-1, 1, self.side, self.side)
        h = torch.max_pool2d(torch.relu(self.conv1(h)), 2)
        h = torch.max_pool2d(torch.relu(self.conv2(h)), 2)
        return self.fc(h.flatten(1))  # type: ignore[no-any-return]


def build_model(
    model_cfg: Mapping[str, Any], data_cfg: Mapping[str, Any], *, source: str = "<model>"
) -> nn.Module:
    """Build the torch module a model config describes (weights are set separately).

    Args:
        model_cfg: the ``model`` object: a built-in with args, or an entrypoint.
        data_cfg: the ``data`` object, for a built-in model's input and output sizes.
        source: the config file, for messages.

    Returns:
        The module, in training mode, on the CPU.

    Raises:
        InputError: bad args, or an entrypoint that fails or does not return an nn.Module.
    """
    if "builtin" in model_cfg:
        name = model_cfg["builtin"]
        args, in_features, num_classes = model_dims(model_cfg, data_cfg, source=source)
        if name == "logreg":
            module: nn.Module = LogReg(in_features, num_classes)
        elif name == "mlp":
            module = MLP(in_features, num_classes, hidden=args["hidden"], layers=args["layers"])
        else:
            module = CNN(in_features, num_classes, channels=args["channels"])
        want = [(s.name, s.shape) for s in builtin_specs(name, args, in_features, num_classes)]
        have = [(k, tuple(v.shape)) for k, v in module.state_dict().items()]
        if want != have:  # the spec and the module must never drift apart
            raise AssertionError(f"built-in {name}: module {have} != spec {want}")
        return module
    spec = model_cfg["entrypoint"]
    fn = resolve_entrypoint(spec, source=source, path="model.entrypoint")
    try:
        module = fn(**model_cfg.get("args", {}))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"{source}: model.entrypoint {spec}: failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(module, nn.Module):
        raise InputError(
            f"{source}: model.entrypoint {spec}: expected an nn.Module, got {type(module).__name__}"
        )
    return module


def module_to_tensors(module: nn.Module) -> dict[str, np.ndarray]:
    """A module's state_dict as contiguous numpy arrays, sorted by name.

    A bfloat16 entry (one that came from a BF16 global model, see :func:`load_tensors`) is
    written as BF16, its bits as they are: the update is in the global model's dtype, as
    the aggregation requires, at half the bytes. Every other entry (buffers too) is stored
    as float32: the store and the strategies handle those two, and ``load_state_dict``
    casts back into the module's own dtypes.
    """
    state = module.state_dict()
    return {name: _to_numpy(state[name].detach().cpu()) for name in sorted(state)}


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        return np.ascontiguousarray(t.contiguous().view(torch.int16).numpy()).view(BF16)
    return np.ascontiguousarray(t.to(torch.float32).numpy())


def _to_torch(v: np.ndarray) -> torch.Tensor:
    if v.dtype == BF16:
        return torch.from_numpy(np.array(v.view(np.int16), copy=True)).view(torch.bfloat16)
    return torch.from_numpy(np.array(v, copy=True))


def _make_bfloat16(module: nn.Module, name: str) -> None:
    """Turn one state_dict entry of the module (a parameter or a buffer) into bfloat16, so
    that it trains in the global model's dtype and is written back in it."""
    owner, _, attr = name.rpartition(".")
    sub = module.get_submodule(owner)
    current = getattr(sub, attr)
    if current.dtype == torch.bfloat16:
        return
    if isinstance(current, nn.Parameter):
        current.data = current.data.to(torch.bfloat16)
    else:
        sub._buffers[attr] = current.to(torch.bfloat16)


def load_tensors(
    module: nn.Module, tensors: Mapping[str, np.ndarray], *, source: str = "the global model"
) -> nn.Module:
    """Load numpy tensors into a module with ``strict=True``.

    A BF16 tensor makes the module's entry bfloat16 (torch trains in it natively), so that
    the cluster trains the model it was given and :func:`module_to_tensors` writes a BF16
    update; every other tensor is cast into the module's own dtype.

    Raises:
        InputError: names or shapes differ from the module's (the model config and the
            global model disagree).
    """
    state = module.state_dict()
    missing = sorted(set(state) - set(tensors))
    extra = sorted(set(tensors) - set(state))
    wrong = sorted(
        k for k in set(state) & set(tensors) if tuple(state[k].shape) != tuple(tensors[k].shape)
    )
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        for k in wrong:
            parts.append(
                f"{k} has shape {list(tensors[k].shape)}, the model expects {list(state[k].shape)}"
            )
        raise InputError(f"{source} does not fit the model: {'; '.join(parts)}")
    for k, v in tensors.items():
        if v.dtype == BF16:
            _make_bfloat16(module, k)
    state = module.state_dict()
    module.load_state_dict(
        {k: _to_torch(v).to(state[k].dtype) for k, v in tensors.items()},
        strict=True,
    )
    return module


def init_model_from_entrypoint(
    model_cfg: Mapping[str, Any], data_cfg: Mapping[str, Any] | None = None
) -> bytes:
    """Round-0 weights of any model (a user entrypoint included) by running its torch init.

    Seeds torch with ``model.seed`` (default 0), builds the module and serializes its
    state_dict as deterministic safetensors bytes: a checkpoint to name in the blueprint.
    """
    torch.manual_seed(int(model_cfg.get("seed", 0)))
    module = build_model(model_cfg, data_cfg or {})
    return tensors_to_bytes(module_to_tensors(module))
