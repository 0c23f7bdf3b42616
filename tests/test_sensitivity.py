"""Prior sensitivity: power-scaling one fit, predicting refits, refitting.

Fits use the compiled NUTS path on the salamander data (McCullagh & Nelder 1989), 4 chains
x 1000 draws. Tolerances and their false-failure rates are stated beside each check.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesglmm as bg
from bayesglmm import priors as P
from bayesglmm.analysis.sensitivity import UnreliablePredictionWarning, predict_refit
from bayesglmm.analysis.sensitivity.powerscale import powerscaled_propriety
from bayesglmm.analysis.sensitivity.prior_ops import scale_variance_priors
from bayesglmm.analysis.sensitivity.prior_predictive import prior_predictive_check
from bayesglmm.errors import MethodError, OptionError, PriorError

FORMULA = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
VARS = ["var(Female)", "var(Male)"]
#: |refit - prediction| / combined Monte Carlo error: two-sided normal 0.05% per
#: comparison; 8 parameters -> family-wise false-failure rate below 0.4%
Z_LIMIT = 3.5


def _fit(data, priors=None, seed=1):
    model = bg.GLMM(FORMULA, data, priors=priors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model, model.fit(draws=1000, chains=4, random_seed=seed, progressbar=False)


@pytest.fixture(scope="module")
def default_fit(salamander):
    return _fit(salamander)


def test_powerscale_does_not_flag_default_priors(default_fit):
    """Default HalfNormal(2.5) sd priors: largest prior sensitivity 0.034-0.039 over seeds
    1-6 (sd 0.002), far below priorsense's 0.05; the likelihood dominates (0.8-0.93)."""
    _, fit = default_fit
    ps = bg.powerscale(fit)
    assert (ps.table["diagnosis"] == "none").all(), ps.table
    assert ps.table["prior"].max() < 0.05, ps.table
    assert (ps.table.loc[VARS, "likelihood"] > 0.3).all(), ps.table
    assert (ps.table[["khat_prior", "khat_likelihood"]] < 0.5).all().all()
    assert ps.propriety["posterior"].eq("proper").all()
    assert set(ps.priors) == {"Cross", "1|Female_sigma", "1|Male_sigma"}


@pytest.mark.slow
def test_powerscale_flags_too_strong_prior(salamander):
    """HalfNormal(0.1) on both sds: prior sensitivity 0.61-0.71 and likelihood 0.88-1.1
    over seeds 1-6; checked against 0.05 and 0.3."""
    strong = {"Female": P.HalfNormal(0.1), "Male": P.HalfNormal(0.1)}
    _, fit = _fit(salamander, strong, seed=3)
    ps = bg.powerscale(fit)
    for v in VARS + ["sd(Female)", "sd(Male)"]:
        assert ps.table.loc[v, "diagnosis"] == "prior-data conflict", ps.table
    assert (ps.table.loc[VARS, "prior"] > 0.3).all()
    fig = ps.plot(VARS)
    assert len(fig.axes) == 2
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_doubling_halfnormal_scale_is_powerscaling_by_a_quarter(default_fit):
    """HalfNormal(s)^alpha = HalfNormal(s / sqrt(alpha)): the same weights, exactly."""
    _, fit = default_fit
    sds = ["1|Female_sigma", "1|Male_sigma"]
    ps = bg.powerscale(fit, priors=sds, alphas=(0.25,))
    scaled = ps.scaled[(ps.scaled["component"] == "prior") & (ps.scaled["alpha"] == 0.25)]
    pred = predict_refit(fit, {"Female": P.HalfNormal(5.0), "Male": P.HalfNormal(5.0)})
    got = scaled.set_index("parameter").loc[pred.index, "median"]
    np.testing.assert_allclose(got.values, pred["median"].values, rtol=1e-9)


def test_arviz_psens_ignores_coords(default_fit):
    """Why powerscale builds its own InferenceData: ArviZ 0.23's psens drops coords=."""
    import arviz as az

    _, fit = default_fit
    full = az.psens(fit.idata, component="likelihood")
    sub = az.psens(fit.idata, component="likelihood", coords={"Cross_dim": ["RR"]})
    assert sub["Cross"].size == full["Cross"].size == 4


def test_prediction_refused_when_khat_is_high(default_fit):
    _, fit = default_fit
    with pytest.warns(UnreliablePredictionWarning, match="k-hat"):
        pred = predict_refit(fit, {"Female": P.HalfNormal(0.05)})
    assert pred["median"].isna().all() and (pred["khat"] > 0.7).all()
    assert not pred["reliable"].any()


@pytest.mark.slow
def test_refit_agrees_with_powerscaling_prediction(salamander, tmp_path):
    """Variance-prior scale doubled: the refit's medians agree with the importance-weighted
    prediction from the baseline draws within Z_LIMIT combined Monte Carlo errors."""
    model = bg.GLMM(FORMULA, salamander)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bg.sensitivity(model, scales=(2,), draws=1000, chains=4, max_workers=1)
    t = res.table
    alt = t[t["prior"] == "variance priors x2"].set_index("parameter")
    assert len(alt) == 8 and (alt["khat"] < 0.5).all(), alt
    assert (alt["z"].abs() < Z_LIMIT).all(), alt[["median", "predicted_median", "z"]]
    # the prediction's own error is a Monte Carlo error, not a blanket: below 0.1 sd
    base = t[t["prior"] == "baseline"].set_index("parameter")
    assert (alt["predicted_mcse"] < 0.1 * base["sd"]).all()
    assert np.isfinite(alt["shift"]).all()
    assert set(res.prior_predictive["prior"]) == {"baseline", "variance priors x2"}
    fig = res.plot(VARS)
    fig.savefig(tmp_path / "alternatives.png")
    assert (tmp_path / "alternatives.png").stat().st_size > 1000


def test_powerscaling_a_power_prior_crosses_the_propriety_boundary(cbpp):
    """PowerVariance(a) -> PowerVariance(alpha (a+1) - 1); for the cbpp herd variance the
    package's check needs a < 0: a = -0.1 crosses at alpha = 1/0.9."""
    f = "cbind(incidence, size - incidence) ~ period + (1|herd)"
    model = bg.GLMM(f, cbpp, priors={"herd": P.PowerVariance(-0.1)})
    frame, messages = powerscaled_propriety(model, (0.8, 1.1, 1.25, 2.0))
    verdict = frame.set_index("alpha")["posterior"]
    assert verdict[0.8] == verdict[1.0] == verdict[1.1] == "proper"
    assert verdict[1.25] == verdict[2.0] == "improper"
    assert any("crosses the propriety boundary" in m for m in messages)
    jeff = bg.GLMM(f, cbpp, priors={"herd": P.Jeffreys()})
    verdict = powerscaled_propriety(jeff, (0.5, 1.5))[0].set_index("alpha")["posterior"]
    assert verdict[1.0] == "improper" and verdict[0.5] == "proper" and verdict[1.5] == "improper"
    flat = bg.GLMM(f, cbpp, priors={"herd": P.HalfFlat()})
    assert any("flat priors" in m for m in powerscaled_propriety(flat, (2.0,))[1])


def test_prior_predictive_moves_with_the_variance_prior_scale(salamander):
    model = bg.GLMM(FORMULA, salamander)
    small = prior_predictive_check(model, scale_variance_priors(model.priors, 0.5), 300, 1)
    large = prior_predictive_check(model, scale_variance_priors(model.priors, 4.0), 300, 1)
    key = small["statistic"] == "sd of Female means"
    # sd of 20 Female means: medians ~0.2 (x0.5) vs ~0.4 (x4); 300 draws each
    assert float(large.loc[key, "median"].iloc[0]) > float(small.loc[key, "median"].iloc[0])
    assert small["observed"].notna().all()
    improper = bg.GLMM(FORMULA, salamander, priors={"Female": P.HalfFlat()})
    ppc = prior_predictive_check(improper, improper.priors, 10, 1)
    assert ppc["median"].isna().all() and ppc["note"].str.contains("improper").all()


def test_bad_input_is_refused_before_fitting(salamander, cbpp):
    model = bg.GLMM(FORMULA, salamander)
    with pytest.raises(OptionError, match="alternatives"):
        bg.sensitivity(model)
    with pytest.raises(PriorError, match="'wide'.*Nope"):
        bg.sensitivity(model, priors={"wide": {"Nope": P.HalfNormal(5.0)}})
    with pytest.raises(PriorError, match="'jeffreys'.*improper"):
        bg.sensitivity(model, priors={"jeffreys": {"Female": P.Jeffreys()}})
    with pytest.raises(OptionError, match="draws"):
        bg.sensitivity(model, scales=(2,), draws=0)
    with pytest.raises(OptionError, match="scales"):
        bg.sensitivity(model, scales=(-1,))
    with pytest.raises(OptionError, match="method"):
        bg.sensitivity(model, scales=(2,), method="laplace")
    with pytest.raises(OptionError, match="target_acept"):
        bg.sensitivity(model, scales=(2,), target_acept=0.9)
    laplace = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp).fit(
        method="laplace"
    )
    with pytest.raises(MethodError, match="Bayesian"):
        bg.powerscale(laplace)


def test_powerscale_argument_errors(default_fit):
    _, fit = default_fit
    with pytest.raises(OptionError, match="alphas"):
        bg.powerscale(fit, alphas=(0.0, 1.0))
    with pytest.raises(OptionError, match="nope"):
        bg.powerscale(fit, priors=["nope"])
    with pytest.raises(OptionError, match="delta"):
        bg.powerscale(fit, delta=2.0)
