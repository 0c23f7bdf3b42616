"""Posterior predictive draws of a Bayesian fit, for ArviZ's ``plot_ppc``.

Per posterior draw ``s``: the linear predictor ``eta_s`` (:mod:`bayesglmm.predict`, new
levels drawn from ``N(0, Sigma_s)``), the mean ``g^{-1}(eta_s)`` and one replicated response
from the family's :meth:`~bayesglmm.model.families.Family.simulate` (binomial with the rows'
trials, Gaussian with ``sigma_s``, negative binomial with ``alpha_s``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import MethodError
from ..model.newdata import new_trials
from ..results.predict import linear_predictor_draws, posterior_array, prediction_rows


def posterior_predictive(
    result,
    newdata: pd.DataFrame | None = None,
    re_form=None,
    allow_new_levels: bool = False,
    random_seed=None,
    model=None,
):
    """Replicated responses, one per posterior draw, as an ArviZ ``posterior_predictive``.

    On the fit's rows (``newdata=None``) the group is added to ``result.idata`` (replacing
    one there) under the observed variable's name and dimension, so that
    ``arviz.plot_ppc(result.idata)`` compares them with the data. With ``newdata`` a new
    InferenceData holding only the group is returned (a ``cbind`` response then needs its
    columns in ``newdata`` for the numbers of trials).

    Parameters
    ----------
    result : FitResult
        A Bayesian fit (``result.kind == "bayesian"``).
    newdata, re_form, allow_new_levels, model
        As for :func:`predict`.
    random_seed : int, optional
        Seeds the simulation (and the new-level draws).

    Returns
    -------
    arviz.InferenceData
    """
    from .._arviz import import_arviz

    az = import_arviz()
    import xarray as xr

    if result.kind != "bayesian" or result.idata is None:
        raise MethodError(
            f"posterior_predictive needs posterior draws; this is a {result.kind} fit "
            f"({result.method})"
        )
    model, rows = prediction_rows(result, newdata, re_form, allow_new_levels, model)
    design = model.design
    rng = np.random.default_rng(random_seed)
    eta = linear_predictor_draws(result, design, rows, rng)
    family = design.family
    mu = family.link.linkinv(eta)
    disp = None
    if family.has_dispersion:
        disp = posterior_array(result.idata, family.dispersion_name).reshape(-1, 1)
    trials = new_trials(design, newdata)
    y = family.simulate(mu, rng, trials, disp)
    post = result.idata.posterior
    shape = (post.sizes["chain"], post.sizes["draw"], rows.n)
    name, dim = design.spec.response.name, f"{design.spec.response.name}_dim_0"
    obs = getattr(result.idata, "observed_data", None) if newdata is None else None
    if obs is not None and len(obs.data_vars) == 1:
        name = next(iter(obs.data_vars))
        dim = obs[name].dims[0]
    ds = xr.Dataset(
        {name: (("chain", "draw", dim), y.reshape(shape))},
        coords={"chain": post.coords["chain"].values, "draw": post.coords["draw"].values},
    )
    if obs is not None and dim in obs.coords:
        ds = ds.assign_coords({dim: obs.coords[dim].values})
    if newdata is not None:
        return az.InferenceData(posterior_predictive=ds)
    if "posterior_predictive" in result.idata.groups():
        del result.idata.posterior_predictive
    result.idata.add_groups(posterior_predictive=ds)
    return result.idata
