"""One cluster's part of one round: what the rendered Job runs, start to finish.

Read and check the round config, open the store, fetch the global model and verify its
digest, load this cluster's data, train, and write the update with its metadata. The
update's JSON is written last by the store, after the tensor file, both atomically: if
anything fails before, no complete update exists and the hub sees none (a retry of the Job
writes it again, identically, since training is seeded).

``run_client`` is the in-process entry point: the CLI calls it, and so can a warm worker
(the simulation) that runs many clusters' Jobs in one process, passing each Job's own
environment instead of ``os.environ``. torch is imported only once a config has passed
its checks, so a bad config fails fast and ``fl-gitops --help`` stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from fl_gitops.client.roundconfig import RoundConfig, load_round_config, parse_round_config
from fl_gitops.errors import FlGitopsError, InputError, StoreError
from fl_gitops.models import bytes_to_tensors, model_dims, tensors_to_bytes
from fl_gitops.reports import ReportError, report_data, secagg_report_data
from fl_gitops.store import ModelStore
from fl_gitops.tensors import BF16, HeaderError, narrow, values_f64, widen

__all__ = [
    "CLUSTER_ENV",
    "CONFIG_ENV",
    "Tamper",
    "byzantine_update",
    "run_client",
    "run_client_file",
]

CONFIG_ENV = "FL_ROUND_CONFIG"
CLUSTER_ENV = "FL_CLUSTER"

# (trained update, global model) -> what the cluster sends instead: a fault injection hook
# for simulations and benchmarks of robust strategies, never set by the CLI.
Tamper = Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], dict[str, np.ndarray]]


def byzantine_update(
    update: Mapping[str, np.ndarray],
    base: Mapping[str, np.ndarray],
    *,
    kind: str = "signflip",
    factor: float = 10.0,
) -> dict[str, np.ndarray]:
    """A Byzantine cluster's version of an honest update.

    ``scale`` sends ``base + factor·(update − base)`` (an exaggerated step); ``signflip``
    sends ``base − factor·(update − base)`` (a step against the descent direction).

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in ("scale", "signflip"):
        raise ValueError(f"byzantine kind: expected scale or signflip, got {kind!r}")
    sign = 1.0 if kind == "scale" else -1.0
    out = {}
    for k in sorted(update):
        u, b = values_f64(update[k]), values_f64(base[k])
        step = b + sign * factor * (u - b)
        out[k] = narrow(step) if update[k].dtype == BF16 else step.astype(np.float32)
    return out


def _values(tensor: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A tensor's values for a check: a BF16 tensor's widened to float32 (exact)."""
    return widen(tensor) if tensor.dtype == BF16 else tensor


def _flatten_for_builtin(X: np.ndarray, in_features: int, source: str) -> np.ndarray:
    flat = X.reshape(len(X), -1)
    if flat.shape[1] != in_features:
        raise InputError(
            f"{source}: model.args.in_features: the data has {flat.shape[1]} features per "
            f"example, the model expects {in_features}"
        )
    return flat


def run_client(
    config: Mapping[str, Any] | RoundConfig,
    *,
    environ: Mapping[str, str] | None = None,
    source: str = "<round config>",
    num_threads: int | None = 1,
    tamper: Tamper | None = None,
) -> dict[str, Any]:
    """Train one round on this cluster and write the update to the store.

    Args:
        config: the round config document (or one already parsed).
        environ: the Job's environment (``FL_CLUSTER``, store credentials); defaults to
            ``os.environ``.
        source: where the config came from, for messages.
        num_threads: torch's intra-op threads (1: many clients share few cores); None
            leaves torch's setting alone.
        tamper: turns the trained update into what is sent (fault injection only).

    Returns:
        The update's metadata record as the store wrote it; with client-side clipping
        (the config's ``dp``), also ``unclipped``: whether the update was within the
        round's clip before it was clipped (reported through the hub, not stored).

    Raises:
        InputError: the config, model or data cannot be used.
        StoreError: the global model is missing or corrupt, or the update cannot be written.
        FlGitopsError: training diverged (non-finite weights).
    """
    env = os.environ if environ is None else environ
    if isinstance(config, RoundConfig):
        cfg = config
    else:
        cfg = parse_round_config(config, source=source, cluster=env.get(CLUSTER_ENV) or None)

    where = f"{cfg.cluster} round {cfg.round}"
    secure = None
    if cfg.secure is not None:
        from fl_gitops.client.secure import SecureSection

        secure = SecureSection.parse(cfg.secure, source=cfg.source)
    store = ModelStore.from_env(cfg.store_uri, env)
    global_bytes = store.get_model(cfg.global_digest)  # verifies the digest
    try:
        base = bytes_to_tensors(global_bytes)
    except HeaderError as exc:
        raise StoreError(f"global model {cfg.global_digest}: not readable: {exc}") from exc

    # Deferred: a bad config or a missing model above fails without paying for torch.
    import torch

    from fl_gitops.client.data import load_local_data
    from fl_gitops.client.train import client_seed, train_local
    from fl_gitops.models.torch import build_model, load_tensors, module_to_tensors

    if num_threads is not None:
        torch.set_num_threads(num_threads)

    module = build_model(cfg.model, cfg.data, source=cfg.source)
    load_tensors(module, base, source=f"{cfg.source}: the global model {cfg.global_digest}")
    num_classes = None
    if "builtin" in cfg.model:
        _, in_features, num_classes = model_dims(cfg.model, cfg.data, source=cfg.source)
    data = load_local_data(
        cfg.data, cfg.roster_index, cfg.roster_size, source=cfg.source, num_classes=num_classes
    )
    if "builtin" in cfg.model and "entrypoint" in cfg.data:
        data = type(data)(
            X_train=_flatten_for_builtin(data.X_train, in_features, cfg.source),
            y_train=data.y_train,
            X_test=None
            if data.X_test is None
            else _flatten_for_builtin(data.X_test, in_features, cfg.source),
            y_test=data.y_test,
            num_classes=data.num_classes,
        )

    metrics = train_local(
        module,
        data,
        cfg.train,
        seed=client_seed(cfg.train.seed, cfg.round, cfg.roster_index),
        prox_mu=cfg.fedprox_mu,
    )
    update = module_to_tensors(module)
    if tamper is not None:
        update = tamper(update, base)
    bad = sorted(k for k, v in update.items() if not np.all(np.isfinite(_values(v))))
    if bad:
        raise FlGitopsError(
            f"{where}: training diverged: tensor {bad[0]} is not finite "
            "(lower train.optimizer.lr); no update written"
        )
    if set(update) != set(base):  # a user module whose state_dict changed while training
        raise FlGitopsError(f"{where}: the trained model's tensors differ from the global model's")
    unclipped = None
    if cfg.client_clip is not None:
        # Client-side DP: this cluster clips its own update and reports whether it had to.
        from fl_gitops.client.clip import clip_update

        try:
            update, unclipped = clip_update(update, base, cfg.client_clip)
        except FlGitopsError as exc:
            raise FlGitopsError(f"{where}: {exc}; no update written") from None
    if secure is not None:
        # Secure aggregation: only the masked input leaves the cluster, never the update.
        from fl_gitops.client.secure import secure_train

        try:
            digest, secagg = secure_train(
                cfg.experiment, cfg.cluster, secure, store, env, update, base, data.num_examples
            )
        except FlGitopsError as exc:
            raise FlGitopsError(f"{where}: {exc}; no input written") from None
        return {
            "round": cfg.round,
            "cluster": cfg.cluster,
            "sha256": digest,
            "num_examples": data.num_examples,
            "metrics": {k: float(v) for k, v in sorted(metrics.items())},
            "secagg": secagg,
        }
    meta = {
        "experiment": cfg.experiment,
        "base_model": cfg.global_digest,
        "num_examples": data.num_examples,
        "metrics": {k: float(v) for k, v in sorted(metrics.items())},
    }
    record = store.put_update(cfg.round, cfg.cluster, tensors_to_bytes(update), meta)
    if unclipped is None:
        return record
    return {**record, "unclipped": unclipped}


def run_client_file(
    path: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    num_threads: int | None = 1,
) -> dict[str, Any]:
    """What the Job runs: ``run_client`` on a round config file (default: the path in
    ``FL_ROUND_CONFIG``), then the update reported through the hub.

    The report (``client.report.write_report``: the update's digest, ``num_examples``,
    metrics and, with client-side clipping, the clip bit into the round's result
    ConfigMap, or the simulation's result file) is what the reconcile pass trusts; the
    store's metadata is not. It is written after the update is stored, so a report never
    names an update that is not there.

    Returns:
        The update's metadata record, with ``reported_to`` saying where the report went.

    Raises:
        InputError: no path given and ``FL_ROUND_CONFIG`` unset, or a bad file.
        FlGitopsError: as ``run_client``; or the report could not be written (the Job fails).
    """
    from fl_gitops.client.report import write_report

    env = os.environ if environ is None else environ
    path = path or env.get(CONFIG_ENV)
    if not path:
        raise InputError(f"no round config: pass --config PATH or set {CONFIG_ENV}")
    cfg = load_round_config(path, cluster=env.get(CLUSTER_ENV) or None)
    where = f"{cfg.cluster} round {cfg.round}"
    if cfg.secure is not None and cfg.secure.get("phase") != "train":
        # A secure round's short Job: keys, shares or the reveal; no training.
        from fl_gitops.client.secure import SecureSection, run_secure_phase

        section = SecureSection.parse(cfg.secure, source=cfg.source)
        store = ModelStore.from_env(cfg.store_uri, env)
        try:
            secagg = run_secure_phase(cfg.experiment, cfg.cluster, section, store, env)
            data = secagg_report_data(secagg)
        except (FlGitopsError, ReportError) as exc:
            raise FlGitopsError(f"{where}: secure aggregation, {section.phase}: {exc}") from None
        reported_to = write_report(data, environ=env)
        return {"round": cfg.round, "cluster": cfg.cluster, "reported_to": reported_to}
    record = run_client(cfg, environ=env, source=str(path), num_threads=num_threads)
    try:
        data = report_data(
            str(record["sha256"]),
            int(record["num_examples"]),
            record.get("metrics") or {},
            unclipped=record.get("unclipped"),
            secagg=record.get("secagg"),
        )
    except ReportError as exc:
        raise FlGitopsError(f"{where}: the update cannot be reported: {exc}") from None
    reported_to = write_report(data, environ=env)
    return {**record, "reported_to": reported_to}
