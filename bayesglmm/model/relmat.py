"""Known relationship matrices of a grouping factor: ``b ~ N(0, sigma^2 K)``.

A term ``(1|animal)`` with ``relmat={"animal": K}`` has effects correlated as ``K`` (an
additive relationship matrix from a pedigree, a genomic relationship matrix). With the
Cholesky factor ``K = L L'`` the effects are ``b = sigma L u``, ``u ~ N(0, I)``: the term is
an ordinary scalar term whose design block is ``Z L`` (the animal model of quantitative
genetics, as in pedigreemm). :func:`relmat_factor` checks ``K`` and returns ``L``;
:func:`additive_relationship` computes ``K`` from a pedigree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError

#: a dense Cholesky of K is refused above this many levels (no sparse Cholesky installed)
MAX_DENSE_LEVELS = 5000
#: entries of L below this (relative to its largest) are dropped: structural zeros of K's factor
ZERO_TOL = 1e-13


def additive_relationship(sire, dam) -> np.ndarray:
    """Additive relationship matrix of a pedigree by the tabular method (Henderson 1976).

    Parameters
    ----------
    sire, dam : sequence of int
        For each animal ``i`` (``0 .. n-1``, parents before offspring), the index of its sire
        and dam, or ``-1`` (or None/NaN) when unknown.

    Returns
    -------
    ndarray, shape (n, n)
        ``A_ii = 1 + A_sd / 2`` (``1`` with a parent unknown) and
        ``A_ij = (A_j,sire(i) + A_j,dam(i)) / 2`` for ``j < i``.

    Raises
    ------
    DataError
        When a parent is not an earlier animal.
    """
    s = _parents(sire, "sire")
    d = _parents(dam, "dam")
    if s.size != d.size:
        raise DataError(f"sire has {s.size} entries and dam {d.size}: one per animal each")
    n = s.size
    for name, par in (("sire", s), ("dam", d)):
        bad = np.flatnonzero(par >= np.arange(n))
        if bad.size:
            raise DataError(
                f"{name} of animal {bad[0]} is {par[bad[0]]}: parents must come before their "
                "offspring (index below the animal's), -1 when unknown"
            )
    A = np.zeros((n, n))
    for i in range(n):
        si, di = s[i], d[i]
        row = np.zeros(i)
        if si >= 0:
            row += 0.5 * A[si, :i]
        if di >= 0:
            row += 0.5 * A[di, :i]
        A[i, :i] = row
        A[:i, i] = row
        A[i, i] = 1.0 + (0.5 * A[si, di] if si >= 0 and di >= 0 else 0.0)
    return A


def _parents(values, name: str) -> np.ndarray:
    arr = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")
    arr = arr.fillna(-1).to_numpy(dtype=float)
    if np.any(arr != np.round(arr)) or np.any(arr < -1):
        raise DataError(f"{name} must hold integer animal indices or -1 for unknown")
    return arr.astype(np.int64)


def relmat_factor(K, group: str, data_levels: list[str]) -> tuple[list[str], sp.csr_matrix]:
    """Check ``K`` for the factor ``group`` and return (levels, sparse Cholesky factor).

    Parameters
    ----------
    K : pandas.DataFrame or ndarray or sparse matrix
        Indexed (rows and columns) by the factor's level labels, or unlabelled in the order
        of the levels in the data (``data_levels``). A labelled ``K`` may hold more levels
        than the data (ancestors without records); they become levels of the term.
    group : str
        The grouping factor (named in errors).
    data_levels : list of str
        Levels of the factor found in the data.

    Returns
    -------
    levels : list of str
        The term's levels, in ``K``'s order.
    L : scipy.sparse.csr_matrix
        Lower triangular with ``L L' = K``.
    """
    where = f"relmat[{group!r}]"
    if isinstance(K, pd.DataFrame):
        rows = [str(v) for v in K.index]
        cols = [str(v) for v in K.columns]
        if rows != cols:
            raise DataError(f"{where}: the row and column labels of K differ")
        levels = rows
        M = K.to_numpy(dtype=float)
    else:
        M = K.toarray() if sp.issparse(K) else np.asarray(K, dtype=float)
        levels = list(data_levels)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise DataError(f"{where}: K must be square, got shape {M.shape}")
    if M.shape[0] != len(levels):
        raise DataError(
            f"{where}: K has {M.shape[0]} rows but the factor has {len(levels)} levels in the "
            "data; give K as a DataFrame indexed by level labels to include other levels"
        )
    if len(set(levels)) != len(levels):
        raise DataError(f"{where}: K's level labels are not unique")
    missing = [lv for lv in data_levels if lv not in set(levels)]
    if missing:
        raise DataError(
            f"{where}: levels {missing[:5]}{' ...' if len(missing) > 5 else ''} of {group!r} "
            "in the data are not in K"
        )
    if not np.all(np.isfinite(M)):
        raise DataError(f"{where}: K has infinite or missing values")
    if not np.allclose(M, M.T, rtol=1e-10, atol=1e-12):
        raise DataError(f"{where}: K is not symmetric")
    if M.shape[0] > MAX_DENSE_LEVELS:
        raise DataError(
            f"{where}: K has {M.shape[0]} levels, above the {MAX_DENSE_LEVELS} that a dense "
            "Cholesky factor takes (no sparse Cholesky library is installed)"
        )
    try:
        L = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        w = np.linalg.eigvalsh(M)
        raise DataError(
            f"{where}: K is not positive definite (smallest eigenvalue {w[0]:.3g})"
        ) from None
    L[np.abs(L) < ZERO_TOL * np.abs(L).max()] = 0.0
    return levels, sp.csr_matrix(L)
