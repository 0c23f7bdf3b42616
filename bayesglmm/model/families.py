"""Response families: the single NumPy reference of each family's math.

A :class:`Family` holds, as R's ``family`` objects do, its link (:mod:`.links`) and, in
NumPy: the pointwise log-likelihood with its normalizing constants (R's ``logLik``), the
variance function and its derivative, the unit deviance and deviance residuals, random
draws, R's starting means (``family$initialize``) and the saturated log-likelihood; from
these the base class derives the score and weights of the log-likelihood in the linear
predictor (:meth:`Family.eta_terms`). Every engine takes its family math from here.

Compiled engines that evaluate a row's log-likelihood inside their loops keep their own
spelling of it, each in one module named in :data:`ENGINE_SPELLINGS`:

- Numba (compiled NUTS densities, Monte Carlo kernels): :mod:`bayesglmm.bayes.family_kernels`;
- PyTensor (the PyMC model): :mod:`bayesglmm.bayes.family_pytensor`.

``tests/test_family_engines.py`` checks every spelling against this reference, for every
family and link each engine takes, at random points. An engine declares the families it
takes (a set of names or ``(family, link)`` pairs) and refuses the others through
:func:`unsupported_reason`. Adding a family is one subclass here, registered in
:data:`FAMILIES`, plus its tests; engines that do not declare it refuse it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy import special

from ..errors import DataError, FamilyError
from .links import LINKS, Link
from .priors import Gamma, HalfNormal, Prior

__all__ = [
    "DISPERSION_NAMES",
    "ENGINE_SPELLINGS",
    "FAMILIES",
    "LINKS",
    "BetaBinomial",
    "Binomial",
    "Family",
    "Gaussian",
    "Link",
    "NegativeBinomial",
    "Poisson",
    "ResponseTerms",
    "get_family",
    "unsupported_reason",
]

_EPS = np.finfo(float).eps

#: engine -> the module holding that engine's own spelling of every family's row math
ENGINE_SPELLINGS = {
    "numba": "bayesglmm.bayes.family_kernels",
    "pytensor": "bayesglmm.bayes.family_pytensor",
}


@dataclass
class ResponseTerms:
    """The response at one linear predictor ``eta`` (see :meth:`Family.eta_terms`).

    ``loglik`` pointwise log-likelihood; ``score`` ``dl/deta``; ``W`` Fisher weight;
    ``W_obs`` ``-d^2 l / deta^2``; ``dW`` ``dW/deta``.
    """

    mu: np.ndarray
    loglik: np.ndarray
    score: np.ndarray
    W: np.ndarray
    W_obs: np.ndarray | None = None
    dW: np.ndarray | None = None


def _trials(y: np.ndarray, trials) -> np.ndarray:
    return np.ones_like(y, dtype=float) if trials is None else trials


@dataclass(frozen=True)
class Family:
    """A GLM response family with its link.

    Attributes
    ----------
    name : str
        ``"binomial"``, ``"poisson"``, ``"gaussian"``, ``"negative_binomial"`` or
        ``"betabinomial"``.
    link : Link
        The link function in use.
    allowed_links : tuple of str
        The links the family takes.
    has_dispersion : bool
        True when the family has a free dispersion parameter (gaussian ``sigma``,
        negative-binomial ``alpha``, beta-binomial ``phi``), named by ``dispersion_name``.

    Notes
    -----
    ``trials`` is the number of binomial trials (ones, or None, for the other families);
    ``y`` is the count of successes. ``dispersion`` is the Gaussian ``sigma``, the
    negative-binomial shape ``alpha`` or the beta-binomial precision ``phi``. Means ``mu``
    are per trial.
    """

    name: str
    link: Link
    allowed_links: tuple[str, ...] = field(repr=False)
    has_dispersion: bool = False

    #: the family's name, its key in :data:`FAMILIES`
    family_name: ClassVar[str] = ""
    #: links the family takes, the first its default (R's)
    links: ClassVar[tuple[str, ...]] = ()
    #: the link whose Fisher and observed information agree
    canonical_link: ClassVar[str | None] = None
    #: name of the dispersion parameter in priors and results (None: none)
    dispersion_name: ClassVar[str | None] = None
    #: the response is a count (whole, non-negative)
    discrete: ClassVar[bool] = True
    #: each row is a number of successes of its own number of trials (a mean is per trial)
    has_trials: ClassVar[bool] = False
    #: the variance is ``phi V(mu)`` with ``phi`` free (a GLM estimates it by Pearson's
    #: statistic, as R's ``summary.glm``); 1 otherwise
    scale_free: ClassVar[bool] = False
    #: the dispersion is the residual standard deviation (a report lists it as the
    #: "Residual" row of the random effects, as lme4; other dispersions get a line of their own)
    dispersion_is_residual: ClassVar[bool] = False
    #: the Fisher weight ``W`` is the expected information (False: only a working weight,
    #: so the Laplace approximation takes the observed information)
    fisher_information: ClassVar[bool] = True
    #: the family and its dispersion in messages
    _label: ClassVar[str] = ""
    _dispersion_doc: ClassVar[str] = ""

    @classmethod
    def make(cls, link: str | None = None) -> Family:
        """The family with ``link`` (its default when None)."""
        link = cls.links[0] if link is None else link
        return cls(cls.family_name, LINKS[link], cls.links, cls.dispersion_name is not None)

    @property
    def canonical(self) -> bool:
        """Whether the link is the family's canonical link."""
        return self.link.name == self.canonical_link

    def default_dispersion_prior(self, scale: float = 1.0) -> Prior | None:
        """The default prior of the dispersion parameter (None: the family has none).

        ``scale`` is the response scale of the default priors
        (:func:`bayesglmm.model.prior_set.response_scale`).
        """
        return None

    # ------------------------------------------------------------------ log-likelihood
    def log_constant(self, y: np.ndarray, trials: np.ndarray | None = None) -> np.ndarray:
        """The data-only term of each row's log-likelihood (binomial coefficient,
        ``-log y!``)."""
        return np.zeros_like(y, dtype=float)

    def loglik(
        self,
        y: np.ndarray,
        mu: np.ndarray | None = None,
        trials: np.ndarray | None = None,
        dispersion: float | None = None,
        *,
        eta: np.ndarray | None = None,
        constant: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """Pointwise log-likelihood, normalizing constants included (as R's ``logLik``).

        Parameters
        ----------
        y, mu, trials, dispersion
            Response, mean per trial, binomial trials and dispersion (class notes).
        eta : ndarray, optional
            The linear predictor of ``mu``; with it the binomial and Poisson terms use the
            link's ``log mu`` and ``log(1 - mu)``, exact where ``mu`` rounds to 0 or 1.
            ``mu`` may then be None.
        constant : ndarray, optional
            :meth:`log_constant` of ``(y, trials)``, when the caller keeps it.
        weights : ndarray, optional
            Prior weights ``w_i > 0`` (:meth:`weighted`); None: none.
        """
        n = _trials(y, trials)
        if constant is None:
            constant = self.log_constant(y, n)
        ll = self._loglik(y, n, mu, eta, dispersion, constant)
        return ll if weights is None else self.weighted(ll, weights, dispersion)

    def weighted(self, loglik: np.ndarray, weights: np.ndarray, dispersion=None) -> np.ndarray:
        """The log-likelihood of rows with prior weights ``w_i`` from the unweighted
        ``loglik``: the density ``exp{(y theta - b(theta)) / (phi / w_i) + c}``.

        For the binomial, Poisson and negative binomial this is ``w_i l_i`` (R's ``glm``
        and ``glmer`` prior weights; integer weights are frequency weights). The Gaussian
        overrides it: ``y_i ~ N(mu_i, sigma^2 / w_i)`` (lme4's and ``glm``'s weights),
        which is ``w_i l_i + log(w_i) / 2 + (w_i - 1) log(2 pi sigma^2) / 2``.

        The score ``dl/deta`` and the weights ``W``, ``W_obs``, ``dW`` of
        :meth:`eta_terms` are ``w_i`` times the unweighted ones for every family.
        """
        return weights * loglik

    def _loglik(self, y, n, mu, eta, dispersion, constant) -> np.ndarray:
        """The log-likelihood; ``mu`` may be None when ``eta`` is given (:meth:`_mean`)."""
        raise NotImplementedError

    def _mean(self, mu, eta) -> np.ndarray:
        return self.link.linkinv(eta) if mu is None else mu

    def saturated_loglik(
        self,
        y: np.ndarray,
        trials: np.ndarray | None = None,
        dispersion: float | None = None,
        constant: np.ndarray | None = None,
    ) -> np.ndarray:
        """Pointwise log-likelihood at the saturated mean ``mu = y / trials`` (the largest
        each row's log-likelihood can be)."""
        n = _trials(y, trials)
        return self.loglik(y, self._saturated_mean(y, n), n, dispersion, constant=constant)

    def _saturated_mean(self, y, n) -> np.ndarray:
        return y

    # ------------------------------------------------------------------ variance
    def variance(self, mu: np.ndarray, dispersion: float = 1.0) -> np.ndarray:
        """Variance function ``V(mu)`` per trial (binomial) or per observation."""
        raise NotImplementedError

    def variance_derivative(self, mu: np.ndarray, dispersion: float = 1.0) -> np.ndarray:
        """``dV / dmu``."""
        raise NotImplementedError

    def scale(self, dispersion: float = 1.0) -> float:
        """The factor ``phi`` of the variance ``phi V(mu)`` (``sigma^2`` for the Gaussian)."""
        return 1.0

    # ------------------------------------------------------------------ derivatives
    def eta_terms(
        self,
        y: np.ndarray,
        eta: np.ndarray,
        trials: np.ndarray | None = None,
        dispersion: float = 1.0,
        second: bool = False,
        constant: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> ResponseTerms:
        """Log-likelihood, score and weights at ``eta`` (``second`` adds ``W_obs``, ``dW``).

        With ``n`` trials, ``phi`` = :meth:`scale`, ``V`` the variance function and the
        link's ``mu_eta``, ``mu_eta2``:

        - score ``s = dl/deta = (y - n mu) mu_eta / (V phi)``;
        - Fisher weight ``W = n mu_eta^2 / (V phi)`` (what lme4's PIRLS and Laplace use);
        - observed weight ``W_obs = -d^2 l / deta^2 = W - (y - n mu)(mu_eta2 V - mu_eta^2
          V') / (V^2 phi)`` (``W`` itself for the canonical link);
        - ``dW = dW/deta``, for the gradient of ``log det(Lambda' Z' W Z Lambda + I)``.

        With prior ``weights`` the log-likelihood is :meth:`weighted` and the score and
        the three weights are ``w_i`` times the unweighted ones.
        """
        n = _trials(y, trials)
        link = self.link
        mu, mu_eta, V, phi, resid, score, W = self._first_order(y, n, eta, dispersion)
        ll = self.loglik(y, mu, n, dispersion, eta=eta, constant=constant, weights=weights)
        if weights is not None:
            score, W = weights * score, weights * W
        out = ResponseTerms(mu=mu, loglik=ll, score=score, W=W)
        if second:
            dV = self.variance_derivative(mu, dispersion)
            mee = link.mu_eta2(eta, mu, mu_eta)
            w = 1.0 if weights is None else weights
            if self.canonical:
                out.W_obs = W
            else:
                out.W_obs = W - w * resid * (mee * V - mu_eta**2 * dV) / (V**2 * phi)
            out.dW = w * n * (2.0 * mu_eta * mee * V - mu_eta**3 * dV) / (V**2 * phi)
        return out

    def score_weight(
        self,
        y: np.ndarray,
        eta: np.ndarray,
        trials: np.ndarray | None = None,
        dispersion: float = 1.0,
        weights: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The score ``dl/deta`` and Fisher weight ``W`` at ``eta``, as :meth:`eta_terms`
        gives them, without the log-likelihood."""
        _, _, _, _, _, score, W = self._first_order(y, _trials(y, trials), eta, dispersion)
        if weights is not None:
            return weights * score, weights * W
        return score, W

    def _first_order(self, y, n, eta, dispersion):
        """``mu``, ``mu_eta``, ``V``, ``phi``, the residual ``y - n mu``, the score and ``W``."""
        link = self.link
        mu = link.linkinv(eta)
        mu_eta = link.mu_eta(eta)
        V = self.variance(mu, dispersion)
        phi = self.scale(dispersion)
        resid = y - n * mu
        score = resid * mu_eta / (V * phi)
        W = n * mu_eta**2 / (V * phi)
        return mu, mu_eta, V, phi, resid, score, W

    def cumulants(
        self,
        mu: np.ndarray,
        trials: np.ndarray | None = None,
        dispersion: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The first four cumulants ``(mean, variance, k3, k4)`` of each row's response at
        the mean ``mu`` per trial."""
        raise NotImplementedError(f"the {self.name} family gives no cumulants")

    # ------------------------------------------------------------------ deviance
    def unit_deviance(
        self,
        y: np.ndarray,
        mu: np.ndarray,
        trials: np.ndarray | None = None,
        dispersion: float | None = None,
    ) -> np.ndarray:
        """Each row's contribution to the deviance (R's ``family$dev.resids`` with the
        trials as weights): ``2 (l(y; y) - l(y; mu))``, times ``sigma^2`` for the Gaussian."""
        raise NotImplementedError

    def deviance_residuals(
        self,
        y: np.ndarray,
        mu: np.ndarray,
        trials: np.ndarray | None = None,
        dispersion: float | None = None,
    ) -> np.ndarray:
        """``sign(y - n mu) sqrt(unit deviance)`` (R's ``residuals(type = "deviance")``)."""
        n = _trials(y, trials)
        dev = self.unit_deviance(y, mu, n, dispersion)
        return np.sign(y - n * mu) * np.sqrt(np.maximum(dev, 0.0))

    def quasi_loglik(
        self, y: np.ndarray, mu: np.ndarray, trials: np.ndarray | None = None
    ) -> np.ndarray:
        """Pointwise quasi-likelihood ``Q(mu; y)`` as geepack's ``QIC`` takes it: the
        log-likelihood without its data-only term (``-(y - mu)^2 / 2`` for the Gaussian)."""
        n = _trials(y, trials)
        return self.loglik(y, mu, n, constant=np.zeros_like(y, dtype=float))

    def pearson_residuals(
        self,
        y: np.ndarray,
        mu: np.ndarray,
        trials: np.ndarray | None = None,
        dispersion: float = 1.0,
    ) -> np.ndarray:
        """``(y - n mu) / sqrt(n V(mu) phi)``."""
        n = _trials(y, trials)
        return (y - n * mu) / np.sqrt(n * self.variance(mu, dispersion) * self.scale(dispersion))

    # ------------------------------------------------------------------ draws and starts
    def simulate(
        self,
        mu: np.ndarray,
        rng: np.random.Generator,
        trials: np.ndarray | None = None,
        dispersion: float | None = None,
    ) -> np.ndarray:
        """One response per row with mean ``trials * mu`` (counts as integers)."""
        raise NotImplementedError

    def fitting_scale(
        self, y: np.ndarray, trials: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The response on the scale of a GLM fit and its prior weights (R's ``glm``:
        proportions weighted by their trials for the binomial)."""
        return np.asarray(y, dtype=float), np.ones(np.shape(y)[0])

    def mustart(self, y: np.ndarray, trials: np.ndarray | None = None) -> np.ndarray:
        """R's ``family$initialize`` starting means (per trial)."""
        return y

    def dispersion_start(self, y: np.ndarray, mu: np.ndarray) -> float | None:
        """A moment estimate of the dispersion at the means ``mu`` (None: no dispersion)."""
        return None

    def _need_dispersion(self, dispersion, what: str) -> None:
        if dispersion is None:
            raise DataError(f"a {self._label} {what} needs dispersion= ({self._dispersion_doc})")

    # ------------------------------------------------------------------ support
    def check_support(
        self, y: np.ndarray, trials: np.ndarray | None, response: str, labels=None
    ) -> None:
        """Raise :class:`DataError` naming the rows whose response is impossible.

        ``trials`` is None for a 0/1 response; ``labels`` are the data's row labels.
        """
        fail = self._failer(y, response, labels)
        if not np.all(np.isfinite(y)):
            fail(~np.isfinite(y), "is not finite")
        if self.discrete:
            _fail_if(y < 0, fail, "is negative")
            _fail_if(y != np.round(y), fail, "is not a whole number")

    def _failer(self, y, response: str, labels):
        labels = np.arange(y.shape[0]) if labels is None else np.asarray(labels)

        def fail(mask: np.ndarray, what: str) -> None:
            rows = np.flatnonzero(mask)
            shown = ", ".join(str(r) for r in labels[rows[:5]]) + (" ..." if rows.size > 5 else "")
            raise DataError(
                f"response '{response}' {what} for the {self.name} family "
                f"({rows.size} row(s): rows {shown}; first value {float(y[rows[0]])!r})"
            )

        return fail


def _fail_if(mask, fail, what):
    if np.any(mask):
        fail(mask, what)


@dataclass(frozen=True)
class Binomial(Family):
    """Binomial successes ``y`` of ``trials`` (Bernoulli for one trial)."""

    family_name: ClassVar[str] = "binomial"
    links: ClassVar[tuple[str, ...]] = ("logit", "probit", "cloglog", "log")
    canonical_link: ClassVar[str | None] = "logit"
    has_trials: ClassVar[bool] = True

    def log_constant(self, y, trials=None):
        n = _trials(y, trials)
        return special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)

    def _loglik(self, y, n, mu, eta, dispersion, constant):
        link = self.link
        if eta is not None and link.log1m_inv is not None:  # exact in the tails
            log_p, log_q = link.log_inv(eta), link.log1m_inv(eta)
        else:
            m = np.clip(self._mean(mu, eta), _EPS, 1.0 - _EPS)
            log_p, log_q = np.log(m), np.log1p(-m)
        return constant + y * log_p + (n - y) * log_q

    def saturated_loglik(self, y, trials=None, dispersion=None, constant=None):
        n = _trials(y, trials)
        inner = super().saturated_loglik(y, n, dispersion, constant)
        return np.where((y == 0) | (y == n), 0.0, inner)

    def _saturated_mean(self, y, n):
        return y / n

    def variance(self, mu, dispersion=1.0):
        return np.maximum(mu * (1.0 - mu), _EPS)

    def variance_derivative(self, mu, dispersion=1.0):
        return 1.0 - 2.0 * mu

    def cumulants(self, mu, trials=None, dispersion=None):
        n = _trials(mu, trials)
        pq = mu * (1.0 - mu)
        v = n * pq
        return n * mu, v, v * (1.0 - 2.0 * mu), v * (1.0 - 6.0 * pq)

    def unit_deviance(self, y, mu, trials=None, dispersion=None):
        n = _trials(y, trials)
        m = np.clip(mu, _EPS, 1.0 - _EPS)
        return 2.0 * (
            special.xlogy(y, y / (n * m)) + special.xlogy(n - y, (n - y) / (n * (1.0 - m)))
        )

    def simulate(self, mu, rng, trials=None, dispersion=None):
        n = _trials(mu, trials)
        return rng.binomial(np.asarray(n).astype(np.int64), np.clip(mu, 0.0, 1.0))

    def fitting_scale(self, y, trials):
        n = _trials(y, trials)
        return y / n, n.astype(float)

    def mustart(self, y, trials=None):
        return (y + 0.5) / (_trials(y, trials) + 1.0)

    def check_support(self, y, trials, response, labels=None):
        super().check_support(y, trials, response, labels)
        fail = self._failer(y, response, labels)
        if trials is None:
            _fail_if(y > 1, fail, "is not 0 or 1 (use cbind(successes, failures) for counts)")
        else:
            _fail_if(y > trials, fail, "has more successes than trials")


@dataclass(frozen=True)
class Poisson(Family):
    """Poisson counts."""

    family_name: ClassVar[str] = "poisson"
    links: ClassVar[tuple[str, ...]] = ("log", "identity")
    canonical_link: ClassVar[str | None] = "log"

    def log_constant(self, y, trials=None):
        return -special.gammaln(y + 1)

    def _loglik(self, y, n, mu, eta, dispersion, constant):
        mu = self._mean(mu, eta)
        if eta is not None and self.link.log_inv is not None:
            log_mu = self.link.log_inv(eta)
        else:
            log_mu = np.log(np.maximum(mu, _EPS))
        return constant + y * log_mu - mu

    def variance(self, mu, dispersion=1.0):
        return np.maximum(mu, _EPS)

    def variance_derivative(self, mu, dispersion=1.0):
        return np.ones_like(mu)

    def cumulants(self, mu, trials=None, dispersion=None):
        return mu, mu, mu, mu

    def unit_deviance(self, y, mu, trials=None, dispersion=None):
        m = np.maximum(mu, _EPS)
        return 2.0 * (special.xlogy(y, y / m) - (y - m))

    def simulate(self, mu, rng, trials=None, dispersion=None):
        return rng.poisson(mu)

    def mustart(self, y, trials=None):
        return y + 0.1


@dataclass(frozen=True)
class Gaussian(Family):
    """Normal responses with residual standard deviation ``sigma`` (the dispersion)."""

    family_name: ClassVar[str] = "gaussian"
    links: ClassVar[tuple[str, ...]] = ("identity", "log")
    canonical_link: ClassVar[str | None] = "identity"
    dispersion_name: ClassVar[str | None] = "sigma"
    discrete: ClassVar[bool] = False
    scale_free: ClassVar[bool] = True
    dispersion_is_residual: ClassVar[bool] = True
    _label: ClassVar[str] = "Gaussian"
    _dispersion_doc: ClassVar[str] = "the residual sd"

    def default_dispersion_prior(self, scale=1.0):
        return HalfNormal(2.5 * scale)

    def _loglik(self, y, n, mu, eta, dispersion, constant):
        self._need_dispersion(dispersion, "log-likelihood")
        mu, s = self._mean(mu, eta), dispersion
        return -0.5 * (y - mu) ** 2 / s**2 - 0.5 * np.log(2.0 * np.pi * s**2)

    def weighted(self, loglik, weights, dispersion=None):
        self._need_dispersion(dispersion, "weighted log-likelihood")
        return weights * loglik + 0.5 * (
            np.log(weights) + (weights - 1.0) * np.log(2.0 * np.pi * dispersion**2)
        )

    def quasi_loglik(self, y, mu, trials=None):
        return -0.5 * self.unit_deviance(y, mu)

    def variance(self, mu, dispersion=1.0):
        return np.ones_like(mu)

    def variance_derivative(self, mu, dispersion=1.0):
        return np.zeros_like(mu)

    def scale(self, dispersion=1.0):
        return dispersion**2

    def cumulants(self, mu, trials=None, dispersion=None):
        self._need_dispersion(dispersion, "cumulant")
        zero = np.zeros_like(mu)
        return mu, zero + dispersion**2, zero, zero

    def unit_deviance(self, y, mu, trials=None, dispersion=None):
        return (y - mu) ** 2

    def simulate(self, mu, rng, trials=None, dispersion=None):
        self._need_dispersion(dispersion, "simulation")
        return rng.normal(mu, dispersion)

    def mustart(self, y, trials=None):
        if self.link.name != "log":
            return y
        floor = 0.1 * max(float(np.mean(np.abs(y))), 1e-8)
        return np.where(y > 0, y, floor)

    def dispersion_start(self, y, mu):
        return float(max(np.std(y - mu), 1e-3))


@dataclass(frozen=True)
class NegativeBinomial(Family):
    """Negative-binomial (NB2) counts: ``Var y = mu + mu^2 / alpha``, shape ``alpha``."""

    family_name: ClassVar[str] = "negative_binomial"
    links: ClassVar[tuple[str, ...]] = ("log", "identity")
    dispersion_name: ClassVar[str | None] = "alpha"
    _label: ClassVar[str] = "negative-binomial"
    _dispersion_doc: ClassVar[str] = "alpha"

    def default_dispersion_prior(self, scale=1.0):
        return Gamma(0.01, 0.01, on="value")

    def log_constant(self, y, trials=None):
        return -special.gammaln(y + 1)

    def _loglik(self, y, n, mu, eta, dispersion, constant):
        self._need_dispersion(dispersion, "log-likelihood")
        a = dispersion
        m = np.maximum(self._mean(mu, eta), _EPS)
        return (
            constant
            + special.gammaln(y + a)
            - special.gammaln(a)
            + a * np.log(a / (a + m))
            + special.xlogy(y, m / (a + m))
        )

    def variance(self, mu, dispersion=1.0):
        return np.maximum(mu + mu**2 / dispersion, _EPS)

    def variance_derivative(self, mu, dispersion=1.0):
        return 1.0 + 2.0 * mu / dispersion

    def cumulants(self, mu, trials=None, dispersion=None):
        self._need_dispersion(dispersion, "cumulant")
        r = mu / dispersion  # NB2: k2 = mu (1 + r), k3 = k2 (1 + 2r), ...
        k2 = mu * (1.0 + r)
        return mu, k2, k2 * (1.0 + 2.0 * r), mu * (1.0 + r * (7.0 + r * (12.0 + 6.0 * r)))

    def unit_deviance(self, y, mu, trials=None, dispersion=None):
        self._need_dispersion(dispersion, "deviance")
        a = dispersion
        m = np.maximum(mu, _EPS)
        return 2.0 * (special.xlogy(y, y / m) - (y + a) * np.log((y + a) / (m + a)))

    def simulate(self, mu, rng, trials=None, dispersion=None):
        self._need_dispersion(dispersion, "simulation")
        return rng.negative_binomial(dispersion, dispersion / (dispersion + mu))

    def mustart(self, y, trials=None):
        return y + 0.1

    def dispersion_start(self, y, mu):
        excess = np.mean((y - mu) ** 2 - mu)  # NB2: Var = mu + mu^2 / alpha
        return float(np.clip(np.mean(mu**2) / excess, 0.1, 100.0)) if excess > 0 else 10.0


@dataclass(frozen=True)
class BetaBinomial(Family):
    """Beta-binomial successes ``y`` of ``trials`` (Brooks et al. 1997), as glmmTMB's
    ``betabinomial`` family.

    Each row's success probability is drawn from ``Beta(a, b)`` with ``a = mu phi`` and
    ``b = (1 - mu) phi``, so that, with ``n`` trials, ``E y = n mu`` and ``Var y = n mu
    (1 - mu) (1 + (n - 1) / (phi + 1))``; the intra-cluster (intra-litter) correlation of
    the trials is ``rho = 1 / (phi + 1)``. The dispersion ``phi > 0`` is glmmTMB's
    ``sigma(m)`` of a betabinomial fit (its dispersion model is on the log scale); as
    ``phi -> inf`` the family tends to the binomial. Optimizers take ``log phi``. One
    trial per row (a 0/1 response) is the Bernoulli at any ``phi``: only rows with more
    than one trial inform ``phi``.

    The family is not an exponential family: the score and the observed information in
    ``eta`` are exact (digamma and trigamma functions); the weight ``W`` of the Fisher
    steps is the quasi-likelihood one, ``n mu_eta^2 / (mu (1 - mu) (1 + (n - 1) rho))``,
    and the Laplace approximation takes the observed information
    (:attr:`~Family.fisher_information` is False).
    """

    family_name: ClassVar[str] = "betabinomial"
    links: ClassVar[tuple[str, ...]] = ("logit",)
    dispersion_name: ClassVar[str | None] = "phi"
    has_trials: ClassVar[bool] = True
    fisher_information: ClassVar[bool] = False
    _label: ClassVar[str] = "beta-binomial"
    _dispersion_doc: ClassVar[str] = "phi, the beta precision"

    def default_dispersion_prior(self, scale=1.0):
        return Gamma(0.01, 0.01, on="value")

    def log_constant(self, y, trials=None):
        n = _trials(y, trials)
        return special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)

    def _ab(self, mu, dispersion):
        m = np.clip(mu, _EPS, 1.0 - _EPS)
        return m * dispersion, (1.0 - m) * dispersion

    def _loglik(self, y, n, mu, eta, dispersion, constant):
        self._need_dispersion(dispersion, "log-likelihood")
        a, b = self._ab(self._mean(mu, eta), dispersion)
        return constant + special.betaln(y + a, n - y + b) - special.betaln(a, b)

    def saturated_loglik(self, y, trials=None, dispersion=None, constant=None):
        """Each row's log-likelihood at its own best mean, at the given ``phi``: the root
        of the score in ``mu`` (concave in ``mu``; found by bisection), not ``y / n``; 0 for
        ``y = 0`` and ``y = n`` (the limits ``mu -> 0, 1``)."""
        self._need_dispersion(dispersion, "saturated log-likelihood")
        n = _trials(y, trials)
        y, n = np.broadcast_arrays(np.asarray(y, dtype=float), np.asarray(n, dtype=float))
        edge = (y == 0) | (y == n)
        lo, hi = np.zeros(y.shape), np.ones(y.shape)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            up = self._mu_derivatives(y, n, mid, dispersion, 1)[0] > 0
            lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
        inner = self.loglik(y, 0.5 * (lo + hi), n, dispersion, constant=constant)
        return np.where(edge, 0.0, inner)

    def variance(self, mu, dispersion=1.0):
        """The per-trial binomial variance ``mu (1 - mu)``; a row's variance is
        :meth:`cumulants` (it depends on the trials)."""
        return np.maximum(mu * (1.0 - mu), _EPS)

    def variance_derivative(self, mu, dispersion=1.0):
        return 1.0 - 2.0 * mu

    def _mu_derivatives(self, y, n, mu, dispersion, order):
        """``d^k l / d mu^k`` for ``k = 1..order``."""
        a, b = self._ab(mu, dispersion)
        out = []
        for k in range(order):
            sign = -1.0 if k % 2 == 0 else 1.0  # the y-free terms: d^k of the b side flips
            d = special.polygamma(k, y + a) - special.polygamma(k, a)
            d = d + sign * (special.polygamma(k, n - y + b) - special.polygamma(k, b))
            out.append(dispersion ** (k + 1) * d)
        return out

    def _first_order(self, y, n, eta, dispersion):
        self._need_dispersion(dispersion, "score")
        link = self.link
        mu = link.linkinv(eta)
        mu_eta = link.mu_eta(eta)
        V = self.variance(mu, dispersion)
        resid = y - n * mu
        (l1,) = self._mu_derivatives(y, n, mu, dispersion, 1)
        score = l1 * mu_eta
        W = n * mu_eta**2 / (V * (1.0 + (n - 1.0) / (dispersion + 1.0)))
        return mu, mu_eta, V, 1.0, resid, score, W

    def eta_terms(
        self, y, eta, trials=None, dispersion=1.0, second=False, constant=None, weights=None
    ):
        n = _trials(y, trials)
        mu, mu_eta, V, _, _, score, W = self._first_order(y, n, eta, dispersion)
        ll = self.loglik(y, mu, n, dispersion, eta=eta, constant=constant, weights=weights)
        w = 1.0 if weights is None else weights
        out = ResponseTerms(mu=mu, loglik=ll, score=w * score, W=w * W)
        if second:
            l1, l2 = self._mu_derivatives(y, n, mu, dispersion, 2)
            m1 = mu_eta
            m2 = self.link.mu_eta2(eta, mu, mu_eta)
            out.W_obs = -w * (l2 * m1**2 + l1 * m2)
            out.dW = w * W * (2.0 * m2 / m1 - m1 * self.variance_derivative(mu) / V)
        return out

    def cumulants(self, mu, trials=None, dispersion=None):
        self._need_dispersion(dispersion, "cumulant")
        n = _trials(mu, trials)
        a, b = self._ab(mu, dispersion)
        from scipy import stats  # on use: importing the package stays light

        mean, var, skew, kurt = stats.betabinom.stats(n, a, b, moments="mvsk")
        return mean, var, skew * var**1.5, kurt * var**2

    def unit_deviance(self, y, mu, trials=None, dispersion=None):
        self._need_dispersion(dispersion, "deviance")
        n = _trials(y, trials)
        zero = np.zeros(np.shape(y))
        sat = self.saturated_loglik(y, n, dispersion, zero)
        return 2.0 * (sat - self.loglik(y, mu, n, dispersion, constant=zero))

    def pearson_residuals(self, y, mu, trials=None, dispersion=1.0):
        n = _trials(y, trials)
        var = n * mu * (1.0 - mu) * (1.0 + (n - 1.0) / (dispersion + 1.0))
        return (y - n * mu) / np.sqrt(var)

    def simulate(self, mu, rng, trials=None, dispersion=None):
        self._need_dispersion(dispersion, "simulation")
        n = _trials(mu, trials)
        a, b = self._ab(np.asarray(mu, dtype=float), dispersion)
        return rng.binomial(np.asarray(n).astype(np.int64), rng.beta(a, b))

    def fitting_scale(self, y, trials):
        n = _trials(y, trials)
        return y / n, n.astype(float)

    def mustart(self, y, trials=None):
        return (y + 0.5) / (_trials(y, trials) + 1.0)

    def dispersion_start(self, y, mu):
        """A fixed start, ``phi = 10`` (``rho`` about 0.09): a moment estimate needs the
        trials, which this hook does not get."""
        return 10.0

    def check_support(self, y, trials, response, labels=None):
        super().check_support(y, trials, response, labels)
        fail = self._failer(y, response, labels)
        if trials is None or not np.any(np.asarray(trials) > 1):
            raise DataError(
                f"response '{response}' has one trial per row: the beta-binomial is then the "
                "Bernoulli and its phi is not identified; give the trials as "
                "cbind(successes, failures) (or use family='binomial')"
            )
        _fail_if(y > trials, fail, "has more successes than trials")


#: family name -> class; :func:`get_family` builds from here
FAMILIES: dict[str, type[Family]] = {
    cls.family_name: cls for cls in (Binomial, Poisson, Gaussian, NegativeBinomial, BetaBinomial)
}
#: the names of the families' dispersion parameters (result rows, draws, simulation truths)
DISPERSION_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(c.dispersion_name for c in FAMILIES.values() if c.dispersion_name)
)

_ALIASES = {
    "bernoulli": "binomial",
    "binary": "binomial",
    "normal": "gaussian",
    "negbinomial": "negative_binomial",
    "negbin": "negative_binomial",
    "nbinom": "negative_binomial",
    "beta_binomial": "betabinomial",
    "beta-binomial": "betabinomial",
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
    if key not in FAMILIES:
        raise FamilyError(f"unknown family {family!r}; choose one of {', '.join(sorted(FAMILIES))}")
    cls = FAMILIES[key]
    link = cls.links[0] if link is None else link
    if not isinstance(link, str) or link.lower() not in LINKS:
        raise FamilyError(f"unknown link {link!r}; known links: {', '.join(LINKS)}")
    link = link.lower()
    if link not in cls.links:
        raise FamilyError(
            f"the {key} family does not take the {link!r} link; allowed: {', '.join(cls.links)}"
        )
    return cls.make(link)


def unsupported_reason(
    family: Family, supported: Collection[str | tuple[str, str]], engine: str
) -> str | None:
    """Why an engine that declares ``supported`` (family names, or ``(family, link)``
    pairs) cannot take ``family``; None when it can."""
    key = (family.name, family.link.name)
    if key in supported or family.name in supported:
        return None
    takes = ", ".join(sorted(s if isinstance(s, str) else "/".join(s) for s in supported))
    return f"{engine} takes {takes}; the model is {key[0]}/{key[1]}"
