"""Directions along which the likelihood never decreases: separation by linear programming.

For a GLMM with linear predictor :math:`\\eta = M d` (``M`` the columns of the fixed effects
with flat priors, possibly together with random-effect columns), each row restricts the
directions :math:`d` along which the likelihood stays bounded away from zero:

* a row whose response sits at the top of its support (a binary 1, a binomial ``y = n``)
  allows :math:`m_i^\\top d \\ge 0` (its probability increases to 1);
* a row at the bottom (a binary 0, a binomial ``y = 0``, a count ``y = 0``) allows
  :math:`m_i^\\top d \\le 0`;
* any other row (binomial ``0 < y < n``, a positive count, every Gaussian row) allows only
  :math:`m_i^\\top d = 0`: its likelihood tends to zero both ways. A binomial row with
  ``0 < y < n`` is a success row and a failure row at once.

The set of such directions is a polyhedral cone :math:`C`. Along any :math:`d \\in C` the
likelihood is non-decreasing, so a flat prior on the span of :math:`d` gives an improper
posterior; :math:`C = \\{0\\}` is "no complete or quasi-complete separation" (Albert &
Anderson 1984). The cone is computed by one linear program that finds the rows that are
*implicit equalities* of :math:`C` (rows that no direction in :math:`C` can move):

.. math::

    \\max_{d, t} \\sum_i t_i \\quad \\text{s.t.}\\quad s_i m_i^\\top d \\ge t_i,\\;
    0 \\le t_i \\le 1, \\quad m_j^\\top d = 0 \\text{ for equality rows}.

Because :math:`C` is a cone, the optimum has :math:`t_i = 1` exactly for the rows that some
direction moves strictly and :math:`t_i = 0` for the implicit equalities, and the optimal
:math:`d` moves all of the former at once (a relative-interior direction). The dimension of
:math:`C` is ``M.shape[1]`` minus the rank of the implicit-equality rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: an LP slack t_i above this counts as "moved strictly" (t is 0 or 1 at the optimum; the
#: HiGHS primal feasibility tolerance is 1e-7, so any cut in (1e-6, 1 - 1e-6) is equivalent)
STRICT_CUT = 0.5
#: dense SVD rank for matrices with at most this many entries; above it, a Gram matrix
DENSE_ENTRIES = 4_000_000
#: largest number of columns whose Gram matrix is eigendecomposed for a rank
MAX_GRAM_COLUMNS = 4000


class TooLargeError(RuntimeError):
    """The exact rank computation would need a dense matrix too large for memory."""


@dataclass
class Cone:
    """The cone of non-decreasing directions of one design.

    Attributes
    ----------
    dim : int
        Dimension of the cone (0: no separating direction).
    direction : ndarray
        A direction in the relative interior of the cone, in the original column units,
        scaled to unit max-norm; zeros when no row can move (then the cone, if not
        ``{0}``, is a subspace along which every row stays put).
    strict_rows : ndarray of int
        Rows whose linear predictor the direction moves strictly (towards their observed
        response).
    n_rows : int
        Rows that constrain the cone.
    """

    dim: int
    direction: np.ndarray
    strict_rows: np.ndarray
    n_rows: int

    @property
    def trivial(self) -> bool:
        return self.dim == 0


def matrix_rank(M) -> int:
    """Numerical rank of a dense or sparse matrix (columns rescaled to unit norm first)."""
    if sp.issparse(M):
        M = M.tocsc()
    n, k = M.shape
    if n == 0 or k == 0:
        return 0
    norms = (
        np.sqrt(np.asarray(M.multiply(M).sum(axis=0)).ravel())
        if sp.issparse(M)
        else np.sqrt((np.asarray(M) ** 2).sum(axis=0))
    )
    keep = norms > 0
    if not np.any(keep):
        return 0
    scale = 1.0 / norms[keep]
    if n * k <= DENSE_ENTRIES:
        dense = M[:, np.flatnonzero(keep)]
        dense = dense.toarray() if sp.issparse(dense) else np.asarray(dense, dtype=float)
        return int(np.linalg.matrix_rank(dense * scale))
    if int(keep.sum()) > MAX_GRAM_COLUMNS:
        raise TooLargeError(
            f"rank of a {n} x {k} matrix: more than {MAX_GRAM_COLUMNS} non-zero columns"
        )
    Ms = sp.csc_matrix(M)[:, np.flatnonzero(keep)] @ sp.diags(scale)
    gram = (Ms.T @ Ms).toarray()
    eig = np.linalg.eigvalsh(gram)
    tol = eig.max() * gram.shape[0] * np.finfo(float).eps * 100
    return int((eig > tol).sum())


def _unique_rows(M, signs: np.ndarray):
    """Drop duplicate (row, sign) pairs: many designs repeat the same row."""
    if sp.issparse(M):
        M = sp.csr_matrix(M)
        seen: dict = {}
        keep = []
        for i in range(M.shape[0]):
            lo, hi = M.indptr[i], M.indptr[i + 1]
            key = (signs[i], M.indices[lo:hi].tobytes(), M.data[lo:hi].tobytes())
            if key not in seen:
                seen[key] = i
                keep.append(i)
        idx = np.asarray(keep, dtype=np.int64)
        return M[idx], signs[idx], idx
    A = np.column_stack([np.asarray(M, dtype=float), signs])
    _, idx = np.unique(A, axis=0, return_index=True)
    idx = np.sort(idx)
    return np.asarray(M)[idx], signs[idx], idx


def recession_cone(M, signs: np.ndarray) -> Cone:
    """The cone of directions along which no row's likelihood decreases.

    Parameters
    ----------
    M : array or sparse matrix, shape (n, k)
        Columns of the linear predictor that move.
    signs : ndarray of int, shape (n,)
        Per row: ``+1`` (may increase), ``-1`` (may decrease), ``0`` (must stay), or
        ``2`` (unconstrained: a binomial row with no trials).

    Returns
    -------
    Cone
    """
    signs = np.asarray(signs, dtype=np.int64)
    use = signs != 2
    M = M[np.flatnonzero(use)] if sp.issparse(M) else np.asarray(M, dtype=float)[use]
    signs = signs[use]
    rows_orig = np.flatnonzero(use)
    k = M.shape[1]
    if k == 0:
        return Cone(0, np.zeros(0), np.zeros(0, dtype=np.int64), int(signs.size))
    if sp.issparse(M):
        norms = np.sqrt(np.asarray(sp.csc_matrix(M).multiply(M).sum(axis=0)).ravel())
    else:
        norms = np.sqrt((M**2).sum(axis=0))
    norms[norms == 0] = 1.0
    Ms = (sp.csr_matrix(M) @ sp.diags(1.0 / norms)) if sp.issparse(M) else M / norms
    Mu, su, idx = _unique_rows(Ms, signs)
    rows_u = rows_orig[idx]

    ineq = su != 0
    n_ineq = int(ineq.sum())
    strict_u = np.zeros(su.size, dtype=bool)
    d = np.zeros(k)
    if n_ineq:
        A = Mu[np.flatnonzero(ineq)]
        S = sp.diags(su[ineq].astype(float))
        A_ub = sp.hstack([-(S @ sp.csr_matrix(A)), sp.identity(n_ineq)], format="csr")
        b_ub = np.zeros(n_ineq)
        eq = np.flatnonzero(~ineq)
        A_eq = b_eq = None
        if eq.size:
            A_eq = sp.hstack(
                [sp.csr_matrix(Mu[eq]), sp.csr_matrix((eq.size, n_ineq))], format="csr"
            )
            b_eq = np.zeros(eq.size)
        c = np.concatenate([np.zeros(k), -np.ones(n_ineq)])
        bounds = [(None, None)] * k + [(0.0, 1.0)] * n_ineq
        from scipy.optimize import linprog  # imported when used (slow to import)

        res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if res.status != 0:
            raise RuntimeError(f"separation linear program failed: {res.message}")
        t = res.x[k:]
        strict_u[np.flatnonzero(ineq)] = t > STRICT_CUT
        if strict_u.any():
            d = res.x[:k]
    implicit = ~strict_u
    rank = matrix_rank(Mu[np.flatnonzero(implicit)]) if implicit.any() else 0
    dim = k - rank
    direction = np.zeros(k)
    if strict_u.any():
        direction = d / norms
        direction = direction / np.abs(direction).max()
    return Cone(dim, direction, np.sort(rows_u[strict_u]), int(signs.size))
