"""The Numba spelling of each family's row log-likelihood, for the compiled engines.

The reference is the NumPy :class:`~bayesglmm.model.families.Family`. The compiled NUTS
densities (:mod:`.kernel`, :mod:`.density`) and the Monte Carlo kernels
(:mod:`bayesglmm.frequentist.montecarlo.kernels`) evaluate a row's log-likelihood and its
derivatives inside their loops over rows and draws; they take them from the scalar
functions here, which the compiler inlines into those loops (``inline="always"``), so that
the loops keep their speed and each family is written once for all compiled engines.
``tests/test_family_engines.py`` checks every function against the reference at random
points.

Log-likelihoods here leave out the data-only constant
(:meth:`~bayesglmm.model.families.Family.log_constant`), which the engines add once. The
binomial probit and cloglog rows clip the probability to ``[EPS, 1 - EPS]`` as PyMC does,
so that the compiled densities equal the PyMC model's.

Numba's on-disk cache keys a compiled function on its own module's source only: after an
edit here, delete the ``*.nbi``/``*.nbc`` files of the modules that inline these functions
(``bayes/__pycache__``, ``frequentist/montecarlo/__pycache__``), or they keep the old code.

Codes: :data:`CANONICAL` numbers the canonical-link families of the specialised kernel and
the Monte Carlo kernels; :data:`FAMILY_CODES` and :data:`LINK_CODES` those of :func:`row`,
whose (family, link) pairs are :data:`ROW_FAMILIES`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

BINOMIAL, POISSON, GAUSSIAN, NEGBIN = 0, 1, 2, 3
LOGIT, PROBIT, CLOGLOG, LOG, IDENTITY = 0, 1, 2, 3, 4
FAMILY_CODES = {"binomial": BINOMIAL, "poisson": POISSON, "gaussian": GAUSSIAN}
FAMILY_CODES["negative_binomial"] = NEGBIN
LINK_CODES = {"logit": LOGIT, "probit": PROBIT, "cloglog": CLOGLOG, "log": LOG}
LINK_CODES["identity"] = IDENTITY
#: the (family, link) pairs :func:`row` evaluates
ROW_FAMILIES = frozenset(
    {
        ("binomial", "logit"),
        ("binomial", "probit"),
        ("binomial", "cloglog"),
        ("poisson", "log"),
        ("gaussian", "identity"),
        ("negative_binomial", "log"),
    }
)
BINOMIAL_LOGIT, POISSON_LOG, GAUSSIAN_IDENTITY = 0, 1, 2
#: (family, link) -> code of the canonical-link rows (:func:`canonical_point`, the
#: specialised NUTS kernel)
CANONICAL = {
    ("binomial", "logit"): BINOMIAL_LOGIT,
    ("poisson", "log"): POISSON_LOG,
    ("gaussian", "identity"): GAUSSIAN_IDENTITY,
}
#: PyMC clips probit and cloglog probabilities to [EPS, 1 - EPS]
EPS = 1e-12
_HL2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)
_INLINE = dict(cache=True, nogil=True, inline="always")


@numba.njit(**_INLINE)
def logit_terms(y, t, eta, e, l1):
    """Binomial, logit link: ``(log f - constant, d/d eta, mu)`` of ``y`` successes in ``t``
    trials, given ``e = exp(-|eta|)`` and ``l1 = log1p(e)``."""
    lp = y * eta - t * (max(eta, 0.0) + l1)
    mu = 1.0 / (1.0 + e) if eta > 0 else e / (1.0 + e)
    return lp, y - t * mu, mu


@numba.njit(**_INLINE)
def logit_terms_recip(y, t, eta, e, l1):
    """:func:`logit_terms` (without ``mu``) with one division instead of two: the
    specialised NUTS kernel's vectorized loop. Equal to it within a rounding error."""
    lp = y * eta - t * (max(eta, 0.0) + l1)
    inv = 1.0 / (1.0 + e)
    return lp, y - t * (inv if eta > 0 else e * inv)


@numba.njit(**_INLINE)
def poisson_log_terms(y, eta, e):
    """Poisson, log link: ``(log f - constant, d/d eta)`` given ``e = exp(eta)``."""
    return y * eta - e, y - e


@numba.njit(**_INLINE)
def gaussian_identity_terms(y, eta, sigma):
    """Gaussian, identity link: ``(-d^2 / 2, d/d eta, d/d log sigma)`` with
    ``d = (y - eta) / sigma``; the log-likelihood is the first less
    ``log sigma + log(2 pi) / 2``."""
    d = (y - eta) / sigma
    return -0.5 * d * d, d / sigma, d * d - 1.0


@numba.njit(**_INLINE)
def binomial_clipped_terms(link, y, t, eta, bern):
    """Binomial, probit or cloglog link: ``(log f - constant, d/d eta)``, the probability
    clipped to ``[EPS, 1 - EPS]`` and ``log(1 - p)`` taken from ``p`` (as PyMC; ``bern``:
    one trial, where PyMC's Bernoulli uses ``log1p(-p)``)."""
    if link == PROBIT:
        p = 0.5 * (1.0 + math.erf(eta / _SQRT2))
        dp = math.exp(-0.5 * eta * eta - _HL2PI)
    else:  # cloglog
        m = math.exp(eta)
        p = 1.0 - math.exp(-m)
        dp = m * math.exp(-m)
    if p < EPS:
        p, dp = EPS, 0.0
    elif p > 1.0 - EPS:
        p, dp = 1.0 - EPS, 0.0
    q = 1.0 - p
    lp = 0.0
    if y > 0:
        lp += y * math.log(p)
    if t - y > 0:
        lp += (t - y) * (math.log1p(-p) if bern else math.log(q))
    return lp, (y / p - (t - y) / q) * dp


@numba.njit(cache=True, nogil=True)
def digamma(x):
    """psi(x) for x > 0 (recurrence to x >= 6, then the asymptotic series; error < 1e-13)."""
    r = 0.0
    while x < 6.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    s = f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132))))
    return r + math.log(x) - 0.5 / x - s


@numba.njit(**_INLINE)
def negbin_log_terms(y, eta, a):
    """Negative binomial (NB2, shape ``a``), log link: ``(log f - constant, d/d eta,
    d/d a)``; beyond ``a = 1e10`` the Poisson limit, as PyMC."""
    mu = math.exp(eta)
    if a > 1e10:
        return y * eta - mu, y - mu, 0.0
    lam = math.log(mu + a)
    lp = math.lgamma(y + a) - math.lgamma(a) + a * (math.log(a) - lam)
    if y > 0:
        lp += y * (eta - lam)
    r = a * (y - mu) / (mu + a)
    da = digamma(y + a) - digamma(a) + math.log(a) + 1.0 - lam - (y + a) / (mu + a)
    return lp, r, da


@numba.njit(cache=True, nogil=True)
def row(family, link, y, t, eta, disp, bern):
    """Any pair of :data:`ROW_FAMILIES`: ``(log f - constant, d/d eta, d/d dispersion)`` of
    one row (``disp``: Gaussian ``sigma``, negative-binomial ``alpha``)."""
    if family == BINOMIAL:
        if link == LOGIT:
            e = math.exp(-abs(eta))
            lp, r, _ = logit_terms(y, t, eta, e, math.log1p(e))
            return lp, r, 0.0
        lp, r = binomial_clipped_terms(link, y, t, eta, bern)
        return lp, r, 0.0
    if family == POISSON:
        lp, r = poisson_log_terms(y, eta, math.exp(eta))
        return lp, r, 0.0
    if family == GAUSSIAN:
        h, r, s = gaussian_identity_terms(y, eta, disp)
        return h - math.log(disp) - _HL2PI, r, s / disp
    return negbin_log_terms(y, eta, disp)


@numba.njit(**_INLINE)
def canonical_point(kind, eta, y, n):
    """Binomial-logit (``kind`` 0) or Poisson-log (1): ``(log f - constant, score, Fisher
    weight)`` of one row, as the Monte Carlo kernels need them."""
    if kind == BINOMIAL_LOGIT:
        e = math.exp(-abs(eta))
        lp, r, mu = logit_terms(y, n, eta, e, math.log1p(e))
        return lp, r, n * mu * (1.0 - mu)
    mu = math.exp(eta)
    lp, r = poisson_log_terms(y, eta, mu)
    return lp, r, mu


@numba.njit(cache=True, nogil=True)
def canonical_loglik(kind, eta, y, n, const):
    """Each row's log-likelihood, ``const`` (its data-only term) included, at ``eta``, for
    the canonical-link family ``kind`` of :func:`canonical_point`."""
    out = np.empty(eta.shape[0])
    for i in range(eta.shape[0]):
        out[i] = canonical_point(kind, eta[i], y[i], n[i])[0] + const[i]
    return out
