"""The package's one limiter of BLAS threads."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def blas_threads(n: int | None = 1):
    """Limit BLAS to ``n`` threads inside the block; ``None`` leaves BLAS alone.

    The dense blocks of the fits (Schur complements, Gibbs steps) have at most a few thousand
    rows; on them a multi-threaded BLAS spends more time synchronizing than computing, by a
    factor up to 10 on a busy machine. A no-op without ``threadpoolctl``.
    """
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only speed is at stake
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield
