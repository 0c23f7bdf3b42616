"""Expected log predictive density of Bayesian fits: PSIS-LOO, WAIC and their comparison.

:func:`loo` and :func:`waic` hand the pointwise log-likelihood a Bayesian fit stores in
``fit.idata.log_likelihood`` (``log_likelihood=True``, the default of ``GLMM.fit``) to
ArviZ's ``loo`` and ``waic``; :func:`compare_models` ranks fits of the same data by ArviZ's
``compare``. Likelihood, quasi-likelihood and marginal fits have no draws and are refused.

``loo(fit, group="Female")`` leaves out all rows of one level at a time by PSIS on the
*conditional* log-likelihood (given the draws of the random effects) summed over those rows:
the conditional leave-one-group-out. Its importance ratios include the level's own random
effect, whose posterior moves far when the level is left out, so its Pareto k values are
often high. The *integrated* version (the level's random effect integrated out over its
population distribution before importance sampling, Vehtari et al. 2016; Merkle, Furr &
Rabe-Hesketh 2019), and exact refits where k is high, are not available.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from .._arviz import import_arviz
from ..errors import BayesGLMMError, MethodError

__all__ = ["loo", "waic", "compare_models", "GROUP_LOO_KIND", "GroupELPDData"]

#: what ``loo(fit, group=...)`` computes, stored in its result as ``"loo_kind"``
GROUP_LOO_KIND = "conditional leave-one-group-out"


class GroupELPDData(import_arviz().ELPDData):
    """ArviZ's ELPD result of a leave-one-group-out, printed with what was left out."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}\n\n{GROUP_LOO_KIND} over the levels of {self['group']!r} "
            "(the 'observations' above), from the log-likelihood conditional on the random "
            "effects; the integrated leave-one-group-out is not available"
        )

    def __repr__(self) -> str:
        return self.__str__()


def _check_bayesian(fit, caller: str, label: str | None = None) -> None:
    """Refuse a fit without draws or without their pointwise log-likelihood."""
    who = f"fit {label!r}" if label is not None else "the fit"
    if getattr(fit, "kind", None) != "bayesian" or getattr(fit, "idata", None) is None:
        raise MethodError(
            f"{caller}: {who} is a {getattr(fit, 'kind', type(fit).__name__)} fit (method "
            f"{getattr(fit, 'method', '?')!r}) with no posterior draws; {caller} needs a "
            "Bayesian fit (method='nuts' or 'gibbs'); for likelihood fits compare AIC/BIC "
            "(fit.aic, fit.bic, bayesglmm.compare)"
        )
    if "log_likelihood" not in fit.idata.groups():
        raise MethodError(
            f"{caller}: {who} has no pointwise log-likelihood (idata has no "
            "'log_likelihood' group); refit with log_likelihood=True"
        )


def _group_index(fit, group: str) -> tuple[np.ndarray, list[str]]:
    """Row -> level index and the level names of the grouping factor ``group``."""
    design = getattr(getattr(fit, "model", None), "design", None)
    if design is None:
        raise MethodError(
            f"loo: group={group!r} needs the fit's model and data (a fit read from a file "
            "has neither); refit the model, or call loo without group"
        )
    for term in design.random:
        if term.group == group:
            return np.asarray(term.index), [str(v) for v in term.levels]
    known = sorted({t.group for t in design.random})
    raise MethodError(f"loo: group={group!r} is not a grouping factor of the model; it has {known}")


def _grouped_idata(fit, group: str):
    """InferenceData whose log-likelihood is summed over the rows of each level of ``group``."""
    az = import_arviz()
    import xarray as xr

    ll = fit.idata.log_likelihood
    if len(ll.data_vars) != 1:
        raise MethodError(
            f"loo: group={group!r} needs one log-likelihood variable; the fit has "
            f"{list(ll.data_vars)}"
        )
    name = next(iter(ll.data_vars))
    values = np.asarray(ll[name].values)  # chain, draw, row
    index, levels = _group_index(fit, group)
    if values.ndim != 3 or values.shape[2] != index.size:
        raise MethodError(
            f"loo: group={group!r}: the log-likelihood has shape {values.shape}, not one "
            f"value per draw and row ({index.size} rows)"
        )
    summed = np.zeros(values.shape[:2] + (len(levels),))
    np.add.at(summed, (slice(None), slice(None), index), values)
    data = xr.Dataset(
        {name: (("chain", "draw", group), summed)},
        coords={"chain": ll.chain.values, "draw": ll.draw.values, group: levels},
    )
    return az.InferenceData(posterior=fit.idata.posterior, log_likelihood=data)


def loo(fit, group: str | None = None, pointwise: bool = False):
    """PSIS leave-one-out expected log predictive density of a Bayesian fit (ArviZ's ``loo``).

    Parameters
    ----------
    fit : FitResult
        A Bayesian fit (``method="nuts"`` or ``"gibbs"``) with its pointwise log-likelihood
        (``log_likelihood=True``, the default).
    group : str, optional
        A grouping factor (``"Female"``): leave out all rows of one level at a time, by PSIS
        on the log-likelihood conditional on the random effects' draws, summed over the
        level's rows. This is the *conditional* leave-one-group-out; its Pareto k values
        (one per level) are often high, as the level's own random effect is among the
        importance-sampled parameters. The *integrated* version, which integrates the
        level's random effect out over its population distribution, is not available.
        The result's ``"loo_kind"`` says which was computed.
    pointwise : bool
        Keep the pointwise ELPD and Pareto k (``loo_i``, ``pareto_k``) in the result.

    Returns
    -------
    arviz.ELPDData
        ``elpd_loo``, ``se``, ``p_loo``, ``warning`` ... as ArviZ returns them; with
        ``group``, a :class:`GroupELPDData` that also holds ``loo_kind``
        (:data:`GROUP_LOO_KIND`) and ``group``, and says both when printed.

    Raises
    ------
    MethodError
        The fit is not Bayesian, lacks its log-likelihood, or ``group`` is not one of its
        grouping factors.

    Examples
    --------
    >>> fit = bg.GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", data).fit()  # doctest: +SKIP
    >>> bg.loo(fit, pointwise=True).pareto_k.max()                              # doctest: +SKIP
    """
    _check_bayesian(fit, "loo")
    az = import_arviz()
    if group is None:
        return az.loo(fit.idata, pointwise=pointwise)
    result = GroupELPDData(az.loo(_grouped_idata(fit, group), pointwise=pointwise))
    result["loo_kind"] = GROUP_LOO_KIND
    result["group"] = group
    return result


def waic(fit, pointwise: bool = False):
    """Widely applicable information criterion of a Bayesian fit (ArviZ's ``waic``).

    Parameters
    ----------
    fit : FitResult
        A Bayesian fit with its pointwise log-likelihood (``log_likelihood=True``).
    pointwise : bool
        Keep the pointwise values (``waic_i``) in the result.

    Returns
    -------
    arviz.ELPDData
        ``elpd_waic``, ``se``, ``p_waic``, ``warning`` ... as ArviZ returns them (the
        estimate is labelled ``elpd_waic`` with and without ``pointwise``).

    Raises
    ------
    MethodError
        The fit is not Bayesian or lacks its log-likelihood.
    """
    _check_bayesian(fit, "waic")
    result = import_arviz().waic(fit.idata, pointwise=pointwise)
    # ArviZ 0.23 labels the non-pointwise estimate "waic" (its own repr then fails on it)
    # and the pointwise one "elpd_waic": one label here, whatever ``pointwise`` is
    if "waic" in result.index and "elpd_waic" not in result.index:
        result.index = ["elpd_waic" if k == "waic" else k for k in result.index]
    return result


def _observed(fit) -> np.ndarray | None:
    design = getattr(getattr(fit, "model", None), "design", None)
    if design is not None:
        return np.asarray(design.y, dtype=float)
    observed = getattr(fit.idata, "observed_data", None)
    if observed is not None and len(observed.data_vars) == 1:
        return np.asarray(next(iter(observed.data_vars.values())).values, dtype=float).ravel()
    return None


def _check_same_data(fits: Mapping[str, object]) -> None:
    """Refuse fits of different data: number of observations, response column or values."""
    labels = list(fits)
    first = fits[labels[0]]
    y0 = _observed(first)
    for lab in labels[1:]:
        fit = fits[lab]
        where = f"compare_models: fits {labels[0]!r} and {lab!r} are not fits of the same data"
        if fit.nobs != first.nobs:
            raise BayesGLMMError(
                f"{where} (number of observations: {first.nobs} vs {fit.nobs}); ELPD "
                "compares models only on the same observations"
            )
        r0, r1 = first.info.get("response"), fit.info.get("response")
        if r0 != r1:
            raise BayesGLMMError(f"{where} (response: {r0!r} vs {r1!r})")
        y1 = _observed(fit)
        if y0 is not None and y1 is not None and not np.array_equal(y0, y1):
            raise BayesGLMMError(f"{where} (response: the observed values differ)")


def compare_models(fits: Mapping[str, object], ic: str = "loo", **kwargs):
    """Rank Bayesian fits of the same data by ELPD (ArviZ's ``compare``).

    Parameters
    ----------
    fits : dict of label -> FitResult
        At least two Bayesian fits of the same observations, each with its pointwise
        log-likelihood.
    ic : {"loo", "waic"}
        The ELPD estimate.
    **kwargs
        Passed to ``arviz.compare`` (``method``, ``scale``, ``seed`` ...).

    Returns
    -------
    pandas.DataFrame
        One row per fit, best first: ``rank``, ``elpd_<ic>``, ``p_<ic>``, ``elpd_diff`` (from
        the best), ``weight``, ``se``, ``dse`` (standard error of the difference),
        ``warning``, ``scale``.

    Raises
    ------
    MethodError
        A fit is not Bayesian or lacks its log-likelihood; ``ic`` is unknown.
    BayesGLMMError
        Fewer than two fits, or fits of different data (number of observations or
        response), naming the two fits and what differs.
    """
    if ic not in ("loo", "waic"):
        raise MethodError(f"compare_models: ic={ic!r} is not one of 'loo', 'waic'")
    if not isinstance(fits, Mapping) or len(fits) < 2:
        raise BayesGLMMError(
            "compare_models: fits must be a dict of at least two {label: fit}, got "
            f"{type(fits).__name__} of {len(fits) if hasattr(fits, '__len__') else '?'}"
        )
    fits = {str(k): v for k, v in fits.items()}
    for label, fit in fits.items():
        _check_bayesian(fit, "compare_models", label)
    _check_same_data(fits)
    az = import_arviz()
    with warnings.catch_warnings():
        # pandas' deprecation of ArviZ's own sort_values(inplace=True): not about the fits
        warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.sort_values")
        return az.compare({k: f.idata for k, f in fits.items()}, ic=ic, **kwargs)
