"""Albert & Chib (1993) latent-variable augmentation for probit-link binomial models.

Each trial ``t`` of row ``i`` gets a latent ``u_it ~ N(eta_i, 1)`` with ``y_it = 1`` exactly
when ``u_it > 0``. Given the latents, the effects are Gaussian with weight ``n_i`` and
working response ``sum_t u_it`` per row; given the effects, each latent is a normal
truncated to the side its outcome says.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import log_ndtr, ndtri_exp

from ...errors import MethodError
from .augmented import AugmentedEffectsStep


def truncated_normal(mean: np.ndarray, positive: np.ndarray, rng) -> np.ndarray:
    """``N(mean, 1)`` truncated to ``(0, inf)`` where ``positive`` else to ``(-inf, 0]``.

    Inverse-CDF sampling on the log scale (``log_ndtr``/``ndtri_exp``), accurate far into
    the tails where the naive ``ndtri(U * ndtr(.))`` underflows.
    """
    log_u = np.log1p(-rng.random(mean.shape))  # log of a uniform on (0, 1]
    # P(X > x | X > -mean) = ndtr(-x) / ndtr(mean) for X ~ N(0, 1)
    up = -ndtri_exp(log_u + log_ndtr(mean))
    down = ndtri_exp(log_u + log_ndtr(-mean))
    return mean + np.where(positive, up, down)


def albert_chib_latents(eta: np.ndarray, y: np.ndarray, n: np.ndarray, rng):
    """Working weights ``n_i`` and responses ``sum_t u_it`` from the latent normals.

    Given them, the probit likelihood in ``eta`` is ``exp(kappa eta - n eta^2 / 2)`` up to
    a constant (``kappa`` the row's sum of latents). ``eta`` may carry leading axes (one row
    of linear predictors per chain, ``(..., rows)``); ``y`` and ``n`` are per row.
    """
    if np.all(n == 1):
        return np.ones_like(eta), truncated_normal(eta, y > 0.5, rng)
    counts = np.rint(n).astype(np.int64)
    successes = np.rint(y).astype(np.int64)
    row = np.repeat(np.arange(n.size), counts)
    # within each row the first y trials are the successes
    trial = np.arange(row.size) - np.repeat(np.cumsum(counts) - counts, counts)
    u = truncated_normal(eta[..., row], trial < successes[row], rng)
    if eta.ndim == 1:
        return n.astype(float), np.bincount(row, weights=u, minlength=eta.size)
    sums = sp.csr_matrix((np.ones(row.size), (np.arange(row.size), row)), shape=(row.size, n.size))
    return n.astype(float), np.asarray((sums.T @ u.reshape(-1, row.size).T).T).reshape(eta.shape)


class AlbertChibStep(AugmentedEffectsStep):
    """Joint draw of fixed and random effects of a probit model by latent normals.

    See :class:`~bayesglmm.bayes.gibbs.augmented.AugmentedEffectsStep` for the parameters.
    Binomial rows with ``n`` trials get ``n`` latents (``y`` above zero, ``n - y`` below).
    """

    name = "albert_chib"
    link = "probit"
    label = "Albert-Chib"

    def _check_weights(self, why: str) -> None:
        w = self._data.weights
        if w is None:
            return
        y, n = self._data()
        if not (_whole(w * y) and _whole(w * n)):
            raise MethodError(
                f"{why}: prior weights times the response and the trials must be whole "
                "numbers (that many latent trials per row), and these are not: give the random "
                "terms 'metropolis' and the fixed effects 'nuts' in steps=, or use method='nuts'"
            )

    def augment(self, eta, y, n):
        if self._data.weights is not None:  # w y and w n: whole numbers (_check_weights)
            y, n = np.rint(y), np.rint(n)
        return albert_chib_latents(eta, y, n, self.rng)


def _whole(x: np.ndarray) -> bool:
    return bool(np.all(np.abs(x - np.rint(x)) <= 1e-9 * np.maximum(1.0, np.abs(x))))
