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
