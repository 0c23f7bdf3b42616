"""The compiled (Numba) kernels of :class:`.crossed_factor.CrossedFactor`, in their own module
so that Numba loads with the iterative solver of large crossed designs, not with every
Laplace fit."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def pattern_dot(rows, cols, R, X, out):  # pragma: no cover - compiled
    """``out[p] += sum_k R[rows[p], k] X[cols[p], k]``."""
    K = R.shape[1]
    for p in range(rows.size):
        s = 0.0
        i = rows[p]
        j = cols[p]
        for k in range(K):
            s += R[i, k] * X[j, k]
        out[p] += s


@numba.njit(cache=True)
def trace_g2(indptr, pc, bh, indptr_t, pr_t, perm_t):  # pragma: no cover - compiled
    """``tr(G^2)`` and ``(B_hat G)`` on the pattern of ``B`` (CSR order), ``G = B_hat' B_hat``.

    Row ``m`` of ``G`` is gathered in a dense scratch vector from the non-zeros of column
    ``m`` and of the rows they touch: ``O(n * rows per level)`` work, ``O(q)`` memory.
    """
    q_c = indptr_t.size - 1
    row = np.zeros(q_c)
    mark = np.zeros(q_c, dtype=np.bool_)
    touched = np.empty(q_c, dtype=np.int64)
    bg = np.zeros(pc.size)
    tr = 0.0
    for m in range(q_c):
        nt = 0
        for p in range(indptr_t[m], indptr_t[m + 1]):
            v = bh[perm_t[p]]
            lvl = pr_t[p]
            for r in range(indptr[lvl], indptr[lvl + 1]):
                m2 = pc[r]
                if not mark[m2]:
                    mark[m2] = True
                    touched[nt] = m2
                    nt += 1
                row[m2] += v * bh[r]
        for i in range(nt):
            tr += row[touched[i]] ** 2
        for p in range(indptr_t[m], indptr_t[m + 1]):
            lvl = pr_t[p]
            acc = 0.0
            for r in range(indptr[lvl], indptr[lvl + 1]):
                acc += bh[r] * row[pc[r]]
            bg[perm_t[p]] = acc
        for i in range(nt):
            row[touched[i]] = 0.0
            mark[touched[i]] = False
    return tr, bg
