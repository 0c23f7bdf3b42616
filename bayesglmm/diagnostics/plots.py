"""Plots of residuals and of posterior predictive checks (matplotlib, non-interactive).

:func:`plot_residuals` draws the three residual plots of R's DHARMa for a
:class:`~bayesglmm.diagnostics.Residuals`:

- ``"qq"``: the sorted quantile residuals against the quantiles ``(i - 1/2) / n`` of
  Uniform(0, 1), inside the simultaneous 95 % Kolmogorov-Smirnov band (:func:`ks_band`): every
  point lies in the band exactly when the Kolmogorov-Smirnov test (the ``uniformity`` row of
  :meth:`Residuals.tests`) does not reject at 5 %. Its p-value is in the title. Residuals of
  another kind are drawn against the standard normal, with the same band mapped through the
  normal quantile function (a guide only: Pearson or deviance residuals of counts are not
  normal);
- ``"fitted"``: the residuals against the rank of the fitted mean, scaled to (0, 1), with the
  linear quantile regressions (:func:`quantile_regression`) at 0.25, 0.5 and 0.75 beside the
  horizontal lines they should follow under the model (the quantiles of Uniform(0, 1); 0 for
  other kinds);
- ``"group"``: one box per level of a grouping factor, sorted by median.

For Bayesian fits, :func:`plot_ppc_by_group` wraps ArviZ's ``plot_ppc`` per level of a
grouping factor and :func:`plot_loo_pit` wraps ArviZ's ``plot_loo_pit``. Every function
returns the matplotlib Figure; nothing is shown (pyplot is imported with the Agg backend when
no backend has been chosen).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..errors import MethodError, OptionError

__all__ = [
    "KINDS",
    "ks_band",
    "quantile_regression",
    "plot_residuals",
    "plot_ppc_by_group",
    "plot_loo_pit",
]

#: the panels of :func:`plot_residuals`
KINDS = ("all", "qq", "fitted", "group")
#: the quantiles of the regression lines of the ``"fitted"`` panel
QUANTILES = (0.25, 0.5, 0.75)
#: above this many levels the group panel draws no level names
MAX_LABELLED_LEVELS = 40


def _pyplot():
    from ..analysis.plots import _pyplot

    return _pyplot()


# ------------------------------------------------------------------------------------------
# the statistics drawn


def ks_band(n: int, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simultaneous band of the order statistics of ``n`` Uniform(0, 1) values.

    With ``d`` the ``level`` quantile of the exact distribution of the two-sided
    Kolmogorov-Smirnov statistic ``D_n`` (:data:`scipy.stats.kstwo`), ``D_n <= d`` holds exactly
    when every order statistic satisfies ``i / n - d <= u_(i) <= (i - 1) / n + d``; so all
    ``n`` points lie in the band with probability ``level`` under uniformity, and a point
    outside it means the Kolmogorov-Smirnov test rejects at ``1 - level``.

    Parameters
    ----------
    n : int
        Number of values.
    level : float
        Simultaneous coverage, in (0, 1).

    Returns
    -------
    expected, lower, upper : ndarray (n,)
        The plotting positions ``(i - 1/2) / n`` and the band, clipped to [0, 1].
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise OptionError(f"n must be a positive integer, got {n!r}")
    if not 0.0 < float(level) < 1.0:
        raise OptionError(f"level must be in (0, 1), got {level!r}")
    d = float(stats.kstwo.ppf(level, int(n)))
    i = np.arange(1, n + 1, dtype=float)
    lower = np.clip(i / n - d, 0.0, 1.0)
    upper = np.clip((i - 1.0) / n + d, 0.0, 1.0)
    return (i - 0.5) / n, lower, upper


def quantile_regression(x, y, q: float, degree: int = 1) -> np.ndarray:
    """Linear quantile regression of ``y`` on a polynomial in ``x``, by linear programming.

    Minimizes the check loss ``sum_i rho_q(y_i - x_i' beta)``, ``rho_q(u) = u (q - 1{u < 0})``
    (the estimator of statsmodels' ``QuantReg`` and of R's ``quantreg::rq``), through its dual
    linear programme (Koenker & Bassett 1978; Koenker 2005, sec. 6.2)

        max_a  y'a   subject to   X'a = (1 - q) X'1,   0 <= a <= 1,

    solved by HiGHS (:func:`scipy.optimize.linprog`); ``beta`` is the vector of multipliers
    of the ``p`` equality constraints. The dual has ``n`` bounded variables and ``p``
    constraints, so large ``n`` stays fast (100,000 rows in a few seconds).

    Parameters
    ----------
    x, y : array-like (n,)
    q : float
        The quantile, in (0, 1).
    degree : int
        Degree of the polynomial (1: a straight line).

    Returns
    -------
    ndarray (degree + 1,)
        Coefficients of ``1, x, ..., x^degree``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise OptionError(f"x and y must be 1-d of one length, got {x.shape} and {y.shape}")
    if not 0.0 < float(q) < 1.0:
        raise OptionError(f"q must be in (0, 1), got {q!r}")
    if isinstance(degree, bool) or not isinstance(degree, int | np.integer) or degree < 0:
        raise OptionError(f"degree must be a non-negative integer, got {degree!r}")
    X = np.vander(x, int(degree) + 1, increasing=True)
    sol = optimize.linprog(
        -y,
        A_eq=X.T,
        b_eq=(1.0 - float(q)) * X.sum(axis=0),
        bounds=(0.0, 1.0),
        method="highs",
    )
    if sol.status != 0:
        raise MethodError(f"quantile regression at q={q} failed: {sol.message}")
    return -np.asarray(sol.eqlin.marginals, dtype=float)


def _uniformity_p(values: np.ndarray) -> float:
    return float(stats.kstest(values, "uniform").pvalue)


# ------------------------------------------------------------------------------------------
# residual plots


def _labels_of(res, group):
    """``(name, per-row labels)`` of the grouping for the group panel, or None."""
    n = len(res.values)
    groups = getattr(res, "groups", None) or {}
    if group is None:
        if not groups:
            return None
        name = next(iter(groups))
        return name, np.asarray(groups[name])
    if isinstance(group, str):
        if group not in groups:
            known = ", ".join(map(repr, groups)) or "none"
            raise OptionError(
                f"group={group!r} is not a grouping factor of the residuals; they have {known} "
                "(or pass the rows' labels, one per residual)"
            )
        return group, np.asarray(groups[group])
    labels = np.asarray(group)
    if labels.shape != (n,):
        raise OptionError(
            f"group: expected a factor name or one label per residual ({n}), got shape "
            f"{labels.shape}"
        )
    return (getattr(group, "name", None) or "group"), labels


def _qq(ax, res, level: float) -> None:
    values = np.asarray(res.values, dtype=float)
    n = values.shape[0]
    expected, lower, upper = ks_band(n, level)
    y = np.sort(values)
    if res.kind == "quantile":
        p = _uniformity_p(values)
        ref = "Uniform(0, 1)"
    else:
        expected, lower, upper = (stats.norm.ppf(a) for a in (expected, lower, upper))
        p = float(stats.kstest(values, "norm").pvalue)
        ref = "N(0, 1)"
    outside = (y < lower) | (y > upper)
    big = 1e6  # an open end of the normal band (the uniform band clipped at 0 or 1)
    ax.fill_between(
        expected,
        np.clip(lower, -big, big),
        np.clip(upper, -big, big),
        color="0.88",
        step="mid",
        label=f"{level:.0%} KS band",
    )
    lim = (expected[0], expected[-1]) if res.kind != "quantile" else (0.0, 1.0)
    ax.plot(lim, lim, color="0.3", lw=1.0)
    low, high = min(y[0], lim[0]), max(y[-1], lim[1])
    pad = 0.04 * (high - low) if high > low else 0.5
    ax.set_ylim(low - pad, high + pad)
    ax.plot(expected[~outside], y[~outside], "o", ms=2.5, color="C0", ls="none")
    if outside.any():
        ax.plot(expected[outside], y[outside], "o", ms=3, color="C3", ls="none", label="outside")
    ax.set_xlabel(f"expected ({ref} quantiles)")
    ax.set_ylabel(f"{res.kind} residual (sorted)")
    ax.set_title(f"QQ against {ref}: KS p = {p:.3g}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", frameon=False)


def _fitted(ax, res, degree: int) -> None:
    values = np.asarray(res.values, dtype=float)
    fitted = np.asarray(res.fitted, dtype=float)
    n = values.shape[0]
    x = (stats.rankdata(fitted) - 0.5) / n
    ax.plot(x, values, "o", ms=2.5, color="C0", alpha=0.6, ls="none")
    grid = np.linspace(0.0, 1.0, 101)
    expected = QUANTILES if res.kind == "quantile" else (None, 0.0, None)
    for q, h in zip(QUANTILES, expected, strict=True):
        if h is not None:
            ax.axhline(h, color="0.35", ls="--", lw=0.9)
        beta = quantile_regression(x, values, q, degree=degree)
        ax.plot(grid, np.polyval(beta[::-1], grid), color="C3", lw=1.4)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("fitted mean (rank, scaled to 0-1)")
    ax.set_ylabel(f"{res.kind} residual")
    ax.set_title(
        "against fitted: quantile lines 0.25/0.5/0.75 (red), expected (dashed)"
        if res.kind == "quantile"
        else "against fitted: quantile lines 0.25/0.5/0.75 (red)",
        fontsize=9,
    )


def _group(ax, res, name: str, labels: np.ndarray) -> None:
    values = np.asarray(res.values, dtype=float)
    frame = pd.DataFrame({"g": pd.Series(labels).astype(str).to_numpy(), "r": values})
    order = frame.groupby("g", sort=False)["r"].median().sort_values(kind="stable").index
    data = [frame.loc[frame["g"] == lev, "r"].to_numpy() for lev in order]
    ax.boxplot(data, widths=0.6, showfliers=True, flierprops={"ms": 2})
    for h in QUANTILES if res.kind == "quantile" else (0.0,):
        ax.axhline(h, color="0.35", ls="--", lw=0.9)
    if len(order) <= MAX_LABELLED_LEVELS:
        ax.set_xticks(range(1, len(order) + 1), list(order), rotation=90, fontsize=7)
    else:
        ax.set_xticks([])
    ax.set_xlabel(f"{name} (sorted by median)")
    ax.set_ylabel(f"{res.kind} residual")
    ax.set_title(f"by {name}: {len(order)} levels", fontsize=9)


def plot_residuals(res, kind: str = "all", group=None, ax=None, level: float = 0.95, **kw):
    """Residual plots of a fit: QQ with a simultaneous band, against fitted, by group.

    Parameters
    ----------
    res : Residuals
        From :func:`bayesglmm.diagnostics.residuals`: ``values``, ``fitted`` (the fitted
        mean of each row), ``kind`` and, for the group panel, ``groups`` (factor name to one
        level label per row).
    kind : {"all", "qq", "fitted", "group"}
        One panel (see the module docstring), or all of them side by side (the group panel
        only when a grouping is at hand).
    group : str or array-like, optional
        The factor of the group panel: a key of ``res.groups`` (default: its first), or one
        level label per residual (a Series gives its name).
    ax : matplotlib Axes, or a sequence of them for ``kind="all"``, optional
        Where to draw (default: a new figure).
    level : float
        Simultaneous coverage of the QQ band.
    **kw
        ``degree`` (int, default 1): the polynomial degree of the quantile regressions;
        ``figsize``: the size of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if kind not in KINDS:
        raise OptionError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    unknown = sorted(set(kw) - {"degree", "figsize"})
    if unknown:
        raise OptionError(
            f"plot_residuals: unknown option {unknown[0]!r}; it takes degree, figsize"
        )
    degree = kw.get("degree", 1)
    n = len(res.values)
    if n < 2:
        raise MethodError(f"plot_residuals needs at least 2 residuals, got {n}")
    grouping = _labels_of(res, group)
    if kind == "group" and grouping is None:
        raise OptionError(
            'kind="group" needs a grouping: the residuals have no groups; pass group= with one '
            "level label per residual"
        )
    panels = ["qq", "fitted"] + (["group"] if grouping is not None else [])
    panels = panels if kind == "all" else [kind]
    plt = _pyplot()
    if ax is None:
        size = kw.get("figsize") or (4.2 * len(panels), 3.8)
        fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False)
        axes = list(axes[0])
    else:
        axes = list(np.atleast_1d(np.asarray(ax, dtype=object)).ravel())
        if len(axes) != len(panels):
            raise OptionError(f"ax: {len(panels)} axes needed for {', '.join(panels)}")
        fig = axes[0].get_figure()
    for a, panel in zip(axes, panels, strict=True):
        if panel == "qq":
            _qq(a, res, level)
        elif panel == "fitted":
            _fitted(a, res, degree)
        else:
            _group(a, res, *grouping)
    if ax is None:
        cond = getattr(res, "conditional", None)
        if cond is not None:
            fig.suptitle(
                f"{res.kind} residuals ({'conditional on' if cond else 'new draws of'} the "
                "random effects)",
                fontsize=10,
            )
        fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------
# Bayesian checks


def _check_bayesian(fit, caller: str) -> None:
    if getattr(fit, "kind", None) != "bayesian" or getattr(fit, "idata", None) is None:
        raise MethodError(
            f"{caller} needs a Bayesian fit with posterior draws (method='nuts' or 'gibbs'); "
            f"this is a {getattr(fit, 'kind', type(fit).__name__)} fit "
            f"({getattr(fit, 'method', '?')})"
        )


def _with_predictive(fit, random_seed):
    """The fit's InferenceData with a ``posterior_predictive`` group (added when missing)."""
    from ..analysis.ppc import posterior_predictive

    if "posterior_predictive" not in fit.idata.groups():
        posterior_predictive(fit, random_seed=random_seed)
    idata = fit.idata
    name = next(iter(idata.posterior_predictive.data_vars))
    dim = next(d for d in idata.posterior_predictive[name].dims if d not in ("chain", "draw"))
    return idata, name, dim


def plot_ppc_by_group(
    fit,
    group: str,
    levels=None,
    max_levels: int = 6,
    ncols: int = 3,
    num_pp_samples: int = 50,
    random_seed=None,
    **kw,
):
    """ArviZ's ``plot_ppc`` of a Bayesian fit, one panel per level of a grouping factor.

    Each panel compares the observed responses of the level's rows with replicated ones from
    the posterior predictive (:func:`bayesglmm.analysis.ppc.posterior_predictive`, added to
    ``fit.idata`` when it has none).

    Parameters
    ----------
    fit : FitResult
        A Bayesian fit with its model.
    group : str
        A grouping factor of the model's random effects.
    levels : list, optional
        The levels to draw (default: the ``max_levels`` levels with the most rows).
    max_levels : int
        Levels drawn when ``levels`` is not given.
    ncols : int
        Panels per row.
    num_pp_samples : int
        Replicated data sets drawn per panel.
    random_seed : int, optional
        Seeds the posterior predictive (when it is added) and ArviZ's choice of replicates.
    **kw
        Passed to ``arviz.plot_ppc`` (e.g. ``kind="cumulative"``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .._arviz import import_arviz

    _check_bayesian(fit, "plot_ppc_by_group")
    design = getattr(getattr(fit, "model", None), "design", None)
    if design is None:
        raise MethodError(
            "plot_ppc_by_group needs the fit's model (a fit read from a file has none)"
        )
    terms = [t for t in design.random if t.group == group]
    if not terms:
        known = sorted({t.group for t in design.random})
        raise OptionError(f"group={group!r} is not a grouping factor of the model; it has {known}")
    term = terms[0]
    names = np.asarray([str(v) for v in term.levels])
    row_level = names[np.asarray(term.index)]
    if levels is None:
        counts = pd.Series(row_level).value_counts(sort=False)
        counts = counts.reindex([v for v in names if v in counts.index])
        levels = list(counts.sort_values(ascending=False, kind="stable").index[: int(max_levels)])
    else:
        levels = [str(v) for v in levels]
        missing = [v for v in levels if v not in set(names)]
        if missing:
            raise OptionError(f"levels: {missing[0]!r} is not a level of {group!r}")
    az = import_arviz()
    idata, name, dim = _with_predictive(fit, random_seed)
    coord = idata.posterior_predictive[name].coords[dim].values
    plt = _pyplot()
    ncols = max(1, min(int(ncols), len(levels)))
    nrows = -(-len(levels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.6 * nrows), squeeze=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, (a, lev) in enumerate(zip(axes.ravel(), levels, strict=False)):
            rows = np.flatnonzero(row_level == lev)
            az.plot_ppc(
                idata,
                var_names=[name],
                coords={dim: coord[rows]},
                flatten=[dim],
                num_pp_samples=num_pp_samples,
                random_seed=random_seed,
                ax=a,
                legend=k == 0,
                **kw,
            )
            a.set_title(f"{group} = {lev} ({rows.size} rows)", fontsize=9)
            a.set_xlabel(name, fontsize=8)
    for a in axes.ravel()[len(levels) :]:
        a.set_visible(False)
    fig.tight_layout()
    return fig


def plot_loo_pit(fit, randomized: bool | None = None, random_seed=None, ax=None, **kw):
    """ArviZ's ``plot_loo_pit`` of a Bayesian fit: leave-one-out PIT values against uniform.

    The LOO-PIT of row ``i`` is ``P(y_rep_i <= y_i | y_{-i})``, estimated from the
    posterior predictive (added to ``fit.idata`` when missing) with the Pareto-smoothed
    importance weights of the pointwise log-likelihood (``fit.idata.log_likelihood``). For a
    count response it is not uniform even under the model (ties); with ``randomized`` the
    observed and replicated counts are jittered by independent Uniform(0, 1) draws, the
    randomized PIT ``F(y_i - 1) + U_i P(y_i)`` (Dunn & Smyth 1996), uniform under the model.

    Parameters
    ----------
    fit : FitResult
        A Bayesian fit with ``log_likelihood`` in its ``idata``.
    randomized : bool, optional
        Jitter the counts (default: when the family is discrete).
    random_seed : int, optional
        Seeds the posterior predictive (when added) and the jitter.
    ax : matplotlib Axes, optional
    **kw
        Passed to ``arviz.plot_loo_pit`` (e.g. ``ecdf=True``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .._arviz import import_arviz

    _check_bayesian(fit, "plot_loo_pit")
    if "log_likelihood" not in fit.idata.groups():
        raise MethodError(
            "plot_loo_pit: the fit has no pointwise log-likelihood (idata has no "
            "'log_likelihood' group); refit with log_likelihood=True"
        )
    az = import_arviz()
    idata, name, dim = _with_predictive(fit, random_seed)
    y = np.asarray(idata.observed_data[name].values, dtype=float)
    y_hat = idata.posterior_predictive[name].stack(__sample__=("chain", "draw")).values
    y_hat = np.asarray(y_hat, dtype=float)
    loglik = idata.log_likelihood[next(iter(idata.log_likelihood.data_vars))]
    loglik = loglik.stack(__sample__=("chain", "draw"))
    post = idata.posterior
    n_samples = loglik.sizes["__sample__"]
    reff = 1.0
    if post.sizes["chain"] > 1:
        ess = az.ess(post, method="mean")
        reff = float(np.hstack([ess[v].values.ravel() for v in ess.data_vars]).mean() / n_samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log_weights = np.asarray(az.psislw(-loglik, reff=reff)[0].values)
    if randomized is None:
        design = getattr(getattr(fit, "model", None), "design", None)
        if design is not None:
            randomized = bool(design.family.discrete)
        else:
            randomized = bool(np.all(y == np.round(y)) and np.all(y_hat == np.round(y_hat)))
    if randomized:
        rng = np.random.default_rng(random_seed)
        y = y + rng.uniform(size=y.shape)
        y_hat = y_hat + rng.uniform(size=y_hat.shape)
    state = np.random.get_state()  # noqa: NPY002 (ArviZ draws its uniform curves from it)
    try:
        np.random.seed(np.random.default_rng(random_seed).integers(2**32))  # noqa: NPY002
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            axes = az.plot_loo_pit(y=y, y_hat=y_hat, log_weights=log_weights, ax=ax, **kw)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    a = np.asarray(axes, dtype=object).ravel()[0]
    a.set_xlabel("LOO-PIT")
    a.set_title(
        f"LOO-PIT of {name}" + (" (randomized for a count response)" if randomized else ""),
        fontsize=9,
    )
    return a.get_figure()
