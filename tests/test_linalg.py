"""BlockCholesky against dense linear algebra on random mixed-model-shaped matrices."""

import numpy as np
import pytest
import scipy.sparse as sp

from bayesglmm.model import linalg
from bayesglmm.model.linalg import BlockCholesky, NotPositiveDefiniteError

TOL = 1e-9  # double precision on well-conditioned matrices of size < 300


def _crossed(seed, n=400, la=30, lb=20, k=2):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, la, n), rng.integers(0, lb, n)
    x = rng.normal(size=n)
    # term 1: (1 + x | a), level-major blocks of size 2; term 2: (1 | b)
    rows = np.repeat(np.arange(n), k)
    cols = (a[:, None] * k + np.arange(k)).ravel()
    vals = np.column_stack([np.ones(n), x])[:, :k].ravel()
    Z1 = sp.csc_matrix((vals, (rows, cols)), shape=(n, la * k))
    Z2 = sp.csc_matrix((np.ones(n), (np.arange(n), b)), shape=(n, lb))
    Z = sp.hstack([Z1, Z2]).tocsc()
    w = rng.uniform(0.1, 0.3, n)
    return (Z.T @ sp.diags(w) @ Z + sp.eye(Z.shape[1])).tocsc(), slice(0, la * k), k


@pytest.mark.parametrize("dense_limit", [6000, 0])
def test_block_cholesky_matches_dense(dense_limit, monkeypatch):
    monkeypatch.setattr(linalg, "DENSE_LIMIT", dense_limit)
    A, first, k = _crossed(1)
    f = BlockCholesky(A, first, k)
    Ad = A.toarray()
    assert f.logdet() == pytest.approx(np.linalg.slogdet(Ad)[1], abs=TOL * 100)
    b = np.random.default_rng(2).normal(size=A.shape[0])
    np.testing.assert_allclose(f.solve(b), np.linalg.solve(Ad, b), atol=TOL)
    # L'^{-1} z has covariance A^{-1}: check  L^{-1} L'^{-1} = A^{-1} via columns
    E = np.eye(A.shape[0])[:, :5]
    X = np.column_stack([f.solve_Lt(f.solve_L(E[:, j])) for j in range(5)])
    np.testing.assert_allclose(X, np.linalg.inv(Ad)[:, :5], atol=TOL)
    np.testing.assert_allclose(f.inverse_diagonal(), np.diag(np.linalg.inv(Ad)), atol=TOL)


def test_second_block_must_leave_first_block_diagonal():
    A, _, _ = _crossed(3)
    with pytest.raises(ValueError, match="not block diagonal"):
        BlockCholesky(A, slice(0, A.shape[0]), 2)


def test_dense_only_and_not_positive_definite():
    A, _, _ = _crossed(4)
    f = BlockCholesky(A, None)
    assert f.logdet() == pytest.approx(np.linalg.slogdet(A.toarray())[1], abs=1e-7)
    with pytest.raises(NotPositiveDefiniteError):
        BlockCholesky(-A, None)


@pytest.mark.parametrize("k,dense12", [(1, False), (2, False), (1, True), (2, True)])
def test_from_parts_and_selected_inverse_match_dense(k, dense12):
    """from_parts equals the assembled factorization; inverse_entries equals inv(A)."""
    A, first, _ = _crossed(5, k=k)
    A = A.tocsr()
    m = A.shape[0]
    idx1 = np.arange(first.start, first.stop)
    idx2 = np.setdiff1d(np.arange(m), idx1)
    nb = idx1.size // k
    blocks = np.zeros((nb, k, k))
    for j in range(nb):
        s = slice(j * k, (j + 1) * k)
        blocks[j] = A[idx1[s]][:, idx1[s]].toarray()
    A12 = A[idx1][:, idx2]
    A12 = A12.toarray() if dense12 else A12
    f = BlockCholesky.from_parts(blocks, A12, A[idx2][:, idx2].toarray(), first, m)
    Ad = A.toarray()
    Ainv = np.linalg.inv(Ad)
    assert f.logdet() == pytest.approx(np.linalg.slogdet(Ad)[1], abs=TOL * 100)
    rows, cols = np.nonzero(Ad)  # the selected pattern: that of A itself
    np.testing.assert_allclose(f.inverse_entries(rows, cols), Ainv[rows, cols], atol=TOL)
    np.testing.assert_allclose(f.inverse_diagonal(), np.diag(Ainv), atol=TOL)
