"""What a built-in model looks like, known without torch and without loading any data.

The renderer must know round 1's global model digest offline, so the built-in models'
architectures are described here as plain tensor specs (names, shapes, fan-in) that the
torch modules in ``fl_gitops.models.torch`` are laid out from, and that round 0's weights
(``_initial``) are drawn for. A model's input features and output classes come from its
data config: the built-in data sets' sizes are known here too (``data_dims``), so that
nothing is loaded to know them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fl_gitops.errors import InputError

__all__ = [
    "DIGITS_CLASSES",
    "DIGITS_FEATURES",
    "TensorSpec",
    "builtin_args",
    "builtin_specs",
    "cnn_side",
    "data_dims",
    "model_dims",
    "synthetic_args",
]

DIGITS_FEATURES = 64
DIGITS_CLASSES = 10
_SYNTHETIC_DEFAULTS = {"n_samples": 1000, "n_features": 20, "n_classes": 2, "seed": 0}


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


def synthetic_args(args: Mapping[str, Any], *, source: str = "<data>") -> dict[str, int]:
    """Check the ``synthetic`` set's args and fill in defaults.

    Raises:
        InputError: an unknown arg, a non-integer, or sizes make_classification refuses.
    """
    allowed = {*_SYNTHETIC_DEFAULTS, "n_informative"}
    out = dict(_SYNTHETIC_DEFAULTS)
    for key, value in args.items():
        if key not in allowed:
            raise InputError(
                f"{source}: data.args.{key}: unknown arg of the synthetic data set "
                f"(expected one of: {', '.join(sorted(allowed))})"
            )
        minimum = 0 if key == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InputError(
                f"{source}: data.args.{key}: expected an integer >= {minimum}, got {value!r}"
            )
        out[key] = value
    if out["n_classes"] < 2:
        raise InputError(
            f"{source}: data.args.n_classes: expected an integer >= 2, got {out['n_classes']}"
        )
    informative = out.get("n_informative", min(out["n_features"], max(2, out["n_features"] // 2)))
    if informative > out["n_features"]:
        raise InputError(
            f"{source}: data.args.n_informative: expected at most n_features "
            f"({out['n_features']}), got {informative}"
        )
    if 2**informative < 2 * out["n_classes"]:
        need = math.ceil(math.log2(2 * out["n_classes"]))
        raise InputError(
            f"{source}: data.args: {out['n_classes']} classes need at least {need} "
            f"informative features, got {informative} (raise n_features or n_informative)"
        )
    out["n_informative"] = informative
    if out["n_samples"] < 4 * out["n_classes"]:
        raise InputError(
            f"{source}: data.args.n_samples: expected at least 4 per class "
            f"({4 * out['n_classes']}), got {out['n_samples']}"
        )
    return out


def data_dims(
    data_cfg: Mapping[str, Any], model_args: Mapping[str, Any], *, source: str = "<data>"
) -> tuple[int, int]:
    """Input features and output classes, known without loading any data.

    Built-in sets know their sizes; a user entrypoint's sizes come from the model's args
    ``in_features`` and ``num_classes``, which are then required.

    Raises:
        InputError: sizes cannot be known, or the model's args contradict the data set.
    """
    if data_cfg.get("builtin") == "digits":
        dims = (DIGITS_FEATURES, DIGITS_CLASSES)
    elif data_cfg.get("builtin") == "synthetic":
        sa = synthetic_args(data_cfg.get("args", {}), source=source)
        dims = (sa["n_features"], sa["n_classes"])
    else:
        missing = [k for k in ("in_features", "num_classes") if k not in model_args]
        if missing:
            raise InputError(
                f"{source}: model.args.{missing[0]}: required when data is an entrypoint "
                "(the sizes of user data are not known before it is loaded)"
            )
        return int(model_args["in_features"]), int(model_args["num_classes"])
    for key, value in zip(("in_features", "num_classes"), dims, strict=True):
        if key in model_args and model_args[key] != value:
            raise InputError(
                f"{source}: model.args.{key}: the {data_cfg['builtin']} data set has "
                f"{value}, got {model_args[key]}"
            )
    return dims
