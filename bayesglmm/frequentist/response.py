"""Conditional log-likelihood of the response and its derivatives in the linear predictor.

For every family and link of :mod:`bayesglmm.families`, as functions of ``eta``:

- ``loglik``: pointwise log-likelihood with all normalizing constants (R's ``logLik``);
- ``score`` ``s = dl/deta = (y - n mu) mu_eta / (V(mu) phi)``;
- Fisher weight ``W = n mu_eta^2 / (V(mu) phi)`` (what lme4's PIRLS and Laplace use);
- observed weight ``W_obs = -d^2 l / deta^2 = W - (y - n mu)(mu_etaeta V - mu_eta^2 V') /
  (V^2 phi)``;
- ``dW = dW/deta``, needed by the gradient of ``log det(Lambda' Z' W Z Lambda + I)``.

``n`` is the number of binomial trials (1 otherwise), ``phi`` is ``sigma^2`` for the Gaussian
family and 1 otherwise; the negative binomial (NB2) has ``V = mu + mu^2 / alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from ..model.families import Family

_EPS = np.finfo(float).eps


def _mu_eta_eta(link: str, eta: np.ndarray, mu: np.ndarray, mu_eta: np.ndarray) -> np.ndarray:
    """Second derivative of the inverse link, ``d^2 mu / d eta^2``."""
    if link == "logit":
        return mu_eta * (1.0 - 2.0 * mu)
    if link == "probit":
        return -eta * mu_eta
    if link == "cloglog":
        return mu_eta * (1.0 - np.exp(np.minimum(eta, 700.0)))
    if link == "log":
        return mu_eta
    return np.zeros_like(eta)


@dataclass
class ResponseTerms:
    """Everything about the response at one ``eta``; see the module docstring."""

    mu: np.ndarray
    loglik: np.ndarray
    score: np.ndarray
    W: np.ndarray
    W_obs: np.ndarray | None = None
    dW: np.ndarray | None = None


class Response:
    """The conditional distribution of ``y`` given ``eta`` for one family/link.

    Parameters
    ----------
    family : Family
    y : ndarray
        Successes (binomial), counts or values.
    trials : ndarray or None
        Binomial trials; None for other families.
    """

    def __init__(self, family: Family, y: np.ndarray, trials: np.ndarray | None) -> None:
        self.family = family
        self.link = family.link.name
        self.y = np.asarray(y, dtype=float)
        self.n = np.ones_like(self.y) if trials is None else np.asarray(trials, dtype=float)
        y, n = self.y, self.n
        name = family.name
        if name == "binomial":
            self._const = (
                special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
            )
        elif name in ("poisson", "negative_binomial"):
            self._const = -special.gammaln(y + 1)
        else:
            self._const = np.zeros_like(y)
        self.canonical = (name, self.link) in {
            ("binomial", "logit"),
            ("poisson", "log"),
            ("gaussian", "identity"),
        }

    @property
    def has_dispersion(self) -> bool:
        return self.family.has_dispersion

    def _variance(self, mu: np.ndarray, disp: float) -> tuple[np.ndarray, np.ndarray]:
        """``V(mu)`` per trial and ``V'(mu)``."""
        name = self.family.name
        if name == "binomial":
            return np.maximum(mu * (1.0 - mu), _EPS), 1.0 - 2.0 * mu
        if name == "poisson":
            return np.maximum(mu, _EPS), np.ones_like(mu)
        if name == "gaussian":
            return np.ones_like(mu), np.zeros_like(mu)
        return np.maximum(mu + mu**2 / disp, _EPS), 1.0 + 2.0 * mu / disp

    def loglik(self, eta: np.ndarray, mu: np.ndarray, disp: float = 1.0) -> np.ndarray:
        """Pointwise log-likelihood, normalizing constants included."""
        y, n, name = self.y, self.n, self.family.name
        if name == "binomial":
            if self.link == "logit":  # exact in the tails, where mu is clipped
                log_p, log_q = -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)
            elif self.link == "probit":
                log_p, log_q = special.log_ndtr(eta), special.log_ndtr(-eta)
            elif self.link == "cloglog":
                e = np.exp(np.minimum(eta, 700.0))
                log_p, log_q = np.log(-np.expm1(-e)), -e
            else:
                m = np.clip(mu, _EPS, 1.0 - _EPS)
                log_p, log_q = np.log(m), np.log1p(-m)
            return self._const + y * log_p + (n - y) * log_q
        if name == "poisson":
            log_mu = eta if self.link == "log" else np.log(np.maximum(mu, _EPS))
            return self._const + y * log_mu - mu
        if name == "gaussian":
            return -0.5 * (y - mu) ** 2 / disp**2 - 0.5 * np.log(2.0 * np.pi * disp**2)
        a = disp
        m = np.maximum(mu, _EPS)
        return (
            self._const
            + special.gammaln(y + a)
            - special.gammaln(a)
            + a * np.log(a / (a + m))
            + special.xlogy(y, m / (a + m))
        )

    def terms(self, eta: np.ndarray, disp: float = 1.0, second: bool = False) -> ResponseTerms:
        """Log-likelihood, score and weights at ``eta`` (``second`` adds W_obs and dW).

        ``disp`` is the Gaussian ``sigma`` or the negative-binomial ``alpha``.
        """
        link = self.family.link
        mu = link.linkinv(eta)
        mu_eta = link.mu_eta(eta)
        V, dV = self._variance(mu, disp)
        phi = disp**2 if self.family.name == "gaussian" else 1.0
        resid = self.y - self.n * mu
        score = resid * mu_eta / (V * phi)
        W = self.n * mu_eta**2 / (V * phi)
        out = ResponseTerms(mu=mu, loglik=self.loglik(eta, mu, disp), score=score, W=W)
        if second:
            if self.canonical:
                out.W_obs = W
            else:
                mee = _mu_eta_eta(self.link, eta, mu, mu_eta)
                out.W_obs = W - resid * (mee * V - mu_eta**2 * dV) / (V**2 * phi)
            mee = _mu_eta_eta(self.link, eta, mu, mu_eta)
            out.dW = self.n * (2.0 * mu_eta * mee * V - mu_eta**3 * dV) / (V**2 * phi)
        return out

    def simulate(self, eta: np.ndarray, disp: float, rng: np.random.Generator) -> np.ndarray:
        """Draw a response at ``eta`` (same trials), for the parametric bootstrap."""
        mu = self.family.link.linkinv(eta)
        name = self.family.name
        if name == "binomial":
            return rng.binomial(self.n.astype(np.int64), np.clip(mu, 0.0, 1.0)).astype(float)
        if name == "poisson":
            return rng.poisson(mu).astype(float)
        if name == "gaussian":
            return rng.normal(mu, disp)
        return rng.negative_binomial(disp, disp / (disp + mu)).astype(float)
