"""The PyTensor spelling of each family, for the PyMC model of :mod:`.builder`.

The reference is the NumPy :class:`~bayesglmm.model.families.Family`; here each family
names its PyMC distribution and that distribution's parameters as functions of the linear
predictor, so that :mod:`.builder` writes no family's likelihood itself.
``tests/test_family_engines.py`` checks :func:`pointwise_logp` against the reference for
every family and link. A family without an entry in :data:`LIKELIHOODS` has no PyMC model;
:func:`distribution` refuses it.

The binomial probit and cloglog links clip the probability to ``[EPS, 1 - EPS]``.
Prior weights turn each row's log-density into the family's weighted one
(:meth:`~bayesglmm.model.families.Family.weighted`, see :func:`observed`).
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


def _betabinomial(family: Family, eta, y, trials, bernoulli: bool, dispersion):
    """``BetaBinomial(n, mu phi, (1 - mu) phi)`` (glmmTMB's parameterization, see
    :class:`~bayesglmm.model.families.BetaBinomial`); ``mu`` clipped to [EPS, 1 - EPS]."""
    mu = pt.clip(inverse_link(family.link.name, eta), EPS, 1 - EPS)
    n = np.ones(np.shape(y)) if trials is None else np.asarray(trials)
    params = {"n": n.astype(np.int64), "alpha": mu * dispersion, "beta": (1 - mu) * dispersion}
    return pm.BetaBinomial, params, np.asarray(y).astype(np.int64)


#: family name -> its PyMC distribution, parameters and observed values
LIKELIHOODS: dict[str, Callable] = {
    "binomial": _binomial,
    "poisson": _poisson,
    "gaussian": _gaussian,
    "negative_binomial": _negative_binomial,
    "betabinomial": _betabinomial,
}


def distribution(
    family: Family, eta, y: np.ndarray, trials: np.ndarray | None, bernoulli: bool, dispersion
) -> tuple[type, dict, np.ndarray]:
    """The PyMC distribution of the response given ``eta``: its class, its parameters and
    the observed values. ``dispersion`` is the Gaussian ``sigma``, the negative-binomial
    ``alpha`` or the beta-binomial ``phi`` (a number or a tensor; None for families without
    one); ``bernoulli``: a 0/1 response, one trial per row.

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
    weights: np.ndarray | None = None,
):
    """The observed response variable ``name`` in the current PyMC model.

    With prior ``weights`` (:attr:`~bayesglmm.model.design.Design.weights`) the variable's
    log-density is the family's weighted log-likelihood
    (:meth:`~bayesglmm.model.families.Family.weighted`): ``y_i ~ N(mu_i, sigma^2 / w_i)``
    (a Normal with ``sigma / sqrt(w_i)``) for the Gaussian, ``w_i l_i`` for the others (a
    :class:`pymc.CustomDist` around the family's distribution, whose draws are the
    unweighted family's). The observed values stay those of ``y``, and PyMC's pointwise
    log-likelihood of the variable (``idata.log_likelihood``, so LOO and WAIC) is the
    weighted one. Without weights the family's own distribution, as before.
    """
    cls, params, values = distribution(family, eta, y, trials, bernoulli, dispersion)
    if weights is None:
        return cls(name, **params, observed=values)
    cls, params, logp = _weighted(family, cls, params, weights)
    if logp is None:
        return cls(name, **params, observed=values)
    keys = list(params)

    def draw(*args):  # the family's parameters, the weights, then PyMC's size
        return cls.dist(**dict(zip(keys, args[:-2], strict=True)), size=args[-1])

    return pm.CustomDist(name, *params.values(), weights, dist=draw, logp=logp, observed=values)


def _weighted(family: Family, cls, params: dict, weights: np.ndarray):
    """The weighted version of ``cls(**params)``: ``(cls, params, None)`` when a plain PyMC
    distribution carries the weights (the Gaussian's ``sigma / sqrt(w)``), else ``(cls,
    params, logp)`` with ``logp(value, *params, w)`` the family's weighted log-density of
    ``cls`` (:meth:`~bayesglmm.model.families.Family.weighted`: ``w_i l_i``)."""
    w = np.asarray(weights, dtype=float)
    if family.name == "gaussian":
        return cls, {**params, "sigma": params["sigma"] / np.sqrt(w)}, None
    keys = list(params)

    def logp(value, *args):
        base = cls.dist(**dict(zip(keys, args[:-1], strict=True)))
        return family.weighted(pm.logp(base, value), args[-1])

    return cls, params, logp


def pointwise_logp(
    family: Family,
    eta,
    y: np.ndarray,
    trials: np.ndarray | None = None,
    bernoulli: bool = False,
    dispersion=None,
    weights: np.ndarray | None = None,
):
    """Each row's log-likelihood as a PyTensor expression (normalizing constants
    included); with prior ``weights`` the weighted one (:func:`observed`)."""
    cls, params, values = distribution(family, eta, y, trials, bernoulli, dispersion)
    if weights is None:
        return pm.logp(cls.dist(**params), values)
    cls, params, logp = _weighted(family, cls, params, weights)
    if logp is None:
        return pm.logp(cls.dist(**params), values)
    return logp(pt.as_tensor_variable(values), *params.values(), pt.as_tensor_variable(weights))
