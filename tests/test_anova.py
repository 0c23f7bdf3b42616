"""Tests of the fixed-effect terms of one fit: ``bg.anova(fit, ddf=...)`` (Satterthwaite and
Kenward-Roger F tests, against lmerTest and pbkrtest), ``fixed_effect_tests``, and
``bg.anova(fit, test="wald" | "bootstrap")``.

Reference values come from R 4 with lmerTest and pbkrtest on the data of
:func:`unbalanced_data` (written with ``unbalanced_data().to_csv("d.csv", index=False)``)::

    library(lmerTest); library(pbkrtest)
    d <- read.csv("d.csv", stringsAsFactors = TRUE)
    m <- lmer(<formula>, d, REML = TRUE)
    anova(m, ddf = "Satterthwaite"); anova(m, ddf = "Kenward-Roger")
    coef(summary(m)); coef(summary(m, ddf = "Kenward-Roger"))
    attr(anova(m), "hypotheses")          # the type III contrasts
    getME(m, "theta")

and, for the singular fit, on the same data with the column ``w`` of
:func:`test_singular_fit_matches_lmertest` added, ``lmer(w ~ f + x + (1 | g), d)``.

Our REML optimum agrees with lmer's to about 1e-7 in theta on these data except for the
random-slope model, whose criterion is flat (our optimum is 6e-8 lower in REML deviance
and 1e-4 away in theta): there the lmerTest numbers are compared at lmer's theta.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesglmm as bg
from bayesglmm.analysis.study.tasks import derive_seed
from bayesglmm.errors import MethodError
from bayesglmm.inference.anova import (
    anova,
    bootstrap_replicate,
    fixed_effect_tests,
    reduced_model_args,
)
from bayesglmm.inference.ddf import lmm_pieces, term_contrasts

#: lmerTest and our code compute the same quantities with numerical derivatives
#: (numDeriv's Richardson extrapolation) of the same deviance: they agree to ~1e-7
#: relative at the same theta; 1e-4 leaves room for the optimizers' theta (~1e-7)
REL = 1e-4
#: the random-slope model's REML criterion is flat: theta differs by 1e-4 relative from
#: lmer's, which moves DenDF and F by ~1e-4 relative
REL_FLAT = 2e-3


def unbalanced_data(seed: int = 20261207) -> pd.DataFrame:
    """Unbalanced groups, a 3-level factor with unequal counts, a crossed factor."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 11, size=14)
    g = np.repeat(np.arange(14), sizes)
    n = g.size
    f = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    f2 = rng.choice(["u", "v"], size=n, p=[0.6, 0.4])
    h = rng.integers(0, 6, size=n)
    x = rng.normal(size=n)
    bg_ = rng.normal(scale=0.8, size=14)
    sg = rng.normal(scale=0.5, size=14)
    bh = rng.normal(scale=0.6, size=6)
    fe = {"a": 0.0, "b": 0.4, "c": -0.3}
    mu = 1.0 + np.array([fe[v] for v in f]) + 0.5 * x
    e = rng.normal(size=n)
    y = mu + bg_[g] + bh[h] + e
    y2 = mu + bg_[g] + sg[g] * x + e
    y3 = (
        mu
        + 0.3 * (f2 == "v")
        + 0.5 * ((f == "b") & (f2 == "v"))
        - 0.4 * (f == "c") * x
        + bg_[g]
        + e
    )
    return pd.DataFrame(
        {
            "y": np.round(y, 6),
            "y2": np.round(y2, 6),
            "y3": np.round(y3, 6),
            "f": f,
            "f2": f2,
            "x": np.round(x, 6),
            "g": [f"g{i:02d}" for i in g],
            "h": [f"h{i}" for i in h],
        }
    )


# lmerTest: anova(m, ddf=...) columns "DenDF", "F value", "Sum Sq" per term
R_ANOVA = {
    "y ~ f + x + (1|g)": {
        "satterthwaite": {
            "f": (73.3585945380, 0.910039465291, 2.72273883958),
            "x": (75.2415956206, 8.037943865095, 12.02432574993),
        },
        "kenward-roger": {
            "f": (72.4087223517, 0.899165551863, 2.69023396929),
            "x": (74.4555507574, 7.922594023776, 11.85176867681),
        },
    },
    "y ~ f + x + (1|g) + (1|h)": {
        "satterthwaite": {
            "f": (68.8052330343, 2.22037395481, 3.73770109381),
            "x": (70.9788360302, 10.92592747661, 9.19616513059),
        },
        "kenward-roger": {
            "f": (67.6323430690, 2.18095519804, 3.67138101074),
            "x": (69.9941727866, 10.69550447782, 9.00222205790),
        },
    },
    "y3 ~ f * f2 + x + (1|g)": {
        "satterthwaite": {
            "f": (69.2942354308, 2.751335968354, 4.845891073966),
            "f2": (69.3254102788, 0.330432805981, 0.290993430731),
            "x": (69.8426846028, 5.068419513180, 4.463469594505),
            "f:f2": (69.3521477888, 0.941235850608, 1.657786057182),
        },
        "kenward-roger": {
            "f": (68.4092805220, 2.728152884067, 4.805079432043),
            "f2": (68.4330919115, 0.328270651143, 0.289089343598),
            "x": (68.9911879856, 5.027346432765, 4.427298862168),
            "f:f2": (68.4578047368, 0.936722808450, 1.649848494164),
        },
    },
    "y3 ~ f * x + (1|g)": {
        "satterthwaite": {
            "f": (70.6272305055, 2.016125185509, 3.57627157527),
            "x": (72.6422863026, 3.815201844970, 3.38376753838),
            "f:x": (71.8145073938, 0.841676016057, 1.49299360647),
        },
        "kenward-roger": {
            "f": (69.7599565887, 1.995943596107, 3.54050085719),
            "x": (71.9259062022, 3.764522938380, 3.33881955241),
            "f:x": (71.0109612851, 0.829264026369, 1.47100647050),
        },
    },
    # one term: lmerTest uses its type I (Doolittle) contrasts
    "y ~ f + (1|g)": {
        "satterthwaite": {"f": (74.6044323194, 0.58629, 1.93075643589)},
        "kenward-roger": {"f": (73.5780970442, 0.57923, 1.9075137613)},
    },
}
#: F of the one-term model is printed by R with 5 digits
R_F_DIGITS = {"y ~ f + (1|g)": 1e-4}

#: lmer's theta and lmerTest's tables for y2 ~ f + x + (x|g)
SLOPE = "y2 ~ f + x + (x|g)"
SLOPE_THETA = [1.04836880074, 0.146634620636, 0.547683871151]
R_SLOPE = {
    "satterthwaite": {
        "f": (67.5337497765, 1.2000933129381, 2.1005377710546),
        "x": (11.5154202014, 0.0245646308713, 0.0214978845481),
    },
    "kenward-roger": {
        "f": (65.5879068269, 1.1582733804005, 2.027537653124),
        "x": (11.2838658654, 0.0234480656869, 0.020520715807),
    },
}
# coef(summary(m)) and coef(summary(m, ddf = "Kenward-Roger")) of y ~ f + x + (1|g):
# "Std. Error", "df", "t value"
R_COEF = {
    "satterthwaite": {
        "Intercept": (0.332861365440, 21.2396196072, 3.317216083030),
        "f[b]": (0.317683864373, 73.1290050357, 0.818171294589),
        "f[c]": (0.347303132060, 72.8209696481, -0.723389734172),
        "x": (0.133614065565, 75.2415956206, 2.835126781133),
    },
    "kenward-roger": {
        "Intercept": (0.333252650701, 19.3984512032, 3.313321207004),
        "f[b]": (0.318928415307, 72.1294856188, 0.814978553525),
        "f[c]": (0.348500960859, 71.7915879746, -0.720903379315),
        "x": (0.134583234656, 74.4555507574, 2.814710291269),
    },
}
# coef(summary(m3)) of the random-slope model, at lmer's theta: "df" per coefficient
R_SLOPE_COEF_DF = {
    "satterthwaite": [18.4175355474, 66.4232102448, 68.4632215641, 11.5154202014],
    "kenward-roger": [17.2437175150, 64.6658892084, 66.5918831688, 11.2838658654],
}
# attr(anova(m), "hypotheses") of y3 ~ f * x + (1|g), columns as fixed_names
R_HYPOTHESES_FX = {
    "f": [[0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]],
    "x": [[0, 0, 0, 1, 1 / 3, 1 / 3]],
    "f:x": [[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]],
}
# ... and of y3 ~ f * f2 + x + (1|g): (Intercept) fb fc f2v x fb:f2v fc:f2v
R_HYPOTHESES_FF = {
    "f": [[0, 1, 0, 0, 0, 0.5, 0], [0, 0, 1, 0, 0, 0, 0.5]],
    "f2": [[0, 0, 0, 1, 0, 1 / 3, 1 / 3]],
    "x": [[0, 0, 0, 0, 1, 0, 0]],
    "f:f2": [[0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1]],
}


@pytest.fixture(scope="module")
def data():
    return unbalanced_data()


@pytest.fixture(scope="module")
def fits(data):
    out = {}
    for formula in [*R_ANOVA, SLOPE]:
        out[formula] = bg.GLMM(formula, data, family="gaussian").fit(method="lmm")
    return out


def _close(table, expected, rel, rel_f=None):
    assert list(table.index) == list(expected)
    for term, (den, F, ss) in expected.items():
        row = table.loc[term]
        assert row["DenDF"] == pytest.approx(den, rel=rel), term
        assert row["F"] == pytest.approx(F, rel=rel_f or rel), term
        assert row["SumSq"] == pytest.approx(ss, rel=rel_f or rel), term
        assert row["MeanSq"] * row["NumDF"] == pytest.approx(row["SumSq"], rel=1e-12)
        assert row["p_value"] == pytest.approx(
            stats.f.sf(row["F"], row["NumDF"], row["DenDF"]), rel=1e-12
        )


# ----------------------------------------------------------------------------- R: F tests


@pytest.mark.reference
@pytest.mark.parametrize("formula", list(R_ANOVA))
@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger"])
def test_type3_f_tests_match_lmertest(fits, formula, ddf):
    table = anova(fits[formula], ddf=ddf)
    _close(table, R_ANOVA[formula][ddf], REL, R_F_DIGITS.get(formula))
    assert list(table.columns) == ["SumSq", "MeanSq", "NumDF", "DenDF", "F", "p_value"]
    assert table.attrs["notes"] == []


@pytest.mark.reference
@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger"])
def test_random_slope_model_matches_lmertest(fits, ddf):
    from bayesglmm.inference.ddf import ddf_anova

    fit = fits[SLOPE]
    at_r = ddf_anova(lmm_pieces(fit, theta=SLOPE_THETA), ddf)
    _close(at_r, R_SLOPE[ddf], REL)
    _close(anova(fit, ddf=ddf), R_SLOPE[ddf], REL_FLAT)  # our own optimum
    from bayesglmm.inference.ddf import coefficient_tests

    coef = coefficient_tests(lmm_pieces(fit, theta=SLOPE_THETA), ddf)
    np.testing.assert_allclose(coef["df"], R_SLOPE_COEF_DF[ddf], rtol=REL)


# more formulas: (DenDF, F value) of anova(m, ddf = "Satterthwaite" | "Kenward-Roger");
# R's term "x:f" is our "f:x"; in x + f:x, x is not contained in f:x for lmerTest (R's
# factors attribute marks x with 2 there), so x is tested at f = a
R_MORE = {
    "y ~ poly(x, 2) + f + (1|g)": {
        "satterthwaite": {
            "poly(x, 2)": (73.56683935, 5.460036376),
            "f": (72.62405375, 1.118514402),
        },
        "kenward-roger": {
            "poly(x, 2)": (72.67568548, 5.370008099),
            "f": (71.62613565, 1.104196791),
        },
    },
    "y ~ x + f:x + (1|g)": {
        "satterthwaite": {"x": (73.62462818, 1.786034354), "f:x": (75.19655093, 0.3612605619)},
        "kenward-roger": {"x": (72.64337264, 1.76903193), "f:x": (74.31357435, 0.357041452)},
    },
    "y ~ 0 + f + x + (1|g)": {
        "satterthwaite": {"f": (30.47802196, 5.361323276), "x": (75.24159562, 8.037943865)},
        "kenward-roger": {"f": (41.26368396, 5.221122582), "x": (74.45555076, 7.922594024)},
    },
    "y ~ f*f2*x + (1|g)": {
        "satterthwaite": {
            "f": (67.42278028, 0.5639693675),
            "f2": (67.17785425, 0.0732933874),
            "x": (69.97052149, 4.812591772),
            "f:f2": (67.37116834, 0.2715425136),
            "f:x": (70.90601775, 0.226338933),
            "f2:x": (67.97642616, 0.08773528016),
            "f:f2:x": (70.06372847, 0.736392944),
        },
        "kenward-roger": {
            "f": (66.35572735, 0.5558949541),
            "f2": (66.07689373, 0.07223617012),
            "x": (69.28863515, 4.704261994),
            "f:f2": (66.30036202, 0.2668755204),
            "f:x": (70.35425118, 0.219482598),
            "f2:x": (66.99089323, 0.08643354575),
            "f:f2:x": (69.36404177, 0.7220507342),
        },
    },
}


@pytest.mark.reference
@pytest.mark.parametrize("formula", list(R_MORE))
def test_more_formulas_match_lmertest(data, formula):
    fit = bg.GLMM(formula, data, family="gaussian").fit(method="lmm")
    for ddf, expected in R_MORE[formula].items():
        table = anova(fit, ddf=ddf)
        assert list(table.index) == list(expected)
        got = table[["DenDF", "F"]].to_numpy()
        np.testing.assert_allclose(got, list(expected.values()), rtol=REL, err_msg=ddf)


# w = 1 + 0.5 x + N(0, 1) (no group effect): lmer's fit is singular (theta = 0)
R_SINGULAR = {
    "satterthwaite": {
        "f": (82.0, 1.92812, 2.76526528),
        "x": (82.0, 48.27380, 34.61663172),
    },
    "kenward-roger": {
        "f": (79.00377802, 1.88437, 2.70270771),
        "x": (81.83417883, 45.83205, 32.86567249),
    },
}


@pytest.mark.reference
def test_singular_fit_matches_lmertest(data):
    w = 1 + 0.5 * data["x"] + np.random.default_rng(1).normal(size=len(data))
    fit = bg.GLMM("w ~ f + x + (1|g)", data.assign(w=w), family="gaussian").fit(method="lmm")
    assert fit.info["theta"] == [0.0]
    for ddf, expected in R_SINGULAR.items():
        _close(anova(fit, ddf=ddf), expected, REL, rel_f=1e-5)  # R printed F with 6 digits


@pytest.mark.reference
@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger"])
def test_coefficient_t_tests_match_lmertest_summary(fits, ddf):
    table = fixed_effect_tests(fits["y ~ f + x + (1|g)"], ddf=ddf)
    assert list(table.columns) == ["estimate", "std_error", "df", "t", "p_value"]
    for name, (se, df, t) in R_COEF[ddf].items():
        row = table.loc[name]
        assert row["std_error"] == pytest.approx(se, rel=REL), name
        assert row["df"] == pytest.approx(df, rel=REL), name
        assert row["t"] == pytest.approx(t, rel=REL), name
        assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-3)


@pytest.mark.reference
def test_type3_hypotheses_are_lmertests(fits):
    for formula, expected in [
        ("y3 ~ f * x + (1|g)", R_HYPOTHESES_FX),
        ("y3 ~ f * f2 + x + (1|g)", R_HYPOTHESES_FF),
    ]:
        L = term_contrasts(fits[formula].model.design)
        assert list(L) == list(expected)
        for term, rows in expected.items():
            np.testing.assert_allclose(L[term], rows, atol=1e-7, err_msg=term)


def test_type3_tests_do_not_depend_on_the_coding(data, fits):
    treat = anova(fits["y3 ~ f * f2 + x + (1|g)"], ddf="satterthwaite")
    sum_fit = bg.GLMM("y3 ~ C(f, Sum) * C(f2, Sum) + x + (1|g)", data, family="gaussian")
    coded = anova(sum_fit.fit(method="lmm"), ddf="satterthwaite")
    assert list(coded.index) == ["C(f, Sum)", "C(f2, Sum)", "x", "C(f, Sum):C(f2, Sum)"]
    np.testing.assert_allclose(coded[["DenDF", "F"]], treat[["DenDF", "F"]], rtol=1e-6)


def test_an_ml_fit_is_refitted_by_reml_with_a_note(data, fits):
    ml = bg.GLMM("y ~ f + x + (1|g)", data, family="gaussian").fit(method="lmm", reml=False)
    with pytest.warns(UserWarning, match="refitted by REML"):
        table = anova(ml, ddf="kenward-roger")
    _close(table, R_ANOVA["y ~ f + x + (1|g)"]["kenward-roger"], REL)
    assert "REML" in table.attrs["notes"][0]
    with pytest.warns(UserWarning, match="refitted by REML"):
        coef = fixed_effect_tests(ml, ddf="satterthwaite")
    assert coef.loc["x", "df"] == pytest.approx(R_COEF["satterthwaite"]["x"][1], rel=REL)


# ----------------------------------------------------------------------------- Wald


def test_wald_of_an_lmm_is_numdf_times_the_f(fits):
    """Same contrasts and covariance: the chi-square is NumDF x lmerTest's F."""
    fit = fits["y3 ~ f * f2 + x + (1|g)"]
    wald = anova(fit, test="wald")
    f = anova(fit, ddf="satterthwaite")
    np.testing.assert_allclose(wald["statistic"], f["F"] * f["NumDF"], rtol=1e-10)
    assert wald["df"].tolist() == f["NumDF"].tolist()
    np.testing.assert_allclose(wald["p_value"], stats.chi2.sf(wald["statistic"], wald["df"]))


@pytest.fixture(scope="module")
def binary(data):
    """A 0/1 response with a strong ``x`` effect and no ``f`` effect."""
    rng = np.random.default_rng(5)
    group = data["g"].str[1:].astype(int).to_numpy()
    eta = -0.2 + 1.2 * data["x"].to_numpy() + rng.normal(scale=0.7, size=14)[group]
    return data.assign(z=rng.binomial(1, 1 / (1 + np.exp(-eta))))


@pytest.fixture(scope="module")
def glmm_fit(binary):
    return bg.GLMM("z ~ f + x + (1|g)", binary, family="binomial").fit(method="laplace")


def test_wald_of_a_glmm_uses_the_fit_covariance(glmm_fit):
    table = anova(glmm_fit, test="wald")
    V = glmm_fit.vcov.block(["f[b]", "f[c]"])
    b = glmm_fit.fixed_effects[["f[b]", "f[c]"]].to_numpy()
    assert table.loc["f", "statistic"] == pytest.approx(b @ np.linalg.solve(V, b), rel=1e-10)
    se = glmm_fit.fixed_effects_se["x"]
    assert table.loc["x", "statistic"] == pytest.approx((glmm_fit.fixed_effects["x"] / se) ** 2)
    assert table["df"].tolist() == [2, 1]
    assert table.loc["x", "p_value"] < 1e-3 < table.loc["f", "p_value"]


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_lrt_of_each_term(binary, glmm_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular refits of simulated data
        table = anova(glmm_fit, test="bootstrap", n_boot=8, random_seed=11, max_workers=1)
    # the observed statistic is the LRT against the model fitted without the term
    small = bg.GLMM("z ~ x + (1|g)", binary, family="binomial").fit(method="laplace")
    lrt = anova(small, glmm_fit).iloc[1]
    assert table.loc["f", "statistic"] == pytest.approx(lrt["statistic"], rel=1e-5, abs=1e-6)
    assert table.loc["f", "p_value_chi2"] == pytest.approx(lrt["p_value"], rel=1e-4)
    for term, reps in table.attrs["replicates"].items():
        row = table.loc[term]
        assert row["n_boot"] == 8 and row["n_failed"] == 0
        p = (1 + np.sum(reps >= row["statistic"])) / 9
        assert row["p_value"] == pytest.approx(p)
        assert row["mc_error"] == pytest.approx(np.sqrt(p * (1 - p) / 8))
        assert np.all(reps >= 0)
    # x has a strong effect: no replicate from the model without x reaches its LRT
    assert table.loc["x", "p_value"] == pytest.approx(1 / 9)
    # a replicate is the task function run with its derived seed
    reduced = reduced_model_args(glmm_fit.model, term_contrasts(glmm_fit.model.design)["x"])
    reduced["trials"] = None
    small_x = bg.GLMM(reduced["formula"], reduced["data"], family="binomial").fit(method="laplace")
    truth = {
        "fixed_effects": small_x.fixed_effects.to_dict(),
        "variance_components": small_x.variance_components.to_dict(),
        "correlations": None,
        "dispersion": None,
    }
    full = {"formula": glmm_fit.formula, "data": binary, "family": "binomial", "link": "logit"}
    options = {k: v for k, v in glmm_fit.info["options"].items() if k not in ("start",)}
    options.pop("progressbar", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = bootstrap_replicate(
            full, reduced, truth, "laplace", options, seed=derive_seed(11, "x #0")
        )
    assert one["statistic"] == pytest.approx(table.attrs["replicates"]["x"][0], rel=1e-8)


def test_bootstrap_is_reproducible_and_resumes(data, tmp_path):
    fit = bg.GLMM("y ~ f + (1|g)", data, family="gaussian").fit(method="lmm")
    kw = {"test": "bootstrap", "n_boot": 4, "max_workers": 1}
    first = anova(fit, random_seed=3, store=tmp_path / "boot", **kw)
    again = anova(fit, random_seed=3, **kw)
    pd.testing.assert_frame_equal(first, again)
    for term in first.index:
        np.testing.assert_array_equal(
            first.attrs["replicates"][term], again.attrs["replicates"][term]
        )
    resumed = anova(fit, random_seed=3, store=tmp_path / "boot", **kw)
    pd.testing.assert_frame_equal(first, resumed)
    other = anova(fit, random_seed=4, **kw)
    assert not np.array_equal(other.attrs["replicates"]["f"], first.attrs["replicates"]["f"])
    assert "maximum likelihood" in first.attrs["notes"][0]
    # the observed LRT is by ML, whatever the fit's criterion
    ml_big = bg.GLMM("y ~ f + (1|g)", data, family="gaussian").fit(method="lmm", reml=False)
    ml_small = bg.GLMM("y ~ 1 + (1|g)", data, family="gaussian").fit(method="lmm", reml=False)
    stat = 2 * (ml_big.loglik - ml_small.loglik)
    assert first.loc["f", "statistic"] == pytest.approx(stat, rel=1e-6)


# ----------------------------------------------------------------------------- arguments


def test_several_fits_still_give_the_likelihood_ratio_table(data):
    small = bg.GLMM("y ~ x + (1|g)", data, family="gaussian").fit(method="lmm", reml=False)
    big = bg.GLMM("y ~ f + x + (1|g)", data, family="gaussian").fit(method="lmm", reml=False)
    row = anova(small, big).iloc[1]
    assert row["df"] == 2
    assert row["statistic"] == pytest.approx(2 * (big.loglik - small.loglik))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda f, g: anova(), "needs a fit"),
        (lambda f, g: anova(f), "give ddf="),
        (lambda f, g: anova(f, f, ddf="satterthwaite"), "one fit, got 2"),
        (lambda f, g: anova(f, f, test="wald"), "one fit, got 2"),
        (lambda f, g: anova(f, ddf="containment"), "ddf must be one of"),
        (lambda f, g: anova(f, ddf=3), "ddf must be one of"),
        (lambda f, g: anova(f, test="lrt"), "test must be one of"),
        (lambda f, g: anova(f, ddf="satterthwaite", test="wald"), "not both"),
        (lambda f, g: anova(g, ddf="kenward-roger"), "method='lmm'.*'laplace'"),
        (lambda f, g: anova(f, test="wald", n_boot=10), r"\['n_boot'\].*bootstrap"),
        (lambda f, g: anova(f, test="wald", n_boot=200), r"\['n_boot'\].*bootstrap"),
        (lambda f, g: anova(f, ddf="satterthwaite", random_seed=1), "random_seed"),
        (lambda f, g: fixed_effect_tests(g), "method='lmm'"),
        (lambda f, g: fixed_effect_tests(f, ddf="lme4"), "ddf must be one of"),
        (lambda f, g: anova(f, test="bootstrap", n_boot=0), "n_boot"),
    ],
)
def test_bad_arguments_fail_in_one_line(fits, glmm_fit, call, message):
    with pytest.raises(MethodError, match=message) as err:
        call(fits["y ~ f + x + (1|g)"], glmm_fit)
    assert "\n" not in str(err.value)


def test_kenward_roger_aliases(fits):
    fit = fits["y ~ f + (1|g)"]
    a = anova(fit, ddf="Kenward-Roger")
    b = anova(fit, ddf="KR")
    pd.testing.assert_frame_equal(a, b)
    assert "Kenward-Roger" in a.attrs["heading"]
