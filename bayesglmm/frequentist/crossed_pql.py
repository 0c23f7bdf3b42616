"""PQL's working linear mixed model on the iterative crossed solver.

With the residual variance of the working model fixed at 1 (Breslow & Clayton's PQL,
``dispersion="fixed"``), working response ``z`` and weights ``w``, the working LMM's
criterion as a function of ``theta`` is

.. math::

    \\min_{\\beta, u} \\{ \\textstyle\\sum_i w_i (z_i - x_i'\\beta - a_i'u)^2 + \\|u\\|^2 \\}
      + \\log\\det H + [\\log\\det S_\\beta]_{\\rm REML} + \\text{const},

``H = A'WA + I`` (:class:`.crossed_factor.CrossedFactor`: conjugate gradients and the
stochastic log-determinant with fixed probes) and ``S_beta = X'WX - X'WA H^{-1} A'WX`` (the
REML term, ``p x p``). Its gradient in ``theta`` is exact for the estimated criterion: the
envelope theorem for the penalized residual sum of squares, :meth:`CrossedProblem.
logdet_partials` for ``log det H``, and ``tr(S^{-1} dS)`` with ``p`` extra solves.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg
import scipy.optimize

from ..errors import MethodError
from .covariance import CovarianceFactor
from .crossed_solver import CrossedProblem
from .lmm import LMMSolution

#: L-BFGS-B tolerances of each working fit (the PQL loop itself stops on eta)
WORKING_GTOL = 1e-6
WORKING_FTOL = 1e-12


class CrossedWorkingLMM:
    """The working LMM ``z = X beta + A u + e``, ``e ~ N(0, W^{-1})``, on the iterative path."""

    def __init__(self, problem: CrossedProblem, z: np.ndarray, w: np.ndarray, reml: bool):
        self.problem, self.z, self.w, self.reml = problem, z, w, reml
        self.X = problem.X
        self.n_evals = 0

    def evaluate(self, theta: np.ndarray, grad: bool = True) -> tuple[float, np.ndarray, dict]:
        pb, X, z, w = self.problem, self.X, self.z, self.w
        theta = np.asarray(theta, dtype=float)
        self.n_evals += 1
        Aval = pb.A_values(theta)
        fac = pb.factor(Aval, w)
        p = X.shape[1]
        C = np.column_stack([pb.At_mul(Aval, w * X[:, j]) for j in range(p)])
        rz = pb.At_mul(Aval, w * z)
        sol = fac.solve(np.column_stack([rz, C]))
        Hrz, M = sol[:, 0], sol[:, 1:]
        S = X.T @ (w[:, None] * X) - C.T @ M
        S = 0.5 * (S + S.T)
        R = scipy.linalg.cholesky(S, lower=False)
        beta = scipy.linalg.cho_solve((R, False), X.T @ (w * z) - C.T @ Hrz)
        u = Hrz - M @ beta
        fitted = X @ beta + pb.A_mul(Aval, u)
        r = z - fitted
        pwrss = float(w @ (r * r) + u @ u)
        ld_H = fac.logdet()
        ld_S = 2.0 * float(np.sum(np.log(np.diag(R))))
        value = pwrss + ld_H + (ld_S if self.reml else 0.0)
        pieces = {
            "beta": beta,
            "u": u,
            "fitted": fitted,
            "pwrss": pwrss,
            "ld_H": ld_H,
            "ld_S": ld_S,
            "RX": R,
            "logdet_se": fac.logdet_se,
        }
        if not grad:
            return value, None, pieces
        _, ga = pb.logdet_partials_at(fac, Aval, w)
        AM = np.column_stack([pb.A_mul(Aval, M[:, j]) for j in range(p)]) if self.reml else None
        Sinv = scipy.linalg.cho_solve((R, False), np.eye(p)) if self.reml else None
        g = np.zeros(theta.size)
        for j, t in enumerate(pb.cov.terms):
            xr = pb.term_X[j][:, 0]
            cj = pb.cols[:, j]
            gt = -2.0 * np.sum(w * r * xr * u[cj]) + xr @ ga[:, j]
            if self.reml:
                dAM = xr[:, None] * M[cj]  # (dA) M, n x p
                dCtM = X.T @ ((w * xr)[:, None] * M[cj])
                dS = -(dCtM + dCtM.T) + dAM.T @ (w[:, None] * AM) + AM.T @ (w[:, None] * dAM)
                gt += float(np.sum(Sinv * dS))
            g[t.start] = gt
        return value, g, pieces

    def fit(self, theta0: np.ndarray) -> tuple[LMMSolution, dict]:
        cf = self.problem.cov
        bounds = cf.bounds()

        def fun(th):
            v, g, _ = self.evaluate(th)
            return v, g

        res = scipy.optimize.minimize(
            fun,
            np.asarray(theta0, dtype=float),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"gtol": WORKING_GTOL, "ftol": WORKING_FTOL, "maxiter": 500},
        )
        theta = np.asarray(res.x, dtype=float)
        value, _, pc = self.evaluate(theta, grad=False)
        sol = LMMSolution(
            theta=theta,
            beta=pc["beta"],
            u=pc["u"],
            b=cf.b_from_u(theta, pc["u"]),
            sigma2=1.0,
            deviance=value,
            pwrss=pc["pwrss"],
            ld_L2=pc["ld_H"],
            ld_RX2=pc["ld_S"],
            RX=pc["RX"],
            fitted=pc["fitted"],
            reml=self.reml,
            sigma_fixed=True,
        )
        sol.optimizer = {
            "optimizer": "L-BFGS-B (iterative crossed solver)",
            "success": bool(res.success),
            "message": str(res.message),
            "iterations": int(res.nit),
            "evaluations": int(res.nfev),
            "theta": theta.tolist(),
            "singular": cf.singular_components(theta),
            "logdet_se": pc["logdet_se"],
        }
        return sol, sol.optimizer


def crossed_pql_iterations(design, cf: CovarianceFactor, reml, max_iter, tol, progressbar, seed):
    """:func:`.pql.pql_iterations` with the working fits on the iterative solver."""
    from tqdm.auto import tqdm

    from ..options import tqdm_progress
    from .pql_working import (
        _relative_change,
        _separated,
        _working_parts,
        final_state,
        glm_start,
        working_response,
    )

    t0 = time.perf_counter()
    y, pw = _working_parts(design, None)
    eta, glm_info = glm_start(design)
    glm_info["seconds"] = time.perf_counter() - t0
    problem = CrossedProblem(design, random_seed=seed)
    theta = cf.theta0()
    history: list[float] = []
    converged = False
    with tqdm(total=max_iter, desc="PQL", leave=False, **tqdm_progress(progressbar)) as bar:
        for _ in range(max_iter):
            z, w = working_response(design, eta, y, pw, None)
            sol, _ = CrossedWorkingLMM(problem, z, w, reml).fit(theta)
            theta = sol.theta
            eta_new = sol.fitted + design.offset
            change = _relative_change(eta_new, eta)
            eta = eta_new
            history.append(change)
            bar.set_postfix(change=f"{change:.2e}", refresh=False)
            bar.update(1)
            if not np.all(np.isfinite(eta)):
                raise MethodError("the PQL iteration diverged (non-finite linear predictor)")
            if change < tol:
                converged = True
                break
            if _separated(design, eta).any():
                break
    return final_state(design, sol, eta, history, converged, glm_info)
