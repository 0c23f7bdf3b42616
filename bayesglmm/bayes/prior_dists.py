"""PyMC random variables for the plain-data priors of :mod:`bayesglmm.priors`.

:mod:`bayesglmm.priors` describes distributions and imports no PyMC; this module turns a
prior object into a random variable in the current PyMC model context, dispatching on the
prior's class:

* :class:`~bayesglmm.priors.Fixed`: a ``pm.Data`` constant;
* :class:`~bayesglmm.priors.PowerVariance` and :class:`~bayesglmm.priors.Jeffreys`
  (:math:`p(\\sigma^2) \\propto (\\sigma^2)^{-(a+1)}`): an improper flat variable on
  :math:`(0, \\infty)` plus the log density as a ``pm.Potential``;
* :class:`~bayesglmm.priors.InverseWishart`: the packed Cholesky factor of the covariance
  (:func:`build_cholesky`);
* any other prior: the PyMC distribution named by its ``dist`` with its ``params()``.
"""

from __future__ import annotations

import numpy as np
import pymc as pm

from ..errors import PriorError
from ..model.priors import Fixed, InverseWishart, Jeffreys, PowerVariance, Prior


def _power_variance(name: str, exponent: float, dims=None, shape=None):
    """An improper flat variable on (0, inf) plus ``-(a + 1) log var`` as a Potential."""
    var = pm.HalfFlat(name, dims=dims, shape=None if dims is not None else shape)
    pm.Potential(f"{name}_prior", -(exponent + 1.0) * pm.math.log(var).sum())
    return var


def build_prior(prior: Prior, name: str, dims=None, shape=None):
    """Create the PyMC random variable of ``prior`` in the current model context.

    Parameters
    ----------
    prior : bayesglmm.priors.Prior
    name : str
        Name of the model variable.
    dims, shape : optional
        PyMC dims (preferred) or shape of a vector-valued variable.
    """
    if isinstance(prior, Fixed):
        return pm.Data(name, np.asarray(prior.value, dtype=float))
    if isinstance(prior, PowerVariance | Jeffreys):
        return _power_variance(name, prior.exponent, dims, shape)
    if isinstance(prior, InverseWishart):
        raise PriorError(f"{prior.describe()} is a covariance prior: use build_cholesky")
    cls = getattr(pm, prior.dist)
    kwargs = {
        k: np.asarray(v) if isinstance(v, list | tuple) else v for k, v in prior.params().items()
    }
    return cls(name, **kwargs, dims=dims, shape=None if dims is not None else shape)


def build_cholesky(prior: InverseWishart, name: str, k: int):
    """The packed lower Cholesky factor of a ``k x k`` covariance with an inverse-Wishart
    prior, as a PyMC random variable."""
    from .gibbs.inverse_wishart import InverseWishartCholesky

    nu, psi = prior.matrices(k)
    return InverseWishartCholesky(name, nu=nu, psi=psi)
