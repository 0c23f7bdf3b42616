"""Convergence diagnostics of MCMC draws: rank-normalized split R-hat, bulk and tail ESS and
the Monte Carlo standard error of the mean (Vehtari, Gelman, Simpson, Carpenter & Bürkner
2021, Bayesian Analysis 16(2), 667-718).

The same estimators as ArviZ 0.x (``az.rhat``, ``az.ess(method="bulk"|"tail")``,
``az.mcse(method="mean")``: same rank normalization with Blom's offset 3/8, same split
chains, same FFT autocovariances and Geyer's initial monotone sequence, same type-7
quantiles), in NumPy over all parameters at once. ArviZ computes them one parameter at a
time through xarray and compiles a Numba variance on its first call in a process, which
costs a NumPy-only summary of a few parameters close to a second; tests check these values
against ArviZ's.
"""

from __future__ import annotations

import numpy as np

#: Blom's fractional offset of the rank normal scores
_BLOM = 3.0 / 8.0
#: tail ESS: the quantiles whose indicator chains are measured
TAIL_PROBS = (0.05, 0.95)


def ess_rhat_mcse(stacked: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """R-hat, bulk ESS, tail ESS and MCSE of the mean of every column of ``stacked``.

    Parameters
    ----------
    stacked : ndarray, shape (chain, draw, parameter)

    Returns
    -------
    rhat, ess_bulk, ess_tail, mcse_mean : ndarray, shape (parameter,)
        NaN for a parameter with a missing draw, all NaN with fewer than 4 draws; R-hat is
        NaN with one chain.
    """
    x = np.asarray(stacked, dtype=float)
    n_chain, n_draw, k = x.shape
    out = tuple(np.full(k, np.nan) for _ in range(4))
    if n_draw < 4 or n_chain < 1:
        return out
    ok = ~np.isnan(x).any(axis=(0, 1))
    if not ok.any():
        return out
    x = x[:, :, ok]
    rhat, bulk, tail, mcse = out
    with np.errstate(divide="ignore", invalid="ignore"):
        split = _split_chains(x)
        if n_chain > 1:
            r_bulk = _rhat(_z_scale(split))
            r_tail = _rhat(_z_scale(np.abs(split - _median(split))))
            # Python's max(bulk, tail): the first unless the second is larger
            rhat[ok] = np.where(r_tail > r_bulk, r_tail, r_bulk)
        bulk[ok] = _ess(_z_scale(split))
        low, high = (_ess(_split_chains(x <= _quantile7(x, p))) for p in TAIL_PROBS)
        tail[ok] = np.where(high < low, high, low)
        sd = np.std(x.reshape(-1, x.shape[-1]), axis=0, ddof=1)
        mcse[ok] = sd / np.sqrt(_ess(split))
    return rhat, bulk, tail, mcse


def _split_chains(x: np.ndarray) -> np.ndarray:
    """(chain, draw, k) -> (2 chain, draw // 2, k): first and last halves of each chain."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _median(x: np.ndarray) -> np.ndarray:
    return np.median(x.reshape(-1, x.shape[-1]), axis=0)


def _quantile7(x: np.ndarray, p: float) -> np.ndarray:
    """Type-7 quantile of all draws of each column, in the arithmetic of
    ``scipy.stats.mstats.mquantiles(alphap=1, betap=1)`` (ArviZ's quantile)."""
    flat = np.sort(x.reshape(-1, x.shape[-1]), axis=0)
    n = flat.shape[0]
    aleph = n * p + (1.0 - p)
    j = int(np.floor(np.clip(aleph, 1, n - 1)))
    gamma = float(np.clip(aleph - j, 0, 1))
    return (1.0 - gamma) * flat[j - 1] + gamma * flat[j]


def _average_ranks(flat: np.ndarray) -> np.ndarray:
    """Ranks 1..n of each column, ties given their average rank (``rankdata``'s
    ``method="average"``)."""
    n, k = flat.shape
    ranks = np.empty((n, k))
    for j in range(k):
        col = flat[:, j]
        order = np.argsort(col, kind="mergesort")
        inverse = np.empty(n, dtype=np.intp)
        inverse[order] = np.arange(n)
        sorted_col = col[order]
        new = np.r_[True, sorted_col[1:] != sorted_col[:-1]]
        dense = np.cumsum(new)[inverse]
        bounds = np.r_[np.nonzero(new)[0], n]
        ranks[:, j] = 0.5 * (bounds[dense] + bounds[dense - 1] + 1)
    return ranks


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank normal scores of all draws of each column (Blom's offset)."""
    from scipy.special import ndtri

    flat = x.reshape(-1, x.shape[-1])
    n = flat.shape[0]
    z = ndtri((_average_ranks(flat) - _BLOM) / (n - 2 * _BLOM + 1))
    return z.reshape(x.shape)


def _rhat(x: np.ndarray) -> np.ndarray:
    """Potential scale reduction of each column of (chain, draw, k)."""
    n = x.shape[1]
    between = n * np.var(x.mean(axis=1), axis=0, ddof=1)
    within = np.mean(np.var(x, axis=1, ddof=1), axis=0)
    return np.sqrt((between / within + n - 1) / n)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariances at every lag along the draw axis (FFT, zero padded, biased)."""
    from scipy.fftpack import next_fast_len

    n = x.shape[1]
    centered = x - x.mean(axis=1, keepdims=True)
    f = np.fft.rfft(centered, n=next_fast_len(2 * n), axis=1)
    f *= np.conjugate(f)
    return np.fft.irfft(f, n=next_fast_len(2 * n), axis=1)[:, :n] / n


def _ess(x: np.ndarray) -> np.ndarray:
    """Effective sample size of each column of (chain, draw, k): autocorrelations averaged
    over chains, truncated by Geyer's initial positive and monotone sequences."""
    x = np.asarray(x, dtype=float)
    m, n, k = x.shape
    size = m * n
    acov = _autocov(x)
    mean_var = np.mean(acov[:, 0], axis=0) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + np.var(x.mean(axis=1), axis=0, ddof=1)
    rho_all = 1.0 - (mean_var - np.mean(acov, axis=0)) / var_plus  # (lag, k)
    constant = (x.max(axis=(0, 1)) - x.min(axis=(0, 1))) < np.finfo(float).resolution
    ess = np.empty(k)
    for j in range(k):
        ess[j] = size if constant[j] else _geyer(rho_all[:, j], n, size)
    return ess


def _geyer(rho: np.ndarray, n: int, size: int) -> float:
    """ESS from the chain-averaged autocorrelations ``rho`` (lag 0..n-1)."""
    rho_t = np.zeros(n)
    even, odd = 1.0, rho[1]
    rho_t[0], rho_t[1] = even, odd
    t = 1
    while t < n - 3 and (even + odd) > 0.0:
        even, odd = rho[t + 1], rho[t + 2]
        if even + odd >= 0:
            rho_t[t + 1], rho_t[t + 2] = even, odd
        t += 2
    max_t = t - 2
    if even > 0:
        rho_t[max_t + 1] = even
    t = 1
    while t <= max_t - 2:
        if rho_t[t + 1] + rho_t[t + 2] > rho_t[t - 1] + rho_t[t]:
            rho_t[t + 1] = (rho_t[t - 1] + rho_t[t]) / 2.0
            rho_t[t + 2] = rho_t[t + 1]
        t += 2
    tau = -1.0 + 2.0 * np.sum(rho_t[: max_t + 1]) + np.sum(rho_t[max_t + 1 : max_t + 2])
    tau = max(tau, 1 / np.log10(size))
    return np.nan if np.isnan(rho_t).any() else size / tau
