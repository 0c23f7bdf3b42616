"""PyMC random variables for the priors of :mod:`bayesglmm.model.priors`.

A prior imports no PyMC; it declares how the PyMC model holds it (``pymc_form``), and this
module builds each form, never looking at the prior's class:

* ``"distribution"``: the PyMC distribution named by ``dist``, with ``params()``;
* ``"constant"``: a ``pm.Data`` holding ``params()["value"]`` (:class:`~.priors.Fixed`);
* ``"power"`` (:math:`p(\\sigma^2) \\propto (\\sigma^2)^{-(a+1)}`, ``a = exponent``): an
  improper flat variable on :math:`(0, \\infty)` plus the log density as a ``pm.Potential``;
* ``"covariance"``: the packed Cholesky factor of a covariance (:func:`build_cholesky`);
* ``"correlation"``: built with its term (:func:`pymc.LKJCholeskyCov` in the builder).

:func:`pymc_logp` evaluates PyMC's density of a prior, for the tests that check it against
the prior's own :meth:`~bayesglmm.model.priors.Prior.logpdf`.
"""

from __future__ import annotations

import numpy as np
import pymc as pm

from ..errors import PriorError
from ..model.priors import Prior


def _distribution(prior: Prior, name: str, dims, shape):
    cls = getattr(pm, prior.dist)
    kwargs = {
        k: np.asarray(v) if isinstance(v, list | tuple) else v for k, v in prior.params().items()
    }
    return cls(name, **kwargs, dims=dims, shape=None if dims is not None else shape)


def _constant(prior: Prior, name: str, dims, shape):
    return pm.Data(name, np.asarray(prior.params()["value"], dtype=float))


def _power(prior: Prior, name: str, dims, shape):
    """An improper flat variable on (0, inf) plus ``-(a + 1) log var`` as a Potential."""
    var = pm.HalfFlat(name, dims=dims, shape=None if dims is not None else shape)
    pm.Potential(f"{name}_prior", -(prior.exponent + 1.0) * pm.math.log(var).sum())
    return var


#: builders of the forms that are one model variable
_FORMS = {"distribution": _distribution, "constant": _constant, "power": _power}


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
    build = _FORMS.get(prior.pymc_form)
    if build is None:
        how = {
            "covariance": "a covariance prior: use build_cholesky",
            "correlation": "a correlation prior: it is built with its term",
        }
        raise PriorError(
            f"{prior.describe()} is {how.get(prior.pymc_form, 'not representable in PyMC')}"
        )
    return build(prior, name, dims, shape)


def build_cholesky(prior: Prior, name: str, k: int):
    """The packed lower Cholesky factor of a ``k x k`` covariance with an inverse-Wishart
    prior, as a PyMC random variable."""
    from .gibbs.inverse_wishart import InverseWishartCholesky

    nu, psi = prior.matrices(k)
    return InverseWishartCholesky(name, nu=nu, psi=psi)


def pymc_logp(prior: Prior, x) -> np.ndarray:
    """PyMC's log density of ``prior`` at ``x`` on its declared scale, as a model holds it
    (the distribution and any Potential, no transform Jacobian).

    ``x`` is a vector of values, or for a matrix prior an array (n, k, k) of correlation
    or covariance matrices.
    """
    x = np.asarray(x, dtype=float)
    if prior.pymc_form == "correlation":
        k = x.shape[-1]
        dist = pm.LKJCorr.dist(n=k, eta=float(prior.params()["eta"]))
        upper = np.triu_indices(k, 1)
        return np.array([pm.logp(dist, r[upper]).eval() for r in x])
    if prior.pymc_form == "covariance":
        from .gibbs.inverse_wishart import InverseWishartCholesky, diag_positions, pack_lower

        k = x.shape[-1]
        nu, psi = prior.matrices(k)
        dist = InverseWishartCholesky.dist(nu, psi)
        out = []
        for cov in x:
            packed = pack_lower(np.linalg.cholesky(cov))
            diag = packed[diag_positions(k)]
            jacobian = k * np.log(2.0) + np.sum((k - np.arange(k)) * np.log(diag))
            out.append(float(pm.logp(dist, packed).eval()) - jacobian)
        return np.array(out)
    with pm.Model() as model:
        rv = build_prior(prior, "x")
    value = model.rvs_to_values[rv]
    transform = model.rvs_to_transforms.get(rv)
    fn = model.compile_logp(jacobian=False)
    out = []
    for xi in x.ravel():
        v = xi if transform is None else transform.forward(np.asarray(xi)).eval()
        out.append(float(fn({value.name: np.asarray(v)})))
    return np.array(out).reshape(x.shape)
