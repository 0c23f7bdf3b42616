"""The iterative solver of large crossed designs: agreement with the exact path,
the automatic choice, the log-determinant estimator's reported error, exact gradients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM
from bayesglmm.errors import OptionError
from bayesglmm.frequentist.crossed_factor import CrossedPattern
from bayesglmm.frequentist.crossed_solver import (
    AUTO_LEVELS,
    CrossedProblem,
    choose_solver,
)
from bayesglmm.frequentist.pirls import PirlsProblem

#: the estimates of the two paths differ only through the log-det estimate's error, whose
#: derivative in the parameters is O(its standard error / n): far below this; 1e-3 is the
#: agreement required of the estimates
EST_TOL = 1e-3
#: |loglik difference| / reported se: with the se from 16 probes (t with 15 df) a 5-se
#: miss has probability about 2e-4 for a correct estimator
SE_MULT = 5.0


def crossed_frame(n_rows, n_a, n_b, seed, sd=0.7, nested=False):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_a, n_rows)
    b = a % n_b if nested else rng.integers(0, n_b, n_rows)
    x = rng.integers(0, 2, n_rows)
    eta = -0.5 + x + sd * rng.normal(size=n_a)[a] + sd * rng.normal(size=n_b)[b]
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "x": x, "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b]})


FORMULA = "y ~ x + (1|a) + (1|b)"


@pytest.fixture(scope="module")
def medium():
    return GLMM(FORMULA, crossed_frame(4000, 400, 300, seed=11))


def test_iterative_fit_agrees_with_direct(medium):
    it = medium.fit("laplace", solver="iterative")
    ex = medium.fit("laplace", solver="direct")
    diff = (it.table["estimate"] - ex.table["estimate"]).abs()
    assert diff.max() < EST_TOL, diff
    se = it.info["details"]["loglik_se"]
    assert 0 < se < 0.05
    assert abs(it.loglik - ex.loglik) < SE_MULT * se
    assert it.convergence["converged"]
    assert it.convergence["details"]["solver"]["name"] == "iterative"
    assert ex.convergence["details"]["solver"]["name"] == "direct"
    assert ex.info["details"].get("loglik_se") is None
    assert "approximate Laplace" in it.report()
    # conditional variances: exact up to a Hutchinson diagonal remainder (~1e-3 here)
    for term in ("1|a", "1|b"):
        key = f"{term} (conditional variance)"
        cv_it, cv_ex = it.random_effects[key].to_numpy(), ex.random_effects[key].to_numpy()
        assert np.max(np.abs(cv_it - cv_ex)) < 0.01 * np.max(cv_ex)
        modes_it = it.random_effects[term].to_numpy()
        modes_ex = ex.random_effects[term].to_numpy()
        assert np.max(np.abs(modes_it - modes_ex)) < 1e-2


def test_gradient_is_exact_for_the_estimated_deviance(medium):
    """Central differences of the estimated deviance (probes fixed) against the gradient."""
    problem = CrossedProblem(medium.design)
    theta, beta = np.array([0.9, 0.7]), np.array([-0.4, 0.9])
    g_theta, g_beta = problem.gradient(problem.solve(theta, beta, tol=1e-12))
    h = 1e-5  # truncation error O(h^2 * third derivative) ~ 1e-8; PIRLS noise ~1e-12 / h

    def dev(t, b):
        return problem.solve(t, b, tol=1e-12).deviance

    for j in range(2):
        e = np.zeros(2)
        e[j] = h
        fd_t = (dev(theta + e, beta) - dev(theta - e, beta)) / (2 * h)
        fd_b = (dev(theta, beta + e) - dev(theta, beta - e)) / (2 * h)
        assert fd_t == pytest.approx(g_theta[j], rel=1e-5, abs=1e-4)
        assert fd_b == pytest.approx(g_beta[j], rel=1e-5, abs=1e-4)


def test_logdet_error_is_covered_by_its_standard_error():
    """Over 60 probe seeds the estimate is unbiased and its se covers the error at the
    nominal rate: |z| < 2 in at least 48 of 60 (expected ~56 for t with 15 df; the bound
    fails with probability < 1e-3 for a correct estimator), and the mean z within
    4 / sqrt(60) of zero."""
    model = GLMM(FORMULA, crossed_frame(3000, 250, 200, seed=5, sd=1.5))
    direct = PirlsProblem(model.design)
    theta, beta = np.array([1.6, 1.4]), np.array([-0.5, 1.0])  # large variances: a hard G
    st = direct.solve(theta, beta)
    exact = st.factor.logdet()
    problem = CrossedProblem(model.design)
    base = problem.pattern
    W = st.terms.W
    z = []
    for seed in range(60):
        problem.pattern = CrossedPattern(
            base.pair, base.indptr, base.pc, base.q_r, base.q_c, base.probes.shape[1], seed
        )
        fac = problem.factor(st.Aval, W)
        z.append((fac.logdet() - exact) / fac.logdet_se)
    z = np.array(z)
    assert np.sum(np.abs(z) < 2) >= 48, z
    assert abs(z.mean()) < 4 / np.sqrt(z.size), z.mean()


def test_solves_match_direct(medium):
    direct = PirlsProblem(medium.design)
    problem = CrossedProblem(medium.design)
    theta, beta = np.array([1.2, 0.5]), np.array([-0.5, 1.0])
    a, b = direct.solve(theta, beta), problem.solve(theta, beta)
    assert np.max(np.abs(a.u - b.u)) < 1e-8
    rhs = np.random.default_rng(1).normal(size=(direct.q, 3))
    assert np.allclose(a.factor.solve(rhs), b.factor.solve(rhs), atol=1e-9)


def test_automatic_choice():
    small = GLMM(FORMULA, crossed_frame(2000, 200, 150, seed=1)).design
    assert choose_solver(small)[0] == "direct"
    n = 5 * (AUTO_LEVELS + 500)
    big = GLMM(FORMULA, crossed_frame(n, AUTO_LEVELS + 500, AUTO_LEVELS + 500, seed=2)).design
    name, reason = choose_solver(big)
    assert name == "iterative" and "crossed" in reason
    assert choose_solver(big, "direct")[0] == "direct"
    # nested: every level of b inside one level of a keeps the exact factorization
    nested = GLMM(FORMULA, crossed_frame(n, 2 * n // 5, AUTO_LEVELS + 500, seed=3, nested=True))
    name, reason = choose_solver(nested.design)
    assert name == "direct" and "nested" in reason
    # three terms, or a non-canonical link: direct, and forcing the iterative path says why
    frame = crossed_frame(2000, 200, 150, seed=4)
    frame["c"] = frame["a"].str[:2]
    three = GLMM("y ~ x + (1|a) + (1|b) + (1|c)", frame)
    assert choose_solver(three.design)[0] == "direct"
    with pytest.raises(OptionError, match="two random-effect terms"):
        three.fit("laplace", solver="iterative")
    probit = GLMM(FORMULA, frame, family="binomial", link="probit")
    with pytest.raises(OptionError, match="canonical link"):
        probit.fit("laplace", solver="iterative")
    with pytest.raises(OptionError, match="solver"):
        GLMM(FORMULA, frame).fit("laplace", solver="cg")


def test_nested_fit_stays_exact():
    model = GLMM(FORMULA, crossed_frame(1500, 150, 30, seed=8, nested=True))
    auto = model.fit("laplace")
    assert auto.convergence["details"]["solver"]["name"] == "direct"
    assert auto.info["details"].get("loglik_se") is None


@pytest.mark.parametrize("reml", [True, False])
def test_pql_iterative_agrees_with_direct(medium, reml):
    """PQL's working LMM on the iterative solver: the log-det estimate's error moves the
    working fits' optimum by O(se / n), far below EST_TOL."""
    it = medium.fit("pql", solver="iterative", reml=reml, progressbar=False)
    ex = medium.fit("pql", solver="direct", reml=reml, progressbar=False)
    assert it.convergence["details"]["solver"]["name"] == "iterative"
    diff = (it.table[["estimate", "std_error"]] - ex.table[["estimate", "std_error"]]).abs()
    assert diff.max().max() < EST_TOL, diff
    for term in ("1|a", "1|b"):
        gap = np.abs(it.random_effects[term].to_numpy() - ex.random_effects[term].to_numpy())
        assert gap.max() < EST_TOL


def test_pql_iterative_needs_fixed_dispersion(medium):
    with pytest.raises(OptionError, match="dispersion='fixed'"):
        medium.fit("pql", solver="iterative", dispersion="estimated")
