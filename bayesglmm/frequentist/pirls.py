"""Penalized iteratively reweighted least squares (PIRLS) on the sparse design.

With ``b = Lambda(theta) u``, ``u ~ N(0, I)`` and ``eta = X beta + Z Lambda u + offset``,
the conditional mode ``u_hat`` of the spherical random effects minimizes the penalized
deviance

.. math::

    d(u) = -2 \\sum_i \\log p(y_i \\mid \\eta_i) + \\|u\\|^2 .

PIRLS takes Fisher-scoring steps ``H delta = A' s - u`` with ``A = Z Lambda``, score ``s``,
Fisher weights ``W`` and ``H = A' W A + I = L L'``, halving a step that does not lower
``d``. At the mode, the Laplace approximation of ``-2 log L(theta, beta)`` is

.. math::

    d(\\hat u) + \\log\\det(A' W A + I),

lme4's criterion for ``nAGQ = 1`` (``log det`` with Fisher weights, as lme4).

``Z`` is never formed: each row of the data has one non-zero per random-effect column of each
term (``K`` of them), so ``A`` is held as ``n x K`` values with their column indices, and
``H`` is filled by ``np.bincount`` on a pattern computed once per design and factored by
:class:`bayesglmm.linalg.BlockCholesky` (the largest term's block-diagonal part eliminated
exactly).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..model import linalg
from ..model.linalg import BlockCholesky
from .covariance import CovarianceFactor
from .response import Response, ResponseTerms
from .structured import covariance_factor

#: PIRLS stops when the largest Newton step in u is below this (u is on the N(0, 1) scale)
U_TOL = 1e-9
#: and gives up after this many iterations
MAX_ITER = 100
#: step halvings tried before a step is declared not to decrease the penalized deviance
MAX_HALVINGS = 20
#: chord steps (stale factor, one solve each) tried from a warm start
CHORD_STEPS = 6
#: the coupling block of H (first term x the rest) is kept dense up to this many entries
DENSE_COUPLING = 250_000


@dataclass
class PirlsState:
    """The conditional modes at one ``(theta, beta)`` and the pieces of the Laplace deviance.

    Attributes
    ----------
    theta, beta : ndarray
    dispersion : float
        Gaussian ``sigma`` or negative-binomial ``alpha`` (1 otherwise).
    u : ndarray (q,)
        Conditional modes of the spherical random effects.
    eta : ndarray (n,)
    terms : ResponseTerms
        Log-likelihood, score and weights at ``eta``.
    Aval : ndarray (n, K)
        Values of ``A = Z Lambda`` per row and slot.
    factor : BlockCholesky
        ``A' W A + I = L L'`` at the mode.
    pdev : float
        Penalized deviance ``-2 loglik + |u|^2``.
    logdet : float
        ``log det(A' W A + I)``.
    iterations : int
    converged : bool
    """

    theta: np.ndarray
    beta: np.ndarray
    dispersion: float
    u: np.ndarray
    eta: np.ndarray
    terms: ResponseTerms
    Aval: np.ndarray
    factor: BlockCholesky
    pdev: float
    logdet: float
    iterations: int
    converged: bool
    info: dict = field(default_factory=dict)

    @property
    def deviance(self) -> float:
        """Laplace approximation of ``-2 log L`` (all constants included)."""
        return self.pdev + self.logdet

    @property
    def loglik_conditional(self) -> float:
        return float(self.terms.loglik.sum())


class PirlsProblem:
    """The data of one GLMM laid out for repeated PIRLS solves.

    Parameters
    ----------
    design : Design
    cov : CovarianceFactor, optional
    y : ndarray, optional
        A replacement response (the parametric bootstrap refits simulated responses on the
        same design).
    """

    def __init__(
        self, design, cov: CovarianceFactor | None = None, y=None, curvature: str = "fisher"
    ) -> None:
        if curvature not in ("fisher", "observed"):
            raise ValueError(f"curvature must be 'fisher' or 'observed', got {curvature!r}")
        #: weights in log det H: Fisher (lme4) or observed (glmmTMB, the textbook Laplace);
        #: the same for canonical links; a family whose ``W`` is only a working weight
        #: (the beta-binomial: ``fisher_information`` False) always takes the observed one
        if not getattr(design.family, "fisher_information", True):
            curvature = "observed"
        self.curvature = curvature
        self.design = design
        self.cov = cov if cov is not None else covariance_factor(design)
        self.response = Response(
            design.family,
            design.y if y is None else y,
            design.trials,
            getattr(design, "weights", None),
        )
        self.X = np.asarray(design.X, dtype=float)
        self.offset = np.asarray(design.offset, dtype=float)
        self.n, self.p = self.X.shape
        self.q = self.cov.q
        terms = design.random
        # slots: one per (term, column); cols[i, j] = column of u touched by row i in slot j
        slot_cols, slot_term, slot_comp = [], [], []
        #: per term: None, or (columns, values) of L's rows padded to one width (relmat)
        self.term_rows: list[tuple[np.ndarray, np.ndarray] | None] = []
        for t_i, (t, lo) in enumerate(zip(terms, self.cov.offsets[:-1], strict=True)):
            if t.relmat is not None:
                # row i touches the columns of L's row at its level: b = sigma L u
                nz_cols, nz_vals = _padded_rows(t.relmat)
                self.term_rows.append((nz_cols, nz_vals))
                for m in range(nz_cols.shape[1]):
                    slot_cols.append(lo + nz_cols[t.index, m])
                    slot_term.append(t_i)
                    slot_comp.append(0)
                continue
            self.term_rows.append(None)
            for c in range(t.n_columns):
                slot_cols.append(lo + t.index * t.n_columns + c)
                slot_term.append(t_i)
                slot_comp.append(c)
        self.K = len(slot_cols)
        self.cols = np.column_stack(slot_cols) if slot_cols else np.zeros((self.n, 0), int)
        self.slot_term = np.asarray(slot_term, dtype=int)
        self.slot_comp = np.asarray(slot_comp, dtype=int)
        self.term_X = [np.asarray(t.X, dtype=float) for t in terms]
        self._setup_pattern()

    def with_response(self, y: np.ndarray) -> PirlsProblem:
        """The same layout with another response (parametric bootstrap)."""
        out = copy.copy(self)
        out.response = Response(
            self.design.family, y, self.design.trials, getattr(self.design, "weights", None)
        )
        return out

    # ----------------------------------------------------------------------- structure
    def _setup_pattern(self) -> None:
        """Sparsity pattern of ``H``: the largest term block-diagonal, the rest coupled."""
        first, k1 = linalg.term_blocks(self.design)
        if first is None:
            first, k1 = slice(0, 0), 1
        self.first, self.k1 = first, k1
        q1 = first.stop - first.start
        q2 = self.q - q1
        self.q1, self.q2 = q1, q2
        in1 = (self.cols >= first.start) & (self.cols < first.stop) if self.K else None
        s1 = np.flatnonzero(in1[0]) if self.K else np.zeros(0, int)
        s2 = np.setdiff1d(np.arange(self.K), s1)
        self.s1, self.s2 = s1, s2
        n = self.n
        # D: blocks of the first term
        if s1.size:
            lvl = (self.cols[:, s1[0]] - first.start) // k1
            c1, c2 = np.meshgrid(np.arange(k1), np.arange(k1), indexing="ij")
            self._d_index = (lvl[:, None, None] * k1 * k1 + c1 * k1 + c2).reshape(n, -1)
            self._n_blocks = q1 // k1
        local2 = self.cols[:, s2] - np.where(self.cols[:, s2] >= first.stop, q1, 0)
        self._local2 = local2
        if s1.size and s2.size:
            r = np.repeat((self.cols[:, s1] - first.start)[:, :, None], s2.size, axis=2)
            c = np.repeat(local2[:, None, :], s1.size, axis=1)
            lin = (r * q2 + c).reshape(n, -1)
            self._b_dense = q1 * q2 <= DENSE_COUPLING
            if self._b_dense:
                self._b_lin = lin
            uniq, inv = np.unique(lin, return_inverse=True)
            self._b_inv = inv.reshape(n, -1)
            rows, bcols = np.divmod(uniq, q2)
            self._b_indices = bcols.astype(np.int32)
            self._b_indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=q1))])
            self._b_nnz = uniq.size
        if s2.size:
            r = np.repeat(local2[:, :, None], s2.size, axis=2)
            c = np.repeat(local2[:, None, :], s2.size, axis=1)
            lin = (r * q2 + c).reshape(n, -1)
            uniq, inv = np.unique(lin, return_inverse=True)
            self._c_inv = inv.reshape(n, -1)
            self._c_uniq = uniq
        # pairs of slots within a row, for selected entries of H^{-1}
        if self.K:
            j1, j2 = np.triu_indices(self.K)
            lin = self.cols[:, j1].astype(np.int64) * self.q + self.cols[:, j2]
            uniq, inv = np.unique(lin, return_inverse=True)
            self._pair_j = (j1, j2)
            self._pair_uniq = np.divmod(uniq, self.q)
            self._pair_inv = inv.reshape(n, -1)

    # ----------------------------------------------------------------------- pieces
    def A_values(self, theta: np.ndarray) -> np.ndarray:
        """``A = Z Lambda(theta)`` as ``n x K`` values (slot j at column ``cols[:, j]``)."""
        out = np.empty((self.n, self.K))
        j = 0
        for t, Xt, rows, dt in zip(
            self.cov.terms, self.term_X, self.term_rows, self.design.random, strict=True
        ):
            if rows is not None:
                w = rows[1].shape[1]
                out[:, j : j + w] = (Xt[:, :1] * theta[t.start]) * rows[1][dt.index]
                j += w
                continue
            out[:, j : j + t.k] = Xt @ t.T(theta)
            j += t.k
        return out

    def A_mul(self, Aval: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``A u``."""
        if not self.K:
            return np.zeros(self.n)
        return np.einsum("ij,ij->i", Aval, u[self.cols])

    def At_mul(self, Aval: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``A' v``."""
        return np.bincount(self.cols.ravel(), weights=(Aval * v[:, None]).ravel(), minlength=self.q)

    def factor(self, Aval: np.ndarray, W: np.ndarray) -> BlockCholesky:
        """``A' diag(W) A + I = L L'``."""
        s1, s2, k1 = self.s1, self.s2, self.k1
        if s1.size:
            a1 = Aval[:, s1]
            prod = (W[:, None, None] * a1[:, :, None] * a1[:, None, :]).reshape(self.n, -1)
            D = np.bincount(
                self._d_index.ravel(), weights=prod.ravel(), minlength=self._n_blocks * k1 * k1
            ).reshape(self._n_blocks, k1, k1)
            D += np.eye(k1)
        else:
            D = np.zeros((0, 1, 1))
        if s1.size and s2.size:
            wa1 = W[:, None] * Aval[:, s1]
            prod = (wa1[:, :, None] * Aval[:, None, s2]).reshape(self.n, -1)
            if self._b_dense:
                B = np.bincount(
                    self._b_lin.ravel(), weights=prod.ravel(), minlength=self.q1 * self.q2
                ).reshape(self.q1, self.q2)
            else:
                data = np.bincount(self._b_inv.ravel(), weights=prod.ravel(), minlength=self._b_nnz)
                B = sp.csr_matrix((data, self._b_indices, self._b_indptr), shape=(self.q1, self.q2))
        else:
            B = sp.csr_matrix((self.q1, self.q2))
        if s2.size:
            a2 = Aval[:, s2]
            prod = (W[:, None, None] * a2[:, :, None] * a2[:, None, :]).reshape(self.n, -1)
            data = np.bincount(
                self._c_inv.ravel(), weights=prod.ravel(), minlength=self._c_uniq.size
            )
            if self.q2 > linalg.DENSE_LIMIT:
                r, c = np.divmod(self._c_uniq, self.q2)
                C = sp.csc_matrix((data, (r, c)), shape=(self.q2, self.q2)) + sp.eye(self.q2)
            else:
                C = np.zeros(self.q2 * self.q2)
                C[self._c_uniq] = data
                C = C.reshape(self.q2, self.q2)
                C[np.diag_indices(self.q2)] += 1.0
        else:
            C = np.zeros((0, 0))
        return BlockCholesky.from_parts(D, B, C, self.first, self.q)

    def row_inverse_blocks(self, factor: BlockCholesky) -> np.ndarray:
        """``G[i] = H^{-1}[cols_i, cols_i]``, the ``K x K`` block of each row."""
        rows, cols = self._pair_uniq
        vals = factor.inverse_entries(rows, cols)[self._pair_inv]
        G = np.empty((self.n, self.K, self.K))
        j1, j2 = self._pair_j
        G[:, j1, j2] = vals
        G[:, j2, j1] = vals
        return G

    # ----------------------------------------------------------------------- PIRLS
    def eta_fixed(self, beta: np.ndarray) -> np.ndarray:
        return self.X @ beta + self.offset

    def solve(
        self,
        theta: np.ndarray,
        beta: np.ndarray,
        dispersion: float = 1.0,
        u0: np.ndarray | None = None,
        tol: float = U_TOL,
        max_iter: int = MAX_ITER,
        factor0: BlockCholesky | None = None,
    ) -> PirlsState:
        """Conditional modes ``u_hat(theta, beta)`` by PIRLS, warm-started at ``u0``.

        ``factor0``, the factor of a nearby state, allows cheap chord steps (Newton steps with
        that stale Hessian: one solve each, no factorization) before the first
        factorization; from a good warm start they reach the mode to within ``tol``, so
        that one factorization at the mode is all that is left.
        """
        # trial steps may overflow exp(eta); step halving rejects them
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._solve(theta, beta, dispersion, u0, tol, max_iter, factor0)

    def _solve(self, theta, beta, dispersion, u0, tol, max_iter, factor0) -> PirlsState:
        theta = np.asarray(theta, dtype=float)
        beta = np.asarray(beta, dtype=float)
        Aval = self.A_values(theta)
        eta0 = self.eta_fixed(beta)
        u = np.zeros(self.q) if u0 is None else np.array(u0, dtype=float)
        resp = self.response

        def evaluate(u):
            eta = eta0 + self.A_mul(Aval, u)
            tr = resp.terms(eta, dispersion)
            return eta, tr, float(-2.0 * tr.loglik.sum() + u @ u)

        newton = not resp.canonical
        eta, tr, pdev = evaluate(u)
        if factor0 is not None:
            last = np.inf
            for _ in range(CHORD_STEPS):
                delta = factor0.solve(self.At_mul(Aval, tr.score) - u)
                size = np.max(np.abs(delta), initial=0.0)
                if not np.isfinite(size) or size > 0.5 * last:
                    break
                eta_new, tr_new, pdev_new = evaluate(u + delta)
                if not pdev_new <= pdev:
                    break
                u, eta, tr, pdev, last = u + delta, eta_new, tr_new, pdev_new, size
                if size < tol:
                    break
        converged = False
        it = 0
        for it in range(1, max_iter + 1):  # noqa: B007
            fac = None
            if newton:  # Newton steps (quadratic convergence) where H_obs is positive definite
                W_obs = resp.terms(eta, dispersion, second=True).W_obs
                try:
                    fac = self.factor(Aval, W_obs)
                except linalg.NotPositiveDefiniteError:
                    fac = None
            fac = self.factor(Aval, tr.W) if fac is None else fac
            delta = fac.solve(self.At_mul(Aval, tr.score) - u)
            if not np.all(np.isfinite(delta)):
                break
            if np.max(np.abs(delta), initial=0.0) < tol:
                converged = True
                break
            step = 1.0
            for _ in range(MAX_HALVINGS):
                u_new = u + step * delta
                eta_new, tr_new, pdev_new = evaluate(u_new)
                if np.isfinite(pdev_new) and pdev_new <= pdev + 1e-10 * abs(pdev):
                    break
                step *= 0.5
            else:
                # no decrease along the step: at the mode to machine precision
                converged = np.max(np.abs(delta)) < 1e-5
                break
            u, eta, tr, pdev = u_new, eta_new, tr_new, pdev_new
        else:
            fac = None
        if fac is None or newton:
            fac = self.factor(Aval, self._logdet_weights(tr, eta, dispersion))
        return PirlsState(
            theta=theta,
            beta=beta,
            dispersion=dispersion,
            u=u,
            eta=eta,
            terms=tr,
            Aval=Aval,
            factor=fac,
            pdev=pdev,
            logdet=fac.logdet(),
            iterations=it,
            converged=converged,
        )

    # ----------------------------------------------------------------------- nAGQ = 0
    def solve_joint(
        self,
        theta: np.ndarray,
        beta: np.ndarray,
        dispersion: float = 1.0,
        u0: np.ndarray | None = None,
        tol: float = U_TOL,
        max_iter: int = MAX_ITER,
    ) -> PirlsState:
        """Joint conditional mode of ``(u, beta)`` given ``theta`` (lme4's ``nAGQ = 0``).

        Fisher-scoring steps on the penalized deviance over ``u`` and ``beta`` together,
        with ``beta`` eliminated through the Schur complement
        ``X'WX - X'WA (A'WA + I)^{-1} A'WX`` (``p`` extra solves per step). The state's
        ``deviance`` (penalized deviance plus ``log det(A'WA + I)`` at the joint mode) is
        lme4's ``nAGQ = 0`` criterion, a function of ``theta`` only; ``beta`` holds the
        profiled fixed effects.
        """
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._solve_joint(theta, beta, dispersion, u0, tol, max_iter)

    def _solve_joint(self, theta, beta, dispersion, u0, tol, max_iter) -> PirlsState:
        theta = np.asarray(theta, dtype=float)
        beta = np.array(beta, dtype=float)
        Aval = self.A_values(theta)
        u = np.zeros(self.q) if u0 is None else np.array(u0, dtype=float)
        resp, X = self.response, self.X

        def evaluate(u, beta):
            eta = X @ beta + self.offset + self.A_mul(Aval, u)
            tr = resp.terms(eta, dispersion)
            return eta, tr, float(-2.0 * tr.loglik.sum() + u @ u)

        eta, tr, pdev = evaluate(u, beta)
        converged = False
        it = 0
        for it in range(1, max_iter + 1):  # noqa: B007
            W = tr.W
            fac = self.factor(Aval, W)
            r_u = self.At_mul(Aval, tr.score) - u
            r_b = X.T @ tr.score
            Hub = np.column_stack([self.At_mul(Aval, W * X[:, j]) for j in range(self.p)])
            FHub = np.column_stack([fac.solve(Hub[:, j]) for j in range(self.p)])
            S = X.T @ (W[:, None] * X) - Hub.T @ FHub
            Fr = fac.solve(r_u)
            try:
                d_beta = np.linalg.solve(S, r_b - Hub.T @ Fr)
            except np.linalg.LinAlgError:
                break
            d_u = Fr - FHub @ d_beta
            # the size of a step in eta units does not depend on the scale of X's columns
            size = max(np.max(np.abs(d_u), initial=0.0), np.max(np.abs(X @ d_beta)))
            if not np.isfinite(size):
                break
            if size < tol:
                converged = True
                break
            step = 1.0
            for _ in range(MAX_HALVINGS):
                new = evaluate(u + step * d_u, beta + step * d_beta)
                if np.isfinite(new[2]) and new[2] <= pdev + 1e-10 * abs(pdev):
                    break
                step *= 0.5
            else:
                converged = size < 1e-5
                break
            u, beta = u + step * d_u, beta + step * d_beta
            eta, tr, pdev = new
        fac = self.factor(Aval, self._logdet_weights(tr, eta, dispersion))
        return PirlsState(
            theta=theta,
            beta=beta,
            dispersion=dispersion,
            u=u,
            eta=eta,
            terms=tr,
            Aval=Aval,
            factor=fac,
            pdev=pdev,
            logdet=fac.logdet(),
            iterations=it,
            converged=converged,
        )

    # ----------------------------------------------------------------------- gradient
    def gradient(self, st: PirlsState) -> tuple[np.ndarray, np.ndarray]:
        """Exact gradient of the Laplace deviance in ``(theta, beta)`` at the mode.

        By the envelope theorem the penalized deviance contributes its partial derivatives
        at fixed ``u``; ``log det H`` depends on the parameters directly (through ``A``) and
        through ``eta(u_hat)``, whose derivative needs ``du_hat/dp = -H_obs^{-1} d(A's - u)/dp``
        and the diagonal of ``A H^{-1} A'`` (selected entries of ``H^{-1}``).
        """
        if any(getattr(t, "structure", None) for t in self.cov.terms):
            raise NotImplementedError("structured terms: theta is not the entries of T")
        resp = self.response
        tr = resp.terms(st.eta, st.dispersion, second=True)
        observed = self.curvature == "observed" and not resp.canonical
        W_ld, dW_ld = tr.W, tr.dW  # the weights inside log det H and their derivative
        if observed:
            W_ld, dW_ld = tr.W_obs, self._dW_obs(st.eta, st.dispersion)
        Aval, u = st.Aval, st.u
        G = self.row_inverse_blocks(st.factor)
        st.factor._S_inv = None  # q2 x q2: not worth keeping once G is known
        Ga = np.einsum("ijk,ik->ij", G, Aval)
        h = np.einsum("ij,ij->i", Aval, Ga)
        c = dW_ld * h
        if resp.canonical or observed:
            fac_obs = st.factor
        else:
            fac_obs = self.factor(Aval, tr.W_obs)
        v = fac_obs.solve(self.At_mul(Aval, c))
        Av = self.A_mul(Aval, v)
        s = tr.score
        g_beta = self.X.T @ (-2.0 * s + c - tr.W_obs * Av)
        g_theta = np.zeros(self.cov.n_theta)
        j0 = 0
        for t, Xt in zip(self.cov.terms, self.term_X, strict=True):
            slots = np.arange(j0, j0 + t.k)
            uc = u[self.cols[:, slots]]  # (n, k): u of row i's level, per column c
            vc = v[self.cols[:, slots]]
            for e, (r, cc) in enumerate(zip(t.rows, t.cols, strict=True)):
                xr = Xt[:, r]
                dAu = xr * uc[:, cc]
                dAv = xr * vc[:, cc]
                g = -2.0 * s @ dAu + c @ dAu + s @ dAv - (Av * tr.W_obs) @ dAu
                g += 2.0 * np.sum(W_ld * xr * Ga[:, slots[cc]])
                g_theta[t.start + e] = g
            j0 += t.k
        return g_theta, g_beta

    def _logdet_weights(self, tr: ResponseTerms, eta, dispersion) -> np.ndarray:
        if self.curvature == "observed" and not self.response.canonical:
            return self.response.terms(eta, dispersion, second=True).W_obs
        return tr.W

    def _dW_obs(self, eta: np.ndarray, dispersion: float) -> np.ndarray:
        """``d W_obs / d eta`` (third derivative of the log-likelihood), by central
        differences per row: a scalar smooth function, accurate to ~1e-9 relative."""
        h = 1e-5 * np.maximum(1.0, np.abs(eta))
        up = self.response.terms(eta + h, dispersion, second=True).W_obs
        down = self.response.terms(eta - h, dispersion, second=True).W_obs
        return (up - down) / (2.0 * h)

    # ----------------------------------------------------------------------- reporting
    def conditional_variances(self, st: PirlsState) -> list[np.ndarray]:
        """``Var(b | y)`` per term, ``(n_levels, k, k)``: ``T H^{-1}_{ll} T'`` per level."""
        out = []
        for t, lo in zip(self.cov.terms, self.cov.offsets[:-1], strict=True):
            if getattr(t, "structure", None) == "relmat":
                out.append(_relmat_conditional_variances(t, lo, st))
                continue
            k, L = t.k, t.n_levels
            base = lo + np.arange(L)[:, None, None] * k
            r = np.broadcast_to(base + np.arange(k)[None, :, None], (L, k, k)).ravel()
            c = np.broadcast_to(base + np.arange(k)[None, None, :], (L, k, k)).ravel()
            Hinv = st.factor.inverse_entries(r, c).reshape(L, k, k)
            T = t.T(st.theta)
            out.append(T[None] @ Hinv @ T.T[None])
        return out


def _padded_rows(L: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Columns and values of each row of the sparse ``L``, padded to the longest row with
    the row's own (diagonal) column and value zero."""
    L = sp.csr_matrix(L)
    m = L.shape[0]
    counts = np.diff(L.indptr)
    w = int(counts.max(initial=1))
    cols = np.repeat(np.arange(m)[:, None], w, axis=1)
    vals = np.zeros((m, w))
    pos = np.arange(L.nnz) - np.repeat(L.indptr[:-1], counts)
    row = np.repeat(np.arange(m), counts)
    cols[row, pos] = L.indices
    vals[row, pos] = L.data
    return cols, vals


def _relmat_conditional_variances(t, lo: int, st: PirlsState) -> np.ndarray:
    """``Var(b | y) = sigma^2 diag(L H^{-1} L')`` of a relationship-matrix term, ``(m, 1, 1)``."""
    m = t.n_levels
    idx = lo + np.arange(m)
    r, c = np.meshgrid(idx, idx, indexing="ij")
    Hinv = st.factor.inverse_entries(r.ravel(), c.ravel()).reshape(m, m)
    L = t.L.toarray()
    sig = st.theta[t.start]
    v = sig * sig * np.einsum("ij,jk,ik->i", L, Hinv, L)
    return v[:, None, None]
