"""Monte Carlo EM, MCNR and simulated ML (bayesglmm.frequentist.montecarlo).

Reference values (quoted in /work/shared/data/README.md):

- salamander, ``Mate ~ 0 + Cross + (1|Female) + (1|Male)``: Booth & Hobert (1999), MCEM
  estimates 1.03, 0.32, -1.95, 0.99, variances 1.40, 1.25; the mcemGLM vignette's Louis
  standard errors 0.419, 0.397, 0.481, 0.425 (``mcemGLM::mcemGLMM(Mate ~ 0 + Cross,
  random = list(~ 0 + Female, ~ 0 + Male), family = "bernoulli", vcDist = "normal")``).
- cbpp, ``cbind(incidence, size - incidence) ~ period + (1|herd)``: R 4.2.2, lme4 1.1-31,
  ``glmer(..., family = binomial, nAGQ = 25)``: -1.3992, -0.9914, -1.1278, -1.5795; herd
  variance 0.4193.
"""

from __future__ import annotations

import numpy as np
import pytest

import bayesglmm as bg
from bayesglmm.errors import MethodError, OptionError
from bayesglmm.frequentist.montecarlo import history
from bayesglmm.frequentist.montecarlo.complete import CompleteData, Sample

SALAMANDER_FORMULA = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
CBPP_FORMULA = "cbind(incidence, size - incidence) ~ period + (1|herd)"
#: published salamander estimates (bayesglmm/data/README.md): Booth & Hobert (1999) MCEM,
#: the mcemGLM vignette's Louis standard errors; cbpp glmer(nAGQ = 25) in R 4.2.2, lme4 1.1-31
BOOTH_HOBERT_FIXED = np.array([1.03, 0.32, -1.95, 0.99])
BOOTH_HOBERT_VAR = np.array([1.40, 1.25])
MCEMGLM_SE = np.array([0.419, 0.397, 0.481, 0.425])
AGQ25_FIXED = np.array([-1.3992, -0.9914, -1.1278, -1.5795])
AGQ25_VAR = 0.4193
#: agreement required with the published salamander Monte Carlo ML estimates (Booth & Hobert
#: 1999; NIMBLE's ascent MCEM): 0.05 on the Cross effects, 0.15 on the variances
FIXED_TOL, VAR_TOL = 0.05, 0.15
#: Louis standard errors are themselves Monte Carlo estimates (final effective size about
#: 2000); 0.06 is about 15 % of the SEs, several times their Monte Carlo error
SE_TOL = 0.06
#: agreement with AGQ(25) in reported Monte Carlo standard errors: 4 of them (a two-sided
#: false-failure rate of 6e-5 per parameter if the mcse were exact), plus 2e-3 for the
#: four-decimal rounding of the reference and for the approximate mcse itself
N_MCSE, ABS_EXTRA = 4.0, 2e-3


@pytest.fixture(scope="module")
def salamander():
    return bg.GLMM(SALAMANDER_FORMULA, bg.datasets.load("salamander"), family="binomial")


@pytest.fixture(scope="module")
def cbpp():
    return bg.GLMM(CBPP_FORMULA, bg.datasets.load("cbpp"), family="binomial")


# ------------------------------------------------------------------------------ fast


def test_bad_options_are_refused_before_any_work(cbpp):
    with pytest.raises(OptionError, match="e_step"):
        cbpp.fit(method="mcem", e_step="slice")
    with pytest.raises(OptionError, match="mc_rule"):
        cbpp.fit(method="mcem", mc_rule="fixed")
    with pytest.raises(OptionError, match="mc_rule"):  # MCNR has its own rule
        cbpp.fit(method="mcnr", mc_rule="ascent")


def test_family_with_dispersion_is_refused():
    rng = np.random.default_rng(0)
    import pandas as pd

    df = pd.DataFrame({"y": rng.normal(size=40), "g": np.repeat(list("abcdefgh"), 5)})
    model = bg.GLMM("y ~ 1 + (1|g)", df, family="gaussian")
    with pytest.raises(MethodError, match="gaussian"):
        model.fit(method="mcem")


def test_rejection_refuses_crossed_salamander_at_once(salamander):
    """120 crossed effects: acceptance rate L/tau about 1e-50; refused, not a hang."""
    with pytest.raises(MethodError, match="infeasible"):
        salamander.fit(method="mcem", e_step="rejection", random_seed=1)


def test_scores_match_differences_of_the_complete_loglik(cbpp):
    mc = CompleteData(cbpp.design)
    rng = np.random.default_rng(3)
    B = rng.normal(scale=0.6, size=(5, mc.q))
    sample = Sample(B, mc.Zb(B), np.full(5, 0.2))
    psi = np.array([-1.4, -1.0, -1.1, -1.6, 0.45])
    S, H = mc.scores(psi, sample)
    h = 1e-6
    for j in range(mc.d):
        e = np.zeros(mc.d)
        e[j] = h
        fd = (mc.complete_loglik(psi + e, sample) - mc.complete_loglik(psi - e, sample)) / (2 * h)
        np.testing.assert_allclose(S[:, j], fd, rtol=1e-5, atol=1e-5)
        S_p, _ = mc.scores(psi + e, sample)
        S_m, _ = mc.scores(psi - e, sample)
        np.testing.assert_allclose(sample.w @ (S_p - S_m) / (2 * h), H[:, j], rtol=1e-4, atol=1e-4)


def test_same_seed_same_fit_and_history(cbpp):
    kw = dict(e_step="importance", random_seed=7, max_iter=3, progressbar=False)
    a = cbpp.fit(method="mcem", **kw)
    b = cbpp.fit(method="mcem", **kw)
    np.testing.assert_array_equal(a.table["estimate"], b.table["estimate"])
    h = history(a)
    assert list(h.index) == [1, 2, 3] and {"m", "ess", "change"} <= set(h.columns)
    assert a.kind == "monte_carlo" and a.loglik is not None and a.aic is not None
    assert np.all(np.isfinite(a.table.loc[["Intercept", "var(herd)"], "mcse"]))
    assert a.info["details"]["loglik_mcse"] > 0


# ------------------------------------------------------------------------------ salamander


def _check_salamander(fit):
    est = fit.table["estimate"]
    fixed = est[["Cross[RR]", "Cross[RW]", "Cross[WR]", "Cross[WW]"]].to_numpy()
    var = est[["var(Female)", "var(Male)"]].to_numpy()
    assert np.max(np.abs(fixed - BOOTH_HOBERT_FIXED)) < FIXED_TOL, fixed
    assert np.max(np.abs(var - BOOTH_HOBERT_VAR)) < VAR_TOL, var
    assert np.all(fit.table["mcse"].iloc[:6] > 0)


@pytest.mark.slow
def test_salamander_mcem_importance_and_louis_se(salamander):
    fit = salamander.fit(method="mcem", e_step="importance", random_seed=1, progressbar=False)
    assert fit.converged
    _check_salamander(fit)
    se = fit.table["std_error"].iloc[:4].to_numpy()
    assert np.max(np.abs(se - MCEMGLM_SE)) < SE_TOL, se


def test_salamander_mcem_metropolis(salamander):
    fit = salamander.fit(method="mcem", e_step="mh", random_seed=2, progressbar=False)
    assert fit.converged
    _check_salamander(fit)
    se = fit.table["std_error"].iloc[:4].to_numpy()
    assert np.max(np.abs(se - MCEMGLM_SE)) < SE_TOL, se


@pytest.mark.slow
def test_salamander_mcem_ascent_rule(salamander):
    fit = salamander.fit(
        method="mcem", e_step="mh", mc_rule="ascent", random_seed=3, progressbar=False
    )
    assert fit.converged
    _check_salamander(fit)


# ------------------------------------------------------------------------------ cbpp vs AGQ


def _agrees_with_agq(fit):
    t = fit.table
    fixed = t["estimate"].iloc[:4].to_numpy()
    bound = N_MCSE * t["mcse"].iloc[:4].to_numpy() + ABS_EXTRA
    assert np.all(np.abs(fixed - AGQ25_FIXED) < bound), (fixed, bound)
    v, v_mcse = t.loc["var(herd)", "estimate"], t.loc["var(herd)", "mcse"]
    assert abs(v - AGQ25_VAR) < N_MCSE * v_mcse + ABS_EXTRA, (v, v_mcse)


@pytest.mark.parametrize("e_step", ["rejection", "importance", "mh"])
def test_cbpp_mcem_agrees_with_agq(cbpp, e_step):
    fit = cbpp.fit(
        method="mcem", e_step=e_step, mc_size=1000, tol=0.05, random_seed=4, progressbar=False
    )
    _agrees_with_agq(fit)


def test_cbpp_mcnr_agrees_with_agq(cbpp):
    fit = cbpp.fit(method="mcnr", mc_size=1000, tol=0.05, random_seed=5, progressbar=False)
    _agrees_with_agq(fit)
    assert set(history(fit)["step"]) <= {"newton", "em"}


def test_cbpp_sml_agrees_with_agq(cbpp):
    fit = cbpp.fit(method="sml", mc_size=5000, random_seed=6, progressbar=False)
    _agrees_with_agq(fit)
    assert fit.convergence["details"]["importance_ess"] > 1000
