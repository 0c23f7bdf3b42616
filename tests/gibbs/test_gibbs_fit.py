"""``GLMM.fit(method="gibbs")``: conjugate defaults, the choice of steps, the result (same
diagnostics as NUTS), reproducibility, and clear errors for updates that do not apply."""

import logging

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, MethodError, priors
from bayesglmm.bayes.gibbs.assign import conjugate_priors, plan_steps


def _frame(seed=0, n_groups=8, per_group=6):
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    df = pd.DataFrame(
        {
            "g": np.repeat([f"g{i}" for i in range(n_groups)], per_group),
            "x": np.round(rng.normal(size=n), 2),
        }
    )
    u = rng.normal(0, 0.7, n_groups)[np.repeat(np.arange(n_groups), per_group)]
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-(0.3 + df["x"] + u)))).astype(int)
    df["count"] = rng.poisson(np.exp(0.5 + 0.3 * df["x"] + u))
    return df


def _fit(m, **kw):
    opts = {
        "draws": 150,
        "tune": 50,
        "chains": 2,
        "cores": 1,
        "random_seed": 3,
        "progressbar": False,
    }
    return m.fit(method="gibbs", **{**opts, **kw})


def test_gibbs_fit_reports_like_nuts_and_is_reproducible(caplog):
    m = GLMM("y ~ x + (1|g)", _frame())
    with caplog.at_level(logging.WARNING, logger="bayesglmm.gibbs"):
        fit = _fit(m)
    assert "InverseGamma(alpha=1, beta=1)" in caplog.text
    assert fit.method == "gibbs"
    assert fit.info["conjugate_defaults"] == {"g": "InverseGamma(alpha=1, beta=1)"}
    assert fit.info["steps"] == {
        "Intercept": "polya_gamma",
        "x": "polya_gamma",
        "1|g": "polya_gamma",
        "1|g_var": "inverse_gamma",
    }
    assert fit.info["scale_moves"] == ["1|g_var"]
    assert list(fit.table.columns) == [
        "estimate",
        "std_error",
        "lower",
        "upper",
        "median",
        "r_hat",
        "ess_bulk",
        "ess_tail",
    ]
    assert set(fit.convergence) >= {"divergences", "max_r_hat", "min_ess_bulk", "messages"}
    assert list(fit.fixed_effects.index) == ["Intercept", "x"]
    assert list(fit.variance_components.index) == ["g"]
    assert fit.idata.log_likelihood["y"].shape == (2, 150, 48)
    again = _fit(m)
    np.testing.assert_array_equal(fit.idata.posterior["1|g"], again.idata.posterior["1|g"])
    other = _fit(m, random_seed=4)
    assert not np.array_equal(fit.idata.posterior["1|g"], other.idata.posterior["1|g"])


def test_user_priors_are_kept_and_get_nuts():
    m = GLMM("y ~ x + (1|g)", _frame(), priors={"g": priors.HalfNormal(1.0)})
    new, replaced = conjugate_priors(m.design, m.priors)
    assert replaced == {} and new.random_sd["1|g"][0] == priors.HalfNormal(1.0)
    fit = _fit(m, draws=40, tune=40)
    assert fit.info["steps"]["1|g_sigma"] == "nuts"
    assert any("1|g_sigma: no inverse_gamma update" in n for n in fit.info["step_notes"])
    assert fit.info["steps"]["1|g"] == "polya_gamma"


def test_correlated_terms_get_an_inverse_wishart_default():
    m = GLMM("y ~ x + (1 + x|g)", _frame())
    new, replaced = conjugate_priors(m.design, m.priors)
    assert replaced == {"1+x|g": "InverseWishart(nu=k+1, psi=2)"}
    fit = _fit(m, draws=60, tune=20)
    assert fit.info["steps"]["1+x|g_chol"] == "inverse_wishart"
    assert list(fit.re_correlations.index) == ["g|Intercept,x"]
    assert -1 < fit.re_correlations.iloc[0] < 1


def test_poisson_plan_uses_level_metropolis():
    m = GLMM("count ~ x + (1|g)", _frame(), family="poisson")
    ps, _ = conjugate_priors(m.design, m.priors)
    from bayesglmm.bayes.builder import build_pymc_model

    model = build_pymc_model(m.design, ps, "centered")
    plan = plan_steps(m.design, ps, model)
    assert plan.kinds == {
        "Intercept": "nuts",
        "x": "nuts",
        "1|g_var": "inverse_gamma",
        "1|g": "metropolis",
    }
    plan = plan_steps(m.design, ps, model, nuts_fallback=False)
    assert plan.kinds["Intercept"] == plan.kinds["x"] == "metropolis"
    fit = _fit(m, nuts_fallback=False, draws=60, tune=60)
    assert set(fit.info["steps"].values()) == {"metropolis", "inverse_gamma"}
    rates = [v for v in fit.idata.sample_stats.data_vars if "accept_rate" in v]
    assert rates


def test_requested_updates_that_do_not_apply_are_refused():
    df = _frame()
    pois = GLMM("count ~ x + (1|g)", df, family="poisson")
    with pytest.raises(
        MethodError,
        match="'1\\|g'.*polya_gamma needs a binomial response "
        "with logit link; the model is poisson/log",
    ):
        _fit(pois, steps={"1|g": "polya_gamma"})
    sd = GLMM("y ~ x + (1|g)", df, priors={"g": priors.HalfNormal(1.0)})
    with pytest.raises(MethodError, match="'1\\|g_sigma'.*HalfNormal prior; the inverse-gamma"):
        _fit(sd, steps={"1|g_sigma": "inverse_gamma"})
    lkj = GLMM("y ~ x + (1 + x|g)", df, priors={"g": priors.LKJ(2.0)})
    with pytest.raises(MethodError, match="'1\\+x\\|g_chol'.*LKJ prior on the correlations"):
        _fit(lkj, steps={"1+x|g_chol": "inverse_wishart"})
    t_prior = GLMM("y ~ x + (1|g)", df, priors={"x": priors.StudentT(3, 0, 1)})
    with pytest.raises(MethodError, match="'x'.*StudentT.*Normal \\(or Flat\\) prior"):
        _fit(t_prior, steps={"x": "polya_gamma"})
    with pytest.raises(MethodError, match="'1\\|g_sigma' is not a free variable.*1\\|g_var"):
        _fit(GLMM("y ~ x + (1|g)", df), steps={"1|g_sigma": "inverse_gamma"})
    with pytest.raises(MethodError, match="choose one of"):
        _fit(GLMM("y ~ x + (1|g)", df), steps={"1|g": "gibbs"})
