"""Gibbs-style PyMC step methods for GLMMs, and ``method="gibbs"``.

Each update is a PyMC step method (:class:`pymc.step_methods.compound.BlockedStep`), usable
on its own or beside NUTS in ``pm.sample(step=[...])``:

* :class:`PolyaGammaStep` -- logit binomial/Bernoulli: fixed and random effects jointly;
* :class:`AlbertChibStep` -- probit binomial/Bernoulli: the same with latent normals;
* :class:`InverseGammaStep` -- a random-effect variance with an inverse-gamma prior;
* :class:`InverseWishartStep` -- a covariance with an inverse-Wishart prior;
* :class:`LevelMetropolisStep` -- random effects of one term, level by level, any family;
* :class:`CoordinateMetropolisStep` -- fixed effects (or any variable), one at a time;
* :class:`SliceScaleStep` -- a random-effect sd or variance with any other prior (slice);
* :class:`ScaleMoveStep` -- a random term and its sd or variance rescaled together.

All need the centered model (``GLMM.build_pymc(parameterization="centered")``).

For large crossed logit designs, ``method="gibbs", scheme="collapsed"`` (chosen by
``scheme="auto"`` from 10,000 rows) runs a NumPy sampler instead:
:mod:`~bayesglmm.bayes.gibbs.crossed` (Polya-Gamma, fixed effects collapsed with each
factor, slice + rescaling updates of the scales), cost per iteration linear in rows and levels.
"""

from .albert_chib import AlbertChibStep
from .conjugate import InverseGammaStep, InverseWishartStep
from .metropolis import CoordinateMetropolisStep, LevelMetropolisStep
from .polya_gamma import PolyaGammaStep
from .scale import ScaleMoveStep
from .slice import SliceScaleStep

__all__ = [
    "AlbertChibStep",
    "CoordinateMetropolisStep",
    "InverseGammaStep",
    "InverseWishartStep",
    "LevelMetropolisStep",
    "PolyaGammaStep",
    "ScaleMoveStep",
    "SliceScaleStep",
]
