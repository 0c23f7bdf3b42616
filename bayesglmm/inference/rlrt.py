"""The exact finite-sample null distribution of the restricted likelihood-ratio test.

For a linear mixed model with one variance component under test,

.. math::

    y = X\\beta + Z b + \\varepsilon, \\qquad b \\sim N(0, \\sigma_b^2 \\Sigma),
    \\qquad \\varepsilon \\sim N(0, \\sigma^2 I_n),

and ``H0: lambda = sigma_b^2 / sigma^2 = 0``, Crainiceanu & Ruppert (2004, *J. R. Stat.
Soc. B* 66, 165-185, Theorem 2 with ``lambda0 = 0``) show that the restricted LRT
``2 (l_REML(full) - l_REML(null))`` has the distribution of

.. math::

    \\sup_{\\lambda \\ge 0} \\Big[ (n - p) \\log\\Big(1 + \\frac{N_n(\\lambda)}{D_n(\\lambda)}
    \\Big) - \\sum_{s=1}^{K} \\log(1 + \\lambda \\mu_s) \\Big], \\quad
    N_n = \\sum_s \\frac{\\lambda \\mu_s}{1 + \\lambda \\mu_s} w_s, \\quad
    D_n = \\sum_s \\frac{w_s}{1 + \\lambda \\mu_s} + \\sum_{s=K+1}^{n-p} w_s,

with ``w_s`` independent ``chi2(1)`` and ``mu_s`` the eigenvalues of
``Sigma^{1/2} Z' P0 Z Sigma^{1/2}``, ``P0 = I - X (X'X)^{-1} X'``. It does not depend on
``beta`` or ``sigma``: it is exact, not asymptotic.

:func:`rlrt_sample` draws from it as R's RLRsim (``RLRTSim``, Scheipl, Greven & Kuechenhoff
2008, *Comput. Stat. Data Anal.* 52, 3283-3299) does: the ``K = ncol(Z)`` eigenvalues,
scaled by their maximum; ``lambda`` on the grid ``0, exp(seq(-10, 8, length = 199))``; and,
per draw, the grid walked upwards from ``lambda = 0`` while the function does not decrease
(the first local maximum, the value RLRsim keeps). ``sum_{s > K} w_s`` is one
``chi2(max(0, n - p - K))`` draw.

With other variance components in the model (RLRsim's ``exactRLRT(m, mA, m0)``), the
distribution above is not exact. RLRsim computes the eigenvalues from the model ``m``
holding only the tested effect (``others="ignore"`` in
:func:`~bayesglmm.inference.variance_tests.test_variance`). By default the other
components are held at their estimates under the null (the reduced fit): with
``V0 = I + Z_o D_o Z_o' / sigma^2`` the null covariance relative to ``sigma^2``, the
model is transformed by ``V0^{-1/2}``, which leaves one variance component with
independent errors, and the ``mu_s`` are the eigenvalues of
``Z' P0 Z`` with ``P0 = V0^{-1} - V0^{-1} X (X' V0^{-1} X)^{-1} X' V0^{-1}``. When the other
components are zero this is RLRsim's computation; otherwise it uses what is known of them
rather than ignoring them, an approximation in that their estimates are taken as the truth.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: RLRsim's defaults: grid of lambda and chunk of draws held in memory at once
LOG_GRID_LO = -10.0
LOG_GRID_HI = 8.0
GRID_LENGTH = 200
CHUNK = 2000


def lambda_grid(
    log_lo: float = LOG_GRID_LO, log_hi: float = LOG_GRID_HI, length: int = GRID_LENGTH
) -> np.ndarray:
    """``0, exp(seq(log_lo, log_hi, length = length - 1))``: RLRsim's grid for ``lambda0 = 0``."""
    return np.concatenate([[0.0], np.exp(np.linspace(log_lo, log_hi, length - 1))])


def _dense(a) -> np.ndarray:
    return np.asarray(a.toarray() if sp.issparse(a) else a, dtype=float)


def rlrt_eigenvalues(X, Z, W=None) -> np.ndarray:
    """The eigenvalues ``mu_s`` of ``Z' P0 Z``, scaled by their maximum, largest first.

    Parameters
    ----------
    X : ndarray (n, p)
        Fixed-effect design.
    Z : ndarray or sparse (n, K)
        Columns of the tested effect (``Sigma = I``: one variance, independent levels).
    W : ndarray or sparse (n, r), optional
        ``Z_o Lambda_o``: the other random effects times their relative covariance factor
        at the null estimates, so that ``V0 = I + W W'``. None: no other effect
        (``P0 = I - X (X'X)^{-1} X'``, RLRsim's case).

    Returns
    -------
    ndarray (K,)
        Non-negative, the largest equal to 1 (all zero if ``Z`` lies in the span of ``X``).
    """
    X = _dense(X)
    Z = _dense(Z)
    if W is None:
        VX, VZ = X, Z
    else:
        W = _dense(W)
        core = np.eye(W.shape[1]) + W.T @ W

        def vinv(a):
            return a - W @ np.linalg.solve(core, W.T @ a)

        VX, VZ = vinv(X), vinv(Z)
    # P0 Z = V^-1 Z - V^-1 X (X' V^-1 X)^-1 X' V^-1 Z ; Z' P0 Z symmetric K x K
    XtVX = X.T @ VX
    M = Z.T @ VZ - (Z.T @ VX) @ np.linalg.solve(XtVX, VX.T @ Z)
    M = 0.5 * (M + M.T)
    mu = np.clip(np.linalg.eigvalsh(M)[::-1], 0.0, None)
    top = mu[0] if mu.size else 0.0
    return mu / top if top > 0 else mu


def rlrt_sample(
    mu: np.ndarray,
    n: int,
    p: int,
    nsim: int = 10_000,
    random_seed: int | None = None,
    grid: np.ndarray | None = None,
) -> np.ndarray:
    """``nsim`` draws of the restricted LRT under ``lambda = 0`` (module docstring).

    Parameters
    ----------
    mu : ndarray (K,)
        Eigenvalues from :func:`rlrt_eigenvalues`.
    n, p : int
        Observations and fixed-effect columns.
    nsim : int
    random_seed : int, optional
        Seeds :func:`numpy.random.default_rng`; the same seed gives the same draws bitwise.
    grid : ndarray, optional
        Values of ``lambda``, increasing from 0 (default :func:`lambda_grid`).

    Returns
    -------
    ndarray (nsim,)
        Non-negative draws of the statistic.
    """
    mu = np.asarray(mu, dtype=float)
    grid = lambda_grid() if grid is None else np.asarray(grid, dtype=float)
    K = mu.size
    n0 = n - p
    df_rest = max(0, n - p - K)
    lm1 = 1.0 + np.outer(grid, mu)  # (g, K)
    fN = np.outer(grid, mu) / lm1
    fD = 1.0 / lm1
    penalty = np.sum(np.log1p(np.outer(grid, mu)), axis=1)  # (g,)
    rng = np.random.default_rng(random_seed)
    out = np.empty(nsim)
    for lo in range(0, nsim, CHUNK):
        m = min(CHUNK, nsim - lo)
        rest = rng.chisquare(df_rest, m) if df_rest > 0 else np.zeros(m)
        w = rng.chisquare(1.0, (m, K))
        N = w @ fN.T
        D = w @ fD.T + rest[:, None]
        lr = n0 * np.log1p(N / D) - penalty[None, :]  # (m, g); lr[:, 0] = 0
        # walk up the grid while the function does not decrease: the first local maximum
        down = lr[:, 1:] < lr[:, :-1]
        stop = np.where(down.any(axis=1), np.argmax(down, axis=1), grid.size - 1)
        out[lo : lo + m] = np.maximum(lr[np.arange(m), stop], 0.0)
    return out


def rlrt_p_value(statistic: float, sample: np.ndarray) -> tuple[float, float]:
    """``mean(sample > statistic)`` (RLRsim's ``mean(rlrt.obs < sample)``) and its Monte
    Carlo standard error ``sqrt(p (1 - p) / nsim)``; 1 and 0 for a statistic of 0."""
    if statistic <= 0:
        return 1.0, 0.0
    p = float(np.mean(sample > statistic))
    return p, float(np.sqrt(p * (1.0 - p) / sample.size))
