"""Prior weights, ``GLMM(..., weights=)``: the family math, the design's checks, the
frequentist engines that take them (against replicated rows and against R), and the
refusal of the methods that do not.

Reference numbers come from R 4 (lme4, geepack) on the data of :func:`weighted_data`,
written out with ``weighted_data().to_csv("weighted.csv", index=False)``; each R call is
quoted beside its numbers. lme4 was run with ``tolPwrss = 1e-12`` and tight ``nloptwrap``
tolerances, geepack with ``geese.control(epsilon = 1e-12)``: with their default stopping
rules both stop about 1e-4 short of the optimum.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesglmm.errors import DataError, MethodError
from bayesglmm.frequentist.glm import fit_glm
from bayesglmm.glmm import GLMM
from bayesglmm.methods import get_record
from bayesglmm.model.families import get_family


def weighted_data(seed: int = 20261208) -> pd.DataFrame:
    """20 groups of 8 rows: binary ``yb``, counts ``yp``, Gaussian ``yg`` (residual sd
    ``1 / sqrt(wf)``), integer weights ``wi`` (1-3) and real weights ``wf`` (0.5-3)."""
    rng = np.random.default_rng(seed)
    G, per = 20, 8
    n = G * per
    g = np.repeat(np.arange(G), per)
    x = np.round(rng.normal(size=n), 3)
    b = rng.normal(0.0, 0.8, G)
    eta = -0.2 + 0.6 * x + b[g]
    wi = rng.integers(1, 4, n).astype(float)
    wf = np.round(rng.uniform(0.5, 3.0, n), 2)
    return pd.DataFrame(
        {
            "g": [f"g{k:02d}" for k in g],
            "x": x,
            "yb": rng.binomial(1, 1.0 / (1.0 + np.exp(-eta))).astype(float),
            "yp": rng.poisson(np.exp(eta)).astype(float),
            "yg": np.round(1.0 + 0.5 * x + b[g] + rng.normal(0.0, 1.0, n) / np.sqrt(wf), 4),
            "wi": wi,
            "wf": wf,
        }
    )


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return weighted_data()


def _fit(formula, data, family="binomial", weights=None, method="laplace", **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GLMM(formula, data, family=family, weights=weights).fit(method=method, **options)


def _close(got, ref, rel):
    """``|got - ref| <= rel * max(|ref|, 1)``: relative for parameters of size one or more,
    absolute below (a coefficient near zero has no meaningful relative error)."""
    got, ref = np.asarray(got, float), np.asarray(ref, float)
    np.testing.assert_array_less(np.abs(got - ref), rel * np.maximum(np.abs(ref), 1.0))


# ------------------------------------------------------------------------------- family math


def test_family_weighted_loglik():
    rng = np.random.default_rng(3)
    w = rng.uniform(0.2, 4.0, 12)
    mu = rng.uniform(0.1, 0.9, 12)
    y = rng.binomial(1, mu).astype(float)
    for name, yy, mm in (("binomial", y, mu), ("poisson", 3 * y, 3 * mu)):
        fam = get_family(name)
        plain = fam.loglik(yy, mm)
        np.testing.assert_allclose(fam.loglik(yy, mm, weights=w), w * plain, rtol=1e-14)
        s0, W0 = fam.score_weight(yy, fam.link.linkfun(mm))
        s1, W1 = fam.score_weight(yy, fam.link.linkfun(mm), weights=w)
        np.testing.assert_allclose((s1, W1), (w * s0, w * W0), rtol=1e-14)
    # Gaussian: y ~ N(mu, sigma^2 / w), as lme4 and glm
    fam, sigma = get_family("gaussian"), 1.7
    yg = rng.normal(size=12)
    ref = stats.norm.logpdf(yg, mu, sigma / np.sqrt(w))
    np.testing.assert_allclose(fam.loglik(yg, mu, None, sigma, weights=w), ref, rtol=1e-12)
    tr = fam.eta_terms(yg, mu, None, sigma, second=True, weights=w)
    np.testing.assert_allclose(tr.score, w * (yg - mu) / sigma**2, rtol=1e-12)
    np.testing.assert_allclose(tr.W_obs, w / sigma**2, rtol=1e-12)


def test_glm_start_frequency_weights(data):
    """IRLS with prior weights equals IRLS on the replicated rows (both forms)."""
    fam = get_family("binomial")
    X = np.column_stack([np.ones(len(data)), data["x"]])
    rep = np.repeat(np.arange(len(data)), data["wi"].astype(int))
    y, w, off = data["yb"].to_numpy(), data["wi"].to_numpy(), np.zeros(len(data))
    for form in ("working", "scoring"):
        a = fit_glm(fam, X, y, None, off, form=form, weights=w).beta
        b = fit_glm(fam, X[rep], y[rep], None, off[rep], form=form).beta
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------- the design


def test_design_weights(data):
    m = GLMM("yb ~ x + (1|g)", data, weights="wi")
    assert m.weights == "wi" and m.design.weights_name == "wi"
    assert m.design.weights.dtype == np.float64
    np.testing.assert_array_equal(m.design.weights, data["wi"].to_numpy())
    arr = GLMM("yb ~ x + (1|g)", data, weights=data["wi"].to_numpy())
    np.testing.assert_array_equal(arr.design.weights, m.design.weights)
    assert GLMM("yb ~ x + (1|g)", data).design.weights is None


@pytest.mark.parametrize(
    "value, words",
    [
        (-1.0, ["negative", "'w'", "'r3'"]),
        (np.nan, ["NaN", "'w'", "'r3'"]),
        (np.inf, ["infinite", "'w'", "'r3'"]),
    ],
)
def test_bad_weights(data, value, words):
    d = data.assign(w=data["wi"]).set_axis([f"r{i}" for i in range(len(data))])
    d.loc["r3", "w"] = value
    with pytest.raises(DataError) as err:
        GLMM("yb ~ x + (1|g)", d, weights="w")
    for word in words:
        assert word in str(err.value)


def test_weights_errors(data):
    with pytest.raises(DataError, match="all zero"):
        GLMM("yb ~ x + (1|g)", data.assign(w=0.0), weights="w")
    with pytest.raises(DataError, match="unknown weights column 'ww'"):
        GLMM("yb ~ x + (1|g)", data, weights="ww")
    with pytest.raises(DataError, match="one value per data row"):
        GLMM("yb ~ x + (1|g)", data, weights=np.ones(3))
    with pytest.raises(DataError, match="not numeric"):
        GLMM("yb ~ x + (1|g)", data.assign(w="a"), weights="w")


def test_zero_weights_drop_rows(data):
    w = data["wi"].to_numpy().copy()
    w[[1, 5, 9]] = 0.0
    with pytest.warns(UserWarning, match=r"dropped 3 row\(s\) with zero weights"):
        m = GLMM("yb ~ x + (1|g)", data.assign(w=w), weights="w")
    assert m.design.n == len(data) - 3 and m.design.dropped_rows == [1, 5, 9]
    kept = data.drop(index=[1, 5, 9]).assign(w=w[w > 0])
    a = _fit("yb ~ x + (1|g)", data.assign(w=w), weights="w")
    b = _fit("yb ~ x + (1|g)", kept, weights="w")
    np.testing.assert_array_equal(a.fixed_effects.values, b.fixed_effects.values)
    assert a.loglik == b.loglik


@pytest.mark.parametrize("method", ["mcem", "mcnr", "sml", "hlik", "ee", "ee2", "kuk", "mbp"])
def test_methods_without_weights_refuse(data, method):
    m = GLMM("yb ~ x + (1|g)", data, weights="wi")
    if get_record(method).weights:  # a sampler that gained weights: nothing to refuse
        return
    with pytest.raises(MethodError) as err:
        m.fit(method=method)
    text = str(err.value)
    assert f"method {method!r} does not take prior weights (weights=wi)" in text
    assert "'laplace'" in text and "'gee'" in text
    # without weights the same design is taken
    assert get_record(method).applies(GLMM("yb ~ x + (1|g)", data).design) is None


def test_report_names_weights(data):
    fit = _fit("yb ~ x + (1|g)", data, weights="wi")
    assert "Prior weights: wi" in fit.report()
    assert "Prior weights" not in _fit("yb ~ x + (1|g)", data).report()


# ------------------------------------------------------------------- frequency weights


@pytest.mark.parametrize(
    "family, y, method, options",
    [
        ("binomial", "yb", "laplace", {}),
        ("poisson", "yp", "laplace", {}),
        ("binomial", "yb", "agq", {"n_quad": 7}),
        ("poisson", "yp", "agq", {"n_quad": 7}),
        ("binomial", "yb", "pql", {}),
        ("poisson", "yp", "pql", {}),
    ],
)
def test_frequency_weights_equal_replicated_rows(data, family, y, method, options):
    """Whole-number weights of binomial and Poisson rows are frequency weights: the fit
    equals the fit of the data with each row repeated ``w`` times.

    Both optimize the same function (equal to 1e-10 at any point, checked for the Laplace
    deviance in :func:`test_frequency_weights_same_deviance`); the optimizer stops where
    the log-likelihood is flat to about 1e-10, which leaves a weakly determined intercept
    up to ~5e-6 apart (1e-5 here); the log-likelihoods agree to 1e-6."""
    rep = data.loc[data.index.repeat(data["wi"].astype(int))].reset_index(drop=True)
    formula = f"{y} ~ x + (1|g)"
    a = _fit(formula, data, family, "wi", method, **options)
    b = _fit(formula, rep, family, None, method, **options)
    _close(a.fixed_effects.values, b.fixed_effects.values, 1e-5)
    _close(a.variance_components.values, b.variance_components.values, 1e-5)
    if b.loglik is not None:
        assert abs(a.loglik - b.loglik) < 1e-6
    else:
        assert a.loglik is None  # PQL maximizes no likelihood


@pytest.mark.parametrize("family, y", [("binomial", "yb"), ("poisson", "yp")])
def test_frequency_weights_same_deviance(data, family, y):
    """The Laplace deviance (PIRLS modes, log det) of weighted rows equals that of the
    replicated rows at any ``(theta, beta)``, to rounding."""
    from bayesglmm.frequentist.pirls import PirlsProblem

    rep = data.loc[data.index.repeat(data["wi"].astype(int))].reset_index(drop=True)
    a = PirlsProblem(GLMM(f"{y} ~ x + (1|g)", data, family=family, weights="wi").design)
    b = PirlsProblem(GLMM(f"{y} ~ x + (1|g)", rep, family=family).design)
    for theta, beta in (([0.5], [0.1, 0.3]), ([1.4], [-0.4, 0.9]), ([0.0], [0.2, 0.0])):
        da = a.solve(np.array(theta), np.array(beta), tol=1e-12).deviance
        db = b.solve(np.array(theta), np.array(beta), tol=1e-12).deviance
        assert abs(da - db) < 1e-10 * abs(db)


# ---------------------------------------------------------------------------- against R


def test_lmm_against_lmer(data):
    """Gaussian weights scale the residual variance (not frequency weights):
    ``lmer(yg ~ x + (1|g), data = d, weights = wf, REML = TRUE)`` gives fixef 1.220578244
    0.582976355, VarCorr 0.7307748253 (g) 1.014298947 (residual), logLik -218.7029901,
    SEs 0.2008505737 0.06723823646; ``REML = FALSE``: 1.220703281 0.5828736654,
    0.690104967 1.007212301, logLik -216.2210011."""
    reml = _fit("yg ~ x + (1|g)", data, "gaussian", "wf", "lmm")
    _close(reml.fixed_effects.values, [1.220578244, 0.582976355], 1e-5)
    _close(reml.variance_components.values, [0.7307748253], 1e-5)
    _close(reml.dispersion["sigma"] ** 2, 1.014298947, 1e-5)
    _close(reml.loglik, -218.7029901, 1e-7)
    _close(reml.table["std_error"].to_numpy()[:2], [0.2008505737, 0.06723823646], 1e-5)
    ml = _fit("yg ~ x + (1|g)", data, "gaussian", "wf", "lmm", reml=False)
    _close(ml.fixed_effects.values, [1.220703281, 0.5828736654], 1e-5)
    _close(ml.variance_components.values, [0.690104967], 1e-5)
    _close(ml.dispersion["sigma"] ** 2, 1.007212301, 1e-5)
    _close(ml.loglik, -216.2210011, 1e-7)
    # the Laplace fit of a Gaussian LMM is exact: the ML fit again
    lap = _fit("yg ~ x + (1|g)", data, "gaussian", "wf", "laplace")
    _close(lap.fixed_effects.values, ml.fixed_effects.values, 1e-5)
    _close(lap.loglik, ml.loglik, 1e-8)


#: ``glmer(yb ~ x + (1|g), data = d, weights = wi, family = binomial, nAGQ = q, control =
#: glmerControl(optimizer = "nloptwrap", tolPwrss = 1e-12, optCtrl = list(xtol_rel = 1e-12,
#: ftol_rel = 1e-15, ftol_abs = 1e-15, xtol_abs = 1e-12, maxeval = 1e5)))`` and the same
#: with ``yp``, ``weights = wf``, ``family = poisson``: fixef, theta^2, logLik
GLMER = {
    ("binomial", 1): ([-0.0378605155, 0.9109230497], 1.978627758, -184.1829211),
    ("poisson", 1): ([-0.2105724214, 0.5884685264], 0.7683128721, -352.6686926),
    ("binomial", 7): ([-0.03781024482, 0.9104661189], 2.019973028, -183.9602096),
    # lme4's nAGQ > 1 deviance reports logLik -146.6941985 here: it drops the data-only
    # terms differently with non-integer weights, so only the estimates are compared
    ("poisson", 7): ([-0.2110763485, 0.5884330363], 0.7741662329, None),
}


@pytest.mark.parametrize("family, n_quad", list(GLMER))
def test_glmm_against_glmer(data, family, n_quad):
    y, w = ("yb", "wi") if family == "binomial" else ("yp", "wf")
    method, options = ("laplace", {}) if n_quad == 1 else ("agq", {"n_quad": n_quad})
    fit = _fit(f"{y} ~ x + (1|g)", data, family, w, method, **options)
    beta, var, loglik = GLMER[(family, n_quad)]
    # the log-likelihood is flat to 1e-10 across the two optima: 1e-5 on the estimates
    _close(fit.fixed_effects.values, beta, 1e-5)
    _close(fit.variance_components.values, [var], 1e-5)
    if loglik is not None:
        _close(fit.loglik, loglik, 1e-8)


#: ``geeglm(y ~ x, id = factor(g), data = d, weights = w, family = f, corstr = cs,
#: control = geese.control(epsilon = 1e-12, maxit = 200))``: coef, robust SEs, alpha, scale
GEEGLM = {
    ("binomial", "exchangeable"): (
        [-0.1483003164, 0.700469805, 0.2579411286, 0.2175930703, 0.1733003564, 1.007915948]
    ),
    ("poisson", "exchangeable"): (
        [0.01702300844, 0.6583169284, 0.2213964257, 0.1041800172, 0.4063226048, 1.788946065]
    ),
    ("gaussian", "exchangeable"): (
        [1.23945672, 0.576238173, 0.1983273522, 0.04819701485, 0.4624129135, 1.225804541]
    ),
    ("binomial", "ar1"): (
        [-0.1288479894, 0.690979082, 0.2556048329, 0.2277407485, 0.2666311374, 1.002309995]
    ),
    ("poisson", "ar1"): (
        [-0.1802597731, 0.7193597716, 0.3056442302, 0.1349398674, 0.731759759, 2.24369009]
    ),
    ("gaussian", "ar1"): (
        [1.252281065, 0.6039565772, 0.2206790312, 0.04289339352, 0.7557639466, 1.227018314]
    ),
}


@pytest.mark.parametrize("family, corstr", list(GEEGLM))
def test_gee_against_geeglm(data, family, corstr):
    y, w = {"binomial": ("yb", "wi"), "poisson": ("yp", "wf"), "gaussian": ("yg", "wf")}[family]
    fit = _fit(f"{y} ~ x + (1|g)", data, family, w, "gee", corstr=corstr)
    got = [
        *fit.fixed_effects.values,
        *fit.table["std_error"].to_numpy()[:2],
        fit.details.extra["working_correlation"]["alpha"],
        fit.details.scale,
    ]
    _close(got, GEEGLM[(family, corstr)], 1e-6)


def test_gee_unstructured_against_geeglm(data):
    """``d$t <- ave(seq_len(nrow(d)), d$g, FUN = seq_along); geeglm(yb ~ x, id = factor(g),
    waves = t, data = d, weights = wi, family = binomial, corstr = "unstructured", control =
    geese.control(epsilon = 1e-12, maxit = 200))``: coef 0.5214410647 0.4883175468, robust
    SEs 0.2485819444 0.2017957671."""
    d = data.assign(t=data.groupby("g").cumcount())
    fit = _fit("yb ~ x + (1|g)", d, "binomial", "wi", "gee", corstr="unstructured", time="t")
    got = [*fit.fixed_effects.values, *fit.table["std_error"].to_numpy()[:2]]
    _close(got, [0.5214410647, 0.4883175468, 0.2485819444, 0.2017957671], 1e-6)


def test_gee_weights_refuse_other_moments(data):
    m = GLMM("yb ~ x + (1|g)", data, weights="wi")
    with pytest.raises(MethodError, match="moments='geepack'"):
        m.fit(method="gee", moments="statsmodels")


def test_frequency_weights_nested_agq(data):
    """Nested quadrature (two nested factors) with frequency weights: the replicated rows'
    fit."""
    d = data.assign(sub=data["g"] + ":" + (data.groupby("g").cumcount() // 4).astype(str))
    rep = d.loc[d.index.repeat(d["wi"].astype(int))].reset_index(drop=True)
    formula = "yp ~ x + (1|g) + (1|sub)"
    a = _fit(formula, d, "poisson", "wi", "agq", n_quad=5)
    b = _fit(formula, rep, "poisson", None, "agq", n_quad=5)
    _close(a.fixed_effects.values, b.fixed_effects.values, 1e-5)
    _close(a.variance_components.values, b.variance_components.values, 1e-5)
    assert abs(a.loglik - b.loglik) < 1e-6


def test_tests_and_diagnostics_refuse_weighted_fits(data):
    """Tests, diagnostics and predictions that rebuild, simulate or integrate the model do not
    carry the weights yet: each refuses a weighted fit in one line, naming the weights,
    instead of answering for the unweighted model."""
    import bayesglmm as bg

    fit = _fit("yb ~ x + (1|g)", data, weights="wi")
    calls = {
        "test_variance": lambda: bg.test_variance(fit, "(1|g)"),
        "the score test": lambda: bg.test_variance(fit.model, "(1|g)", method="score"),
        "anova": lambda: bg.anova(fit, test="wald"),
        "information_criteria": lambda: bg.information_criteria(fit),
        "residuals": lambda: bg.residuals(fit, random_seed=1),
        "gof_test": lambda: bg.gof_test(fit, random_seed=1),
        "influence": lambda: bg.influence(fit, group="g"),
        "ebp": lambda: bg.ebp(fit),
        "simulation studies": lambda: bg.parametric_bootstrap(fit, n_boot=2, random_seed=1),
    }
    for what, call in calls.items():
        with pytest.raises(
            MethodError, match=rf"^{what}.* does not take prior weights \(weights=wi\)"
        ):
            call()
