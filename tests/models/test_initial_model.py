"""Round 0's weights: built without torch, loadable strictly into the torch modules."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys

import numpy as np
import pytest

from fl_gitops.errors import InputError
from fl_gitops.models import (
    bytes_to_tensors,
    checkpoint_model_bytes,
    digest_of,
    initial_model_bytes,
    initial_model_digest,
    tensors_to_bytes,
)

DIGITS = {"builtin": "digits", "args": {}, "partition": {"kind": "iid", "seed": 0}}
SYNTH = {"builtin": "synthetic", "args": {"n_features": 36, "n_classes": 3, "seed": 1}}
MODELS = [
    {"builtin": "logreg"},
    {"builtin": "mlp", "args": {"hidden": 32}},
    {"builtin": "mlp", "args": {"hidden": 16, "layers": 3}, "seed": 5},
    {"builtin": "cnn", "args": {"channels": 4}},
]


@pytest.mark.parametrize("data_cfg", [DIGITS, SYNTH], ids=["digits", "synthetic"])
@pytest.mark.parametrize("model_cfg", MODELS, ids=lambda m: m["builtin"])
def test_initial_weights_load_strictly_into_the_torch_module(model_cfg, data_cfg) -> None:
    torch = pytest.importorskip("torch")
    from fl_gitops.models.torch import build_model

    tensors = bytes_to_tensors(initial_model_bytes(model_cfg, data_cfg))
    module = build_model(model_cfg, data_cfg)
    state = module.state_dict()
    assert list(tensors) == sorted(state)
    for name, value in state.items():
        assert tensors[name].dtype == np.float32
        assert tensors[name].shape == tuple(value.shape)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    out = module(torch.zeros(2, 64 if data_cfg is DIGITS else 36))
    assert tuple(out.shape) == (2, 10 if data_cfg is DIGITS else 3)


def test_initial_weights_follow_torch_default_init_bounds() -> None:
    tensors = bytes_to_tensors(
        initial_model_bytes({"builtin": "mlp", "args": {"hidden": 32}}, DIGITS)
    )
    # torch's Linear default: uniform in ±1/sqrt(fan_in), weights and biases alike
    for name, fan_in in [("hidden.0.weight", 64), ("hidden.0.bias", 64), ("out.weight", 32)]:
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(tensors[name]).max() <= bound
        assert np.abs(tensors[name]).max() > 0.9 * bound


def test_same_seed_gives_the_same_bytes_and_another_seed_other_bytes() -> None:
    m = {"builtin": "mlp", "args": {"hidden": 32}, "seed": 3}
    first = initial_model_bytes(m, DIGITS)
    assert initial_model_bytes(dict(m), dict(DIGITS)) == first
    assert initial_model_bytes({**m, "seed": 4}, DIGITS) != first
    assert initial_model_digest(m, DIGITS) == "sha256:" + hashlib.sha256(first).hexdigest()


def test_initial_model_does_not_import_torch_or_sklearn() -> None:
    code = (
        "import sys\n"
        "from fl_gitops.models import initial_model_digest\n"
        "print(initial_model_digest({'builtin': 'cnn'}, {'builtin': 'digits'}))\n"
        "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules, 'heavy import'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("sha256:")


def test_entrypoint_model_without_checkpoint_explains_what_is_needed() -> None:
    with pytest.raises(InputError) as err:
        initial_model_bytes(
            {"entrypoint": "mypkg.nets:build", "args": {}}, DIGITS, source="bp.yaml"
        )
    assert str(err.value) == (
        "bp.yaml: model.checkpoint: the model 'mypkg.nets:build' is user code, so round 0's "
        "weights cannot be built without running it; give model.checkpoint (uri and digest "
        "of a safetensors file), made for example with `fl-gitops init-model`"
    )


def test_unknown_model_arg_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        initial_model_bytes({"builtin": "mlp", "args": {"hiden": 32}}, DIGITS, source="bp.yaml")
    assert str(err.value) == (
        "bp.yaml: model.args.hiden: unknown arg of the mlp model "
        "(expected one of: hidden, in_features, layers, num_classes)"
    )


def test_cnn_on_non_square_input_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        initial_model_bytes(
            {"builtin": "cnn"}, {"builtin": "synthetic", "args": {"n_features": 20}}
        )
    assert str(err.value) == (
        "the cnn model needs a square single-channel image of side >= 4 "
        "(e.g. 64 features for 8x8), got 20 features"
    )


def test_safetensors_checkpoint_is_used_unchanged_after_its_digest_is_checked(tmp_path) -> None:
    seeded = initial_model_bytes({"builtin": "logreg", "seed": 9}, DIGITS)
    path = tmp_path / "ck.safetensors"
    path.write_bytes(seeded)
    model = {
        "builtin": "logreg",
        "checkpoint": {"uri": f"file://{path}", "digest": digest_of(seeded)},
    }
    assert initial_model_bytes(model, DIGITS) == seeded
    assert initial_model_digest(model, DIGITS) == digest_of(seeded)


def test_checkpoint_with_the_wrong_digest_is_refused() -> None:
    data = tensors_to_bytes({"w": np.zeros(2, np.float32)})
    wrong = "sha256:" + "0" * 64
    with pytest.raises(InputError) as err:
        checkpoint_model_bytes(data, wrong, source="bp.yaml: model.checkpoint")
    assert str(err.value) == (
        f"bp.yaml: model.checkpoint: digest mismatch: the blueprint names {wrong}, "
        f"the file is {digest_of(data)}"
    )


def test_checkpoint_that_does_not_fit_the_builtin_model_is_refused() -> None:
    data = tensors_to_bytes({"linear.weight": np.zeros((10, 63), np.float32)})
    model = {"builtin": "logreg", "checkpoint": {"uri": "x", "digest": digest_of(data)}}
    with pytest.raises(InputError) as err:
        initial_model_bytes(model, DIGITS, read=lambda _: data, source="bp.yaml")
    assert str(err.value) == (
        "bp.yaml: model.checkpoint: the checkpoint does not fit the model: missing "
        "linear.bias; linear.weight has shape [10, 63], expected [10, 64]"
    )


def test_torch_checkpoint_is_read_weights_only_and_converted() -> None:
    torch = pytest.importorskip("torch")
    from fl_gitops.models.torch import build_model

    module = build_model({"builtin": "logreg"}, DIGITS)
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    data = buf.getvalue()
    out = checkpoint_model_bytes(data, digest_of(data))
    tensors = bytes_to_tensors(out)
    assert np.array_equal(tensors["linear.weight"], module.linear.weight.detach().numpy())


def test_torch_checkpoint_holding_arbitrary_objects_is_refused() -> None:
    torch = pytest.importorskip("torch")

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2), "x": Evil()}, buf)
    data = buf.getvalue()
    with pytest.raises(InputError) as err:
        checkpoint_model_bytes(data, digest_of(data), source="ck")
    assert str(err.value).startswith("ck: not a weights-only torch checkpoint: ")


def test_a_checkpoint_that_is_neither_format_is_refused() -> None:
    data = b"hello, not a model"
    with pytest.raises(InputError) as err:
        checkpoint_model_bytes(data, digest_of(data), source="ck")
    assert str(err.value) == "ck: neither a safetensors file nor a torch checkpoint"
