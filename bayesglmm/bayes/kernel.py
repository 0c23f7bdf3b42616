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
def _expit(eta):
    if eta > 0:
        return 1.0 / (1.0 + math.exp(-eta))
    e = math.exp(eta)
    return e / (1.0 + e)


@numba.njit(cache=True, nogil=True)
def _linear_predictor(x, X, offset, re_x, re_zidx, p, K):
    n = X.shape[0]
    eta = offset.copy()
    for i in range(n):
        s = eta[i]
        for j in range(p):
            s += X[i, j] * x[j]
        for c in range(K):
            s += re_x[i, c] * math.exp(x[p + c]) * x[p + K + re_zidx[i, c]]
        eta[i] = s
    return eta


@numba.njit(cache=True, nogil=True)
def logp_grad(
    x, X, offset, y, trials, re_x, re_zidx, beta_mu, beta_sd, sd_scale, disp_scale, family, lconst
):
    """Log density and its gradient at the unconstrained point ``x``."""
    n, p = X.shape
    K = re_x.shape[1]
    q = x.shape[0] - p - K - (1 if family == GAUSSIAN_IDENTITY else 0)
    g = np.zeros_like(x)
    lp = lconst
    for j in range(p):
        d = (x[j] - beta_mu[j]) / beta_sd[j]
        lp += -0.5 * d * d - math.log(beta_sd[j]) - _HALF_LOG_2PI
        g[j] = -d / beta_sd[j]
    sd = np.empty(K)
    for c in range(K):
        ls = x[p + c]
        sd[c] = math.exp(ls)
        r = sd[c] / sd_scale[c]
        lp += _LOG2 - _HALF_LOG_2PI - math.log(sd_scale[c]) - 0.5 * r * r + ls
        g[p + c] = 1.0 - r * r
    z0 = p + K
    for k in range(q):
        z = x[z0 + k]
        lp += -0.5 * z * z - _HALF_LOG_2PI
        g[z0 + k] = -z
    sigma = 1.0
    if family == GAUSSIAN_IDENTITY:
        ls = x[z0 + q]
        sigma = math.exp(ls)
        r = sigma / disp_scale
        lp += _LOG2 - _HALF_LOG_2PI - math.log(disp_scale) - 0.5 * r * r + ls
        g[z0 + q] = 1.0 - r * r
    gsig = 0.0
    for i in range(n):
        eta = offset[i]
        for j in range(p):
            eta += X[i, j] * x[j]
        for c in range(K):
            eta += re_x[i, c] * sd[c] * x[z0 + re_zidx[i, c]]
        if family == BINOMIAL_LOGIT:
            lp += y[i] * eta - trials[i] * _log1pexp(eta)
            r = y[i] - trials[i] * _expit(eta)
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
