"""A cluster's side of secure aggregation (SecAgg+) through the loop: one function per Job.

A secure round is a few Jobs in a row on each cluster, each started by a commit (a Job
never waits for another cluster): ``keys`` once per experiment (the cluster's share key),
``share`` when a round's secrets were not made the round before (the first round, a retry,
a cluster coming back), ``train`` (the round's masked input, then the next round's mask key
and sealed shares), and ``reveal`` (the shares this cluster holds, opened for the
survivors). Which one runs is the round config's ``secureAggregation.phase``.

What a cluster must keep between its Jobs (its share key's private half, the next round's
mask key and self-mask seed, which reveals it made) lives in its own secret store, never
in the model store or the hub: a Kubernetes Secret in the client namespace, which the work
creates empty (``CreateOnly``) and only the Job's ServiceAccount may ``get`` and ``patch``
(``FL_SECAGG_SECRET``, ``<namespace>/<name>``), or in the simulation a file of the
cluster's own local state (``FL_SECAGG_SECRET_FILE``). A round's mask key and seed are
removed from it once the masked input is made, so that no Job can mask a second input
with them; a reveal is recorded there with the survivors it was for, and a second reveal
for another survivor set is refused, so that no cluster ever gives out both the seed and
the mask key of one round.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fl_gitops.errors import FlGitopsError, InputError
from fl_gitops.reports import SecAggReport
from fl_gitops.secagg import (
    BadMessage,
    ClientKeys,
    RoundContext,
    SecAggParams,
    masked_input,
    reveal,
    share_keys,
)
from fl_gitops.secagg._crypto import new_private_key, public_bytes
from fl_gitops.secagg._loop import (
    MAX_MESSAGE_BYTES,
    SecAggRound,
    change_vector,
    json_bytes,
    message_name,
    names_digest,
    params_of,
    read_message,
    sealed_from_json,
    sealed_to_json,
    write_message,
)

__all__ = [
    "SECRET_ENV",
    "SECRET_FILE_ENV",
    "SecureSection",
    "run_secure_phase",
    "secure_train",
]

SECRET_ENV = "FL_SECAGG_SECRET"
SECRET_FILE_ENV = "FL_SECAGG_SECRET_FILE"
SECRET_KEY = "secagg.json"
_MAX_SECRET_BYTES = 256 * 1024


@dataclass(frozen=True)
class SecureSection:
    """The round config's ``secureAggregation`` section, checked."""

    phase: str
    params: SecAggParams
    record: SecAggRound
    max_weight: int
    final: bool
    survivors: tuple[str, ...]

    @classmethod
    def parse(cls, raw: Mapping[str, Any], *, source: str) -> SecureSection:
        """Raises:
        InputError: naming the source and what is wrong.
        """
        where = f"{source}: secureAggregation"
        try:
            params = params_of(raw["params"])
            phase = str(raw["phase"])
            if phase not in ("keys", "share", "train", "reveal"):
                raise ValueError(f"phase {phase!r}")
            survivors = tuple(sorted(str(c) for c in raw.get("survivors") or ()))
            doc = {k: v for k, v in raw.items() if k not in ("params", "maxWeight", "final")}
            doc.pop("survivors", None)
            record = SecAggRound.from_json(doc, source=where)
            max_weight = int(raw["maxWeight"])
            final = bool(raw.get("final", False))
        except InputError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: {exc}") from None
        return cls(phase, params, record, max_weight, final, survivors)


# -- the cluster's own secrets ---------------------------------------------------------


class _Secrets:
    """The cluster's secret store: a JSON document in a file or in a Kubernetes Secret."""

    def __init__(
        self, environ: Mapping[str, str], service_account_dir: str | Path | None = None
    ) -> None:
        self.environ = environ
        self.account = service_account_dir
        self.doc: dict[str, Any] = {}
        self.file = environ.get(SECRET_FILE_ENV) or None
        self.target = environ.get(SECRET_ENV) or None
        if self.file is None and self.target is None:
            raise FlGitopsError(
                f"secure aggregation needs the cluster's secret: neither {SECRET_ENV} nor "
                f"{SECRET_FILE_ENV} is set (the rendered Job sets {SECRET_ENV})"
            )

    def load(self) -> _Secrets:
        raw = (
            self._read_file()
            if self.file is not None
            else _kube_secret_get(self.target, self.environ, self.account)
        )
        doc: Any = {}
        if raw:
            try:
                doc = json.loads(raw)
            except ValueError:
                doc = None
            if not isinstance(doc, dict):
                raise FlGitopsError("the cluster's secure-aggregation secret is not JSON")
        doc.setdefault("masks", {})
        doc.setdefault("revealed", {})
        self.doc = doc
        return self

    def save(self) -> None:
        data = json_bytes(self.doc)
        if self.file is not None:
            from fl_gitops.tensors import write_atomic

            path = Path(self.file)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(path, data)
            os.chmod(path, 0o600)
        else:
            _kube_secret_patch(self.target, data, self.environ, self.account)

    def _read_file(self) -> bytes:
        assert self.file is not None
        try:
            with open(self.file, "rb") as handle:
                data = handle.read(_MAX_SECRET_BYTES + 1)
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise FlGitopsError(f"cannot read the cluster's secret file: {exc.strerror}") from None
        if len(data) > _MAX_SECRET_BYTES:
            raise FlGitopsError("the cluster's secure-aggregation secret is too large")
        return data


def _core(environ: Mapping[str, str], service_account_dir: str | Path | None) -> Any:
    from kubernetes import client as k8s
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import InClusterConfigLoader

    from fl_gitops.client.report import SERVICE_ACCOUNT_DIR

    configuration = k8s.Configuration()
    account = Path(service_account_dir or SERVICE_ACCOUNT_DIR)
    try:
        InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=str(account / "token"),
            cert_filename=str(account / "ca.crt"),
            environ=environ,
        ).load_and_set(configuration)
    except ConfigException as exc:
        raise FlGitopsError(
            f"cannot reach the cluster's secret: no in-cluster config ({exc})"
        ) from None
    return k8s.CoreV1Api(k8s.ApiClient(configuration))


def _split(target: str | None) -> tuple[str, str]:
    namespace, _, name = (target or "").partition("/")
    if not namespace or not name:
        raise FlGitopsError(f"{SECRET_ENV}: expected <namespace>/<name> of a Secret")
    return namespace, name


def _kube_secret_get(
    target: str | None, environ: Mapping[str, str], account: str | Path | None
) -> bytes:
    from kubernetes import client as k8s

    namespace, name = _split(target)
    try:
        core = _core(environ, account)
        secret = core.read_namespaced_secret(name, namespace, _request_timeout=30)
    except k8s.ApiException as exc:
        raise FlGitopsError(
            f"cannot read Secret {namespace}/{name}: HTTP {exc.status} (the work creates it; "
            "the Job's ServiceAccount may get and patch only it)"
        ) from None
    value = (secret.data or {}).get(SECRET_KEY)
    return base64.b64decode(value) if value else b""


def _kube_secret_patch(
    target: str | None, data: bytes, environ: Mapping[str, str], account: str | Path | None
) -> None:
    from kubernetes import client as k8s

    namespace, name = _split(target)
    body = {"data": {SECRET_KEY: base64.b64encode(data).decode()}}
    try:
        _core(environ, account).patch_namespaced_secret(
            name,
            namespace,
            body,
            _content_type="application/merge-patch+json",
            _request_timeout=30,
        )
    except k8s.ApiException as exc:
        raise FlGitopsError(f"cannot write Secret {namespace}/{name}: HTTP {exc.status}") from None


# -- the phases --------------------------------------------------------------------------


def _mask_slot(round_: int, attempt: int, ctx: RoundContext) -> str:
    return f"{round_}-{attempt}-{ctx.roster_id}"


def _share_private(secrets: _Secrets, section: SecureSection, cluster: str) -> bytes:
    """The cluster's share key, checked against the one Git holds for it."""
    text = secrets.doc.get("shareKey")
    if not isinstance(text, str):
        raise FlGitopsError(f"{cluster}: no share key in the cluster's secret (was it replaced?)")
    private = bytes.fromhex(text)
    said = section.record.share_keys.get(cluster)
    if said is not None and public_bytes(private).hex() != said:
        raise FlGitopsError(
            f"{cluster}: the cluster's share key is not the one committed for it (its secret "
            "was replaced); it cannot take part until its key is advertised again"
        )
    return private


def _share(
    secrets: _Secrets,
    share_private: bytes,
    ctx: RoundContext,
    cluster: str,
    store: Any,
) -> tuple[str, str]:
    """Fresh mask key and seed for ``ctx``'s round, kept in the secret first, then their
    sealed shares in the store; the mask key's public half and the shares' digest."""
    keys = ClientKeys(cluster, share_private, new_private_key())
    keys, sealed = share_keys(keys, ctx)
    assert keys.self_seed is not None
    masks = secrets.doc["masks"]
    masks[_mask_slot(ctx.round, ctx.attempt, ctx)] = {
        "maskKey": keys.mask_private.hex(),
        "seed": keys.self_seed.hex(),
    }
    # Secrets of rounds already over are of no use to anyone: gone.
    for slot in [s for s in masks if int(s.split("-", 1)[0]) < ctx.round - 1]:
        del masks[slot]
    secrets.save()
    name = message_name("shares", ctx.attempt, ctx.roster_id, cluster)
    digest = write_message(store, ctx.round, name, sealed_to_json(sealed))
    return public_bytes(keys.mask_private).hex(), digest


def run_secure_phase(
    experiment: str,
    cluster: str,
    section: SecureSection,
    store: Any,
    environ: Mapping[str, str],
    *,
    service_account_dir: str | Path | None = None,
) -> SecAggReport:
    """Run a Job of a secure round that is not its training (``keys``, ``share`` or
    ``reveal``); what it reports through the hub. ``service_account_dir``: the pod's
    token and CA for the Secret (default: where Kubernetes mounts them).

    Raises:
        FlGitopsError: the cluster's secret is missing or not its own, a message in the
            store is not what Git says, or a reveal was asked for another survivor set.
    """
    secrets = _Secrets(environ, service_account_dir).load()
    if section.phase == "keys":
        if not isinstance(secrets.doc.get("shareKey"), str):
            secrets.doc["shareKey"] = new_private_key().hex()
            secrets.save()
        public = public_bytes(bytes.fromhex(secrets.doc["shareKey"])).hex()
        return SecAggReport("keys", share_key=public)
    share_private = _share_private(secrets, section, cluster)
    me = public_bytes(share_private).hex()
    record = section.record
    ctx = record.ctx(experiment, section.params)
    if cluster not in ctx.roster:
        raise FlGitopsError(f"{cluster}: not in the round's roster of share holders")
    if section.phase == "share":
        mask_key, digest = _share(secrets, share_private, ctx, cluster, store)
        return SecAggReport("share", share_key=me, mask_key=mask_key, shares=digest)
    if section.phase != "reveal":
        raise FlGitopsError(f"{cluster}: phase {section.phase} is run by the training Job")
    slot = _mask_slot(record.round, record.attempt, ctx)
    marker = names_digest(section.survivors)
    said = secrets.doc["revealed"].get(slot)
    if said is not None and said != marker:
        raise FlGitopsError(
            f"{cluster}: round {record.round} was revealed for another set of survivors; a "
            "second reveal could give out both secrets of one cluster, so none is made"
        )
    secrets.doc["revealed"][slot] = marker
    for old in [s for s in secrets.doc["revealed"] if int(s.split("-", 1)[0]) < record.round - 1]:
        del secrets.doc["revealed"][old]
    secrets.save()
    inbox: dict[str, bytes] = {}
    for sender in sorted(record.mask_keys):
        if cluster not in ctx.holders(sender):
            continue
        name = message_name("shares", record.attempt, ctx.roster_id, sender)
        try:
            data = read_message(
                store, record.round, name, record.shares[sender], limit=MAX_MESSAGE_BYTES
            )
            message = sealed_from_json(data, sender).get(cluster)
        except BadMessage:
            continue  # that sender's problem; the threshold covers a missing share
        if message is not None:
            inbox[sender] = message
    keys = ClientKeys(cluster, share_private, b"")
    revealed = reveal(keys, ctx, inbox, set(section.survivors))
    body = json_bytes([[r.about, r.kind, r.share.hex()] for r in revealed])
    name = message_name("reveal", record.attempt, ctx.roster_id, cluster)
    digest = write_message(store, record.round, name, body)
    return SecAggReport("reveal", share_key=me, reveal=digest)


def secure_train(
    experiment: str,
    cluster: str,
    section: SecureSection,
    store: Any,
    environ: Mapping[str, str],
    update: Mapping[str, np.ndarray[Any, Any]],
    base: Mapping[str, np.ndarray[Any, Any]],
    num_examples: int,
) -> tuple[str, SecAggReport]:
    """The training Job's secure part, after training: the masked input in the store, then
    (unless this is the last round) the next round's mask key and sealed shares. The
    clear update is never written anywhere.

    Returns:
        The masked input's digest (reported as ``digest``) and the ``secagg`` report.

    Raises:
        FlGitopsError: the round's mask secrets are not in the cluster's secret (spent,
            or never made), or not the ones Git holds for it.
    """
    secrets = _Secrets(environ).load()
    share_private = _share_private(secrets, section, cluster)
    record = section.record
    ctx = record.ctx(experiment, section.params)
    if cluster not in record.mask_keys:
        raise FlGitopsError(f"{cluster}: not among the round's sharers (U1)")
    slot = _mask_slot(record.round, record.attempt, ctx)
    kept = secrets.doc["masks"].pop(slot, None)
    if not isinstance(kept, dict):
        raise FlGitopsError(
            f"{cluster}: round {record.round}'s mask key is not in the cluster's secret (spent "
            "by an earlier run of this Job, or never made); no input is masked twice"
        )
    keys = ClientKeys(
        cluster, share_private, bytes.fromhex(kept["maskKey"]), bytes.fromhex(kept["seed"])
    )
    if public_bytes(keys.mask_private).hex() != record.mask_keys[cluster]:
        raise FlGitopsError(
            f"{cluster}: the mask key in the cluster's secret is not the one committed"
        )
    secrets.save()  # spent before it is used
    weight = min(int(num_examples), section.max_weight)
    change = change_vector(update, base)
    masked = masked_input(keys, ctx, set(record.mask_keys), change, weight, record.levels)
    name = message_name("masked", record.attempt, ctx.roster_id, cluster)
    digest = write_message(store, record.round, name, masked.astype("<u8").tobytes())
    me = public_bytes(share_private).hex()
    if section.final:
        return digest, SecAggReport("train", share_key=me)
    nxt = record.next_ctx(experiment, section.params)
    mask_key, shares = _share(secrets, share_private, nxt, cluster, store)
    return digest, SecAggReport("train", share_key=me, mask_key=mask_key, shares=shares)
