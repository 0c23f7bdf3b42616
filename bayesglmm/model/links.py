"""Link functions ``eta = g(mu)``: the link, its inverse and the inverse's derivatives (NumPy).

Each :class:`Link` is the single reference of its math; :mod:`bayesglmm.model.families`
builds every family's likelihood, score and weights from it. Links that map onto (0, 1) also
give ``log mu`` and ``log(1 - mu)`` as functions of ``eta``, exact far into the tails where
``mu`` itself rounds to 0 or 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

_EPS = np.finfo(float).eps

Array = np.ndarray


@dataclass(frozen=True)
class Link:
    """A link function ``eta = g(mu)`` with its inverse and derivatives.

    Attributes
    ----------
    name : str
        ``"logit"``, ``"probit"``, ``"cloglog"``, ``"log"`` or ``"identity"``.
    linkfun, linkinv : callable
        ``g`` and ``g^{-1}``.
    mu_eta : callable
        ``d mu / d eta`` as a function of ``eta`` (floored at machine epsilon where the
        inverse saturates).
    mu_eta2 : callable
        ``d^2 mu / d eta^2`` as a function of ``(eta, mu, mu_eta)``.
    log_inv, log1m_inv : callable or None
        ``log mu`` and ``log(1 - mu)`` as functions of ``eta``, exact in the tails; None
        where the link does not give them.
    """

    name: str
    linkfun: Callable[[Array], Array]
    linkinv: Callable[[Array], Array]
    mu_eta: Callable[[Array], Array]
    mu_eta2: Callable[[Array, Array, Array], Array]
    log_inv: Callable[[Array], Array] | None = None
    log1m_inv: Callable[[Array], Array] | None = None

    def __repr__(self) -> str:
        return f"Link({self.name!r})"


# ---------------------------------------------------------------------------- logit
def _logit_inv(eta):
    return special.expit(eta)


def _logit_mu_eta(eta):
    p = special.expit(eta)
    return np.maximum(p * (1.0 - p), _EPS)


def _logit_mu_eta2(eta, mu, mu_eta):
    return mu_eta * (1.0 - 2.0 * mu)


def _logit_log_inv(eta):
    return -np.logaddexp(0.0, -eta)


def _logit_log1m_inv(eta):
    return -np.logaddexp(0.0, eta)


# ---------------------------------------------------------------------------- probit
def _probit(mu):
    from scipy import stats  # imported when used: scipy.stats takes a second to import

    return stats.norm.ppf(mu)


def _probit_inv(eta):
    return np.clip(special.ndtr(eta), _EPS, 1 - _EPS)


def _probit_mu_eta(eta):
    from scipy import stats

    return np.maximum(stats.norm.pdf(eta), _EPS)


def _probit_mu_eta2(eta, mu, mu_eta):
    return -eta * mu_eta


def _probit_log1m_inv(eta):
    return special.log_ndtr(-eta)


# ---------------------------------------------------------------------------- cloglog
def _cloglog(mu):
    return np.log(-np.log1p(-mu))


def _cloglog_inv(eta):
    return np.clip(-np.expm1(-np.exp(np.minimum(eta, 700.0))), _EPS, 1.0 - _EPS)


def _cloglog_mu_eta(eta):
    eta = np.minimum(eta, 700.0)
    return np.maximum(np.exp(eta - np.exp(eta)), _EPS)


def _cloglog_mu_eta2(eta, mu, mu_eta):
    return mu_eta * (1.0 - np.exp(np.minimum(eta, 700.0)))


def _cloglog_log_inv(eta):
    return np.log(-np.expm1(-np.exp(np.minimum(eta, 700.0))))


def _cloglog_log1m_inv(eta):
    return -np.exp(np.minimum(eta, 700.0))


# ---------------------------------------------------------------------------- log
def _log_inv(eta):
    return np.maximum(np.exp(eta), _EPS)


def _log_mu_eta2(eta, mu, mu_eta):
    return mu_eta


def _same(eta):
    return eta


# ---------------------------------------------------------------------------- identity
def _identity_mu_eta2(eta, mu, mu_eta):
    return np.zeros_like(eta)


LINKS: dict[str, Link] = {
    "logit": Link(
        "logit",
        special.logit,
        _logit_inv,
        _logit_mu_eta,
        _logit_mu_eta2,
        _logit_log_inv,
        _logit_log1m_inv,
    ),
    "probit": Link(
        "probit",
        _probit,
        _probit_inv,
        _probit_mu_eta,
        _probit_mu_eta2,
        special.log_ndtr,
        _probit_log1m_inv,
    ),
    "cloglog": Link(
        "cloglog",
        _cloglog,
        _cloglog_inv,
        _cloglog_mu_eta,
        _cloglog_mu_eta2,
        _cloglog_log_inv,
        _cloglog_log1m_inv,
    ),
    # log mu = eta exactly; log(1 - mu) is not given (mu is not bounded by 1)
    "log": Link("log", np.log, _log_inv, _log_inv, _log_mu_eta2, _same),
    "identity": Link("identity", _same, _same, np.ones_like, _identity_mu_eta2),
}
