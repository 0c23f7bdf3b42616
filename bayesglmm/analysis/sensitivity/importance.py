"""Predict a refit under another prior from one fit's draws, by importance weighting.

The weights are the ratio of the priors, :math:`w_s \\propto p_\\mathrm{alt}(\\theta_s) /
p(\\theta_s)` (the likelihood cancels), Pareto-smoothed (:func:`arviz.psislw`). Power-scaling
is the special case :math:`p_\\mathrm{alt} \\propto p^\\alpha`; doubling the scale of a
half-normal prior on a standard deviation is :math:`\\alpha = 1/4`. The prediction is only
as good as the overlap of the two posteriors: with Pareto :math:`\\hat k` above
:func:`~bayesglmm.sensitivity.weights.khat_limit` (0.7 for the usual draw counts) it is
refused (NaN) and the row says to refit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..._warn import warn
from ...bayes.log_prior import log_prior_dataset
from .prior_ops import alternative_priors
from .weights import khat_limit, psis, weighted_summary


class UnreliablePredictionWarning(UserWarning):
    """Importance weights too variable (Pareto k-hat above the limit) to predict a refit."""


def log_prior_total(model, idata, priors) -> np.ndarray:
    """Sum of the top-level log prior densities at the draws, (chain, draw)."""
    ds = log_prior_dataset(model, idata, priors)
    shape = (idata.posterior.sizes["chain"], idata.posterior.sizes["draw"])
    total = np.zeros(shape)
    for n in ds.data_vars:
        total += np.asarray(ds[n].values, dtype=float).reshape(shape + (-1,)).sum(axis=-1)
    return total


def predict_refit(result, priors, *, model=None, name: str = "alternative") -> pd.DataFrame:
    """Posterior summaries under other priors, predicted from ``result``'s draws.

    Parameters
    ----------
    result : FitResult
        A Bayesian fit.
    priors : dict or PriorSet
        Overrides by key, as ``GLMM(priors=...)`` (applied to the fit's priors), or a
        whole PriorSet.
    model : GLMM, optional
        Needed only for a result loaded from disk.
    name : str
        Label of the alternative in error messages.

    Returns
    -------
    pandas.DataFrame
        One row per parameter (fixed effects, ``var(...)``, ``sd(...)``): predicted
        ``mean``, ``sd``, ``median``, ``q2.5``, ``q97.5``, their Monte Carlo errors
        ``mcse_mean`` and ``mcse_median`` (importance-sampling delta method, with the
        chains' autocorrelation), ``khat``, ``ess_weights`` and ``reliable``; the numbers
        are NaN where ``khat`` exceeds the limit (a warning says so).
    """
    from ...results.predict import model_of
    from .powerscale import _sampled_priors

    model = model_of(result, model)
    base = _sampled_priors(model, result)
    alt = alternative_priors(model, priors, name)
    return predict_from_idata(model, result.idata, base, alt, name)


def predict_from_idata(model, idata, base, alt, name: str = "alternative") -> pd.DataFrame:
    """:func:`predict_refit` from the draws ``idata`` sampled under the PriorSet ``base``."""
    from .powerscale import parameter_draws

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log(0) of a prior outside support
        log_ratio = log_prior_total(model, idata, alt) - log_prior_total(model, idata, base)
    w, khat = psis(log_ratio)
    limit = khat_limit(w.size)
    rows = {}
    for pname, x in parameter_draws(model, idata).items():
        rows[pname] = weighted_summary(x, w)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "parameter"
    table["khat"] = khat
    table["reliable"] = bool(khat <= limit)
    if khat > limit:
        cols = ["mean", "sd", "median", "q2.5", "q97.5", "mcse_mean", "mcse_median"]
        table[cols] = np.nan
        warn(
            f"priors {name!r}: Pareto k-hat {khat:.2f} > {limit:.2f}, the draws cannot "
            "predict this refit (the posteriors overlap too little); refit instead",
            UnreliablePredictionWarning,
        )
    return table
