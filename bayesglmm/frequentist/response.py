"""The conditional distribution of the response given the linear predictor, for one data set.

:class:`Response` binds a family (:mod:`bayesglmm.model.families`, where all its math
lives) to the response, the trials and the data-only constant of the log-likelihood, which
it computes once; PIRLS, the Laplace and AGQ deviances and the Monte Carlo methods call it
at each ``eta``. See :meth:`bayesglmm.model.families.Family.eta_terms` for the score and
weights.
"""

from __future__ import annotations

import numpy as np

from ..model.families import Family, ResponseTerms

__all__ = ["Response", "ResponseTerms"]


class Response:
    """The conditional distribution of ``y`` given ``eta`` for one family/link.

    Parameters
    ----------
    family : Family
    y : ndarray
        Successes (binomial), counts or values.
    trials : ndarray or None
        Binomial trials; None for other families.
    weights : ndarray or None
        Prior weights (:attr:`bayesglmm.model.design.Design.weights`); the log-likelihood,
        score and weights are the family's weighted ones
        (:meth:`bayesglmm.model.families.Family.weighted`). None: no weights.
    """

    def __init__(
        self,
        family: Family,
        y: np.ndarray,
        trials: np.ndarray | None,
        weights: np.ndarray | None = None,
    ) -> None:
        self.family = family
        self.link = family.link.name
        self.y = np.asarray(y, dtype=float)
        self.n = np.ones_like(self.y) if trials is None else np.asarray(trials, dtype=float)
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        self._const = family.log_constant(self.y, self.n)
        self.canonical = family.canonical

    @property
    def has_dispersion(self) -> bool:
        return self.family.has_dispersion

    def loglik(self, eta: np.ndarray, mu: np.ndarray, disp: float = 1.0) -> np.ndarray:
        """Pointwise log-likelihood at ``eta`` (with ``mu = g^{-1}(eta)``), normalizing
        constants included; ``eta`` may have leading axes (the rows are its last)."""
        return self.family.loglik(
            self.y, mu, self.n, disp, eta=eta, constant=self._const, weights=self.weights
        )

    def terms(self, eta: np.ndarray, disp: float = 1.0, second: bool = False) -> ResponseTerms:
        """Log-likelihood, score and weights at ``eta`` (``second`` adds W_obs and dW).

        ``disp`` is the Gaussian ``sigma``, the negative-binomial ``alpha`` or the
        beta-binomial ``phi``.
        """
        return self.family.eta_terms(
            self.y, eta, self.n, disp, second, self._const, weights=self.weights
        )

    def saturated_loglik(self, disp: float | None = None) -> np.ndarray:
        """Pointwise log-likelihood at the saturated means."""
        ll = self.family.saturated_loglik(self.y, self.n, disp, self._const)
        return ll if self.weights is None else self.family.weighted(ll, self.weights, disp)

    def simulate(self, eta: np.ndarray, disp: float, rng: np.random.Generator) -> np.ndarray:
        """Draw a response at ``eta`` (same trials), for the parametric bootstrap."""
        mu = self.family.link.linkinv(eta)
        return np.asarray(self.family.simulate(mu, rng, self.n, disp), dtype=float)
