"""Frequentist estimators on one sparse PIRLS engine (no PyMC imported here).

- :mod:`.covariance`: the relative covariance factor ``Lambda(theta)`` (lme4's theta);
- :mod:`.response`: conditional log-likelihood, score and weights for every family/link;
- :mod:`.pirls`: conditional modes by penalized IRLS, the Laplace deviance and its gradient;
- :mod:`.devfun`, :mod:`.optimize`, :mod:`.assemble`: deviance function, optimizer, result;
- :mod:`.laplace` (``method="laplace"``), :mod:`.agq` (``method="agq"``), :mod:`.pql`
  (``method="pql"``) and the linear mixed model :mod:`.lmm`;
- :mod:`.montecarlo`: Monte Carlo EM (``method="mcem"``), Monte Carlo Newton-Raphson
  (``method="mcnr"``) and simulated maximum likelihood (``method="sml"``);
- :mod:`.intervals`: parametric bootstrap and profile-likelihood intervals;
- :mod:`.summary`: an lme4-like text summary.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def blas_threads(n: int | None = 1):
    """Limit BLAS threads inside the block (a no-op without ``threadpoolctl``).

    The dense Schur complements here are small to moderate (at most a few thousand rows);
    on a shared machine a multi-threaded BLAS spends more time synchronizing than computing
    on them, by a factor up to 10 measured on 2 busy cores. ``n=None`` leaves BLAS alone.
    """
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield
