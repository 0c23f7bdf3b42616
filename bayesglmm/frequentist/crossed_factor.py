"""``H = A'WA + I`` of two crossed scalar random-effect terms, in memory linear in rows and levels.

With the levels of the larger term first (``r``) and of the other second (``c``),

.. math::

    H = \\begin{pmatrix} D_r & B \\\\ B' & D_c \\end{pmatrix}
      = D^{1/2} \\begin{pmatrix} I & \\hat B \\\\ \\hat B' & I \\end{pmatrix} D^{1/2},
    \\qquad \\hat B = D_r^{-1/2} B D_c^{-1/2},

``D_r``, ``D_c`` diagonal and ``B`` sparse with at most one non-zero per row of the data.
With ``G = \\hat B' \\hat B`` (eigenvalues in ``[0, 1)``):

- **solves**: the Schur complement of the scaled matrix is ``I - G``; conjugate gradients on
  it (Jacobi-preconditioned by construction: its condition number is ``1 / (1 - lambda_max)``)
  need a few dozen products with ``B`` per solve.
- **log-determinant**: ``log det H = sum log D + log det(I - G)`` and
  ``log det(I - G) = -tr G - tr(G^2) / 2 - sum_{j >= 3} tr(G^j) / j``. ``tr G =
  ||B_hat||_F^2`` and ``tr G^2 = ||G||_F^2`` are exact (the control variates; ``G`` is
  gathered one row at a time, never stored); the rest is estimated by Hutchinson's
  estimator with Rademacher probes held fixed for the whole fit (common random numbers:
  the estimated objective is a smooth function of the parameters), the series summed
  until its tail, bounded through the growth ratio of ``z'G^j z`` (which increases to
  ``lambda_max``), is below :data:`SERIES_TAIL`. The standard error of the estimate is
  the probes' sample standard deviation over ``sqrt(K)``. Most of the variance comes from
  the top eigenvector of ``G`` (the shift between the two terms' effects, which the data
  hardly see), close to ``s = D_c / |D_c|``: ``s'p(G)s`` is computed exactly (``s`` rides
  along as one more column) and each probe's value ``z'p(G)z`` is replaced by the unbiased
  ``z'p(G)z - ((s'z)^2 - 1) s'p(G)s``, which removes that share.
- **exact gradient of the estimate**: for ``p(G) = sum_j c_j G^j``,
  ``d z'p(G)z / d B_hat = 2 sum_a (B_hat q_a) x_a'`` on the pattern of ``B``, with
  ``x_a = G^a z`` and ``q_a = sum_b c_{a+b+1} x_b`` (``B_hat q_a`` from the stored
  ``B_hat x_b``), so the optimizer sees the derivative of the very function it minimizes.

No ``q x q`` matrix is formed: memory is ``O(n + q K m)`` for ``K`` probes and ``m`` terms.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: Rademacher probes of the log-determinant estimator
LOGDET_PROBES = 16
#: the series of log det(I - G) stops when its estimated tail is below this (absolute)
SERIES_TAIL = 1e-7
#: and after at most this many terms (the tail left is then added to the standard error)
MAX_TERMS = 400
#: conjugate gradients stop at this relative residual of the Schur system
CG_TOL = 1e-12
CG_MAX_ITER = 5000
#: the orders of the series below this are exact (``tr G`` and ``tr G^2``), the rest estimated
FIRST_RANDOM_ORDER = 3
#: seed of the probes when the user gives none (the fit is deterministic)
DEFAULT_SEED = 20260601


class CrossedPattern:
    """The sparsity pattern of ``B`` (fixed per design) and the probes (fixed per fit).

    Parameters
    ----------
    pair : ndarray (n,)
        For each row of the data, its non-zero of ``B`` (pairs sorted by ``r`` then ``c``).
    indptr, indices : ndarray
        CSR structure of ``B`` (``q_r x q_c``).
    q_r, q_c : int
    probes : int
    seed : int
    """

    def __init__(self, pair, indptr, indices, q_r: int, q_c: int, probes: int, seed: int):
        self.pair = np.asarray(pair, dtype=np.int64)
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.pc = np.asarray(indices, dtype=np.int64)
        self.q_r, self.q_c = int(q_r), int(q_c)
        self.nnz = self.pc.size
        self.pr = np.repeat(np.arange(self.q_r), np.diff(self.indptr))
        order = np.lexsort((self.pr, self.pc))  # the transpose: by c, then r
        self.perm_t = order
        self.indptr_t = np.concatenate([[0], np.cumsum(np.bincount(self.pc, minlength=self.q_c))])
        self.indices_t = self.pr[order]
        rng = np.random.default_rng(seed)
        self.probes = rng.choice([-1.0, 1.0], size=(self.q_c, probes))
        self.probes_r = rng.choice([-1.0, 1.0], size=(self.q_r, probes))


class CrossedFactor:
    """Solves, log-determinant (estimated) and its gradient for ``H`` of one ``(A, W)``.

    Offers the methods of :class:`bayesglmm.linalg.BlockCholesky` that PIRLS uses
    (``solve``, ``logdet``) in the caller's ordering (``first``: the rows of the ``r`` term).
    """

    def __init__(self, pattern: CrossedPattern, Dr, Dc, Bdata, first: slice, m: int) -> None:
        self.pattern = pt = pattern
        self.Dr, self.Dc = np.asarray(Dr, float), np.asarray(Dc, float)
        self.sr, self.sc = 1.0 / np.sqrt(self.Dr), 1.0 / np.sqrt(self.Dc)
        self.Bh = np.asarray(Bdata, float) * self.sr[pt.pr] * self.sc[pt.pc]
        shape = (pt.q_r, pt.q_c)
        self._Fm = sp.csr_matrix((self.Bh, pt.pc, pt.indptr), shape=shape)
        self._Ftm = sp.csr_matrix(
            (self.Bh[pt.perm_t], pt.indices_t, pt.indptr_t), shape=shape[::-1]
        )
        self.m = m
        self._idx_r = np.arange(first.start, first.stop)
        self._idx_c = np.setdiff1d(np.arange(m), self._idx_r)
        self.cg_iterations = 0
        self._logdet = None
        self.logdet_se = None
        self.series_terms = 0
        self._xs = None
        self._coef = None

    # ------------------------------------------------------------------ products
    def _F(self, X):
        """``B_hat X`` (``q_c x K`` to ``q_r x K``)."""
        return self._Fm @ X

    def _Ft(self, Y):
        return self._Ftm @ Y

    def _G(self, X):
        return self._Ft(self._F(X))

    def _cg(self, b: np.ndarray) -> np.ndarray:
        """``(I - G)^{-1} b`` by conjugate gradients, column by column (``b``: ``q_c x K``)."""
        x = np.zeros_like(b)
        r = b.copy()
        p = r.copy()
        rs = np.sum(r * r, axis=0)
        stop = (CG_TOL**2) * rs
        for it in range(1, CG_MAX_ITER + 1):  # noqa: B007
            if np.all(rs <= stop):
                break
            Ap = p - self._G(p)
            den = np.sum(p * Ap, axis=0)
            alpha = np.divide(rs, den, out=np.zeros_like(rs), where=den > 0)
            x += alpha * p
            r -= alpha * Ap
            rs_new = np.sum(r * r, axis=0)
            beta = np.divide(rs_new, rs, out=np.zeros_like(rs), where=rs > 0)
            p = r + beta * p
            rs = rs_new
        self.cg_iterations += it
        return x

    # ------------------------------------------------------------------ public
    def solve(self, b: np.ndarray) -> np.ndarray:
        """``H^{-1} b`` (``b`` of shape ``(q,)`` or ``(q, K)``)."""
        b = np.asarray(b, dtype=float)
        vec = b.ndim == 1
        B2 = b[:, None] if vec else b
        br = B2[self._idx_r] * self.sr[:, None]
        bc = B2[self._idx_c] * self.sc[:, None]
        yc = self._cg(bc - self._Ft(br))
        yr = br - self._F(yc)
        out = np.empty_like(B2)
        out[self._idx_r] = yr * self.sr[:, None]
        out[self._idx_c] = yc * self.sc[:, None]
        return out[:, 0] if vec else out

    def logdet(self) -> float:
        """Estimate of ``log det H`` (exact but for the stochastic series part)."""
        if self._logdet is None:
            self._estimate()
        return self._logdet

    def _estimate(self) -> None:
        from .crossed_kernels import trace_g2  # Numba: loaded with this solver only

        Z = self.pattern.probes
        K = Z.shape[1]
        # the control vector s ~ D_c (close to the top eigenvector of G, the shift between
        # the two terms' effects that the data hardly see): its series term is computed
        # exactly and its share of each probe's value subtracted (see the module docstring)
        norm = float(np.sqrt(self.Dc @ self.Dc))
        sv = self.Dc / norm
        Zs = np.column_stack([Z, sv])
        xs, ys = [Zs], []
        t = [np.sum(Zs * Zs, axis=0)]
        est = np.zeros(K + 1)
        f3s = np.zeros(Z.shape[0])  # p(G) s
        tail = 0.0
        j = 0
        for j in range(1, MAX_TERMS + 1):  # noqa: B007
            ys.append(self._F(xs[-1]))
            X = self._Ft(ys[-1])
            xs.append(X)
            tj = np.sum(Zs * X, axis=0)
            t.append(tj)
            if j >= FIRST_RANDOM_ORDER:
                est -= tj / j
                f3s -= X[:, K] / j
                prev = t[-2][:K]
                tk = tj[:K]
                rho = float(np.max(np.divide(tk, prev, out=np.zeros_like(tk), where=prev > 0)))
                rho = min(max(rho, 0.0), 1.0 - 1e-12)
                tail = float(np.mean(tk)) * rho / (1.0 - rho) / (j + 1)
                if tail < SERIES_TAIL:
                    tail = 0.0
                    break
        self.series_terms = j
        self._xs = xs[:-1]  # x_0 .. x_{m-1} (the last is not needed by the gradient)
        self._ys = ys  # y_b = B_hat x_b, b = 0 .. m-1
        self._coef = np.array(  # c_0 .. c_m
            [0.0] * FIRST_RANDOM_ORDER + [-1.0 / i for i in range(FIRST_RANDOM_ORDER, j + 1)]
        )
        # per probe: z'p(G)z - (s'z)^2 s'p(G)s + s'p(G)s, unbiased as E (s'z)^2 = 1
        sz = sv @ Z
        es = est[K]
        values = est[:K] + es * (1.0 - sz**2)
        self._control = {"s": sv, "norm": norm, "sz": sz, "es": es, "f3s": f3s}
        trG = float(np.sum(self.Bh**2))
        pt = self.pattern
        trG2, self._bg = trace_g2(pt.indptr, pt.pc, self.Bh, pt.indptr_t, pt.indices_t, pt.perm_t)
        se = float(np.std(values, ddof=1) / np.sqrt(K)) if K > 1 else np.inf
        self._series_mean = float(np.mean(values)) - tail
        self.logdet_se = float(np.hypot(se, tail))
        self._logdet = (
            float(np.sum(np.log(self.Dr)) + np.sum(np.log(self.Dc)))
            - trG
            - 0.5 * trG2
            + self._series_mean
        )

    def partials(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Derivatives of :meth:`logdet` in ``D_r``, ``D_c`` and the non-zeros of ``B``."""
        from .crossed_kernels import pattern_dot

        if self._xs is None:
            self._logdet = None
            self._estimate()
        pt = self.pattern
        xs, c = self._xs, self._coef
        m = len(xs)  # terms: c_1 .. c_m with m = series_terms
        K = pt.probes.shape[1]
        ctl = self._control
        # weight of each column in the estimate: 1/K per probe, 1 - mean (s'z)^2 for s
        weight = np.append(np.full(K, 1.0 / K), 1.0 - np.mean(ctl["sz"] ** 2))
        g = np.zeros(pt.nnz)
        # r_a = B_hat q_a with q_a = sum_b c_{a+b+1} x_b, from the stored y_b = B_hat x_b
        # (all a at once: one pass over the non-zeros with contiguous rows of m * K values)
        ab = np.add.outer(np.arange(m), np.arange(m)) + 1
        hankel = np.where(ab <= m, c[np.minimum(ab, m)], 0.0)
        Y = np.stack(self._ys, axis=1) * weight
        R = np.einsum("ab,lbk->lak", hankel, Y).reshape(pt.q_r, -1)
        self._ys = Y = None
        Xall = np.stack(xs, axis=1).reshape(pt.q_c, -1)
        self._xs = xs = None  # q K m: not kept once the gradient is known
        pattern_dot(pt.pr, pt.pc, R, Xall, g)
        gBh = -2.0 * self.Bh - 2.0 * self._bg + 2.0 * g
        gBhB = gBh * self.Bh
        gB = gBh * self.sr[pt.pr] * self.sc[pt.pc]
        gDr = (1.0 - 0.5 * np.bincount(pt.pr, weights=gBhB, minlength=pt.q_r)) / self.Dr
        gDc = (1.0 - 0.5 * np.bincount(pt.pc, weights=gBhB, minlength=pt.q_c)) / self.Dc
        # through s = D_c / |D_c| at fixed G
        sv = ctl["s"]
        gs = 2.0 * weight[K] * ctl["f3s"] - ctl["es"] * (2.0 / K) * (pt.probes @ ctl["sz"])
        gDc += (gs - sv * (sv @ gs)) / ctl["norm"]
        return gDr, gDc, gB

    def inverse_diagonal(self) -> np.ndarray:
        """Estimated diagonal of ``H^{-1}`` (caller's ordering).

        ``diag((I - G)^{-1}) = 1 + diag G + diag(G (I - G)^{-1} G)`` and
        ``diag((I - FF')^{-1}) = 1 + diag FF' + diag(F G (I - G)^{-1} F')`` (``F = B_hat``),
        the first two terms exact and the last by Hutchinson's diagonal estimator.
        """
        pt = self.pattern
        B2 = self.Bh**2
        Z = pt.probes
        GZ = self._G(Z)
        dc = 1.0 + np.bincount(pt.pc, weights=B2, minlength=pt.q_c)
        dc += np.mean(Z * self._G(self._cg(GZ)), axis=1)
        Zr = pt.probes_r
        V = self._Ft(Zr)
        dr = 1.0 + np.bincount(pt.pr, weights=B2, minlength=pt.q_r)
        dr += np.mean(Zr * self._F(self._cg(self._G(V))), axis=1)
        out = np.empty(self.m)
        out[self._idx_r] = dr / self.Dr
        out[self._idx_c] = dc / self.Dc
        return out
