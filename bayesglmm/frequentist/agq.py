"""Adaptive Gauss-Hermite quadrature (``method="agq"``), lme4's ``nAGQ > 1`` and more.

When the random effects of different groups are independent given the data, the
likelihood factors into one low-dimensional integral per group,

.. math::

    L = \\prod_l \\int p(y_l \\mid u_l)\\, \\phi(u_l)\\, du_l,

and each is computed by Gauss-Hermite quadrature centred at the conditional mode
``u_hat_l`` and scaled by the Cholesky factor ``L_l`` of the curvature
``H_l = sum_i W_i a_i a_i' + I`` (Liu & Pierce 1994; Pinheiro & Bates 1995):

.. math::

    \\log \\int \\ldots = -\\log\\det L_l + \\log \\sum_j w_j\\, e^{|z_j|^2/2}\\,
        p(y_l \\mid u_{lj})\\, e^{-|u_{lj}|^2/2}, \\qquad u_{lj} = \\hat u_l + L_l^{-T} z_j,

with ``z_j, w_j`` the product rule of ``n_quad`` probabilists' Hermite nodes per dimension.
With ``n_quad = 1`` this is exactly the Laplace approximation of :mod:`.laplace`.

Supported designs:

- one grouping factor, with one or several terms on it (``(1|g)``, ``(1 + x|g)``,
  ``(x||g)``), at most 3 random effects per group (the product rule has ``n_quad^k`` nodes);
- two nested factors, ``(1|a/b)`` (every level of the inner factor inside one level of the
  outer): for each outer node the inner integrals are again adaptive quadratures, centred at
  the inner modes given the outer effect (nested adaptive quadrature, Rabe-Hesketh,
  Skrondal & Pickles 2005). The outer rule is centred at the joint mode and scaled by the
  Schur complement of the joint curvature, so ``n_quad = 1`` is again Laplace.

Crossed factors raise :class:`~bayesglmm.errors.MethodError`: the likelihood of crossed
effects does not factor into low-dimensional integrals (every level of one factor is tied to
many levels of the other, so the integral is over all of them at once).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from ..errors import MethodError, OptionError
from ..results.assemble import Estimates
from . import blas_threads
from .assemble import likelihood_estimates
from .devfun import LaplaceDeviance
from .laplace import check_model, fit_laplace_design, start_vector
from .optimize import minimize_deviance
from .pirls import PirlsProblem, PirlsState

#: the product rule is limited to this many random effects per integral
MAX_DIM = 3
#: PIRLS tolerance under AGQ: the gradient is by central differences, so the modes are
#: solved tighter than for Laplace (whose gradient is analytic)
AGQ_U_TOL = 1e-11
#: at most this many (row, node) pairs are held in memory at once
CHUNK = 4_000_000
#: Newton iterations for the inner modes of nested quadrature
INNER_ITER = 50


def gauss_hermite(n_quad: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Product-rule nodes ``(J, dim)`` and log-weights ``(J,)`` for ``N(0, I_dim)``."""
    x, w = np.polynomial.hermite_e.hermegauss(n_quad)
    w = w / np.sqrt(2.0 * np.pi)
    grids = np.meshgrid(*([x] * dim), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1)
    wgrids = np.meshgrid(*([np.log(w)] * dim), indexing="ij")
    logw = np.sum([g.ravel() for g in wgrids], axis=0)
    return nodes, logw


def quadrature_structure(design) -> dict:
    """Classify the random effects (:attr:`~bayesglmm.model.design.Design.grouping`): one
    factor, two nested factors, or an error."""
    structure = design.grouping
    groups = structure["groups"]
    for g, k in structure["dims"].items():
        if k > MAX_DIM:
            raise MethodError(
                f"adaptive quadrature integrates {k} random effects per level of {g!r}; the "
                f"product rule is limited to {MAX_DIM} dimensions (n_quad^{k} nodes). Use "
                "method='laplace', or uncorrelated/fewer random slopes"
            )
    if structure["kind"] in ("single", "nested"):
        return structure
    if structure["kind"] == "crossed":
        raise MethodError(
            f"adaptive quadrature needs one grouping factor or two nested ones; {groups[0]!r} "
            f"and {groups[1]!r} are crossed (levels of one occur with several levels of the "
            "other), so the likelihood does not factor into low-dimensional integrals and "
            "quadrature would need a grid over all random effects at once. Use "
            "method='laplace' for crossed designs"
        )
    raise MethodError(
        f"adaptive quadrature supports one grouping factor or two nested ones; this model has "
        f"{len(groups)} ({', '.join(groups)}). Use method='laplace'"
    )


class AGQDeviance(LaplaceDeviance):
    """``-2 log L`` by adaptive Gauss-Hermite quadrature; gradient by central differences."""

    pirls_tol = AGQ_U_TOL

    def __init__(self, problem: PirlsProblem, n_quad: int, structure: dict) -> None:
        super().__init__(problem)
        self.n_quad = n_quad
        self.structure = structure
        self.label = f"Adaptive Gauss-Hermite Quadrature, nAGQ = {n_quad}" + (
            " (nested)" if structure["kind"] == "nested" else ""
        )
        design = problem.design
        slot_group = np.array([design.random[t].group for t in problem.slot_term])
        self._level_of = {}
        for g in structure["groups"]:
            slots = np.flatnonzero(slot_group == g)
            t0 = next(t for t in design.random if t.group == g)
            self._level_of[g] = (slots, t0.index.astype(np.int64), t0.n_levels)

    # ---------------------------------------------------------------------- plumbing
    def gradient(self, x: np.ndarray, st: PirlsState) -> np.ndarray:
        return self.fd_gradient(x, st)

    def deviance_at(self, st: PirlsState) -> float:
        if self.n_quad == 1:
            return st.deviance
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if self.structure["kind"] == "single":
                return -2.0 * float(np.sum(self._single(st)))
            return -2.0 * float(np.sum(self._nested(st)))

    def _loglik_rows(self, eta: np.ndarray, disp: float) -> np.ndarray:
        """Pointwise log-likelihood of ``eta`` with shape (n, J)."""
        resp = self.problem.response
        mu = resp.family.link.linkinv(eta.T)
        return resp.loglik(eta.T, mu, disp).T

    # ---------------------------------------------------------------------- one factor
    def _single(self, st: PirlsState) -> np.ndarray:
        """``log`` of each group's integral, one grouping factor."""
        g = self.structure["groups"][0]
        slots, lvl, n_lev = self._level_of[g]
        a = st.Aval[:, slots]
        k = slots.size
        u_hat = st.u[self.problem.cols[:, slots]]  # (n, k): the mode of each row's level
        U = np.zeros((n_lev, k))
        U[lvl] = u_hat
        W = st.terms.W
        H = _block_sums(lvl, W[:, None, None] * a[:, :, None] * a[:, None, :], n_lev)
        H += np.eye(k)
        L = np.linalg.cholesky(H)
        logdet = np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)), axis=1)
        LinvT = np.swapaxes(np.linalg.inv(L), 1, 2)
        nodes, logw = gauss_hermite(self.n_quad, k)
        eta0 = st.eta - np.einsum("ik,ik->i", a, u_hat)  # fixed part and offset
        E = sp.csr_matrix((np.ones(lvl.size), (lvl, np.arange(lvl.size))), (n_lev, lvl.size))
        terms = np.empty((n_lev, nodes.shape[0]))
        step = max(1, CHUNK // max(lvl.size * k, 1))
        for j0 in range(0, nodes.shape[0], step):
            z = nodes[j0 : j0 + step]
            Uj = U[:, None, :] + np.einsum("lab,jb->lja", LinvT, z)  # (L, J, k)
            eta = eta0[:, None] + np.einsum("ik,ijk->ij", a, Uj[lvl])
            ll = E @ self._loglik_rows(eta, st.dispersion)
            terms[:, j0 : j0 + step] = (
                ll - 0.5 * np.sum(Uj**2, axis=2) + (logw[j0 : j0 + step] + 0.5 * (z**2).sum(1))
            )
        return -logdet + logsumexp(terms, axis=1)

    # ---------------------------------------------------------------------- nested
    def _nested(self, st: PirlsState) -> np.ndarray:
        """``log`` of each outer group's integral, inner integrals nested inside."""
        so, lo, n_o = self._level_of[self.structure["outer"]]
        sb, lb, n_b = self._level_of[self.structure["inner"]]
        ao, ab = st.Aval[:, so], st.Aval[:, sb]
        k1, k2 = so.size, sb.size
        W = st.terms.W
        cols = self.problem.cols
        Uo = np.zeros((n_o, k1))
        Uo[lo] = st.u[cols[:, so]]
        Ub = np.zeros((n_b, k2))
        Ub[lb] = st.u[cols[:, sb]]
        outer_of = np.zeros(n_b, dtype=np.int64)
        outer_of[lb] = lo
        Hoo = _block_sums(lo, W[:, None, None] * ao[:, :, None] * ao[:, None, :], n_o) + np.eye(k1)
        Hbb = _block_sums(lb, W[:, None, None] * ab[:, :, None] * ab[:, None, :], n_b) + np.eye(k2)
        Hob = _block_sums(lb, W[:, None, None] * ao[:, :, None] * ab[:, None, :], n_b)
        Hbb_inv = np.linalg.inv(Hbb)
        corr = Hob @ Hbb_inv @ np.swapaxes(Hob, 1, 2)  # (n_b, k1, k1)
        Hs = Hoo - _block_sums(outer_of, corr, n_o)
        Ls = np.linalg.cholesky(Hs)
        logdet_s = np.sum(np.log(np.diagonal(Ls, axis1=1, axis2=2)), axis=1)
        LsinvT = np.swapaxes(np.linalg.inv(Ls), 1, 2)
        z1, logw1 = gauss_hermite(self.n_quad, k1)
        z2, logw2 = gauss_hermite(self.n_quad, k2)
        eta0 = st.eta - np.einsum("ik,ik->i", ao, Uo[lo]) - np.einsum("ik,ik->i", ab, Ub[lb])
        Eb = sp.csr_matrix((np.ones(lb.size), (lb, np.arange(lb.size))), (n_b, lb.size))
        Uoj = Uo[:, None, :] + np.einsum("lab,jb->lja", LsinvT, z1)  # (n_o, J1, k1)
        # inner modes given each outer node, from the joint mode's linear prediction
        shift = Uoj[outer_of] - Uo[outer_of][:, None, :]  # (n_b, J1, k1)
        V = Ub[:, None, :] - np.einsum("bcd,bjd->bjc", Hbb_inv @ np.swapaxes(Hob, 1, 2), shift)
        fixed_part = eta0[:, None] + np.einsum("ik,ijk->ij", ao, Uoj[lo])  # (n, J1)
        disp = st.dispersion
        resp = self.problem.response
        for _ in range(INNER_ITER):
            eta = fixed_part + np.einsum("ik,ijk->ij", ab, V[lb])
            tr = resp.terms(eta.T, disp)
            s, w = tr.score.T, tr.W.T
            grad = _block_sums(lb, s[:, :, None] * ab[:, None, :], n_b) - V
            Hv = _block_sums(
                lb, w[:, :, None, None] * (ab[:, None, :, None] * ab[:, None, None, :]), n_b
            ) + np.eye(k2)
            delta = np.linalg.solve(Hv, grad[..., None])[..., 0]
            V = V + delta
            if np.max(np.abs(delta), initial=0.0) < AGQ_U_TOL:
                break
        eta = fixed_part + np.einsum("ik,ijk->ij", ab, V[lb])
        w = resp.terms(eta.T, disp).W.T
        Hv = _block_sums(
            lb, w[:, :, None, None] * (ab[:, None, :, None] * ab[:, None, None, :]), n_b
        ) + np.eye(k2)
        Lv = np.linalg.cholesky(Hv)  # (n_b, J1, k2, k2)
        logdet_v = np.sum(np.log(np.diagonal(Lv, axis1=2, axis2=3)), axis=2)
        LvinvT = np.swapaxes(np.linalg.inv(Lv), 2, 3)
        J1 = z1.shape[0]
        inner = np.empty((n_b, J1, z2.shape[0]))
        for m in range(z2.shape[0]):
            Vm = V + np.einsum("bjcd,d->bjc", LvinvT, z2[m])  # (n_b, J1, k2)
            eta_m = fixed_part + np.einsum("ik,ijk->ij", ab, Vm[lb])
            ll = (Eb @ self._loglik_rows(eta_m, disp)).reshape(n_b, J1)
            inner[:, :, m] = ll - 0.5 * np.sum(Vm**2, axis=2) + logw2[m] + 0.5 * z2[m] @ z2[m]
        log_inner = -logdet_v + logsumexp(inner, axis=2)  # (n_b, J1)
        outer = _block_sums(outer_of, log_inner, n_o)  # (n_o, J1)
        outer += -0.5 * np.sum(Uoj**2, axis=2) + logw1 + 0.5 * np.sum(z1**2, axis=1)
        return -logdet_s + logsumexp(outer, axis=1)


def _block_sums(index: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum ``values`` (first axis: rows) within groups ``index``."""
    flat = values.reshape(values.shape[0], -1)
    out = np.zeros((n_groups, flat.shape[1]))
    np.add.at(out, index, flat)
    return out.reshape((n_groups,) + values.shape[1:])


#: the report's title
TITLE = (
    "Generalized linear mixed model fit by maximum likelihood (Adaptive Gauss-Hermite "
    "Quadrature, nAGQ = {n_quad})"
)


def fit_agq(
    model,
    *,
    n_quad: int,
    start,
    max_iter: int,
    threads: int | None,
    progressbar: bool | None,
) -> Estimates:
    """Fit a GLMM by maximum likelihood with adaptive Gauss-Hermite quadrature.

    Parameters
    ----------
    model : GLMM
        One grouping factor (up to 3 random effects per group) or two nested factors.
    n_quad : int
        Nodes per dimension (lme4's ``nAGQ``); 1 is the Laplace approximation.
    start : array or dict, optional
        Starting values; by default the Laplace fit.
    max_iter : int
        Iterations of the quasi-Newton optimizer (each of the Laplace start and the AGQ fit).
    threads : int or None
        BLAS threads during the fit; None (default): one.
    progressbar : bool or None
        Accepted for the shared vocabulary; the fit shows no bar.

    Returns
    -------
    Estimates
        As :func:`~bayesglmm.frequentist.laplace.fit_laplace`; ``loglik`` is the quadrature
        log-likelihood with all constants (lme4 reports its AGQ deviance on another constant:
        compare estimates, not log-likelihoods, with ``glmer(nAGQ > 1)``).
    """
    t0 = time.perf_counter()
    design = model.design
    check_model(design, "agq")
    structure = quadrature_structure(design)
    k_total = sum(t.n_columns for t in design.random)
    if n_quad**k_total > 10**7:
        raise OptionError(f"n_quad = {n_quad} gives {n_quad}^{k_total} nodes; use fewer")
    with blas_threads(1 if threads is None else threads):
        if start is None:  # start from the Laplace optimum
            lap, opt0 = fit_laplace_design(design, maxiter=max_iter)
            problem, x0 = lap.problem, opt0.x
        else:
            problem, x0 = PirlsProblem(design), None
        devfun = AGQDeviance(problem, int(n_quad), structure)
        if x0 is None:
            x0 = start_vector(devfun, start)
        t1 = time.perf_counter()
        opt = minimize_deviance(devfun, x0, maxiter=max_iter)
        timing = {"laplace_start": t1 - t0, "optimize": time.perf_counter() - t1}
        return likelihood_estimates(
            devfun,
            opt,
            "agq",
            timing,
            TITLE.format(n_quad=int(n_quad)),
            n_quad=int(n_quad),
            extra_info={"quadrature": structure["kind"]},
        )
