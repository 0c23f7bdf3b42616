"""``method="gee"``: marginal (population-averaged) models by generalized estimating
equations (Liang & Zeger 1986), one clustering factor.

The clusters come from the formula's single random-intercept term ``(1|cluster)`` (or the
``groups=`` column); the random effect is *not* estimated: GEE models the marginal mean
``g(E y_ij) = x_ij' beta`` and treats the within-cluster dependence through a working
correlation. The result has kind ``"marginal"``; its ``var(cluster)`` row is NaN.
"""

from __future__ import annotations

import time as _time
import warnings

import numpy as np
import pandas as pd

from ...errors import DataError, MethodError
from ...options import resolve_options
from ...results.result import FitResult, build_result, wald_table
from .clusters import make_clusters, repeated_times
from .correlation import CORSTRS, make_correlation
from .engine import MAX_ITER, TOL, GEEData, _scale, qic, solve_gee

#: ``se=`` choices: which covariance gives the table's std_error
SE_TYPES = ("robust", "model", "bias_reduced")


class GEEConvergenceWarning(UserWarning):
    """The estimating equations were not solved within ``max_iter`` iterations."""


def cluster_index(model, groups: str | None) -> tuple[np.ndarray, str]:
    """Cluster codes of the design's rows and the clustering factor's name.

    Raises MethodError for designs with more than one grouping factor (crossed or nested)
    or random slopes.
    """
    d = model.design
    if len(d.random) > 1:
        names = ", ".join(t.group for t in d.random)
        raise MethodError(
            f"GEE needs one clustering factor; the formula has {len(d.random)} grouping "
            f"factors ({names}). For crossed or nested random effects use method='ee' "
            "(Jiang's estimating equations)"
        )
    if d.random and not d.random[0].is_intercept_only:
        raise MethodError(
            f"GEE takes the clusters from a random-intercept term (1|g); the formula has "
            f"{d.random[0].name}: write (1|{d.random[0].group}) or pass groups="
        )
    if groups is None:
        if not d.random:
            raise MethodError(
                "GEE needs clusters: add a term (1|cluster) to the formula or pass groups="
            )
        return d.random[0].index, d.random[0].group
    if d.random and d.random[0].group != groups:
        raise MethodError(
            f"groups={groups!r} differs from the formula's clustering factor "
            f"{d.random[0].group!r}; give one of them"
        )
    col = _column(model, groups, "groups")
    codes = pd.Categorical(col).codes.astype(np.int64)
    return np.unique(codes, return_inverse=True)[1].ravel(), groups


def _column(model, name: str, option: str) -> np.ndarray:
    data = model.data
    if name not in data.columns:
        raise DataError(
            f"{option}={name!r} is not a column of the data; columns: "
            f"{', '.join(map(str, data.columns))}"
        )
    values = data.loc[model.design.row_labels, name]
    if values.isna().any():
        raise DataError(f"{option} column {name!r} has missing values")
    return values.to_numpy()


def fit_gee(
    model,
    corstr: str = "exchangeable",
    se: str = "robust",
    groups: str | None = None,
    time: str | None = None,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
    start=None,
    moments: str = "geepack",
    **unknown,
) -> FitResult:
    """Fit the marginal model by GEE.

    .. math::

        g(E[y_{ij}]) = x_{ij}^\\top\\beta, \\qquad
        \\sum_i D_i^\\top W_i(\\alpha)^{-1}(y_i - \\mu_i) = 0

    Parameters
    ----------
    model : GLMM
        Binomial, Poisson or Gaussian; clusters from its one term ``(1|cluster)``.
    corstr : {"exchangeable", "independence", "ar1", "unstructured"}
        Working correlation (geepack's names).
    se : {"robust", "model", "bias_reduced"}
        Standard errors of the table: sandwich, model-based, or Mancl & DeRouen's
        bias-reduced sandwich. All three are kept in ``info["details"]``.
    groups : str, optional
        Column naming the clusters, when the formula has no ``(1|cluster)`` term.
    time : str, optional
        Column ordering the rows within a cluster (AR(1)) and naming the time points
        (unstructured); default: row order within the cluster.
    max_iter : int
        Most Fisher-scoring iterations.
    tol : float
        Stop when the largest step of beta is below ``tol * (1 + max |beta|)``.
    start : array-like, optional
        Starting fixed effects (default: the GLM fit).
    moments : {"geepack", "statsmodels"}
        Moment estimators of the scale and the working correlation: R geepack's
        (``geeglm`` defaults: ``phi = sum r^2 / N`` for every family, ``alpha`` fitted to
        all within-cluster pairs without degrees-of-freedom corrections) or statsmodels'
        (``phi = 1`` for binomial and Poisson, ddof = p corrections, lag-1 AR(1)). They
        change ``alpha`` and hence the estimates; see
        :mod:`bayesglmm.frequentist.gee.correlation`.

    Returns
    -------
    FitResult
        Kind ``"marginal"``; ``info["details"]`` holds the working correlation, the
        three covariance matrices, QIC/QICu and the scale.
    """
    options = resolve_options("gee", locals())
    d = model.design
    if d.family.name not in ("binomial", "poisson", "gaussian"):
        raise MethodError(
            f"method 'gee' supports binomial, poisson and gaussian, not {d.family.name}"
        )
    if start is not None and np.size(start) != d.p:
        raise MethodError(
            f"start must have {d.p} values (one per fixed effect), got {np.size(start)}"
        )
    index, cluster_name = cluster_index(model, groups)
    tvals = _column(model, time, "time") if time is not None else None
    t0 = _time.perf_counter()
    clusters = make_clusters(index, tvals)
    if corstr == "unstructured" and tvals is not None:
        dup = repeated_times(clusters)
        if dup:
            raise DataError(
                f"time column {time!r} repeats a time point within {len(dup)} cluster(s) "
                "of the unstructured working correlation"
            )
    trials = d.trials if d.trials is not None else np.ones(d.n)
    data = GEEData(d.y, trials, d.X, d.offset, d.family)
    corr = make_correlation(corstr, moments)
    state = solve_gee(
        data, clusters, corr, start=start, max_iter=max_iter, tol=tol, moments=moments
    )
    t1 = _time.perf_counter()
    # QIC's quasi-likelihood: scale 1 for binomial/Poisson, (N - p) Pearson scale otherwise
    qic_scale = _scale(data, state.beta, "statsmodels")
    crit = qic(data, clusters, state.beta, state.cov["robust"], qic_scale)

    ses = {k: np.sqrt(np.clip(np.diag(v), 0, None)) for k, v in state.cov.items()}
    table = wald_table(d.fixed_names, state.beta, ses[se])
    rows = [table]
    rows.append(
        pd.DataFrame(
            {"estimate": [np.nan] * len(d.component_names)},
            index=[f"var({c})" for c in d.component_names],
        )
    )
    if not data.fixed_scale:
        rows.append(pd.DataFrame({"estimate": [state.scale]}, index=["dispersion"]))
    table = pd.concat(rows)

    messages, said = [], []
    if not state.converged:
        msg = (
            f"GEE did not converge in {state.iterations} iterations (max_iter={max_iter}); "
            "try more iterations or another working correlation"
        )
        messages.append(msg)
        said.append(msg)
        warnings.warn(msg, GEEConvergenceWarning, stacklevel=3)
    if getattr(corr, "projected", False):
        msg = "the unstructured working correlation was not positive definite and was projected"
        said.append(msg)
        warnings.warn(msg, GEEConvergenceWarning, stacklevel=3)
    names = list(d.fixed_names)
    details = {
        "cluster": cluster_name,
        "n_clusters": clusters.n_clusters,
        "cluster_sizes": {"min": int(clusters.sizes.min()), "max": int(clusters.sizes.max())},
        "corstr": corstr,
        "working_correlation": corr.params,
        "working_correlation_text": corr.describe(),
        "se_type": se,
        "scale": state.scale,
        "scale_fixed": data.fixed_scale and moments == "statsmodels",
        "moments": moments,
        "std_errors": {k: dict(zip(names, v.tolist(), strict=True)) for k, v in ses.items()},
        "vcov": {k: v.tolist() for k, v in state.cov.items()},
        "vcov_names": names,
        **crit,
        "estimates": "marginal (population-averaged)",
    }
    return build_result(
        method="gee",
        kind="marginal",
        design=d,
        table=table,
        converged=state.converged,
        n_params=d.p,
        timing={"fit": t1 - t0, "total": _time.perf_counter() - t0},
        messages=messages,
        iterations=state.iterations,
        warnings=said,
        convergence_details={"max_abs_score": float(np.max(np.abs(state.score)))},
        options=options,
        details=details,
    )


__all__ = ["fit_gee", "SE_TYPES", "CORSTRS"]
