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


def test_refuses_unknown_term(cbpp_fit):
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


# ----------------------------------------------------------------------------- rlrt
def _unbalanced(seed=4, sd_b=0.35):
    """14 groups of 2 to 8 rows; written to CSV for the R reference below."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, size=14)
    g = np.repeat(np.arange(14), sizes)
    x = rng.normal(size=g.size)
    b = rng.normal(0, sd_b, 14)
    y = 1 + 0.5 * x + b[g] + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})


#: R 4 (lme4, RLRsim 3.1-8) on _unbalanced(4) written with DataFrame.to_csv:
#:   d <- read.csv("d4.csv"); d$g <- factor(d$g)
#:   m <- lmer(y ~ x + (1|g), data = d, REML = TRUE)
#:   set.seed(1); exactRLRT(m, nsim = 100000)
#:   -> RLRT = 2.1310398469, p-value = 0.06031
R_RLRT, R_P, R_NSIM = 2.1310398469, 0.06031, 100_000


@pytest.fixture(scope="module")
def unbalanced_fit():
    data = _unbalanced()
    assert len(data) == 85
    return bg.GLMM("y ~ x + (1|g)", data, family="gaussian").fit(method="lmm", reml=True)


def test_rlrt_against_rlrsim(unbalanced_fit):
    nsim = 20_000
    res = bg.test_variance(unbalanced_fit, method="rlrt", nsim=nsim, random_seed=7)
    assert res.statistic == pytest.approx(R_RLRT, abs=1e-5)
    # both p-values are Monte Carlo estimates: 3 standard errors of their difference
    se = np.sqrt(R_P * (1 - R_P) / R_NSIM + R_P * (1 - R_P) / nsim)
    assert abs(res.p_value - R_P) < 3 * se, (res.p_value, R_P, se)
    assert res.mc_error == pytest.approx(np.sqrt(res.p_value * (1 - res.p_value) / nsim))
    assert res.details["sample"].size == nsim and "Crainiceanu" in res.null_distribution
    again = bg.test_variance(unbalanced_fit, method="rlrt", nsim=nsim, random_seed=7)
    assert np.array_equal(again.details["sample"], res.details["sample"])
    # an ML fit is refitted by REML, and the result says so
    ml = bg.GLMM("y ~ x + (1|g)", unbalanced_fit.model.data, family="gaussian").fit(
        method="lmm", reml=False
    )
    res_ml = bg.test_variance(ml, "g", method="rlrt", nsim=2000, random_seed=7)
    assert res_ml.statistic == pytest.approx(R_RLRT, abs=1e-5)
    assert any("refitted by REML" in n for n in res_ml.notes)


def test_rlrt_point_mass_at_zero_is_the_f_probability():
    """Balanced one-way layout: K - 1 equal eigenvalues and one zero (the intercept). The
    statistic is 0 exactly when its slope at lambda = 0 is not positive, i.e. when
    F(K - 1, n - p - K + 1) <= 1 (from the spectral form); the simulated mass at zero lies
    within 4 binomial standard errors of that probability."""
    from bayesglmm.inference.rlrt import rlrt_eigenvalues, rlrt_sample

    K, m = 10, 5
    g = np.repeat(np.arange(K), m)
    X = np.ones((K * m, 1))
    Z = (g[:, None] == np.arange(K)[None, :]).astype(float)
    mu = rlrt_eigenvalues(X, Z)
    assert np.allclose(np.sort(mu), [0.0] + [1.0] * (K - 1), atol=1e-12)
    nsim = 20_000
    sample = rlrt_sample(mu, K * m, 1, nsim, random_seed=3)
    expected = stats.f.cdf(1.0, K - 1, K * m - 1 - K + 1)
    zero = np.mean(sample == 0)
    assert abs(zero - expected) < 4 * np.sqrt(expected * (1 - expected) / nsim)


def test_rlrt_eigenvalues_with_other_effects_match_a_dense_computation():
    """``mu`` are the eigenvalues of Z' P0 Z with V0 = I + W W' (scaled to max 1)."""
    from bayesglmm.inference.rlrt import rlrt_eigenvalues

    rng = np.random.default_rng(2)
    n = 40
    X = np.c_[np.ones(n), rng.normal(size=n)]
    Z = (rng.integers(0, 6, n)[:, None] == np.arange(6)).astype(float)
    W = 0.8 * (rng.integers(0, 4, n)[:, None] == np.arange(4)).astype(float)
    V = np.eye(n) + W @ W.T
    Vi = np.linalg.inv(V)
    P0 = Vi - Vi @ X @ np.linalg.solve(X.T @ Vi @ X, X.T @ Vi)
    ev = np.sort(np.linalg.eigvalsh(Z.T @ P0 @ Z))[::-1]
    assert np.allclose(rlrt_eigenvalues(X, Z, W), np.clip(ev, 0, None) / ev[0], atol=1e-10)
    # W = 0 is RLRsim's case
    assert np.allclose(rlrt_eigenvalues(X, Z, 0 * W), rlrt_eigenvalues(X, Z), atol=1e-12)


#: R on _unbalanced(4) with a second factor h (row number mod 5, shifting y by
#: -0.8, -0.3, 0, 0.4, 0.9), written with DataFrame.to_csv:
#:   d$g <- factor(d$g); d$h <- factor(d$h)
#:   mA <- lmer(y ~ x + (1|g) + (1|h), data = d, REML = TRUE)
#:   m0 <- lmer(y ~ x + (1|h), data = d, REML = TRUE)
#:   m <- lmer(y ~ x + (1|g), data = d, REML = TRUE)
#:   set.seed(1); exactRLRT(m, mA, m0, nsim = 100000)
#:   -> RLRT = 1.6228836840, p-value = 0.08532
R_RLRT_H, R_P_H = 1.6228836840, 0.08532


def test_rlrt_with_another_random_effect(unbalanced_fit):
    data = unbalanced_fit.model.data.copy()
    h = np.arange(len(data)) % 5
    data["y"] = data["y"] + np.array([-0.8, -0.3, 0.0, 0.4, 0.9])[h]
    data["h"] = h.astype(str)
    fit = bg.GLMM("y ~ x + (1|g) + (1|h)", data, family="gaussian").fit(method="lmm")
    small = bg.GLMM("y ~ x + (1|h)", data, family="gaussian").fit(method="lmm")
    nsim = 20_000
    res = bg.test_variance(fit, "(1|g)", method="rlrt", nsim=nsim, random_seed=1, others="ignore")
    assert res.statistic == pytest.approx(2 * (fit.loglik - small.loglik), abs=1e-6)
    assert res.statistic == pytest.approx(R_RLRT_H, abs=1e-5)
    se = np.sqrt(R_P_H * (1 - R_P_H) * (1 / 100_000 + 1 / nsim))
    assert abs(res.p_value - R_P_H) < 3 * se, (res.p_value, R_P_H, se)
    assert "RLRsim exactRLRT(m, mA, m0)" in res.null_distribution
    est = bg.test_variance(fit, "(1|g)", method="rlrt", nsim=2000, random_seed=1)
    assert "held at their REML estimates" in est.null_distribution
    assert 0 < est.p_value < 1 and est.statistic == res.statistic
    with pytest.raises(MethodError, match="others must be one of 'estimates', 'ignore'"):
        bg.test_variance(fit, "(1|g)", method="rlrt", others="drop")


# ----------------------------------------------------------------------------- bootstrap
def test_bootstrap_same_seed_same_p_across_workers_and_resumes(unbalanced_fit, tmp_path):
    one = bg.test_variance(
        unbalanced_fit, method="bootstrap", n_boot=8, random_seed=5, max_workers=1
    )
    two = bg.test_variance(
        unbalanced_fit, method="bootstrap", n_boot=8, random_seed=5, max_workers=2
    )
    assert np.array_equal(one.details["sample"], two.details["sample"])
    assert one.p_value == two.p_value
    exceed = np.sum(one.details["sample"] >= one.statistic)
    assert one.p_value == (1 + exceed) / 9
    assert one.mc_error == pytest.approx(np.sqrt(one.p_value * (1 - one.p_value) / 8))
    assert "parametric bootstrap" in one.null_distribution
    other = bg.test_variance(
        unbalanced_fit, method="bootstrap", n_boot=8, random_seed=6, max_workers=1
    )
    assert not np.array_equal(other.details["sample"], one.details["sample"])
    # on a client (an Executor here; a Dask Client is taken the same way)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        on_client = bg.test_variance(
            unbalanced_fit, method="bootstrap", n_boot=8, random_seed=5, client=pool
        )
    assert np.array_equal(on_client.details["sample"], one.details["sample"])
    # a store: 5 replicates, then 8 with the same store resume the 5 and run 3
    store = tmp_path / "boot"
    opts = {"method": "bootstrap", "random_seed": 5, "max_workers": 1, "store": str(store)}
    bg.test_variance(unbalanced_fit, n_boot=5, **opts)
    resumed = bg.test_variance(unbalanced_fit, n_boot=8, **opts)
    table = resumed.details["study"].table
    assert table["resumed"].tolist() == [True] * 5 + [False] * 3
    assert np.array_equal(resumed.details["sample"], one.details["sample"])
    assert resumed.p_value == one.p_value


# ----------------------------------------------------------------------------- options
def test_option_errors_before_any_fit(unbalanced_fit, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "bayesglmm.inference.variance_tests.fit_reduced",
        lambda *a, **k: calls.append(1),
    )
    f = unbalanced_fit
    with pytest.raises(
        MethodError, match=r"unknown option 'nsim' for test_variance\(method='lrt'\)"
    ):
        bg.test_variance(f, method="lrt", nsim=10)
    with pytest.raises(
        MethodError, match=r"unknown option 'n_boot'.*an option of method bootstrap"
    ):
        bg.test_variance(f, method="rlrt", n_boot=10)
    with pytest.raises(MethodError, match="n_boot must be a positive integer up to 100000"):
        bg.test_variance(f, method="bootstrap", n_boot=0)
    with pytest.raises(MethodError, match="n_boot must be a positive integer up to 100000"):
        bg.test_variance(f, method="bootstrap", n_boot=10**7)
    with pytest.raises(MethodError, match="store must be a directory path"):
        bg.test_variance(f, method="bootstrap", store=3)
    with pytest.raises(MethodError, match="nsim must be a positive integer"):
        bg.test_variance(f, method="rlrt", nsim=1.5)
    with pytest.raises(MethodError, match="method must be one of lrt, rlrt, bootstrap, score"):
        bg.test_variance(f, method="wald")
    with pytest.raises(MethodError, match="only method='score' takes an unfitted GLMM"):
        bg.test_variance(f.model, method="lrt")
    assert calls == []


def test_rlrt_refusals(cbpp_fit):
    with pytest.raises(MethodError, match="method='rlrt'.*fitted by method 'lmm'.*laplace"):
        bg.test_variance(cbpp_fit, "herd", method="rlrt")
    big = bg.GLMM("y ~ x + (1 + x|g)", _gaussian_slopes(), family="gaussian").fit(method="lmm")
    with pytest.raises(MethodError, match="tests one variance"):
        bg.test_variance(big, "g|x", method="rlrt")
    data = _gaussian_slopes()
    data["h"] = (np.arange(len(data)) % 6).astype(str)
    two = bg.GLMM("y ~ x + (1|g) + (1|h)", data, family="gaussian").fit(method="lmm")
    with pytest.raises(MethodError, match="needs term= when the model has several"):
        bg.test_variance(two, method="lrt")


def test_score_method_is_wired_to_score_test(unbalanced_fit, monkeypatch):
    """method="score" calls score_test(model_or_fit, term=..., **options) and takes an
    unfitted GLMM; checked with a stand-in module (score_test's own tests cover its math)."""
    import sys
    import types

    seen = {}

    def fake(model_or_fit, term=None, correction=None):
        seen.update(model=model_or_fit, term=term, correction=correction)
        return "result"

    monkeypatch.setitem(
        sys.modules, "bayesglmm.inference.score_test", types.SimpleNamespace(score_test=fake)
    )
    model = unbalanced_fit.model
    assert bg.test_variance(model, "g", method="score", correction=False) == "result"
    assert seen == {"model": model, "term": "g", "correction": False}
    bg.test_variance(unbalanced_fit, method="score")
    assert seen["model"] is unbalanced_fit and seen["term"] is None
    with pytest.raises(MethodError, match="unknown option 'nsim'.*method='score'"):
        bg.test_variance(model, method="score", nsim=3)


# ----------------------------------------------------------------------------- weights
def test_information_weights_are_the_goe_weights_for_the_identity():
    """Identity information in Frobenius coordinates = vech information diag(1, 2, 1)
    (a covariance counted once): the GOE weights; P(a 2x2 GOE matrix is positive definite)
    = (2 - sqrt 2) / 4. 20,000 draws: 4 binomial standard errors (0.01)."""
    from bayesglmm.inference.variance_tests import cone_weights

    mix = cone_weights(np.diag([1.0, 2.0, 1.0]), 2)
    assert mix.dfs == (0, 2, 3)
    assert mix.weights[2] == pytest.approx((2 - np.sqrt(2)) / 4, abs=0.01)
    assert mix.weights[0] == pytest.approx((2 - np.sqrt(2)) / 4, abs=0.01)
    mix3 = cone_weights(np.diag([1.0, 2, 2, 1, 2, 1]), 3)
    goe3 = psd_cone(3)
    assert mix3.dfs == goe3.dfs
    assert np.allclose(mix3.weights, goe3.weights, atol=0.012)
    # an information from the identity by a congruence S -> A S A' (which maps the cone
    # onto itself) has the same weights; the same draws give the same ranks
    A = np.array([[2.0, 0.0], [0.7, 0.5]])
    pairs = [(0, 0), (0, 1), (1, 1)]
    T = np.zeros((3, 3))
    for c, (j, k) in enumerate(pairs):
        E = np.zeros((2, 2))
        E[j, k] = E[k, j] = 1.0
        S = A @ E @ A.T
        T[:, c] = [S[a, b] for a, b in pairs]
    Ti = np.linalg.inv(T)
    assert cone_weights(Ti.T @ np.diag([1.0, 2.0, 1.0]) @ Ti, 2).weights == mix.weights


def test_orthant_weights_follow_the_correlation_of_the_information():
    """Two variances with information I: w2 = P(N(0, I^-1) in the orthant) =
    1/4 + asin(rho) / (2 pi), w1 = 1/2 (Kudo 1963); rho = 0 gives 1/4, 1/2, 1/4."""
    from bayesglmm.inference.variance_tests import cone_weights, independent_variances

    for rho in (0.0, 0.6, -0.5):
        V = np.array([[2.0, rho * np.sqrt(2.0)], [rho * np.sqrt(2.0), 1.0]])
        mix = cone_weights(np.linalg.inv(V), 2, "orthant")
        w2 = 0.25 + np.arcsin(rho) / (2 * np.pi)
        assert mix.weights == pytest.approx((0.5 - w2, 0.5, w2), abs=0.012)
    assert independent_variances(2).weights == (0.25, 0.5, 0.25)


def test_variance_information_matches_the_dense_traces():
    """Efficient information of the (1 + x|g) covariance at the null: 0.5 tr(P G_a P G_b)
    written out with dense n x n matrices, sigma^2 profiled out, REML projection P."""
    from bayesglmm.inference.variance_tests import variance_information

    data = _gaussian_slopes()
    fit = bg.GLMM("y ~ x + (1 + x|g)", data, family="gaussian").fit(method="lmm")
    res = bg.test_variance(fit, "(1 + x|g)")
    reduced = res.fits["reduced"]
    info, why = variance_information(fit, reduced, [0])
    assert why == ""
    d = fit.model.design
    n = d.n
    s2 = reduced.dispersion**2
    Vi = np.eye(n) / s2
    P = Vi - Vi @ d.X @ np.linalg.solve(d.X.T @ Vi @ d.X, d.X.T @ Vi)
    Z = d.random[0].Z.toarray()
    Z0, Z1 = Z[:, 0::2], Z[:, 1::2]
    G = [Z0 @ Z0.T, Z0 @ Z1.T + Z1 @ Z0.T, Z1 @ Z1.T, np.eye(n)]
    full = np.array([[0.5 * np.trace(P @ a @ P @ b) for b in G] for a in G])
    eff = full[:3, :3] - np.outer(full[:3, 3], full[3, :3]) / full[3, 3]
    assert np.allclose(info, eff, rtol=1e-9)
    # the test uses weights from this information
    assert "estimated information" in res.null_distribution
    assert res.df == 3 and res.notes == []


def test_several_variances_at_once_and_the_identity_fallback(monkeypatch):
    data = _gaussian_slopes()
    fit = bg.GLMM("y ~ x + (1 + x||g)", data, family="gaussian").fit(method="lmm")
    res = bg.test_variance(fit, ["(1||g)", "(0 + x||g)"])
    assert res.df == 2 and "orthant" in res.null_distribution
    assert res.fits["reduced"].formula.replace(" ", "") == "y~x"
    from bayesglmm.inference.variance_tests import cone_weights, variance_information

    info, _ = variance_information(fit, res.fits["reduced"], [0, 1])
    assert res.p_value == pytest.approx(cone_weights(info, 2, "orthant").sf(res.statistic))
    monkeypatch.setattr("bayesglmm.inference.mixtures.INFO_MAX_N", 10)
    big = bg.GLMM("y ~ x + (1 + x|g)", data, family="gaussian").fit(method="lmm")
    res = bg.test_variance(big, "(1 + x|g)")
    assert res.p_value == pytest.approx(psd_cone(2).sf(res.statistic), rel=1e-12)
    assert "identity information" in res.notes[0]
    with pytest.raises(MethodError, match="whole terms of one variance each"):
        bg.test_variance(big, ["(1 + x|g)"])
