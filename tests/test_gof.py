"""Jiang's (2001) chi-square goodness-of-fit test: the statistic and its weighted
chi-square null against a direct computation, its size and power in simulations, the
parametric bootstrap's reproducibility, and argument checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import bayesglmm as bg
from bayesglmm.diagnostics.gof import GofResult, gof_test, weighted_chi2_sf
from bayesglmm.errors import MethodError, OptionError


def poisson_data(seed: int, groups: int = 20, size: int = 8, olre: float = 0.0, zeros=0.0):
    """Poisson one-factor model: ``log mu = 0.5 + 0.4 x + b_g``, ``b_g ~ N(0, 0.6^2)``."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), size)
    x = rng.normal(size=g.size)
    eta = 0.5 + 0.4 * x + rng.normal(0.0, 0.6, groups)[g]
    if olre:
        eta = eta + rng.normal(0.0, np.sqrt(olre), g.size)
    y = rng.poisson(np.exp(eta))
    if zeros:
        y[rng.uniform(size=y.size) < zeros] = 0
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical([f"g{i}" for i in g])})


def poisson_fit(seed: int, **kw):
    return bg.GLMM("y ~ x + (1|g)", poisson_data(seed, **kw), family="poisson").fit(
        method="laplace"
    )


# ------------------------------------------------------------------------------------------
# the statistic and the weights against a direct computation


def _direct(fit, data, cuts, params):
    """Expected counts and Var(N) of a Poisson random-intercept model by scipy quadrature
    over each level's effect, at ``params = (Intercept, x, sd)``."""
    b0, b1, sd = params
    x = data["x"].to_numpy()
    g = data["g"].cat.codes.to_numpy()
    edges = np.concatenate([[-1.0], np.floor(cuts), [np.inf]])  # cell k: edges[k] < y <= edges[k+1]

    def cell_probs(eta):
        F = stats.poisson.cdf(edges[1:-1][None, :], np.exp(eta)[:, None])
        F = np.concatenate([np.zeros((eta.size, 1)), F, np.ones((eta.size, 1))], axis=1)
        return np.diff(F, axis=1)  # (rows, K)

    K = cuts.size + 1
    E = np.zeros(K)
    V = np.zeros((K, K))
    lim = 10 * sd
    for level in np.unique(g):
        eta0 = b0 + b1 * x[g == level]

        def moments(b, eta0=eta0):  # E[N | b] and E[N N' | b] = Cov(N | b) + E E', times pdf
            P = cell_probs(eta0 + b)
            m = P.sum(axis=0)
            second = np.diag(m) - P.T @ P + np.outer(m, m)
            return np.concatenate([m, second.ravel()]) * stats.norm.pdf(b, 0.0, sd)

        out = integrate.quad_vec(moments, -lim, lim, epsabs=1e-12, epsrel=1e-10)[0]
        mean_g = out[:K]
        E += mean_g
        V += out[K:].reshape(K, K) - np.outer(mean_g, mean_g)
    return E, V


def test_statistic_and_weights_match_a_direct_computation():
    data = poisson_data(3, groups=5, size=4)
    fit = bg.GLMM("y ~ x + (1|g)", data, family="poisson").fit(method="laplace")
    cuts = np.array([0.5, 1.5, 3.5])
    res = gof_test(fit, cells=cuts, n_sim=20_000, random_seed=1)
    sd = float(np.sqrt(fit.variance_components["g"]))
    p0 = np.array([fit.fixed_effects["Intercept"], fit.fixed_effects["x"], sd])
    E, varN = _direct(fit, data, cuts, p0)
    y = data["y"].to_numpy()
    O = np.array([np.sum(y == 0), np.sum(y == 1), np.sum((y >= 2) & (y <= 3)), np.sum(y >= 4)])
    n = len(y)
    np.testing.assert_array_equal(res.table["observed"].to_numpy(), O)
    # Gauss-Hermite (40 nodes) against adaptive quadrature: both near machine precision
    np.testing.assert_allclose(res.table["expected"].to_numpy(), E, rtol=1e-6)
    assert res.statistic == pytest.approx(np.sum((O - E) ** 2) / n, rel=1e-6)
    # Sigma = Var(N) - B V B' with B by central differences of the direct expectations;
    # laplace's vcov covers (theta[g], Intercept, x) and theta[g] is the sd (Poisson)
    B = np.zeros((4, 3))
    for j in range(3):
        h = 1e-5
        up, down = p0.copy(), p0.copy()
        up[j] += h
        down[j] -= h
        B[:, j] = (_direct(fit, data, cuts, up)[0] - _direct(fit, data, cuts, down)[0]) / (2 * h)
    Vt = fit.vcov.block(["Intercept", "x", "theta[g]"])
    lam = np.sort(np.linalg.eigvalsh((varN - B @ Vt @ B.T) / n))[::-1]
    assert res.weights.size >= 2
    # Var(N) from 20,000 simulated data sets: relative error ~ sqrt(2 / 20000) = 1 %
    # per direction; 5 % covers the leading weights with a wide margin
    np.testing.assert_allclose(res.weights[:2], lam[:2], rtol=0.05)
    assert res.p_value == pytest.approx(weighted_chi2_sf(res.statistic, res.weights))
    # the Pearson weighting: sum d^2 / E
    pearson = gof_test(fit, cells=cuts, weight="pearson", n_sim=2000, random_seed=1)
    assert pearson.statistic == pytest.approx(np.sum((O - E) ** 2 / E), rel=1e-6)


def test_weighted_chi_square_tail():
    assert weighted_chi2_sf(3.0, [1.0, 1.0, 1.0]) == pytest.approx(stats.chi2.sf(3.0, 3))
    assert weighted_chi2_sf(2.0, [0.5]) == pytest.approx(stats.chi2.sf(4.0, 1), rel=1e-6)
    lam = np.array([0.9, 0.3, 0.05])
    z = (np.random.default_rng(0).standard_normal((400_000, 3)) ** 2) @ lam
    for q in (0.5, 0.95, 0.99):
        x = np.quantile(z, q)
        # Monte Carlo sd of a tail share p from 400,000 draws <= 8e-4; 5 sd
        assert weighted_chi2_sf(x, lam) == pytest.approx(1 - q, abs=4e-3)


# ------------------------------------------------------------------------------------------
# size and power


def test_size_under_the_model():
    # 24 data sets from the fitted model's family: P(p < 0.05) = 0.05 each; the count of
    # rejections stays <= 5 with probability 0.999 (binomial(24, 0.05)), and the count of
    # p < 0.5 within [5, 19] with probability 0.998 (binomial(24, 0.5))
    ps = np.array([gof_test(poisson_fit(s), n_sim=500, random_seed=s).p_value for s in range(24)])
    assert (ps < 0.05).sum() <= 5, np.round(ps, 3)
    assert 5 <= (ps < 0.5).sum() <= 19, np.round(ps, 3)


@pytest.mark.parametrize("alt", [{"olre": 1.0}, {"zeros": 0.3}])
def test_power_on_a_clear_alternative(alt):
    fit = poisson_fit(4, groups=30, size=10, **alt)
    res = gof_test(fit, random_seed=1)
    assert res.p_value < 0.001, res


def test_binomial_with_trials_uses_proportions():
    fit = bg.GLMM(
        "cbind(incidence, size - incidence) ~ period + (1|herd)",
        bg.datasets.load("cbpp"),
        family="binomial",
    ).fit(method="laplace")
    res = gof_test(fit, cells=[0.05, 0.15], random_seed=2)
    data = bg.datasets.load("cbpp")
    v = data["incidence"] / data["size"]
    expected_obs = [np.sum(v <= 0.05), np.sum((v > 0.05) & (v <= 0.15)), np.sum(v > 0.15)]
    np.testing.assert_array_equal(res.table["observed"].to_numpy(), expected_obs)
    assert res.table["expected"].sum() == pytest.approx(len(data), rel=1e-9)
    assert 0.0 <= res.p_value <= 1.0
    assert "Jiang chi-square" in repr(res)


# ------------------------------------------------------------------------------------------
# bootstrap


def test_bootstrap_reproducible_for_a_seed():
    fit = poisson_fit(2, groups=12, size=5)
    a = gof_test(fit, method="bootstrap", n_boot=5, random_seed=5, max_workers=1)
    b = gof_test(fit, method="bootstrap", n_boot=5, random_seed=5, max_workers=1)
    c = gof_test(fit, method="bootstrap", n_boot=5, random_seed=6, max_workers=1)
    assert isinstance(a, GofResult) and a.method == "bootstrap" and a.n_boot == 5
    np.testing.assert_array_equal(a.boot_statistics, b.boot_statistics)
    assert a.p_value == b.p_value
    assert not np.array_equal(a.boot_statistics, c.boot_statistics)
    assert a.p_value == pytest.approx((1 + np.sum(a.boot_statistics >= a.statistic)) / 6)
    # the observed statistic is the asymptotic test's (same cells, same estimates)
    assert a.statistic == pytest.approx(gof_test(fit, random_seed=5).statistic)


# ------------------------------------------------------------------------------------------
# arguments


def test_bad_arguments():
    fit = poisson_fit(1)
    with pytest.raises(OptionError, match="method"):
        gof_test(fit, method="exact")
    with pytest.raises(OptionError, match="weight"):
        gof_test(fit, weight="chi")
    with pytest.raises(OptionError, match="cells"):
        gof_test(fit, cells=1)
    with pytest.raises(OptionError, match="increasing"):
        gof_test(fit, cells=[2.5, 0.5])
    with pytest.raises(OptionError, match="n_sim"):
        gof_test(fit, n_sim=10)
    with pytest.raises(OptionError, match="n_boot"):
        gof_test(fit, method="bootstrap", n_boot=1)
    with pytest.raises(OptionError, match="store"):
        gof_test(fit, store="somewhere")
    with pytest.raises(OptionError, match="random_seed"):
        gof_test(fit, random_seed=1.5)
    gee = bg.GLMM("y ~ x + (1|g)", poisson_data(1), family="poisson").fit(method="gee")
    with pytest.raises(MethodError, match="marginal"):
        gof_test(gee)


def test_two_valued_response_is_refused_asymptotically():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(20), 8)
    y = rng.binomial(1, 1 / (1 + np.exp(-rng.normal(0, 0.7, 20)[g])))
    data = pd.DataFrame({"y": y, "g": [f"g{i}" for i in g]})
    fit = bg.GLMM("y ~ 1 + (1|g)", data, family="binomial").fit(method="laplace")
    with pytest.raises(MethodError, match="rank 0"):
        gof_test(fit, random_seed=1)
