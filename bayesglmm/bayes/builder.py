"""Build a PyMC model from a :class:`~bayesglmm.design.Design` and a prior set.

Variable names follow bambi: a fixed-effect term keeps its formula name (``"Intercept"``,
``"Cross"`` with dim ``"Cross_dim"``); a random term is named ``"1|Female"`` with the dim
``"Female"`` whose coords are the factor's levels; its standard deviation is
``"1|Female_sigma"``. Correlated terms add ``"<term>_chol"`` (LKJ Cholesky factor),
``"<term>_sigma"`` and ``"<term>_corr"``; with an
:class:`~bayesglmm.priors.InverseWishart` prior ``"<term>_chol"`` is the packed Cholesky
factor of the covariance instead.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..errors import MethodError, PriorError
from ..model.design import Design, RandomTerm
from ..model.prior_set import PriorSet
from ..model.priors import Prior
from . import family_pytensor
from .blas import configure
from .prior_dists import build_cholesky, build_prior

# the package's PyMC models are built here: PyTensor links the bundled OpenBLAS from their
# first compile on (see bayesglmm/bayes/blas.py)
configure()

PARAMETERIZATIONS = ("noncentered", "centered")


def _fixed_block(design: Design, priors: PriorSet, coords: dict):
    eta = None
    for term, sl in design.fixed_terms.items():
        names = design.fixed_names[sl]
        Xt = design.X[:, sl]
        prior = priors.fixed[term]
        if len(names) == 1:
            beta = build_prior(prior, term)
            part = pt.as_tensor_variable(Xt[:, 0]) * beta
        else:
            dim = f"{term}_dim"
            coords[dim] = design.fixed_coords(term)
            pm.modelcontext(None).add_coord(dim, coords[dim])
            beta = build_prior(prior, term, dims=dim)
            part = pt.dot(pt.as_tensor_variable(Xt), beta)
        eta = part if eta is None else eta + part
    return eta


def _sd_vector(term: RandomTerm, priors: list[Prior], coef_dim: str | None):
    """Standard deviations of the columns of one term, as a tensor of shape (k,) or ()."""
    sds = []
    for j, prior in enumerate(priors):
        suffix = "" if term.n_columns == 1 else f"[{term.columns[j]}]"
        base = f"{term.name}_sigma{suffix}"
        if prior.scale == "variance":
            var = build_prior(prior, f"{term.name}_var{suffix}")
            sds.append(pm.Deterministic(base, pt.sqrt(var)))
        else:
            sds.append(build_prior(prior, base))
    if term.n_columns == 1:
        return sds[0]
    return pt.stack(sds)


def _random_block(term: RandomTerm, priors: PriorSet, parameterization: str):
    model = pm.modelcontext(None)
    group_dim = term.group
    if group_dim not in model.coords:
        model.add_coord(group_dim, term.levels)
    idx = term.index
    k = term.n_columns
    if term.structure == "relmat":
        return _relmat_block(term, priors, parameterization)
    if term.structure == "ar1":
        return _ar1_block(term, priors, parameterization)
    if k == 1:
        sd = _sd_vector(term, priors.random_sd[term.name], None)
        if parameterization == "noncentered":
            z = pm.Normal(f"{term.name}_offset", 0.0, 1.0, dims=group_dim)
            b = pm.Deterministic(term.name, z * sd, dims=group_dim)
        else:
            b = pm.Normal(term.name, 0.0, sd, dims=group_dim)
        x = term.X[:, 0]
        contrib = b[idx] if np.all(x == 1.0) else pt.as_tensor_variable(x) * b[idx]
        return contrib
    coef_dim = f"{term.name}_coef"
    model.add_coord(coef_dim, term.columns)
    if term.correlated and priors.correlation[term.name].scale == "covariance":
        # an InverseWishart prior on the whole covariance (the conjugate Gibbs choice)
        chol = pm.expand_packed_triangular(
            k, build_cholesky(priors.correlation[term.name], f"{term.name}_chol", k), lower=True
        )
        sds = pt.sqrt(pt.sum(chol**2, axis=1))
        pm.Deterministic(f"{term.name}_sigma", sds, dims=coef_dim)
        model.add_coord(f"{coef_dim}_", term.columns)
        corr = pt.dot(chol, chol.T) / pt.outer(sds, sds)
        pm.Deterministic(f"{term.name}_corr", corr, dims=(coef_dim, f"{coef_dim}_"))
        if parameterization == "noncentered":
            z = pm.Normal(f"{term.name}_offset", 0.0, 1.0, dims=(group_dim, coef_dim))
            b = pm.Deterministic(term.name, pt.dot(z, chol.T), dims=(group_dim, coef_dim))
        else:
            b = pm.MvNormal(term.name, mu=np.zeros(k), chol=chol, dims=(group_dim, coef_dim))
    elif term.correlated:
        lkj = priors.correlation[term.name]
        sd_priors = priors.random_sd[term.name]
        first = sd_priors[0]
        if (
            any(type(p) is not type(first) for p in sd_priors)
            or first.scale != "sd"
            or first.improper
        ):
            raise PriorError(
                f"correlated term {term.name}: its standard deviations need one proper prior "
                f"family on the sd scale for the LKJ prior, got "
                f"{[p.describe() for p in sd_priors]}"
            )
        params = {}
        for key in first.params():
            params[key] = np.array([getattr(p, key) for p in sd_priors], dtype=float)
        sd_dist = getattr(pm, first.dist).dist(**params, shape=k)
        chol, corr, sds = pm.LKJCholeskyCov(
            f"{term.name}_chol",
            n=k,
            eta=lkj.eta,
            sd_dist=sd_dist,
            compute_corr=True,
            store_in_trace=False,
        )
        pm.Deterministic(f"{term.name}_sigma", sds, dims=coef_dim)
        model.add_coord(f"{coef_dim}_", term.columns)
        pm.Deterministic(f"{term.name}_corr", corr, dims=(coef_dim, f"{coef_dim}_"))
        if parameterization == "noncentered":
            z = pm.Normal(f"{term.name}_offset", 0.0, 1.0, dims=(group_dim, coef_dim))
            b = pm.Deterministic(term.name, pt.dot(z, chol.T), dims=(group_dim, coef_dim))
        else:
            b = pm.MvNormal(term.name, mu=np.zeros(k), chol=chol, dims=(group_dim, coef_dim))
    else:
        sd = _sd_vector(term, priors.random_sd[term.name], coef_dim)
        if parameterization == "noncentered":
            z = pm.Normal(f"{term.name}_offset", 0.0, 1.0, dims=(group_dim, coef_dim))
            b = pm.Deterministic(term.name, z * sd[None, :], dims=(group_dim, coef_dim))
        else:
            b = pm.Normal(term.name, 0.0, sd[None, :], dims=(group_dim, coef_dim))
    return (pt.as_tensor_variable(term.X) * b[idx]).sum(axis=1)


def _relmat_block(term: RandomTerm, priors: PriorSet, parameterization: str):
    """``b ~ N(0, sigma^2 K)`` as ``b = sigma L z`` (``L L' = K``), dims the factor's levels."""
    sd = _sd_vector(term, priors.random_sd[term.name][:1], None)
    L = term.relmat.toarray()
    if parameterization == "noncentered":
        z = pm.Normal(f"{term.name}_offset", 0.0, 1.0, dims=term.group)
        b = pm.Deterministic(term.name, sd * pt.dot(pt.as_tensor_variable(L), z), dims=term.group)
    else:
        b = pm.MvNormal(term.name, mu=np.zeros(term.n_levels), chol=sd * L, dims=term.group)
    return pt.as_tensor_variable(term.X[:, 0]) * b[term.index]


def ar1_cholesky_tensor(rho, k: int):
    """``C`` with ``C C' = R(rho)``, ``R_st = rho^|s-t|``: ``C[t, 0] = rho^t``,
    ``C[t, s] = rho^(t-s) sqrt(1 - rho^2)`` for ``1 <= s <= t`` (a PyTensor expression)."""
    s = np.arange(k)
    lag = s[:, None] - s[None, :]
    lower = (lag >= 0).astype(float)
    scale = np.ones((k, k))
    scale[:, 1:] = 0.0
    powers = pt.power(rho, np.clip(lag, 0, None).astype(float)) * lower
    return powers * (scale + (1.0 - scale) * pt.sqrt(1.0 - rho**2))


def _ar1_block(term: RandomTerm, priors: PriorSet, parameterization: str):
    """glmmTMB's ``ar1(time + 0 | g)``: per level of ``g``, ``b ~ N(0, sigma^2 R(rho))`` over
    the time levels (dims ``(g, "<term>_coef")``, the coords the time levels); ``sigma``
    under the term's first sd prior, ``rho ~ Uniform(-1, 1)`` (``"<term>_rho"``)."""
    model = pm.modelcontext(None)
    coef_dim = f"{term.name}_coef"
    model.add_coord(coef_dim, ar1_levels(term))
    prior = priors.random_sd[term.name][0]
    if prior.scale == "variance":
        var = build_prior(prior, f"{term.name}_var")
        sd = pm.Deterministic(f"{term.name}_sigma", pt.sqrt(var))
    else:
        sd = build_prior(prior, f"{term.name}_sigma")
    rho = pm.Uniform(f"{term.name}_rho", -1.0, 1.0)
    chol = sd * ar1_cholesky_tensor(rho, term.n_columns)
    dims = (term.group, coef_dim)
    if parameterization == "noncentered":
        z = pm.Normal(f"{term.name}_offset", 0.0, 1.0, dims=dims)
        b = pm.Deterministic(term.name, pt.dot(z, chol.T), dims=dims)
    else:
        b = pm.MvNormal(term.name, mu=np.zeros(term.n_columns), chol=chol, dims=dims)
    return (pt.as_tensor_variable(term.X) * b[term.index]).sum(axis=1)


def ar1_levels(term: RandomTerm) -> list[str]:
    """The time levels of an AR(1) term (``"t0"`` for the column ``"time[t0]"``)."""
    var = next(p.strip() for p in term.spec.expr.split("+") if p.strip() not in ("0", "-1"))
    prefix = f"{var}["
    out = [
        c[len(prefix) : -1] if c.startswith(prefix) and c.endswith("]") else c for c in term.columns
    ]
    return out if len(set(out)) == len(out) else list(term.columns)


def _likelihood(design: Design, priors: PriorSet, eta):
    """The observed response: the family's PyMC distribution (:mod:`.family_pytensor`),
    with its dispersion parameter under its prior; with prior weights
    (:attr:`~bayesglmm.model.design.Design.weights`) the family's weighted log-likelihood
    (:func:`.family_pytensor.observed`), so the pointwise log-likelihood PyMC stores for
    LOO and WAIC is the weighted one."""
    fam = design.family
    disp = None
    if fam.dispersion_name is not None:
        disp = _dispersion(priors.dispersion[fam.dispersion_name], fam.dispersion_name)
    return family_pytensor.observed(
        fam,
        design.spec.response.name,
        eta,
        design.y,
        design.trials,
        design.is_bernoulli,
        disp,
        weights=design.weights,
    )


def _dispersion(prior: Prior, name: str):
    if prior.scale == "variance":
        var = build_prior(prior, f"{name}_var")
        return pm.Deterministic(name, pt.sqrt(var))
    return build_prior(prior, name)


def build_pymc_model(
    design: Design, priors: PriorSet, parameterization: str = "noncentered"
) -> pm.Model:
    """The PyMC model of a GLMM.

    With prior weights (:attr:`~bayesglmm.model.design.Design.weights`) the observed
    variable's log-density is the family's weighted log-likelihood
    (:func:`.family_pytensor.observed`); without, the family's own distribution.

    Parameters
    ----------
    design : Design
    priors : PriorSet
    parameterization : {"noncentered", "centered"}
        Noncentered draws ``z ~ N(0, 1)`` and sets ``b = sd * z`` (better for weakly
        identified groups); centered draws ``b ~ N(0, sd)`` directly (what conjugate Gibbs
        updates need).
    """
    if parameterization not in PARAMETERIZATIONS:
        raise MethodError(
            f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
        )
    coords: dict = {}
    with pm.Model(coords=coords) as model:
        eta = _fixed_block(design, priors, coords)
        for term in design.random:
            part = _random_block(term, priors, parameterization)
            eta = part if eta is None else eta + part
        if eta is None:
            eta = pt.zeros(design.n)
        if np.any(design.offset != 0):
            eta = eta + pt.as_tensor_variable(design.offset)
        _likelihood(design, priors, eta)
    return model
