"""A round's bytes and record do not depend on how many threads numpy's BLAS may use.

The DP clip's exact norms are float64 dot products, which OpenBLAS splits across its
threads for long vectors: before the aggregation held BLAS to one thread, the same round
recorded another median distance (and, on a large model, wrote another model) on two BLAS
threads than on one, so ``verify --reaggregate`` on a machine with another core count could
not reproduce it.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from fl_gitops.aggregate import aggregate_round

SIZE = 1 << 18  # long enough that OpenBLAS spreads one chunk's dot over its threads


def _blas_threads() -> int:
    return max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=0)


@pytest.mark.skipif(_blas_threads() < 2, reason="numpy's BLAS runs one thread on this machine")
@pytest.mark.parametrize(
    "strategy, options",
    [
        ("dp-fixed-clipping", {"clipping_norm": 3.0}),
        ("fedavg", {}),
    ],
)
def test_the_same_bytes_on_one_blas_thread_and_on_two(round_files, strategy, options):
    rng = np.random.default_rng(7)
    base = {
        "w": rng.standard_normal(SIZE, dtype=np.float32),
        "v": rng.standard_normal(SIZE // 2, dtype=np.float32),
    }
    rf = round_files(base)
    for i in range(4):
        update = {
            n: (a + rng.standard_normal(a.size, dtype=np.float32) * np.float32(0.01 * (i + 1)))
            for n, a in base.items()
        }
        rf.add(f"cluster-{i}", update, num_examples=10 + i)
    seen = set()
    for threads in (2, 1):
        with threadpool_limits(limits=threads, user_api="blas"):
            result = aggregate_round(
                rf.base_path, rf.updates(), strategy=strategy, options=options, round=1
            )
            # The caller's own setting is left as it was.
            assert _blas_threads() == threads
        assert not result.rejected
        seen.add((result.digest, repr(result.record["influence"]["median_distance"])))
    assert len(seen) == 1
