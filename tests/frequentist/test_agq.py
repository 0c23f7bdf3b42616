"""Adaptive Gauss-Hermite quadrature (method="agq") against glmer(nAGQ = 25), against
brute-force numerical integration, and its limits (crossed designs, dimensions)."""

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats
from scipy.special import logsumexp

from bayesglmm import GLMM, MethodError, simulate
from bayesglmm.frequentist.agq import AGQDeviance, gauss_hermite, quadrature_structure
from bayesglmm.frequentist.pirls import PirlsProblem

#: agreement required with glmer(nAGQ = 25): the R values (bayesglmm/data/README.md) carry
#: 4 decimals
AGQ_TOL = 1e-3
#: adaptive quadrature with 30 nodes on these smooth one-/two-dimensional integrands, and
#: the 200-400-node Gauss-Legendre reference, are both accurate to ~1e-10 in the deviance
EXACT_TOL = 1e-7


@pytest.mark.reference
def test_cbpp_agq25_matches_glmer(cbpp):
    """glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial,
    nAGQ = 25) (README): -1.3992, -0.9914, -1.1278, -1.5795; herd variance 0.4193."""
    r = GLMM("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp).fit("agq", n_quad=25)
    np.testing.assert_allclose(
        r.fixed_effects.to_numpy(), [-1.3992, -0.9914, -1.1278, -1.5795], atol=AGQ_TOL
    )
    assert r.variance_components["herd"] == pytest.approx(0.4193, abs=AGQ_TOL)
    assert r.converged and r.info["options"]["n_quad"] == 25


@pytest.mark.reference
def test_seeds_agq25_matches_glmer(seeds):
    """glmer(cbind(germ, n - germ) ~ x1 * x2 + (1 | plate), binomial, nAGQ = 25) with
    x1 = (gen == "O73"), x2 = (extract == "cucumber") (README)."""
    r = GLMM("cbind(germ, n - germ) ~ x1 * x2 + (1|plate)", seeds).fit("agq", n_quad=25)
    np.testing.assert_allclose(
        r.fixed_effects.to_numpy(), [-0.5484, 0.0969, 1.3370, -0.8104], atol=AGQ_TOL
    )
    assert r.variance_components["plate"] == pytest.approx(0.0558, abs=AGQ_TOL)


@pytest.mark.reference
def test_mouse_litters_agq25_matches_glmer(mouse_litters):
    """glmer(cbind(dead, survived) ~ 1 + (1 | litter), binomial, nAGQ = 25) (README)."""
    r = GLMM("cbind(dead, survived) ~ 1 + (1|litter)", mouse_litters).fit("agq", n_quad=25)
    assert r.fixed_effects["Intercept"] == pytest.approx(-2.646346, abs=AGQ_TOL)
    assert r.variance_components["litter"] == pytest.approx(0.8578296, abs=AGQ_TOL)


def test_one_node_is_laplace(cbpp):
    m = GLMM("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp)
    lap = m.fit("laplace")
    agq1 = m.fit("agq", n_quad=1)
    np.testing.assert_allclose(agq1.fixed_effects, lap.fixed_effects, atol=1e-5)
    assert agq1.loglik == pytest.approx(lap.loglik, abs=1e-6)


def _tiny_nested():
    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        [
            {"a": f"A{a}", "b": f"B{b}", "x": rng.normal()}
            for a in range(3)
            for b in range(2)
            for _ in range(4)
        ]
    )
    return simulate(
        "y ~ x + (1|a/b)",
        df,
        {"Intercept": 0.2, "x": 0.5},
        {"a": 0.8, "a:b": 0.5},
        family="poisson",
        random_seed=4,
    )


def _legendre(n=400, half_width=10.0):
    """A fine Gauss-Legendre rule on [-10, 10]: non-adaptive, independent of Hermite nodes,
    exact to rounding for these smooth integrands (the normal density is 2e-22 at 10)."""
    x, w = np.polynomial.legendre.leggauss(n)
    return half_width * x, half_width * w


def test_nested_quadrature_equals_numerical_integral():
    """(1|a/b): the nested adaptive rule against brute-force integration of
    prod_a int phi(u_a) prod_b int p(y_ab | u_a, u_b) phi(u_b) du_b du_a."""
    sim = _tiny_nested()
    m = GLMM("y ~ x + (1|a/b)", sim, family="poisson")
    structure = quadrature_structure(m.design)
    assert structure["kind"] == "nested" and structure["outer"] == "a"
    pp = PirlsProblem(m.design)
    theta, beta = np.array([0.9, 0.7]), np.array([0.2, 0.5])
    x = np.concatenate([theta, beta])
    y = sim.y.to_numpy(dtype=float)
    eta0 = np.column_stack([np.ones(len(sim)), sim.x]) @ beta
    const = -special.gammaln(y + 1)
    nodes, weights = _legendre()
    total = 0.0
    for a in sim.a.unique():
        log_outer = stats.norm.logpdf(nodes)  # over u_a nodes
        for b in sim[sim.a == a].b.unique():
            i = ((sim.a == a) & (sim.b == b)).to_numpy()
            # eta[row, u_a node, u_b node]
            eta = (
                eta0[i][:, None, None]
                + theta[0] * nodes[None, :, None]
                + theta[1] * nodes[None, None, :]
            )
            ll = (y[i][:, None, None] * eta - np.exp(eta) + const[i][:, None, None]).sum(0)
            log_outer += logsumexp(ll + stats.norm.logpdf(nodes) + np.log(weights), axis=1)
        total += logsumexp(log_outer + np.log(weights))
    exact = -2 * total
    assert AGQDeviance(pp, 30, structure)(x) == pytest.approx(exact, abs=EXACT_TOL)
    # one node: the Laplace deviance
    assert AGQDeviance(pp, 1, structure)(x) == pytest.approx(pp.solve(theta, beta).deviance)
    assert abs(AGQDeviance(pp, 3, structure)(x) - exact) > 1e-4  # the check can fail


def test_vector_random_effect_equals_numerical_integral():
    """(1 + x|g), two dimensions per group: product rule against brute-force integration."""
    rng = np.random.default_rng(7)
    df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 5), "x": rng.normal(size=15)})
    sim = simulate(
        "y ~ x + (1 + x|g)",
        df,
        {"Intercept": -0.3, "x": 0.4},
        {"g|Intercept": 0.5, "g|x": 0.3},
        family="binomial",
        random_seed=8,
    )
    m = GLMM("y ~ x + (1 + x|g)", sim)
    pp = PirlsProblem(m.design)
    theta, beta = np.array([0.8, 0.2, 0.5]), np.array([-0.3, 0.4])
    T = np.array([[0.8, 0.0], [0.2, 0.5]])
    y = sim.y.to_numpy(dtype=float)
    nodes, weights = _legendre(200)
    u0, u1 = np.meshgrid(nodes, nodes, indexing="ij")
    b0 = T[0, 0] * u0
    b1 = T[1, 0] * u0 + T[1, 1] * u1
    logw = (
        np.log(weights)[:, None]
        + np.log(weights)[None, :]
        + stats.norm.logpdf(u0)
        + stats.norm.logpdf(u1)
    )
    total = 0.0
    for g in ["a", "b", "c"]:
        i = (sim.g == g).to_numpy()
        xs = sim.x.to_numpy()[i][:, None, None]
        eta = beta[0] + beta[1] * xs + b0[None] + b1[None] * xs
        ll = (y[i][:, None, None] * eta - np.logaddexp(0, eta)).sum(0)
        total += logsumexp(ll + logw)
    dev = AGQDeviance(pp, 30, quadrature_structure(m.design))(np.concatenate([theta, beta]))
    assert dev == pytest.approx(-2 * total, abs=EXACT_TOL)


def test_gauss_hermite_rule_integrates_normal_moments():
    nodes, logw = gauss_hermite(5, 2)
    w = np.exp(logw)
    assert w.sum() == pytest.approx(1.0)
    assert np.sum(w * nodes[:, 0] ** 2 * nodes[:, 1] ** 4) == pytest.approx(3.0)


def test_crossed_and_too_many_dimensions_raise(salamander):
    with pytest.raises(MethodError, match="crossed.*does not factor"):
        GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander).fit("agq")
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": rng.integers(0, 5, 100), **{c: rng.normal(size=100) for c in "abc"}})
    df["y"] = rng.poisson(2, 100)
    with pytest.raises(MethodError, match="4 random effects per level of 'g'.*3 dimensions"):
        GLMM("y ~ 1 + (1 + a + b + c|g)", df, family="poisson").fit("agq", n_quad=3)
    with pytest.raises(MethodError, match="n_quad must be a positive integer"):
        GLMM("y ~ 1 + (1|g)", df, family="poisson").fit("agq", n_quad=0)


def test_nested_fit_converges_and_one_node_is_laplace():
    rng = np.random.default_rng(9)
    df = pd.DataFrame(
        [
            {"a": f"A{a}", "b": f"B{b}", "x": rng.normal()}
            for a in range(10)
            for b in range(3)
            for _ in range(4)
        ]
    )
    sim = simulate(
        "y ~ x + (1|a/b)",
        df,
        {"Intercept": 0.2, "x": 0.5},
        {"a": 0.5, "a:b": 0.3},
        family="poisson",
        random_seed=10,
    )
    m = GLMM("y ~ x + (1|a/b)", sim, family="poisson")
    lap = m.fit("laplace")
    one = m.fit("agq", n_quad=1)
    assert one.loglik == pytest.approx(lap.loglik, abs=1e-6)
    many = m.fit("agq", n_quad=9)
    assert many.converged and many.info["details"]["quadrature"] == "nested"
    assert "nested" in many.info["details"]["label"]
