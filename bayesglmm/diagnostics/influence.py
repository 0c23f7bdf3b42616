"""Influence of the levels of a grouping factor: what the estimates become without a level.

For each level ``j`` of a grouping factor (a herd, a school, a subject), the change of the
fixed effects and of the variance components when the rows of that level are left out, by

- a **one-step** approximation for every level: one Newton step from the full-data
  estimate on the case-deleted objective, over all the fit's optimization parameters
  (:mod:`bayesglmm.diagnostics.case_deletion`); and/or
- **exact** refits by the same method and options without the level's rows, run as a
  study (:func:`bayesglmm.study.run_study`: process pool or Dask, resumable with a store,
  seeds derived from ``random_seed`` for the Monte Carlo methods).

Cook's distance of level ``j`` for the fixed effects is, as in R's ``influence.ME``
(Nieuwenhuis, te Grotenhuis & Pelzer 2012, ``cooks.distance.estex``),

.. math::

    D_j = \\frac{(\\hat\\beta_{-j} - \\hat\\beta)^\\top V^{-1} (\\hat\\beta_{-j} - \\hat\\beta)}{p},

with ``V`` the fit's covariance of the fixed effects and ``p`` their number; levels with
``D_j > 4 / J`` (``J`` levels, the cut-off ``influence.ME`` documents) are flagged.

How accurate the one-step is. A level carrying ``n_j`` of ``n`` rows moves the estimates by
``d = O(n_j / n)``. With the deleted-data Hessian (``hessian="deleted"``, the default) the
step is a full Newton step on the exact case-deleted objective and errs by ``O(|d|^2)``, a
fraction ``O(n_j / n)`` of the change. With the full-data Hessian (``hessian="full"``, the
classical one-step) the step is shorter by ``H^{-1} H_j d``, a first-order term of relative
size ``O(n_j / n)``: it shrinks the fixed-effect changes, and with them Cook's distance,
towards zero, while for the variance parameters it partly cancels the second-order term (the
deviance is skewed in a standard deviation). On the designs of
``benchmarks/bench_influence.py`` (cbpp by Laplace and PQL, a Poisson model with 40
groups, a crossed binomial design, a Gaussian LMM; ``benchmarks/results/influence.txt``)
the deleted-data Hessian gave Cook's distances within 0.1 of the largest one (the full-data
Hessian: up to 0.27) and flagged every level the exact refits flag (and, in the crossed
design, one more at the cut-off), where the full-data Hessian missed some; the full-data
Hessian was closer for the standard deviations.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._threads import blas_threads
from .._warn import warn
from ..analysis.study.tasks import check_arguments
from ..errors import MethodError, OptionError
from ..model.design import refuse_extensions
from ..options import choice, flag, known_options, real
from .case_deletion import (
    Criterion,
    joint_criterion,
    level_index,
    one_step,
    profiled_criterion,
    subset_design,
)

#: methods whose fits ``influence`` takes, and the objective of their one-step
SUPPORTED = {
    "laplace": "the Laplace deviance (the fit's own objective)",
    "agq": "the adaptive quadrature deviance with the fit's n_quad",
    "mbp": "the quadrature deviance with the fit's n_quad (the likelihood MBP maximizes)",
    "lmm": "the profiled REML/ML criterion of the linear mixed model",
    "pql": "the working linear mixed model at the fitted linear predictor",
    "mcem": "the quadrature (one factor or nested) or Laplace deviance as a surrogate",
    "mcnr": "the quadrature (one factor or nested) or Laplace deviance as a surrogate",
    "sml": "the quadrature (one factor or nested) or Laplace deviance as a surrogate",
}
#: nodes of the quadrature surrogate of the Monte Carlo methods
SURROGATE_QUAD = 25
#: fewest levels of a grouping factor for which influence is computed
MIN_LEVELS = 3
#: columns of :attr:`Influence.table`
TABLE_COLUMNS = (
    "level",
    "parameter",
    "estimate",
    "one_step",
    "exact",
    "cooks_distance",
    "cooks_distance_exact",
    "flagged",
)


# ------------------------------------------------------------------------------------------
# the result


@dataclass
class Influence:
    """Influence of each level of a grouping factor (see :func:`influence`).

    Attributes
    ----------
    table : pandas.DataFrame
        Tidy, one row per level and parameter (columns :data:`TABLE_COLUMNS`):
        ``estimate`` (full data), ``one_step`` and ``exact`` (the change of the estimate
        without the level; NaN where not computed), the level's Cook's distances and
        ``flagged``. Parameters are the fixed effects, ``sd(<component>)``,
        ``cor(<group>|a,b)`` and the dispersion (``sigma``, ``alpha``, ``dispersion``).
    levels : pandas.DataFrame
        One row per level (a level without which the fixed effects are not identified gets
        no one-step and no refit, with the reason in ``note``): ``n_rows``,
        ``cooks_distance`` (one-step),
        ``cooks_distance_exact``, ``flagged``, ``refitted``, ``converged`` (the refit's),
        ``seconds`` and ``warnings`` (the refit's), ``note`` and ``error`` (a refit that
        failed).
    group : str
    method : str
        The fit's method.
    approach : {"one-step", "exact", "both"}
    threshold : float
        Cook's distance above which a level is flagged.
    steps : pandas.DataFrame or None
        One-step changes on the optimization scale (level by ``theta[...]``, fixed
        effects, ``log(dispersion)``).
    details : dict
        ``objective`` (what the one-step differentiates), ``path`` (``"level
        contributions"`` or ``"deleted data"``), ``hessian``, ``hold_variance``,
        ``seconds_one_step``, ``seconds_exact``.
    study : StudyResult or None
        The run of the refits.
    """

    table: pd.DataFrame
    levels: pd.DataFrame
    group: str
    method: str
    approach: str
    threshold: float
    steps: pd.DataFrame | None = None
    details: dict = field(default_factory=dict)
    study: object = field(default=None, repr=False)

    @property
    def cooks_distance(self) -> pd.Series:
        """Cook's distance per level: the one-step's, or the refits' for ``"exact"``."""
        col = "cooks_distance" if self.approach != "exact" else "cooks_distance_exact"
        return self.levels[col].rename("cooks_distance")

    @property
    def cooks_distance_exact(self) -> pd.Series:
        """Cook's distance of the refitted levels (NaN for the others)."""
        return self.levels["cooks_distance_exact"].rename("cooks_distance_exact")

    @property
    def flagged(self) -> list[str]:
        """Levels whose Cook's distance exceeds :attr:`threshold`."""
        return self.levels.index[self.levels["flagged"].to_numpy(bool)].tolist()

    def deltas(self, kind: str = "one_step") -> pd.DataFrame:
        """The changes as a level by parameter table (``kind``: ``"one_step"``, ``"exact"``)."""
        kind = choice("one_step", "exact")("kind", kind)
        wide = self.table.pivot(index="level", columns="parameter", values=kind)
        order = list(dict.fromkeys(self.table["parameter"]))
        return wide.reindex(index=self.levels.index, columns=order)

    def plot(self, ax=None, annotate: bool = True):
        """Index plot of Cook's distance with the threshold line; returns the Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(self.levels) + 2), 3.5))
        pos = np.arange(len(self.levels))
        one = self.levels["cooks_distance"].to_numpy(float)
        exact = self.levels["cooks_distance_exact"].to_numpy(float)
        if np.isfinite(one).any():
            ax.vlines(pos, 0, np.nan_to_num(one), color="0.6", lw=1)
            ax.plot(pos, one, "o", color="C0", label="one-step")
        if np.isfinite(exact).any():
            ax.plot(pos, exact, "x", color="C3", ms=8, label="exact refit")
        ax.axhline(
            self.threshold, ls="--", color="k", lw=1, label=f"threshold {self.threshold:.3g}"
        )
        if annotate:
            d = self.cooks_distance.to_numpy(float)
            for i in np.flatnonzero(self.levels["flagged"].to_numpy(bool)):
                ax.annotate(str(self.levels.index[i]), (pos[i], d[i]), xytext=(3, 3),
                            textcoords="offset points", fontsize=8)  # fmt: skip
        ax.set_xticks(pos)
        ax.set_xticklabels([str(v) for v in self.levels.index], rotation=90, fontsize=8)
        ax.set_xlabel(self.group)
        ax.set_ylabel("Cook's distance")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        return ax

    def __repr__(self) -> str:
        n = len(self.levels)
        refits = int(self.levels["refitted"].sum())
        head = (
            f"Influence(group={self.group!r}, method={self.method!r}, approach={self.approach!r},"
            f" {n} levels, {refits} refitted, threshold {self.threshold:.4g})"
        )
        flagged = self.flagged
        lines = [head, f"  flagged: {', '.join(map(str, flagged)) if flagged else 'none'}"]
        cols = [
            c
            for c in ("n_rows", "cooks_distance", "cooks_distance_exact", "flagged")
            if self.levels[c].notna().any()
        ]
        top = self.levels.sort_values(cols[1] if len(cols) > 1 else cols[0], ascending=False)
        with pd.option_context("display.width", 120, "display.max_columns", 8):
            lines.append(top[cols].head(10).to_string(float_format=lambda v: f"{v:.4f}"))
        if n > 10:
            lines.append(f"  ... {n - 10} more levels")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# the exact refit (a study task, run on a worker)


def drop_level(model, group: str, level: str):
    """A copy of ``model`` without the rows of ``level`` of grouping factor ``group``."""
    import copy

    index, levels = level_index(model.design, group)
    keep = index != [str(v) for v in levels].index(str(level))
    sub = copy.copy(model)
    sub.design = subset_design(model.design, keep)
    data = model.data
    if data.index.is_unique:
        sub.data = data.loc[sub.design.row_labels]
    elif len(data) == model.design.n:
        sub.data = data.iloc[np.flatnonzero(keep)]
    return sub


def reported(fit) -> dict:
    """A fit's parameters as :func:`influence` reports them (standard deviations)."""
    out = {str(k): float(v) for k, v in fit.fixed_effects.items()}
    out.update(
        {f"sd({k})": float(np.sqrt(max(v, 0.0))) for k, v in fit.variance_components.items()}
    )
    out.update({f"cor({k})": float(v) for k, v in fit.re_correlations.items()})
    out.update({str(k): float(v) for k, v in fit.dispersion.items()})
    return out


def refit_without_level(
    model, group: str, level: str, method: str, options: dict, monte_carlo: bool, seed: int
) -> dict:
    """Refit ``model`` by ``method`` without ``level`` (a study task)."""
    sub = drop_level(model, group, level)
    opts = dict(options)
    if monte_carlo:
        opts["random_seed"] = int(seed % 2**32)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = sub.fit(method, **opts)
    return {
        "values": reported(fit),
        "converged": bool(fit.converged),
        "singular": bool(fit.convergence.get("singular", False)),
        "seconds": time.perf_counter() - start,
        "warnings": sorted({str(w.message).splitlines()[0][:200] for w in caught}),
    }


# ------------------------------------------------------------------------------------------
# checks and the fit's objective


def _check_fit(fit, model, group):
    from ..results.predict import model_of
    from ..results.result import FitResult

    if not isinstance(fit, FitResult):
        raise OptionError(f"fit must be a FitResult, got {type(fit).__name__}")
    if fit.kind == "bayesian":
        raise MethodError(
            f"influence takes likelihood fits ({', '.join(SUPPORTED)}); this is a Bayesian "
            f"fit ({fit.method!r}): for leave-one-level-out with a posterior use "
            "bayesglmm.loo(fit, group=...) (importance sampling, exact refits where it fails)"
        )
    if fit.method not in SUPPORTED:
        raise MethodError(
            f"influence takes likelihood fits ({', '.join(SUPPORTED)}); method "
            f"{fit.method!r} ({fit.kind}) has no likelihood to take a Newton step on"
        )
    model = model_of(fit, model)
    groups = list(dict.fromkeys(t.group for t in model.design.random))
    if group is None:
        if len(groups) != 1:
            raise OptionError(f"group must name one of the grouping factors {groups}")
        group = groups[0]
    if not isinstance(group, str) or group not in groups:
        raise OptionError(
            f"group must be one of the model's grouping factors {groups}, got {group!r}"
        )
    n_levels = len(level_index(model.design, group)[1])
    if n_levels < MIN_LEVELS:
        raise OptionError(
            f"group {group!r} has {n_levels} levels; influence needs at least {MIN_LEVELS} "
            "(without one of two levels the variance of the factor is not estimable)"
        )
    return model, group


def _levels_arg(levels, all_levels: list[str], approach: str):
    if levels is None:
        return None
    if approach == "one-step":
        raise OptionError(
            "levels= chooses the levels to refit; with method='one-step' nothing is refitted "
            "(use method='exact' or 'both')"
        )
    if isinstance(levels, str) and levels == "all":
        return list(all_levels)
    if isinstance(levels, str) or not isinstance(levels, Sequence | np.ndarray | pd.Index):
        raise OptionError(f"levels must be a list of levels or 'all', got {levels!r}")
    names = [str(v) for v in levels]
    unknown = [v for v in names if v not in all_levels]
    if unknown:
        raise OptionError(f"levels {unknown} are not levels of the grouping factor")
    return list(dict.fromkeys(names))


def criterion(fit, model, group: str) -> Criterion:
    """The objective the one-step differentiates, for ``fit`` (a method of :data:`SUPPORTED`)."""
    design = model.design
    opts = dict(fit.info.get("options") or {})
    method = fit.method
    if method == "lmm":
        z = design.y - design.offset
        return profiled_criterion(
            fit, design, z, np.ones(design.n), bool(opts.get("reml", True)), None, "sigma",
            SUPPORTED[method],
        )  # fmt: skip
    if method == "pql":
        if opts.get("bias_correction") not in (None, "none"):
            raise MethodError(
                f"the one-step takes the working model of PQL, which a bias-corrected fit "
                f"(bias_correction={opts['bias_correction']!r}) no longer solves: use "
                "method='exact' (refits with the same correction)"
            )
        return _pql_criterion(fit, design, opts)
    if method in ("agq", "mbp"):
        n_quad = int(opts.get("n_quad") or 1)
    elif method == "laplace":
        n_quad = 1
    else:
        n_quad = SURROGATE_QUAD if design.grouping["kind"] in ("single", "nested") else 1
        if design.grouping["kind"] == "nested":
            n_quad = 1 if sum(design.grouping["dims"].values()) > 2 else n_quad
    return joint_criterion(fit, design, group, n_quad, opts, SUPPORTED[method])


def _pql_criterion(fit, design, opts) -> Criterion:
    from ..frequentist.pql_working import _working_parts, working_response

    alpha = opts.get("alpha")
    b = np.concatenate([fit.random_effects[t.name].to_numpy(float).ravel() for t in design.random])
    eta = design.X @ fit.fixed_effects.reindex(design.fixed_names).to_numpy(float)
    eta = eta + design.Z @ b + design.offset
    y, pw = _working_parts(design, alpha)
    z, w = working_response(design, eta, y, pw, alpha)
    estimated = opts.get("dispersion") == "estimated"
    return profiled_criterion(
        fit,
        design,
        np.asarray(z, dtype=float),
        np.asarray(w, dtype=float),
        bool(opts.get("reml", True)),
        None if estimated else 1.0,
        "dispersion" if estimated else None,
        SUPPORTED["pql"],
    )


def _refit_options(fit, method: str) -> dict:
    """The fit's options for the refits, started at the full-data estimate where the method
    takes a start."""
    given = dict(fit.info.get("options") or {})
    known = set(known_options(method))
    opts = {k: v for k, v in given.items() if k in known and k != "progressbar"}
    if "progressbar" in known:
        opts["progressbar"] = False
    if "start" in known and opts.get("start") is None:
        start = {"theta": list(fit.info["theta"]), "fixed_effects": fit.fixed_effects.to_dict()}
        if len(fit.dispersion) and method in ("laplace", "agq"):
            start["dispersion"] = float(fit.dispersion.iloc[0])
        opts["start"] = start
    return opts


#: a fixed-effect direction whose information without a level is below this fraction of the
#: largest is not identified there
RANK_TOL = 1e-10


def unidentified(design, index: np.ndarray, n_levels: int) -> dict[int, str]:
    """Levels without which ``X`` loses rank (a fixed effect estimated from that level's
    rows alone), with the reason; from ``X'X - X_j'X_j`` (``p x p`` per level)."""
    X = np.asarray(design.X, dtype=float)
    scale = np.sqrt(np.maximum(np.sum(X**2, axis=0), 1e-300))
    Xs = X / scale
    total = Xs.T @ Xs
    out = {}
    for j in range(n_levels):
        rows = Xs[index == j]
        eig = np.linalg.eigvalsh(total - rows.T @ rows)
        if eig[0] <= RANK_TOL * max(eig[-1], 1e-300):
            dead = [
                str(n)
                for n, c in zip(design.fixed_names, Xs.T, strict=True)
                if not np.any(c[index != j])
            ]
            which = f" ({', '.join(dead)} is zero on the other rows)" if dead else ""
            out[j] = f"the fixed effects are not identified without this level{which}"
    return out


def _cooks(delta: np.ndarray, V_inv: np.ndarray | None) -> float:
    if V_inv is None or not np.all(np.isfinite(delta)):
        return np.nan
    return float(delta @ V_inv @ delta / delta.size)


def _fixed_precision(fit, fixed: list[str]) -> np.ndarray | None:
    if fit.vcov is None:
        return None
    try:
        V = fit.vcov.block(fixed)
    except KeyError:
        return None
    if not np.all(np.isfinite(V)):
        return None
    try:
        return np.linalg.inv(V)
    except np.linalg.LinAlgError:
        return None


# ------------------------------------------------------------------------------------------
# the function


def influence(
    fit,
    group: str | None = None,
    method: str = "one-step",
    levels=None,
    *,
    hessian: str = "deleted",
    hold_variance: bool = False,
    threshold: float | None = None,
    model=None,
    store=None,
    client=None,
    max_workers: int | None = None,
    random_seed: int | None = None,
    progressbar: bool | None = None,
) -> Influence:
    """Change of the estimates when each level of a grouping factor is left out.

    Parameters
    ----------
    fit : FitResult
        A likelihood fit by ``laplace``, ``agq``, ``mbp``, ``lmm``, ``pql`` or the Monte Carlo
        maximum-likelihood methods ``mcem``, ``mcnr``, ``sml``. The one-step differentiates
        the fit's own objective: the Laplace deviance (``laplace``), the quadrature deviance
        with the fit's ``n_quad`` (``agq``, ``mbp``), the profiled REML or ML criterion
        (``lmm``), the working linear mixed model at the fitted linear predictor (``pql``:
        one step of PQL on the deleted data, the mixed-model analogue of Pregibon's
        one-step for GLMs); for the Monte Carlo methods a surrogate: the quadrature deviance
        (25 nodes; one factor or two nested) or the Laplace deviance. Bayesian fits are
        refused (a :class:`~bayesglmm.errors.MethodError` with the reason), as are GEE and
        the moment methods.
    group : str, optional
        The grouping factor; needed when the model has more than one. It must have at least
        3 levels.
    method : {"one-step", "exact", "both"}
        ``"one-step"``: one Newton step per level (no refit). ``"exact"``: refits by the
        fit's method and options without each level in ``levels`` (default: every level).
        ``"both"``: the one-step for every level, and refits of the levels it flags plus
        those in ``levels``, side by side.
    levels : list of str or "all", optional
        Levels to refit (``"all"``: every level); not with ``method="one-step"``.
    hessian : {"deleted", "full"}
        The Hessian of the Newton step: of the deleted-data objective (a full Newton step
        on it, error quadratic in the change), or of the full-data objective for every
        level (the classical one-step: one gradient per level, but changes shrunk towards
        zero by the level's share of the information; see the module docstring).
    hold_variance : bool
        Keep the variance and dispersion parameters at their full-data values and move only
        the fixed effects. For a Gaussian linear mixed model (``lmm``) the one-step is then
        exactly the generalized least-squares estimate without the level.
    threshold : float, optional
        Cook's distance above which a level is flagged; default ``4 / J`` for ``J``
        levels (``influence.ME``'s cut-off).
    model : GLMM, optional
        The model the fit came from; needed only after ``FitResult.load``.
    store, client, max_workers, random_seed, progressbar
        As :func:`bayesglmm.study.run_study`, for the refits. Refits use the fit's options
        and start from the full-data estimate where the method takes ``start=``; Monte Carlo
        methods get seeds derived from ``random_seed`` and the level.

    Returns
    -------
    Influence
        ``.table`` (tidy: level, parameter, estimate, one_step, exact, Cook's distances,
        flag), ``.levels``, ``.cooks_distance``, ``.flagged``, ``.plot()``.

    Notes
    -----
    One-step changes are computed on the fit's optimization scale (``theta``, the
    fixed effects, the log dispersion; for ``lmm`` and ``pql`` ``theta`` with the fixed
    effects and residual variance profiled) and reported on the scale of the fit's table,
    with variance components as standard deviations ``sd(<component>)``. Parameters at a
    bound (a variance estimated as zero) stay there; with the deleted-data Hessian a level
    without which the curvature at the bound is negative, so that the refit would leave it,
    gets a note in ``levels["note"]``. The one-step is poorest for a level
    whose removal sends a variance to zero (a singular refit, ``levels["singular"]``): the
    step from the interior does not reach the bound, though it shows the largest change of
    that variance. See
    :mod:`bayesglmm.diagnostics.case_deletion` for the step and its Hessian.

    Examples
    --------
    >>> fit = GLMM("cbind(incidence, size - incidence) ~ period + (1|herd)",
    ...            datasets.load("cbpp")).fit("laplace")              # doctest: +SKIP
    >>> infl = influence(fit, "herd", method="both")                  # doctest: +SKIP
    >>> infl.cooks_distance, infl.flagged, infl.plot()                 # doctest: +SKIP
    """
    approach = choice("one-step", "exact", "both")("method", method)
    hessian = choice("deleted", "full")("hessian", hessian)
    hold_variance = flag()("hold_variance", hold_variance)
    threshold = real(0, none=True)("threshold", threshold)
    # the study's arguments, checked before any work (run_study checks them again)
    check_arguments(store, client, max_workers, random_seed, progressbar)
    model, group = _check_fit(fit, model, group)
    refuse_extensions(model.design, "influence")
    index, all_levels = level_index(model.design, group)
    all_levels = [str(v) for v in all_levels]
    refit_levels = _levels_arg(levels, all_levels, approach)
    n_levels = len(all_levels)
    if threshold is None:
        threshold = 4.0 / n_levels
    fixed = [str(n) for n in model.design.fixed_names]
    V_inv = _fixed_precision(fit, fixed)
    if V_inv is None:
        warn(
            "the fit has no usable covariance of the fixed effects (see its convergence "
            "messages): Cook's distances are NaN and no level is flagged",
            UserWarning,
        )
    base = reported(fit)
    params = list(base)

    lost = unidentified(model.design, index, n_levels)
    frame = pd.DataFrame(
        {
            "n_rows": np.bincount(index, minlength=n_levels),
            "cooks_distance": np.nan,
            "cooks_distance_exact": np.nan,
            "flagged": False,
            "refitted": False,
            "converged": pd.array([pd.NA] * n_levels, dtype="boolean"),
            "singular": pd.array([pd.NA] * n_levels, dtype="boolean"),
            "seconds": np.nan,
            "warnings": "",
            "note": "",
            "error": None,
        },
        index=pd.Index(all_levels, name=group),
    )
    one = np.full((n_levels, len(params)), np.nan)
    exact = np.full((n_levels, len(params)), np.nan)
    details = {"hessian": hessian, "hold_variance": hold_variance}
    steps = None

    if approach in ("one-step", "both"):
        t0 = time.perf_counter()
        crit = criterion(fit, model, group)
        # one BLAS thread, as the fits use for these small dense blocks (several threads on
        # a busy machine cost ten times more here)
        with blas_threads(1):
            res = one_step(
                crit, index, n_levels, hessian=hessian, hold_variance=hold_variance, skip=lost
            )
        details.update(
            objective=crit.description,
            path=res.path,
            seconds_one_step=time.perf_counter() - t0,
        )
        for j, vals in enumerate(res.values):
            one[j] = [vals.get(p, np.nan) for p in params]
        frame["note"] = res.notes
        steps = pd.DataFrame(res.steps, index=frame.index, columns=crit.names)
        frame["cooks_distance"] = [_cooks(one[j, : len(fixed)], V_inv) for j in range(n_levels)]
        flagged = frame["cooks_distance"].to_numpy(float) > threshold
        if approach == "both":
            chosen = set(np.asarray(all_levels)[flagged]) | set(refit_levels or [])
            refit_levels = [v for v in all_levels if v in chosen]
    else:
        refit_levels = all_levels if refit_levels is None else refit_levels

    if approach in ("exact", "both"):
        for j, why in lost.items():
            if all_levels[j] in (refit_levels or []):
                frame.iloc[j, frame.columns.get_loc("note")] = why
                frame.iloc[j, frame.columns.get_loc("error")] = why
        refit_levels = [v for v in refit_levels or [] if all_levels.index(v) not in lost]
    study = None
    if approach in ("exact", "both") and refit_levels:
        study = _refits(
            fit, model, group, refit_levels, store, client, max_workers, random_seed, progressbar
        )
        details["seconds_exact"] = float(study.table["seconds"].sum())
        errors = study.table.set_index("key")["error"]
        pos = {v: i for i, v in enumerate(all_levels)}
        for level in refit_levels:
            j = pos[level]
            frame.iloc[j, frame.columns.get_loc("refitted")] = True
            out = study.results.get(level)
            if out is None:
                frame.iloc[j, frame.columns.get_loc("error")] = str(errors.get(level))
                continue
            exact[j] = [out["values"].get(p, np.nan) - base[p] for p in params]
            frame.iloc[j, frame.columns.get_loc("converged")] = out["converged"]
            frame.iloc[j, frame.columns.get_loc("singular")] = out["singular"]
            frame.iloc[j, frame.columns.get_loc("seconds")] = out["seconds"]
            frame.iloc[j, frame.columns.get_loc("warnings")] = " | ".join(out["warnings"])
        frame["cooks_distance_exact"] = [
            _cooks(exact[j, : len(fixed)], V_inv) for j in range(n_levels)
        ]
    d = frame["cooks_distance" if approach != "exact" else "cooks_distance_exact"]
    frame["flagged"] = d.to_numpy(float) > threshold

    table = pd.DataFrame(
        {
            "level": np.repeat(all_levels, len(params)),
            "parameter": np.tile(params, n_levels),
            "estimate": np.tile([base[p] for p in params], n_levels),
            "one_step": one.ravel(),
            "exact": exact.ravel(),
            "cooks_distance": np.repeat(frame["cooks_distance"].to_numpy(float), len(params)),
            "cooks_distance_exact": np.repeat(
                frame["cooks_distance_exact"].to_numpy(float), len(params)
            ),
            "flagged": np.repeat(frame["flagged"].to_numpy(bool), len(params)),
        }
    )
    return Influence(
        table=table,
        levels=frame,
        group=group,
        method=fit.method,
        approach=approach,
        threshold=float(threshold),
        steps=steps,
        details=details,
        study=study,
    )


def _refits(fit, model, group, levels, store, client, max_workers, random_seed, progressbar):
    from ..analysis.study import Task
    from ..analysis.study.runner import run_tasks

    method = fit.method
    options = _refit_options(fit, method)
    monte_carlo = fit.kind == "monte_carlo" and "random_seed" in known_options(method)
    tasks = [
        Task(
            key=level,
            fn=refit_without_level,
            kwargs={
                "model": model,
                "group": group,
                "level": level,
                "method": method,
                "options": options,
                "monte_carlo": monte_carlo,
            },
        )
        for level in levels
    ]
    return run_tasks(
        tasks,
        store,
        client,
        max_workers,
        random_seed,
        progressbar,
        desc="influence refits",
        warn=False,
    )
