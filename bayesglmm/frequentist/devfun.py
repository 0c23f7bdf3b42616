"""Deviance functions of the parameters, built once per design (lme4's ``mkGlmerDevfun``).

The parameter vector is ``x = (theta, beta[, log dispersion])``. :class:`LaplaceDeviance`
evaluates lme4's Laplace criterion with its exact gradient (the dispersion component, for
Gaussian and negative-binomial families, by central differences); conditional modes are
warm-started from the evaluation nearest in parameter space. Subclasses (adaptive quadrature)
override :meth:`LaplaceDeviance.deviance_at`.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

from ..model.linalg import NotPositiveDefiniteError
from .pirls import U_TOL, PirlsProblem, PirlsState

#: PIRLS states kept for reuse (each holds the factor of H)
STATES_KEPT = 2
#: relative step of the central difference in log dispersion
DISP_STEP = 1e-5
#: L-BFGS-B iterations of the profiled (nAGQ = 0) stage, and its forward-difference step
#: in theta (PIRLS solves the modes to 1e-9, so the deviance is smooth at this step)
PROFILED_ITER = 50
PROFILED_FD_STEP = 1e-6


class LaplaceDeviance:
    """``x -> -2 log L`` (Laplace approximation) with warm-started PIRLS.

    Parameters
    ----------
    problem : PirlsProblem
    """

    label = "Laplace Approximation"
    #: PIRLS tolerance on the Newton step in u
    pirls_tol = U_TOL

    def __init__(self, problem: PirlsProblem) -> None:
        self.problem = problem
        self.cov = problem.cov
        self.n_theta = problem.cov.n_theta
        self.p = problem.p
        self.has_disp = problem.response.has_dispersion
        self.n_x = self.n_theta + self.p + int(self.has_disp)
        # the unit of each parameter for finite-difference steps: 1 for theta and the log
        # dispersion; for beta_j the change that moves eta by about 1 (1 / rms of X_j), so
        # the steps do not depend on the units of the covariates
        rms = np.sqrt(np.mean(np.asarray(problem.X, dtype=float) ** 2, axis=0))
        self.typical = np.ones(self.n_x)
        self.typical[self.n_theta : self.n_theta + self.p] = np.where(rms > 0, 1.0 / rms, 1.0)
        self.n_evals = 0
        self.n_pirls = 0
        self._last: PirlsState | None = None
        # values and gradients by x; PIRLS states (which hold factors of size q2^2) only for
        # the few most recent, so memory does not grow with the number of evaluations
        self._cache: dict[bytes, tuple[float, np.ndarray | None]] = {}
        self._states: dict[bytes, PirlsState] = {}

    # -------------------------------------------------------------------- layout
    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        x = np.asarray(x, dtype=float)
        theta = x[: self.n_theta]
        beta = x[self.n_theta : self.n_theta + self.p]
        disp = float(np.exp(x[-1])) if self.has_disp else 1.0
        return theta, beta, disp

    def join(self, theta, beta, disp: float | None = None) -> np.ndarray:
        parts = [np.asarray(theta, float), np.asarray(beta, float)]
        if self.has_disp:
            parts.append(np.array([np.log(disp if disp is not None else 1.0)]))
        return np.concatenate(parts)

    @property
    def names(self) -> list[str]:
        out = [f"theta[{n}]" for n in self.cov.theta_names] + list(self.problem.design.fixed_names)
        if self.has_disp:
            out.append(f"log({self.problem.response.family.dispersion_name})")
        return out

    def bounds(self) -> list[tuple[float | None, float | None]]:
        b = self.cov.bounds() + [(None, None)] * self.p
        if self.has_disp:
            b.append((None, None))
        return b

    # -------------------------------------------------------------------- evaluation
    def state(self, x: np.ndarray) -> PirlsState:
        """PIRLS at ``x``, warm-started from the last state."""
        theta, beta, disp = self.split(x)
        last = self._last
        u0 = last.u if last is not None else None
        fac0 = last.factor if last is not None else None
        st = self.problem.solve(theta, beta, disp, u0=u0, factor0=fac0, tol=self.pirls_tol)
        if not st.converged and u0 is not None:
            st = self.problem.solve(theta, beta, disp, u0=None, tol=self.pirls_tol)
        self.n_pirls += st.iterations
        self._last = st
        return st

    def _solve_near(self, theta, beta, disp, st: PirlsState) -> PirlsState:
        """PIRLS at a point next to the state ``st`` (finite differences)."""
        return self.problem.solve(theta, beta, disp, u0=st.u, factor0=st.factor, tol=self.pirls_tol)

    def state_at(self, x: np.ndarray) -> PirlsState:
        """The converged PIRLS state at ``x`` (from the cache when evaluated before)."""
        x = np.asarray(x, dtype=float)
        st = self._states.get(x.tobytes())
        return st if st is not None else self.state(x)

    def deviance_at(self, st: PirlsState) -> float:
        """The criterion at a converged PIRLS state (Laplace: ``pdev + log det``)."""
        return st.deviance

    def __call__(self, x: np.ndarray) -> float:
        return self.value_and_grad(x, grad=False)[0]

    def value_and_grad(self, x: np.ndarray, grad: bool = True) -> tuple[float, np.ndarray]:
        """Deviance and its gradient at ``x`` (``grad=False`` returns None for the gradient)."""
        x = np.asarray(x, dtype=float)
        key = x.tobytes()
        hit = self._cache.get(key)
        if hit is not None and (hit[1] is not None or not grad):
            return hit[0], hit[1]
        self.n_evals += 1
        try:
            st = self.state(x)
        except NotPositiveDefiniteError:
            return np.inf, np.full(x.size, np.nan)
        f = self.deviance_at(st)
        g = self.gradient(x, st) if grad else None
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[key] = (f, g)
        if len(self._states) >= STATES_KEPT:
            self._states.pop(next(iter(self._states)))
        self._states[key] = st
        return f, g

    def gradient(self, x: np.ndarray, st: PirlsState) -> np.ndarray:
        try:
            g_theta, g_beta = self.problem.gradient(st)
        except (NotPositiveDefiniteError, NotImplementedError):
            return self.fd_gradient(x, st)
        g = np.concatenate([g_theta, g_beta])
        if self.has_disp:
            g = np.append(g, self._disp_derivative(x, st))
        return g

    def _disp_derivative(self, x: np.ndarray, st: PirlsState) -> float:
        h = DISP_STEP * max(1.0, abs(x[-1]))
        vals = []
        for sign in (1.0, -1.0):
            xs = x.copy()
            xs[-1] += sign * h
            theta, beta, disp = self.split(xs)
            vals.append(self.deviance_at(self._solve_near(theta, beta, disp, st)))
        self._last = st
        return (vals[0] - vals[1]) / (2.0 * h)

    def fd_gradient(self, x: np.ndarray, st: PirlsState, rel: float = 1e-5) -> np.ndarray:
        """Central differences of the criterion (where no analytic gradient is available).

        Steps stay inside the bounds (one-sided at a bound).
        """
        g = np.zeros(x.size)
        lower = np.array([b[0] if b[0] is not None else -np.inf for b in self.bounds()])
        for j in range(x.size):
            h = rel * max(self.typical[j], abs(x[j]))
            lo = max(x[j] - h, lower[j])
            hi = x[j] + h
            vals = []
            for v in (hi, lo):
                xs = x.copy()
                xs[j] = v
                theta, beta, disp = self.split(xs)
                vals.append(self.deviance_at(self._solve_near(theta, beta, disp, st)))
            g[j] = (vals[0] - vals[1]) / (hi - lo)
        self._last = st
        return g


class ProfiledDeviance:
    """lme4's ``nAGQ = 0`` criterion: a function of ``theta`` alone, ``beta`` profiled out.

    For each ``theta`` the fixed effects and the spherical random effects are found together
    by :meth:`~.pirls.PirlsProblem.solve_joint`; the value is the Laplace deviance at that
    joint mode. Minimizing it over ``theta`` gives lme4's first stage, whose optimum (with
    its profiled ``beta``) is a start for the joint optimization that does not depend on
    the GLM's fixed effects.

    Parameters
    ----------
    devfun : LaplaceDeviance
        Supplies the problem, the layout of ``x`` and the dispersion (held at its start).
    """

    def __init__(self, devfun: LaplaceDeviance) -> None:
        self.devfun = devfun
        self.problem = devfun.problem
        self._last: PirlsState | None = None

    def state(self, theta: np.ndarray, beta0: np.ndarray, disp: float) -> PirlsState:
        last = self._last
        st = self.problem.solve_joint(
            theta,
            beta0 if last is None else last.beta,
            disp,
            u0=None if last is None else last.u,
        )
        if not st.converged and last is not None:
            st = self.problem.solve_joint(theta, beta0, disp)
        if st.converged:
            self._last = st
        return st

    def start(self, x0: np.ndarray, maxiter: int = PROFILED_ITER) -> np.ndarray:
        """Minimize over ``theta`` from ``x0``'s theta; return ``x = (theta, beta_hat[, disp])``."""
        theta0, beta0, disp = self.devfun.split(x0)
        if theta0.size == 0:
            return np.asarray(x0, dtype=float)
        bounds = self.devfun.cov.bounds()

        def value(theta):
            try:
                st = self.state(theta, beta0, disp)
            except NotPositiveDefiniteError:
                return np.inf
            return st.deviance if st.converged else np.inf

        res = scipy.optimize.minimize(
            value,
            theta0,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": maxiter, "eps": PROFILED_FD_STEP},
        )
        theta = np.asarray(res.x, dtype=float)
        st = self.state(theta, beta0, disp)
        beta = st.beta if st.converged else beta0
        return self.devfun.join(theta, beta, disp if self.devfun.has_disp else None)
