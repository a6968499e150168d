"""FedMedian's coordinate median is ``np.median``'s, to the bit, whatever the values.

The median is taken by a sort (faster) instead of ``np.median``'s partition; a round's
model must still be the bytes that rounds aggregated before recorded, so that ``verify
--reaggregate`` of an old history holds. Signed zeros are where the two could differ.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fl_gitops.aggregate.strategies.fedmedian import coordinate_median

# Values a float32 update holds, with exact zeros of both signs and ties made likely.
VALUES = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 3.4e38, -3.4e38, 1e-45]),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 24), st.integers(1, 40)), elements=VALUES))
def test_the_median_is_np_medians_bits(stack: np.ndarray) -> None:
    expected = np.median(stack, axis=0)
    got = coordinate_median(stack.copy(), np.ones(stack.shape[0]))
    assert got.view(np.uint64).tolist() == expected.view(np.uint64).tolist()


def test_zeros_of_both_signs_in_the_middle_keep_np_medians_sign() -> None:
    rng = np.random.default_rng(5)
    for k in (2, 3, 4, 15, 16):
        stack = rng.normal(size=(k, 5000))
        zero = rng.random(stack.shape) < 0.6
        stack[zero] = np.where(rng.random(stack.shape) < 0.5, 0.0, -0.0)[zero]
        expected = np.median(stack, axis=0)
        got = coordinate_median(stack, np.ones(k))
        assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))
