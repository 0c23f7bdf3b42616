"""The separation linear program against an independent (dual) formulation.

Chen & Shao (2001) state propriety of a flat-prior binary regression (X of full rank) as
the existence of weights a_i > 0 with sum_i a_i (2 y_i - 1) x_i = 0. By Stiemke's theorem
that is the absence of a separating direction, which is what bayesglmm.propriety.cones
looks for. Solving the weight problem instead, with a_i >= 1, gives an independent check.
For counts the dual of the zero-count condition is: weights mu_i >= 1 on zero rows and free
lambda_i on positive rows with sum lambda_i x_i = sum mu_i x_i.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from bayesglmm import GLMM, check_propriety
from bayesglmm import priors as P
from bayesglmm.propriety.cones import recession_cone

#: tolerance for "s_i x_i'd >= 0" on the returned direction (LP feasibility is 1e-7,
#: directions are rescaled to max-norm 1)
DIRECTION_TOL = 1e-6
N_DATASETS = 60


def _weights_exist(A: np.ndarray) -> bool:
    """Is there a >= 1 with A'a = 0 (Chen & Shao's condition, up to scale)?"""
    n = A.shape[0]
    res = linprog(
        np.zeros(n), A_eq=A.T, b_eq=np.zeros(A.shape[1]), bounds=[(1.0, None)] * n, method="highs"
    )
    return res.status == 0


def _random_binary(seed: int):
    rng = np.random.default_rng(seed)
    n, strength = 10, rng.choice([0.5, 3.0, 20.0])
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    p = 1.0 / (1.0 + np.exp(-strength * (X @ rng.normal(size=3))))
    y = (rng.uniform(size=n) < p).astype(float)
    return X, y


@pytest.mark.parametrize("seed", range(N_DATASETS))
def test_lp_agrees_with_chen_shao_weights(seed):
    X, y = _random_binary(seed)
    signs = np.where(y == 1, 1, -1)
    cone = recession_cone(X, signs)
    assert cone.trivial == _weights_exist(signs[:, None] * X)
    if not cone.trivial:
        margin = signs * (X @ cone.direction)
        assert margin.min() > -DIRECTION_TOL
        assert np.all(margin[cone.strict_rows] > DIRECTION_TOL)


def test_random_designs_cover_both_outcomes():
    outcomes = {
        recession_cone(X, np.where(y == 1, 1, -1)).trivial
        for X, y in map(_random_binary, range(N_DATASETS))
    }
    assert outcomes == {True, False}


def _random_counts(seed: int):
    rng = np.random.default_rng(100 + seed)
    n = 9
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    y = rng.poisson(np.exp(rng.normal(-1.0, 1.0) + X[:, 1]))
    return X, y


@pytest.mark.parametrize("seed", range(20))
def test_zero_count_condition_agrees_with_its_dual(seed):
    X, y = _random_counts(seed)
    n = X.shape[0]
    signs = np.where(y == 0, -1, 0)
    cone = recession_cone(X, signs)
    zero, pos = X[y == 0], X[y > 0]
    # variables (mu for zero rows >= 1, lambda for positive rows free):
    # sum mu_i x_i - sum lambda_i x_i = 0
    A_eq = np.hstack([zero.T, -pos.T])
    bounds = [(1.0, None)] * len(zero) + [(None, None)] * len(pos)
    dual = linprog(np.zeros(n), A_eq=A_eq, b_eq=np.zeros(3), bounds=bounds, method="highs")
    assert cone.trivial == (dual.status == 0)


def test_random_count_designs_cover_both_outcomes():
    outcomes = {
        recession_cone(X, np.where(y == 0, -1, 0)).trivial
        for X, y in map(_random_counts, range(20))
    }
    assert outcomes == {True, False}


def test_binomial_counts_split_into_successes_and_failures():
    """cbind rows: 0 < y < n is both a success and a failure (an equality row)."""
    df = pd.DataFrame({"s": [0, 2, 3], "f": [4, 2, 0], "x": [0.0, 1.0, 2.0]})
    flat = {"Intercept": P.Flat(), "x": P.Flat()}
    assert check_propriety(GLMM("cbind(s, f) ~ x", df, priors=flat)).proper is False
    df.loc[2, "f"] = 1  # the top row becomes mixed too: two equality rows pin (b0, b1)
    assert check_propriety(GLMM("cbind(s, f) ~ x", df, priors=flat)).proper is True


def test_only_columns_with_flat_priors_are_searched():
    """Separation along x with a proper prior on x (flat intercept only) is not a defect."""
    df = pd.DataFrame({"y": [0, 0, 0, 1, 1, 1], "x": [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0]})
    report = check_propriety(GLMM("y ~ x", df, priors={"Intercept": P.Flat()}))
    assert report.proper is True
    df_all = df.assign(y=1)
    report = check_propriety(GLMM("y ~ x", df_all, priors={"Intercept": P.Flat()}))
    assert report.proper is False and report.separation["direction"] == {"Intercept": 1.0}


def test_duplicate_rows_and_sparse_input_give_the_same_cone():
    import scipy.sparse as sp

    X, y = _random_binary(3)
    signs = np.where(y == 1, 1, -1)
    Xd, sd = np.vstack([X, X]), np.concatenate([signs, signs])
    a, b, c = (
        recession_cone(X, signs),
        recession_cone(Xd, sd),
        recession_cone(sp.csr_matrix(Xd), sd),
    )
    assert a.dim == b.dim == c.dim
