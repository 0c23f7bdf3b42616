"""PSIS-LOO, WAIC and ELPD comparison of Bayesian fits (bayesglmm.inference.loo)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesglmm as bg
from bayesglmm._arviz import import_arviz
from bayesglmm.errors import BayesGLMMError, MethodError
from bayesglmm.inference.loo import GROUP_LOO_KIND

# short chains on purpose: their R-hat/ESS warnings and ArviZ's Pareto-k/WAIC warnings are
# not what these tests check (the numbers are compared with ArviZ's on the same draws)
pytestmark = [
    pytest.mark.filterwarnings("ignore::bayesglmm.bayes.posterior.SamplingWarning"),
    pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto"),
    pytest.mark.filterwarnings("ignore:For one or more samples the posterior variance"),
]
SMALL = {"draws": 200, "tune": 200, "chains": 2, "cores": 1, "progressbar": False}


def _data(n: int = 200, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {"x": rng.normal(size=n), "g": np.repeat([f"g{i}" for i in range(20)], n // 20)}
    )
    return bg.simulate(
        "y ~ x + (1|g)",
        df,
        {"Intercept": 0.5, "x": 0.8},
        {"g": 0.25},
        family="poisson",
        random_seed=seed,
    )


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def right(data):
    return bg.GLMM("y ~ x + (1|g)", data, family="poisson").fit(random_seed=3, **SMALL)


@pytest.fixture(scope="module")
def wrong(data):
    return bg.GLMM("y ~ 1 + (1|g)", data, family="poisson").fit(random_seed=4, **SMALL)


def test_loo_is_arviz_loo_on_the_same_draws(right):
    az = import_arviz()
    ours = bg.loo(right, pointwise=True)
    theirs = az.loo(right.idata, pointwise=True)
    assert ours["elpd_loo"] == theirs["elpd_loo"]
    assert ours["se"] == theirs["se"]
    np.testing.assert_array_equal(ours.pareto_k.values, theirs.pareto_k.values)
    assert ours.pareto_k.size == right.nobs == 200


def test_loo_of_a_gibbs_fit_is_arviz_loo(data):
    az = import_arviz()
    fit = bg.GLMM("y ~ x + (1|g)", data, family="poisson").fit(
        method="gibbs", random_seed=3, **SMALL
    )
    ours, theirs = bg.loo(fit, pointwise=True), az.loo(fit.idata, pointwise=True)
    assert ours["elpd_loo"] == theirs["elpd_loo"]
    np.testing.assert_array_equal(ours.pareto_k.values, theirs.pareto_k.values)


def test_waic_is_arviz_waic(right):
    az = import_arviz()
    theirs = az.waic(right.idata, pointwise=True)
    assert bg.waic(right, pointwise=True)["elpd_waic"] == theirs["elpd_waic"]
    ours = bg.waic(right)  # labelled elpd_waic without pointwise too, and printable
    assert ours["elpd_waic"] == theirs["elpd_waic"] and ours["se"] == theirs["se"]
    assert "waic" in repr(ours)


def test_compare_models_ranks_the_right_model_first(right, wrong):
    table = bg.compare_models({"y ~ 1": wrong, "y ~ x": right})
    assert list(table.index) == ["y ~ x", "y ~ 1"]
    diff, dse = table.loc["y ~ 1", ["elpd_diff", "dse"]]
    assert diff > 4 * dse > 0
    waic_table = bg.compare_models({"y ~ 1": wrong, "y ~ x": right}, ic="waic")
    assert waic_table.index[0] == "y ~ x"


def test_conditional_group_loo_sums_the_rows_of_each_level(right):
    az = import_arviz()
    out = bg.loo(right, group="g", pointwise=True)
    assert out["loo_kind"] == GROUP_LOO_KIND and out["group"] == "g"
    assert out.pareto_k.size == 20
    assert "conditional leave-one-group-out over the levels of 'g'" in repr(out)
    assert "integrated leave-one-group-out is not available" in repr(out)
    # the same PSIS on the log-likelihood summed by hand over the 10 rows of each level
    ll = right.idata.log_likelihood["y"].values
    summed = ll.reshape(*ll.shape[:2], 20, 10).sum(axis=-1)  # rows are sorted by level
    by_hand = az.InferenceData(
        posterior=right.idata.posterior,
        log_likelihood=xr.Dataset({"y": (("chain", "draw", "level"), summed)}),
    )
    assert out["elpd_loo"] == pytest.approx(az.loo(by_hand)["elpd_loo"], rel=1e-12)
    with pytest.raises(MethodError, match="'Male'.*grouping factor"):
        bg.loo(right, group="Male")


def test_refuses_a_laplace_fit(data):
    fit = bg.GLMM("y ~ x + (1|g)", data, family="poisson").fit(method="laplace")
    for call in (bg.loo, bg.waic):
        with pytest.raises(MethodError, match="likelihood fit.*'laplace'.*nuts"):
            call(fit)


def test_refuses_a_fit_without_log_likelihood(data, right):
    fit = bg.GLMM("y ~ x + (1|g)", data, family="poisson").fit(
        random_seed=5, log_likelihood=False, **SMALL
    )
    with pytest.raises(MethodError, match="log_likelihood=True"):
        bg.loo(fit)
    with pytest.raises(MethodError, match="fit 'b'.*log_likelihood=True"):
        bg.compare_models({"a": right, "b": fit})


def test_compare_models_refuses_fits_of_different_data(right):
    fewer = _data(n=180, seed=1)
    other = bg.GLMM("y ~ x + (1|g)", fewer, family="poisson").fit(random_seed=6, **SMALL)
    with pytest.raises(BayesGLMMError, match="'a' and 'b'.*number of observations: 200 vs 180"):
        bg.compare_models({"a": right, "b": other})
    resampled = _data(seed=2)
    other = bg.GLMM("y ~ x + (1|g)", resampled, family="poisson").fit(random_seed=6, **SMALL)
    with pytest.raises(BayesGLMMError, match="'a' and 'b'.*observed values differ"):
        bg.compare_models({"a": right, "b": other})


def test_compare_models_refuses_a_bad_ic_and_a_single_fit(right):
    with pytest.raises(MethodError, match="ic='aic'"):
        bg.compare_models({"a": right, "b": right}, ic="aic")
    with pytest.raises(BayesGLMMError, match="fits must be a dict of at least two"):
        bg.compare_models({"a": right})
