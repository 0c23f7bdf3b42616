"""Response families and link functions (NumPy only).

Each family knows its support, its variance function, its log-likelihood and its default
link, as R's ``family`` objects do. The Bayesian builder and the frequentist estimators both
read these objects; neither re-implements them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from ..errors import DataError, FamilyError

_EPS = np.finfo(float).eps


@dataclass(frozen=True)
class Link:
    """A link function ``eta = g(mu)`` with its inverse and derivative ``dmu/deta``."""

    name: str
    linkfun: Callable[[np.ndarray], np.ndarray]
    linkinv: Callable[[np.ndarray], np.ndarray]
    mu_eta: Callable[[np.ndarray], np.ndarray]

    def __repr__(self) -> str:
        return f"Link({self.name!r})"


def _logit_inv(eta):
    return special.expit(eta)


def _logit_mu_eta(eta):
    p = special.expit(eta)
    return np.maximum(p * (1.0 - p), _EPS)


def _probit(mu):
    from scipy import stats  # imported when used: scipy.stats takes a second to import

    return stats.norm.ppf(mu)


def _probit_mu_eta(eta):
    from scipy import stats

    return np.maximum(stats.norm.pdf(eta), _EPS)


def _cloglog_inv(eta):
    return np.clip(-np.expm1(-np.exp(np.minimum(eta, 700.0))), _EPS, 1.0 - _EPS)


def _cloglog_mu_eta(eta):
    eta = np.minimum(eta, 700.0)
    return np.maximum(np.exp(eta - np.exp(eta)), _EPS)


def _log_inv(eta):
    return np.maximum(np.exp(eta), _EPS)


LINKS: dict[str, Link] = {
    "logit": Link("logit", special.logit, _logit_inv, _logit_mu_eta),
    "probit": Link(
        "probit", _probit, lambda e: np.clip(special.ndtr(e), _EPS, 1 - _EPS), _probit_mu_eta
    ),
    "cloglog": Link("cloglog", lambda mu: np.log(-np.log1p(-mu)), _cloglog_inv, _cloglog_mu_eta),
    "log": Link("log", np.log, _log_inv, _log_inv),
    "identity": Link("identity", lambda mu: mu, lambda eta: eta, np.ones_like),
}


@dataclass(frozen=True)
class Family:
    """A GLM response family.

    Attributes
    ----------
    name : str
        ``"binomial"``, ``"poisson"``, ``"gaussian"`` or ``"negative_binomial"``.
    link : Link
        The link function in use.
    has_dispersion : bool
        True when the family has a free dispersion parameter (gaussian ``sigma``,
        negative-binomial ``alpha``).
    """

    name: str
    link: Link
    allowed_links: tuple[str, ...] = field(repr=False)
    has_dispersion: bool = False

    def variance(self, mu: np.ndarray, dispersion: float = 1.0) -> np.ndarray:
        """Variance function V(mu) per unit of ``trials`` (binomial) or per observation."""
        if self.name == "binomial":
            return np.maximum(mu * (1.0 - mu), _EPS)
        if self.name == "poisson":
            return np.maximum(mu, _EPS)
        if self.name == "gaussian":
            return np.ones_like(mu)
        # negative binomial, NB2: var = mu + mu^2 / alpha
        return np.maximum(mu + mu**2 / dispersion, _EPS)

    def loglik(
        self,
        y: np.ndarray,
        mu: np.ndarray,
        trials: np.ndarray | None = None,
        dispersion: float | None = None,
    ) -> np.ndarray:
        """Pointwise log-likelihood, normalizing constants included (as R's ``logLik``)."""
        from scipy import stats

        if self.name == "binomial":
            n = np.ones_like(y) if trials is None else trials
            return stats.binom.logpmf(y, n, np.clip(mu, _EPS, 1 - _EPS))
        if self.name == "poisson":
            return stats.poisson.logpmf(y, np.maximum(mu, _EPS))
        if self.name == "gaussian":
            return stats.norm.logpdf(y, mu, dispersion)
        alpha = dispersion
        return stats.nbinom.logpmf(y, alpha, alpha / (alpha + np.maximum(mu, _EPS)))

    def check_support(
        self, y: np.ndarray, trials: np.ndarray | None, response: str, labels=None
    ) -> None:
        """Raise :class:`DataError` naming the rows whose response is impossible.

        ``trials`` is None for a 0/1 response; ``labels`` are the data's row labels.
        """
        labels = np.arange(y.shape[0]) if labels is None else np.asarray(labels)

        def _fail(mask: np.ndarray, what: str) -> None:
            rows = np.flatnonzero(mask)
            shown = ", ".join(str(r) for r in labels[rows[:5]]) + (" ..." if rows.size > 5 else "")
            raise DataError(
                f"response '{response}' {what} for the {self.name} family "
                f"({rows.size} row(s): rows {shown}; first value {float(y[rows[0]])!r})"
            )

        if not np.all(np.isfinite(y)):
            _fail(~np.isfinite(y), "is not finite")
        if self.name in ("binomial", "poisson", "negative_binomial"):
            _fail_if(y < 0, _fail, "is negative")
            _fail_if(y != np.round(y), _fail, "is not a whole number")
        if self.name == "binomial":
            if trials is None:
                _fail_if(y > 1, _fail, "is not 0 or 1 (use cbind(successes, failures) for counts)")
            else:
                _fail_if(y > trials, _fail, "has more successes than trials")


def _fail_if(mask, fail, what):
    if np.any(mask):
        fail(mask, what)


_FAMILY_TABLE: dict[str, tuple[str, tuple[str, ...], bool]] = {
    # name: (default link, allowed links, has dispersion)
    "binomial": ("logit", ("logit", "probit", "cloglog", "log"), False),
    "poisson": ("log", ("log", "identity"), False),
    "gaussian": ("identity", ("identity", "log"), True),
    "negative_binomial": ("log", ("log", "identity"), True),
}

_ALIASES = {
    "bernoulli": "binomial",
    "binary": "binomial",
    "normal": "gaussian",
    "negbinomial": "negative_binomial",
    "negbin": "negative_binomial",
    "nbinom": "negative_binomial",
    "negative-binomial": "negative_binomial",
}


def get_family(family: str | Family, link: str | None = None) -> Family:
    """Return a :class:`Family`, with R's default link when ``link`` is None.

    Raises
    ------
    FamilyError
        For an unknown family or link, or a link the family does not allow.
    """
    if isinstance(family, Family):
        if link is None or link == family.link.name:
            return family
        family = family.name
    if not isinstance(family, str):
        raise FamilyError(f"family must be a string such as 'binomial', got {family!r}")
    key = _ALIASES.get(family.lower(), family.lower())
    if key not in _FAMILY_TABLE:
        raise FamilyError(
            f"unknown family {family!r}; choose one of {', '.join(sorted(_FAMILY_TABLE))}"
        )
    default, allowed, has_disp = _FAMILY_TABLE[key]
    link = default if link is None else link
    if not isinstance(link, str) or link.lower() not in LINKS:
        raise FamilyError(f"unknown link {link!r}; known links: {', '.join(LINKS)}")
    link = link.lower()
    if link not in allowed:
        raise FamilyError(
            f"the {key} family does not take the {link!r} link; allowed: {', '.join(allowed)}"
        )
    return Family(key, LINKS[link], allowed, has_disp)
