"""Cholesky factorization of the sparse SPD matrices of mixed models.

The penalized Hessians of a GLMM, ``Lambda' Z' W Z Lambda + I`` and the Gibbs precision
``[X Z]' Omega [X Z] + prior precision``, have one structure worth exploiting: the columns of
any single random-effect term form a block-diagonal sub-matrix (each row of the data belongs
to one level). :class:`BlockCholesky` eliminates the largest such term exactly, block by
block, and factors the Schur complement of the rest densely (or with SuperLU when it is
large). For a crossed 1,000 x 1,000 design this costs a few milliseconds, where a general
sparse factorization fills in to a near-dense 2,000 x 2,000 factor.

All public methods work in the caller's ordering; the permutation is internal.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ..errors import BayesGLMMError

#: above this size the Schur complement is factored sparsely (SuperLU) instead of densely
DENSE_LIMIT = 6000


class NotPositiveDefiniteError(BayesGLMMError, np.linalg.LinAlgError):
    """The matrix to factor is not positive definite."""


def _block_chol(blocks: np.ndarray) -> np.ndarray:
    k = blocks.shape[1]
    if k == 1:
        d = blocks[:, 0, 0]
        if np.any(d <= 0) or not np.all(np.isfinite(d)):
            raise NotPositiveDefiniteError("a diagonal block is not positive definite")
        return np.sqrt(d)[:, None, None]
    try:
        return np.linalg.cholesky(blocks)
    except np.linalg.LinAlgError:
        raise NotPositiveDefiniteError("a diagonal block is not positive definite") from None


class BlockCholesky:
    """``A = L L'`` for a symmetric positive-definite ``A`` whose leading block is block-diagonal.

    Parameters
    ----------
    A : sparse or dense matrix, shape (m, m)
    first : slice
        Rows/columns of ``A`` forming a block-diagonal sub-matrix with blocks of size
        ``block`` (the random effects of one term, level-major). ``None`` factors densely.
    block : int
        Size of the diagonal blocks inside ``first``.
    """

    def __init__(self, A, first: slice | None = None, block: int = 1) -> None:
        m = A.shape[0]
        self.m = m
        if first is None or first.stop - first.start == 0:
            idx1 = np.arange(0)
        else:
            idx1 = np.arange(first.start, first.stop)
        idx2 = np.setdiff1d(np.arange(m), idx1)
        self._idx1, self._idx2 = idx1, idx2
        self.block = block
        A = sp.csr_matrix(A) if not sp.issparse(A) else A.tocsr()
        n1 = idx1.size
        if n1:
            A11 = A[idx1][:, idx1]
            nb = n1 // block
            dense_blocks = np.zeros((nb, block, block))
            coo = A11.tocoo()
            bi, bj = coo.row // block, coo.col // block
            if np.any(bi != bj):
                raise ValueError("the leading sub-matrix is not block diagonal")
            dense_blocks[bi, coo.row % block, coo.col % block] = coo.data
            self._L11 = _block_chol(dense_blocks)
            self._L11inv = np.linalg.inv(self._L11) if block > 1 else 1.0 / self._L11
            A12 = A[idx1][:, idx2].tocsc()
            self._W = self._apply_L11inv_sparse(A12)  # L11^{-1} A12, sparse
        else:
            self._L11 = np.zeros((0, block, block))
            self._W = sp.csr_matrix((0, idx2.size))
        self._factor_schur(A[idx2][:, idx2])

    def _factor_schur(self, A22) -> None:
        """Factor ``S = A22 - W'W`` (dense, or SuperLU above :data:`DENSE_LIMIT`)."""
        self._sparse22 = self._idx2.size > DENSE_LIMIT
        self._S_inv = None
        if self._sparse22:
            self._fac22 = _SuperLUCholesky((sp.csc_matrix(A22) - (self._W.T @ self._W)).tocsc())
            return
        S = A22.toarray() if sp.issparse(A22) else np.array(A22, dtype=float)
        if self._W.shape[0]:
            WtW = self._W.T @ self._W
            S -= WtW.toarray() if sp.issparse(WtW) else WtW
        try:
            self._L22 = scipy.linalg.cholesky(S, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            raise NotPositiveDefiniteError("the matrix is not positive definite") from None

    @classmethod
    def from_parts(cls, blocks: np.ndarray, A12, A22, first: slice, m: int) -> BlockCholesky:
        """Factor a matrix given as its pieces, skipping the assembly of the whole matrix.

        Parameters
        ----------
        blocks : ndarray, shape (nb, k, k)
            The diagonal blocks of the block-diagonal part (rows ``first``).
        A12 : sparse matrix or ndarray, shape (nb * k, m - nb * k)
            The coupling of ``first`` with the other rows (in their order). A dense array
            is kept dense (cheaper when it is small).
        A22 : ndarray or sparse matrix
            The remaining rows and columns.
        first : slice
            Position of the block-diagonal part in the caller's ordering.
        m : int
            Size of the whole matrix.

        For repeated factorizations of matrices with one sparsity pattern (penalized IRLS),
        the caller fills these pieces by ``np.bincount`` on a precomputed pattern.
        """
        self = cls.__new__(cls)
        self.m = m
        idx1 = np.arange(first.start, first.stop)
        self._idx1, self._idx2 = idx1, np.setdiff1d(np.arange(m), idx1)
        k = blocks.shape[1] if blocks.ndim == 3 else 1
        self.block = k
        self._L11 = _block_chol(blocks)
        self._L11inv = np.linalg.inv(self._L11) if k > 1 else 1.0 / self._L11
        if sp.issparse(A12):
            self._W = self._apply_L11inv_sparse(sp.csr_matrix(A12))
        else:
            self._W = self._L11_solve(np.asarray(A12, dtype=float))
        self._factor_schur(A22)
        return self

    # ---------------------------------------------------------------------------- blocks
    def _apply_L11inv_sparse(self, B: sp.spmatrix) -> sp.csr_matrix:
        k = self.block
        nb = self._L11.shape[0]
        if k == 1:
            return sp.diags(1.0 / self._L11[:, 0, 0]) @ B.tocsr()
        return (_block_diag_csr(self._L11inv) @ B).tocsr() if nb else sp.csr_matrix(B)

    def _L11_solve(self, b: np.ndarray, transpose: bool = False) -> np.ndarray:
        k = self.block
        nb = self._L11.shape[0]
        shaped = b.reshape(nb, k, -1)
        if k == 1:
            out = shaped / self._L11
        else:
            M = np.swapaxes(self._L11inv, 1, 2) if transpose else self._L11inv
            out = M @ shaped
        return out.reshape(b.shape)

    def _L22_solve(self, b: np.ndarray, transpose: bool = False) -> np.ndarray:
        if self._sparse22:
            return self._fac22.solve_L(b, transpose)
        return scipy.linalg.solve_triangular(
            self._L22, b, lower=True, trans=1 if transpose else 0, check_finite=False
        )

    # ---------------------------------------------------------------------------- public
    def logdet(self) -> float:
        """``log det A``."""
        ld = 2.0 * float(np.sum(np.log(np.diagonal(self._L11, axis1=1, axis2=2))))
        if self._sparse22:
            return ld + self._fac22.logdet()
        return ld + 2.0 * float(np.sum(np.log(np.diag(self._L22))))

    def solve_L(self, b: np.ndarray) -> np.ndarray:
        """``L^{-1} b`` (in the caller's ordering)."""
        b = np.asarray(b, dtype=float)
        b1, b2 = b[self._idx1], b[self._idx2]
        y1 = self._L11_solve(b1) if self._idx1.size else b1
        y2 = self._L22_solve(b2 - self._W.T @ y1)
        return self._scatter(y1, y2, b.shape)

    def solve_Lt(self, y: np.ndarray) -> np.ndarray:
        """``L'^{-1} y``: with ``y ~ N(0, I)`` this draws from ``N(0, A^{-1})``."""
        y = np.asarray(y, dtype=float)
        y1, y2 = y[self._idx1], y[self._idx2]
        x2 = self._L22_solve(y2, transpose=True)
        x1 = self._L11_solve(y1 - self._W @ x2, transpose=True) if self._idx1.size else y1
        return self._scatter(x1, x2, y.shape)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``A^{-1} b``."""
        return self.solve_Lt(self.solve_L(b))

    def _scatter(self, x1, x2, shape):
        out = np.empty(shape)
        out[self._idx1] = x1
        out[self._idx2] = x2
        return out

    def inverse_diagonal(self) -> np.ndarray:
        """Diagonal of ``A^{-1}`` (conditional variances)."""
        if self._sparse22:
            return np.einsum("ij,ij->j", *(2 * [self.solve_L(np.eye(self.m))]))
        i = np.arange(self.m)
        return self.inverse_entries(i, i)

    def _schur_inverse(self) -> np.ndarray:
        """``S^{-1}``, the lower-right block of ``A^{-1}`` (dense; cached)."""
        if self._sparse22:
            raise NotImplementedError(
                f"selected inversion needs the dense Schur complement (at most {DENSE_LIMIT} "
                f"rows; this one has {self._idx2.size})"
            )
        if self._S_inv is None:
            if self._idx2.size == 0:
                self._S_inv = np.zeros((0, 0))
            else:
                inv, info = scipy.linalg.lapack.dpotri(self._L22, lower=1)
                if info != 0:
                    raise NotPositiveDefiniteError("the Schur complement is singular")
                # dpotri fills the lower triangle; the upper one is L22's (zeros)
                inv += inv.T
                inv[np.diag_indices_from(inv)] *= 0.5
                self._S_inv = inv.T if inv.flags.f_contiguous else inv  # C order, symmetric
        return self._S_inv

    def inverse_entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Selected entries ``A^{-1}[rows, cols]`` without forming ``A^{-1}``.

        With ``A = [[D, B], [B', C]]`` (``D`` the block-diagonal part), ``S = C - B'D^{-1}B``
        and ``M = D^{-1} B``::

            A^{-1} = [[D^{-1} + M S^{-1} M',  -M S^{-1}],
                      [-S^{-1} M',             S^{-1}  ]]

        Entries of the leading block are only available within one diagonal block of ``D``
        or where ``M S^{-1} M'`` is asked for; the cost is that of ``S^{-1}`` plus
        ``O(nnz(M) * len(S))`` for the rows involved. Dense Schur complement only.
        """
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        part = np.zeros(self.m, dtype=np.int8)
        part[self._idx2] = 1
        local = np.empty(self.m, dtype=np.int64)
        local[self._idx1] = np.arange(self._idx1.size)
        local[self._idx2] = np.arange(self._idx2.size)
        pr, pc = part[rows], part[cols]
        lr, lc = local[rows], local[cols]
        # order every pair so that a first-part index comes first
        swap = (pr == 1) & (pc == 0)
        lr, lc = np.where(swap, lc, lr), np.where(swap, lr, lc)
        pr, pc = np.where(swap, 0, pr), np.where(swap, 1, pc)
        out = np.zeros(rows.size)
        Sinv = self._schur_inverse()
        both2 = (pr == 1) & (pc == 1)
        out[both2] = Sinv[lr[both2], lc[both2]]
        in1 = pr == 0
        if not np.any(in1):
            return out
        k = self.block
        # D^{-1} within a block: (L L')^{-1} = L^{-T} L^{-1}
        b1 = (pc == 0) & (lr // k == lc // k)
        if np.any(b1):
            blk = lr[b1] // k
            if k == 1:
                out[b1] = 1.0 / self._L11[blk, 0, 0] ** 2
            else:
                Li = self._L11inv[blk]  # (n, k, k); D^{-1}[a, b] = sum_j Li[j, a] Li[j, b]
                idx = np.arange(blk.size)
                out[b1] = np.einsum("nj,nj->n", Li[idx, :, lr[b1] % k], Li[idx, :, lc[b1] % k])
        if self._idx2.size == 0:
            return out
        M = self._M()
        need = np.flatnonzero(in1)
        r_need = np.unique(lr[need])
        chunk = max(1, int(2_000_000 // max(self._idx2.size, 1)))
        dense = not sp.issparse(M)
        Mcsr = M if dense else M.tocsr()
        for start in range(0, r_need.size, chunk):
            rr = r_need[start : start + chunk]
            P = Mcsr[rr] @ Sinv  # rows rr of M S^{-1}, dense
            sel = need if rr.size == r_need.size else need[np.isin(lr[need], rr)]
            pos = np.searchsorted(rr, lr[sel])
            to2 = pc[sel] == 1
            out[sel[to2]] = -P[pos[to2], lc[sel[to2]]]
            s11 = sel[~to2]
            if s11.size and dense:
                out[s11] += np.einsum("ij,ij->i", P[pos[~to2]], M[lc[s11]])
            elif s11.size:
                # (M S^{-1} M')[r, c] = sum_j P[r, j] M[c, j], over the non-zeros of M[c]
                ptr, ind, dat = Mcsr.indptr, Mcsr.indices, Mcsr.data
                c = lc[s11]
                lens = ptr[c + 1] - ptr[c]
                pair = np.repeat(np.arange(s11.size), lens)
                nz = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
                nz = nz + np.repeat(ptr[c], lens)
                vals = P[np.repeat(pos[~to2], lens), ind[nz]] * dat[nz]
                out[s11] += np.bincount(pair, weights=vals, minlength=s11.size)
        return out

    def _M(self):
        """``D^{-1} B = L11^{-T} W`` (sparse, or dense when ``W`` is)."""
        if not sp.issparse(self._W):
            return self._L11_solve(self._W, transpose=True)
        if self.block == 1:
            return (sp.diags(1.0 / self._L11[:, 0, 0]) @ self._W).tocsr()
        return (_block_diag_csr(np.swapaxes(self._L11inv, 1, 2)) @ self._W).tocsr()


def _block_diag_csr(blocks: np.ndarray) -> sp.csr_matrix:
    """A block-diagonal CSR matrix from dense blocks of shape (nb, k, k)."""
    nb, k, _ = blocks.shape
    base = np.arange(nb)[:, None, None] * k
    r = np.broadcast_to(base + np.arange(k)[None, :, None], blocks.shape).ravel()
    c = np.broadcast_to(base + np.arange(k)[None, None, :], blocks.shape).ravel()
    return sp.csr_matrix((blocks.ravel(), (r, c)), shape=(nb * k, nb * k))


class _SuperLUCholesky:
    """LDL' through SuperLU with a symmetric fill-reducing ordering (no pivoting)."""

    def __init__(self, A: sp.csc_matrix) -> None:
        import scipy.sparse.linalg as spl

        lu = spl.splu(
            A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
        )
        if not np.array_equal(lu.perm_r, lu.perm_c):
            raise NotPositiveDefiniteError("SuperLU pivoted: the matrix is not SPD")
        d = lu.U.diagonal()
        if np.any(d <= 0):
            raise NotPositiveDefiniteError("the matrix is not positive definite")
        self._perm = lu.perm_c
        self._sqrt_d = np.sqrt(d)
        self._L = (lu.L @ sp.diags(self._sqrt_d)).tocsr()
        self._d = d

    def logdet(self) -> float:
        return float(np.sum(np.log(self._d)))

    def solve_L(self, b: np.ndarray, transpose: bool = False) -> np.ndarray:
        import scipy.sparse.linalg as spl

        # A[perm][:, perm] = L L'; solve in permuted order
        if not transpose:
            pb = np.empty_like(b)
            pb[self._perm] = b
            return spl.spsolve_triangular(self._L, pb, lower=True)
        x = spl.spsolve_triangular(self._L.T.tocsr(), b, lower=False)
        return x[self._perm]


def term_blocks(design) -> tuple[slice | None, int]:
    """The columns of Z (random-effect vector ``b``) of the largest term, and its block size.

    A term with a known relationship matrix couples its levels (``Z L``), so it is never the
    block-diagonal one; with no other term the whole matrix is factored densely.
    """
    if not design.random:
        return None, 1
    sizes = [t.n_levels * t.n_columns for t in design.random]
    eligible = [getattr(t, "relmat", None) is None for t in design.random]
    if not any(eligible):
        return None, 1
    j = int(np.argmax(np.where(eligible, sizes, -1)))
    start = sum(sizes[:j])
    return slice(start, start + sizes[j]), design.random[j].n_columns
