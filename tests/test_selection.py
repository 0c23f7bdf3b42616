"""Model selection: conditional AIC (Greven & Kneib; plug-in tr(H) for GLMMs) and the fence.

Reference numbers for the linear mixed models come from R 4 with lme4 1.1-31 and cAIC4 1.1
(the CRAN sources, ``R/*.R`` sourced into R) on the data set made by
:func:`lmm_data` (written to CSV for R):

.. code-block:: r

    d <- read.csv("lmm.csv")
    m <- lmer(y ~ x + (1|g), d, REML = TRUE)        # and the other rows of LMM_REFERENCE
    r <- cAIC(m)                                     # Greven & Kneib, analytic
    c(r$loglikelihood, sum(hatvalues(m)), r$df, r$caic)
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
from scipy import stats

from bayesglmm.errors import MethodError, OptionError
from bayesglmm.glmm import GLMM
from bayesglmm.inference.fence import fence
from bayesglmm.inference.selection import (
    GREVEN_KNEIB,
    PLUG_IN,
    information_criteria,
    trace_hat,
)


def lmm_data(seed: int = 1, n_g: int = 12, m: int = 6, sd_b0=0.8, sd_b1=0.5) -> pd.DataFrame:
    """Gaussian data with a random intercept and slope by ``g`` and a factor ``h`` of no
    effect."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_g), m)
    x = rng.normal(size=g.size)
    b0 = rng.normal(0, sd_b0, n_g)
    b1 = rng.normal(0, sd_b1, n_g)
    y = 1 + 0.5 * x + b0[g] + b1[g] * x + rng.normal(0, 1, g.size)
    h = rng.integers(0, 5, g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g], "h": [f"h{i}" for i in h]})


def simple_data(seed: int, sd_b: float, n_g: int = 15, m: int = 6, family="gaussian"):
    """``y ~ 1 + 0.8 x + b_g (+ e)`` with a covariate ``z`` of no effect."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_g), m)
    x = rng.normal(size=g.size)
    z = rng.normal(size=g.size)
    eta = 1.0 + 0.8 * x + rng.normal(0, sd_b, n_g)[g]
    if family == "gaussian":
        y = eta + rng.normal(size=g.size)
    else:
        y = rng.poisson(np.exp(eta - 0.7))
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"g{i:02d}" for i in g]})


#: (formula, REML) -> (conditional loglik, sum(hatvalues), cAIC4 df, cAIC4 caic)
LMM_REFERENCE = {
    ("y ~ x + (1|g)", True): (-100.086315, 10.020147, 11.601876, 223.376382),
    ("y ~ x + (1|g)", False): (-100.261670, 9.781117, 11.418430, 223.360200),
    ("y ~ x + (x|g)", True): (-99.137479, 10.562789, 15.979625, 230.234208),
    # (1|h) is estimated at zero: cAIC4 refits without it (deleteZeroComponents)
    ("y ~ x + (1|g) + (1|h)", True): (-100.086315, 10.020147, 11.601876, 223.376382),
    ("y ~ x + (x||g)", False): (-100.261670, 9.781117, 11.418430, 223.360200),
}


@pytest.mark.parametrize(("formula", "reml"), list(LMM_REFERENCE))
def test_lmm_cAIC_matches_cAIC4(formula, reml):
    # lme4's theta and ours agree to ~1e-6 (relative) for the correlated term, to ~1e-7
    # otherwise; the criteria move with theta, hence the tolerances
    fit = GLMM(formula, lmm_data(), family="gaussian").fit("lmm", reml=reml)
    ic = information_criteria(fit)
    ll, tr_h, df, caic = LMM_REFERENCE[(formula, reml)]
    rtol = 5e-5 if "(x|g)" in formula else 2e-6
    assert ic.method == GREVEN_KNEIB
    np.testing.assert_allclose(ic.loglik_conditional, ll, rtol=rtol)
    np.testing.assert_allclose(ic.trace_hat, tr_h, rtol=rtol)
    np.testing.assert_allclose(ic.df_conditional, df, rtol=rtol)
    np.testing.assert_allclose(ic.cAIC, caic, rtol=rtol)
    # Vaida & Blanchard beside it; the marginal criteria are the result's own
    assert ic.df_naive == pytest.approx(ic.trace_hat + 1.0)
    assert ic.df_conditional > ic.df_naive
    assert ic.mAIC == fit.aic and ic.BIC == fit.bic
    row = ic.to_frame()
    assert list(row.columns[:6]) == [
        "mAIC",
        "BIC",
        "cAIC",
        "df_conditional",
        "loglik_conditional",
        "method",
    ]


def _dense_greven_kneib(fit) -> tuple[float, float]:
    """tr(H) and cAIC4's corrected df with n x n matrices, line by line as cAIC4's
    ``getModelComponents.merMod`` and ``calculateGaussianBc`` (analytic = TRUE)."""
    from bayesglmm.frequentist.covariance import CovarianceFactor

    d = fit.model.design
    cf = CovarianceFactor(d)
    theta = np.asarray(fit.info["theta"])
    X, Z, y = d.X, d.Z.toarray(), d.y
    n, p = X.shape
    Lam = cf.Lambda(theta).toarray()
    V0inv = np.linalg.inv(np.eye(n) + Z @ Lam @ Lam.T @ Z.T)
    A = V0inv - V0inv @ X @ np.linalg.inv(X.T @ V0inv @ X) @ X.T @ V0inv
    e = A @ y
    Wlist = []
    for t, lo in zip(cf.terms, cf.offsets[:-1], strict=True):
        for r, c in zip(t.rows, t.cols, strict=True):
            Ds = np.zeros_like(Lam)
            for lev in range(t.n_levels):
                Ds[lo + lev * t.k + r, lo + lev * t.k + c] = 1.0
                Ds[lo + lev * t.k + c, lo + lev * t.k + r] = 1.0
            Wlist.append(Z @ Ds @ Z.T)
    reml = fit.info["options"]["reml"]
    tye = y @ e
    k = len(Wlist)
    B, C = np.zeros((k, k)), np.zeros((k, n))
    WA = [W @ (A if reml else V0inv) for W in Wlist]
    eWe = [e @ W @ e for W in Wlist]
    for j in range(k):
        C[j] = e @ Wlist[j] @ A - eWe[j] * e / (2 * tye)
        for l in range(j, k):
            B[j, l] = B[l, j] = (
                -tye * np.sum(WA[j].T * WA[l]) / (2 * (n - p if reml else n))
                - eWe[j] * eWe[l] / (2 * tye)
                + e @ Wlist[l] @ (A @ (Wlist[j] @ e))
            )
    lam_y = np.linalg.solve(B, C)
    df = n - np.trace(A) + sum(lam_y[j] @ (A @ (Wlist[j] @ e)) for j in range(k)) + 1
    return float(n - np.trace(A)), float(df)


@pytest.mark.parametrize(("formula", "reml"), [("y ~ x + (x|g)", True), ("y ~ x + (1|g)", False)])
def test_lmm_efficient_matches_dense(formula, reml):
    fit = GLMM(formula, lmm_data(seed=4), family="gaussian").fit("lmm", reml=reml)
    ic = information_criteria(fit)
    tr_dense, df_dense = _dense_greven_kneib(fit)
    np.testing.assert_allclose(ic.trace_hat, tr_dense, rtol=1e-9)
    np.testing.assert_allclose(ic.df_conditional, df_dense, rtol=1e-8)
    # the conditional log-likelihood is at the fit's own BLUPs and sigma
    mu = fit.predict(type="response")
    sigma = float(fit.dispersion["sigma"])
    ll = stats.norm.logpdf(fit.model.design.y, np.asarray(mu), sigma).sum()
    np.testing.assert_allclose(ic.loglik_conditional, ll, rtol=1e-7)


def test_glmm_trace_hat_direct_and_conditional_loglik():
    data = simple_data(7, 0.7, family="poisson")
    fit = GLMM("y ~ x + (1|g)", data, family="poisson").fit("laplace")
    ic = information_criteria(fit)
    assert ic.method == PLUG_IN
    d = fit.model.design
    from bayesglmm.frequentist.covariance import CovarianceFactor

    theta = np.asarray(fit.info["theta"])
    b = fit.random_effects["1|g"].to_numpy().ravel()
    mu = np.exp(d.X @ fit.fixed_effects.to_numpy() + d.Z @ b)
    # the n x n hat matrix of the penalized IRLS step, directly
    C = np.hstack([d.X, (d.Z @ CovarianceFactor(d).Lambda(theta)).toarray()])
    P = np.diag([0.0] * d.p + [1.0] * d.q)
    W = np.diag(mu)  # Poisson, log link: Fisher weight mu
    H = C @ np.linalg.solve(C.T @ W @ C + P, C.T @ W)
    np.testing.assert_allclose(ic.trace_hat, np.trace(H), rtol=1e-8)
    np.testing.assert_allclose(ic.df_conditional, np.trace(H), rtol=1e-8)
    np.testing.assert_allclose(ic.loglik_conditional, stats.poisson.logpmf(d.y, mu).sum(), 1e-9)
    assert d.p < ic.trace_hat < d.p + d.q
    # trace_hat itself on a weighted problem against the dense formula
    rng = np.random.default_rng(3)
    w = rng.uniform(0.5, 2.0, d.n)
    ZL = d.Z * 0.9
    Cw = np.hstack([d.X, ZL.toarray()])
    Hw = Cw @ scipy.linalg.solve(Cw.T @ (w[:, None] * Cw) + P, Cw.T * w)
    np.testing.assert_allclose(trace_hat(d.X, ZL, w), np.trace(Hw), rtol=1e-9)


def _choose(table, column, simpler, richer) -> str:
    """The candidate with the smaller criterion; a tie (a variance at zero) is the simpler."""
    return richer if table.loc[richer, column] < table.loc[simpler, column] - 1e-8 else simpler


def test_cAIC_finds_the_random_effect_more_often_than_chance():
    # 6 data sets with a random intercept (sd 1) and 6 without. Under chance (p = 0.5) at
    # least 10 of 12 right has probability 0.019 (on these seeds cAIC is right 12 times;
    # the naive Vaida-Blanchard cAIC 11 times, the marginal AIC 12)
    simpler, richer = "y ~ x", "y ~ x + (1|g)"
    right = 0
    for r in range(12):
        present = r % 2 == 0
        data = simple_data(100 + r, 1.0 if present else 0.0, n_g=10, m=5)
        res = fence([simpler, richer], data, family="gaussian", method="lmm", max_workers=1)
        tab = res.table
        pick = _choose(tab, "cAIC", simpler, richer)
        right += pick == (richer if present else simpler)
    assert right >= 10, right


def test_greven_kneib_df_at_least_naive():
    # the correction for the estimated variance parameters is positive on every data set
    for r in range(6):
        data = simple_data(200 + r, 0.6, n_g=10, m=5)
        fit = GLMM("y ~ x + (1|g)", data, family="gaussian").fit("lmm", reml=r % 2 == 0)
        ic = information_criteria(fit)
        if float(fit.variance_components.iloc[0]) > 0:
            assert ic.df_conditional > ic.df_naive
        else:  # a variance at zero drops out (cAIC4): df = p + 1
            assert ic.df_conditional == pytest.approx(ic.df_naive)


def test_fence_selects_the_true_model_most_of_the_time():
    # 20 data sets from y ~ x + (1|g); candidates the truth, the full model (z added) and the
    # model without x. The fence with c = 2, sigma = sqrt(d/2) keeps the truth when
    # 2 (Q(true) - Q(full)) <= 2.83: probability 0.907 (chi2(1)); x is never dropped at
    # this size. P(at most 13 of 20 | p = 0.907) = 0.0015 (15 on these seeds; with c = 1,
    # probability 0.76, 11 here)
    cands = ["y ~ x + (1|g)", "y ~ x + z + (1|g)", "y ~ 1 + (1|g)"]
    picks = []
    for r in range(20):
        res = fence(
            cands,
            simple_data(300 + r, 0.7),
            family="gaussian",
            method="lmm",
            c=2.0,
            max_workers=1,
        )
        picks.append(res.selected)
        assert res.full == "y ~ x + z + (1|g)"
        assert res.table.loc[res.full, "in_fence"]
        assert res.table["selected"].sum() == 1
    hits = sum(p == cands[0] for p in picks)
    assert hits >= 14, picks
    assert "y ~ 1 + (1|g)" not in picks


def test_fence_table_and_selection_rule():
    data = simple_data(5, 0.7)
    cands = ["y ~ x", "y ~ 1 + (1|g)", "y ~ x + (1|g)", "y ~ x + z + (1|g)"]
    res = fence(cands, data, family="gaussian", method="lmm", c=2.0, max_workers=1)
    tab = res.table
    assert list(tab.index) == cands
    assert list(tab["npar"]) == [3, 3, 4, 5]
    full_q = tab.loc["y ~ x + z + (1|g)", "Q"]
    np.testing.assert_allclose(tab["Q_diff"], tab["Q"] - full_q)
    np.testing.assert_allclose(tab["sigma"], np.sqrt([1.0, 1.0, 0.5, 0.0]))
    np.testing.assert_allclose(tab["bound"], 2.0 * tab["sigma"])
    assert (tab["in_fence"] == (tab["Q_diff"] <= tab["bound"] + 1e-6)).all()
    inside = tab[tab["in_fence"]]
    best = inside.sort_values(["npar", "Q"]).index[0]
    assert res.selected == best
    # Q is minus the ML log-likelihood of each fit
    fit = GLMM("y ~ x + (1|g)", data, family="gaussian").fit("lmm", reml=False)
    assert tab.loc["y ~ x + (1|g)", "Q"] == pytest.approx(-fit.loglik, rel=1e-10)
    assert tab.loc["y ~ x + (1|g)", "cAIC"] == pytest.approx(information_criteria(fit).cAIC)


def test_fence_poisson_glm_candidate_and_bootstrap_sigma():
    import statsmodels.api as sm

    data = simple_data(21, 0.7, n_g=10, m=5, family="poisson")
    cands = ["y ~ x", "y ~ x + (1|g)"]
    res = fence(
        cands,
        data,
        family="poisson",
        method="laplace",
        sigma="bootstrap",
        n_boot=5,
        random_seed=3,
        max_workers=1,
    )
    tab = res.table
    # the candidate without random effects is the Poisson GLM
    glm = sm.GLM(data["y"], sm.add_constant(data[["x"]]), family=sm.families.Poisson()).fit()
    assert tab.loc["y ~ x", "Q"] == pytest.approx(-glm.llf, rel=1e-8)
    assert tab.loc["y ~ x", "cAIC"] == pytest.approx(glm.aic, rel=1e-8)
    assert tab.loc["y ~ x", "mAIC"] == tab.loc["y ~ x", "cAIC"]
    fit = GLMM("y ~ x + (1|g)", data, family="poisson").fit("laplace")
    assert tab.loc["y ~ x + (1|g)", "Q"] == pytest.approx(-fit.loglik, rel=1e-8)
    assert tab.loc["y ~ x + (1|g)", "cAIC_method"] == PLUG_IN
    # sigma: the bootstrap standard deviation of Q(M) - Q(full)
    diff = res.bootstrap_Q[:, 0] - res.bootstrap_Q[:, 1]
    assert tab.loc["y ~ x", "sigma"] == pytest.approx(np.std(diff, ddof=1), rel=1e-12)
    assert tab.loc["y ~ x + (1|g)", "sigma"] == 0.0
    assert res.n_boot == 5 and res.adaptive is None and res.c == 1.0


def test_adaptive_fence_reproducible_and_resumable(tmp_path):
    cands = ["y ~ 1 + (1|g)", "y ~ x + (1|g)"]
    data = simple_data(9, 0.7, n_g=10, m=5)
    kw = dict(family="gaussian", method="lmm", adaptive=True, n_boot=6, random_seed=11)
    t0 = time.perf_counter()
    a = fence(cands, data, max_workers=1, store=tmp_path / "s", **kw)
    assert time.perf_counter() - t0 < 60
    with ThreadPoolExecutor(2) as ex:
        b = fence(cands, data, client=ex, **kw)
    c = fence(cands, data, max_workers=1, store=tmp_path / "s", **kw)  # all resumed
    for other in (b, c):
        assert np.array_equal(a.bootstrap_Q, other.bootstrap_Q)
        assert a.c == other.c and a.selected == other.selected
        pd.testing.assert_frame_equal(a.adaptive, other.adaptive)
    grid = a.adaptive
    assert list(grid.columns) == ["c", "p_star", "model", "chosen"]
    assert grid["chosen"].sum() == 1 and grid.loc[grid["chosen"], "c"].item() == a.c
    assert ((grid["p_star"] >= 0.5) & (grid["p_star"] <= 1)).all()  # two candidates
    assert a.n_boot == 6 and a.bootstrap_Q.shape == (6, 2)
    assert a.selected == "y ~ x + (1|g)"
    d = fence(cands, data, max_workers=1, **{**kw, "random_seed": 12})
    assert not np.array_equal(a.bootstrap_Q, d.bootstrap_Q)


def test_adaptive_rule_skips_the_trivial_ends():
    from bayesglmm.inference.fence import _interior

    # descent from p* = 1 (full model) to a first local minimum, a peak, the ascent to the
    # smallest model's plateau: c is taken in the middle stretch, at its peak
    p_star = np.array([1.0, 0.8, 0.8, 0.6, 0.7, 0.9, 0.7, 0.5, 0.6, 0.9, 1.0])
    lo, hi = _interior(p_star)
    assert (lo, hi) == (3, 7)
    assert lo + int(np.argmax(p_star[lo : hi + 1])) == 5
    # a V (no peak between the ends): the bottom and the next point up toward the smallest
    # model, whose larger p* is taken (parsimony)
    assert _interior(np.array([1.0, 0.7, 0.5, 0.8, 1.0])) == (2, 3)
    assert _interior(np.ones(4)) == (3, 3)


def test_errors():
    data = simple_data(1, 0.5)
    with pytest.raises(OptionError, match="at least 2"):
        fence(["y ~ x + (1|g)"], data, family="gaussian", method="lmm")
    with pytest.raises(MethodError, match="not nested"):
        fence(
            ["y ~ x + (1|g)", "y ~ z + (1|g)"],
            data,
            family="gaussian",
            method="lmm",
            full="y ~ x + (1|g)",
        )
    data2 = data.assign(y2=data["y"] + 1.0)
    with pytest.raises(MethodError, match="same"):
        fence(["y ~ x + (1|g)", "y2 ~ x + (1|g)"], data2, family="gaussian", method="lmm")
    with pytest.raises(OptionError, match="method"):
        fence(["y ~ x", "y ~ x + (1|g)"], data, family="gaussian", method="nuts")
    with pytest.raises(OptionError, match="reml"):
        fence(
            ["y ~ x", "y ~ x + (1|g)"],
            data,
            family="gaussian",
            method="lmm",
            fit_options={"reml": True},
        )
    with pytest.raises(OptionError, match="sigma"):
        fence(["y ~ x", "y ~ x + (1|g)"], data, family="gaussian", method="lmm", sigma="x")
    with pytest.raises(OptionError, match="full"):
        fence(["y ~ x", "y ~ x + (1|g)"], data, family="gaussian", method="lmm", full="y ~ z")
    fit = GLMM("y ~ x + (1|g)", data, family="gaussian").fit("lmm")
    broken = copy.copy(fit)
    broken.loglik = None
    with pytest.raises(MethodError, match="likelihood fit"):
        information_criteria(broken)
    broken = copy.copy(fit)
    broken.model = None
    with pytest.raises(MethodError, match="model"):
        information_criteria(broken)
