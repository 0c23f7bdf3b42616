"""Weighted linear mixed models by lme4's profiled deviance (REML or ML).

The model, for working or Gaussian data ``y`` with positive weights ``w``,

.. math::

    y = X\\beta + Z\\Lambda_\\theta u + \\varepsilon, \\qquad
    u \\sim N(0, \\sigma^2 I_q), \\qquad \\varepsilon \\sim N(0, \\sigma^2 W^{-1}),

with ``b = Lambda(theta) u`` (:class:`~bayesglmm.frequentist.covariance.CovarianceFactor`).
For given ``theta`` the penalized weighted least-squares problem is solved through the
sparse Cholesky factor ``L L' = Lambda' Z' W Z Lambda + I`` (a
:class:`~bayesglmm.linalg.BlockCholesky`: Z is never dense) and the dense ``p x p`` factor
``R_X`` of the fixed effects' Schur complement. With ``r^2`` the penalized weighted residual
sum of squares, the criteria of Bates, Maechler, Bolker & Walker (2015, *J. Stat. Softw.*
67(1), section 3.4) are

.. math::

    -2\\ell_{ML}(\\theta) = \\log|L|^2 + n\\,[1 + \\log(2\\pi r^2 / n)] - \\textstyle\\sum\\log w_i

    -2\\ell_{REML}(\\theta) = \\log|L|^2 + \\log|R_X|^2
        + (n - p)\\,[1 + \\log(2\\pi r^2 / (n - p))] - \\textstyle\\sum\\log w_i,

with ``sigma^2`` profiled out (``r^2 / n`` or ``r^2 / (n - p)``). When ``sigma`` is held
fixed (PQL with the dispersion fixed at 1) the criterion is
``log|L|^2 [+ log|R_X|^2] + r^2 / sigma^2 + m log(2 pi sigma^2) - sum log w`` with
``m = n`` (ML) or ``n - p`` (REML). ``theta`` is optimized under its bounds (diagonal
entries of each factor at least zero) by L-BFGS-B.

This module never imports PyMC.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.optimize
import scipy.sparse as sp

from .._warn import warn
from ..model.linalg import DENSE_LIMIT, BlockCholesky, NotPositiveDefiniteError, term_blocks
from ..results.assemble import Estimates
from ..results.details import Covariance, LmmDetails
from ..results.result import parameter_rows, wald_table
from . import blas_threads as blas_limit
from .covariance import CovarianceFactor

_LOG_2PI = float(np.log(2.0 * np.pi))
#: L-BFGS-B tolerances: relative decrease of the criterion and projected gradient. The
#: criterion is O(n); at 1e-14 relative theta agrees with lmer and with a dense REML
#: computation to ~1e-7 on the data sets tested.
FTOL = 1e-14
GTOL = 1e-9
MAX_ITER = 1000
#: gradient size below which an L-BFGS-B line-search failure is taken as convergence: the
#: criterion is flat there to the precision of its (central-difference) gradient
ABNORMAL_GTOL = 1e-4
#: lower bound of diagonal theta entries during the search (see LMMProblem.optimize)
THETA_FLOOR = 1e-4
#: a diagonal theta entry below this is tried at exactly zero (lme4 reports singular fits
#: with an exact zero) and probed for a better interior point
BOUNDARY_SNAP = 1e-3
#: values tried for a diagonal entry stuck at zero, and how many restarts are allowed
PROBE_STEPS = (1e-2, 0.1, 0.3, 1.0, 3.0)
MAX_RESTARTS = 3
#: upper bound of diagonal theta entries: ``sigma_b / sigma`` beyond 1e6 is a residual
#: variance at zero (possible for working models with one observation per group).
THETA_MAX = 1e6


class LMMConvergenceWarning(UserWarning):
    """The optimizer of the variance parameters stopped without converging."""


#: below this size of the dense Schur complement BLAS runs on one thread: for such
#: matrices threads save little and, on a busy machine, cost much (PQL on the 1,000 x 1,000
#: crossed benchmark: 4 s on one thread, 15-27 s on two threads of a loaded 2-core machine)
BLAS_THREAD_LIMIT = 2000


def blas_threads(design):
    """Context limiting BLAS to one thread when the design's dense part is small."""
    first, _ = term_blocks(design)
    rest = design.q - (0 if first is None else first.stop - first.start)
    return blas_limit(None if rest >= BLAS_THREAD_LIMIT else 1)


# --------------------------------------------------------------------------------------
# data and state


@dataclass
class LMMData:
    """Weighted cross-products of one LMM problem; fixed while ``theta`` is optimized.

    Build with :func:`lmm_data`. ``ZtWZ`` is sparse ``q x q``; ``ZtWX`` is dense ``q x p``.
    """

    y: np.ndarray
    X: np.ndarray
    Z: sp.csc_matrix
    w: np.ndarray
    ZtWZ: sp.csc_matrix
    ZtWX: np.ndarray
    ZtWy: np.ndarray
    XtWX: np.ndarray
    XtWy: np.ndarray
    ld_w: float
    first: slice | None
    block: int

    @property
    def n(self) -> int:
        return self.y.shape[0]

    @property
    def p(self) -> int:
        return self.X.shape[1]


def lmm_data(y, X, Z, weights=None, terms=None) -> LMMData:
    """Cross-products ``Z'WZ``, ``Z'WX``, ... of a weighted LMM.

    Parameters
    ----------
    y : ndarray (n,)
    X : ndarray (n, p)
    Z : sparse (n, q)
        Random-effect columns, level-major per term as :attr:`RandomTerm.Z`.
    weights : ndarray (n,), optional
        Positive precision weights (residual variance ``sigma^2 / w``); ones by default.
    terms : list of RandomTerm, optional
        The terms of ``Z``; the largest is eliminated blockwise by :class:`BlockCholesky`.
    """
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    n = y.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("LMM weights must be finite and positive")
    Z = sp.csc_matrix(Z)
    ZtW = (Z.T @ sp.diags(w)).tocsr()
    first, block = term_blocks(SimpleNamespace(random=terms or []))
    return LMMData(
        y=y,
        X=X,
        Z=Z,
        w=w,
        ZtWZ=(ZtW @ Z).tocsc(),
        ZtWX=np.asarray(ZtW @ X),
        ZtWy=np.asarray(ZtW @ y),
        XtWX=(X.T * w) @ X,
        XtWy=(X.T * w) @ y,
        ld_w=float(np.sum(np.log(w))),
        first=first,
        block=block,
    )


class _LambdaFill:
    """Fast ``Lambda(theta)``: the sparsity pattern is built once, the values per call."""

    def __init__(self, cf: CovarianceFactor) -> None:
        self.cf = cf
        rows, cols, src = [], [], []
        for t, lo in zip(cf.terms, cf.offsets[:-1], strict=True):
            lev = np.arange(t.n_levels)[:, None] * t.k + lo
            rows.append((lev + t.rows[None, :]).ravel())
            cols.append((lev + t.cols[None, :]).ravel())
            src.append(np.tile(np.arange(t.start, t.start + t.size), t.n_levels))
        rows = np.concatenate(rows) if rows else np.zeros(0, int)
        cols = np.concatenate(cols) if cols else np.zeros(0, int)
        src = np.concatenate(src) if src else np.zeros(0, int)
        q = cf.q
        self.diagonal = bool(np.all(rows == cols))
        self.diag_src = src[np.argsort(rows)] if self.diagonal else None
        order = np.arange(rows.size, dtype=float) + 1.0
        pattern = sp.csc_matrix((order, (rows, cols)), shape=(q, q))
        pattern.sort_indices()
        self._pattern = pattern
        self._src = src[pattern.data.astype(np.int64) - 1]

    def diag(self, theta: np.ndarray) -> np.ndarray:
        """Diagonal of ``Lambda`` when every factor is diagonal."""
        return theta[self.diag_src]

    def matrix(self, theta: np.ndarray) -> sp.csc_matrix:
        out = self._pattern.copy()
        out.data = theta[self._src].astype(float)
        return out


class _Pieces:
    """``A = Lambda' Z'WZ Lambda + I`` assembled as :meth:`BlockCholesky.from_parts` takes it.

    ``Z'WZ`` is split once into the diagonal blocks of the largest term (``M11``), its
    coupling with the other terms (``M12``, sparse) and the rest (``M22``); each ``theta``
    then only rescales these pieces.
    """

    def __init__(self, M: sp.csc_matrix, first: slice | None, k: int, fill: _LambdaFill):
        q = M.shape[0]
        if first is None:
            first, k = slice(0, 0), 1
        self.q, self.k, self.fill, self.first = q, k, fill, first
        idx1 = np.arange(first.start, first.stop)
        idx2 = np.setdiff1d(np.arange(q), idx1)
        self.idx1, self.idx2 = idx1, idx2
        M = M.tocsr()
        M11 = M[idx1][:, idx1].tocoo()
        nb = idx1.size // k
        blocks = np.zeros((nb, k, k))
        blocks[M11.row // k, M11.row % k, M11.col % k] = M11.data
        self.M11 = blocks
        self.M12 = M[idx1][:, idx2].tocsr()
        self.M12.sort_indices()
        self._r12 = np.repeat(np.arange(idx1.size), np.diff(self.M12.indptr))
        self._c12 = self.M12.indices
        self.dense22 = idx2.size <= DENSE_LIMIT
        self.M22 = M[idx2][:, idx2].toarray() if self.dense22 else M[idx2][:, idx2].tocsc()
        self._eye2 = np.eye(idx2.size) if self.dense22 else sp.eye(idx2.size, format="csc")

    def factor(self, theta: np.ndarray) -> BlockCholesky:
        i1, i2 = self.idx1, self.idx2
        if self.fill.diagonal:
            lam = self.fill.diag(theta)
            l1, l2 = lam[i1], lam[i2]
            blocks = self.M11 * (l1 * l1)[:, None, None] + 1.0
            A12 = self.M12.copy()
            A12.data = A12.data * l1[self._r12] * l2[self._c12]
            if self.dense22:
                A22 = self.M22 * np.outer(l2, l2) + self._eye2
            else:
                D2 = sp.diags(l2)
                A22 = (D2 @ self.M22 @ D2 + self._eye2).tocsc()
        else:
            Lam = self.fill.matrix(theta).tocsr()
            T1 = Lam[i1[: self.k]][:, i1[: self.k]].toarray()
            blocks = np.einsum("ji,njk,kl->nil", T1, self.M11, T1) + np.eye(self.k)
            L1, L2 = Lam[i1][:, i1], Lam[i2][:, i2]
            A12 = (L1.T @ self.M12 @ L2).tocsr()
            A22 = L2.T @ self.M22 @ L2 + self._eye2
            A22 = np.asarray(A22) if self.dense22 else sp.csc_matrix(A22)
        return BlockCholesky.from_parts(blocks, A12, A22, self.first, self.q)


@dataclass
class LMMSolution:
    """Estimates of a weighted LMM at one ``theta``.

    Attributes
    ----------
    theta : ndarray
    beta : ndarray (p,)
    u : ndarray (q,)
        Spherical random effects; ``b = Lambda u`` are the BLUPs.
    b : ndarray (q,)
    sigma2 : float
        Residual variance (profiled estimate, or the fixed value).
    deviance : float
        ``-2 log L`` (ML) or the REML criterion, at ``theta``.
    pwrss : float
        Penalized weighted residual sum of squares ``r^2``.
    ld_L2, ld_RX2 : float
        ``log|L|^2`` and ``log|R_X|^2``.
    RX : ndarray (p, p)
        Upper-triangular factor with ``R_X' R_X = X' V^{-1} X * sigma^2``.
    fitted : ndarray (n,)
        ``X beta + Z b`` (the offset excluded).
    """

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray
    sigma2: float
    deviance: float
    pwrss: float
    ld_L2: float
    ld_RX2: float
    RX: np.ndarray
    fitted: np.ndarray
    reml: bool = True
    sigma_fixed: bool = False
    optimizer: dict = field(default_factory=dict)

    @property
    def cov_beta(self) -> np.ndarray:
        """``sigma^2 (R_X' R_X)^{-1}``: the covariance of ``beta`` given ``theta``."""
        Rinv = scipy.linalg.solve_triangular(self.RX, np.eye(self.RX.shape[0]))
        return self.sigma2 * (Rinv @ Rinv.T)


class LMMProblem:
    """The profiled deviance of one weighted LMM as a function of ``theta``.

    Parameters
    ----------
    data : LMMData
    cf : CovarianceFactor
        Layout of ``theta`` for the terms of ``data.Z``.
    reml : bool
        REML criterion (True) or ML.
    sigma : float, optional
        Hold the residual standard deviation at this value instead of profiling it out.
    """

    def __init__(
        self, data: LMMData, cf: CovarianceFactor, reml: bool = True, sigma: float | None = None
    ) -> None:
        if data.Z.shape[1] != cf.q:
            raise ValueError(f"Z has {data.Z.shape[1]} columns, the covariance factor {cf.q}")
        self.data, self.cf, self.reml = data, cf, bool(reml)
        self.sigma = None if sigma is None else float(sigma)
        self._fill = _LambdaFill(cf)
        self._pieces = _Pieces(data.ZtWZ, data.first, data.block, self._fill)
        self._rhs = np.column_stack([data.ZtWy, data.ZtWX])
        self.n_evaluations = 0
        self.max_iter = MAX_ITER

    # --------------------------------------------------------------------------------
    def _lambda_t(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``Lambda' v``."""
        if self._fill.diagonal:
            lam = self._fill.diag(theta)
            return lam[:, None] * v if v.ndim == 2 else lam * v
        return np.asarray(self._fill.matrix(theta).T @ v)

    def _lambda(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        if self._fill.diagonal:
            return self._fill.diag(theta) * u
        return self._fill.matrix(theta) @ u

    def solve(self, theta: np.ndarray) -> LMMSolution:
        """Fixed effects, random effects, residual variance and criterion at ``theta``."""
        return self._evaluate(theta)[0]

    @property
    def has_gradient(self) -> bool:
        """True when :meth:`deviance_and_gradient` is analytic (diagonal ``Lambda``)."""
        return self._fill.diagonal and self._pieces.dense22

    def deviance_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The criterion and its exact gradient in ``theta`` (every factor diagonal).

        With ``A = Lambda' M Lambda + I`` and ``lambda_j = theta_k`` for the columns ``j``
        of term ``k``: ``d log|A| / d theta_k = sum_j 2 (1 - (A^{-1})_jj) / theta_k``;
        ``d r^2 / d theta_k = -2 sum_j (Z' W e)_j u_j`` (envelope theorem, ``e`` the
        residuals); and ``d log|R_X' R_X| = tr((R_X' R_X)^{-1} dS)`` with
        ``S = X'WX - B' A^{-1} B``, ``B = Lambda Z'WX``.
        """
        try:
            sol, grad = self._evaluate(theta, gradient=True)
        except NotPositiveDefiniteError:
            return np.inf, np.zeros_like(np.asarray(theta, dtype=float))
        return sol.deviance, grad

    def _evaluate(self, theta: np.ndarray, gradient: bool = False):
        theta = np.asarray(theta, dtype=float)
        d = self.data
        self.n_evaluations += 1
        L = self._pieces.factor(theta)
        ld_L2 = L.logdet()
        c = L.solve_L(self._lambda_t(theta, self._rhs))
        cu, RZX = c[:, 0], c[:, 1:]
        S = d.XtWX - RZX.T @ RZX
        try:
            RX = scipy.linalg.cholesky(S, lower=False, check_finite=False)
        except np.linalg.LinAlgError:
            raise NotPositiveDefiniteError(
                "X' V^-1 X is not positive definite: the fixed effects are not identified "
                "given the random effects"
            ) from None
        ld_RX2 = 2.0 * float(np.sum(np.log(np.diag(RX))))
        cb = scipy.linalg.solve_triangular(RX, d.XtWy - RZX.T @ cu, trans=1, check_finite=False)
        beta = scipy.linalg.solve_triangular(RX, cb, check_finite=False)
        u = L.solve_Lt(cu - RZX @ beta)
        b = self._lambda(theta, u)
        fitted = d.X @ beta + d.Z @ b
        resid = d.y - fitted
        pwrss = float(np.sum(d.w * resid**2) + u @ u)
        n, p = d.n, d.p
        m = n - p if self.reml else n
        if self.sigma is None:
            sigma2 = pwrss / m
            dev = m * (1.0 + np.log(2.0 * np.pi * sigma2))
        else:
            sigma2 = self.sigma**2
            dev = pwrss / sigma2 + m * (_LOG_2PI + np.log(sigma2))
        dev += ld_L2 - d.ld_w + (ld_RX2 if self.reml else 0.0)
        grad = None
        if gradient:
            lam = self._fill.diag(theta)
            k_of = self._fill.diag_src
            nt = theta.size
            a_inv = L.inverse_diagonal()
            g_ld = 2.0 * np.bincount(k_of, (1.0 - a_inv) / lam, minlength=nt)
            zwe = d.Z.T @ (d.w * resid)
            g_r2 = -2.0 * np.bincount(k_of, zwe * u, minlength=nt)
            scale = 1.0 / sigma2 if self.sigma is not None else m / pwrss
            grad = g_ld + scale * g_r2
            if self.reml:
                C = L.solve_Lt(RZX)  # A^{-1} B
                G = d.ZtWZ @ (lam[:, None] * C)  # M Lambda A^{-1} B
                S_inv = scipy.linalg.cho_solve((RX, False), np.eye(p), check_finite=False)
                for k in range(nt):
                    rows = k_of == k
                    D = d.ZtWX[rows].T @ C[rows]
                    E = C[rows].T @ G[rows]
                    dS = -(D + D.T) + (E + E.T)
                    grad[k] += float(np.sum(S_inv * dS))
        sol = LMMSolution(
            theta=theta.copy(),
            beta=beta,
            u=u,
            b=b,
            sigma2=float(sigma2),
            deviance=float(dev),
            pwrss=pwrss,
            ld_L2=ld_L2,
            ld_RX2=ld_RX2,
            RX=RX,
            fitted=fitted,
            reml=self.reml,
            sigma_fixed=self.sigma is not None,
        )
        return sol, grad

    def deviance(self, theta: np.ndarray) -> float:
        """The criterion to minimize; ``inf`` where the factorization fails."""
        try:
            return self.solve(theta).deviance
        except NotPositiveDefiniteError:
            return np.inf

    # --------------------------------------------------------------------------------
    def optimize(self, theta0: np.ndarray | None = None) -> LMMSolution:
        """Minimize the criterion over ``theta`` within its bounds.

        L-BFGS-B with the exact gradient when every factor is diagonal (scalar or
        uncorrelated terms) and a dense Schur complement, central differences otherwise.
        For a scalar term the criterion is a function of ``theta^2``, so ``theta = 0`` is
        always a stationary point where a gradient method that reaches it stays: diagonal
        entries are therefore kept above :data:`THETA_FLOOR` during the search, set to
        exactly zero afterwards when that is no worse (a singular fit, reported as lme4
        does), and probed for a better interior point if they end at zero.
        """
        cf = self.cf
        start = cf.theta0() if theta0 is None else np.asarray(theta0, dtype=float).copy()
        diag = cf.is_diagonal_entry
        start[diag] = np.clip(start[diag], 1e-2, THETA_MAX / 10)
        n0 = self.n_evaluations
        res = self._lbfgsb(start)
        restarts = 0
        while restarts < MAX_RESTARTS:
            better = self._probe_boundary(res.x, res.fun)
            if better is None:
                break
            res = self._lbfgsb(better)
            restarts += 1
        theta, fun = res.x, res.fun
        # L-BFGS-B stops a little short of a bound it is heading for: try the bound itself
        near = diag & (theta < BOUNDARY_SNAP)
        if np.any(near):
            trial = theta.copy()
            trial[near] = 0.0
            f_trial = self.deviance(trial)
            if f_trial <= fun:
                theta, fun = trial, f_trial
        sol = self.solve(theta)
        ok = bool(res.success)
        sol.optimizer = {
            "optimizer": "L-BFGS-B",
            "success": ok,
            "message": str(res.message),
            "iterations": int(res.nit),
            "evaluations": self.n_evaluations - n0,
            "restarts_from_boundary": restarts,
            "theta": theta.tolist(),
            "singular": cf.singular_components(theta),
        }
        if not ok:
            warn(
                f"the variance parameters did not converge ({res.message}) after "
                f"{res.nit} iterations; the estimates may not be at the optimum",
                LMMConvergenceWarning,
            )
        return sol

    def _lbfgsb(self, start: np.ndarray):
        diag = self.cf.is_diagonal_entry
        bounds = [(THETA_FLOOR, THETA_MAX) if dg else (-THETA_MAX, THETA_MAX) for dg in diag]
        analytic = self.has_gradient
        res = scipy.optimize.minimize(
            self.deviance_and_gradient if analytic else self.deviance,
            start,
            method="L-BFGS-B",
            jac=True if analytic else "3-point",
            bounds=bounds,
            options={"ftol": FTOL, "gtol": GTOL, "maxiter": self.max_iter, "maxls": 50},
        )
        if not res.success and "ABNORMAL" in str(res.message).upper():
            # a line search that cannot improve on finite-difference gradients: accept the
            # point when the criterion is flat there to the precision of the gradients
            res.success = bool(np.all(np.abs(res.jac) < ABNORMAL_GTOL))
        return res

    def _probe_boundary(self, theta: np.ndarray, fun: float) -> np.ndarray | None:
        """A better point off the boundary, if any zero diagonal entry is not a minimum."""
        best, best_f = None, fun - 1e-10 * max(1.0, abs(fun))
        for j in np.flatnonzero(self.cf.is_diagonal_entry & (theta < BOUNDARY_SNAP)):
            for step in PROBE_STEPS:
                trial = theta.copy()
                trial[j] = step
                f = self.deviance(trial)
                if f < best_f:
                    best, best_f = trial, f
        return best


# --------------------------------------------------------------------------------------
# reporting


def variance_components(cf: CovarianceFactor, sol: LMMSolution) -> tuple[pd.Series, pd.Series]:
    """Absolute variances ``sigma^2 T T'`` (as ``VarCorr``) and correlations."""
    var = cf.variances(sol.theta) * sol.sigma2
    var.name = "variance"
    cor = cf.correlations(sol.theta)
    cor.name = "correlation"
    return var, cor


def random_effects_frames(design, sol: LMMSolution) -> dict[str, pd.DataFrame]:
    """BLUPs ``b`` per term: one row per level, one column per term column."""
    out, lo = {}, 0
    for t in design.random:
        size = t.n_levels * t.n_columns
        out[t.name] = pd.DataFrame(
            sol.b[lo : lo + size].reshape(t.n_levels, t.n_columns),
            index=pd.Index(t.levels, name=t.group),
            columns=list(t.columns),
        )
        lo += size
    return out


# --------------------------------------------------------------------------------------
# the registered method


def fit_lmm(
    model,
    *,
    reml: bool,
    max_iter: int,
    progressbar: bool | None,
    threads: int | None,
) -> Estimates:
    """Fit a Gaussian linear mixed model as ``lme4::lmer`` does.

    Parameters
    ----------
    model : GLMM
        A ``family="gaussian"`` model with the identity link.
    reml : bool
        REML (default, as ``lmer``) or maximum likelihood.
    max_iter : int
        Iterations of L-BFGS-B on the variance parameters (per start).
    progressbar : bool or None
        Accepted for the shared vocabulary; the fit shows no bar.
    threads : int or None
        BLAS threads; None (default): one for small dense blocks, the BLAS default else.

    Returns
    -------
    Estimates
        ``loglik`` is the maximized REML criterion or log-likelihood (``logLik`` of lmer),
        ``dispersion["sigma"]`` the residual standard deviation, ``variance_components``
        the variances of the random effects (``VarCorr``), standard errors from
        ``sigma^2 (X' V^{-1} X)^{-1}`` and Wald 95 % intervals for the fixed effects.
    """
    d = model.design  # Gaussian, identity link, random effects: the method's record
    t0 = time.perf_counter()
    cf = CovarianceFactor(d)
    # prior weights: residual variance sigma^2 / w (lme4's weights=)
    data = lmm_data(d.y - d.offset, d.X, d.Z, getattr(d, "weights", None), d.random)
    problem = LMMProblem(data, cf, reml=reml)
    problem.max_iter = max_iter
    t1 = time.perf_counter()
    with blas_threads(d) if threads is None else blas_limit(threads):
        sol = problem.optimize()
    t2 = time.perf_counter()
    se = np.sqrt(np.diag(sol.cov_beta))
    var, cor = variance_components(cf, sol)
    sigma = pd.Series({"sigma": np.sqrt(sol.sigma2)}, name="dispersion")
    table = wald_table(d.fixed_names, sol.beta, se).assign(p=np.nan)  # lmer gives no p-values
    return Estimates(
        kind="lmm",
        table=pd.concat([table, parameter_rows(var, cor, sigma)]),
        converged=sol.optimizer["success"],
        n_params=d.p + cf.n_theta + 1,
        timing={"setup": t1 - t0, "optimize": t2 - t1},
        loglik=-0.5 * sol.deviance,
        vcov=Covariance("model", d.fixed_names, sol.cov_beta),
        random_effects=random_effects_frames(d, sol),
        messages=optimizer_messages(sol.optimizer),
        iterations=sol.optimizer["iterations"],
        singular=bool(sol.optimizer["singular"]),
        convergence_details=sol.optimizer,
        theta=sol.theta,
        theta_names=cf.theta_names,
        details=LmmDetails(
            title="Linear mixed model fit by " + ("REML" if reml else "maximum likelihood"),
            df_resid=int(d.n - d.p),
            reml=bool(reml),
            deviance=float(sol.deviance),
            extra={
                "criterion": "REML" if reml else "ML",
                "loglik": ("REML criterion" if reml else "log-likelihood")
                + " at the optimum, as lme4's logLik",
            },
        ),
    )


def optimizer_messages(optimizer: dict) -> list[str]:
    """What a person should read about the working optimizer's result."""
    msgs = []
    if not optimizer["success"]:
        msgs.append(f"the variance parameters did not converge: {optimizer['message']}")
    if optimizer["singular"]:
        msgs.append("boundary (singular) fit: " + "; ".join(optimizer["singular"]))
    return msgs
