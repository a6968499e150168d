"""Built-in and user torch modules, and weights moved between torch and numpy."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fl_gitops.errors import InputError  # noqa: E402
from fl_gitops.models import bytes_to_tensors, digest_of, initial_model_bytes  # noqa: E402
from fl_gitops.models.torch import (  # noqa: E402
    build_model,
    init_model_from_entrypoint,
    load_tensors,
    module_to_tensors,
)

DIGITS = {"builtin": "digits"}


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    """A user package on sys.path with a model function, as a blueprint would name it."""
    pkg = tmp_path / "mynets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tiny.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            def build(width=8, classes=10):
                return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, classes))

            def not_a_module():
                return 42
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "mynets.tiny"


def test_module_to_tensors_is_sorted_float32_contiguous() -> None:
    module = build_model({"builtin": "cnn"}, DIGITS)
    tensors = module_to_tensors(module)
    assert list(tensors) == sorted(module.state_dict())
    assert all(t.dtype == np.float32 and t.flags.c_contiguous for t in tensors.values())


def test_tensors_round_trip_through_a_module() -> None:
    tensors = bytes_to_tensors(initial_model_bytes({"builtin": "mlp", "seed": 2}, DIGITS))
    module = load_tensors(build_model({"builtin": "mlp"}, DIGITS), tensors)
    back = module_to_tensors(module)
    assert all(np.array_equal(back[k], tensors[k]) for k in tensors)


def test_loading_tensors_of_another_architecture_names_the_mismatch() -> None:
    tensors = bytes_to_tensors(
        initial_model_bytes({"builtin": "mlp", "args": {"hidden": 16}}, DIGITS)
    )
    module = build_model({"builtin": "mlp", "args": {"hidden": 32}}, DIGITS)
    with pytest.raises(InputError) as err:
        load_tensors(module, tensors, source="global model sha256:x")
    assert str(err.value) == (
        "global model sha256:x does not fit the model: "
        "hidden.0.bias has shape [16], the model expects [32]; "
        "hidden.0.weight has shape [16, 64], the model expects [32, 64]; "
        "out.weight has shape [10, 16], the model expects [10, 32]"
    )


def test_user_model_entrypoint_is_called_with_its_args(user_models) -> None:
    module = build_model({"entrypoint": f"{user_models}:build", "args": {"width": 5}}, DIGITS)
    assert tuple(module.state_dict()["0.weight"].shape) == (5, 64)


def test_user_entrypoint_that_is_not_a_module_is_an_input_error(user_models) -> None:
    with pytest.raises(InputError) as err:
        build_model({"entrypoint": f"{user_models}:not_a_module"}, DIGITS, source="round.json")
    assert str(err.value) == (
        "round.json: model.entrypoint mynets.tiny:not_a_module: expected an nn.Module, got int"
    )


def test_missing_user_module_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        build_model({"entrypoint": "no_such_pkg_xyz.nets:build"}, DIGITS, source="round.json")
    assert str(err.value) == (
        "round.json: model.entrypoint: cannot import 'no_such_pkg_xyz.nets': "
        "No module named 'no_such_pkg_xyz'"
    )


def test_init_model_from_entrypoint_is_seeded_and_loads_back(user_models) -> None:
    cfg = {"entrypoint": f"{user_models}:build", "args": {"width": 6}, "seed": 1}
    data = init_model_from_entrypoint(cfg)
    assert init_model_from_entrypoint(cfg) == data
    assert init_model_from_entrypoint({**cfg, "seed": 2}) != data
    # and it serves as the checkpoint a blueprint names
    model = {**cfg, "checkpoint": {"uri": "x", "digest": digest_of(data)}}
    assert initial_model_bytes(model, DIGITS, read=lambda _: data) == data
    load_tensors(build_model(cfg, DIGITS), bytes_to_tensors(data))
