"""A compiled log-density of the common GLMMs, for NUTS without PyTensor compilation.

The density is one generic Numba function of the data arrays, compiled once and cached on
disk (``cache=True``), so a new process pays no model compilation. It covers the models most
fits use: binomial/Bernoulli with logit link, Poisson with log link and Gaussian with
identity link (:data:`FAMILIES`; each row's log-likelihood from
:mod:`bayesglmm.bayes.family_kernels`); Normal priors on fixed effects; uncorrelated
random-effect columns in the noncentered parameterization with HalfNormal priors on their
standard deviations; HalfNormal prior on the Gaussian residual sd. The other links,
families, priors, correlated terms and the centered parameterization go through the general
density of :mod:`bayesglmm.bayes.density` (same contract, somewhat slower per gradient);
what neither covers goes through the PyMC model.

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

from . import family_kernels as fk
from . import vmath
from .family_kernels import BINOMIAL_LOGIT, GAUSSIAN_IDENTITY, POISSON_LOG

#: (family, link) -> code of the families the kernel takes
FAMILIES = fk.CANONICAL
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG2 = math.log(2.0)


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})
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
            li, r, _ = fk.logit_terms(y[i], trials[i], eta, e, math.log1p(e))
            lp += li
        elif family == POISSON_LOG:
            li, r = fk.poisson_log_terms(y[i], eta, math.exp(eta))
            lp += li
        else:
            h, r, s = fk.gaussian_identity_terms(y[i], eta, sigma)
            lp += h - math.log(sigma) - _HALF_LOG_2PI
            gsig += s
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


#: reductions (sums over rows) may be reassociated, so that they vectorize; nothing else in
#: these functions depends on the order of floating-point operations
_FAST = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})


@numba.njit(**_FAST)
def _eta_columns(eta, x, XT, reXT, re_ones, zidxT, sd, offset, has_offset, z0):
    """Linear predictor, column by column (arrays stored one column per row), written into
    ``eta``."""
    p, n = XT.shape
    K = zidxT.shape[0]
    for i in range(n):
        eta[i] = offset[i] if has_offset else 0.0
    for j in range(p):
        b = x[j]
        for i in range(n):
            eta[i] += XT[j, i] * b
    xz = x[z0:]  # indexed by unsigned integers: no negative-index wraparound per row
    for c in range(K):
        s = sd[c]
        zc = zidxT[c]
        if re_ones[c]:
            for i in range(n):
                eta[i] += s * xz[zc[i]]
        else:
            for i in range(n):
                eta[i] += reXT[c, i] * s * xz[zc[i]]


@numba.njit(**_FAST)
def _residuals(eta, e, l1, y, trials, bernoulli, family, sigma):
    """Log-likelihood and d/d eta per row, given exp(-|eta|) and log1p of it (binomial)
    or exp(eta) (Poisson) from the vectorized functions of :mod:`vmath`. The residuals
    are written over ``e``."""
    n = eta.shape[0]
    r = e
    lp = 0.0
    gsig = 0.0
    if family == BINOMIAL_LOGIT:
        if bernoulli:  # no loads of the trials
            for i in range(n):
                li, ri = fk.logit_terms_recip(y[i], 1.0, eta[i], e[i], l1[i])
                lp += li
                r[i] = ri
        else:
            for i in range(n):
                li, ri = fk.logit_terms_recip(y[i], trials[i], eta[i], e[i], l1[i])
                lp += li
                r[i] = ri
    elif family == POISSON_LOG:
        for i in range(n):
            li, ri = fk.poisson_log_terms(y[i], eta[i], e[i])
            lp += li
            r[i] = ri
    else:
        for i in range(n):
            h, ri, s = fk.gaussian_identity_terms(y[i], eta[i], sigma)
            lp += h
            r[i] = ri
            gsig += s
        lp -= n * (math.log(sigma) + _HALF_LOG_2PI)
    return lp, r, gsig


@numba.njit(**_FAST)
def residual_sums(r, XT, reXT, re_ones, zidxT, q, g):
    """d logp / d eta (``r``) chained to the fixed effects, added to ``g[:p]``, and summed
    per level of each random-effect column (returned, length ``q``): one pass over the rows
    per column."""
    p, n = XT.shape
    K = zidxT.shape[0]
    for j in range(p):
        s = 0.0
        for i in range(n):
            s += r[i] * XT[j, i]
        g[j] += s
    G = np.zeros(q)
    for c in range(K):
        zc = zidxT[c]
        if re_ones[c]:
            for i in range(n):
                G[zc[i]] += r[i]
        else:
            for i in range(n):
                G[zc[i]] += r[i] * reXT[c, i]
    return G


@numba.njit(**_FAST)
def _scatter_columns(r, x, XT, reXT, re_ones, zidxT, zcol, sd, z0, g):
    """Chain d logp / d eta to the fixed effects, log sds and standardized effects: the
    residuals are summed per level first (:func:`residual_sums`), then scaled by the
    column's sd (one pass over levels)."""
    p = XT.shape[0]
    q = zcol.shape[0]
    G = residual_sums(r, XT, reXT, re_ones, zidxT, q, g)
    for k in range(q):
        c = zcol[k]
        g[p + c] += sd[c] * G[k] * x[z0 + k]
        g[z0 + k] += sd[c] * G[k]


def column_of_effects(re_zidx: np.ndarray, q: int) -> np.ndarray:
    """The random-effect column of each standardized effect (``re_zidx`` (n, K))."""
    zcol = np.zeros(q, dtype=np.int32)
    for c in range(re_zidx.shape[1]):
        zcol[re_zidx[:, c]] = c
    return zcol


def columnar(args: tuple) -> tuple:
    """The data of :func:`logp_grad` laid out for :func:`logp_grad_columns`."""
    X, offset, y, trials, re_x, re_zidx, beta_mu, beta_sd, sd_scale, disp, family, lconst = args
    re_ones = np.all(re_x == 1.0, axis=0)
    return (
        np.ascontiguousarray(X.T),
        np.ascontiguousarray(re_x.T),
        re_ones,
        np.ascontiguousarray(re_zidx.T.astype(np.uint32)),
        offset,
        bool(np.any(offset != 0.0)),
        y,
        trials,
        bool(np.all(trials == 1.0)),
        beta_mu,
        beta_sd,
        sd_scale,
        disp,
        family,
        lconst,
        column_of_effects(re_zidx, int(re_zidx.max()) + 1 if re_zidx.size else 0),
    )


#: doubles (512 bytes) of unused memory before and after each scratch array of
#: :func:`logp_grad_columns`. A loop that writes one array while it reads others is compiled
#: by LLVM into a vectorized body guarded by a run-time overlap test of their addresses, and
#: a scalar fallback taken when they lie closer than the vector block (up to 320 bytes apart
#: here). The two sum the rows in different orders (``reassoc``), so the density's last bits
#: would depend on where the allocator put the arrays, and the draws with them. Inside one
#: padded allocation no other array can lie that close: the vectorized body always runs.
_GAP = 64


@numba.njit(cache=True, nogil=True)
def _scratch(ndim, n):
    """(gradient (zeros, length ``ndim``), three arrays of length ``n``), each inside one
    allocation at least :data:`_GAP` doubles from the others and from its ends."""
    work = np.empty(5 * _GAP + ndim + 3 * n)
    a = _GAP
    g = work[a : a + ndim]
    g[:] = 0.0
    a += ndim + _GAP
    eta = work[a : a + n]
    a += n + _GAP
    e = work[a : a + n]
    a += n + _GAP
    l1 = work[a : a + n]
    return g, eta, e, l1


@numba.njit(cache=True, nogil=True)
def logp_grad_columns(
    x,
    XT,
    reXT,
    re_ones,
    zidxT,
    offset,
    has_offset,
    y,
    trials,
    bernoulli,
    beta_mu,
    beta_sd,
    sd_scale,
    disp_scale,
    family,
    lconst,
    zcol,
):
    """Same function as :func:`logp_grad` on the :func:`columnar` layout: column-wise loops,
    indicator columns of random intercepts and unit trials skipped, the transcendental
    functions and the sums over rows vectorized (:mod:`bayesglmm.bayes.vmath`). Several
    times faster for many rows; runs without the GIL, so it serves as nutpie's C callback.
    ``zcol``: the random-effect column of each standardized effect
    (:func:`column_of_effects`)."""
    p = XT.shape[0]
    K = zidxT.shape[0]
    n = XT.shape[1]
    q = x.shape[0] - p - K - (1 if family == GAUSSIAN_IDENTITY else 0)
    g, eta, e, l1 = _scratch(x.shape[0], n)
    lp = lconst + _prior_part(x, beta_mu, beta_sd, sd_scale, disp_scale, family, p, K, q, g)
    sd = np.empty(K)
    for c in range(K):
        sd[c] = math.exp(x[p + c])
    z0 = p + K
    _eta_columns(eta, x, XT, reXT, re_ones, zidxT, sd, offset, has_offset, z0)
    sigma = 1.0
    if family == BINOMIAL_LOGIT:
        bits = l1.view(np.int64)
        vmath.exp_negabs_into(eta, e, bits)
        vmath.log1p_unit_into(e, l1)  # the scratch is free again
    elif family == POISSON_LOG:
        vmath.exp_into(eta, e, l1.view(np.int64))
    else:
        sigma = math.exp(x[z0 + q])
    lpd, r, gsig = _residuals(eta, e, l1, y, trials, bernoulli, family, sigma)
    _scatter_columns(r, x, XT, reXT, re_ones, zidxT, zcol[:q], sd, z0, g)
    if family == GAUSSIAN_IDENTITY:
        g[z0 + q] += gsig
    return lp + lpd, g


@numba.njit(cache=True, nogil=True, parallel=True)
def pointwise_loglik(
    beta, effects, sigma, XT, reXT, re_ones, zidxT, offset, y, trials, row_const, family
):
    """Log-likelihood of each row for each draw, shape (draws, n).

    ``beta`` (draws, p) and ``effects`` (draws, q: the random effects ``sd * z`` in the
    kernel's order) give the linear predictor; ``row_const`` holds each row's data-only
    term (binomial coefficient, -log y!).
    """
    m = beta.shape[0]
    p, n = XT.shape
    K = zidxT.shape[0]
    out = np.empty((m, n))
    for s in numba.prange(m):  # one draw at a time, its rows through the vectorized exp
        eta = offset.copy()
        for j in range(p):
            bj = beta[s, j]
            for i in range(n):
                eta[i] += XT[j, i] * bj
        for c in range(K):
            if re_ones[c]:
                for i in range(n):
                    eta[i] += effects[s, zidxT[c, i]]
            else:
                for i in range(n):
                    eta[i] += reXT[c, i] * effects[s, zidxT[c, i]]
        if family == BINOMIAL_LOGIT:
            e = np.empty(n)
            bits = np.empty(n, dtype=np.int64)
            vmath.exp_negabs_into(eta, e, bits)
            l1 = bits.view(np.float64)
            vmath.log1p_unit_into(e, l1)
            for i in range(n):
                li, _, _ = fk.logit_terms(y[i], trials[i], eta[i], e[i], l1[i])
                out[s, i] = row_const[i] + li
        elif family == POISSON_LOG:
            e = np.empty(n)
            vmath.exp_into(eta, e, np.empty(n, dtype=np.int64))
            for i in range(n):
                li, _ = fk.poisson_log_terms(y[i], eta[i], e[i])
                out[s, i] = row_const[i] + li
        else:
            ls = math.log(sigma[s]) + _HALF_LOG_2PI
            for i in range(n):
                h, _, _ = fk.gaussian_identity_terms(y[i], eta[i], sigma[s])
                out[s, i] = h - ls
    return out


def row_constants(y: np.ndarray, trials: np.ndarray, family: int) -> np.ndarray:
    """Each row's data-only log-likelihood term (binomial coefficient, -log y!) for the
    family of code ``family``."""
    from ..model.families import get_family

    name, link = next(key for key, code in FAMILIES.items() if code == family)
    return get_family(name, link).log_constant(y, trials)


def response_constant(y: np.ndarray, trials: np.ndarray, family: int) -> float:
    """The data-only part of the log-likelihood (binomial coefficients, log y!)."""
    return float(np.sum(row_constants(y, trials, family)))
