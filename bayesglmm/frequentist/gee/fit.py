"""``method="gee"``: marginal (population-averaged) models by generalized estimating
equations (Liang & Zeger 1986), one clustering factor.

The clusters come from the formula's single random-intercept term ``(1|cluster)`` (or the
``groups=`` column); the random effect is *not* estimated: GEE models the marginal mean
``g(E y_ij) = x_ij' beta`` and treats the within-cluster dependence through a working
correlation. The result has kind ``"marginal"``; its ``var(cluster)`` row is NaN.
"""

from __future__ import annotations

import time as _time

import numpy as np
import pandas as pd

from ..._warn import warn
from ...errors import DataError, MethodError, OptionError
from ...results.assemble import Estimates
from ...results.details import Covariance, MarginalDetails
from ...results.result import wald_table
from .association import PRENTICE_CORSTRS, association_covariance
from .clusters import make_clusters, repeated_times
from .correlation import CORSTRS, make_correlation
from .engine import GEEData, _scale, qic, solve_gee

#: ``se=`` choices: which covariance gives the table's std_error
SE_TYPES = ("robust", "model", "bias_reduced")


class GEEConvergenceWarning(UserWarning):
    """The estimating equations were not solved within ``max_iter`` iterations."""


def cluster_index(model, groups: str | None) -> tuple[np.ndarray, str]:
    """Cluster codes of the design's rows and the clustering factor's name.

    The design has at most one random-intercept term (the method's record checks it).
    """
    d = model.design
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


#: table rows of ``association="prentice"``: the scale ``gamma`` and ``alpha``
PRENTICE_ROWS = ("dispersion", "cor(alpha)")


def _check_prentice(design, corstr: str, moments: str) -> None:
    """Refuse ``association="prentice"`` where its equations are not defined (one line)."""
    fam = design.family.name
    if fam != "binomial":
        raise MethodError(
            f"association='prentice' is for binary responses (family binomial); got {fam!r}"
        )
    if design.trials is not None and np.any(np.asarray(design.trials) != 1):
        raise MethodError(
            "association='prentice' is for binary responses: the response has binomial "
            "totals above 1; give one 0/1 row per trial"
        )
    if corstr not in PRENTICE_CORSTRS:
        raise OptionError(
            f"association='prentice' takes corstr 'exchangeable' or 'ar1', got {corstr!r}"
        )
    if moments != "geepack":
        raise OptionError(
            f"association='prentice' uses geepack's scale and pairs: moments must be "
            f"'geepack', got {moments!r}"
        )


def fit_gee(
    model,
    *,
    corstr: str,
    se: str,
    groups: str | None,
    time: str | None,
    max_iter: int,
    tol: float,
    start,
    moments: str,
    association: str,
) -> Estimates:
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
        bias-reduced sandwich: the coefficient covariance of the result (``vcov``), the
        other two kept beside it (``vcov.others``).
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
    association : {"moment", "prentice"}
        ``"moment"``: ``alpha`` and the scale are moment estimates without standard
        errors. ``"prentice"`` (binary responses, exchangeable or AR(1), ``moments=
        "geepack"``): Prentice's (1988) estimating equations for ``alpha`` and the scale
        ``gamma``, as R geepack's ``geese`` with its defaults, solved with ``beta``; their
        roots are the same estimates, and the table gains the rows ``dispersion``
        (``gamma``) and ``cor(alpha)`` with geese's sandwich standard errors (``san.se``,
        whatever ``se`` is); the joint covariance of ``(beta, gamma, alpha)`` is in the
        details' ``association``. See :mod:`bayesglmm.frequentist.gee.association`.

    Returns
    -------
    Estimates
        Kind ``"marginal"``; the details hold the working correlation, QIC/QICu and the
        scale.
    """
    d = model.design  # family and clusters: the method's record
    weights = getattr(d, "weights", None)
    if weights is not None and (moments != "geepack" or association != "moment"):
        raise MethodError(
            f"prior weights (weights={d.weights_name}) take geepack's weighted moments: "
            f"moments='geepack' and association='moment' (got moments={moments!r}, "
            f"association={association!r})"
        )
    if association == "prentice":
        _check_prentice(d, corstr, moments)
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
    data = GEEData(d.y, trials, d.X, d.offset, d.family, weights)
    corr = make_correlation(corstr, moments)
    state = solve_gee(
        data, clusters, corr, start=start, max_iter=max_iter, tol=tol, moments=moments
    )
    t1 = _time.perf_counter()
    # QIC's quasi-likelihood: scale 1 for binomial/Poisson, (N - p) Pearson scale otherwise
    qic_scale = _scale(data, state.beta, "statsmodels")
    crit = qic(data, clusters, state.beta, state.cov["robust"], qic_scale)

    ses = {k: np.sqrt(np.clip(np.diag(v), 0, None)) for k, v in state.cov.items()}
    names = list(d.fixed_names)
    table = wald_table(d.fixed_names, state.beta, ses[se])
    rows = [table]
    rows.append(
        pd.DataFrame(
            {"estimate": [np.nan] * len(d.component_names)},
            index=[f"var({c})" for c in d.component_names],
        )
    )
    assoc = None
    if association == "prentice":
        assoc = association_covariance(data, clusters, corr, state.beta, state.scale, names)
        se_assoc = assoc.std_errors[-2:]
        rows.append(wald_table(PRENTICE_ROWS, assoc.estimates[-2:], se_assoc))
    elif not data.fixed_scale:
        rows.append(pd.DataFrame({"estimate": [state.scale]}, index=["dispersion"]))
    table = pd.concat(rows)

    messages = []
    if not state.converged:
        msg = (
            f"GEE did not converge in {state.iterations} iterations (max_iter={max_iter}); "
            "try more iterations or another working correlation"
        )
        messages.append(msg)
        warn(msg, GEEConvergenceWarning)
    extra_assoc = {}
    if assoc is not None:
        extra_assoc["association"] = {
            "method": "prentice",
            "names": list(assoc.names),
            "estimates": assoc.estimates.tolist(),
            "vcov": assoc.cov.tolist(),
            "rows": dict(zip(("gamma", "alpha"), PRENTICE_ROWS, strict=True)),
            "alpha_naive_se": float(np.sqrt(assoc.naive_alpha_var)),
        }
    if getattr(corr, "projected", False):
        warn(
            "the unstructured working correlation was not positive definite and was projected",
            GEEConvergenceWarning,
        )
    details = MarginalDetails(
        se_type=se,
        corstr=corstr,
        working_correlation_text=corr.describe(),
        scale=state.scale,
        scale_fixed=data.fixed_scale and moments == "statsmodels",
        cluster=cluster_name,
        n_clusters=clusters.n_clusters,
        cluster_sizes={"min": int(clusters.sizes.min()), "max": int(clusters.sizes.max())},
        QIC=crit.get("QIC"),
        QICu=crit.get("QICu"),
        extra={
            "working_correlation": corr.params,
            "moments": moments,
            **extra_assoc,
            "std_errors": {k: dict(zip(names, v.tolist(), strict=True)) for k, v in ses.items()},
            **{k: v for k, v in crit.items() if k not in ("QIC", "QICu")},
            "estimates": "marginal (population-averaged)",
        },
    )
    others = {k: v for k, v in state.cov.items() if k != se}
    return Estimates(
        kind="marginal",
        table=table,
        converged=state.converged,
        n_params=d.p,
        timing={"fit": t1 - t0},
        vcov=Covariance(se, names, state.cov[se], others),
        messages=messages,
        iterations=state.iterations,
        convergence_details={"max_abs_score": float(np.max(np.abs(state.score)))},
        details=details,
    )


__all__ = ["fit_gee", "SE_TYPES", "CORSTRS", "PRENTICE_ROWS"]
