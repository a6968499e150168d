"""Where a cluster's training data comes from: the built-in sets, or the user's own code.

Built-in sets follow one protocol so that figures compare with other tools' runs of the same
task: a stratified 75/25 split with ``random_state=0``, features standardized with the
training part's mean and standard deviation, the 75% partitioned over the roster (see
``partition``), the 25% kept for server-side evaluation.

- ``digits``: scikit-learn's ``load_digits`` (bundled with scikit-learn, no network):
  1797 8x8 images, 64 features, 10 classes.
- ``synthetic``: scikit-learn's ``make_classification`` with ``n_samples``, ``n_features``,
  ``n_classes``, ``seed`` (and optionally ``n_informative``).

A user's data is an entrypoint ``package.module:function`` called as
``function(path=<data.path>, **args)`` on the cluster, reading from the volume mounted at
that path. It returns ``(X, y)`` arrays, a torch ``Dataset`` of ``(x, y)`` pairs, or
``{"train": ..., "test": ...}`` of either (the test part gives local test metrics).

A simulation trains many clusters in one warm process, so the built-in arrays are loaded
once per process and handed out read-only. Sizes are known without loading anything
(``fl_gitops.models.data_dims``), which the torch-free round-0 initialiser needs. Heavy
imports (scikit-learn, torch) happen inside the functions that need them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fl_gitops.client.partition import part_for
from fl_gitops.errors import InputError
from fl_gitops.models import DIGITS_CLASSES, synthetic_args
from fl_gitops.plugins import resolve_entrypoint

__all__ = [
    "LocalData",
    "Split",
    "builtin_split",
    "load_local_data",
    "server_test_set",
]


@dataclass(frozen=True)
class Split:
    """A built-in data set after the protocol: standardized train and held-out test."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


@dataclass(frozen=True)
class LocalData:
    """What one cluster trains on (and tests on locally, when it has a test part)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    num_classes: int

    @property
    def num_examples(self) -> int:
        """The number of training examples: FedAvg's weight for this cluster."""
        return len(self.y_train)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def _protocol(X: np.ndarray, y: np.ndarray, num_classes: int) -> Split:
    from sklearn.model_selection import train_test_split

    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    mean = X_tr.mean(axis=0)
    std = X_tr.std(axis=0)
    std[std == 0] = 1.0  # constant pixels (digits' borders) stay 0 after centring
    return Split(
        X_train=_readonly(((X_tr - mean) / std).astype(np.float32)),
        y_train=_readonly(y_tr.astype(np.int64)),
        X_test=_readonly(((X_te - mean) / std).astype(np.float32)),
        y_test=_readonly(y_te.astype(np.int64)),
        num_classes=num_classes,
    )


@functools.lru_cache(maxsize=2)
def _digits() -> Split:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _protocol(np.asarray(bunch.data, np.float64), np.asarray(bunch.target), DIGITS_CLASSES)


@functools.lru_cache(maxsize=8)
def _synthetic(
    n_samples: int, n_features: int, n_classes: int, n_informative: int, seed: int
) -> Split:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=n_informative,
        n_redundant=0,
        n_classes=n_classes,
        random_state=seed,
    )
    return _protocol(X, y, n_classes)


def builtin_split(data_cfg: Mapping[str, Any], *, source: str = "<data>") -> Split:
    """The protocol's train/test split of a built-in set (cached per process, read-only)."""
    name = data_cfg.get("builtin")
    if name == "digits":
        if data_cfg.get("args"):
            key = sorted(data_cfg["args"])[0]
            raise InputError(f"{source}: data.args.{key}: the digits data set takes no args")
        return _digits()
    if name == "synthetic":
        a = synthetic_args(data_cfg.get("args", {}), source=source)
        return _synthetic(
            a["n_samples"], a["n_features"], a["n_classes"], a["n_informative"], a["seed"]
        )
    raise InputError(f"{source}: data.builtin: expected one of digits, synthetic, got {name!r}")


def server_test_set(
    data_cfg: Mapping[str, Any], *, source: str = "<data>"
) -> tuple[np.ndarray, np.ndarray]:
    """The held-out 25% of a built-in set, for server-side evaluation of the global model."""
    split = builtin_split(data_cfg, source=source)
    return split.X_test, split.y_test


def _as_arrays(obj: object, *, where: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        X, y = (np.asarray(v) for v in obj)
    elif hasattr(obj, "__len__") and hasattr(obj, "__getitem__"):  # a torch-style Dataset
        items = [obj[i] for i in range(len(obj))]
        if not items:
            raise InputError(f"{where}: the data set is empty")
        X = np.stack([np.asarray(_to_numpy(x)) for x, _ in items])
        y = np.asarray([int(_to_numpy(t)) for _, t in items])
    else:
        raise InputError(
            f"{where}: expected (X, y) arrays or a Dataset of (x, y) pairs, "
            f"got {type(obj).__name__}"
        )
    if y.ndim != 1 or len(X) != len(y) or len(y) == 0:
        raise InputError(
            f"{where}: expected X with one row per label and 1-D y, got X {list(X.shape)} "
            f"and y {list(y.shape)}"
        )
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise InputError(f"{where}: expected labels as integers >= 0, got {y.dtype}")
    return np.ascontiguousarray(X, np.float32), y.astype(np.int64)


def _to_numpy(v: Any) -> Any:
    return v.numpy() if hasattr(v, "numpy") else v


def _load_entrypoint(
    data_cfg: Mapping[str, Any], *, source: str, num_classes: int | None
) -> LocalData:
    fn = resolve_entrypoint(data_cfg["entrypoint"], source=source, path="data.entrypoint")
    where = f"{source}: data.entrypoint {data_cfg['entrypoint']}"
    try:
        result = fn(path=data_cfg["path"], **data_cfg.get("args", {}))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{where}: failed: {type(exc).__name__}: {exc}") from exc
    test: tuple[np.ndarray, np.ndarray] | None = None
    if isinstance(result, Mapping):
        if "train" not in result:
            raise InputError(f"{where}: a dict result needs a 'train' key")
        train = _as_arrays(result["train"], where=f"{where} (train)")
        if result.get("test") is not None:
            test = _as_arrays(result["test"], where=f"{where} (test)")
    else:
        train = _as_arrays(result, where=where)
    seen = int(max(train[1].max(), test[1].max() if test else 0)) + 1
    classes = num_classes if num_classes is not None else seen
    if seen > classes:
        raise InputError(f"{where}: label {seen - 1} is out of range for {classes} classes")
    return LocalData(
        X_train=train[0],
        y_train=train[1],
        X_test=test[0] if test else None,
        y_test=test[1] if test else None,
        num_classes=classes,
    )


def load_local_data(
    data_cfg: Mapping[str, Any],
    roster_index: int,
    roster_size: int,
    *,
    source: str = "<data>",
    num_classes: int | None = None,
) -> LocalData:
    """Load the data this cluster trains on.

    Args:
        data_cfg: the round config's ``data`` object.
        roster_index: this cluster's place in the roster (chooses a built-in set's part).
        roster_size: the roster's size.
        source: the round config's path, for messages.
        num_classes: the model's output classes, when known (checks user labels).

    Returns:
        The cluster's training data (and local test data for a user set that has it).

    Raises:
        InputError: bad args, a failing user function, or data that cannot be used.
    """
    if "entrypoint" in data_cfg:
        return _load_entrypoint(data_cfg, source=source, num_classes=num_classes)
    split = builtin_split(data_cfg, source=source)
    spec = data_cfg.get("partition", {"kind": "iid", "seed": 0})
    try:
        idx = part_for(split.y_train, spec, roster_index, roster_size)
    except InputError as exc:
        raise InputError(f"{source}: data.{exc}") from exc
    return LocalData(
        X_train=split.X_train[idx],
        y_train=split.y_train[idx],
        X_test=None,
        y_test=None,
        num_classes=split.num_classes,
    )
