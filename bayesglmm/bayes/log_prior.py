"""The log prior density of every Bayesian fit's draws, as an ArviZ ``log_prior`` group.

Computed on the posterior draws by each prior's own :meth:`~bayesglmm.model.priors.Prior.logpdf`
(NumPy/SciPy), so every sampling path (the PyMC model, the compiled nutpie/Numba density,
Gibbs) gets the same numbers without compiling anything.

Convention (the one :func:`pymc.compute_log_prior` and ArviZ's ``psens`` use): the density
of each parameter **as declared**, on its constrained scale, with no Jacobian of the
sampler's unconstrained transform: a ``HalfNormal`` prior on a standard deviation is
evaluated at the sd draws, an ``InverseGamma`` or :class:`~bayesglmm.priors.PowerVariance`
prior on a variance at the variance draws. Power-scaling a prior is then
:math:`p(\\theta)^\\alpha` in that declared parameter: ``HalfNormal(s)`` becomes
``HalfNormal(s / sqrt(alpha))``, ``PowerVariance(a)`` becomes ``PowerVariance(alpha (a + 1)
- 1)``, and ``Flat``/``HalfFlat`` (log density 0) do not move.

One variable per **top-level** prior, named as the PyMC model's free variable
(``"Cross"``, ``"1|Female_sigma"``, ``"1|herd_var"``, ``"sigma"``). Not included: the
standard-normal offsets of the noncentred random effects (the random-effect distribution is
part of the model, not a prior one tunes; Kallioinen et al. 2023 power-scale top-level
priors only) and LKJ / inverse-Wishart correlation parts of correlated terms (their sd
priors are included). :class:`~bayesglmm.priors.PowerVariance` and
:class:`~bayesglmm.priors.Jeffreys` are included with their log density
:math:`-(a+1)\\log\\sigma^2`, which PyMC keeps in a ``Potential`` and so leaves out of its
``compute_log_prior`` (which reports 0 for the flat variable).
"""

from __future__ import annotations

import numpy as np

from ..model.priors import Prior


def prior_logpdf(prior: Prior, x: np.ndarray) -> np.ndarray | None:
    """Log density of ``prior`` at ``x`` (its declared scale, :meth:`Prior.logpdf`); None
    for a prior that holds its parameter at a value (no density)."""
    return None if prior.point_mass else prior.logpdf(np.asarray(x, dtype=float))


def _value(post, name: str, scale: str, sd_name: str):
    """Draws of the declared parameter ``name`` (variance from the sd if only that is kept)."""
    if name in post:
        return np.asarray(post[name].values, dtype=float), post[name].dims
    if scale == "variance" and sd_name in post:
        return np.asarray(post[sd_name].values, dtype=float) ** 2, post[sd_name].dims
    return None, None


def prior_variables(model, priors=None) -> list[tuple[str, str, Prior, tuple]]:
    """``(variable, sd variable, prior, slot)`` of every top-level prior with a density.

    ``slot`` is ``(attribute of the PriorSet, key, column index or None)``; a correlated
    term's vector of sds is one variable with index ``"all"``.
    """
    d = model.design
    ps = model.priors if priors is None else priors
    out = [(term, term, ps.fixed[term], ("fixed", term, None)) for term in d.fixed_terms]
    for t in d.random:
        sds = ps.random_sd[t.name]
        if getattr(t, "structure", None) == "ar1":
            # one sigma for the term; its rho has the flat Uniform(-1, 1) prior, a constant
            name = f"{t.name}_sigma"
            out.append((name, name, sds[0], ("random_sd", t.name, 0)))
            continue
        if t.correlated:
            if sds[0].scale != "covariance":  # inverse-Wishart: no separate sd prior
                name = f"{t.name}_sigma"
                out.append((name, name, sds[0], ("random_sd", t.name, "all")))
            continue
        for j, prior in enumerate(sds):
            suffix = "" if t.n_columns == 1 else f"[{t.columns[j]}]"
            sd_name = f"{t.name}_sigma{suffix}"
            name = f"{t.name}_var{suffix}" if prior.scale == "variance" else sd_name
            out.append((name, sd_name, prior, ("random_sd", t.name, j)))
    for key, prior in ps.dispersion.items():
        name = f"{key}_var" if prior.scale == "variance" else key
        out.append((name, key, prior, ("dispersion", key, None)))
    return [row for row in out if not row[2].point_mass]


def log_prior_dataset(model, idata, priors=None):
    """The ``log_prior`` group of ``idata``'s posterior draws (see the module docstring).

    Parameters
    ----------
    model : GLMM
    idata : arviz.InferenceData
        With a ``posterior`` group as any bayesglmm sampler writes it.
    priors : PriorSet, optional
        The priors sampled (default ``model.priors``).

    Returns
    -------
    xarray.Dataset
        One variable per top-level prior, with the dims of the parameter's draws.
    """
    import xarray as xr

    post = idata.posterior
    ps = model.priors if priors is None else priors
    data = {}
    for name, sd_name, prior, _ in prior_variables(model, ps):
        values, dims = _value(post, name, prior.scale, sd_name)
        if values is None:
            continue
        if name.endswith("_sigma") and values.ndim == 3:
            # correlated term: the vector of sds, one prior per column
            sds = ps.random_sd[name[: -len("_sigma")]]
            lp = np.stack([prior_logpdf(p, values[..., j]) for j, p in enumerate(sds)], axis=-1)
        else:
            lp = prior_logpdf(prior, values)
        if lp is None:
            continue
        data[name] = xr.DataArray(lp, dims=dims, coords={k: post.coords[k] for k in dims})
    ds = xr.Dataset(data)
    ds.attrs["convention"] = "declared-scale density, no Jacobian (as pymc.compute_log_prior)"
    return ds


def sampled_priors(model, details: dict):
    """The PriorSet a Bayesian fit sampled (Gibbs may swap in conjugate priors)."""
    if details.get("conjugate_priors") and details.get("prior_swap"):
        from .gibbs.assign import conjugate_priors

        return conjugate_priors(model.design, model.priors)[0]
    return model.priors


def add_log_prior(model, idata, priors=None):
    """Store :func:`log_prior_dataset` as ``idata.log_prior`` (replacing one there)."""
    ds = log_prior_dataset(model, idata, priors)
    if "log_prior" in idata.groups():
        del idata["log_prior"]
    idata.add_groups({"log_prior": ds})
    return idata
