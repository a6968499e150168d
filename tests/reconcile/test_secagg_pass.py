"""Secure aggregation through the reconcile pass, with the real client's Jobs: real keys,
real shares, real masks, and torch training (logreg on digits, one epoch).

Ten clusters, threshold 7, every cluster a neighbour of every other (k = 9): any 3 may
drop after sharing and the round recovers; 4 dropping fails it cleanly, with no reveal
asked for and nothing unmasked. The recovered model is plain FedAvg of the survivors'
clear updates (made again here from the same round configs, outside the loop) within
the quantisation error; and no file the store holds after the round is any closer to a
cluster's clear update than chance.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from fl_gitops.aggregate import aggregate_from_store
from fl_gitops.client import run_client
from fl_gitops.client.job import run_client_file
from fl_gitops.reconcile import Aggregate, Finish, RetryRound
from fl_gitops.secagg import SecAggParams, quantize
from fl_gitops.store import ModelStore
from fl_gitops.tensors import load_bytes

from .fleet import PATH, Fleet, blueprint_text, git, make_remote, reconcile_pass

CLUSTERS = [f"cluster-{i:02d}" for i in range(1, 11)]
CLIP = 2.0


def _blueprint(store: Path, **changes: Any) -> str:
    # A quorum under the threshold, so that the threshold is what refuses a round.
    text = blueprint_text(store, clusters=10, min_clusters=5, **changes)
    return text.replace(
        "  strategy:\n    name: fedavg\n",
        "  strategy:\n    name: fedavg\n    secureAggregation:\n"
        f"      threshold: 7\n      neighbours: 9\n      clipRange: {CLIP}\n",
    )


@pytest.fixture
def world(tmp_path):
    store = tmp_path / "store"
    remote = make_remote(tmp_path, _blueprint(store, rounds=2))
    fleet = Fleet(tmp_path, remote, store, CLUSTERS)
    return tmp_path, remote, fleet


def _phase(tmp: Path, remote: Path, fleet: Fleet, *, fail: set[str] = frozenset()):  # type: ignore[assignment]
    """Every synced Job runs (the client's own code, in this process) or fails; a pass."""
    configs = {}
    for work in fleet.sync():
        configs[work.cluster] = work.config
        if work.cluster in fail:
            fleet.agent.report(work, succeeded=False)
            continue
        run_client_file(environ=dict(work.spec.env))
        fleet.agent.report(work, succeeded=True)
    return reconcile_pass(tmp, remote, fleet), configs


def _secure_round_one(tmp: Path, remote: Path, fleet: Fleet, *, drop: set[str]):
    """Round 1 from nothing: keys, share, train (``drop`` fail it), then the reveal."""
    first = reconcile_pass(tmp, remote, fleet)
    assert first.message == "round 1: 10 clusters advertise their share keys"
    keys, _ = _phase(tmp, remote, fleet)
    assert keys.message == "round 1: share keys of 10 clusters"
    share, _ = _phase(tmp, remote, fleet)
    assert share.message == "round 1: U1: 10 clusters shared"
    return _phase(tmp, remote, fleet, fail=drop)


def _clear_updates(tmp: Path, configs: dict[str, Any], fleet: Fleet) -> tuple[ModelStore, str]:
    """Each cluster's clear update, made again outside the loop from its own round config
    (training is seeded), in a scratch store that only this test reads."""
    scratch = ModelStore.open(f"file://{tmp / 'clear'}")
    digest = next(iter(configs.values())).global_digest
    scratch.put_model(fleet.store.get_model(digest))
    for _, cfg in sorted(configs.items()):
        plain = dataclasses.replace(cfg, secure=None, store_uri=scratch.uri)
        run_client(plain, environ={})
    return scratch, digest


@pytest.mark.parametrize(
    ("drop", "silent"),
    [
        ({"cluster-02", "cluster-05", "cluster-09"}, set()),  # 3 send no masked input
        (set(), {"cluster-01", "cluster-06", "cluster-10"}),  # 3 survivors do not reveal
        ({"cluster-03", "cluster-07"}, {"cluster-08"}),  # 2 and 1
    ],
)
def test_three_dropping_after_sharing_recover_the_round_as_fedavg_of_the_survivors(
    world, drop, silent
):
    tmp, remote, fleet = world
    train, configs = _secure_round_one(tmp, remote, fleet, drop=drop)
    assert train.message == f"round 1: U2: {10 - len(drop)} survivors, {len(drop)} dropped"
    reveal, _ = _phase(tmp, remote, fleet, fail=silent)
    assert isinstance(reveal.action, Aggregate)
    record = reveal.record
    survivors = sorted(set(CLUSTERS) - drop)
    assert record["contributors"] == survivors
    account = record["secureAggregation"]
    assert (account["u1"], account["u2"], account["dropped"], account["revealed"]) == (
        10,
        10 - len(drop),
        len(drop),
        7,
    )
    assert sorted(record["failed"]) == sorted(drop)
    assert record["updates"] == {}  # no update in the clear anywhere

    # Plain FedAvg of the same clear updates, within the formula's bound per coordinate.
    scratch, base_digest = _clear_updates(tmp, {c: configs[c] for c in survivors}, fleet)
    plain = aggregate_from_store(scratch, 1, base_digest, strategy="fedavg", clusters=survivors)
    assert plain.contributors == survivors
    params = SecAggParams(threshold=7, neighbours=9, clip_range=CLIP)
    levels = params.levels(10, 10_000_000)
    assert account["levels"] == levels
    secure = load_bytes(fleet.store.get_model(reveal.model_digest))
    clear = load_bytes(plain.model)
    base = load_bytes(scratch.get_model(base_digest))
    for name in sorted(clear):
        change = [
            load_bytes(scratch.get_update(1, c))[name].astype(np.float64) - base[name]
            for c in survivors
        ]
        assert max(float(np.abs(d).max()) for d in change) < CLIP  # nothing was clipped
        # the bound, plus one float32 rounding of each model (the models are float32)
        slack = params.error_bound(levels) + 2 * np.spacing(np.abs(clear[name]).astype(np.float32))
        gap = np.abs(secure[name].astype(np.float64) - clear[name].astype(np.float64))
        assert np.all(gap <= slack), name

    # No file in the loop's store is closer to a cluster's clear update than chance.
    changes = {
        c: np.concatenate(
            [
                (load_bytes(scratch.get_update(1, c))[k].astype(np.float64) - base[k]).ravel()
                for k in sorted(base)
            ]
        )
        for c in sorted(configs)
        if c not in drop
    }
    weights = {c: dict(record["numExamples"])[c] for c in changes}
    clear_files = {c: scratch.get_update(1, c) for c in changes}
    updates = {
        c: np.concatenate(
            [load_bytes(clear_files[c])[k].astype(np.float64).ravel() for k in sorted(base)]
        )
        for c in changes
    }
    _assert_no_file_reveals(Path(tmp / "store"), changes, updates, weights, levels, clear_files)

    # The experiment goes on. Round 2 starts at training when every cluster shared round
    # 2's secrets in round 1's training Job; those that dropped did not, and a share
    # phase brings them back first.
    state = yaml.safe_load(git(remote, "show", f"main:{PATH}/hub/round-state.yaml"))["data"]
    assert (state["round"], state["secureAggregation"]) == ("2", "share" if drop else "train")


def _ranks(values: np.ndarray) -> np.ndarray:
    clean = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.argsort(np.argsort(clean, kind="stable"), kind="stable").astype(np.float64)


def _views(data: bytes, n: int) -> list[np.ndarray]:
    """Every way a file could hold a vector of the model's length: as 64-bit integers
    (a masked input's shape), as float32 from its start, as a safetensors file's tensors."""
    views: list[np.ndarray] = []
    if len(data) == 8 * n:
        raw = np.frombuffer(data, dtype="<u8")
        views.append(raw.astype(np.float64))
        views.append(raw.view(np.int64).astype(np.float64))
    if len(data) >= 4 * n:
        with np.errstate(invalid="ignore", over="ignore"):
            views.append(np.frombuffer(data[: 4 * n], dtype="<f4").astype(np.float64))
    try:
        tensors = load_bytes(data)
    except Exception:
        tensors = {}
    flat = [tensors[k].astype(np.float64).ravel() for k in sorted(tensors)]
    if flat and sum(v.size for v in flat) == n:
        views.append(np.concatenate(flat))
    return views


def _closest(data: bytes, truths: tuple[np.ndarray, ...]) -> float:
    """The largest rank correlation between any view of the file and any of ``truths`` (a
    cluster's update and its change): about N(0, 1/n) for a file that says nothing of
    them (ranks: a masked input's values are uniform over 2^64, which would make a plain
    correlation follow its largest element)."""
    views = [_ranks(v) for v in _views(data, truths[0].size)]
    return max(
        (abs(float(np.corrcoef(v, _ranks(t))[0, 1])) for v in views for t in truths),
        default=0.0,
    )


def _assert_no_file_reveals(
    root: Path,
    changes: dict[str, np.ndarray],
    updates: dict[str, np.ndarray],
    weights: dict[str, int],
    levels: int,
    clear: dict[str, bytes],
) -> None:
    n = next(iter(changes.values())).size
    chance = 5 / np.sqrt(n)  # five standard deviations of unrelated vectors' correlation
    # The detector finds a clear update where there is one: each cluster's own file.
    for cluster, data in clear.items():
        assert _closest(data, (updates[cluster],)) > 0.99
    checked = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("models/"):
            continue  # the global models: the sums, which are what is released
        data = path.read_bytes()
        for cluster, change in changes.items():
            if len(data) == 8 * n:
                # Not a coordinate of a masked input equals the cluster's quantised change
                # (chance: 2^-64 each).
                q = quantize(change, CLIP, levels, weights[cluster])
                assert np.count_nonzero(np.frombuffer(data, dtype="<u8") == q) == 0, rel
            assert _closest(data, (updates[cluster], change)) < chance, (rel, cluster)
        checked += 1
    assert checked > 20  # the masked inputs, the shares, the reveals, the round's files


def test_four_dropping_after_sharing_fail_the_round_with_nothing_unmasked(world):
    tmp, remote, fleet = world
    drop = {"cluster-01", "cluster-04", "cluster-07", "cluster-10"}
    train, _ = _secure_round_one(tmp, remote, fleet, drop=drop)
    assert isinstance(train.action, RetryRound | Finish)
    assert "6 clusters sent a masked input, at least threshold 7 needed" in train.message
    assert "nothing unmasked" in train.message
    # No survivor was ever asked to reveal, and no model was made from the round.
    store = tmp / "store"
    assert not list(store.rglob("secagg-*-reveal-*"))
    assert len(list((store / "models").iterdir())) == 1  # round 0's model only
    state = yaml.safe_load(git(remote, "show", f"main:{PATH}/hub/round-state.yaml"))["data"]
    if isinstance(train.action, RetryRound):
        # The retry starts with fresh secrets: a share phase of attempt 2.
        assert (state["attempt"], state["secureAggregation"]) == ("2", "share")
    else:
        assert state["phase"] == "Failed"


def test_a_reveal_short_of_the_threshold_fails_the_round_with_nothing_unmasked(world):
    tmp, remote, fleet = world
    drop = {"cluster-03", "cluster-06", "cluster-08"}
    train, _ = _secure_round_one(tmp, remote, fleet, drop=drop)
    assert train.message == "round 1: U2: 7 survivors, 3 dropped"
    # One survivor fails its reveal too: 6 holders left of each secret, 7 needed.
    reveal, _ = _phase(tmp, remote, fleet, fail={"cluster-01"})
    assert isinstance(reveal.action, RetryRound | Finish)
    assert "nothing unmasked" in reveal.message
    assert len(list((tmp / "store" / "models").iterdir())) == 1


class _Killed(Exception):
    pass


def test_a_pass_killed_after_the_sum_was_unmasked_converges_on_its_rerun(world):
    from datetime import UTC, datetime

    from fl_gitops.gitops import ConfigRepo
    from fl_gitops.reconcile import PassHooks, reconcile_once

    tmp, remote, fleet = world
    train, _ = _secure_round_one(tmp, remote, fleet, drop={"cluster-04"})
    assert train.message == "round 1: U2: 9 survivors, 1 dropped"
    for work in fleet.sync():
        run_client_file(environ=dict(work.spec.env))
        fleet.agent.report(work, succeeded=True)

    def kill() -> None:
        raise _Killed

    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp / "reconciler")
    with pytest.raises(_Killed):
        reconcile_once(
            repo,
            fleet.hub,
            path=PATH,
            now=datetime.now(UTC),
            hooks=PassHooks(after_model_written=kill),
        )
    models = sorted(p.name for p in (tmp / "store" / "models").iterdir())
    assert len(models) == 2  # round 0's, and the one the killed pass wrote
    again = reconcile_pass(tmp, remote, fleet)
    assert isinstance(again.action, Aggregate)
    assert f"sha256-{again.model_digest.removeprefix('sha256:')}.safetensors" in models
    assert sorted(p.name for p in (tmp / "store" / "models").iterdir()) == models
    log = git(remote, "log", "--format=%s", "main").splitlines()
    assert log.count("fl(digits-small): round 1 -> 2") == 1


def test_a_masked_input_replaced_in_the_store_fails_the_round_with_nothing_unmasked(world):
    tmp, remote, fleet = world
    train, _ = _secure_round_one(tmp, remote, fleet, drop=set())
    assert train.message == "round 1: U2: 10 survivors, 0 dropped"
    # A writer of the bucket swaps one survivor's masked input once U2 is committed.
    (target,) = (tmp / "store").rglob("secagg-a1-*-masked-cluster-05")
    target.write_bytes(np.random.default_rng(0).bytes(target.stat().st_size))
    reveal, _ = _phase(tmp, remote, fleet)
    assert isinstance(reveal.action, RetryRound | Finish)
    assert "masked-cluster-05: not the bytes its cluster reported" in reveal.message
    assert "nothing unmasked" in reveal.message
    assert len(list((tmp / "store" / "models").iterdir())) == 1


def test_secure_aggregation_turned_on_mid_round_starts_the_round_again_as_a_secure_one(tmp_path):
    store = tmp_path / "store"
    plain = blueprint_text(store, clusters=10, min_clusters=5, rounds=2)
    remote = make_remote(tmp_path, plain)
    fleet = Fleet(tmp_path, remote, store, CLUSTERS)
    assert reconcile_pass(tmp_path, remote, fleet).message == "round 1: 10 clusters placed"
    fleet.run_jobs()  # trained in the clear, for a plain round
    seed = tmp_path / "seed"
    git(seed, "pull", "-q", "origin", "main")
    (seed / PATH / "blueprint.yaml").write_text(_blueprint(store, rounds=2))
    git(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "secure it")
    git(seed, "push", "-q", "origin", "main")
    again = reconcile_pass(tmp_path, remote, fleet)
    assert again.message == "round 1: 10 clusters advertise their share keys"
    state = yaml.safe_load(git(remote, "show", f"main:{PATH}/hub/round-state.yaml"))["data"]
    assert (state["round"], state["attempt"], state["secureAggregation"]) == ("1", "2", "keys")
    assert not (store / "models").exists() or len(list((store / "models").iterdir())) == 1


def test_a_rollback_restarts_the_round_with_fresh_secrets_and_the_share_keys_kept(world):
    from fl_gitops.gitops import ConfigRepo
    from fl_gitops.reconcile import rollback

    tmp, remote, fleet = world
    _secure_round_one(tmp, remote, fleet, drop=set())
    reveal, _ = _phase(tmp, remote, fleet)
    assert isinstance(reveal.action, Aggregate)
    keys = yaml.safe_load(git(remote, "show", f"main:{PATH}/secagg.yaml"))["shareKeys"]
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp / "by-hand")
    rollback(repo, PATH, 1)
    state = yaml.safe_load(git(remote, "show", f"main:{PATH}/hub/round-state.yaml"))["data"]
    assert (state["round"], state["attempt"], state["secureAggregation"]) == ("1", "2", "share")
    record = yaml.safe_load(git(remote, "show", f"main:{PATH}/secagg.yaml"))
    assert (record["attempt"], record["shareKeys"]) == (2, keys)
    # and the round runs again to its end, from fresh mask secrets
    share, _ = _phase(tmp, remote, fleet)
    assert share.message == "round 1: U1: 10 clusters shared"
    train, _ = _phase(tmp, remote, fleet)
    assert train.message == "round 1: U2: 10 survivors, 0 dropped"
    again, _ = _phase(tmp, remote, fleet)
    assert isinstance(again.action, Aggregate)
    assert again.record["attempt"] == 2


def test_a_fifo_or_link_in_place_of_a_masked_input_is_a_dropout_not_a_hang(world):
    import os

    tmp, remote, fleet = world
    assert reconcile_pass(tmp, remote, fleet).message.endswith("advertise their share keys")
    _phase(tmp, remote, fleet)  # keys
    _phase(tmp, remote, fleet)  # share
    for work in fleet.sync():  # training: every Job runs and reports
        run_client_file(environ=dict(work.spec.env))
        fleet.agent.report(work, succeeded=True)
    # A writer of the bucket puts a FIFO and a link where two masked inputs were.
    (fifo,) = (tmp / "store").rglob("secagg-a1-*-masked-cluster-02")
    fifo.unlink()
    os.mkfifo(fifo)
    (link,) = (tmp / "store").rglob("secagg-a1-*-masked-cluster-03")
    link.unlink()
    link.symlink_to(fifo)
    train = reconcile_pass(tmp, remote, fleet)
    assert train.message == "round 1: U2: 8 survivors, 2 dropped"
    reveal, _ = _phase(tmp, remote, fleet)
    assert isinstance(reveal.action, Aggregate)
    assert reveal.record["failed"] == ["cluster-02", "cluster-03"]
