"""The round config a cluster's Job reads, checked field by field before any work starts.

The renderer writes one JSON document per cluster and round (the format is fixed in
docs/contracts.md); ``fl-gitops client`` reads it. A config that does not fit the contract
must fail before the global model is fetched, with a message naming the file, the field and
what was expected, so that a person reading the Job's log can fix the blueprint. The model
and data parts are also checked on their own by the renderer's side (``fl_gitops.models``),
so their validators are public.

Unknown keys at the top level are ignored (a newer renderer may add some); inside the model,
data, train and strategy parts they are rejected, since a misspelled option silently ignored
would train something other than what the blueprint says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fl_gitops.contracts import API_VERSION
from fl_gitops.errors import InputError
from fl_gitops.tensors import is_digest

__all__ = [
    "API_VERSION",
    "BUILTIN_DATA",
    "BUILTIN_MODELS",
    "KIND",
    "OptimizerConfig",
    "RoundConfig",
    "TrainConfig",
    "load_round_config",
    "parse_round_config",
    "validate_data_config",
    "validate_model_config",
]

KIND = "RoundConfig"
BUILTIN_MODELS = ("logreg", "mlp", "cnn")
BUILTIN_DATA = ("digits", "synthetic")
PARTITION_KINDS = ("iid", "dirichlet", "shards")

_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


@dataclass(frozen=True)
class OptimizerConfig:
    """The local optimizer: ``sgd`` (lr, momentum, weight decay) or ``adam`` (lr, weight decay)."""

    name: str
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Local training: epochs over the cluster's data, batch size, optimizer and seed."""

    epochs: int = 1
    batch_size: int = 32
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig("sgd", 0.05))
    seed: int = 0


@dataclass(frozen=True)
class RoundConfig:
    """One cluster's instructions for one round, after validation.

    ``model`` and ``data`` stay plain dicts (the same shape as in the JSON), because the
    renderer's side passes the blueprint's dicts to the same functions.
    """

    experiment: str
    round: int
    cluster: str
    roster_index: int
    roster_size: int
    store_uri: str
    global_digest: str
    model: dict[str, Any]
    data: dict[str, Any]
    train: TrainConfig
    strategy_name: str
    strategy_options: dict[str, Any]
    source: str = "<round config>"
    # The round's clip when this cluster clips its own update (``dp.clipping: client``).
    client_clip: float | None = None
    # With secure aggregation: the round's ``secureAggregation`` section (the phase and
    # the record's public values), checked by ``client.secure`` where it is used.
    secure: dict[str, Any] | None = None

    @property
    def fedprox_mu(self) -> float:
        """FedProx's proximal weight μ, or 0.0 when the strategy is not FedProx."""
        if self.strategy_name != "fedprox":
            return 0.0
        return float(self.strategy_options.get("mu", 0.0))


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return f"{value}"
    if isinstance(value, float):
        return f"{value!r}"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Checker:
    """Reads fields out of nested dicts and raises InputError naming the file and field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> InputError:
        return InputError(f"{self.source}: {path}: {message}")

    def obj(self, value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {_type_name(value)}")
        return value

    def get(self, parent: Mapping[str, Any], key: str, path: str) -> Any:
        if key not in parent:
            raise self.fail(f"{path}.{key}" if path else key, "required field is missing")
        return parent[key]

    def only(self, value: Mapping[str, Any], path: str, allowed: set[str]) -> None:
        extra = sorted(set(value) - allowed)
        if extra:
            raise self.fail(
                f"{path}.{extra[0]}" if path else extra[0],
                f"unknown field (expected one of: {', '.join(sorted(allowed))})",
            )

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"expected a non-empty string, got {_type_name(value)}")
        return value

    def integer(self, value: object, path: str, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_type_name(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(path, f"expected an integer >= {minimum}, got {value}")
        return value

    def number(self, value: object, path: str, *, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, f"expected a number, got {_type_name(value)}")
        if value != value or value in (float("inf"), float("-inf")):
            raise self.fail(path, f"expected a finite number, got {value}")
        if positive and value <= 0:
            raise self.fail(path, f"expected a number > 0, got {_type_name(value)}")
        if not positive and value < 0:
            raise self.fail(path, f"expected a number >= 0, got {_type_name(value)}")
        return float(value)

    def digest(self, value: object, path: str) -> str:
        if not isinstance(value, str) or not is_digest(value):
            raise self.fail(path, f'expected "sha256:" and 64 hex digits, got {_type_name(value)}')
        return value

    def entrypoint(self, value: object, path: str) -> str:
        if not isinstance(value, str) or not _ENTRYPOINT.match(value):
            raise self.fail(path, f'expected "package.module:function", got {_type_name(value)}')
        return value

    def choice(self, value: object, path: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(path, f"expected one of {', '.join(choices)}, got {_type_name(value)}")
        return str(value)


def validate_model_config(model: object, *, source: str, path: str = "model") -> dict[str, Any]:
    """Check a model config (a built-in or an entrypoint) and return it unchanged.

    Args:
        model: the ``model`` object of a round config or blueprint.
        source: the file it came from, for messages.
        path: the field path of ``model`` in that file.

    Returns:
        The same dict.

    Raises:
        InputError: naming ``source`` and the offending field.
    """
    c = _Checker(source)
    m = c.obj(model, path)
    c.only(m, path, {"builtin", "entrypoint", "args", "seed", "checkpoint"})
    if ("builtin" in m) == ("entrypoint" in m):
        raise c.fail(path, "expected exactly one of builtin or entrypoint")
    if "builtin" in m:
        c.choice(m["builtin"], f"{path}.builtin", BUILTIN_MODELS)
    else:
        c.entrypoint(m["entrypoint"], f"{path}.entrypoint")
    c.obj(m.get("args", {}), f"{path}.args")
    if "seed" in m:
        c.integer(m["seed"], f"{path}.seed", 0)
    if "checkpoint" in m:
        ck = c.obj(m["checkpoint"], f"{path}.checkpoint")
        c.only(ck, f"{path}.checkpoint", {"uri", "digest"})
        c.string(c.get(ck, "uri", f"{path}.checkpoint"), f"{path}.checkpoint.uri")
        c.digest(c.get(ck, "digest", f"{path}.checkpoint"), f"{path}.checkpoint.digest")
    return m


def _validate_partition(c: _Checker, part: object, path: str) -> None:
    p = c.obj(part, path)
    kind = c.choice(c.get(p, "kind", path), f"{path}.kind", PARTITION_KINDS)
    allowed = {"kind", "seed"}
    if kind == "dirichlet":
        allowed.add("alpha")
        c.number(c.get(p, "alpha", path), f"{path}.alpha", positive=True)
    if kind == "shards":
        allowed.add("shardsPerCluster")
        c.integer(c.get(p, "shardsPerCluster", path), f"{path}.shardsPerCluster", 1)
    c.only(p, path, allowed)
    if "seed" in p:
        c.integer(p["seed"], f"{path}.seed", 0)


def validate_data_config(data: object, *, source: str, path: str = "data") -> dict[str, Any]:
    """Check a data config (a built-in with its partition, or an entrypoint with a path).

    Args:
        data: the ``data`` object of a round config or blueprint.
        source: the file it came from, for messages.
        path: the field path of ``data`` in that file.

    Returns:
        The same dict.

    Raises:
        InputError: naming ``source`` and the offending field.
    """
    c = _Checker(source)
    d = c.obj(data, path)
    if ("builtin" in d) == ("entrypoint" in d):
        raise c.fail(path, "expected exactly one of builtin or entrypoint")
    c.obj(d.get("args", {}), f"{path}.args")
    if "builtin" in d:
        c.only(d, path, {"builtin", "args", "partition"})
        c.choice(d["builtin"], f"{path}.builtin", BUILTIN_DATA)
        if "partition" in d:
            _validate_partition(c, d["partition"], f"{path}.partition")
    else:
        c.only(d, path, {"entrypoint", "args", "path"})
        c.entrypoint(d["entrypoint"], f"{path}.entrypoint")
        c.string(c.get(d, "path", path), f"{path}.path")
    return d


def _train_config(c: _Checker, train: object) -> TrainConfig:
    t = c.obj(train, "train")
    c.only(t, "train", {"epochs", "batchSize", "optimizer", "seed"})
    epochs = c.integer(t.get("epochs", 1), "train.epochs", 1)
    batch = c.integer(t.get("batchSize", 32), "train.batchSize", 1)
    seed = c.integer(t.get("seed", 0), "train.seed", 0)
    o = c.obj(t.get("optimizer", {"name": "sgd", "lr": 0.05}), "train.optimizer")
    name = c.choice(c.get(o, "name", "train.optimizer"), "train.optimizer.name", ("sgd", "adam"))
    allowed = {"name", "lr", "weightDecay"} | ({"momentum"} if name == "sgd" else set())
    c.only(o, "train.optimizer", allowed)
    optimizer = OptimizerConfig(
        name=name,
        lr=c.number(c.get(o, "lr", "train.optimizer"), "train.optimizer.lr", positive=True),
        momentum=c.number(o.get("momentum", 0.0), "train.optimizer.momentum"),
        weight_decay=c.number(o.get("weightDecay", 0.0), "train.optimizer.weightDecay"),
    )
    return TrainConfig(epochs=epochs, batch_size=batch, optimizer=optimizer, seed=seed)


def parse_round_config(
    raw: object, *, source: str = "<round config>", cluster: str | None = None
) -> RoundConfig:
    """Validate a round config document and return it typed.

    Args:
        raw: the parsed JSON document.
        source: where it came from (a path), for messages.
        cluster: the cluster name from the environment (``FL_CLUSTER``), used when the
            document has no ``cluster``; when both are given they must agree.

    Returns:
        The validated RoundConfig.

    Raises:
        InputError: naming ``source`` and the offending field.
    """
    c = _Checker(source)
    doc = c.obj(raw, "(document)")
    if doc.get("apiVersion") != API_VERSION:
        raise c.fail(
            "apiVersion", f"expected {API_VERSION}, got {_type_name(doc.get('apiVersion'))}"
        )
    if doc.get("kind") != KIND:
        raise c.fail("kind", f"expected {KIND}, got {_type_name(doc.get('kind'))}")
    if "cluster" in doc:
        name = c.string(doc["cluster"], "cluster")
        if cluster and cluster != name:
            raise c.fail(
                "cluster", f"is {json.dumps(name)} but FL_CLUSTER is {json.dumps(cluster)}"
            )
    elif cluster:
        name = cluster
    else:
        raise c.fail("cluster", "required field is missing (and FL_CLUSTER is not set)")
    size = c.integer(c.get(doc, "rosterSize", ""), "rosterSize", 1)
    index = c.integer(c.get(doc, "rosterIndex", ""), "rosterIndex", 0)
    if index >= size:
        raise c.fail("rosterIndex", f"expected an integer < rosterSize ({size}), got {index}")
    store = c.obj(c.get(doc, "store", ""), "store")
    global_model = c.obj(c.get(doc, "globalModel", ""), "globalModel")
    strategy = c.obj(doc.get("strategy", {"name": "fedavg"}), "strategy")
    c.only(strategy, "strategy", {"name", "options"})
    strategy_name = c.string(c.get(strategy, "name", "strategy"), "strategy.name")
    options = c.obj(strategy.get("options", {}), "strategy.options")
    if strategy_name == "fedprox":
        c.number(options.get("mu", 0.0), "strategy.options.mu")
    client_clip = None
    if "dp" in doc:
        dp = c.obj(doc["dp"], "dp")
        c.only(dp, "dp", {"clipping", "clipNorm"})
        c.choice(c.get(dp, "clipping", "dp"), "dp.clipping", ("client",))
        client_clip = c.number(c.get(dp, "clipNorm", "dp"), "dp.clipNorm", positive=True)
    secure = None
    if "secureAggregation" in doc:
        secure = c.obj(doc["secureAggregation"], "secureAggregation")
    return RoundConfig(
        experiment=c.string(c.get(doc, "experiment", ""), "experiment"),
        round=c.integer(c.get(doc, "round", ""), "round", 1),
        cluster=name,
        roster_index=index,
        roster_size=size,
        store_uri=c.string(c.get(store, "uri", "store"), "store.uri"),
        global_digest=c.digest(c.get(global_model, "digest", "globalModel"), "globalModel.digest"),
        model=validate_model_config(c.get(doc, "model", ""), source=source),
        data=validate_data_config(c.get(doc, "data", ""), source=source),
        train=_train_config(c, doc.get("train", {})),
        strategy_name=strategy_name,
        strategy_options=options,
        source=source,
        client_clip=client_clip,
        secure=secure,
    )


def load_round_config(path: str | Path, *, cluster: str | None = None) -> RoundConfig:
    """Read a round config file and validate it.

    Args:
        path: the JSON file (``FL_ROUND_CONFIG`` in the Job).
        cluster: the cluster name from the environment, if any.

    Returns:
        The validated RoundConfig.

    Raises:
        InputError: the file is missing, is not JSON, or does not fit the contract.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{source}: cannot read the round config: {exc.strerror}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc
    return parse_round_config(raw, source=source, cluster=cluster)
