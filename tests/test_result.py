import numpy as np
import pandas as pd
import pytest

from bayesglmm import FitResult, compare


def _result(method="laplace", idata=None):
    fe = pd.Series({"Intercept": 0.1234567890123, "x": -1.5}, name="estimate")
    fe.index.name = "parameter"
    table = pd.DataFrame(
        {"estimate": [0.1234567890123, -1.5, 0.3], "std_error": [0.1, 0.2, np.nan]},
        index=pd.Index(["Intercept", "x", "var(g)"], name="parameter"),
    )
    return FitResult(
        method=method,
        formula="y ~ x + (1|g)",
        family="binomial",
        link="logit",
        fixed_effects=fe,
        fixed_effects_se=pd.Series({"Intercept": 0.1, "x": 0.2}),
        variance_components=pd.Series({"g": 0.3}),
        loglik=-12.5,
        n_params=3,
        nobs=40,
        table=table,
        random_effects={"1|g": pd.DataFrame({"Intercept": [0.1, -0.1]}, index=["a", "b"])},
        convergence={"iterations": 7, "messages": []},
        timing={"total": 0.01},
        idata=idata,
        info={"nested": {"a": np.float64(1.0)}},
    )


def test_save_load_round_trip_is_exact(tmp_path):
    r = _result()
    back = FitResult.load(r.save(tmp_path / "fit.zip"))
    pd.testing.assert_series_equal(back.fixed_effects, r.fixed_effects)
    pd.testing.assert_frame_equal(back.table, r.table)
    pd.testing.assert_frame_equal(back.random_effects["1|g"], r.random_effects["1|g"])
    assert back.loglik == r.loglik and back.aic == pytest.approx(31.0)
    assert back.bic == pytest.approx(25.0 + 3 * np.log(40))
    assert back.info == {"nested": {"a": 1.0}} and back.idata is None


def test_save_load_keeps_draws(tmp_path):
    import arviz as az

    idata = az.from_dict(posterior={"x": np.random.default_rng(0).normal(size=(2, 50))})
    back = FitResult.load(_result("nuts", idata).save(tmp_path / "nuts.zip"))
    np.testing.assert_array_equal(back.idata.posterior["x"].values, idata.posterior["x"].values)


def test_compare_is_a_join():
    a, b = _result("laplace"), _result("pql")
    b.loglik = None
    table = compare([a, b])
    assert list(table.columns) == ["laplace", "pql"]
    assert table.loc["var(g)", "pql"] == 0.3 and np.isnan(table.loc["logLik", "pql"])
    assert list(table.index) == ["Intercept", "x", "var(g)", "logLik"]


# --------------------------------------------------------------------------------------
# the one schema: every method's result through build_result


@pytest.fixture(scope="module")
def small_fits():
    """One fit per registered method on small simulated data (seeded)."""
    import warnings

    from bayesglmm import GLMM, simulate

    rng = np.random.default_rng(11)
    df = pd.DataFrame({"g": np.repeat(np.arange(12), 8), "x": rng.normal(size=96)})
    binary = simulate("y ~ x + (1|g)", df, {"Intercept": 0.2, "x": 0.8}, {"g": 0.5}, random_seed=3)
    gauss = simulate(
        "y ~ x + (1|g)", df, {"Intercept": 1.0, "x": 0.5}, {"g": 0.7},
        family="gaussian", dispersion=0.6, random_seed=4,
    )  # fmt: skip
    bm = GLMM("y ~ x + (1|g)", binary)
    gm = GLMM("y ~ x + (1|g)", gauss, family="gaussian")
    quick = {"draws": 60, "tune": 60, "chains": 2, "random_seed": 1, "progressbar": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "laplace": bm.fit("laplace"),
            "agq": bm.fit("agq", n_quad=5),
            "pql": bm.fit("pql", progressbar=False),
            "lmm": gm.fit("lmm"),
            "nuts": bm.fit("nuts", **quick),
            "gibbs": bm.fit("gibbs", **quick),
        }


def test_every_method_has_the_same_schema(small_fits):
    import json

    from bayesglmm.results.result import CONVERGENCE_KEYS, INFO_KEYS, KINDS, TABLE_COLUMNS

    for method, r in small_fits.items():
        assert tuple(r.convergence) == CONVERGENCE_KEYS, method
        assert tuple(r.info) == INFO_KEYS, method
        assert tuple(r.table.columns) == TABLE_COLUMNS, method
        assert r.info["kind"] in KINDS and r.method == method
        assert isinstance(r.convergence["converged"], bool)
        assert r.convergence["converged"] == r.converged
        assert isinstance(r.convergence["singular"], bool)
        assert isinstance(r.convergence["messages"], list)
        assert isinstance(r.convergence["details"], dict)
        assert r.info["groups"] == {"g": 12}
        assert r.info["theta"] is None or isinstance(r.info["theta"], list)
        json.dumps(r.info), json.dumps(r.convergence)
        # the Series fields are read off the table, so they cannot disagree with it
        assert list(r.table.index[:2]) == ["Intercept", "x"]
        np.testing.assert_array_equal(r.fixed_effects, r.table["estimate"].iloc[:2])
        assert r.variance_components["g"] == r.table.loc["var(g)", "estimate"]
    kinds = {m: r.kind for m, r in small_fits.items()}
    assert kinds == {
        "laplace": "likelihood",
        "agq": "likelihood",
        "pql": "quasi_likelihood",
        "lmm": "lmm",
        "nuts": "bayesian",
        "gibbs": "bayesian",
    }
    assert small_fits["laplace"].info["theta_names"] and small_fits["nuts"].info["theta"] is None
    assert small_fits["nuts"].info["priors"] and small_fits["laplace"].info["priors"] is None


def test_save_load_keeps_the_schema(small_fits, tmp_path):
    for method in ("laplace", "nuts"):
        r = small_fits[method]
        back = FitResult.load(r.save(tmp_path / f"{method}.zip"))
        assert back.convergence == r.convergence and back.info == r.info
        pd.testing.assert_frame_equal(back.table, r.table)


def test_reports_read_as_their_kind(small_fits):
    lap = small_fits["laplace"].report()
    assert lap.startswith("Generalized linear mixed model fit by maximum likelihood (Laplace")
    assert "z value" in lap and "Pr(>|z|)" in lap
    lmm = small_fits["lmm"].report().splitlines()
    assert lmm[0] == "Linear mixed model fit by REML"
    assert any(s.startswith("REML criterion at convergence:") for s in lmm)
    assert not any("Generalized" in s or "deviance" in s or "z value" in s for s in lmm)
    assert any(s.split()[:1] == ["Residual"] for s in lmm)
    assert "t value" in "\n".join(lmm)
    ml = small_fits["lmm"]
    nuts = small_fits["nuts"].report()
    words = ["Regression Coefficients:", "Multilevel Hyperparameters:", "Rhat", "Bulk_ESS"]
    words += ["Tail_ESS", "l-95% CI", "divergent transitions", "Priors:", "HalfNormal"]
    for word in words:
        assert word in nuts, word
    assert "z value" not in nuts and "optimizer" not in nuts
    # the numbers shown are the table's
    row = next(s for s in nuts.splitlines() if s.startswith("x ")).split()
    # printed with 2 decimals (brms's layout): equal to half the last digit
    assert float(row[1]) == pytest.approx(small_fits["nuts"].table.loc["x", "estimate"], abs=0.005)
    assert "maximizes no likelihood" in small_fits["pql"].report()
    assert ml.loglik is not None


def test_compare_labels_are_unique_and_rows_sorted(small_fits):
    table = compare([small_fits["laplace"], small_fits["pql"], small_fits["laplace"]])
    assert list(table.columns) == ["laplace", "pql", "laplace (2)"]
    lmm = small_fits["lmm"]
    both = compare([small_fits["pql"], lmm], allow_different_models=True)
    assert list(both.index) == ["Intercept", "x", "var(g)", "sigma", "logLik"]


def test_compare_puts_pql_dispersion_after_variances():
    import warnings

    from bayesglmm import GLMM, simulate

    rng = np.random.default_rng(2)
    df = pd.DataFrame({"g": np.repeat(np.arange(10), 10), "x": rng.normal(size=100)})
    s = simulate("y ~ x + (1|g)", df, {"Intercept": 0.0, "x": 1.0}, {"g": 0.5}, random_seed=5)
    m = GLMM("y ~ x + (1|g)", s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pql = m.fit("pql", dispersion="estimated", progressbar=False)
        lap = m.fit("laplace")
    table = compare({"PQL": pql, "Laplace": lap})
    assert list(table.index) == ["Intercept", "x", "var(g)", "dispersion", "logLik"]


def test_compare_marks_fits_whose_priors_differ(small_fits):
    import copy

    nuts = copy.copy(small_fits["nuts"])
    nuts.converged = True  # short chains; the non-convergence mark is tested elsewhere
    other = copy.copy(nuts)
    other.info = {**nuts.info, "priors": {**nuts.info["priors"], "1|g": "HalfNormal(sigma=1)"}}
    swapped = copy.copy(nuts)
    swapped.info = {**nuts.info, "prior_swap": {"1|g": "InverseGamma(alpha=1, beta=1)"}}
    table = compare({"a": nuts, "b": other, "c": swapped, "L": small_fits["laplace"]})
    assert list(table.columns) == ["a", "b [priors differ]", "c [priors differ]", "L"]
    assert "InverseGamma" in table.attrs["notes"]["c [priors differ]"][0]
    assert compare({"a": nuts, "a2": nuts}).columns.tolist() == ["a", "a2"]


def test_builder_refuses_a_table_that_breaks_the_schema(small_fits):
    from bayesglmm.results.result import standard_table

    class D:
        fixed_names = ["Intercept", "x"]
        component_names = ["g"]

    good = small_fits["laplace"].table
    with pytest.raises(ValueError, match="lacks rows"):
        standard_table(D, good.drop(index="var(g)"))
    with pytest.raises(ValueError, match="not in the schema"):
        standard_table(D, good.assign(extra=1.0))
    with pytest.raises(ValueError, match="not parameters"):
        standard_table(D, pd.concat([good, good.loc[["x"]].rename(index={"x": "y"})]))


# ------------------------------------------------------------------------------------------
# the one fit pipeline


#: small sizes, so that every method that applies to cbpp runs in seconds
SMALL = {
    "nuts": {"draws": 30, "tune": 30, "chains": 1, "random_seed": 1, "progressbar": False},
    "gibbs": {"draws": 30, "tune": 30, "chains": 1, "random_seed": 1, "progressbar": False},
    "mcem": {"mc_size": 50, "mc_max": 200, "max_iter": 5, "random_seed": 1},
    "mcnr": {"mc_size": 50, "mc_max": 200, "max_iter": 5, "random_seed": 1},
    "sml": {"mc_size": 200, "random_seed": 1},
    "ee": {"random_seed": 1},  # one factor: the expectation by quadrature, no n_sim
    "ee2": {"random_seed": 1},
    "kuk": {"n_sim": 4, "max_iter": 2, "random_seed": 1, "max_workers": 1},
}
CBPP = "cbind(incidence, size - incidence) ~ period + (1|herd)"


def _cbpp_model(gaussian=False):
    from bayesglmm import GLMM, datasets

    data = datasets.load("cbpp")
    if gaussian:
        data = data.assign(p=data["incidence"] / data["size"])
        return GLMM("p ~ period + (1|herd)", data, family="gaussian")
    return GLMM(CBPP, data)


def _applies_to_cbpp():
    from bayesglmm.methods import available_methods, get_record

    design = _cbpp_model().design
    return [m for m in available_methods() if get_record(m).applies(design) is None]


@pytest.mark.parametrize("method", _applies_to_cbpp() + ["lmm"])
def test_elapsed_is_the_wall_time_of_every_fit(method):
    """``elapsed`` (``timing["total"]``) is set once by ``GLMM.fit`` for every method: finite,
    positive, at least each stage the method timed and at most the caller's clock."""
    import time
    import warnings

    model = _cbpp_model(gaussian=method == "lmm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        fit = model.fit(method=method, **SMALL.get(method, {}))
        wall = time.perf_counter() - start
    assert np.isfinite(fit.elapsed) and 0 < fit.elapsed <= wall
    stages = [v for k, v in fit.timing.items() if k != "total"]
    assert all(v <= fit.elapsed for v in stages)
    assert fit.model is model  # the declared link to the model
    assert fit.method == method and fit.info["options"] is not None


def test_the_model_link_is_not_pickled_or_saved(tmp_path):
    import pickle

    model = _cbpp_model()
    fit = model.fit(method="laplace")
    assert fit.model is model and "model" not in repr(fit)
    assert pickle.loads(pickle.dumps(fit)).model is None
    loaded = FitResult.load(fit.save(tmp_path / "fit.zip"))
    assert loaded.model is None
    assert loaded.vcov.kind == "model" and loaded.vcov.names == fit.vcov.names
    np.testing.assert_array_equal(loaded.vcov.matrix, fit.vcov.matrix)
    assert loaded.details == fit.details  # the typed details read back from the file


#: (method, formula, family, words of the reason): a design each record refuses
REFUSED = [
    ("lmm", CBPP, "binomial", "Gaussian models with the identity link"),
    ("laplace", "cbind(incidence, size - incidence) ~ period", "binomial", "random-effect term"),
    ("pql", "cbind(incidence, size - incidence) ~ period", "binomial", "random-effect term"),
    ("agq", CBPP.replace("(1|herd)", "(1|herd) + (1|period)"), "binomial", "crossed"),
    ("mbp", CBPP.replace("(1|herd)", "(1|herd) + (1|period)"), "binomial", "crossed"),
    ("mcem", "size ~ period + (1|herd)", "gaussian", "families binomial, poisson"),
    ("mcnr", "size ~ period + (1|herd)", "gaussian", "families binomial, poisson"),
    ("sml", "size ~ period + (1|herd)", "gaussian", "families binomial, poisson"),
    ("gee", CBPP.replace("(1|herd)", "(1|herd) + (1|period)"), "binomial", "one clustering"),
    ("gee", "size ~ period + (1|herd)", "negative_binomial", "got 'negative_binomial'"),
    ("ee", CBPP.replace("(1|herd)", "(period|herd)"), "binomial", "random intercepts only"),
    ("ee2", "size ~ period + (1|herd)", "gaussian", "binomial and Poisson"),
]


@pytest.mark.parametrize(("method", "formula", "family", "words"), REFUSED)
def test_each_record_refuses_what_its_method_cannot_fit(method, formula, family, words):
    """The record's reason comes before any work: GLMM.fit raises it (a MethodError) and
    compare keeps it as the method's note."""
    from bayesglmm import GLMM, MethodError, datasets
    from bayesglmm.methods import get_record

    model = GLMM(formula, datasets.load("cbpp"), family=family)
    reason = get_record(method).applies(model.design)
    assert reason is not None and words in reason
    with pytest.raises(MethodError) as caught:
        model.fit(method=method)
    assert str(caught.value) == reason
    from bayesglmm.analysis.comparison import plan_methods, run_plan

    fits, notes, _ = run_plan(model, plan_methods([method, method]), progressbar=False)
    assert not fits and set(notes.values()) == {" ".join(reason.split())}


def test_every_record_declares_what_it_applies_to():
    """NUTS takes every model and Gibbs every family but the beta-binomial (no conjugate or
    augmentation update for it); every other method names its requirements."""
    from bayesglmm.methods import available_methods, get_record, method_table

    table = method_table()
    assert list(table.columns) == ["method", "kind", "summary", "applies to", "options"]
    assert sorted(table["method"]) == available_methods() and len(table) == 15
    for m in available_methods():
        r = get_record(m)
        if r.kind == "bayesian":
            assert [q.text for q in r.requires] == (
                [] if m == "nuts" else ["not the beta-binomial family"]
            ), m
        else:
            assert r.requires, m


def test_a_file_saved_before_the_typed_details_still_loads(tmp_path):
    """Files without ``details_type``/``vcov_kind`` (GEE's covariances as a dict by kind):
    the typed details and the covariance are read from the keys those files have."""
    import json
    import zipfile

    model = _cbpp_model()
    gee = model.fit(method="gee")
    path = gee.save(tmp_path / "new.zip")
    with zipfile.ZipFile(path) as zf:
        payload = json.loads(zf.read("result.json"))
    det = payload["info"]["details"]
    for key in ("details_type", "vcov_kind", "vcov_others", "vcov_names"):
        det.pop(key, None)
    det["vcov_names"] = list(gee.vcov.names)
    det["vcov"] = {"robust": gee.vcov.matrix.tolist()} | {
        k: v.tolist() for k, v in gee.vcov.others.items()
    }
    old = tmp_path / "old.zip"
    with zipfile.ZipFile(old, "w") as zf:
        zf.writestr("result.json", json.dumps(payload))
    back = FitResult.load(old)
    assert back.vcov.kind == "robust" and set(back.vcov.others) == {"model", "bias_reduced"}
    np.testing.assert_array_equal(back.vcov.matrix, gee.vcov.matrix)
    assert back.details.corstr == "exchangeable" and back.details.n_clusters == 15
    assert back.report() == gee.report()
    np.testing.assert_allclose(
        back.predict(model=model, interval="confidence")["std_error"],
        gee.predict(interval="confidence")["std_error"],
        rtol=1e-12,
    )
