"""``method="ee"`` and ``method="ee2"``: Jiang's estimating equations for GLMMs.

First step (Jiang 1998, method of simulated moments): with ``A`` summing the per-level
pair statistics of each factor (:mod:`.statistics`) and a known diagonal weighting ``B``,
solve

.. math::  B A \\{S - u(\\theta)\\} = 0, \\qquad \\theta = (\\beta, \\sigma_1, ..,
   \\sigma_R), \\ \\sigma_r \\ge 0

(``p + R`` equations in ``p + R`` unknowns; least squares of the relative residuals
under the bounds when no root has ``sigma >= 0``). A binomial factor none of whose levels
has two Bernoulli trials (pair statistics all 0) is refused: its variance is not identified.
Second step (Jiang & Zhang 2001): with ``U = du/dtheta'`` and
``V = Var_theta(S)`` over the per-level statistics at the first-step estimate, solve
``U'V^{-1}\\{S - u(theta)\\} = 0``. Standard errors for either are the sandwich
``(BU)^{-1} B V B' (BU)^{-T}`` at the estimate (``(U'V^{-1}U)^{-1}`` for the second step),
``V`` exact given the draws of ``b`` (:mod:`.variance`: conditional cumulants, no simulated
responses); variances get theirs by the delta method.
"""

from __future__ import annotations

import time as _time

import numpy as np
import pandas as pd
import scipy.optimize

from ..._warn import warn
from ...errors import MethodError
from ...options import option_defaults
from ...results.assemble import Estimates
from ...results.details import Covariance, QuasiDetails
from ...results.result import wald_table
from ..gee.engine import GEEData, glm_start
from .gauss_seidel import gauss_seidel
from .statistics import MomentProblem, monte_carlo_draws, quadrature_draws
from .variance import statistics_variance

#: the reports' titles
TITLES = {
    "ee": "Generalized linear mixed model fit by the method of simulated moments (Jiang 1998)",
    "ee2": "Generalized linear mixed model fit by two-step estimating equations (Jiang & "
    "Zhang 2001)",
}
#: a solution of the equations has relative residual below this (else: no root)
ROOT_TOL = 1e-6
#: the second step's root must lie within this many first-step standard errors (in small
#: crossed samples U'V^{-1} can have far roots: 10 x 10 tables gave variances of 1000+)
STEP2_RADIUS = 3.0
#: B* is evaluated, and the second step started, with every sd at least this (see
#: :func:`second_step`)
STEP2_SD_FLOOR = 0.1
#: a standard deviation below this is at the boundary 0 (a singular fit)
SD_ZERO = 1e-4
#: a standard deviation the solver leaves below this is tried at exactly 0
SD_SNAP = 0.05
#: ... and kept at 0 when the squared residual grows by less than this (relative): the
#: equations change by O(sigma^2) there, so the solver's stopping point is not a better fit
SNAP_RTOL = 1e-3
#: starting standard deviation of every random effect
SD_START = 1.0


class EEConvergenceWarning(UserWarning):
    """The estimating equations were not solved (no root, or the solver stopped early)."""


def moment_problem(model, method: str) -> MomentProblem:
    d = model.design  # binomial or Poisson, random intercepts: the method's record
    trials = d.trials if d.trials is not None else np.ones(d.n)
    if d.family.has_trials:
        for t in d.random:
            per_level = np.bincount(t.index, trials, t.n_levels)
            if np.all(per_level <= 1):
                raise MethodError(
                    f"method {method!r} cannot estimate var({t.group}): no level of {t.group} "
                    "has two Bernoulli trials, so every pair statistic is 0 and the moment "
                    "equations do not identify the variance; use method='laplace' or 'agq'"
                )
    return MomentProblem(
        y=d.y,
        trials=trials,
        X=d.X,
        offset=d.offset,
        family=d.family,
        indices=[t.index for t in d.random],
        n_levels=[t.n_levels for t in d.random],
        names=[t.group for t in d.random],
    )


def _draws(prob, expectation, n_sim, n_quad, rng):
    if expectation == "auto":
        expectation = "quadrature" if prob.R == 1 else "simulation"
    if expectation == "quadrature":
        if prob.R != 1:
            raise MethodError(
                "expectation='quadrature' integrates one random-effect factor; this model has "
                f"{prob.R}: use expectation='simulation'"
            )
        return quadrature_draws(prob.n_levels, n_quad), expectation
    return monte_carlo_draws(prob.n_levels, n_sim, rng), expectation


def solve_equations(prob, B, S, draws, start, tol=None, max_iter=None):
    """Solve ``B (S - u(theta)) = 0`` under ``sigma >= 0`` (least squares); ``tol`` and
    ``max_iter`` default to the method record's (``option_defaults("ee")``).

    Near ``sigma = 0`` the equations depend on ``sigma^2`` only, so the solver creeps
    toward the boundary; a ``sigma`` left below :data:`SD_SNAP` is tried at exactly 0 (the
    others re-solved) and kept there when the squared residual grows by less than
    :data:`SNAP_RTOL` (relative).
    """
    defaults = option_defaults("ee")
    tol = defaults["tol"] if tol is None else tol
    max_iter = defaults["max_iter"] if max_iter is None else max_iter
    sol = _least_squares(prob, B, S, draws, start, np.ones(prob.p + prob.R, bool), tol, max_iter)
    small = np.flatnonzero(sol.x[prob.p :] < SD_SNAP) + prob.p
    if small.size:
        free = np.ones(prob.p + prob.R, bool)
        free[small] = False
        x0 = sol.x.copy()
        x0[small] = 0.0
        snapped = _least_squares(prob, B, S, draws, x0, free, tol, max_iter)
        if snapped.cost <= sol.cost * (1 + SNAP_RTOL) + 1e-300:
            snapped.nfev += sol.nfev
            return snapped
    return sol


def _least_squares(prob, B, S, draws, start, free, tol, max_iter):
    """``least_squares`` over the ``free`` coordinates of ``theta`` (others fixed)."""
    p = prob.p
    cache = {}
    full = np.asarray(start, float).copy()
    B = _relative(S, B)

    def both(z):
        key = z.tobytes()
        if key not in cache:
            cache.clear()
            theta = full.copy()
            theta[free] = z
            cache[key] = prob.expectation(theta, draws)
        return cache[key]

    def fun(z):
        u, _ = both(z)
        return B @ (S - u)

    def jac(z):
        _, U = both(z)
        return -B @ U[:, free]

    lower = np.r_[np.full(p, -np.inf), np.zeros(prob.R)][free]
    z0 = np.clip(full[free], lower, np.inf)
    sol = scipy.optimize.least_squares(
        fun,
        z0,
        jac=jac,
        bounds=(lower, np.inf),
        x_scale="jac",
        xtol=tol,
        ftol=tol,
        gtol=tol,
        max_nfev=max_iter,
        method="trf",
    )
    full[free] = sol.x
    sol.x = full
    return sol


def _relative(S, B):
    """Rows of ``B`` divided by ``|B||S| + 1``: the root is unchanged, but when there is
    none the least-squares compromise weighs the equations by their relative residuals
    (unscaled, the pair statistics of counts, O(T^2), swamp ``X'y`` and the fixed effects
    run off to make them fit)."""
    return B / (np.abs(B) @ np.abs(S) + 1.0)[:, None]


def relative_residual(prob, B, S, draws, theta) -> float:
    """Largest ``|B(S - u(theta))|`` relative to ``|B||S| + 1``."""
    u, _ = prob.expectation(theta, draws)
    return float(np.max(np.abs(B @ (S - u)) / (np.abs(B) @ np.abs(S) + 1.0)))


def second_step_accepted(prob, B2, S, draws, theta2, theta1, cov1) -> bool:
    """The second step is a local refinement: keep its root only if it solves the
    weighted equations and lies within :data:`STEP2_RADIUS` first-step standard errors.
    An sd the first step put at the boundary 0 has no first-step root to refine and a
    standard error of 0 there (du/dsd = 0): it is held to the residual only."""
    if relative_residual(prob, B2, S, draws, theta2) >= ROOT_TOL:
        return False
    se1 = np.sqrt(np.clip(np.diag(cov1), 0, None))
    free = np.r_[np.ones(prob.p, bool), theta1[prob.p :] > SD_ZERO]
    return bool(np.all(np.abs(theta2 - theta1)[free] <= STEP2_RADIUS * se1[free] + 1e-12))


def second_step(prob, S, draws, theta1, B1, U1, V1, tol, max_iter):
    """Jiang & Zhang's second step from the first-step estimate ``theta1``.

    ``B* = U'V^{-1}`` at ``theta1``, except that an sd below :data:`STEP2_SD_FLOOR` is
    raised to it there and as the solver's start (at sd = 0, du/dsd = 0: the sd row of
    ``B*`` would be rounding noise and the solver's gradient in sd zero). Returns
    ``(solution, B*, accepted, U, V)``, ``U`` and ``V`` at the second-step root.
    """
    p = prob.p
    at = theta1.copy()
    at[p:] = np.maximum(at[p:], STEP2_SD_FLOOR)
    if np.array_equal(at, theta1):
        U, V = U1, V1
    else:
        U, V = prob.expectation(at, draws)[1], statistics_variance(prob, at, draws)
    B2 = _optimal_weights(U, V)
    sol2 = solve_equations(prob, B2, S, draws, at, tol, max_iter)
    U2 = prob.expectation(sol2.x, draws)[1]
    V2 = statistics_variance(prob, sol2.x, draws)
    found = second_step_accepted(prob, B2, S, draws, sol2.x, theta1, sandwich(B1, U1, V1))
    return sol2, B2, found, U2, V2


def sandwich(B, U, V):
    """``(BU)^{-1} B V B' (BU)^{-T}``."""
    BU_inv = np.linalg.pinv(B @ U)
    return BU_inv @ (B @ V @ B.T) @ BU_inv.T


def _optimal_weights(U, V):
    """``B* = U'V^{-1}`` over the statistics with positive variance (a level with one
    observation has a pair statistic that is always 0)."""
    keep = np.diag(V) > 1e-12 * max(np.max(np.diag(V)), 1.0)
    Vk = V[np.ix_(keep, keep)]
    Vk = Vk + np.eye(Vk.shape[0]) * 1e-10 * np.trace(Vk) / Vk.shape[0]
    B = np.zeros((U.shape[1], U.shape[0]))
    B[:, keep] = np.linalg.solve(Vk, U[keep]).T
    # scale each equation to unit size: the root is unchanged, the solver better posed
    return B / np.abs(B).max(axis=1, keepdims=True)


def fit_ee(
    model,
    *,
    n_sim: int,
    expectation: str,
    n_quad: int,
    weights,
    random_seed: int | None,
    max_iter: int,
    tol: float,
    start,
) -> Estimates:
    """First-step estimating equations of Jiang (1998) (``method="ee"``).

    Parameters
    ----------
    model : GLMM
        Binomial or Poisson; random intercepts, nested or crossed.
    n_sim : int
        Common-random-number draws of the random effects for ``u(theta) = E S`` and, with
        several factors, for the part ``Var_b E(S | b)`` of ``V = Var(S)`` (default 1000;
        with a few dozen, the second step's weights and every standard error are noisy).
    expectation : {"auto", "simulation", "quadrature"}
        ``"auto"``: Gauss-Hermite quadrature (``n_quad`` nodes) for one factor, else
        simulation.
    weights : array-like, optional
        Positive weights of the ``p + R`` equations (the known ``B``; default identity).
    random_seed, max_iter, tol, start
        ``start``: vector ``(beta, sd_1..sd_R)``.

    Returns
    -------
    Estimates
        Kind ``"quasi_likelihood"``; no log-likelihood; ``vcov`` the sandwich covariance of
        ``(beta, sd)``. The details hold the standard deviations and the equations'
        residual.
    """
    return _fit(model, "ee", **_options(locals()))


def fit_ee2(
    model,
    *,
    n_sim: int,
    expectation: str,
    n_quad: int,
    weights,
    random_seed: int | None,
    max_iter: int,
    tol: float,
    start,
) -> Estimates:
    """Two-step estimator of Jiang & Zhang (2001) (``method="ee2"``): the first step
    (:func:`fit_ee`), then the optimal weighting ``B* = U'V^{-1}`` of the per-level
    statistics at the first-step estimate. Options as :func:`fit_ee`."""
    return _fit(model, "ee2", **_options(locals()))


def _options(given: dict) -> dict:
    return {k: v for k, v in given.items() if k != "model"}


def _monte_carlo_error(prob, theta, draws, B, U, expectation) -> np.ndarray:
    """Monte Carlo standard error of ``(beta, sd)`` from the common random numbers: the
    delta method on ``B(S - u) = 0`` with ``Var(u_hat) = Var_s(E[S | b_s]) / n_sim``;
    zero for quadrature."""
    if expectation != "simulation":
        return np.zeros(prob.p + prob.R)
    _, _, each = prob.expectation(theta, draws, per_draw=True)
    var_u = np.cov(each, rowvar=False) / draws.n
    G = np.linalg.pinv(B @ U) @ B
    return np.sqrt(np.clip(np.diag(G @ var_u @ G.T), 0, None))


def _start_beta(prob) -> np.ndarray:
    """Fixed effects at the joint maximum with every sd at ``SD_START`` (Gauss-Seidel)
    for canonical links, else the GLM fit."""
    glm = glm_start(GEEData(prob.y, prob.trials, prob.X, prob.offset, prob.family))
    if not prob.family.canonical or prob.family.has_dispersion:
        return glm
    fit = gauss_seidel(
        prob.y,
        prob.trials,
        prob.X,
        prob.offset,
        prob.indices,
        [SD_START] * prob.R,
        family=prob.family,
        beta=glm,
        tol=1e-8,
        max_sweeps=500,
    )
    return fit.beta if fit.converged and np.all(np.isfinite(fit.beta)) else glm


def _fit(
    model,
    method,
    n_sim: int,
    expectation: str,
    n_quad: int,
    weights,
    random_seed: int | None,
    max_iter: int,
    tol: float,
    start,
) -> Estimates:
    prob = moment_problem(model, method)
    d = model.design
    k = prob.p + prob.R
    if weights is not None and len(weights) != k:
        raise MethodError(
            f"weights must have {k} values (p + number of factors), got {len(weights)}"
        )
    if start is not None and np.size(start) != k:
        raise MethodError(f"start must have {k} values (beta, then one sd per factor)")
    t0 = _time.perf_counter()
    seeds = np.random.SeedSequence(random_seed).spawn(2)
    draws, expectation = _draws(prob, expectation, n_sim, n_quad, np.random.default_rng(seeds[0]))
    S = prob.statistics(prob.y)
    A = prob.aggregate()
    B1 = (np.diag(weights) if weights is not None else np.eye(k)) @ A
    if start is None:
        start = np.r_[_start_beta(prob), np.full(prob.R, SD_START)]
    start = np.asarray(start, float)
    sol = solve_equations(prob, B1, S, draws, start, tol, max_iter)
    steps = [{"step": 1, "nfev": int(sol.nfev), "status": int(sol.status), "cost": float(sol.cost)}]
    theta, B = sol.x, B1
    fallback: list[str] = []
    _, U = prob.expectation(theta, draws)
    V = statistics_variance(prob, theta, draws)
    if method == "ee2":
        sol2, B2, found, U2, V2 = second_step(prob, S, draws, theta, B, U, V, tol, max_iter)
        steps[0]["theta"] = theta.tolist()
        steps.append(
            {
                "step": 2,
                "nfev": int(sol2.nfev),
                "status": int(sol2.status),
                "cost": float(sol2.cost),
                "root_found": bool(found),
                "theta": sol2.x.tolist(),
            }
        )
        if found:
            theta, B, sol, U, V = sol2.x, B2, sol2, U2, V2
        else:  # small samples: U'V^{-1} may admit no root; keep the first step
            msg = (
                "ee2: the optimally weighted equations have no root within "
                f"{STEP2_RADIUS:g} standard errors of the first step (max relative residual "
                f"{relative_residual(prob, B2, S, draws, sol2.x):.3g}); returning the "
                "first-step estimate"
            )
            fallback.append(msg)
            warn(msg, EEConvergenceWarning)
    cov = sandwich(B, U, V)
    mcse = _monte_carlo_error(prob, theta, draws, B, U, expectation)
    t1 = _time.perf_counter()

    p = prob.p
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    sd, sd_se = theta[p:], se[p:]
    table = pd.concat(
        [
            wald_table(d.fixed_names, theta[:p], se[:p]),
            pd.DataFrame(
                {"estimate": sd**2, "std_error": 2 * sd * sd_se},
                index=[f"var({c})" for c in d.component_names],
            ),
        ]
    )
    table["mcse"] = np.r_[mcse[:p], 2 * sd * mcse[p:]]
    residual = relative_residual(prob, B, S, draws, theta)
    converged = bool(sol.success and residual < ROOT_TOL)
    at_zero = [c for c, s in zip(d.component_names, sd, strict=True) if s <= SD_ZERO]
    if at_zero:  # du/dsd = 0 at sd = 0: no standard errors at the boundary
        rows = [f"var({c})" for c in at_zero]
        table.loc[rows, ["std_error", "mcse"]] = np.nan
    messages = list(fallback)
    if not converged:
        msg = (
            f"{method}: the estimating equations have no root with sd >= 0 or the solver "
            f"stopped ({sol.message}); max relative residual {residual:.3g}"
        )
        messages.append(msg)
        warn(msg, EEConvergenceWarning)
    names = list(d.fixed_names) + [f"sd({c})" for c in d.component_names]
    details = QuasiDetails(
        title=TITLES[method],
        extra={
            "expectation": expectation,
            "n_sim": n_sim if expectation == "simulation" else None,
            "n_quad": n_quad if expectation == "quadrature" else None,
            "variance": "exact given the draws (conditional cumulants)",
            "sd": dict(zip(d.component_names, sd.tolist(), strict=True)),
            "sd_std_error": dict(zip(d.component_names, sd_se.tolist(), strict=True)),
            "statistics": S[:p].tolist() + (A @ S)[p:].tolist(),
            "steps": steps,
            "weighting": "optimal U'V^-1 (Jiang & Zhang 2001)"
            if method == "ee2"
            else "identity"
            if weights is None
            else "given",
        },
    )
    return Estimates(
        kind="quasi_likelihood",
        table=table,
        converged=converged,
        n_params=k,
        timing={"fit": t1 - t0},
        vcov=Covariance("robust", names, cov),
        messages=messages,
        iterations=int(sum(s["nfev"] for s in steps)),
        singular=bool(at_zero),
        convergence_details={
            "max_relative_residual": float(residual),
            "singular_components": at_zero,
        },
        details=details,
    )
