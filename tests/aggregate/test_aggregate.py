"""Streaming aggregation: exact arithmetic, fixed order, resumable state."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from fl_gitops.aggregate import NotEnoughUpdates, aggregate_from_store, aggregate_round
from fl_gitops.aggregate.checks import Limits
from fl_gitops.errors import StoreError
from fl_gitops.store import ModelStore
from fl_gitops.tensors import load_bytes, parse_header, serialize

SHAPES = {"conv.weight": (8, 3, 3, 3), "fc.bias": (10,), "fc.weight": (10, 72)}


def model(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: (rng.normal(size=s) * scale).astype(np.float32) for n, s in SHAPES.items()}


@pytest.fixture
def seven(round_files):
    rf = round_files(model(0))
    for k in range(7):
        rf.add(f"cluster-{k}", model(100 + k), num_examples=int(10 + 37 * k))
    return rf


def test_fedavg_equals_a_float64_reference_within_float32_rounding(seven):
    result = aggregate_round(seven.base_path, seven.updates(), strategy="fedavg", round=1)
    new = load_bytes(result.model)
    total = sum(10 + 37 * k for k in range(7))
    for name in SHAPES:
        ref = sum((10 + 37 * k) * model(100 + k)[name].astype(np.float64) for k in range(7))
        ref /= total
        # Rounding the exact mean to float32 moves it by at most half a float32 ulp.
        half_ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64) / 2
        assert np.all(np.abs(new[name].astype(np.float64) - ref) <= half_ulp)


def test_fedavg_of_identical_updates_is_that_update(round_files):
    rf = round_files(model(0))
    same = model(5, scale=3.0)
    for k in range(5):
        rf.add(f"c{k}", same, num_examples=k + 1)
    result = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1)
    assert result.model == serialize(same)


@pytest.mark.parametrize(
    ("strategy", "options"),
    [("fedavg", {}), ("fedmedian", {}), ("multikrum", {"f": 1}), ("fedadam", {})],
)
def test_any_arrival_order_gives_the_same_sha256(seven, strategy, options):
    updates = seven.updates()
    digests = {
        aggregate_round(
            seven.base_path, list(order), strategy=strategy, options=options, round=1
        ).digest
        for order in itertools.islice(itertools.permutations(updates), 0, 5040, 997)
    }
    assert len(digests) == 1


def test_the_chunk_size_does_not_change_a_bit(seven):
    small = aggregate_round(
        seven.base_path, seven.updates(), strategy="fedavg", round=1, chunk_elements=7
    )
    default = aggregate_round(seven.base_path, seven.updates(), strategy="fedavg", round=1)
    assert small.digest == default.digest


def test_the_base_can_be_given_as_bytes(seven):
    from_bytes = aggregate_round(seven.base_bytes, seven.updates(), strategy="fedavg", round=1)
    from_path = aggregate_round(seven.base_path, seven.updates(), strategy="fedavg", round=1)
    assert from_bytes.digest == from_path.digest
    assert from_bytes.record["base_model"] == seven.base_digest


def test_the_new_model_has_the_base_layout_and_no_varying_metadata(seven):
    result = aggregate_round(seven.base_path, seven.updates(), strategy="fedavg", round=1)
    header = parse_header(result.model, len(result.model))
    base = parse_header(seven.base_bytes, len(seven.base_bytes))
    assert header.signature() == base.signature()
    assert header.metadata == {}
    assert list(header.tensors) == sorted(SHAPES)


def test_the_record_says_what_happened(seven):
    result = aggregate_round(seven.base_path, seven.updates(), strategy="fedavg", round=1)
    record = result.record
    assert json.loads(json.dumps(record)) == record
    assert record["round"] == 1
    assert record["strategy"] == "fedavg"
    assert record["base_model"] == seven.base_digest
    assert record["model"] == result.digest
    assert record["contributors"] == [f"cluster-{k}" for k in range(7)]
    assert sum(record["weights"].values()) == pytest.approx(1.0)
    assert record["num_examples"]["cluster-6"] == 10 + 37 * 6


def put_round(store: ModelStore, round_: int, base_digest: str, seed: int) -> None:
    for k in range(4):
        tensors = model(1000 * round_ + 10 * seed + k)
        store.put_update(
            round_,
            f"cluster-{k}",
            serialize(tensors),
            {"base_model": base_digest, "num_examples": 5 + k, "metrics": {"acc": 0.1 * k}},
        )


@pytest.mark.parametrize("strategy", ["fedadam", "fedavgm", "fedyogi"])
def test_strategy_state_through_the_store_resumes_exactly(tmp_path, strategy):
    """Three rounds in one go, and three rounds each in a 'fresh' job: the same models."""

    def three_rounds(store_uri: str, restart: bool) -> list[str]:
        store = ModelStore.open(store_uri)
        digest = store.put_model(serialize(model(0)))
        digests = []
        state = None
        for round_ in (1, 2, 3):
            put_round(store, round_, digest, seed=1)
            if restart:
                # A new hub job: only the store carries state from the last round.
                store = ModelStore.open(store_uri)
                result = aggregate_from_store(store, round_, digest, strategy=strategy)
            else:
                with store.model_file(digest) as base:
                    updates = [
                        (
                            c,
                            store.update_uri(round_, c).removeprefix("file://"),
                            store.read_update_meta(round_, c),
                        )
                        for c in store.list_updates(round_)
                    ]
                    result = aggregate_round(
                        base, updates, strategy=strategy, round=round_, state=state
                    )
                state = result.new_state
            store.put_state(strategy, round_, result.new_state)
            digest = store.put_model(result.model)
            digests.append(digest)
        return digests

    continuous = three_rounds(str(tmp_path / "a"), restart=False)
    restarted = three_rounds(str(tmp_path / "b"), restart=True)
    assert continuous == restarted
    assert len(set(continuous)) == 3


def test_aggregate_from_store_reads_memory_and_rejects_bad_metadata(memory_store):
    digest = memory_store.put_model(serialize(model(0)))
    put_round(memory_store, 1, digest, seed=0)
    memory_store.fs.pipe_file(memory_store.root + "/rounds/1/updates/broken.json", b"{")
    result = aggregate_from_store(memory_store, 1, digest, strategy="fedavg")
    assert result.contributors == [f"cluster-{k}" for k in range(4)]
    assert result.rejected == {"broken": "metadata is not valid JSON"}
    assert result.record["rejected"] == result.rejected
    assert result.metrics == pytest.approx({"acc": (0.6 * 0 + 0.1 * 6 + 0.2 * 7 + 0.3 * 8) / 26})


def test_state_of_another_strategy_is_refused(seven):
    other = aggregate_round(seven.base_path, seven.updates(), strategy="fedavgm", round=1)
    with pytest.raises(StoreError) as exc:
        aggregate_round(
            seven.base_path, seven.updates(), strategy="fedadam", round=2, state=other.new_state
        )
    assert str(exc.value) == "strategy state: written by strategy 'fedavgm', expected 'fedadam'"


def test_too_few_updates_in_the_store_carry_the_counts_and_every_reason(memory_store):
    digest = memory_store.put_model(serialize(model(0)))
    put_round(memory_store, 1, digest, seed=0)
    memory_store.fs.pipe_file(memory_store.root + "/rounds/1/updates/broken.json", b"{")
    with pytest.raises(NotEnoughUpdates) as exc:
        aggregate_from_store(
            memory_store, 1, digest, strategy="krum", options={"f": 1}, limits=Limits()
        )
    assert str(exc.value) == "round 1: krum with f=1 needs at least 5 valid updates, got 4"
    assert (exc.value.round, exc.value.valid, exc.value.needed) == (1, 4, 5)
    assert exc.value.requirement == "krum with f=1 needs at least 5 valid updates, got 4"
    assert exc.value.rejected == {"broken": "metadata is not valid JSON"}
    assert exc.value.more == ["rejected broken: metadata is not valid JSON"]

    with pytest.raises(NotEnoughUpdates) as exc:
        aggregate_from_store(
            memory_store, 1, digest, strategy="fedavg", limits=Limits(min_updates=6)
        )
    assert str(exc.value) == "round 1: 4 valid update(s), at least 6 needed"
    assert (exc.value.valid, exc.value.needed, exc.value.requirement) == (4, 6, None)
    assert exc.value.rejected == {"broken": "metadata is not valid JSON"}


def test_aggregate_from_store_leaves_the_engines_frozen_result_as_it_was(memory_store, monkeypatch):
    from fl_gitops.aggregate import _engine

    digest = memory_store.put_model(serialize(model(0)))
    put_round(memory_store, 1, digest, seed=0)
    memory_store.fs.pipe_file(memory_store.root + "/rounds/1/updates/broken.json", b"{")
    inner = []
    real = _engine.aggregate_round

    def keep(*args, **kwargs):
        inner.append(real(*args, **kwargs))
        return inner[-1]

    monkeypatch.setattr(_engine, "aggregate_round", keep)
    result = aggregate_from_store(memory_store, 1, digest, strategy="fedavg")
    assert result.rejected == {"broken": "metadata is not valid JSON"}
    assert result.record["rejected"] == result.rejected
    assert inner[0].rejected == {}
    assert inner[0].record["rejected"] == {}
    assert result.digest == inner[0].digest
