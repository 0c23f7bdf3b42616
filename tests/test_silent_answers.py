"""Inputs that used to give a number without a word: each is now refused, marked or warned.

Four classes: ``predict`` on newdata with infinite values, float group ids or a ``re_form``
the fit cannot honour; ``compare`` of fits of different models or of fits that did not
converge; degenerate responses and variance components the data cannot identify; and the
bias of the Monte Carlo log-likelihood (the log of a mean weight).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.analysis.comparison import Comparison
from bayesglmm.errors import BayesGLMMError, DataError, MethodError, OptionError

CBPP = "cbind(incidence, size - incidence) ~ period + (1|herd)"


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


@pytest.fixture(scope="module")
def int_groups():
    """A Bernoulli model whose grouping factor has integer levels 0, 2, ..., 18."""
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"g": np.repeat(np.arange(0, 20, 2), 8), "x": rng.normal(size=80)})
    d["z"] = rng.uniform(0.5, 2.0, size=80)
    d = bg.simulate("y ~ x + (1|g)", d, {"Intercept": 0.2, "x": 0.5}, {"g": 0.8}, random_seed=1)
    model = bg.GLMM("y ~ x + log(z) + (1|g)", d, family="binomial")
    return model, _quiet(lambda: model.fit(method="laplace"))


@pytest.fixture(scope="module")
def cbpp_fits(cbpp):
    model = bg.GLMM(CBPP, cbpp, family="binomial")
    return {m: _quiet(lambda m=m: model.fit(method=m)) for m in ("laplace", "gee", "ee", "ee2")}


# ------------------------------------------------------------------------------------------
# predict


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
@pytest.mark.parametrize("column", ["x", "z"])
def test_predict_refuses_an_infinite_covariate_naming_column_and_row(int_groups, bad, column):
    _, fit = int_groups
    nd = pd.DataFrame({"g": [0, 2, 4], "x": [0.1, 0.2, 0.3], "z": [1.0, 1.0, 1.0]})
    nd.index = ["a", "b", "c"]
    nd.loc["b", column] = bad
    with pytest.raises(DataError, match=f"column '{column}'") as err:
        fit.predict(nd)
    assert "'b'" in str(err.value) and "infinite" in str(err.value)


def test_predict_names_the_first_row_with_a_missing_value(int_groups):
    _, fit = int_groups
    nd = pd.DataFrame({"g": [0, 2, 4], "x": [0.1, np.nan, np.nan], "z": 1.0}, index=[7, 8, 9])
    with pytest.raises(DataError, match=r"\['x'\]") as err:
        fit.predict(nd)
    assert "row 8" in str(err.value)


def test_predict_refuses_a_design_column_that_is_not_finite_on_newdata(int_groups):
    _, fit = int_groups  # log(z) at z = 0 is -inf: the prediction would be exactly 0
    nd = pd.DataFrame({"g": [0, 2], "x": [0.1, 0.2], "z": [1.0, 0.0]}, index=["p", "q"])
    with pytest.raises(DataError, match=r"'log\(z\)'") as err:
        fit.predict(nd)
    assert "'q'" in str(err.value)


@pytest.mark.parametrize("make", [np.array, lambda v: pd.Series(v, dtype=object)])
def test_predict_matches_float_group_ids_to_integer_levels(int_groups, make):
    _, fit = int_groups
    as_int = pd.DataFrame({"g": [0, 2], "x": [0.1, 0.2], "z": 1.0})
    as_float = pd.DataFrame({"g": make([0.0, 2.5]), "x": [0.1, 0.2], "z": 1.0})
    want = fit.predict(as_int)
    got = fit.predict(as_float, allow_new_levels=True)
    assert got.iloc[0] == pytest.approx(want.iloc[0], abs=1e-12)  # level 0, not a new level
    population = fit.predict(as_float, re_form="~0")
    assert got.iloc[1] == pytest.approx(population.iloc[1], abs=1e-12)  # 2.5 is new


def test_predict_float_ids_only_the_unseen_level_needs_allow_new_levels(int_groups):
    _, fit = int_groups
    nd = pd.DataFrame({"g": [0.0, 2.0, 99.0], "x": 0.1, "z": 1.0})
    with pytest.raises(MethodError, match="allow_new_levels") as err:
        fit.predict(nd)
    text = str(err.value)
    assert "'99" in text and "'0.0'" not in text and "'2.0'" not in text


@pytest.mark.parametrize("re_form", ["~(1|herd)", "~ (1 | herd)"])
@pytest.mark.parametrize("with_newdata", [False, True])
def test_gee_refuses_a_re_form_asking_for_random_effects(cbpp_fits, re_form, with_newdata):
    nd = pd.DataFrame({"period": ["1", "2"], "herd": ["1", "3"]}) if with_newdata else None
    with pytest.raises(MethodError, match="re_form") as err:
        cbpp_fits["gee"].predict(nd, re_form=re_form)
    text = str(err.value)
    assert "'~0'" in text and "marginal" in text and "gee" in text


def test_gee_default_and_population_predictions_agree(cbpp_fits):
    gee = cbpp_fits["gee"]
    np.testing.assert_array_equal(gee.predict(), gee.predict(re_form="~0"))


@pytest.mark.parametrize("method", ["ee", "ee2"])
def test_moment_fits_name_re_form_and_ebp_when_they_cannot_predict(cbpp_fits, method):
    fit = cbpp_fits[method]
    with pytest.raises(MethodError, match=method) as err:
        fit.predict()
    text = str(err.value)
    assert "re_form='~0'" in text and "bg.ebp" in text and "1|herd" in text
    eta = fit.predict(re_form="~0", type="link")
    X = fit.model.design.X
    np.testing.assert_allclose(eta, X @ fit.fixed_effects.to_numpy(), rtol=1e-12)


# ------------------------------------------------------------------------------------------
# compare


@pytest.fixture(scope="module")
def cbpp_laplace(cbpp_fits):
    return cbpp_fits["laplace"]


def _other(cbpp, formula=CBPP, family="binomial", link=None, edit=None):
    data = cbpp.copy() if edit is None else edit(cbpp.copy())
    model = bg.GLMM(formula, data, family=family, link=link)
    return _quiet(lambda: model.fit(method="laplace"))


def _shuffled_incidence(d: pd.DataFrame) -> pd.DataFrame:
    return d.assign(incidence=np.minimum(d["incidence"].to_numpy()[::-1], d["size"]))


@pytest.mark.parametrize(
    "kind, what",
    [
        ("formula", "formula"),
        ("link", "family/link"),
        ("rows", "number of observations"),
        ("data", "data"),
    ],
)
def test_compare_refuses_fits_of_different_models_or_data(cbpp, cbpp_laplace, kind, what):
    other = {
        "formula": lambda: _other(cbpp, "cbind(incidence, size - incidence) ~ 1 + (1|herd)"),
        "link": lambda: _other(cbpp, link="probit"),
        "rows": lambda: _other(cbpp, edit=lambda d: d.iloc[:-3]),
        "data": lambda: _other(
            cbpp, edit=lambda d: d.assign(incidence=np.minimum(d.incidence[::-1].values, d["size"]))
        ),
    }[kind]()
    with pytest.raises(BayesGLMMError, match="not of the same model") as err:
        bg.compare({"first": cbpp_laplace, "second": other})
    text = str(err.value)
    assert what in text and "'first'" in text and "'second'" in text
    assert "allow_different_models=True" in text


def test_compare_labels_columns_by_model_when_allowed(cbpp, cbpp_laplace):
    other = _other(cbpp, "cbind(incidence, size - incidence) ~ 1 + (1|herd)")
    table = bg.compare([cbpp_laplace, other], allow_different_models=True)
    assert list(table.columns) == ["laplace [model 1]", "laplace (2) [model 2]"]
    notes = table.attrs["notes"]["laplace (2) [model 2]"]
    assert any("~ 1 + (1|herd)" in n for n in notes)


def test_compare_checks_the_allow_flag(cbpp_laplace):
    with pytest.raises(OptionError, match="allow_different_models"):
        bg.compare([cbpp_laplace, cbpp_laplace], allow_different_models="yes")


def test_compare_of_one_model_by_two_methods_is_not_marked(cbpp_fits):
    table = bg.compare([cbpp_fits["laplace"], cbpp_fits["ee"]])
    assert list(table.columns) == ["laplace", "ee"]


def _not_converged(fit):
    conv = dict(fit.convergence, messages=["iteration limit reached (maxiter=3)"])
    return dataclasses.replace(fit, converged=False, convergence=conv)


def test_compare_marks_a_fit_that_did_not_converge_in_the_table(cbpp_fits):
    bad = _not_converged(cbpp_fits["ee"])
    table = bg.compare({"good": cbpp_fits["laplace"], "bad": bad})
    assert list(table.columns) == ["good", "bad [not converged]"]
    note = table.attrs["notes"]["bad [not converged]"][0]
    assert "did not converge" in note and "iteration limit" in note


def test_comparison_tidy_has_a_converged_column(cbpp_fits):
    bad = _not_converged(cbpp_fits["ee"])
    cmp = Comparison.from_fits({"good": cbpp_fits["laplace"], "bad": bad})
    tidy = cmp.tidy
    assert set(tidy.loc[tidy.method == "bad", "converged"]) == {False}
    assert set(tidy.loc[tidy.method == "good", "converged"]) == {True}
    assert tidy.loc[tidy.method == "bad", "note"].str.contains("not converged").all()


def test_forest_plot_labels_a_fit_that_did_not_converge(cbpp_fits):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bad = _not_converged(cbpp_fits["ee"])
    fig = Comparison.from_fits({"good": cbpp_fits["laplace"], "bad": bad}).plot()
    legend = [t.get_text() for t in fig.legends[0].texts]
    markers = {line.get_marker() for ax in fig.axes for line in ax.get_lines()}
    plt.close(fig)
    assert legend == ["good", "bad [not converged]"]
    assert "x" in markers


@pytest.mark.parametrize("method", ["laplace", "gee", "ee"])
def test_report_says_near_the_top_that_the_fit_did_not_converge(cbpp_fits, method):
    text = _not_converged(cbpp_fits[method]).report().splitlines()
    assert any("NOT CONVERGED" in line for line in text[:3]), text[:5]
    assert "NOT CONVERGED" not in cbpp_fits[method].report()


# ------------------------------------------------------------------------------------------
# degenerate responses, non-identified variances


@pytest.mark.parametrize("value", [3.0, 0.0, -1e6])
@pytest.mark.parametrize("method", ["lmm", "laplace", "agq", "gee", "pql"])
def test_constant_gaussian_response_is_refused_by_every_method(value, method):
    d = pd.DataFrame({"g": np.repeat(np.arange(10), 5), "x": np.arange(50.0), "resp": value})
    model = bg.GLMM("resp ~ x + (1|g)", d, family="gaussian")  # a template may be built
    with pytest.raises(DataError, match="response 'resp' is constant"):
        model.fit(method=method)


def test_constant_gaussian_response_is_refused_on_cbpp(cbpp):
    model = bg.GLMM("size ~ period + (1|herd)", cbpp.assign(size=7), family="gaussian")
    with pytest.raises(DataError, match="'size' is constant"):
        model.fit(method="lmm")


@pytest.mark.parametrize(
    "family, value, why",
    [
        ("binomial", 0, "has no successes"),
        ("binomial", 1, "has no failures"),
        ("poisson", 0, "is zero in every row"),
    ],
)
@pytest.mark.parametrize("method", ["pql", "gee", "ee", "mcem", "laplace"])
def test_response_with_nothing_to_estimate_is_refused_by_every_method(family, value, why, method):
    d = pd.DataFrame({"g": np.repeat(np.arange(10), 5), "x": np.arange(50.0), "hits": value})
    model = bg.GLMM("hits ~ x + (1|g)", d, family=family)
    with pytest.raises(DataError, match=f"response 'hits' {why}"):
        model.fit(method=method)


def test_bayesian_fits_take_a_response_with_no_successes():
    """As brms does: the posterior is then the (proper, default) prior's; the propriety check
    is what refuses such data under an improper prior."""
    d = pd.DataFrame({"g": np.repeat(np.arange(10), 5), "x": np.arange(50.0), "hits": 0})
    fit = bg.GLMM("hits ~ x + (1|g)", d).fit(
        method="nuts", draws=30, tune=30, chains=1, random_seed=1, progressbar=False
    )
    assert fit.idata.posterior.sizes["draw"] == 30


def _singletons(n_groups: int, n_rows: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.r_[np.arange(n_groups), rng.integers(0, n_groups, n_rows - n_groups)]
    d = pd.DataFrame({"g": g, "x": rng.normal(size=n_rows)})
    d["y"] = (rng.random(n_rows) < 0.4).astype(int)
    d["f"] = d["y"].rsub(1)
    d["h"] = np.arange(n_rows) % 4
    return d


@pytest.mark.parametrize(
    "formula, rows, term",
    [
        ("y ~ x + (1|g)", 61, "'g'"),
        ("y ~ x + (1|g)", 60, "'g'"),
        ("y ~ x + (1|g)", 100, "'g'"),  # 60 levels, most still with one row
        ("cbind(y, f) ~ x + (1|g)", 61, "'g'"),
        ("y ~ x + (1|h) + (1|g)", 61, "'g'"),
    ],
)
def test_bernoulli_variance_without_replicates_warns(formula, rows, term):
    d = _singletons(60, rows)
    with pytest.warns(UserWarning, match="is not identified") as rec:
        bg.GLMM(formula, d, family="binomial")
    texts = [str(w.message) for w in rec if "not identified" in str(w.message)]
    assert len(texts) == 1 and f"levels of {term}" in texts[0]


def test_non_identified_warning_reaches_every_method():
    d = _singletons(60, 61)
    for method in ("laplace", "agq"):
        with pytest.warns(UserWarning, match="not identified"):
            bg.GLMM("y ~ x + (1|g)", d, family="binomial").fit(method=method)


@pytest.mark.parametrize("which", ["salamander", "cbpp"])
def test_valid_designs_do_not_warn(which, salamander, cbpp):
    formula, data = {
        "salamander": ("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander),
        "cbpp": (CBPP, cbpp),
    }[which]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        bg.GLMM(formula, data, family="binomial")


# ------------------------------------------------------------------------------------------
# the Monte Carlo log-likelihood


def test_log_of_a_mean_weight_is_corrected_and_its_error_covers_the_correction():
    from bayesglmm.frequentist.montecarlo.loglik import bias_corrected

    est, se = bias_corrected(-100.0, 0.2)
    assert est == pytest.approx(-100.0 + 0.02) and se == pytest.approx(0.2 + 0.02)


def test_joint_monte_carlo_loglik_covers_the_exact_one_factor_loglik(cbpp):
    from bayesglmm.frequentist.montecarlo.complete import CompleteData
    from bayesglmm.frequentist.montecarlo.loglik import blockwise_loglik, joint_loglik

    model = bg.GLMM(CBPP, cbpp, family="binomial")
    agq = _quiet(lambda: model.fit(method="agq", n_quad=25))  # exact with one factor
    mc = CompleteData(model.design, "mcem")
    psi = mc.psi_from(np.asarray(agq.info["theta"]), agq.fixed_effects.to_numpy())
    z = []
    for seed in range(4):
        for estimate in (joint_loglik, blockwise_loglik):
            lik = estimate(mc, psi, np.random.default_rng(seed), 400)
            z.append((lik["loglik"] - agq.loglik) / lik["mcse"])
    assert np.all(np.abs(z) < 3), z


def test_joint_monte_carlo_loglik_is_calibrated_on_crossed_salamander(salamander):
    """At 5000 draws the corrected estimate's mean error is a small fraction of its mcse and
    about 95 % of estimates lie within two of their mcse of a 100,000-draw estimate."""
    from bayesglmm.frequentist.montecarlo.complete import CompleteData
    from bayesglmm.frequentist.montecarlo.loglik import joint_loglik

    model = bg.GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander, family="binomial")
    lap = _quiet(lambda: model.fit(method="laplace"))
    mc = CompleteData(model.design, "mcem")
    psi = mc.psi_from(np.asarray(lap.info["theta"]), lap.fixed_effects.to_numpy())
    truth = joint_loglik(mc, psi, np.random.default_rng(12345), 100_000)["loglik"]
    runs = [joint_loglik(mc, psi, np.random.default_rng(s), 5000) for s in range(30)]
    z = np.array([(r["loglik"] - truth) / r["mcse"] for r in runs])
    assert abs(z.mean()) < 0.5, z.mean()
    assert np.mean(np.abs(z) < 2) >= 0.85, z


def test_gee_predicts_new_herds_at_the_population_level_without_asking(cbpp_fits):
    gee = cbpp_fits["gee"]
    nd = pd.DataFrame({"period": ["1", "2"], "herd": ["99", "1"]})
    got = gee.predict(nd)
    want = gee.predict(nd.assign(herd=["1", "1"]))
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
