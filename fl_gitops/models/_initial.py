"""Round 0's global model, built without torch so that rendering knows its digest offline.

The renderer must put round 1's ``globalModel.digest`` into every cluster's round config,
and the reconcile job must write the matching bytes to the store; neither imports torch.
So the built-in models' architectures are described as plain tensor specs (names, shapes,
fan-in: ``_specs``), the torch modules in ``fl_gitops.models.torch`` are built from the same
specs, and the initial weights are drawn with numpy's PCG64 from ``model.seed`` with the
distribution torch uses by default for Linear and Conv2d (uniform in ±1/sqrt(fan_in)). The
bytes are a safetensors file with sorted names and no metadata: the same config gives the
same digest on any machine.

A user model (an entrypoint) cannot be built without running the user's torch code, so it
needs a checkpoint; ``fl_gitops.models.torch.init_model_from_entrypoint`` makes one. A
checkpoint is verified against the digest the blueprint names; a torch ``.pt`` checkpoint
is converted through ``torch.load(weights_only=True)``, never unpickled freely (torch is
imported for that conversion only).
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from fl_gitops.errors import InputError
from fl_gitops.models._specs import TensorSpec, builtin_specs, model_dims
from fl_gitops.tensors import BF16, HeaderError, load_bytes, serialize

__all__ = [
    "bytes_to_tensors",
    "checkpoint_model_bytes",
    "digest_of",
    "initial_model_bytes",
    "initial_model_digest",
    "read_checkpoint",
    "tensors_to_bytes",
    "torch_checkpoint_to_tensors",
]

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
_PICKLE_MAGIC = b"\x80"  # the legacy torch.save format starts with a pickle protocol opcode


def tensors_to_bytes(tensors: Mapping[str, np.ndarray]) -> bytes:
    """Serialize tensors as safetensors, deterministically (sorted names, no metadata)."""
    return serialize({k: np.ascontiguousarray(tensors[k]) for k in sorted(tensors)})


def bytes_to_tensors(data: bytes | bytearray) -> dict[str, np.ndarray]:
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


def torch_checkpoint_to_tensors(
    data: bytes, *, source: str = "model.checkpoint"
) -> dict[str, np.ndarray]:
    """Read a ``torch.save``'d state_dict with ``weights_only=True`` (no arbitrary unpickling).

    Accepts a state_dict, or a dict holding one under ``state_dict``. bfloat16 tensors
    stay BF16; every other tensor becomes float32.

    Raises:
        InputError: the file is not a weights-only checkpoint of tensors.
    """
    import torch  # only a torch checkpoint needs it

    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
        raise InputError(f"{source}: not a weights-only torch checkpoint: {exc}") from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        raise InputError(f"{source}: expected a state_dict (a dict of tensor name to tensor)")
    return {str(k): _numpy_of(v.detach(), torch) for k, v in sorted(obj.items())}


def _numpy_of(t: Any, torch: Any) -> np.ndarray:
    """A checkpoint's tensor as numpy: bfloat16 kept as BF16, its bits unchanged (a
    bf16 model's round 0 is the model, not a float32 copy of twice the bytes); anything
    else as float32."""
    if t.dtype == torch.bfloat16:
        return np.ascontiguousarray(t.contiguous().view(torch.int16).numpy()).view(BF16)
    return np.ascontiguousarray(t.to(torch.float32).numpy())


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
        bad = sorted(k for k, v in tensors.items() if v.dtype not in (np.float32, BF16))
        if bad:
            raise InputError(
                f"{source}: tensor {bad[0]} is {tensors[bad[0]].dtype}, expected float32 "
                "or bfloat16 (BF16)"
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
