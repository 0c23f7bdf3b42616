"""Minimize a deviance function over ``(theta, beta[, log dispersion])`` (``optimizeGlmer``).

Bounded quasi-Newton (L-BFGS-B with the exact gradient) from a start, then Newton steps
with a finite-difference Hessian of the gradient. The same Hessian gives the Wald
covariance, as lme4's ``vcov`` does (``use.hessian``). Diagnostics that a user can act on
are kept: the optimizer's message, iterations and evaluations, the gradient at the optimum,
the Newton step still left (lme4's scaled gradient), parameters at their bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.optimize

#: a parameter within this of its lower bound, with the gradient pushing outwards, is "at" it
BOUND_TOL = 1e-7
#: converged when the Newton step left (parameter units) is below this; lme4 warns at 2e-3
#: on its scaled gradient, we aim 20x tighter so estimates agree to 1e-4
STEP_TOL = 1e-4
#: relative step of the forward differences of the gradient for the Hessian
HESS_STEP = 1e-4
#: Newton polishing steps after the quasi-Newton stage
POLISH_STEPS = 6
#: L-BFGS-B stops at this relative decrease of the deviance (or this projected gradient),
#: near enough for the Newton steps with the finite-difference Hessian to finish the job:
#: at a relative decrease of 1e-9 the distance left is about sqrt(2e-9 |f| / curvature)
LBFGS_FTOL = 1e-9
LBFGS_GTOL = 1e-5
#: Newton polishing stops at a relative step below this (the noise floor of the gradient,
#: set by the PIRLS tolerance, is about 1e-8)
POLISH_TOL = 1e-7
#: probe step off a zero bound, and how many restarts from such probes are allowed
ESCAPE_STEP = 1e-3
ESCAPES = 3
#: the Hessian is recomputed after polishing moved the parameters further than this
REHESS_MOVE = 1e-3


@dataclass
class Optimum:
    """Where a deviance function was minimized, and how well.

    Attributes
    ----------
    x : ndarray
    fun : float
    grad : ndarray
    hessian : ndarray or None
        Finite-difference Hessian over all of ``x`` (rows/columns of parameters at a bound
        are those of the bound-constrained problem and should not be inverted).
    free : ndarray of bool
        False for parameters at their lower bound.
    newton_step : ndarray
        ``H^{-1} g`` over the free parameters (zero elsewhere): the distance still left.
    """

    x: np.ndarray
    fun: float
    grad: np.ndarray
    hessian: np.ndarray | None
    free: np.ndarray
    newton_step: np.ndarray
    message: str
    success: bool
    converged: bool
    n_iter: int
    n_evals: int
    info: dict = field(default_factory=dict)


def fd_hessian(devfun, x: np.ndarray, g0: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Forward differences of the gradient (steps away from the lower bound), symmetrized."""
    n = x.size
    H = np.zeros((n, n))
    for j in range(n):
        h = HESS_STEP * max(0.1, abs(x[j]))
        xs = x.copy()
        xs[j] += h
        _, g = devfun.value_and_grad(xs)
        H[:, j] = (g - g0) / h
    return 0.5 * (H + H.T)


def _free_mask(x, g, lower) -> np.ndarray:
    return ~((x - lower <= BOUND_TOL) & (g > 0))


def minimize_deviance(
    devfun,
    x0: np.ndarray,
    maxiter: int = 1000,
    hessian: bool = True,
    polish: bool = True,
) -> Optimum:
    """Minimize ``devfun`` from ``x0`` within its bounds.

    Parameters
    ----------
    devfun : LaplaceDeviance or a subclass
        Needs ``value_and_grad(x)`` and ``bounds()``.
    x0 : ndarray
    maxiter : int
        Iterations of L-BFGS-B.
    hessian : bool
        Compute the finite-difference Hessian (for Wald standard errors and polishing).
    polish : bool
        Newton steps with that Hessian after L-BFGS-B.
    """
    bounds = devfun.bounds()
    lower = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
    x0 = np.maximum(np.asarray(x0, dtype=float), lower)

    def run(start):
        return scipy.optimize.minimize(
            devfun.value_and_grad,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": maxiter, "ftol": LBFGS_FTOL, "gtol": LBFGS_GTOL, "maxcor": 20},
        )

    res = run(x0)
    n_iter = int(res.nit)
    x = np.maximum(res.x, lower)
    f, g = devfun.value_and_grad(x)
    # The deviance is even in each diagonal entry of T at zero, so its gradient there is
    # exactly zero: a quasi-Newton method that lands on the bound stays, even where the
    # deviance decreases away from it (a saddle). Probe each such entry and restart.
    escapes = 0
    for _ in range(ESCAPES):
        stuck = np.flatnonzero(np.isfinite(lower) & (x - lower <= BOUND_TOL))
        moved = False
        for j in stuck:
            xs = x.copy()
            xs[j] = lower[j] + ESCAPE_STEP
            fs, gs = devfun.value_and_grad(xs)
            if np.isfinite(fs) and (fs < f or gs[j] < 0):
                res = run(xs)
                n_iter += int(res.nit)
                x = np.maximum(res.x, lower)
                f, g = devfun.value_and_grad(x)
                escapes += 1
                moved = True
                break
        if not moved:
            break
    H = None
    free = _free_mask(x, g, lower)
    step = np.zeros_like(x)
    n_polish = 0
    if hessian and np.isfinite(f):
        H = fd_hessian(devfun, x, g, lower)
        x_hess = x.copy()
        for _ in range(POLISH_STEPS if polish else 0):
            free = _free_mask(x, g, lower)
            step = _newton_step(H, g, free)
            if step is None:
                break
            size = np.max(np.abs(step) / np.maximum(np.abs(x), 0.1), initial=0.0)
            if size < POLISH_TOL:
                break
            x_new = np.maximum(x - step, lower)
            f_new, g_new = devfun.value_and_grad(x_new)
            if not np.isfinite(f_new) or f_new > f + 1e-12 * abs(f):
                break
            x, f, g = x_new, f_new, g_new
            n_polish += 1
            if size < 100 * POLISH_TOL:  # quadratic convergence: the next step is negligible
                break
        if np.max(np.abs(x - x_hess) / np.maximum(np.abs(x), 0.1)) > REHESS_MOVE:
            H = fd_hessian(devfun, x, g, lower)
        free = _free_mask(x, g, lower)
        s = _newton_step(H, g, free)
        step = np.full_like(x, np.nan) if s is None else s
    left = np.max(np.abs(step[free]), initial=0.0) if H is not None else np.nan
    converged = bool(
        np.isfinite(f)
        and (res.success or (H is not None and left < STEP_TOL))
        and (H is None or left < STEP_TOL)
    )
    return Optimum(
        x=x,
        fun=float(f),
        grad=g,
        hessian=H,
        free=free,
        newton_step=step,
        message=str(res.message),
        success=bool(res.success),
        converged=converged,
        n_iter=n_iter,
        n_evals=int(devfun.n_evals),
        info={"polish_steps": n_polish, "max_newton_step": float(left), "escapes": escapes},
    )


def _newton_step(H: np.ndarray, g: np.ndarray, free: np.ndarray) -> np.ndarray | None:
    """``H^{-1} g`` over the free parameters; None if that Hessian is not positive definite."""
    step = np.zeros_like(g)
    idx = np.flatnonzero(free)
    if idx.size == 0:
        return step
    Hf = H[np.ix_(idx, idx)]
    try:
        L = np.linalg.cholesky(Hf)
    except np.linalg.LinAlgError:
        return None
    step[idx] = np.linalg.solve(L.T, np.linalg.solve(L, g[idx]))
    return step
