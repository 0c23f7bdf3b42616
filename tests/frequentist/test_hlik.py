"""Hierarchical GLMs by h-likelihood (``method="hlik"``, HL(0,1); Lee & Nelder 1996).

References here are computed in the tests themselves: the exact marginal likelihoods
(negative multinomial for the Poisson-gamma HGLM, the hypergeometric form of the
binomial-beta HGLM, the beta-binomial) checked against numerical integration and
maximized by scipy; the package's REML fit of the linear mixed model. R's ``hglm`` is not
installed here, so no R numbers are quoted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

import bayesglmm as bg
from bayesglmm import GLMM, MethodError, OptionError
from bayesglmm.frequentist.hlik import (
    HLikelihood,
    binomial_beta_loglik,
    poisson_gamma_loglik,
)
from bayesglmm.model import datasets


def _poisson_gamma_data(seed, G=40, m=5, lam=0.5, beta=(0.5, 0.3)):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    u = rng.gamma(1 / lam, lam, size=G)
    y = rng.poisson(np.exp(beta[0] + beta[1] * x) * u[g])
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k:02d}" for k in g]})


@pytest.fixture(scope="module")
def pg_model():
    return GLMM("y ~ x + (1|g)", _poisson_gamma_data(11), family="poisson")


@pytest.fixture(scope="module")
def pg_fit(pg_model):
    return pg_model.fit("hlik", re_family="gamma")


def _negmult_nll(par, X, y, index):
    """Negative marginal log-likelihood of the Poisson-gamma model, written out here."""
    beta, lam = par[:-1], np.exp(par[-1])
    a = 1.0 / lam
    mu = np.exp(X @ beta)
    ys = np.bincount(index, weights=y)
    ms = np.bincount(index, weights=mu)
    ll = np.sum(y * np.log(mu) - special.gammaln(y + 1))
    ll += np.sum(special.gammaln(ys + a) - special.gammaln(a) + a * np.log(a))
    ll -= np.sum((ys + a) * np.log(ms + a))
    return -ll


@pytest.fixture(scope="module")
def pg_ml(pg_model):
    d = pg_model.design
    res = optimize.minimize(
        _negmult_nll,
        np.zeros(3),
        args=(d.X, d.y, d.random[0].index),
        method="BFGS",
        options={"gtol": 1e-10},
    )
    return res.x[:2], float(np.exp(res.x[2])), -float(res.fun)


# ------------------------------------------------------------------------------------------
# (a) Poisson-gamma: the marginal likelihood and the marginal ML


def test_poisson_gamma_closed_form_is_the_integral(pg_model):
    """The negative-multinomial marginal equals the integral over u, level by level."""
    d = pg_model.design
    beta, lam = np.array([0.4, 0.2]), 0.7
    mu = np.exp(d.X @ beta)
    idx = d.random[0].index
    total = 0.0
    for j in range(d.random[0].n_levels):
        rows = idx == j

        def f(u, rows=rows):
            return np.exp(
                np.sum(stats.poisson.logpmf(d.y[rows], mu[rows] * u))
                + stats.gamma.logpdf(u, 1 / lam, scale=lam)
            )

        total += np.log(integrate.quad(f, 0, np.inf, epsabs=0, epsrel=1e-11, limit=200)[0])
    assert poisson_gamma_loglik(d, beta, lam) == pytest.approx(total, abs=1e-7)


def test_poisson_gamma_beta_given_lambda_is_the_marginal_ml(pg_model, pg_ml):
    """Maximizing h in (beta, v) at the ML lambda gives the ML beta exactly (for v = log u
    the Laplace determinant does not involve beta: Lee & Nelder 1996, Section 4.2)."""
    beta_ml, lam_ml, _ = pg_ml
    hl = HLikelihood(pg_model.design, "gamma", 1e-10)
    st = hl.maximize(np.log([lam_ml]), np.zeros(2), np.zeros(hl.q))
    assert st.converged
    np.testing.assert_allclose(st.beta, beta_ml, atol=1e-6)


def test_poisson_gamma_hl_against_marginal_ml(pg_fit, pg_ml):
    """HL(0,1) lambda maximizes the APHL, a REML-type adjustment of the profile
    likelihood for the p = 2 fixed effects: it differs from the ML lambda by O(p / G)
    relatively (G = 40 levels; here 2.7 %, a tenth of its standard error). Tolerance: 10 %
    relative, and the marginal log-likelihood at the HL estimates within 0.05 of the
    maximum (and not above it)."""
    beta_ml, lam_ml, ll_ml = pg_ml
    lam = pg_fit.variance_components["g"]
    assert abs(lam - lam_ml) / lam_ml < 0.10
    assert abs(lam - lam_ml) < 0.25 * pg_fit.table.loc["var(g)", "std_error"]
    np.testing.assert_allclose(pg_fit.fixed_effects.to_numpy(), beta_ml, atol=0.005)
    assert ll_ml - 0.05 < pg_fit.loglik <= ll_ml + 1e-8
    assert pg_fit.info["details"]["loglik_method"].startswith("negative multinomial")


def test_poisson_gamma_recovers_lambda():
    """Seeded simulation: 12 data sets, G = 60 levels of 6, lambda = 0.5. The mean of the
    estimates lies within 3 Monte Carlo standard errors (of the 12 estimates) of 0.5
    (a false failure about 3 in 1000 if unbiased; the APHL's bias is O(1/G^2))."""
    est = []
    for seed in range(12):
        df = _poisson_gamma_data(100 + seed, G=60, m=6, lam=0.5)
        fit = GLMM("y ~ x + (1|g)", df, family="poisson").fit("hlik", re_family="gamma")
        assert fit.converged
        est.append(fit.variance_components["g"])
    est = np.array(est)
    mcse = est.std(ddof=1) / np.sqrt(est.size)
    assert abs(est.mean() - 0.5) < 3 * mcse, (est.mean(), mcse)


# ------------------------------------------------------------------------------------------
# (b) normal random effects


def test_gaussian_normal_is_reml():
    """For a Gaussian response the APHL is the restricted likelihood: the fit is REML."""
    rng = np.random.default_rng(2)
    G, m = 30, 6
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    y = 1 + 0.5 * x + rng.normal(0, 0.8, G)[g] + rng.normal(size=G * m)
    df = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    model = GLMM("y ~ x + (1|g)", df, family="gaussian")
    hl, lm = model.fit("hlik"), model.fit("lmm")
    for row in ["Intercept", "x", "var(g)", "sigma"]:
        assert hl.table.loc[row, "estimate"] == pytest.approx(
            lm.table.loc[row, "estimate"], abs=1e-6, rel=1e-6
        )
    np.testing.assert_allclose(hl.fixed_effects_se, lm.fixed_effects_se, rtol=1e-5)
    assert hl.info["details"]["aphl"] == pytest.approx(lm.loglik, abs=1e-6)


def test_poisson_normal_near_laplace():
    """Poisson with normal random intercepts: HL(1,1) takes beta from p_v(h) as Laplace
    does, and lambda from the APHL, a REML-type adjustment (O(p/G) relatively, G = 30
    levels); HL(0,1) takes beta from h, off by O(1/m) (m = 20 rows per level).
    Tolerance: a quarter of a standard error each."""
    rng = np.random.default_rng(5)
    G, m = 30, 20
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    y = rng.poisson(np.exp(0.3 + 0.4 * x + rng.normal(0, 0.6, G)[g]))
    df = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    model = GLMM("y ~ x + (1|g)", df, family="poisson")
    hl, la = model.fit("hlik"), model.fit("laplace")
    diff = np.abs(hl.fixed_effects - la.fixed_effects) / la.fixed_effects_se
    assert np.all(diff < 0.25), diff
    se_var = hl.table.loc["var(g)", "std_error"]
    assert abs(hl.variance_components["g"] - la.variance_components["g"]) < 0.25 * se_var
    assert hl.loglik == pytest.approx(la.loglik, abs=0.05)
    hl0 = model.fit("hlik", variant="HL(0,1)")
    diff0 = np.abs(hl0.fixed_effects - la.fixed_effects) / la.fixed_effects_se
    assert np.all(diff0 < 0.25), diff0


# ------------------------------------------------------------------------------------------
# (c) binomial-beta on the mouse litters


@pytest.fixture(scope="module")
def litters():
    return datasets.load("mouse_litters")


@pytest.fixture(scope="module")
def litter_model(litters):
    return GLMM("cbind(dead, survived) ~ 1 + (1|litter)", litters, family="binomial")


def test_binomial_beta_closed_form(litters):
    """The hypergeometric form is the beta-binomial at eta0 = 0 and the integral over u
    at other eta0 (both signs: the two sides of Pfaff's transformation)."""
    y = litters["dead"].to_numpy(float)[:12]
    n = litters["size"].to_numpy(float)[:12]
    idx = np.arange(12)
    lam, a = 0.3, 0.5 / 0.3
    bb = stats.betabinom.logpmf(y, n, a, a).sum()
    assert binomial_beta_loglik(y, n, idx, np.zeros(12), lam) == pytest.approx(bb, abs=1e-9)
    for eta0 in (-2.4, 1.3):
        c = np.exp(eta0)
        total = 0.0
        for yi, ni in zip(y, n, strict=True):

            def f(u, yi=yi, ni=ni, c=c):
                p = c * u / (1 - u + c * u)
                return stats.binom.pmf(yi, ni, p) * stats.beta.pdf(u, a, a)

            total += np.log(integrate.quad(f, 0, 1, epsabs=0, epsrel=1e-11)[0])
        got = binomial_beta_loglik(y, n, idx, np.full(12, eta0), lam)
        assert got == pytest.approx(total, abs=1e-7)


def test_mouse_litters_binomial_beta(litter_model, litters):
    """Intercept-only binomial-beta HGLM of the litters (Brooks et al. 1997's data).

    Against the exact marginal ML of the same model (scipy on the closed form, checked
    against the integral above): beta0 = -2.6412, lambda = 0.17579, logLik = -771.859.

    HL(1,1) (the default) takes beta0 from p_v(h), the Laplace approximation of the
    marginal: beta0 = -2.6265, lambda = 0.16005 (the APHL's REML-type lambda), marginal
    logLik -772.108. Tolerance: beta0 within half a standard error, lambda within 15 %
    (the APHL is a first-order approximation: its lambda differs from the ML one by
    O(1/m) with m about 13 pups per litter), logLik within 0.5 of the maximum.

    HL(0,1) takes beta0 from h: here ``log det D_vv`` depends on beta0 through
    n p (1 - p) at p near 0.08, and HL(0,1) gives beta0 = -2.445, lambda = 0.1503,
    logLik -776.12: the first-order bias of HL(0,1) for binomial data that HL(1,1)
    removes (Noh & Lee 2007). The same gap separates HL(0,1) with normal random effects
    (-2.453) from the Laplace fit (-2.650) on these litters. Tolerance: beta0 within 0.25,
    lambda within 25 %, logLik within 5 of the ML values. The figures above are pinned to
    1e-3.

    The beta-binomial of Brooks et al. (u ~ Beta(a, b) with free mean, p = u) is a
    different two-parameter mixture (here p = expit(beta0 + logit u), u ~ Beta with mean
    1/2): its ML fit has log-likelihood -777.69 (a = 1.234, b = 12.455, mean 0.090,
    intra-litter correlation 0.068).
    """
    y = litters["dead"].to_numpy(float)
    n = litters["size"].to_numpy(float)
    idx = np.arange(len(y))

    def nll(par):
        return -binomial_beta_loglik(y, n, idx, np.full(len(y), par[0]), np.exp(par[1]))

    res = optimize.minimize(
        nll,
        [-2.0, np.log(0.3)],
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000},
    )
    b_ml, lam_ml, ll_ml = res.x[0], np.exp(res.x[1]), -float(res.fun)
    assert (b_ml, lam_ml, ll_ml) == pytest.approx((-2.6412, 0.17579, -771.859), abs=1e-3)

    fit = litter_model.fit("hlik", re_family="beta")
    assert fit.info["details"]["hl_order"] == "HL(1,1)"
    b_hl = fit.fixed_effects["Intercept"]
    lam_hl = fit.variance_components["litter"]
    assert abs(b_hl - b_ml) < 0.5 * fit.fixed_effects_se["Intercept"]
    assert abs(lam_hl - lam_ml) / lam_ml < 0.15
    assert ll_ml - 0.5 < fit.loglik <= ll_ml + 1e-8
    assert (b_hl, lam_hl, fit.loglik) == pytest.approx((-2.6265, 0.16005, -772.108), abs=1e-3)

    fit0 = litter_model.fit("hlik", re_family="beta", variant="HL(0,1)")
    b0 = fit0.fixed_effects["Intercept"]
    lam0 = fit0.variance_components["litter"]
    assert abs(b0 - b_ml) < 0.25
    assert abs(lam0 - lam_ml) / lam_ml < 0.25
    assert ll_ml - 5 < fit0.loglik <= ll_ml + 1e-8
    assert (b0, lam0, fit0.loglik) == pytest.approx((-2.4446, 0.15035, -776.121), abs=1e-3)
    assert fit.info["details"]["var_u"]["litter"] == pytest.approx(lam_hl / (4 * (1 + lam_hl)))
    # the beta-binomial ML of the litters, for the numbers quoted above
    bb = optimize.minimize(
        lambda p: -stats.betabinom.logpmf(y, n, *np.exp(p)).sum(), [0.0, 2.0], method="BFGS"
    )
    assert -bb.fun == pytest.approx(-777.69, abs=0.01)


# ------------------------------------------------------------------------------------------
# the pipeline: report, compare, predict, residuals, refusals


def test_report_compare_predict_residuals(pg_model, pg_fit):
    text = pg_fit.report()
    assert "h-likelihood" in text and "APHL" in text and "Gamma(mean 1" in text
    comp = bg.compare(pg_model, methods=["laplace", ("hlik", {"re_family": "gamma"})])
    assert set(comp.table.columns) == {"laplace", "hlik"}
    assert comp.table.loc["logLik", "hlik"] == pytest.approx(pg_fit.loglik)
    pred = pg_fit.predict()
    v = pg_fit.random_effects["1|g"].iloc[:, 0]
    d = pg_model.design
    expect = np.exp(d.X @ pg_fit.fixed_effects.to_numpy() + v.to_numpy()[d.random[0].index])
    np.testing.assert_allclose(np.asarray(pred, float), expect, rtol=1e-10)
    assert bg.residuals(pg_fit) is not None
    again = pg_model.fit("hlik", re_family="gamma")
    assert again.table.equals(pg_fit.table)
    started = pg_model.fit(
        "hlik", re_family="gamma", start={"fixed_effects": [0.4, 0.3], "variance_components": [1.0]}
    )
    np.testing.assert_allclose(started.table["estimate"], pg_fit.table["estimate"], atol=1e-5)


def test_refusals(pg_model, litter_model):
    with pytest.raises(OptionError, match="re_family='gamma' needs the poisson family"):
        litter_model.fit("hlik", re_family="gamma")
    with pytest.raises(OptionError, match="re_family='beta' needs the binomial family"):
        pg_model.fit("hlik", re_family="beta")
    with pytest.raises(OptionError, match="re_family"):
        pg_model.fit("hlik", re_family="lognormal")
    slopes = GLMM("y ~ x + (x|g)", pg_model.data, family="poisson")
    with pytest.raises(MethodError, match="random intercepts only"):
        slopes.fit("hlik")
    nb = GLMM("y ~ x + (1|g)", pg_model.data, family="negative_binomial")
    with pytest.raises(MethodError, match="supports the families"):
        nb.fit("hlik")
    with pytest.raises(OptionError, match="start"):
        pg_model.fit("hlik", start=[0.1, 0.2])


def test_two_crossed_intercepts_gaussian_is_reml():
    """Several independent random intercepts (the dense path): still REML."""
    rng = np.random.default_rng(3)
    n = 240
    a, b = rng.integers(0, 12, n), rng.integers(0, 10, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(0, 0.9, 12)[a] + rng.normal(0, 0.5, 10)[b] + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x, "a": a.astype(str), "b": b.astype(str)})
    model = GLMM("y ~ x + (1|a) + (1|b)", df, family="gaussian")
    hl, lm = model.fit("hlik"), model.fit("lmm")
    for row in ["Intercept", "x", "var(a)", "var(b)", "sigma"]:
        assert hl.table.loc[row, "estimate"] == pytest.approx(
            lm.table.loc[row, "estimate"], abs=1e-6, rel=1e-6
        )


@pytest.mark.parametrize("re_family", ["normal", "beta"])
def test_pv_gradient_is_the_derivative(litter_model, re_family):
    """HL(1,1)'s analytic gradient of p_v(h) in beta against central differences of
    p_v(h) with v re-maximized (step 1e-5: truncation error about 1e-8)."""
    hl = HLikelihood(litter_model.design, re_family, 1e-12)
    logpar = np.log([0.3])
    st = hl.maximize_v(logpar, np.array([-2.3]), np.zeros(hl.q))
    g = hl.pv_gradient(logpar, st)[0]
    e = 1e-5
    up = hl.maximize_v(logpar, np.array([-2.3 + e]), st.v).pv
    down = hl.maximize_v(logpar, np.array([-2.3 - e]), st.v).pv
    assert g == pytest.approx((up - down) / (2 * e), abs=1e-5, rel=1e-6)


def test_binomial_beta_quadrature_when_the_fixed_part_varies():
    """A covariate within levels: no closed form; the adaptive Gauss-Hermite marginal
    equals the integral over u at the estimates."""
    rng = np.random.default_rng(8)
    G, m = 15, 4
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    u = rng.beta(2.0, 2.0, G)
    p = special.expit(-0.5 + 0.7 * x + special.logit(u)[g])
    df = pd.DataFrame({"y": rng.binomial(6, p), "x": x, "g": g.astype(str)})
    df["f"] = 6 - df["y"]
    fit = GLMM("cbind(y, f) ~ x + (1|g)", df, family="binomial").fit("hlik", re_family="beta")
    assert "Gauss-Hermite" in fit.info["details"]["loglik_method"]
    b0, b1 = fit.fixed_effects
    a = 0.5 / fit.variance_components["g"]
    total = 0.0
    for j in range(G):
        rows = df.index[g == j]

        def f(w, rows=rows):
            pr = special.expit(b0 + b1 * x[rows] + special.logit(w))
            return np.prod(stats.binom.pmf(df.y[rows], 6, pr)) * stats.beta.pdf(w, a, a)

        total += np.log(integrate.quad(f, 0, 1, epsabs=0, epsrel=1e-11, limit=200)[0])
    assert fit.loglik == pytest.approx(total, abs=1e-6)
