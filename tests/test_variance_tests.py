"""Likelihood-ratio tests of variance components (bg.test_variance) and bg.anova."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesglmm as bg
from bayesglmm.errors import MethodError
from bayesglmm.inference.variance_tests import psd_cone

CBPP = "cbind(incidence, size - incidence) ~ period + (1|herd)"


@pytest.fixture(scope="module")
def cbpp():
    return bg.datasets.load("cbpp")


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    return bg.GLMM(CBPP, cbpp).fit(method="laplace")


def test_lrt_against_statsmodels_glm(cbpp, cbpp_fit):
    sm = pytest.importorskip("statsmodels.api")
    X = sm.add_constant(pd.get_dummies(cbpp["period"].astype(str), drop_first=True).astype(float))
    endog = np.c_[cbpp["incidence"], cbpp["size"] - cbpp["incidence"]]
    glm = sm.GLM(endog, X, family=sm.families.Binomial()).fit()
    expected = 2.0 * (cbpp_fit.loglik - glm.llf)
    res = bg.test_variance(cbpp_fit, "(1|herd)")
    assert res.statistic == pytest.approx(expected, abs=1e-6)
    assert res.p_value == pytest.approx(0.5 * stats.chi2.sf(expected, 1), rel=1e-9)
    assert res.df == 1
    assert "0.5 chi2(0) + 0.5 chi2(1)" in res.null_distribution
    assert "Self & Liang" in res.null_distribution
    assert "p = " in repr(res) and "(1|herd)" in repr(res).replace(" ", "")


def test_mixture_p_value_is_half_the_naive(cbpp_fit):
    res = bg.test_variance(cbpp_fit, "herd")
    assert res.statistic > 1
    assert res.p_value == pytest.approx(0.5 * res.p_value_naive, rel=1e-12)


def test_anova_nested_laplace_fits(cbpp, cbpp_fit):
    small = bg.GLMM("cbind(incidence, size - incidence) ~ 1 + (1|herd)", cbpp).fit(method="laplace")
    table = bg.anova(small, cbpp_fit)
    chisq = 2.0 * (cbpp_fit.loglik - small.loglik)
    row = table.iloc[1]
    assert row["statistic"] == pytest.approx(chisq, rel=1e-12)
    assert row["df"] == 3
    assert row["p_value"] == pytest.approx(stats.chi2.sf(chisq, 3), rel=1e-12)
    assert row["null"] == "chi2(3)"
    assert table["logLik"].tolist() == [small.loglik, cbpp_fit.loglik]
    assert table["AIC"].iloc[1] == pytest.approx(-2 * cbpp_fit.loglik + 2 * 5)
    assert np.isnan(table["statistic"].iloc[0])


def _gaussian_slopes(seed=4):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(15), 8)
    x = rng.normal(size=g.size)
    b0, b1 = rng.normal(0, 1.0, 15), rng.normal(0, 0.7, 15)
    y = 1 + 0.5 * x + b0[g] + b1[g] * x + rng.normal(0, 1, g.size)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})


def test_one_column_of_a_correlated_term_and_anova_mixture():
    data = _gaussian_slopes()
    big = bg.GLMM("y ~ x + (1 + x|g)", data, family="gaussian").fit(method="lmm", reml=False)
    small = bg.GLMM("y ~ x + (1|g)", data, family="gaussian").fit(method="lmm", reml=False)
    res = bg.test_variance(big, "g|x")
    stat = 2.0 * (big.loglik - small.loglik)
    assert res.statistic == pytest.approx(stat, abs=1e-6)
    assert res.df == 2
    expected = 0.5 * stats.chi2.sf(stat, 1) + 0.5 * stats.chi2.sf(stat, 2)
    assert res.p_value == pytest.approx(expected, rel=1e-6)
    assert "Stram & Lee" in res.null_distribution
    row = bg.anova(small, big).iloc[1]
    assert row["df"] == 2 and row["p_value"] == pytest.approx(expected, rel=1e-6)
    assert "Stram & Lee" in row["null"]


def test_lmm_ml_against_least_squares():
    data = _gaussian_slopes()
    fit = bg.GLMM("y ~ x + (1|g)", data, family="gaussian").fit(method="lmm", reml=False)
    X = np.c_[np.ones(len(data)), data["x"]]
    rss = np.sum((data["y"] - X @ np.linalg.lstsq(X, data["y"], rcond=None)[0]) ** 2)
    n = len(data)
    ll0 = -0.5 * n * (1 + np.log(2 * np.pi * rss / n))
    res = bg.test_variance(fit, "g")
    assert res.statistic == pytest.approx(2 * (fit.loglik - ll0), abs=1e-6)


@pytest.mark.parametrize("reml", [True, False])
def test_lmm_singular_fit_equals_the_linear_model(reml):
    """A fit whose variance is estimated at zero is the linear model: its REML criterion or
    log-likelihood equals the reduced model's, so the two criteria are written alike."""
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"g": np.repeat(np.arange(10), 5).astype(str), "x": rng.normal(size=50)})
    data["y"] = 1 + data["x"] + rng.normal(size=50)
    fit = bg.GLMM("y ~ x + (1|g)", data, family="gaussian").fit(method="lmm", reml=reml)
    assert fit.variance_components.iloc[0] == 0.0
    res = bg.test_variance(fit, "g")
    assert fit.loglik - res.fits["reduced"].loglik == pytest.approx(0.0, abs=1e-9)
    assert res.fits["reduced"].criterion == ("REML criterion" if reml else "log-likelihood")
    assert res.p_value == 1.0


def test_psd_cone_weights_for_a_two_dimensional_term():
    mix = psd_cone(2)
    assert mix.dfs == (0, 2, 3)
    assert sum(mix.weights) == pytest.approx(1.0)
    # P(a 2x2 GOE matrix is positive definite) = (2 - sqrt 2) / 4
    assert mix.weights[2] == pytest.approx((2 - np.sqrt(2)) / 4, abs=3e-3)


# ----------------------------------------------------------------------------- refusals
def test_refuses_non_nested_fits(cbpp, cbpp_fit):
    other = bg.GLMM("cbind(incidence, size - incidence) ~ 1 + (1|herd)", cbpp).fit(method="laplace")
    with pytest.raises(MethodError, match=r"not nested.*period\[2\]"):
        bg.anova(cbpp_fit, other)


def test_refuses_different_data(cbpp, cbpp_fit):
    part = cbpp.iloc[:-5].reset_index(drop=True)
    other = bg.GLMM(CBPP, part).fit(method="laplace")
    with pytest.raises(MethodError, match="same data"):
        bg.anova(other, cbpp_fit)


@pytest.mark.filterwarnings("ignore:effective sample size")
def test_refuses_bayesian_fit(cbpp, cbpp_fit):
    nuts = bg.GLMM(CBPP, cbpp).fit(
        method="nuts", draws=30, tune=30, chains=1, cores=1, random_seed=1, progressbar=False
    )
    with pytest.raises(MethodError, match=r"fit 2 is a Bayesian fit \(nuts\).*bg.loo"):
        bg.anova(cbpp_fit, nuts)
    with pytest.raises(MethodError, match="Bayesian fit.*bg.loo"):
        bg.test_variance(nuts, "herd")


def test_refuses_method_score_and_unknown_term(cbpp_fit):
    with pytest.raises(MethodError, match="method='score'.*not available"):
        bg.test_variance(cbpp_fit, "herd", method="score")
    with pytest.raises(MethodError, match="'plot'.*not a random term"):
        bg.test_variance(cbpp_fit, "plot")


def test_refuses_fits_of_different_methods(cbpp, cbpp_fit):
    agq = bg.GLMM(CBPP, cbpp).fit(method="agq", n_quad=5)
    with pytest.raises(MethodError, match="one method.*laplace, agq"):
        bg.anova(cbpp_fit, agq)


# ----------------------------------------------------------------------------- size
def test_size_of_the_boundary_lrt():
    """Poisson, one factor (20 groups of 10), variance 0: the mixture's rejection rate at
    0.05 lies in the 99.9 % binomial interval around 0.05; the naive chi2(1) rejects less
    (its p-value is twice the mixture's)."""
    n_sets = 200
    data = pd.DataFrame({"g": np.repeat(np.arange(20), 10).astype(str)})
    reject = reject_naive = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(n_sets):
            sim = bg.simulate(
                "y ~ 1 + (1|g)",
                data,
                {"Intercept": 0.5},
                {"g": 0.0},
                family="poisson",
                random_seed=seed,
            )
            fit = bg.GLMM("y ~ 1 + (1|g)", sim, family="poisson").fit(method="laplace")
            res = bg.test_variance(fit, "g")
            reject += res.p_value < 0.05
            reject_naive += res.p_value_naive < 0.05
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n_sets, 0.05)
    assert lo <= reject <= hi, (reject, lo, hi)
    assert reject_naive <= reject


def test_anova_one_variance_uses_the_mixture():
    data = bg.datasets.load("salamander")
    big = bg.GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", data).fit(method="laplace")
    res = bg.test_variance(big, "(1|Male)")
    small = res.fits["reduced"]
    assert small.formula.replace(" ", "") == "Mate~0+Cross+(1|Female)"
    row = bg.anova(small, big).iloc[1]
    assert row["statistic"] == pytest.approx(res.statistic, rel=1e-12)
    assert row["df"] == 1
    assert row["p_value"] == pytest.approx(0.5 * stats.chi2.sf(row["statistic"], 1), rel=1e-12)
    assert row["null"].startswith("0.5 chi2(0) + 0.5 chi2(1)")
