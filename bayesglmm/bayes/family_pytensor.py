"""The PyTensor spelling of each family, for the PyMC model of :mod:`.builder`.

The reference is the NumPy :class:`~bayesglmm.model.families.Family`; here each family
names its PyMC distribution and that distribution's parameters as functions of the linear
predictor, so that :mod:`.builder` writes no family's likelihood itself.
``tests/test_family_engines.py`` checks :func:`pointwise_logp` against the reference for
every family and link. A family without an entry in :data:`LIKELIHOODS` has no PyMC model;
:func:`distribution` refuses it.

The binomial probit and cloglog links clip the probability to ``[EPS, 1 - EPS]``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..errors import MethodError
from ..model.families import Family

#: probabilities of the probit and cloglog links are clipped to [EPS, 1 - EPS]
EPS = 1e-12


def inverse_link(name: str, eta):
    """``g^{-1}(eta)`` as a PyTensor expression."""
    if name == "logit":
        return pm.math.invlogit(eta)
    if name == "probit":
        return 0.5 * (1.0 + pt.erf(eta / np.sqrt(2.0)))
    if name == "cloglog":
        return 1.0 - pt.exp(-pt.exp(eta))
    if name == "log":
        return pt.exp(eta)
    return eta


def _binomial(family: Family, eta, y, trials, bernoulli: bool, dispersion):
    observed = np.asarray(y).astype(np.int64)
    link = family.link.name
    if link == "logit":
        prob = {"logit_p": eta}
    else:
        prob = {"p": pt.clip(inverse_link(link, eta), EPS, 1 - EPS)}
    if bernoulli:
        return pm.Bernoulli, prob, observed
    return pm.Binomial, {"n": np.asarray(trials).astype(np.int64), **prob}, observed


def _poisson(family: Family, eta, y, trials, bernoulli: bool, dispersion):
    mu = inverse_link(family.link.name, eta)
    return pm.Poisson, {"mu": mu}, np.asarray(y).astype(np.int64)


def _gaussian(family: Family, eta, y, trials, bernoulli: bool, dispersion):
    mu = inverse_link(family.link.name, eta)
    return pm.Normal, {"mu": mu, "sigma": dispersion}, y


def _negative_binomial(family: Family, eta, y, trials, bernoulli: bool, dispersion):
    mu = inverse_link(family.link.name, eta)
    return pm.NegativeBinomial, {"mu": mu, "alpha": dispersion}, np.asarray(y).astype(np.int64)


#: family name -> its PyMC distribution, parameters and observed values
LIKELIHOODS: dict[str, Callable] = {
    "binomial": _binomial,
    "poisson": _poisson,
    "gaussian": _gaussian,
    "negative_binomial": _negative_binomial,
}


def distribution(
    family: Family, eta, y: np.ndarray, trials: np.ndarray | None, bernoulli: bool, dispersion
) -> tuple[type, dict, np.ndarray]:
    """The PyMC distribution of the response given ``eta``: its class, its parameters and
    the observed values. ``dispersion`` is the Gaussian ``sigma`` or negative-binomial
    ``alpha`` (a number or a tensor; None for families without one); ``bernoulli``: a 0/1
    response, one trial per row.

    Raises
    ------
    MethodError
        For a family without a PyMC likelihood.
    """
    if family.name not in LIKELIHOODS:
        raise MethodError(
            f"the PyMC model has no likelihood for the {family.name} family; it takes "
            f"{', '.join(LIKELIHOODS)}"
        )
    return LIKELIHOODS[family.name](family, eta, y, trials, bernoulli, dispersion)


def observed(
    family: Family,
    name: str,
    eta,
    y: np.ndarray,
    trials: np.ndarray | None,
    bernoulli: bool,
    dispersion=None,
):
    """The observed response variable ``name`` in the current PyMC model."""
    cls, params, values = distribution(family, eta, y, trials, bernoulli, dispersion)
    return cls(name, **params, observed=values)


def pointwise_logp(
    family: Family,
    eta,
    y: np.ndarray,
    trials: np.ndarray | None = None,
    bernoulli: bool = False,
    dispersion=None,
):
    """Each row's log-likelihood as a PyTensor expression (normalizing constants
    included)."""
    cls, params, values = distribution(family, eta, y, trials, bernoulli, dispersion)
    return pm.logp(cls.dist(**params), values)
