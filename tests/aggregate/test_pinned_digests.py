"""Every strategy's bytes on one fixed round, pinned: the refactors of aggregation keep them.

Eleven updates of a small model with a float32 and an int64 tensor, stored in two layouts,
with weights that differ; one update is far from the others (Krum must drop it, DP must clip
it). The digests below were computed before each strategy took its combining step into its
own module; a change of a single bit in any strategy's arithmetic or order fails here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fl_gitops.aggregate import aggregate_round
from fl_gitops.aggregate.checks import Limits
from fl_gitops.tensors import serialize

SHAPES = {"a.weight": (40, 30), "b.bias": (7,), "c.weight": (3, 500)}


def model(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {n: (rng.normal(size=s) * scale).astype(np.float32) for n, s in SHAPES.items()}
    out["d.count"] = np.array([seed, 2 * seed, 3], dtype=np.int64)
    return out


def reversed_layout(tensors: dict[str, np.ndarray]) -> bytes:
    """Safetensors bytes with the tensors stored in reverse name order."""
    codes = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
    doc: dict[str, object] = {}
    pos = 0
    blobs = []
    for name in sorted(tensors, reverse=True):
        arr = tensors[name]
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        doc[name] = {
            "dtype": codes[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [pos, pos + len(data)],
        }
        blobs.append(data)
        pos += len(data)
    text = json.dumps(doc).encode()
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


@pytest.fixture(scope="module")
def eleven(tmp_path_factory):
    from tests.aggregate.conftest import RoundFiles

    rf = RoundFiles(tmp_path_factory.mktemp("pinned"), model(0))
    for k in range(11):
        tensors = model(10 + k, scale=40.0 if k == 4 else 1.0)
        data = reversed_layout(tensors) if k in (2, 7) else serialize(tensors)
        rf.add(f"c{k:02d}", data=data, num_examples=3 + 5 * k)
    return rf


CASES = [
    ("fedavg", {}, None),
    ("fedprox", {"mu": 0.1}, None),
    ("fedavgm", {}, None),
    ("fedadam", {}, None),
    ("fedyogi", {}, None),
    ("fedadagrad", {}, None),
    ("fedmedian", {}, None),
    ("fedtrimmedavg", {"beta": 0.2}, None),
    ("krum", {"f": 2}, None),
    ("multikrum", {"f": 2}, None),
    ("multikrum", {"f": 1, "m": 3}, None),
    ("dp-fixed-clipping", {"clipping_norm": 74.0, "noise_multiplier": 0.7}, None),
    (
        "dp-fixed-clipping",
        {"clipping_norm": 74.0, "noise_multiplier": 0.0, "inner": "fedadam"},
        None,
    ),
    ("fedavg", {}, 1e30),
]

PINNED: dict[int, str] = {
    0: "sha256:825ad349f25c2e079e869ff3a9e2e3cff147666dbcb06526cd3172a1ae46eb03",
    1: "sha256:825ad349f25c2e079e869ff3a9e2e3cff147666dbcb06526cd3172a1ae46eb03",
    2: "sha256:825ad349f25c2e079e869ff3a9e2e3cff147666dbcb06526cd3172a1ae46eb03",
    3: "sha256:fdcbfd94d0f8473950c94f0416dbb30977dfda702fca80b23fef4487dd9979dc",
    4: "sha256:e55a40503993b0e9458205f28686e4c854339823dbbe35a64b0398bea04c985e",
    5: "sha256:d70f50bb8780c3284762cbaab42df1b3f0e1ad954aaacb9cdf8f674bd5b06644",
    6: "sha256:46bd7daee05ec1674405a085a96d97176610c2eeb167f78a798b082674d23960",
    7: "sha256:aba43f152815b96397729b3d492573ae5e2830227dd0f2b3bd0f2cbb42cd2a27",
    8: "sha256:f75454c04092f6ee374617b9f63ccc4f332a2232868fa36d2e24cf41ceba0586",
    9: "sha256:04d905292e8a86fcbdfa23bb199239c7f8f84a5ef2493531b90eb55a38e234bf",
    10: "sha256:e8cc61f2a2b1d5410ab64c7999fdc23975691c37b94a30c721dd54b159618172",
    11: "sha256:3ebc9be9c23fadb65ce02560b4b199c055538b712aa69ede4b73237776f21026",
    12: "sha256:142ee2f02308dbcf011d899a411e32bbcfdc491a69df6195e6f80fe2f7354042",
    13: "sha256:825ad349f25c2e079e869ff3a9e2e3cff147666dbcb06526cd3172a1ae46eb03",
}


@pytest.mark.parametrize(("index", "case"), list(enumerate(CASES)))
def test_each_strategy_gives_the_pinned_bytes(eleven, index, case):
    strategy, options, bound = case
    result = aggregate_round(
        eleven.base_path,
        eleven.updates(),
        strategy=strategy,
        options=options,
        round=1,
        seed=11,
        # The round's far update (c04) stays in: these pins predate the distance bound.
        limits=Limits(max_l2_norm=bound, median_distance_multiple=None),
    )
    assert result.rejected == {}
    assert result.digest == PINNED[index], (strategy, options)


def test_by_default_the_far_update_is_refused_and_the_bytes_are_those_of_the_other_ten(eleven):
    """FedAvg sums in the pass that measures; the rebuilt sum equals a round without c04."""
    for strategy, options in (("fedavg", {}), ("fedmedian", {}), ("fedadam", {})):
        bounded = aggregate_round(
            eleven.base_path,
            eleven.updates(),
            strategy=strategy,
            options=options,
            round=1,
            seed=11,
        )
        assert list(bounded.rejected) == ["c04"]
        assert bounded.rejected["c04"].startswith("L2 distance to the global model is ")
        assert "over 10 x the round's median distance of" in bounded.rejected["c04"]
        without = aggregate_round(
            eleven.base_path,
            [u for u in eleven.updates() if u.cluster != "c04"],
            strategy=strategy,
            options=options,
            round=1,
            seed=11,
            limits=Limits(median_distance_multiple=None),
        )
        assert bounded.digest == without.digest, strategy
