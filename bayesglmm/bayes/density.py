"""The general compiled GLMM log density: every family, link, prior and term the PyMC model
of :mod:`bayesglmm.bayes.builder` has, except improper-prior Potentials on fixed values and
inverse-Wishart covariances.

:mod:`bayesglmm.bayes.kernel` is the specialised fast path of the most common models
(logit/log/identity, Normal and HalfNormal priors, uncorrelated noncentered terms); this
module covers the rest, with the same contract: the value equals PyMC's ``model.logp()``
(normalizing constants and transform Jacobians included) at the same unconstrained point,
and the gradient is exact. Cost and memory are linear in rows: the linear predictor is
built column by column from the effect vector ``b`` (no dense ``n x q`` matrix), and the
gradient with respect to ``b`` is scattered back the same way and then chained to the
standardized effects, standard deviations and Cholesky factors (which are small).

Unconstrained vector (see :mod:`bayesglmm.bayes.density_layout`): ``beta`` (p); per
random term its hyperparameters (``k`` log sd or log variances, or for a correlated term
the ``k(k+1)/2`` packed Cholesky factor with log diagonal, as PyMC's
``CholeskyCovPacked``); per term its effects (``L * k``, level-major: ``z`` noncentered,
``b`` centered); the log dispersion (Gaussian ``sigma``, negative-binomial ``alpha``).

Families and links are numbered as in :mod:`.family_kernels`, which holds the row
log-likelihood of every family (:data:`~.family_kernels.ROW_FAMILIES`).

A prior declares its code as ``compiled_code`` (:mod:`bayesglmm.model.priors`);
:func:`prior_lp` implements :data:`COEFFICIENT_PRIORS` and :data:`POSITIVE_PRIORS` on the
constrained value (positive ones are sampled on the log scale), and a correlated term takes
a prior in :data:`CORRELATION_PRIORS`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import family_kernels as fk
from . import vmath
from .family_kernels import BINOMIAL, LOGIT, POISSON
from .kernel import _FAST, _scratch, residual_sums

#: prior codes :func:`prior_lp` implements (parameters in the prior's ``params()`` order):
#: on a coefficient Normal 0, StudentT 1, Cauchy 2, Flat 3
COEFFICIENT_PRIORS = frozenset({0, 1, 2, 3})
#: on an sd or variance HalfNormal 10, HalfStudentT 11, HalfCauchy 12, Exponential 13,
#: Gamma 14, InverseGamma 15, HalfFlat 16
POSITIVE_PRIORS = frozenset({10, 11, 12, 13, 14, 15, 16})
#: on the correlations of a term: LKJ(eta) 20 (``tpar``: eta and its log normalizer)
CORRELATION_PRIORS = frozenset({20})
_HL2PI = 0.5 * math.log(2.0 * math.pi)
_LOG2 = math.log(2.0)
_LOGPI = math.log(math.pi)
_OPTS = dict(cache=True, nogil=True)
# the density itself may reassociate its sums over rows and levels (kernel._FAST), so that
# they vectorize; the order-sensitive exp and log1p live in :mod:`vmath`, compiled without it


@numba.njit(**_OPTS)
def prior_lp(code, par, v):
    """Log density of prior ``code`` (parameters ``par``) at the constrained value ``v``,
    and its derivative in ``v``."""
    a, b, c = par[0], par[1], par[2]
    if code == 0:  # Normal(mu, sigma)
        d = (v - a) / b
        return -0.5 * d * d - math.log(b) - _HL2PI, -d / b
    if code == 1 or code == 11:  # (Half)StudentT(nu, [mu,] sigma)
        nu = a
        mu, s = (b, c) if code == 1 else (0.0, b)
        d = (v - mu) / s
        lc = math.lgamma(0.5 * (nu + 1)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu * math.pi)
        lp = lc - math.log(s) - 0.5 * (nu + 1) * math.log1p(d * d / nu)
        if code == 11:
            lp += _LOG2
        return lp, -(nu + 1) * d / (nu + d * d) / s
    if code == 2 or code == 12:  # Cauchy(alpha, beta), HalfCauchy(beta)
        loc, s = (a, b) if code == 2 else (0.0, a)
        d = (v - loc) / s
        lp = -_LOGPI - math.log(s) - math.log1p(d * d)
        if code == 12:
            lp += _LOG2
        return lp, -2.0 * d / (1.0 + d * d) / s
    if code == 10:  # HalfNormal(sigma)
        d = v / a
        return _LOG2 - _HL2PI - math.log(a) - 0.5 * d * d, -d / a
    if code == 13:  # Exponential(lam)
        return math.log(a) - a * v, -a
    if code == 14:  # Gamma(alpha, beta): rate beta
        return a * math.log(b) - math.lgamma(a) + (a - 1) * math.log(v) - b * v, (a - 1) / v - b
    if code == 15:  # InverseGamma(alpha, beta)
        lv = math.log(v)
        return a * math.log(b) - math.lgamma(a) - (a + 1) * lv - b / v, -(a + 1) / v + b / (v * v)
    return 0.0, 0.0  # Flat, HalfFlat


@numba.njit(**_OPTS)
def _positive(code, par, on_variance, u):
    """A positive parameter sampled as ``u = log(value)``: returns (sd, lp, dlp/du without
    the data part, dsd/du). ``on_variance``: the prior is on ``sd**2``."""
    val = math.exp(u)
    lp, d = prior_lp(code, par, val)
    sd = math.sqrt(val) if on_variance else val
    dsd = 0.5 * sd if on_variance else sd
    return sd, lp + u, d * val + 1.0, dsd


@numba.njit(**_FAST)
def logp_grad(
    x,
    XT,
    offset,
    y,
    trials,
    reXT,
    re_ones,
    zidxT,
    meta,
    bcode,
    bpar,
    scode,
    spar,
    sscale,
    terms,
    tpar,
    dpar,
    lconst,
):
    """Log density and gradient at the unconstrained point ``x``.

    ``meta``: n, p, K, T, q, family, link, centered, bernoulli, has offset, dispersion prior
    code (-1: none), dispersion on variance, position of the dispersion in ``x``.
    ``terms`` (T, 6): columns k, levels L, offset of the term's effects in ``b``, correlated,
    position of its hyperparameters in ``x``, first column in the K columns. ``tpar`` (T, 2):
    LKJ eta and normalizing constant.
    """
    n, p, K, T, q = meta[0], meta[1], meta[2], meta[3], meta[4]
    family, link, centered, bern, has_off = meta[5], meta[6], meta[7], meta[8], meta[9]
    dcode, don_var, dpos = meta[10], meta[11], meta[12]
    # the arrays written next to sums over rows, apart from all others (kernel._GAP)
    g, eta, r, l1 = _scratch(x.shape[0], n)
    lp = lconst
    for j in range(p):
        lpj, dj = prior_lp(bcode[j], bpar[j], x[j])
        lp += lpj
        g[j] = dj
    # standard deviations (uncorrelated) or Cholesky factors (correlated)
    sd = np.zeros(K)
    dsd = np.zeros(K)
    kmax = 1
    for t in range(T):
        kmax = max(kmax, terms[t, 0])
    chol = np.zeros((T, kmax, kmax))
    z0 = 0
    for t in range(T):
        k, uoff, c0 = terms[t, 0], terms[t, 4], terms[t, 5]
        if terms[t, 3]:
            m = uoff
            for i in range(k):
                for j in range(i + 1):
                    chol[t, i, j] = math.exp(x[m]) if i == j else x[m]
                    m += 1
            z0 = max(z0, m)
        else:
            for j in range(k):
                c = c0 + j
                s, lpj, gu, ds = _positive(scode[c], spar[c], sscale[c] == 1, x[uoff + j])
                sd[c], dsd[c] = s, ds
                lp += lpj
                g[uoff + j] = gu
            z0 = max(z0, uoff + k)
    z0 = max(z0, p)
    # effects b and the prior of what is sampled
    b = np.empty(q)
    gsd = np.zeros(K)  # d logp / d sd (constrained), data and centered prior
    gL = np.zeros((T, kmax, kmax))
    for t in range(T):
        k, L, boff, corr, c0 = terms[t, 0], terms[t, 1], terms[t, 2], terms[t, 3], terms[t, 5]
        if not centered:
            for i in range(L * k):
                v = x[z0 + boff + i]
                lp += -0.5 * v * v - _HL2PI
                g[z0 + boff + i] = -v
            for lev in range(L):
                o = boff + lev * k
                for i in range(k):
                    if corr:
                        s = 0.0
                        for j in range(i + 1):
                            s += chol[t, i, j] * x[z0 + o + j]
                        b[o + i] = s
                    else:
                        b[o + i] = sd[c0 + i] * x[z0 + o + i]
        elif not corr:
            for lev in range(L):
                for i in range(k):
                    o = boff + lev * k + i
                    v = x[z0 + o]
                    b[o] = v
                    s = sd[c0 + i]
                    d = v / s
                    lp += -0.5 * d * d - math.log(s) - _HL2PI
                    g[z0 + o] = -d / s
                    gsd[c0 + i] += (d * d - 1.0) / s
        else:  # centered MvNormal(0, L L')
            S = np.zeros((k, k))
            w = np.empty(k)
            logdet = 0.0
            for i in range(k):
                logdet += math.log(chol[t, i, i])
            for lev in range(L):
                o = boff + lev * k
                for i in range(k):  # w = L^-1 b
                    s = x[z0 + o + i]
                    b[o + i] = s
                    for j in range(i):
                        s -= chol[t, i, j] * w[j]
                    w[i] = s / chol[t, i, i]
                for i in range(k):
                    lp += -0.5 * w[i] * w[i]
                    for j in range(k):
                        S[i, j] += w[i] * w[j]
                for i in range(k - 1, -1, -1):  # g_b = -L^-T w
                    s = w[i]
                    for j in range(i + 1, k):
                        s -= chol[t, j, i] * g[z0 + o + j] * -1.0
                    g[z0 + o + i] = -s / chol[t, i, i]
            lp -= L * (logdet + k * _HL2PI)
            # d/dL of -0.5 sum |L^-1 b|^2 = tril(L^-T S); of -L log|L|: -L / L_ii
            M = np.linalg.solve(chol[t, :k, :k].T.copy(), S)
            for i in range(k):
                for j in range(i + 1):
                    gL[t, i, j] += M[i, j]
                gL[t, i, i] -= L / chol[t, i, i]
    # linear predictor, column by column
    for i in range(n):
        eta[i] = offset[i] if has_off else 0.0
    for j in range(p):
        bj = x[j]
        for i in range(n):
            eta[i] += XT[j, i] * bj
    for c in range(K):
        if re_ones[c]:
            for i in range(n):
                eta[i] += b[zidxT[c, i]]
        else:
            for i in range(n):
                eta[i] += reXT[c, i] * b[zidxT[c, i]]
    disp = 1.0
    gdisp = 0.0
    dlp_u = 0.0
    ddisp = 0.0
    if dcode >= 0:
        disp, lpd, dlp_u, ddisp = _positive(dcode, dpar, don_var == 1, x[dpos])
        lp += lpd
    if family == BINOMIAL and link == LOGIT:
        # exp and log1p vectorized (SIMD), as the specialised kernel
        e = np.empty(n)
        vmath.exp_negabs_into(eta, e, np.empty(n, dtype=np.int64))
        vmath.log1p_unit_into(e, l1)
        for i in range(n):
            li, ri, _ = fk.logit_terms(y[i], trials[i], eta[i], e[i], l1[i])
            lp += li
            r[i] = ri
    elif family == POISSON:
        e = np.empty(n)
        vmath.exp_into(eta, e, np.empty(n, dtype=np.int64))
        for i in range(n):
            li, ri = fk.poisson_log_terms(y[i], eta[i], e[i])
            lp += li
            r[i] = ri
    else:
        for i in range(n):
            li, ri, di = fk.row(family, link, y[i], trials[i], eta[i], disp, bern)
            lp += li
            r[i] = ri
            gdisp += di
    if dcode >= 0:
        g[dpos] = dlp_u + gdisp * ddisp
    gb = residual_sums(r, XT, reXT, re_ones, zidxT, q, g)
    # chain rule from b to what is sampled
    for t in range(T):
        k, L, boff, corr = terms[t, 0], terms[t, 1], terms[t, 2], terms[t, 3]
        uoff, c0 = terms[t, 4], terms[t, 5]
        if centered:
            for i in range(L * k):
                g[z0 + boff + i] += gb[boff + i]
        else:
            for lev in range(L):
                o = boff + lev * k
                for i in range(k):
                    if corr:
                        s = 0.0
                        for j in range(i, k):
                            s += chol[t, j, i] * gb[o + j]
                        g[z0 + o + i] += s
                        for j in range(i + 1):
                            gL[t, i, j] += gb[o + i] * x[z0 + o + j]
                    else:
                        g[z0 + o + i] += gb[o + i] * sd[c0 + i]
                        gsd[c0 + i] += gb[o + i] * x[z0 + o + i]
        if not corr:
            for j in range(k):
                g[uoff + j] += gsd[c0 + j] * dsd[c0 + j]
        else:
            lp += tpar[t, 1]
            eta_lkj = tpar[t, 0]
            m = uoff
            for i in range(k):
                S2 = 0.0
                for j in range(i + 1):
                    S2 += chol[t, i, j] ** 2
                s = math.sqrt(S2)
                lsd, dlsd = prior_lp(scode[c0 + i], spar[c0 + i], s)
                ci = 2.0 * eta_lkj - 3.0 + k - i
                lii = chol[t, i, i]
                lp += (ci + 1.0) * (math.log(lii) - 0.5 * math.log(S2)) - 0.5 * i * math.log(S2)
                lp += lsd + x[m + i]  # log-diagonal Jacobian
                for j in range(i + 1):
                    lij = chol[t, i, j]
                    gij = gL[t, i, j] - (ci + 1.0 + i) * lij / S2 + dlsd * lij / s
                    if j == i:
                        gij += (ci + 1.0) / lii
                        g[m + j] = gij * lii + 1.0
                    else:
                        g[m + j] = gij
                m += i + 1
    return lp, g
