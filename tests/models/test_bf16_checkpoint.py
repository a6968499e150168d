"""A BF16 model's round 0: its checkpoint, safetensors or torch, is taken as BF16."""

from __future__ import annotations

import io

import numpy as np
import pytest

from fl_gitops.errors import InputError
from fl_gitops.models import (
    bytes_to_tensors,
    checkpoint_model_bytes,
    digest_of,
    initial_model_bytes,
    tensors_to_bytes,
)
from fl_gitops.tensors import BF16, narrow, parse_header

DIGITS = {"builtin": "digits"}
MLP = {"builtin": "mlp", "seed": 4}


def bf16_checkpoint() -> tuple[dict[str, np.ndarray], bytes]:
    tensors = {k: narrow(v) for k, v in bytes_to_tensors(initial_model_bytes(MLP, DIGITS)).items()}
    return tensors, tensors_to_bytes(tensors)


def test_a_bf16_safetensors_checkpoint_of_a_builtin_model_is_its_round_0_unchanged() -> None:
    _, data = bf16_checkpoint()
    model = {"builtin": "mlp", "checkpoint": {"uri": "x", "digest": digest_of(data)}}
    out = initial_model_bytes(model, DIGITS, read=lambda _: data, source="bp.yaml")
    assert out == data
    assert {t.dtype for t in parse_header(out, len(out)).tensors.values()} == {"BF16"}


def test_a_torch_bfloat16_checkpoint_becomes_bf16_bit_for_bit() -> None:
    torch = pytest.importorskip("torch")
    tensors, _ = bf16_checkpoint()
    state = {
        k: torch.from_numpy(np.array(v.view(np.int16))).view(torch.bfloat16)
        for k, v in tensors.items()
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    out = bytes_to_tensors(checkpoint_model_bytes(data, digest_of(data)))
    assert all(v.dtype == BF16 for v in out.values())
    assert all(out[k].tobytes() == tensors[k].tobytes() for k in tensors)


def test_a_checkpoint_in_another_dtype_is_refused_naming_both_it_accepts() -> None:
    data = tensors_to_bytes(
        {
            k: v.astype(np.float16)
            for k, v in bytes_to_tensors(initial_model_bytes(MLP, DIGITS)).items()
        }
    )
    model = {"builtin": "mlp", "checkpoint": {"uri": "x", "digest": digest_of(data)}}
    with pytest.raises(InputError) as err:
        initial_model_bytes(model, DIGITS, read=lambda _: data, source="bp.yaml")
    assert "expected float32 or bfloat16 (BF16)" in str(err.value)
