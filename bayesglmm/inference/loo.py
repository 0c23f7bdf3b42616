"""Expected log predictive density of Bayesian fits: PSIS-LOO, WAIC and their comparison.

:func:`loo` and :func:`waic` hand the pointwise log-likelihood a Bayesian fit stores in
``fit.idata.log_likelihood`` (``log_likelihood=True``, the default of ``GLMM.fit``) to
ArviZ's ``loo`` and ``waic``; :func:`compare_models` ranks fits of the same data by ArviZ's
``compare``. Likelihood, quasi-likelihood and marginal fits have no draws and are refused.

``loo(fit, group="Female")`` leaves out all rows of one level at a time (leave-one-group-out),
one ArviZ "observation" per level:

- ``integrate=True`` (the default): PSIS over the draws of the *integrated* log-likelihood
  of each level, its own random effects integrated out over their population distribution
  ``N(0, Sigma^(s))`` by adaptive Gauss-Hermite quadrature (Vehtari et al. 2016; Merkle, Furr
  & Rabe-Hesketh 2019; :mod:`bayesglmm.inference.group_loo`), the other factors' effects at
  their draws;
- ``integrate=False``: PSIS on the log-likelihood *conditional* on the random effects' draws,
  summed over the level's rows. Its importance ratios include the level's own random effect,
  whose posterior moves far when the level is left out, so its Pareto k values are often high.

Both estimate the same ``elpd_j = log p(y_j | y_{-j})``. Levels whose Pareto k exceeds
``k_threshold`` are then refitted exactly without their rows
(:func:`~bayesglmm.inference.group_loo.group_refit_elpd`) and their values replaced.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from .._arviz import import_arviz
from .._warn import warn
from ..errors import BayesGLMMError, MethodError, OptionError
from ..model.design import refuse_extensions
from ..options import flag, integer
from .group_loo import (
    GH_NODES,
    _check_nodes,
    _design_of,
    group_refit_elpd,
    integrated_group_loglik,
)

__all__ = [
    "loo",
    "waic",
    "compare_models",
    "GROUP_LOO_KINDS",
    "GroupELPDData",
]

#: what ``loo(fit, group=...)`` computes, by ``integrate``; stored in its result as
#: ``"loo_kind"``
GROUP_LOO_KINDS = {
    True: "integrated leave-one-group-out",
    False: "conditional leave-one-group-out",
}
_ARVIZ_K_WARNING = "Estimated shape parameter of Pareto"
#: ArviZ's scales: the factor from the log predictive density to the reported value
_SCALES = {"log": 1.0, "negative_log": -1.0, "deviance": -2.0}


class GroupELPDData(import_arviz().ELPDData):
    """ArviZ's ELPD result of a leave-one-group-out, printed with what was left out and
    which levels were refitted exactly."""

    def __str__(self) -> str:
        kind = self["loo_kind"]
        how = (
            "the log-likelihood of each level with its random effects integrated out"
            if kind == GROUP_LOO_KINDS[True]
            else "the log-likelihood conditional on the random effects, summed over each level"
        )
        refitted = list(self["refitted"]) if "refitted" in self else []
        exact = (
            f"; exact refits without levels {refitted} replace their PSIS values"
            if refitted
            else "; no level was refitted"
        )
        return (
            f"{super().__str__()}\n\n{kind} over the levels of {self['group']!r} "
            f"(the 'observations' above), by PSIS on {how}{exact}"
        )

    def __repr__(self) -> str:
        return self.__str__()


def _check_bayesian(fit, caller: str, label: str | None = None, loglik: bool = True) -> None:
    """Refuse a fit without draws or (``loglik``) without their pointwise log-likelihood."""
    who = f"fit {label!r}" if label is not None else "the fit"
    if getattr(fit, "kind", None) != "bayesian" or getattr(fit, "idata", None) is None:
        raise MethodError(
            f"{caller}: {who} is a {getattr(fit, 'kind', type(fit).__name__)} fit (method "
            f"{getattr(fit, 'method', '?')!r}) with no posterior draws; {caller} needs a "
            "Bayesian fit (method='nuts' or 'gibbs'); for likelihood fits compare AIC/BIC "
            "(fit.aic, fit.bic, bayesglmm.compare)"
        )
    if loglik and "log_likelihood" not in fit.idata.groups():
        raise MethodError(
            f"{caller}: {who} has no pointwise log-likelihood (idata has no "
            "'log_likelihood' group); refit with log_likelihood=True"
        )


def _group_index(fit, group: str) -> tuple[np.ndarray, list[str]]:
    """Row -> level index and the level names of the grouping factor ``group``."""
    term = next(t for t in _design_of(fit, group).random if t.group == group)
    return np.asarray(term.index), [str(v) for v in term.levels]


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


def _integrated_idata(fit, group: str, nodes: int):
    """InferenceData whose log-likelihood is each level's integrated log-likelihood."""
    az = import_arviz()
    import xarray as xr

    values = integrated_group_loglik(fit, group, nodes)
    name = fit.info.get("response") if isinstance(fit.info, Mapping) else None
    data = xr.Dataset({str(name or "y"): values})
    return az.InferenceData(posterior=fit.idata.posterior, log_likelihood=data)


def _check_group_options(group, integrate, refit, k_threshold, max_refits, nodes) -> dict:
    """The group options, checked before any work (one-line :class:`OptionError`)."""
    integrate = flag()("integrate", integrate)
    refit = flag(none=True)("refit", refit)
    if isinstance(k_threshold, bool) or not isinstance(k_threshold, int | float | np.number):
        raise OptionError(f"k_threshold must be a number >= 0, got {k_threshold!r}")
    if not (np.isfinite(k_threshold) and k_threshold >= 0):
        raise OptionError(f"k_threshold must be a finite number >= 0, got {k_threshold!r}")
    max_refits = integer(0)("max_refits", max_refits)
    nodes = _check_nodes(nodes)
    if group is None and (refit or not integrate):
        raise OptionError(
            "loo: integrate and refit apply to a leave-one-group-out; give group= (a grouping "
            "factor)"
        )
    return {
        "integrate": integrate,
        "refit": refit,
        "k_threshold": float(k_threshold),
        "max_refits": max_refits,
        "nodes": nodes,
    }


def loo(
    fit,
    group: str | None = None,
    pointwise: bool = False,
    *,
    integrate: bool = True,
    refit: bool | None = None,
    k_threshold: float = 0.7,
    max_refits: int = 10,
    nodes: int = GH_NODES,
    random_seed: int | None = None,
    store=None,
    client=None,
    max_workers: int | None = None,
    progressbar: bool | None = None,
):
    """PSIS leave-one-out expected log predictive density of a Bayesian fit (ArviZ's ``loo``).

    Parameters
    ----------
    fit : FitResult
        A Bayesian fit (``method="nuts"`` or ``"gibbs"``) with its pointwise log-likelihood
        (``log_likelihood=True``, the default; the integrated leave-one-group-out needs the
        fit's model instead).
    group : str, optional
        A grouping factor (``"Female"``): leave out all rows of one level at a time
        (leave-one-group-out; module notes), one ArviZ observation per level.
    pointwise : bool
        Keep the pointwise ELPD and Pareto k (``loo_i``, ``pareto_k``) in the result.
    integrate : bool
        With ``group``: True (default) importance-samples each level's *integrated*
        log-likelihood (its random effects integrated out over ``N(0, Sigma^(s))`` by
        adaptive Gauss-Hermite quadrature, :mod:`bayesglmm.inference.group_loo`); False the
        log-likelihood *conditional* on the random effects' draws, summed over the level's
        rows (Pareto k often high).
    refit : bool or None
        With ``group``, what to do with levels whose Pareto k exceeds ``k_threshold``:
        True refits every such level exactly, without its rows, by the fit's method, options
        and priors, and replaces its PSIS value by ``log mean_s`` of the refit draws'
        integrated likelihood of the level (the same integrated quantity); False refits
        none; None (default) refits them when there are at most ``max_refits``. Levels
        flagged and not refitted are named in a warning.
    k_threshold : float
        Pareto k above which a level is flagged (0.7).
    max_refits : int
        Most levels refitted when ``refit=None`` (10).
    nodes : int
        Gauss-Hermite nodes per dimension of a level's random effects (25; a factor with
        more than two effects per level uses the Laplace approximation).
    random_seed : int, optional
        Seed of the refits (each refit's seed derives from it and the level). None: the
        fit's own ``random_seed`` when it had one, else fresh entropy.
    store, client, max_workers, progressbar
        Where and how the refits run, as :func:`~bayesglmm.analysis.study.run_study` (one
        task per level; ``client`` a Dask client, ``store`` a directory that resumes them).

    Returns
    -------
    arviz.ELPDData
        ``elpd_loo``, ``se``, ``p_loo``, ``warning`` ... as ArviZ returns them; with
        ``group``, a :class:`GroupELPDData` that also holds ``loo_kind`` (a value of
        :data:`GROUP_LOO_KINDS`), ``group``, ``k_threshold``, ``flagged`` (levels with
        Pareto k above it), ``refitted`` (levels whose value is an exact refit's) and
        ``refits`` (a DataFrame per refitted level: ``elpd_psis``, ``elpd_exact``,
        ``mcse_exact``, ``pareto_k``, ``max_rhat``, ``warnings``, ``error``). After refits
        ``elpd_loo``, ``se`` and ``p_loo`` are recomputed from the pointwise values as
        ArviZ computes them; ``warning`` is True only when a flagged level was not
        refitted.

    Raises
    ------
    MethodError
        The fit is not Bayesian, lacks its log-likelihood (or, with ``group``, its model),
        or ``group`` is not one of its grouping factors.
    OptionError
        A bad option (named), before any work.

    Examples
    --------
    >>> fit = bg.GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", data).fit()  # doctest: +SKIP
    >>> bg.loo(fit, pointwise=True).pareto_k.max()                              # doctest: +SKIP
    >>> bg.loo(fit, group="Female")["refitted"]                                 # doctest: +SKIP
    """
    opts = _check_group_options(group, integrate, refit, k_threshold, max_refits, nodes)
    az = import_arviz()
    if group is None:
        _check_bayesian(fit, "loo")
        return az.loo(fit.idata, pointwise=pointwise)
    _check_bayesian(fit, "loo", loglik=not opts["integrate"])
    _design_of(fit, group)
    if fit.model is not None:
        refuse_extensions(fit.model.design, "loo(group=...)")
    if opts["integrate"]:
        idata = _integrated_idata(fit, group, opts["nodes"])
    else:
        idata = _grouped_idata(fit, group)
    with warnings.catch_warnings():
        # flagged levels are handled (refitted, or named in a warning) below
        warnings.filterwarnings("ignore", message=_ARVIZ_K_WARNING)
        result = GroupELPDData(az.loo(idata, pointwise=True))
    levels = [str(v) for v in result.pareto_k.coords[group].values]
    k = np.asarray(result.pareto_k.values, dtype=float)
    flagged = [lv for lv, kj in zip(levels, k, strict=True) if kj > opts["k_threshold"]]
    todo = _levels_to_refit(flagged, opts)
    refits = None
    psis_i = np.asarray(result.loo_i.values, dtype=float).copy()
    if todo:
        refits = group_refit_elpd(
            fit, group, todo, opts["nodes"], random_seed, store, client, max_workers, progressbar
        )
        result = _replace(result, refits, levels)
    refitted = [] if refits is None else [lv for lv in todo if refits.loc[lv, "error"] is None]
    missed = [lv for lv in flagged if lv not in refitted]
    if missed:
        failed = [lv for lv in todo if lv not in refitted]
        why = (
            f"their refits failed ({failed})"
            if failed
            else (
                "refit=False"
                if opts["refit"] is False
                else f"more than max_refits={opts['max_refits']} levels are flagged"
            )
        )
        warn(
            f"loo: {len(missed)} level(s) of {group!r} have Pareto k above "
            f"{opts['k_threshold']:g} and keep their PSIS values ({why}): {missed}; "
            "refit=True refits them exactly"
        )
    result["warning"] = bool(missed)
    result["loo_kind"] = GROUP_LOO_KINDS[opts["integrate"]]
    result["group"] = group
    result["k_threshold"] = opts["k_threshold"]
    result["flagged"] = flagged
    result["refitted"] = refitted
    result["refits"] = _refit_table(refits, result["scale"], psis_i, levels, k)
    if not pointwise:
        result = GroupELPDData(result.drop(["loo_i", "pareto_k"]))
    return result


def _levels_to_refit(flagged: list[str], opts: dict) -> list[str]:
    if not flagged or opts["refit"] is False:
        return []
    if opts["refit"] is None and len(flagged) > opts["max_refits"]:
        return []
    return flagged


def _replace(result, refits, levels: list[str]):
    """The result with the refitted levels' exact values and its totals recomputed."""
    loo_i = result.loo_i.copy()
    scale = _SCALES[result["scale"]]
    psis_total = float(result["elpd_loo"])
    for lv, row in refits.iterrows():
        if row["error"] is None:
            loo_i[levels.index(lv)] = scale * row["elpd"]
    values = np.asarray(loo_i.values, dtype=float)
    out = result.copy()
    out["loo_i"] = loo_i
    out["elpd_loo"] = float(values.sum())
    out["se"] = float((values.size * np.var(values)) ** 0.5)
    lppd = float(result["p_loo"]) + psis_total / scale
    out["p_loo"] = lppd - out["elpd_loo"] / scale
    return GroupELPDData(out)


def _refit_table(refits, scale_name: str, psis_i, levels: list[str], k: np.ndarray):
    import pandas as pd

    columns = [
        "elpd_psis", "elpd_exact", "mcse_exact", "pareto_k", "max_rhat", "warnings", "error",
    ]  # fmt: skip
    if refits is None:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="level"))
    scale = _SCALES[scale_name]
    rows = []
    for lv, row in refits.iterrows():
        rows.append(
            {
                "level": lv,
                "elpd_psis": float(psis_i[levels.index(lv)]) / scale,
                "elpd_exact": row["elpd"],
                "mcse_exact": row["mcse"],
                "pareto_k": float(k[levels.index(lv)]),
                "max_rhat": row["max_rhat"],
                "warnings": row["warnings"],
                "error": row["error"],
            }
        )
    return pd.DataFrame(rows, columns=["level", *columns]).set_index("level")


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
