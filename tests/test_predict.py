"""FitResult.predict and posterior_predictive, checked against lme4.

R reference values (R 4.2.2, lme4 1.1-31), with tight optimizer settings so that R's
optimum is the exact Laplace optimum (our fit agrees with it to ~1e-7)::

    library(lme4)
    ctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5),
                         tolPwrss = 1e-12)
    sal <- read.csv("salamander.csv")    # the pinned Rdatasets file
    sal$Female <- factor(sal$Female); sal$Male <- factor(sal$Male)
    fit <- glmer(Mate ~ 0 + Cross + (1|Female) + (1|Male), sal, binomial, control = ctrl)
    predict(fit)[1:10]; predict(fit, re.form = NA)[1:10]
    predict(fit, re.form = ~(1|Female))[1:10]
    nd <- data.frame(Cross = c("RR","WR","RW","WW"), Female = c("1","5","60","61"),
                     Male = c("14","3","2","99"))
    predict(fit, newdata = nd, allow.new.levels = TRUE)
    predict(fit, newdata = nd, re.form = ~(1|Female), allow.new.levels = TRUE)
    cbpp$herd <- factor(cbpp$herd)
    g <- glmer(cbind(incidence, size - incidence) ~ period + (1|herd), cbpp, binomial,
               control = ctrl)
    predict(g)[1:10]; predict(g, re.form = NA)[1:10]
    nd2 <- data.frame(period = factor(c("2","4","1"), levels = levels(cbpp$period)),
                      herd = c("3","10","16"))
    predict(g, newdata = nd2, allow.new.levels = TRUE)            # and type = "response"
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.analysis.ppc import posterior_predictive
from bayesglmm.errors import DataError, FormulaError, MethodError, OptionError

#: link-scale agreement required with lme4's predict (our Laplace optimum agrees with the
#: tightly optimized glmer to ~1e-7, so this is loose by three orders of magnitude)
LME4_TOL = 2e-4

SAL_FULL = [2.483175840157932, 1.010749035914281, 1.966130277685254, 0.444312854238494,
            1.469322375537718, 0.648893163121544, 2.369918439078293, 1.052681324514583,
            2.922470902926527, 2.080797451473623]  # fmt: skip
SAL_FIXEF = [1.008221092519385, 0.306179595242770, -1.895988128852952, 0.990413948049238]
SAL_FEM = [1.46350381774761, 0.76146232047099, 1.46350381774761, 0.76146232047099,
           1.46350381774761, 0.76146232047099, 1.86729197914064, 1.16525048186403,
           1.86729197914064, 1.16525048186403]  # fmt: skip
SAL_NEW = [1.7127905331908968, 0.1263667304087737, 0.0490058994535912, 0.9904139480492384]
SAL_NEW_FEM = [1.4635038177476052, -0.9288121933771094, 0.0351702407482024, 0.9904139480492384]
CBPP_FULL = [-0.808512087503958, -1.800844881665555, -1.937184320610251, -2.388826026534860,
             -1.697429278608092, -2.689762072769689, -2.826101511714386, -0.992276532613307,
             -1.984609326774903, -2.120948765719599]  # fmt: skip
CBPP_NA = [-1.39853205917369, -2.39086485333528, -2.52720429227998, -2.97884599820459,
           -1.39853205917369, -2.39086485333528, -2.52720429227998, -1.39853205917369,
           -2.39086485333528, -2.52720429227998]  # fmt: skip
CBPP_NEW = [-1.98460932677490, -3.51978117871885, -1.39853205917369]
CBPP_NEW_RESP = [0.1208283380147113, 0.0287546064888047, 0.1980491548143827]

SAL_NEWDATA = pd.DataFrame(
    {
        "Cross": ["RR", "WR", "RW", "WW"],
        "Female": ["1", "5", "60", "61"],
        "Male": ["14", "3", "2", "99"],
    }
)
CBPP_NEWDATA = pd.DataFrame({"period": ["2", "4", "1"], "herd": ["3", "10", "16"]})
CBPP_FORMULA = "cbind(incidence, size - incidence) ~ period + (1|herd)"


@pytest.fixture(scope="module")
def sal_fit():
    data = bg.datasets.load("salamander")
    model = bg.GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", data, family="binomial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(method="laplace")


@pytest.fixture(scope="module")
def cbpp_model():
    return bg.GLMM(CBPP_FORMULA, bg.datasets.load("cbpp"), family="binomial")


@pytest.fixture(scope="module")
def cbpp_fit(cbpp_model):
    return cbpp_model.fit(method="laplace")


@pytest.fixture(scope="module")
def cbpp_nuts(cbpp_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cbpp_model.fit(
            method="nuts", draws=300, tune=300, chains=2, random_seed=11, progressbar=False
        )


# --------------------------------------------------------------------------------------
# lme4 reference values


def test_salamander_matches_lme4(sal_fit):
    np.testing.assert_allclose(sal_fit.predict(type="link")[:10], SAL_FULL, atol=LME4_TOL)
    fixed = sal_fit.predict(type="link", re_form=np.nan)
    np.testing.assert_allclose(fixed[:10], np.tile(SAL_FIXEF[:2], 5), atol=LME4_TOL)
    assert sal_fit.predict(type="link", re_form="~0").equals(fixed)
    fem = sal_fit.predict(type="link", re_form="~(1|Female)")
    np.testing.assert_allclose(fem[:10], SAL_FEM, atol=LME4_TOL)
    new = sal_fit.predict(SAL_NEWDATA, type="link", allow_new_levels=True)
    np.testing.assert_allclose(new, SAL_NEW, atol=LME4_TOL)
    new_fem = sal_fit.predict(
        SAL_NEWDATA, type="link", re_form="~(1|Female)", allow_new_levels=True
    )
    np.testing.assert_allclose(new_fem, SAL_NEW_FEM, atol=LME4_TOL)
    resp = sal_fit.predict()
    np.testing.assert_allclose(resp, 1 / (1 + np.exp(-sal_fit.predict(type="link"))), rtol=1e-12)


def test_cbpp_matches_lme4(cbpp_fit):
    np.testing.assert_allclose(cbpp_fit.predict(type="link")[:10], CBPP_FULL, atol=LME4_TOL)
    np.testing.assert_allclose(
        cbpp_fit.predict(type="link", re_form="~0")[:10], CBPP_NA, atol=LME4_TOL
    )
    new = cbpp_fit.predict(CBPP_NEWDATA, type="link", allow_new_levels=True)
    np.testing.assert_allclose(new, CBPP_NEW, atol=LME4_TOL)
    assert list(new.index) == list(CBPP_NEWDATA.index)
    resp = cbpp_fit.predict(CBPP_NEWDATA, allow_new_levels=True)
    np.testing.assert_allclose(resp, CBPP_NEW_RESP, atol=LME4_TOL / 4)  # dmu/deta <= 1/4


# --------------------------------------------------------------------------------------
# new levels, bad input, the model behind a loaded result


def test_unseen_levels_are_refused_by_name(sal_fit, cbpp_fit):
    with pytest.raises(MethodError, match=r"'Female': \['61'\].*'Male': \['99'\]"):
        sal_fit.predict(SAL_NEWDATA)
    ok = sal_fit.predict(SAL_NEWDATA.iloc[:3])  # all levels seen: no flag needed
    assert len(ok) == 3
    # a fixed-effect factor level never has an estimate, allowed or not
    bad = CBPP_NEWDATA.assign(period=["2", "5", "1"])
    with pytest.raises(DataError, match=r"column 'period' has levels \['5'\]"):
        cbpp_fit.predict(bad, allow_new_levels=True)
    with pytest.raises(FormulaError, match="lacks column.*herd"):
        cbpp_fit.predict(CBPP_NEWDATA[["period"]])
    assert len(cbpp_fit.predict(CBPP_NEWDATA[["period"]], re_form="~0")) == 3
    with pytest.raises(FormulaError, match=r"\(1 \| Male\) is not a random-effect term"):
        cbpp_fit.predict(re_form="~(1|Male)")
    with pytest.raises(OptionError, match="type must be"):
        cbpp_fit.predict(type="probability")


def test_loaded_result_needs_model(cbpp_fit, cbpp_model, tmp_path):
    loaded = bg.FitResult.load(cbpp_fit.save(tmp_path / "fit.zip"))
    with pytest.raises(MethodError, match="pass model="):
        loaded.predict()
    np.testing.assert_allclose(loaded.predict(model=cbpp_model), cbpp_fit.predict(), rtol=1e-12)
    # pickling keeps the result small and picklable: the model is not carried along
    unpickled = pickle.loads(pickle.dumps(cbpp_fit))
    with pytest.raises(MethodError, match="pass model="):
        unpickled.predict()
    other = bg.GLMM("Mate ~ Cross + (1|Female)", bg.datasets.load("salamander"))
    with pytest.raises(MethodError, match="does not match"):
        loaded.predict(model=other)


def test_newdata_uses_the_training_encoding():
    """scale() with the training mean and sd, relevel()'s reference absent from the rows,
    a string factor, an offset and a random slope: predictions on a subset of the
    training rows passed as newdata equal the fitted values on those rows."""
    rng = np.random.default_rng(3)
    n = 240
    data = pd.DataFrame(
        {
            "g": rng.integers(0, 12, n).astype(str),
            "trt": rng.choice(["a", "b", "c"], n),
            "x": rng.normal(5.0, 2.0, n),
            "expo": rng.uniform(1.0, 3.0, n),
        }
    )
    b = rng.normal(0, 0.4, 12)
    eta = 0.2 + 0.3 * (data.x - 5) / 2 + np.log(data.expo) + b[data.g.astype(int)]
    data["y"] = rng.poisson(np.exp(eta))
    model = bg.GLMM(
        "y ~ scale(x) + relevel(trt, 'c') + offset(log(expo)) + (1 + x | g)",
        data,
        family="poisson",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(method="laplace")
    rows = data.index[(data.trt != "c").to_numpy()][:25]
    new = data.loc[rows, ["g", "trt", "x", "expo"]]
    np.testing.assert_allclose(
        fit.predict(new, type="link"), fit.predict(type="link")[rows], rtol=1e-10
    )


# --------------------------------------------------------------------------------------
# intervals of likelihood fits


def test_likelihood_intervals_from_vcov_and_conditional_variances(cbpp_fit):
    se_int = cbpp_fit.fixed_effects_se["Intercept"]
    cvar = cbpp_fit.random_effects["1|herd (conditional variance)"]["Intercept"]
    out = cbpp_fit.predict(type="link", interval="confidence", level=0.9)
    # row 0: herd 1, period 1 (the intercept alone)
    np.testing.assert_allclose(
        out["std_error"].iloc[0], np.sqrt(se_int**2 + cvar.loc["1"]), rtol=1e-10
    )
    np.testing.assert_allclose(
        out["upper"].iloc[0] - out["estimate"].iloc[0],
        1.6448536269514722 * out["std_error"].iloc[0],
    )
    pop = cbpp_fit.predict(CBPP_NEWDATA, type="link", interval="confidence", allow_new_levels=True)
    # herd 16 is new: the population level with the herd variance added
    var_herd = cbpp_fit.variance_components["herd"]
    np.testing.assert_allclose(pop["std_error"].iloc[2], np.sqrt(se_int**2 + var_herd), rtol=1e-10)
    resp = cbpp_fit.predict(interval="confidence")
    assert np.all((resp["lower"] < resp["estimate"]) & (resp["estimate"] < resp["upper"]))
    assert np.all((resp["lower"] > 0) & (resp["upper"] < 1))


def test_pql_predicts_and_says_what_intervals_need(cbpp_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pql = cbpp_model.fit(method="pql")
    d = cbpp_model.design
    np.testing.assert_allclose(pql.predict(type="link", re_form="~0"), d.X @ pql.fixed_effects)
    # PQL stores the fixed-effect covariance but no conditional variances of the effects
    with pytest.raises(MethodError, match=r"conditional variances of 1\|herd"):
        pql.predict(interval="confidence")
    ci = pql.predict(type="link", re_form="~0", interval="confidence")
    se = np.sqrt(np.einsum("ij,jk,ik->i", d.X, np.asarray(pql.info["details"]["vcov"]), d.X))
    np.testing.assert_allclose(ci["upper"] - ci["lower"], 2 * 1.959963984540054 * se, rtol=1e-6)


# --------------------------------------------------------------------------------------
# Bayesian fits


def test_bayesian_prediction_per_draw(cbpp_nuts, cbpp_model):
    post = cbpp_nuts.idata.posterior
    b0 = post["Intercept"].values.ravel()
    bp = post["period"].values.reshape(b0.size, -1)
    herd = post["1|herd"].values.reshape(b0.size, -1)
    # row 1: herd 1, period 2
    eta1 = b0 + bp[:, 0] + herd[:, 0]
    got = cbpp_nuts.predict(type="link", interval="confidence")
    np.testing.assert_allclose(got["estimate"].iloc[1], eta1.mean(), rtol=1e-10)
    np.testing.assert_allclose(got["lower"].iloc[1], np.quantile(eta1, 0.025), rtol=1e-10)
    resp = cbpp_nuts.predict(re_form="~0")
    np.testing.assert_allclose(resp.iloc[0], np.mean(1 / (1 + np.exp(-b0))), rtol=1e-10)

    # two rows of one new herd share its draws; a third new herd gets its own
    nd = pd.DataFrame({"period": ["1", "3", "1"], "herd": ["new", "new", "other"]})
    first, again = (
        cbpp_nuts.predict(nd, type="link", allow_new_levels=True, random_seed=1) for _ in range(2)
    )
    np.testing.assert_allclose(first, again, rtol=0)  # seeded
    draws_new = _new_level_eta(cbpp_nuts, cbpp_model, nd)
    np.testing.assert_allclose(draws_new[:, 1] - draws_new[:, 0], bp[:, 1], atol=1e-12)
    assert not np.allclose(draws_new[:, 2], draws_new[:, 0])
    # a new level's spread is the fixed-effect spread plus the herd variance, per draw:
    # Var(eta) = Var(b0) + E(sigma^2); 600 draws, autocorrelated: 15 % is > 3 MC sd
    sigma2 = post["1|herd_sigma"].values.ravel() ** 2
    expected = np.var(b0) + sigma2.mean()
    assert abs(draws_new[:, 0].var() / expected - 1) < 0.15


def _new_level_eta(fit, model, nd):
    from bayesglmm.results.predict import linear_predictor_draws, prediction_rows

    _, rows = prediction_rows(fit, nd, None, True, model)
    return linear_predictor_draws(fit, model.design, rows, random_seed=5)


def test_posterior_predictive_renders_with_arviz(cbpp_nuts, tmp_path):
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    idata = posterior_predictive(cbpp_nuts, random_seed=4)
    y_rep = idata.posterior_predictive["incidence"].values
    assert y_rep.shape == (2, 300, 56)
    trials = bg.datasets.load("cbpp")["size"].to_numpy()
    assert np.all((y_rep >= 0) & (y_rep <= trials))
    # replicated totals centre on the observed total (posterior predictive p-value not extreme)
    total = y_rep.sum(axis=-1).ravel()
    observed = idata.observed_data["incidence"].values.sum()
    assert 0.05 < np.mean(total <= observed) < 0.95
    ax = az.plot_ppc(idata, num_pp_samples=30, random_seed=1)
    path = tmp_path / "ppc.png"
    np.ravel(ax)[0].figure.savefig(path)
    assert path.stat().st_size > 5000
    new = posterior_predictive(
        cbpp_nuts,
        bg.datasets.load("cbpp").iloc[:4],
        random_seed=4,
    )
    assert new.posterior_predictive["incidence"].shape == (2, 300, 4)
    with pytest.raises(MethodError, match="needs posterior draws"):
        posterior_predictive(_laplace_like(cbpp_nuts))


def _laplace_like(fit):
    import copy

    out = copy.copy(fit)
    out.info = dict(fit.info, kind="likelihood")
    return out


def test_gee_confidence_intervals_use_the_robust_covariance(cbpp_model):
    """GEE's intervals: ``Var(eta) = x' V x`` with ``V`` the sandwich (robust) covariance of
    the coefficients, which also gives the table's standard errors; the population-level
    prediction of a marginal model."""
    from scipy import stats

    gee = cbpp_model.fit(method="gee")
    assert gee.vcov.kind == "robust" and set(gee.vcov.others) == {"model", "bias_reduced"}
    V = gee.vcov.block(cbpp_model.design.fixed_names)
    np.testing.assert_allclose(np.sqrt(np.diag(V)), gee.fixed_effects_se, rtol=1e-12)
    out = gee.predict(interval="confidence", type="link")
    X = cbpp_model.design.X
    eta = X @ gee.fixed_effects.to_numpy()
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    np.testing.assert_allclose(out["estimate"], eta, rtol=1e-12)
    np.testing.assert_allclose(out["std_error"], se, rtol=1e-12)
    np.testing.assert_allclose(out["upper"], eta + stats.norm.ppf(0.975) * se, rtol=1e-12)
    model_based = cbpp_model.fit(method="gee", se="model")
    assert model_based.vcov.kind == "model"
    se_model = model_based.predict(interval="confidence", type="link")["std_error"]
    assert not np.allclose(se_model, se)  # the kind asked for is the one used
