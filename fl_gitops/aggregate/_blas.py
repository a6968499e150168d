"""One BLAS thread while a round is aggregated, so that its bytes do not depend on the cores.

numpy hands a float64 dot product to its bundled OpenBLAS, which splits a long one across
every core it sees and adds the per-thread partial sums: the result's last bits then depend
on the thread count. The exact norms behind DP clipping are such dots, so the same round
gave a different model on a 2-core pod than with one BLAS thread (measured here:
``dp-fixed-clipping`` over 6 updates of 50 MB), and ``verify --reaggregate`` on a machine
with another core count would have reported a round it could not reproduce. Spreading the
dot did not pay either: the aggregation's reader threads already keep the cores busy, and
waking BLAS threads for 2^15-element dots made them 600x slower (1.9 ms against 3 us) and
the DP round 2x slower. Krum's Gram product ran no faster on two BLAS threads than on one.

What remains machine-dependent is the BLAS kernel itself (another CPU may pick another
one, with other partial sums): docs/operations.md says so.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["one_blas_thread", "with_one_blas_thread"]

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS limited to one thread inside the block, restored after it (nested: a no-op)."""
    from threadpoolctl import threadpool_limits  # a few ms; only where a round runs

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def with_one_blas_thread(func: F) -> F:
    """``func`` run under :func:`one_blas_thread`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_blas_thread():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
