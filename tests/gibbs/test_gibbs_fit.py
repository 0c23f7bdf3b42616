"""``GLMM.fit(method="gibbs")``: the model's own priors by default (conjugate ones only on
request, and recorded), the choice of steps, the result (same diagnostics as NUTS),
reproducibility, clear errors for updates that do not apply, and a correlated-slopes
posterior that must match NUTS within Monte Carlo error."""

import logging

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, MethodError, priors
from bayesglmm.bayes.gibbs.assign import conjugate_priors, plan_steps
from bayesglmm.errors import OptionError


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


def test_gibbs_fit_samples_the_default_priors_and_is_reproducible():
    m = GLMM("y ~ x + (1|g)", _frame())
    fit = _fit(m)
    assert fit.method == "gibbs"
    # the model's own priors (what NUTS samples), nothing swapped
    assert fit.info["prior_swap"] == {}
    assert fit.info["priors"] == {k: p.describe() for k, p in m.priors.all()}
    assert fit.info["priors"]["1|g"] == "HalfNormal(sigma=2.5)"
    assert fit.info["options"]["conjugate_priors"] is False
    assert fit.info["details"]["step_kinds"] == {
        "Intercept": "polya_gamma",
        "x": "polya_gamma",
        "1|g": "polya_gamma",
        "1|g_sigma": "slice",
    }
    assert fit.info["details"]["scale_moved"] == ["1|g_sigma"]
    assert list(fit.table.columns[:4]) == ["estimate", "std_error", "lower", "upper"]
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(fit.table.columns)
    assert {"divergences", "max_r_hat"} <= set(fit.convergence["details"])
    assert list(fit.fixed_effects.index) == ["Intercept", "x"]
    assert list(fit.variance_components.index) == ["g"]
    assert fit.idata.log_likelihood["y"].shape == (2, 150, 48)
    again = _fit(m)
    np.testing.assert_array_equal(fit.idata.posterior["1|g"], again.idata.posterior["1|g"])
    other = _fit(m, random_seed=4)
    assert not np.array_equal(fit.idata.posterior["1|g"], other.idata.posterior["1|g"])


def test_conjugate_priors_only_when_asked_and_recorded(caplog):
    m = GLMM("y ~ x + (1|g)", _frame())
    with caplog.at_level(logging.INFO, logger="bayesglmm.gibbs"):
        fit = _fit(m, conjugate_priors=True, draws=40, tune=20)
    assert "InverseGamma(alpha=1, beta=1)" in caplog.text
    assert fit.info["prior_swap"] == {"g": "InverseGamma(alpha=1, beta=1)"}
    assert fit.info["priors"]["1|g"] == "InverseGamma(alpha=1, beta=1)"
    assert fit.info["details"]["step_kinds"]["1|g_var"] == "inverse_gamma"


@pytest.mark.parametrize(
    "prior",
    [priors.HalfStudentT(3, 1.0), priors.HalfCauchy(1.0), priors.Exponential(1.0)],
    ids=lambda p: type(p).__name__,
)
def test_other_sd_priors_are_kept_and_slice_sampled(prior):
    m = GLMM("y ~ x + (1|g)", _frame(), priors={"g": prior})
    new, replaced = conjugate_priors(m.design, m.priors)
    assert replaced == {} and new.random_sd["1|g"][0] == prior
    with pytest.raises(OptionError, match="conjugate_priors.*same model"):
        _fit(m, draws=40, tune=40, conjugate_priors=True)  # user priors are never swapped
    fit = _fit(m, draws=40, tune=40)
    assert fit.info["prior_swap"] == {}
    assert fit.info["details"]["step_kinds"]["1|g_sigma"] == "slice"
    assert fit.info["details"]["step_kinds"]["1|g"] == "polya_gamma"


def test_improper_variance_prior_is_slice_sampled():
    # HalfFlat on the sd is proper here (random intercept, proper fixed effects);
    # PowerVariance puts its density in a pm.Potential, which the slice step includes
    for prior, var in ((priors.HalfFlat(), "1|g_sigma"), (priors.PowerVariance(-0.5), "1|g_var")):
        m = GLMM("y ~ x + (1|g)", _frame(), priors={"g": prior})
        fit = _fit(m, draws=30, tune=30)
        assert fit.info["details"]["step_kinds"][var] == "slice"
        assert var in fit.info["details"]["scale_moved"]


#: |mean_gibbs - mean_nuts| < Z * sqrt(mcse_gibbs^2 + mcse_nuts^2): z = 4 is a two-sided
#: level of 6.3e-5 per parameter, 3.2e-4 over the five compared (Bonferroni)
Z = 4.0


def _correlated_frame(seed=11, n_groups=12, per_group=8, trials=10):
    """Binomial counts with a random intercept and slope, sds (1, 0.8), correlation 0.6."""
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    g = np.repeat(np.arange(n_groups), per_group)
    x = np.round(rng.normal(size=n), 2)
    cov = np.array([[1.0, 0.48], [0.48, 0.64]])
    b = rng.multivariate_normal(np.zeros(2), cov, size=n_groups)
    eta = -0.3 + 0.5 * x + b[g, 0] + b[g, 1] * x
    y = rng.binomial(trials, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"g": [f"g{i}" for i in g], "x": x, "y": y, "f": trials - y})


@pytest.mark.slow
def test_correlated_slopes_with_lkj_prior_match_nuts():
    """Default priors on (1 + x | g): LKJ(1) correlations, half-normal sds. Gibbs has no
    conjugate update for the LKJ Cholesky factor and gives it NUTS within the compound
    step (said in info); the posterior means of the correlation, the variances and the
    fixed effects must match a NUTS fit of the same model within Monte Carlo error."""
    m = GLMM("cbind(y, f) ~ x + (1 + x|g)", _correlated_frame())
    gibbs = _fit(m, draws=1000, tune=500, random_seed=5, log_likelihood=False)
    steps = gibbs.info["details"]["step_kinds"]
    assert steps["1+x|g_chol"] == "nuts" and steps["1+x|g"] == "polya_gamma"
    notes = gibbs.info["details"]["step_notes"]
    assert any("1+x|g_chol: no inverse_wishart update" in n for n in notes)
    assert gibbs.info["prior_swap"] == {}
    nuts = m.fit(
        method="nuts",
        draws=1000,
        tune=500,
        chains=2,
        cores=1,
        random_seed=6,
        progressbar=False,
        log_likelihood=False,
    )
    names = ["Intercept", "x", "var(g|Intercept)", "var(g|x)", "cor(g|Intercept,x)"]
    for name in names:
        g, n = gibbs.table.loc[name], nuts.table.loc[name]
        bound = Z * np.hypot(g["mcse"], n["mcse"])
        print(f"{name}: gibbs {g['estimate']:.4f} nuts {n['estimate']:.4f} bound {bound:.4f}")
        assert abs(g["estimate"] - n["estimate"]) < bound, (name, g["estimate"], n["estimate"])
    # the data identify the correlation (true 0.6): the interval excludes strong negatives
    assert gibbs.table.loc["cor(g|Intercept,x)", "lower"] > -0.5


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
    assert set(fit.info["details"]["step_kinds"].values()) == {"metropolis", "slice"}
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
        _fit(GLMM("y ~ x + (1|g)", df), steps={"1|g_sigma": "inverse_gamma"}, conjugate_priors=True)
    with pytest.raises(MethodError, match="'x'.*slice.*not the standard deviation or variance"):
        _fit(GLMM("y ~ x + (1|g)", df), steps={"x": "slice"})
    with pytest.raises(MethodError, match="choose one of"):
        _fit(GLMM("y ~ x + (1|g)", df), steps={"1|g": "gibbs"})
