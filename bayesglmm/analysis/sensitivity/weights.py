"""Pareto-smoothed importance weights and weighted summaries of posterior draws.

The smoothing is ArviZ's :func:`arviz.psislw` (Vehtari et al. 2024); this module adds the
weighted quantiles and their Monte Carlo standard errors that the sensitivity reports need.
Draws are flattened ``(chain, draw) -> (sample,)``; the autocorrelation of the Markov chains
enters the errors through the relative efficiency ``r_eff = ESS / S`` of the unweighted
draws (as the loo package does), capped at 1.
"""

from __future__ import annotations

import warnings

import numpy as np


def khat_limit(n: int) -> float:
    """Largest reliable Pareto k-hat for ``n`` draws: ``min(1 - 1/log10(n), 0.7)``
    (Vehtari et al. 2024, as R's posterior and loo packages)."""
    return float(min(1.0 - 1.0 / np.log10(max(n, 11)), 0.7))


def psis(log_ratio: np.ndarray) -> tuple[np.ndarray, float]:
    """Normalized Pareto-smoothed weights (flat) and k-hat of ``log_ratio`` (chain, draw)."""
    from ..._arviz import import_arviz

    az = import_arviz()

    flat = np.asarray(log_ratio, dtype=float).ravel()
    flat = np.where(np.isnan(flat), -np.inf, flat)
    if not np.any(np.isfinite(flat)):
        return np.full(flat.shape, np.nan), float("inf")
    top = np.max(flat[np.isfinite(flat)])
    if np.ptp(flat[np.isfinite(flat)]) < 1e-12 and np.all(np.isfinite(flat)):
        return np.full(flat.shape, 1.0 / flat.size), 0.0  # the ratio is constant: no change
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lw, khat = az.psislw(flat - top)
    w = np.exp(lw - np.max(lw))
    return w / w.sum(), float(np.asarray(khat))


def relative_efficiency(x: np.ndarray) -> float:
    """ESS / S of draws ``x`` (chain, draw), capped at 1 (no credit for antithetic chains)."""
    from ..._arviz import import_arviz

    az = import_arviz()

    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] < 4 or np.ptp(x) == 0:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = float(az.ess(x))
    return float(np.clip(ess / x.size, 1e-3, 1.0)) if np.isfinite(ess) else 1.0


def weighted_quantile(x: np.ndarray, w: np.ndarray, q) -> np.ndarray:
    """Quantiles of the weighted sample (linear interpolation of the weighted ECDF)."""
    order = np.argsort(x)
    xs, ws = x[order], w[order]
    cdf = np.cumsum(ws) - 0.5 * ws
    cdf /= ws.sum()
    return np.interp(np.atleast_1d(q), cdf, xs)


def weighted_summary(x: np.ndarray, w: np.ndarray | None = None) -> dict:
    """Mean, sd, median and 95% interval of ``x`` (chain, draw) under weights ``w`` (flat),
    with the Monte Carlo standard errors of the mean and the median.

    The errors are the importance-sampling delta-method ones, :math:`\\mathrm{Var}(\\hat\\mu)
    \\approx \\sum_i w_i^2 (x_i - \\hat\\mu)^2 / r_\\mathrm{eff}` with normalized weights; for
    the median the same on the indicator :math:`1\\{x_i \\le \\hat m\\}`, carried to the
    parameter's scale through the weighted quantile function.
    """
    flat = np.asarray(x, dtype=float).ravel()
    if w is None:
        w = np.full(flat.size, 1.0 / flat.size)
    mean = float(np.sum(w * flat))
    sd = float(np.sqrt(max(np.sum(w * (flat - mean) ** 2), 0.0)))
    q = weighted_quantile(flat, w, [0.025, 0.5, 0.975])
    median = float(q[1])
    r_mean = relative_efficiency(np.asarray(x, dtype=float))
    se_mean = float(np.sqrt(np.sum(w**2 * (flat - mean) ** 2) / r_mean))
    ind = (np.asarray(x, dtype=float) <= median).astype(float)
    r_med = relative_efficiency(ind)
    p = float(np.sum(w * ind.ravel()))
    se_p = float(np.sqrt(np.sum(w**2 * (ind.ravel() - p) ** 2) / r_med))
    lo, hi = weighted_quantile(flat, w, [max(0.5 - se_p, 0.0), min(0.5 + se_p, 1.0)])
    return {
        "mean": mean,
        "sd": sd,
        "median": median,
        "q2.5": float(q[0]),
        "q97.5": float(q[2]),
        "mcse_mean": se_mean,
        "mcse_median": float((hi - lo) / 2.0),
        "ess_weights": float(1.0 / np.sum(w**2)),
    }
