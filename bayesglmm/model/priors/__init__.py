"""Prior distributions for GLMM parameters: each class holds its parameters and owns its math.

A prior is a small frozen dataclass with its log density (:meth:`~.base.Prior.logpdf`, on
the scale it is declared), draws, tail exponents for the propriety check, power-scaled and
rescaled forms (:mod:`.base` describes the protocol). This package imports no PyMC and no
Numba: :mod:`bayesglmm.bayes.prior_dists` builds a prior's PyMC variable from its declared
``pymc_form``, and the compiled densities read its ``compiled_code``. Priors on
random-effect terms are priors on their standard deviations (as in brms and bambi) unless
the class says it acts on the variance.

* on a coefficient (:mod:`.real`): :class:`Normal`, :class:`StudentT`, :class:`Cauchy`,
  :class:`Flat`;
* on a standard deviation or variance (:mod:`.positive`): :class:`HalfNormal`,
  :class:`HalfStudentT`, :class:`HalfCauchy`, :class:`Exponential`, :class:`Gamma`,
  :class:`InverseGamma`, :class:`HalfFlat`, :class:`PowerVariance`, :class:`Jeffreys`;
* on a correlation or covariance matrix (:mod:`.matrix`): :class:`LKJ`,
  :class:`InverseWishart`;
* any parameter held at a value: :class:`Fixed`.

Default priors (weakly informative, all proper), with ``s = 1`` for binomial, Poisson and
negative-binomial models and ``s = sd(y)`` for Gaussian ones:

* intercept and indicator (dummy) columns: ``Normal(0, 2.5 s)``;
* other fixed-effect columns ``x``: ``Normal(0, 2.5 s / sd(x))``;
* standard deviation of each random-effect column: ``HalfNormal(2.5 s)``;
* correlations of correlated random effects: ``LKJ(eta=1)`` (uniform over correlation
  matrices, as brms);
* Gaussian residual standard deviation: ``HalfNormal(2.5 s)``;
* negative-binomial shape ``alpha``: ``Gamma(0.01, 0.01)`` (as brms).

Improper priors (:class:`Flat`, :class:`HalfFlat`, :class:`Jeffreys`,
:class:`PowerVariance`) are available for teaching and for the classical objective-Bayes
analyses; whether the posterior then exists depends on the data, and
:func:`bayesglmm.check_propriety` decides it before every Bayesian fit.
"""

from __future__ import annotations

import numpy as np

from ...errors import PriorError
from .base import Fixed, PowerScaled, Prior, Tails
from .matrix import LKJ, InverseWishart
from .positive import (
    Exponential,
    Gamma,
    HalfCauchy,
    HalfFlat,
    HalfNormal,
    HalfStudentT,
    InverseGamma,
    Jeffreys,
    PowerVariance,
)
from .real import Cauchy, Flat, Normal, StudentT

__all__ = [
    "Prior",
    "Tails",
    "PowerScaled",
    "Normal",
    "StudentT",
    "Cauchy",
    "Flat",
    "HalfNormal",
    "HalfStudentT",
    "HalfCauchy",
    "Exponential",
    "Gamma",
    "InverseGamma",
    "HalfFlat",
    "PowerVariance",
    "Jeffreys",
    "LKJ",
    "InverseWishart",
    "Fixed",
    "as_prior",
    "default_fixed_prior",
]


def as_prior(value, key: str) -> Prior:
    """Accept a Prior or a number (meaning :class:`Fixed`)."""
    if isinstance(value, Prior):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Fixed(float(value))
    raise PriorError(f"prior for {key!r} must be a bayesglmm.priors object, got {value!r}")


def default_fixed_prior(column: np.ndarray, name: str, scale_y: float) -> tuple[float, float]:
    """(mu, sigma) of the default Normal prior of one fixed-effect column."""
    values = np.unique(column)
    if name == "Intercept" or (values.size <= 2 and set(values.tolist()) <= {0.0, 1.0}):
        return 0.0, 2.5 * scale_y
    sd = float(np.std(column))
    return 0.0, 2.5 * scale_y / (sd if sd > 0 else 1.0)
