"""Minimize a deviance function over ``(theta, beta[, log dispersion])`` (``optimizeGlmer``).

Bounded quasi-Newton (L-BFGS-B with the exact gradient) from a start, then Newton steps
with a finite-difference Hessian of the gradient. The same Hessian gives the Wald
covariance, as lme4's ``vcov`` does (``use.hessian``). Diagnostics that a user can act on
are kept: the optimizer's message, iterations and evaluations, the gradient at the optimum,
the Newton step still left (lme4's scaled gradient), parameters at their bound.

The optimizer works in whitened fixed effects ``gamma = R beta`` (``sqrt(W) X = Q R`` at
the start), so its path is the same whatever the units of the covariates: a covariate with
standard deviation 36 (or 3600) does not make the first quasi-Newton step so uneven that
L-BFGS-B stops at the start (the grouseticks HEIGHT check of
``tests/frequentist/test_corpus.py``). Results are mapped back to ``beta`` exactly
(gradient ``R' g``, Hessian ``N' H N``). A run that ends unconverged is restarted from
where it stopped and then from a second start (for Laplace, lme4's first stage: ``theta``
with ``beta`` profiled out, :class:`~.devfun.ProfiledDeviance`) before anyone warns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
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
#: in the whitening, weights below this fraction of the largest are raised to it (a start
#: with fitted values at 0 or 1 must not make R singular)
WHITEN_W_FLOOR = 1e-8
#: the whitening is skipped when R's diagonal spans more than this ratio (X nearly singular)
WHITEN_RCOND = 1e-12
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
    whiten: bool = True,
    restarts: bool = True,
    alt_start=None,
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
    whiten : bool
        Optimize over ``gamma = R beta`` (see :func:`whitening`), so that the path does not
        depend on the scale of the covariates (or any linear recombination of the columns of
        ``X``); the optimum, gradient, Hessian and Newton step are mapped back to ``beta``.
    restarts : bool
        When the first run ends unconverged (a large gradient or Newton step left), run
        again from where it stopped, then from a second start, and keep the best optimum
        (converged first, then the lowest deviance); only then does the caller warn.
    alt_start : callable, optional
        ``alt_start() -> x``, the second start, computed only when needed (the Laplace
        fit passes lme4's first stage, :class:`~.devfun.ProfiledDeviance`); by default
        ``x0`` with theta halved.
    """
    R = whitening(devfun, x0) if whiten else None
    target = devfun if R is None else Whitened(devfun, R)
    z0 = np.asarray(x0, dtype=float) if R is None else target.to_z(x0)
    opt = _minimize(target, z0, maxiter, hessian, polish)
    tried = 1
    if restarts and not opt.converged:

        def second():
            if alt_start is not None:
                try:
                    x = np.asarray(alt_start(), dtype=float)
                except (ArithmeticError, ValueError, np.linalg.LinAlgError):
                    x = None  # the first stage failed too: fall back to theta halved
                if x is not None and np.all(np.isfinite(x)):
                    return x if R is None else target.to_z(x)
            alt = z0.copy()
            alt[: getattr(devfun, "n_theta", 0)] *= 0.5
            return alt

        starts = [lambda: opt.x] if np.all(np.isfinite(opt.x)) and np.isfinite(opt.fun) else []
        starts.append(second)
        for make in starts:
            other = _minimize(target, make(), maxiter, hessian, polish)
            tried += 1
            if _better(other, opt):
                opt = other
            if opt.converged:
                break
    opt.info["runs"] = tried
    if R is not None:
        opt = target.to_x_optimum(opt)
    opt.info["whitened"] = R is not None
    return opt


def optimizer_info(opt: Optimum) -> dict:
    """How the optimum was reached, for ``result.info["details"]["optimizer"]``."""
    whitened = bool(opt.info.get("whitened", False))
    return {
        "whitened": whitened,
        "runs": int(opt.info.get("runs", 1)),
        "escapes": int(opt.info.get("escapes", 0)),
        "polish_steps": int(opt.info.get("polish_steps", 0)),
        # the convergence test is on the Newton step in the optimizer's coordinates
        "newton_step_units": "theta and gamma = R beta (whitened)" if whitened else "x",
    }


def _better(a: Optimum, b: Optimum) -> bool:
    """Is optimum ``a`` preferable to ``b``: converged first, then the lower deviance."""
    if not np.isfinite(a.fun):
        return False
    if not np.isfinite(b.fun):
        return True
    if a.converged != b.converged:
        return a.converged and a.fun <= b.fun + 1e-6 * max(1.0, abs(b.fun))
    return a.fun < b.fun


def whitening(devfun, x0: np.ndarray) -> np.ndarray | None:
    """Upper-triangular ``R`` with ``sqrt(W) X = Q R`` at the start's linear predictor.

    ``gamma = R beta`` has unit Fisher information in the GLM at the start. For ``X A``
    (rescaled, recentred or recombined columns) the start gives the same ``eta`` and ``W``,
    so ``R`` becomes ``R A`` and ``gamma`` is unchanged: the optimizer takes the same path
    whatever the covariates' units. None when there are no fixed effects or ``R`` is
    numerically singular.
    """
    problem = getattr(devfun, "problem", None)
    p = getattr(devfun, "p", 0)
    if problem is None or p == 0:
        return None
    _, beta, disp = devfun.split(np.asarray(x0, dtype=float))
    with np.errstate(over="ignore", invalid="ignore"):
        eta = problem.X @ beta + problem.offset
        W = np.asarray(problem.response.terms(eta, disp).W, dtype=float)
    W = np.where(np.isfinite(W) & (W > 0), W, 0.0)
    top = W.max(initial=0.0)
    W = np.maximum(W, WHITEN_W_FLOOR * top) if top > 0 else np.ones_like(W)
    R = np.linalg.qr(np.sqrt(W)[:, None] * problem.X, mode="r")
    d = np.diag(R)
    if not np.all(np.isfinite(R)) or np.min(np.abs(d)) <= WHITEN_RCOND * np.max(np.abs(d)):
        return None
    return R * np.sign(d)[:, None]


class Whitened:
    """``devfun`` over ``z = (theta, R beta[, log dispersion])``."""

    def __init__(self, devfun, R: np.ndarray) -> None:
        self.devfun = devfun
        self.R = R
        self.n_theta = devfun.n_theta
        self.sl = slice(devfun.n_theta, devfun.n_theta + devfun.p)

    @property
    def n_evals(self) -> int:
        return self.devfun.n_evals

    def bounds(self):
        return self.devfun.bounds()

    def to_x(self, z: np.ndarray) -> np.ndarray:
        x = np.array(z, dtype=float)
        x[self.sl] = scipy.linalg.solve_triangular(self.R, x[self.sl], check_finite=False)
        return x

    def to_z(self, x: np.ndarray) -> np.ndarray:
        z = np.array(x, dtype=float)
        z[self.sl] = self.R @ z[self.sl]
        return z

    def value_and_grad(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = self.devfun.value_and_grad(self.to_x(z))
        g = np.array(g, dtype=float)
        g[self.sl] = scipy.linalg.solve_triangular(
            self.R, g[self.sl], trans="T", check_finite=False
        )
        return f, g

    def to_x_optimum(self, opt: Optimum) -> Optimum:
        """The optimum in the original parameters (``H_x = N' H_z N``, ``N = diag(I, R, 1)``)."""
        sl, R = self.sl, self.R
        x = self.to_x(opt.x)
        g = np.array(opt.grad, dtype=float)
        g[sl] = R.T @ g[sl]
        H = None
        if opt.hessian is not None:
            N = np.eye(x.size)
            N[sl, sl] = R
            H = N.T @ opt.hessian @ N
            H = 0.5 * (H + H.T)
        step = np.array(opt.newton_step, dtype=float)
        step[sl] = scipy.linalg.solve_triangular(R, step[sl], check_finite=False)
        info = dict(opt.info)
        return Optimum(
            x=x,
            fun=opt.fun,
            grad=g,
            hessian=H,
            free=opt.free,
            newton_step=step,
            message=opt.message,
            success=opt.success,
            converged=opt.converged,
            n_iter=opt.n_iter,
            n_evals=opt.n_evals,
            info=info,
        )


def _minimize(devfun, x0, maxiter, hessian, polish) -> Optimum:
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
