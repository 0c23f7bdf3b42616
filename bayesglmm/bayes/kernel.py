"""A compiled log-density of the common GLMMs, for NUTS without PyTensor compilation.

The density is one generic Numba function of the data arrays, compiled once and cached on
disk (``cache=True``), so a new process pays no model compilation. It covers the models most
fits use: binomial/Bernoulli with logit link, Poisson with log link and Gaussian with
identity link; Normal priors on fixed effects; uncorrelated random-effect columns in the
noncentered parameterization with HalfNormal priors on their standard deviations; HalfNormal
prior on the Gaussian residual sd. Everything else goes through the PyMC model.

The density equals the PyMC model's ``logp`` (normalizing constants and log-transform
Jacobians included); tests check value and gradient against PyMC at random points.

Unconstrained parameter vector, in order: ``beta`` (p), ``log sd`` of each random-effect
column (K), the standardized effects ``z`` (q, term by term, level-major), and
``log sigma`` for Gaussian models.
"""

from __future__ import annotations

import math

import numba
import numpy as np

BINOMIAL_LOGIT, POISSON_LOG, GAUSSIAN_IDENTITY = 0, 1, 2
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG2 = math.log(2.0)


@numba.njit(cache=True, nogil=True)
def _log1pexp(eta):
    if eta > 0:
        return eta + math.log1p(math.exp(-eta))
    return math.log1p(math.exp(eta))


@numba.njit(cache=True, nogil=True)
def _prior_part(x, beta_mu, beta_sd, sd_scale, disp_scale, family, p, K, q, g):
    """Log prior (with log-transform Jacobians); writes its gradient into ``g``."""
    lp = 0.0
    for j in range(p):
        d = (x[j] - beta_mu[j]) / beta_sd[j]
        lp += -0.5 * d * d - math.log(beta_sd[j]) - _HALF_LOG_2PI
        g[j] = -d / beta_sd[j]
    for c in range(K):
        ls = x[p + c]
        r = math.exp(ls) / sd_scale[c]
        lp += _LOG2 - _HALF_LOG_2PI - math.log(sd_scale[c]) - 0.5 * r * r + ls
        g[p + c] = 1.0 - r * r
    z0 = p + K
    for k in range(q):
        z = x[z0 + k]
        lp += -0.5 * z * z - _HALF_LOG_2PI
        g[z0 + k] = -z
    if family == GAUSSIAN_IDENTITY:
        ls = x[z0 + q]
        r = math.exp(ls) / disp_scale
        lp += _LOG2 - _HALF_LOG_2PI - math.log(disp_scale) - 0.5 * r * r + ls
        g[z0 + q] = 1.0 - r * r
    return lp


@numba.njit(cache=True, nogil=True)
def logp_grad(
    x, X, offset, y, trials, re_x, re_zidx, beta_mu, beta_sd, sd_scale, disp_scale, family, lconst
):
    """Log density and its gradient at the unconstrained point ``x`` (one fused loop)."""
    n, p = X.shape
    K = re_x.shape[1]
    q = x.shape[0] - p - K - (1 if family == GAUSSIAN_IDENTITY else 0)
    g = np.zeros_like(x)
    lp = lconst + _prior_part(x, beta_mu, beta_sd, sd_scale, disp_scale, family, p, K, q, g)
    sd = np.empty(K)
    for c in range(K):
        sd[c] = math.exp(x[p + c])
    z0 = p + K
    sigma = math.exp(x[z0 + q]) if family == GAUSSIAN_IDENTITY else 1.0
    gsig = 0.0
    for i in range(n):
        eta = offset[i]
        for j in range(p):
            eta += X[i, j] * x[j]
        for c in range(K):
            eta += re_x[i, c] * sd[c] * x[z0 + re_zidx[i, c]]
        if family == BINOMIAL_LOGIT:
            e = math.exp(-abs(eta))
            lp += y[i] * eta - trials[i] * (max(eta, 0.0) + math.log1p(e))
            mu = 1.0 / (1.0 + e) if eta > 0 else e / (1.0 + e)
            r = y[i] - trials[i] * mu
        elif family == POISSON_LOG:
            mu = math.exp(eta)
            lp += y[i] * eta - mu
            r = y[i] - mu
        else:
            e = (y[i] - eta) / sigma
            lp += -0.5 * e * e - math.log(sigma) - _HALF_LOG_2PI
            r = e / sigma
            gsig += e * e - 1.0
        for j in range(p):
            g[j] += r * X[i, j]
        for c in range(K):
            k = z0 + re_zidx[i, c]
            w = r * re_x[i, c] * sd[c]
            g[p + c] += w * x[k]
            g[k] += w
    if family == GAUSSIAN_IDENTITY:
        g[z0 + q] += gsig
    return lp, g


@numba.njit(cache=True, nogil=True)
def _eta(x, X, offset, re_x, re_zidx, sd, z0):
    n, p = X.shape
    K = re_x.shape[1]
    eta = np.empty(n)
    for i in range(n):
        s = offset[i]
        for j in range(p):
            s += X[i, j] * x[j]
        for c in range(K):
            s += re_x[i, c] * sd[c] * x[z0 + re_zidx[i, c]]
        eta[i] = s
    return eta


@numba.njit(cache=True, nogil=True)
def _data_terms(eta, e, l1, y, trials, family, sigma):
    """Log-likelihood and d/d eta per row, given exp(-|eta|) and log1p of it (binomial)
    or exp(eta) (Poisson) computed by NumPy's vectorized functions."""
    n = eta.shape[0]
    r = np.empty(n)
    lp = 0.0
    gsig = 0.0
    for i in range(n):
        if family == BINOMIAL_LOGIT:
            lp += y[i] * eta[i] - trials[i] * (max(eta[i], 0.0) + l1[i])
            mu = 1.0 / (1.0 + e[i]) if eta[i] > 0 else e[i] / (1.0 + e[i])
            r[i] = y[i] - trials[i] * mu
        elif family == POISSON_LOG:
            lp += y[i] * eta[i] - e[i]
            r[i] = y[i] - e[i]
        else:
            d = (y[i] - eta[i]) / sigma
            lp += -0.5 * d * d
            r[i] = d / sigma
            gsig += d * d - 1.0
    if family == GAUSSIAN_IDENTITY:
        lp -= n * (math.log(sigma) + _HALF_LOG_2PI)
    return lp, r, gsig


@numba.njit(cache=True, nogil=True)
def _scatter(r, x, X, re_x, re_zidx, sd, z0, g):
    n, p = X.shape
    K = re_x.shape[1]
    for i in range(n):
        for j in range(p):
            g[j] += r[i] * X[i, j]
        for c in range(K):
            k = z0 + re_zidx[i, c]
            w = r[i] * re_x[i, c] * sd[c]
            g[p + c] += w * x[k]
            g[k] += w


def logp_grad_vectorized(
    x, X, offset, y, trials, re_x, re_zidx, beta_mu, beta_sd, sd_scale, disp_scale, family, lconst
):
    """Same as :func:`logp_grad`, with the transcendental functions done by NumPy's SIMD
    loops: several times faster when there are many rows."""
    p = X.shape[1]
    K = re_x.shape[1]
    q = x.shape[0] - p - K - (1 if family == GAUSSIAN_IDENTITY else 0)
    g = np.zeros_like(x)
    lp = lconst + _prior_part(x, beta_mu, beta_sd, sd_scale, disp_scale, family, p, K, q, g)
    sd = np.exp(x[p : p + K])
    z0 = p + K
    eta = _eta(x, X, offset, re_x, re_zidx, sd, z0)
    sigma = 1.0
    if family == BINOMIAL_LOGIT:
        e = np.exp(-np.abs(eta))
        l1 = np.log1p(e)
    elif family == POISSON_LOG:
        e = l1 = np.exp(eta)
    else:
        e = l1 = eta
        sigma = math.exp(x[z0 + q])
    lpd, r, gsig = _data_terms(eta, e, l1, y, trials, family, sigma)
    _scatter(r, x, X, re_x, re_zidx, sd, z0, g)
    if family == GAUSSIAN_IDENTITY:
        g[z0 + q] += gsig
    return lp + lpd, g


#: rows above which :func:`logp_grad_vectorized` is faster than the fused loop
VECTORIZE_ABOVE = 2000


@numba.njit(cache=True, nogil=True)
def pointwise_loglik(eta, y, trials, family, sigma):
    """Log-likelihood of each row for draws of the linear predictor, shape (draws, n)."""
    m, n = eta.shape
    out = np.empty((m, n))
    for s in range(m):
        for i in range(n):
            e = eta[s, i]
            if family == BINOMIAL_LOGIT:
                out[s, i] = (
                    math.lgamma(trials[i] + 1.0)
                    - math.lgamma(y[i] + 1.0)
                    - math.lgamma(trials[i] - y[i] + 1.0)
                    + y[i] * e
                    - trials[i] * _log1pexp(e)
                )
            elif family == POISSON_LOG:
                out[s, i] = y[i] * e - math.exp(e) - math.lgamma(y[i] + 1.0)
            else:
                d = (y[i] - e) / sigma[s]
                out[s, i] = -0.5 * d * d - math.log(sigma[s]) - _HALF_LOG_2PI
    return out


def response_constant(y: np.ndarray, trials: np.ndarray, family: int) -> float:
    """The data-only part of the log-likelihood (binomial coefficients, log y!)."""
    from scipy.special import gammaln

    if family == BINOMIAL_LOGIT:
        return float(np.sum(gammaln(trials + 1) - gammaln(y + 1) - gammaln(trials - y + 1)))
    if family == POISSON_LOG:
        return float(-np.sum(gammaln(y + 1)))
    return 0.0
