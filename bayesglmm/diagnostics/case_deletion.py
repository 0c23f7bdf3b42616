"""Case deletion by level of a grouping factor: sub-designs and one-step estimates.

:func:`subset_design` keeps some rows of a :class:`~bayesglmm.model.design.Design` with the
same fixed-effect columns (a refit must estimate the same parameters, even where a formula
such as ``scale(x)`` would give other columns on other data) and drops the levels of the
random-effect terms that no kept row uses.

A :class:`Criterion` is the objective a likelihood fit minimized, as a function of its
optimization parameters ``x`` on any subset of the rows, built by the package's own
deviance code:

- ``"joint"`` (Laplace, adaptive quadrature, and as the surrogate of the Monte Carlo
  maximum-likelihood methods): ``-2 log L`` over ``x = (theta, beta[, log dispersion])``
  (:class:`~bayesglmm.frequentist.devfun.LaplaceDeviance`,
  :class:`~bayesglmm.frequentist.agq.AGQDeviance`), with its exact (Laplace) or
  central-difference (quadrature) gradient;
- ``"profiled"`` (``lmm``; ``pql``'s working linear mixed model at the fitted linear
  predictor): the REML or ML criterion over the relative covariance parameters ``theta``
  with ``beta`` and ``sigma^2`` profiled out (:class:`~bayesglmm.frequentist.lmm.LMMProblem`).

:func:`one_step` takes one Newton step from the full-data estimate on the case-deleted
criterion ``f_{-j}``,

.. math::

    x_{-j} \\approx \\hat x - A^{-1}\\,\\big(g_{-j}(\\hat x) - g(\\hat x)\\big),

with ``g`` the full-data gradient (zero at an exact optimum; subtracting it removes the
optimizer's own tolerance from the step) and ``A`` the full-data Hessian ``H`` (the
classical one-step) or the deleted-data Hessian ``H_{-j}`` (a full Newton step on
``f_{-j}``). Where the criterion is a sum over the levels of the factor (one grouping
factor, or the outer factor of nested ones, for the joint criterion) ``g_{-j} - g = -g_j``
and ``H_{-j} = H - H_j`` come from the level's own rows (each level is evaluated once);
otherwise (crossed factors, a profiled criterion) ``g_{-j}`` and ``H_{-j}`` are evaluated
on the data without the level. Hessians are forward differences of the gradient with the
step rule of :func:`bayesglmm.frequentist.optimize.fd_hessian`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..results.result import DISPERSION_ROWS

#: a parameter within this of its lower bound is held there (as the fit's optimizer does)
BOUND_TOL = 1e-7
#: relative step of the central differences of a profiled criterion without an analytic
#: gradient
PROFILED_FD_STEP = 1e-6


# ------------------------------------------------------------------------------------------
# sub-designs


def subset_design(design, keep: np.ndarray):
    """``design`` on the rows where ``keep`` is True, unused random-effect levels dropped."""
    keep = np.asarray(keep, dtype=bool)
    terms = []
    for t in design.random:
        idx = t.index[keep]
        used = np.unique(idx)
        remap = np.full(t.n_levels, -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        terms.append(
            dataclasses.replace(
                t,
                levels=[t.levels[i] for i in used],
                index=remap[idx],
                X=np.asarray(t.X)[keep],
            )
        )
    return dataclasses.replace(
        design,
        y=design.y[keep],
        trials=None if design.trials is None else design.trials[keep],
        offset=design.offset[keep],
        X=design.X[keep],
        random=terms,
        row_labels=design.row_labels[keep],
    )


def level_index(design, group: str) -> tuple[np.ndarray, list[str]]:
    """The level of every row in grouping factor ``group``, and the level names."""
    term = next(t for t in design.random if t.group == group)
    return term.index, list(term.levels)


def decomposes(design, group: str) -> bool:
    """Does ``-2 log L`` split into a sum over the levels of ``group``?

    True when no level of another grouping factor has rows in two levels of ``group``
    (one factor, or ``group`` the outer one of nested factors): the random effects of
    different levels are then independent a priori and share no rows.
    """
    index, _ = level_index(design, group)
    for t in design.random:
        if t.group == group:
            continue
        pairs = np.unique(np.column_stack([t.index, index]), axis=0)
        if np.unique(pairs[:, 0]).size != pairs.shape[0]:
            return False
    return True


# ------------------------------------------------------------------------------------------
# criteria


@dataclass
class Criterion:
    """The objective of a fit on any subset of its rows.

    Attributes
    ----------
    kind : {"joint", "profiled"}
    names : list of str
        Names of the entries of ``x``.
    x_hat : ndarray
        The full-data estimate.
    lower : ndarray
        Lower bounds of ``x`` (``-inf`` where none).
    variance : ndarray of bool
        Entries of ``x`` that are variance or dispersion parameters.
    build : callable
        ``build(keep) -> objective`` with ``value_and_grad(x)``, on the rows ``keep``.
    report : callable
        ``report(objective, x) -> dict``: the reported parameters (fixed effects,
        ``sd(<component>)``, ``cor(<group>|a,b)``, dispersion) at ``x``.
    decomposes : bool
        The criterion is a sum over the levels of the grouping factor.
    description : str
    """

    kind: str
    names: list[str]
    x_hat: np.ndarray
    lower: np.ndarray
    variance: np.ndarray
    build: Callable
    report: Callable
    decomposes: bool
    description: str


def _covariance_rows(cov, theta, scale: float = 1.0) -> dict:
    out = {f"sd({k})": float(np.sqrt(max(v, 0.0) * scale)) for k, v in cov.variances(theta).items()}
    out.update({f"cor({k})": float(v) for k, v in cov.correlations(theta).items()})
    return out


def joint_criterion(
    fit, design, group: str, n_quad: int, options: dict, description: str
) -> Criterion:
    """``-2 log L`` (Laplace for ``n_quad == 1``, else adaptive quadrature) of ``design``,
    for deleting the levels of ``group``."""
    from ..frequentist.agq import AGQDeviance, quadrature_structure
    from ..frequentist.crossed_solver import make_problem
    from ..frequentist.devfun import LaplaceDeviance

    fixed = [str(n) for n in design.fixed_names]
    disp_name = str(fit.dispersion.index[0]) if len(fit.dispersion) else None
    curvature = options.get("curvature") or "fisher"
    solver = options.get("solver") or "auto"
    seed = options.get("random_seed")

    def build(keep):
        sub = subset_design(design, keep)
        problem, _, _ = make_problem(sub, curvature=curvature, solver=solver, random_seed=seed)
        # a level's own rows may leave a column of X at zero (a step scale of 1/0 is unused)
        with np.errstate(divide="ignore"):
            if n_quad > 1:
                return AGQDeviance(problem, n_quad, quadrature_structure(sub))
            return LaplaceDeviance(problem)

    def report(devfun, x):
        theta, beta, disp = devfun.split(x)
        out = dict(zip(fixed, (float(b) for b in beta), strict=True))
        out.update(_covariance_rows(devfun.cov, theta))
        if disp_name is not None:
            out[disp_name] = float(disp)
        return out

    full = build(np.ones(design.n, dtype=bool))
    theta = np.asarray(fit.info["theta"], dtype=float)
    beta = fit.fixed_effects.reindex(fixed).to_numpy(float)
    disp = float(fit.dispersion.iloc[0]) if full.has_disp else None
    x_hat = full.join(theta, beta, disp)
    lower = np.array([-np.inf if b[0] is None else b[0] for b in full.bounds()], dtype=float)
    variance = np.ones(full.n_x, dtype=bool)
    variance[full.n_theta : full.n_theta + full.p] = False
    structure = design.grouping["kind"]
    return Criterion(
        kind="joint",
        names=list(full.names),
        x_hat=x_hat,
        lower=lower,
        variance=variance,
        build=build,
        report=report,
        # quadrature over nested factors is not evaluated level by level here
        decomposes=decomposes(design, group) and (n_quad == 1 or structure == "single"),
        description=description,
    )


class ProfiledObjective:
    """``theta -> `` the REML/ML criterion of one weighted LMM, with its gradient."""

    def __init__(self, problem) -> None:
        self.problem = problem

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.asarray(theta, dtype=float)
        if self.problem.has_gradient:
            return self.problem.deviance_and_gradient(theta)
        f = self.problem.deviance(theta)
        g = np.zeros(theta.size)
        for j in range(theta.size):
            h = PROFILED_FD_STEP * max(1.0, abs(theta[j]))
            up, down = theta.copy(), theta.copy()
            up[j] += h
            down[j] = (
                max(theta[j] - h, 0.0) if self.problem.cf.is_diagonal_entry[j] else down[j] - h
            )
            g[j] = (self.problem.deviance(up) - self.problem.deviance(down)) / (up[j] - down[j])
        return f, g


def profiled_criterion(
    fit,
    design,
    z: np.ndarray,
    w: np.ndarray,
    reml: bool,
    sigma: float | None,
    dispersion: str | None,
    description: str,
) -> Criterion:
    """The profiled criterion of the weighted LMM ``z = X beta + Z b + e`` on ``design``.

    ``dispersion`` names the reported residual parameter: ``"sigma"`` (its sd, ``lmm``),
    ``"dispersion"`` (its variance, PQL with the dispersion estimated) or None.
    """
    from ..frequentist.covariance import CovarianceFactor
    from ..frequentist.lmm import LMMProblem, lmm_data

    fixed = [str(n) for n in design.fixed_names]

    def build(keep):
        sub = subset_design(design, keep)
        data = lmm_data(z[keep], sub.X, sub.Z, w[keep], sub.random)
        return ProfiledObjective(LMMProblem(data, CovarianceFactor(sub), reml, sigma))

    def report(objective, theta):
        sol = objective.problem.solve(theta)
        out = dict(zip(fixed, (float(b) for b in sol.beta), strict=True))
        out.update(_covariance_rows(objective.problem.cf, theta, sol.sigma2))
        if dispersion == "sigma":
            out["sigma"] = float(np.sqrt(sol.sigma2))
        elif dispersion == "dispersion":
            out["dispersion"] = float(sol.sigma2)
        return out

    cf = CovarianceFactor(design)
    theta = np.asarray(fit.info["theta"], dtype=float)
    return Criterion(
        kind="profiled",
        names=[f"theta[{n}]" for n in cf.theta_names],
        x_hat=theta,
        lower=cf.lower_bounds().astype(float),
        variance=np.ones(theta.size, dtype=bool),
        build=build,
        report=report,
        decomposes=False,
        description=description,
    )


# ------------------------------------------------------------------------------------------
# the one-step estimates


def hessian_columns(objective, x: np.ndarray, g0: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Forward differences of the gradient in the columns ``cols`` (the step rule of
    :func:`bayesglmm.frequentist.optimize.fd_hessian`), symmetrized on ``cols``."""
    from ..frequentist.optimize import HESS_STEP

    n = x.size
    H = np.zeros((n, n))
    for j in cols:
        h = HESS_STEP * max(0.1, abs(x[j]))
        xs = x.copy()
        xs[j] += h
        _, g = objective.value_and_grad(xs)
        H[:, j] = (np.asarray(g, dtype=float) - g0) / h
    block = H[np.ix_(cols, cols)]
    H[np.ix_(cols, cols)] = 0.5 * (block + block.T)
    return H


@dataclass
class OneStep:
    """One-step estimates for every level.

    Attributes
    ----------
    steps : ndarray (n_levels, n_x)
        ``x_{-j} - x_hat`` on the optimization scale.
    values : list of dict
        The reported parameters at ``x_{-j}`` minus those at ``x_hat``, per level.
    notes : list of str
        What was done differently for a level ("" when nothing).
    path : str
        ``"level contributions"`` or ``"deleted data"``.
    """

    steps: np.ndarray
    values: list
    notes: list
    path: str


def _solve(H: np.ndarray, r: np.ndarray, free: np.ndarray) -> np.ndarray | None:
    """``H^{-1} r`` over the free entries (zero elsewhere); None if that block is not
    positive definite."""
    out = np.zeros_like(r)
    idx = np.flatnonzero(free)
    if idx.size == 0:
        return out
    try:
        L = np.linalg.cholesky(H[np.ix_(idx, idx)])
    except np.linalg.LinAlgError:
        return None
    out[idx] = np.linalg.solve(L.T, np.linalg.solve(L, r[idx]))
    return out


def one_step(
    crit: Criterion,
    level_of_row: np.ndarray,
    n_levels: int,
    hessian: str = "deleted",
    hold_variance: bool = False,
    skip: dict | None = None,
) -> OneStep:
    """One Newton step on each case-deleted criterion (module docstring).

    Parameters
    ----------
    crit : Criterion
    level_of_row : ndarray of int
        The level of each row in the grouping factor.
    n_levels : int
    hessian : {"deleted", "full"}
        ``H_{-j}`` (a full Newton step on ``f_{-j}``) or the full-data ``H`` for every
        level (the classical one-step; one gradient per level).
    hold_variance : bool
        Keep the variance and dispersion parameters at their full-data estimates: only
        the fixed effects move (for a profiled criterion, ``beta`` is then the exact
        generalized least-squares estimate on the deleted data).
    skip : dict, optional
        Levels (by number) to leave without a one-step, with the reason as their note.
    """
    skip = dict(skip or {})
    x0 = np.asarray(crit.x_hat, dtype=float)
    free = x0 - crit.lower > BOUND_TOL
    if hold_variance:
        free &= ~crit.variance
    cols = np.flatnonzero(free)
    # parameters at a bound: their deleted-data curvature says whether they would leave it
    at_bound = np.flatnonzero(
        np.isfinite(crit.lower) & (x0 - crit.lower <= BOUND_TOL) & ~(hold_variance & crit.variance)
    )
    hcols = np.union1d(cols, at_bound) if hessian == "deleted" else cols
    all_rows = np.ones(level_of_row.size, dtype=bool)
    full = crit.build(all_rows)
    base = crit.report(full, x0)
    steps = np.zeros((n_levels, x0.size))
    values, notes = [], []
    H_full = None
    if crit.decomposes:
        grads, hessians = [], []
        for j in range(n_levels):
            obj = crit.build(level_of_row == j)
            _, g = obj.value_and_grad(x0)
            g = np.asarray(g, dtype=float)
            grads.append(g)
            if hessian == "deleted":
                hessians.append(hessian_columns(obj, x0, g, hcols))
        g_full = np.sum(grads, axis=0)
        if hessian == "deleted":
            H_full = np.sum(hessians, axis=0)
        path = "level contributions"
    else:
        _, g_full = full.value_and_grad(x0)
        g_full = np.asarray(g_full, dtype=float)
        path = "deleted data"

    def full_hessian():
        nonlocal H_full
        if H_full is None:
            H_full = hessian_columns(full, x0, g_full, cols)
        return H_full

    for j in range(n_levels):
        note = ""
        if j in skip:
            steps[j] = np.nan
            values.append(dict.fromkeys(base, np.nan))
            notes.append(skip[j])
            continue
        if crit.decomposes:
            obj = full
            r = -grads[j]  # g_{-j} - g
            H = H_full - hessians[j] if hessian == "deleted" else full_hessian()
        else:
            obj = crit.build(level_of_row != j)
            _, g = obj.value_and_grad(x0)
            g = np.asarray(g, dtype=float)
            r = g - g_full
            H = hessian_columns(obj, x0, g, hcols) if hessian == "deleted" else full_hessian()
        if not np.all(np.isfinite(r[cols])):
            steps[j] = np.nan
            values.append(dict.fromkeys(base, np.nan))
            notes.append("the criterion has no finite gradient without this level")
            continue
        delta = _solve(H, -r, free)
        if delta is None and hessian == "deleted":
            delta = _solve(full_hessian(), -r, free)
            note = "the deleted-data Hessian is not positive definite: full-data Hessian used"
        if delta is None:
            steps[j] = np.nan
            values.append(dict.fromkeys(base, np.nan))
            notes.append("the Hessian is not positive definite: no one-step estimate")
            continue
        if hessian == "deleted":
            leave = [crit.names[k] for k in at_bound if H[k, k] < 0]
            if leave:
                note = "; ".join(
                    [note] * bool(note)
                    + [
                        f"{', '.join(leave)} at the bound in the fit may leave it without "
                        "this level (negative curvature there); the one-step holds it"
                    ]
                )
        x1 = np.maximum(x0 + delta, crit.lower)
        steps[j] = x1 - x0
        rep = crit.report(obj, x1)
        if hold_variance:
            rep.update({k: v for k, v in base.items() if k not in _fixed_keys(crit, base)})
        values.append({k: rep[k] - base[k] for k in base})
        notes.append(note)
    return OneStep(steps=steps, values=values, notes=notes, path=path)


def _fixed_keys(crit: Criterion, base: dict) -> set:
    return {k for k in base if not (k.startswith(("sd(", "cor(")) or k in DISPERSION_ROWS)}
