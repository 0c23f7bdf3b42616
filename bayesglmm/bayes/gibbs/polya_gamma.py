"""Polya-Gamma data augmentation for logit-link binomial and Bernoulli models.

Polson, Scott & Windle (2013): with ``omega_i ~ PG(n_i, eta_i)``,

.. math::

    \\frac{(e^{\\eta})^{y}}{(1 + e^{\\eta})^{n}}
    = 2^{-n} e^{\\kappa \\eta} \\int_0^\\infty e^{-\\omega \\eta^2 / 2}
      p_{PG}(\\omega \\mid n, 0)\\, d\\omega, \\qquad \\kappa = y - n/2,

so given ``omega`` the effects are Gaussian with weights ``omega`` and working response
``kappa``. The Polya-Gamma draws come from the ``polyagamma`` package (Nyasha & Cobb), not
from a sampler written here.
"""

from __future__ import annotations

import numpy as np
from polyagamma import random_polyagamma

from .augmented import AugmentedEffectsStep


def polya_gamma_weights(eta: np.ndarray, y: np.ndarray, n: np.ndarray, rng):
    """Working weights ``omega ~ PG(n_i, eta_i)`` and responses ``kappa = y - n / 2``.

    Given them, the logit likelihood in ``eta`` is ``exp(kappa eta - omega eta^2 / 2)`` up
    to a constant. ``eta`` may carry leading axes (one row of linear predictors per chain,
    ``(..., rows)``); ``y`` and ``n`` are per row. Rows without trials get ``omega = 0``.
    """
    omega = np.zeros_like(eta)
    rows = n > 0  # rows without trials carry no information
    omega[..., rows] = random_polyagamma(n[rows], eta[..., rows], random_state=rng)
    return omega, y - n / 2.0


class PolyaGammaStep(AugmentedEffectsStep):
    """Joint draw of fixed and random effects of a logit model by Polya-Gamma augmentation.

    See :class:`~bayesglmm.bayes.gibbs.augmented.AugmentedEffectsStep` for the parameters.

    Examples
    --------
    >>> m = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander,
    ...          priors={"Female": InverseGamma(1, 1), "Male": InverseGamma(1, 1)})
    >>> with m.build_pymc(parameterization="centered") as pm_model:   # doctest: +SKIP
    ...     pg = PolyaGammaStep(design=m)
    ...     idata = pm.sample(step=[pg])        # NUTS takes the variances
    """

    name = "polya_gamma"
    link = "logit"
    label = "Polya-Gamma"

    def augment(self, eta, y, n):
        return polya_gamma_weights(eta, y, n, self.rng)
