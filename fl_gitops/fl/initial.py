"""Round 0's global model, built without torch so that rendering knows its digest offline.

The renderer must put round 1's ``globalModel.digest`` into every cluster's round config,
and the reconcile job must write the matching bytes to the store; neither imports torch.
So the built-in models' architectures are described here as plain tensor specs (names,
shapes, fan-in), the torch modules in ``models`` are built from the same specs, and the
initial weights are drawn with numpy's PCG64 from ``model.seed`` with the distribution
torch uses by default for Linear and Conv2d (uniform in ±1/sqrt(fan_in)). The bytes are a
safetensors file with sorted names and no metadata: the same config gives the same digest
on any machine.

A user model (an entrypoint) cannot be built without running the user's torch code, so it
needs a checkpoint; ``models.init_model_from_entrypoint`` makes one. A checkpoint is
verified against the digest the blueprint names; a torch ``.pt`` checkpoint is converted
through ``torch.load(weights_only=True)``, never unpickled freely.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fl_gitops.errors import InputError
from fl_gitops.fl.data import data_dims
from fl_gitops.tensors import HeaderError, load_bytes, serialize

__all__ = [
    "TensorSpec",
    "builtin_args",
    "builtin_specs",
    "bytes_to_tensors",
    "checkpoint_model_bytes",
    "digest_of",
    "initial_model_bytes",
    "initial_model_digest",
    "read_checkpoint",
    "tensors_to_bytes",
]

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
_PICKLE_MAGIC = b"\x80"  # the legacy torch.save format starts with a pickle protocol opcode


@dataclass(frozen=True)
class TensorSpec:
    """One parameter of a built-in model: its state_dict name, shape and fan-in."""

    name: str
    shape: tuple[int, ...]
    fan_in: int


_ARG_DEFAULTS: dict[str, dict[str, int]] = {
    "logreg": {},
    "mlp": {"hidden": 64, "layers": 1},
    "cnn": {"channels": 8},
}
_DIM_ARGS = ("in_features", "num_classes")


def builtin_args(
    name: str, args: Mapping[str, Any], *, source: str = "<model>", path: str = "model.args"
) -> dict[str, int]:
    """Check a built-in model's args and fill in defaults.

    ``logreg`` takes none; ``mlp`` takes ``hidden`` (width, default 64) and ``layers``
    (hidden layers, default 1); ``cnn`` takes ``channels`` (first conv's channels, default
    8). All accept ``in_features`` and ``num_classes``, needed only when the data is a user
    entrypoint whose sizes cannot be known without loading it.

    Raises:
        InputError: an unknown arg, or one that is not a positive integer.
    """
    defaults = _ARG_DEFAULTS[name]
    allowed = set(defaults) | set(_DIM_ARGS)
    out = dict(defaults)
    for key, value in args.items():
        if key not in allowed:
            raise InputError(
                f"{source}: {path}.{key}: unknown arg of the {name} model "
                f"(expected one of: {', '.join(sorted(allowed))})"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{source}: {path}.{key}: expected an integer >= 1, got {value!r}")
        out[key] = value
    return out


def builtin_specs(
    name: str, args: Mapping[str, int], in_features: int, num_classes: int
) -> list[TensorSpec]:
    """The tensors of a built-in model, in the order torch registers them.

    Args:
        name: ``logreg``, ``mlp`` or ``cnn``.
        args: the model's args, as returned by ``builtin_args``.
        in_features: input features (the CNN reads them as a square single-channel image).
        num_classes: output classes.

    Returns:
        One TensorSpec per parameter, named as in the torch module's state_dict.

    Raises:
        InputError: the CNN's input is not a square image of side >= 4.
    """
    specs: list[TensorSpec] = []

    def linear(prefix: str, n_in: int, n_out: int) -> None:
        specs.append(TensorSpec(f"{prefix}.weight", (n_out, n_in), n_in))
        specs.append(TensorSpec(f"{prefix}.bias", (n_out,), n_in))

    def conv(prefix: str, c_in: int, c_out: int, k: int) -> None:
        specs.append(TensorSpec(f"{prefix}.weight", (c_out, c_in, k, k), c_in * k * k))
        specs.append(TensorSpec(f"{prefix}.bias", (c_out,), c_in * k * k))

    if name == "logreg":
        linear("linear", in_features, num_classes)
    elif name == "mlp":
        width = in_features
        for i in range(args["layers"]):
            linear(f"hidden.{i}", width, args["hidden"])
            width = args["hidden"]
        linear("out", width, num_classes)
    elif name == "cnn":
        side = cnn_side(in_features)
        c = args["channels"]
        conv("conv1", 1, c, 3)
        conv("conv2", c, 2 * c, 3)
        linear("fc", 2 * c * (side // 4) ** 2, num_classes)
    else:  # validated before; a new built-in must be added here
        raise InputError(f"unknown built-in model {name!r}")
    return specs


def cnn_side(in_features: int) -> int:
    """The side of the square image the CNN reads from ``in_features`` values."""
    side = math.isqrt(in_features)
    if side * side != in_features or side < 4:
        raise InputError(
            f"the cnn model needs a square single-channel image of side >= 4 "
            f"(e.g. 64 features for 8x8), got {in_features} features"
        )
    return side


def model_dims(
    model_cfg: Mapping[str, Any], data_cfg: Mapping[str, Any], *, source: str = "<model>"
) -> tuple[dict[str, int], int, int]:
    """A built-in model's args with defaults, its input features and its output classes."""
    args = builtin_args(model_cfg["builtin"], model_cfg.get("args", {}), source=source)
    in_features, num_classes = data_dims(data_cfg, args, source=source)
    return args, in_features, num_classes


def tensors_to_bytes(tensors: Mapping[str, np.ndarray]) -> bytes:
    """Serialize tensors as safetensors, deterministically (sorted names, no metadata)."""
    return serialize({k: np.ascontiguousarray(tensors[k]) for k in sorted(tensors)})


def bytes_to_tensors(data: bytes) -> dict[str, np.ndarray]:
    """Parse safetensors bytes into numpy arrays (never unpickles).

    Raises:
        HeaderError: the bytes are not well-formed safetensors (the message says why).
    """
    return load_bytes(data)


def digest_of(data: bytes) -> str:
    """``sha256:<hex>`` of some bytes: how models and checkpoints are named."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _seeded_weights(specs: list[TensorSpec], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(seed))
    out: dict[str, np.ndarray] = {}
    for spec in specs:  # draw in registration order: the order is part of the result
        bound = 1.0 / math.sqrt(spec.fan_in)
        out[spec.name] = rng.uniform(-bound, bound, size=spec.shape).astype(np.float32)
    return out


def read_checkpoint(checkpoint_cfg: Mapping[str, Any]) -> bytes:
    """Read a checkpoint's bytes from its URI through fsspec (a side effect: I/O).

    Raises:
        InputError: the URI cannot be read.
    """
    import fsspec

    uri = str(checkpoint_cfg["uri"])
    try:
        with fsspec.open(uri, "rb") as fh:
            return bytes(fh.read())
    except (OSError, ValueError, ImportError) as exc:
        raise InputError(f"model.checkpoint.uri: cannot read {uri}: {exc}") from exc


def checkpoint_model_bytes(
    data: bytes,
    digest: str,
    *,
    source: str = "model.checkpoint",
    expected: list[TensorSpec] | None = None,
) -> bytes:
    """Verify a checkpoint against its digest and return it as safetensors bytes.

    A safetensors checkpoint is returned unchanged (so the model's digest is the one the
    blueprint names). A torch checkpoint (``torch.save`` of a state_dict) is loaded with
    ``weights_only=True`` and converted, which needs torch.

    Args:
        data: the checkpoint file's bytes.
        digest: the ``sha256:<hex>`` the blueprint names for it.
        source: where the checkpoint was named, for messages.
        expected: for a built-in model, the tensors the checkpoint must hold.

    Raises:
        InputError: digest mismatch, an unreadable file, or tensors that do not fit.
    """
    actual = digest_of(data)
    if actual != digest:
        raise InputError(
            f"{source}: digest mismatch: the blueprint names {digest}, the file is {actual}"
        )
    try:
        tensors = bytes_to_tensors(data)
        out = data
    except HeaderError:
        if not (data.startswith(_ZIP_MAGIC) or data.startswith(_PICKLE_MAGIC)):
            raise InputError(
                f"{source}: neither a safetensors file nor a torch checkpoint"
            ) from None
        from fl_gitops.fl.models import torch_checkpoint_to_tensors  # needs torch

        tensors = torch_checkpoint_to_tensors(data, source=source)
        out = tensors_to_bytes(tensors)
    if expected is not None:
        want = {s.name: s.shape for s in expected}
        have = {k: tuple(v.shape) for k, v in tensors.items()}
        if want != have:
            missing = sorted(set(want) - set(have))
            extra = sorted(set(have) - set(want))
            wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
            detail = "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unexpected {', '.join(extra)}" if extra else "",
                    ", ".join(
                        f"{k} has shape {list(have[k])}, expected {list(want[k])}" for k in wrong
                    ),
                )
                if part
            )
            raise InputError(f"{source}: the checkpoint does not fit the model: {detail}")
        bad = sorted(k for k, v in tensors.items() if v.dtype != np.float32)
        if bad:
            raise InputError(
                f"{source}: tensor {bad[0]} is {tensors[bad[0]].dtype}, expected float32"
            )
    return out


def initial_model_bytes(
    model_cfg: Mapping[str, Any],
    data_cfg: Mapping[str, Any],
    *,
    read: Callable[[Mapping[str, Any]], bytes] = read_checkpoint,
    source: str = "<blueprint>",
) -> bytes:
    """Round 0's global model as safetensors bytes.

    A built-in model without a checkpoint is drawn from ``model.seed`` (default 0) with
    numpy alone. A model with ``checkpoint`` uses the checkpoint's bytes after checking
    them. A user entrypoint model needs a checkpoint.

    Args:
        model_cfg: the ``model`` object (round config or blueprint).
        data_cfg: the ``data`` object, for input and output sizes (nothing is loaded).
        read: reads a checkpoint's bytes (injected so tests and the renderer decide I/O).
        source: the file the configs came from, for messages.

    Returns:
        The safetensors bytes of the global model for round 1.

    Raises:
        InputError: bad args, an entrypoint model without a checkpoint, a bad checkpoint.
    """
    checkpoint = model_cfg.get("checkpoint")
    if "builtin" in model_cfg:
        args, in_features, num_classes = model_dims(model_cfg, data_cfg, source=source)
        specs = builtin_specs(model_cfg["builtin"], args, in_features, num_classes)
        if checkpoint is None:
            return tensors_to_bytes(_seeded_weights(specs, int(model_cfg.get("seed", 0))))
        return checkpoint_model_bytes(
            read(checkpoint),
            checkpoint["digest"],
            source=f"{source}: model.checkpoint",
            expected=specs,
        )
    if checkpoint is None:
        raise InputError(
            f"{source}: model.checkpoint: the model {model_cfg.get('entrypoint')!r} is user code, "
            "so round 0's weights cannot be built without running it; give model.checkpoint "
            "(uri and digest of a safetensors file), made for example with `fl-gitops init-model`"
        )
    return checkpoint_model_bytes(
        read(checkpoint), checkpoint["digest"], source=f"{source}: model.checkpoint"
    )


def initial_model_digest(
    model_cfg: Mapping[str, Any],
    data_cfg: Mapping[str, Any],
    *,
    read: Callable[[Mapping[str, Any]], bytes] = read_checkpoint,
    source: str = "<blueprint>",
) -> str:
    """The digest of round 0's model, without reading anything when it can be known.

    A ``.safetensors`` checkpoint's digest is the one named; a built-in model's is computed
    from its seeded bytes. Any other checkpoint (a torch ``.pt``) is converted, so its model
    digest differs from the file's and is computed by reading it: converting it once and
    naming the safetensors file keeps rendering offline.
    """
    checkpoint = model_cfg.get("checkpoint")
    if checkpoint is not None and str(checkpoint["uri"]).endswith(".safetensors"):
        return str(checkpoint["digest"])
    return digest_of(initial_model_bytes(model_cfg, data_cfg, read=read, source=source))
