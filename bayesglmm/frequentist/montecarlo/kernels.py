"""Fused loops over (draw, row) for the canonical links (binomial-logit, Poisson-log).

The Monte Carlo methods spend their time evaluating ``log f(y_i | eta_di)`` and its first
two derivatives on ``m x n`` linear predictors; one compiled pass (numba, cached on disk)
does what NumPy does in a dozen temporaries. Each row's terms come from
:func:`bayesglmm.bayes.family_kernels.canonical_point`; ``kind`` is its code
(:data:`FAMILIES`). Other families and links go through
:class:`~bayesglmm.frequentist.response.Response`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...bayes import family_kernels as fk

#: (family, link) -> ``kind``: the pairs these loops take
FAMILIES = {
    ("binomial", "logit"): fk.BINOMIAL_LOGIT,
    ("poisson", "log"): fk.POISSON_LOG,
}
_point = fk.canonical_point


@njit(cache=True)
def rows_loglik(kind, eta, y, n, const):
    """``log f(y_i | eta_di)`` elementwise, ``(m, n)``."""
    m, r = eta.shape
    out = np.empty((m, r))
    for d in range(m):
        for i in range(r):
            out[d, i] = _point(kind, eta[d, i], y[i], n[i])[0] + const[i]
    return out


@njit(cache=True)
def draw_loglik(kind, eta0, ZB, y, n, const_sum):
    """``sum_i log f(y_i | eta0_i + ZB_di)`` per draw."""
    m, r = ZB.shape
    out = np.empty(m)
    for d in range(m):
        acc = 0.0
        for i in range(r):
            acc += _point(kind, eta0[i] + ZB[d, i], y[i], n[i])[0]
        out[d] = acc + const_sum
    return out


@njit(cache=True)
def weighted_pieces(kind, eta0, ZB, y, n, w, const_sum):
    """Per-draw log-likelihood and the weighted sums over draws of score and weight."""
    m, r = ZB.shape
    ll = np.empty(m)
    s = np.zeros(r)
    W = np.zeros(r)
    for d in range(m):
        acc = 0.0
        wd = w[d]
        for i in range(r):
            a, b, c = _point(kind, eta0[i] + ZB[d, i], y[i], n[i])
            acc += a
            s[i] += wd * b
            W[i] += wd * c
        ll[d] = acc + const_sum
    return ll, s, W


@njit(cache=True)
def draw_scores(kind, eta0, ZB, y, n, w):
    """Scores per (draw, row) and the weighted sum over draws of the weights."""
    m, r = ZB.shape
    s = np.empty((m, r))
    W = np.zeros(r)
    for d in range(m):
        wd = w[d]
        for i in range(r):
            _, b, c = _point(kind, eta0[i] + ZB[d, i], y[i], n[i])
            s[d, i] = b
            W[i] += wd * c
    return s, W


@njit(cache=True)
def eta_pieces(kind, eta, y, n, const_sum):
    """Per-draw log-likelihood, and score and weight per (draw, row), at full ``eta``."""
    m, r = eta.shape
    ll = np.empty(m)
    s = np.empty((m, r))
    W = np.empty((m, r))
    for d in range(m):
        acc = 0.0
        for i in range(r):
            a, b, c = _point(kind, eta[d, i], y[i], n[i])
            acc += a
            s[d, i] = b
            W[d, i] = c
        ll[d] = acc + const_sum
    return ll, s, W
