"""Profile-likelihood and parametric-bootstrap intervals for variance components."""

import numpy as np
import pytest
from scipy import stats

from bayesglmm import GLMM, FitResult, MethodError
from bayesglmm.frequentist import blas_threads
from bayesglmm.frequentist.devfun import LaplaceDeviance
from bayesglmm.frequentist.intervals import _Profile, bootstrap_intervals, profile_intervals
from bayesglmm.frequentist.optimize import minimize_deviance
from bayesglmm.frequentist.pirls import PirlsProblem
from bayesglmm.results.predict import model_of

#: lme4's confint(method = "profile") interpolates the profile with splines; at its limits
#: our exact profile gives zeta = 1.9583 instead of 1.9600 (salamander, upper limit of
#: Female), 5.5e-4 in the standard deviation. Our own limits solve zeta = z to 1e-6.
LME4_PROFILE_TOL = 1e-3
SALAMANDER = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1|herd)"


@pytest.fixture(scope="module")
def salamander_fit(salamander):
    return GLMM(SALAMANDER, salamander).fit("laplace")


@pytest.mark.reference
def test_salamander_profile_matches_lme4(salamander_fit):
    """confint(glmer(Mate ~ 0 + Cross + (1|Female) + (1|Male), sal, binomial),
    parm = "theta_", method = "profile", oldNames = FALSE) (R 4.2.2, lme4 1.1-31):
    sd_(Intercept)|Female 0.61828004 1.6430614; sd_(Intercept)|Male 0.55727348 1.5665036."""
    p = profile_intervals(salamander_fit, progressbar=False)
    np.testing.assert_allclose(
        p.loc["sd(Female)", ["lower", "upper"]], [0.61828004, 1.6430614], atol=LME4_PROFILE_TOL
    )
    np.testing.assert_allclose(
        p.loc["sd(Male)", ["lower", "upper"]], [0.55727348, 1.5665036], atol=LME4_PROFILE_TOL
    )
    np.testing.assert_allclose(p.loc["var(Male)"], p.loc["sd(Male)"] ** 2)
    # our limits are where the signed root deviance equals the normal quantile
    with blas_threads(1):
        dv = LaplaceDeviance(PirlsProblem(model_of(salamander_fit).design))
        opt = minimize_deviance(dv, np.r_[1.0, 1.0, np.zeros(4)])
        prof = _Profile(dv, dv.cov.terms[0], 0)
        for s in p.loc["sd(Female)", ["lower", "upper"]]:
            f, _ = prof.minimize(s, prof.from_x(opt.x))
            assert np.sqrt(f - opt.fun) == pytest.approx(stats.norm.ppf(0.975), abs=1e-4)


@pytest.mark.reference
def test_cbpp_profile_matches_lme4(cbpp):
    """confint(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
    binomial), parm = "theta_", method = "profile"): sd_(Intercept)|herd 0.3460732 1.0999746."""
    p = profile_intervals(GLMM(CBPP, cbpp), progressbar=False)
    np.testing.assert_allclose(
        p.loc["sd(herd)", ["lower", "upper"]], [0.3460732, 1.0999746], atol=LME4_PROFILE_TOL
    )


@pytest.mark.reference
def test_profile_lower_limit_is_zero_when_zero_is_inside(seeds):
    """Seeds' plate variance is small (0.056 under AGQ): zero is within the 95% interval.
    confint(glmer(cbind(germ, n - germ) ~ x1 * x2 + (1 | plate), s, binomial),
    parm = "theta_", method = "profile", oldNames = FALSE) (R 4.2.2, lme4 1.1-31, on the
    packaged seeds.csv with plate a factor): sd_(Intercept)|plate 0 0.4815827859."""
    p = profile_intervals(
        GLMM("cbind(germ, n - germ) ~ x1 * x2 + (1|plate)", seeds), progressbar=False
    )
    assert p.loc["sd(plate)", "lower"] == 0.0
    assert p.loc["sd(plate)", "upper"] == pytest.approx(0.4815827859, abs=LME4_PROFILE_TOL)
    assert p.loc["sd(plate)", "upper"] > p.loc["sd(plate)", "estimate"] > 0


@pytest.mark.reference
def test_profile_of_a_correlated_term(salamander):
    """The second standard deviation of (1 + x|g) is profiled along its row of T. Data:
    as below (sha256 of ``s.to_csv(index=False, float_format="%.17g")`` pinned); R 4.2.2,
    lme4 1.1-31: ``d <- read.csv("s.csv"); d$g <- factor(d$g);
    f <- glmer(y ~ x + (1 + x | g), data = d, family = poisson);
    confint(f, parm = "theta_", method = "profile", oldNames = FALSE)``:
    sd_(Intercept)|g 0.45279176724 0.8475424893; sd_x|g 0.32005445047 0.5972364720
    (estimates 0.6061154457, 0.4280606270; cor 0.40980764; logLik -989.19898339)."""
    import hashlib

    from bayesglmm import simulate

    rng = np.random.default_rng(2)
    import pandas as pd

    df = pd.DataFrame({"g": rng.integers(0, 25, 500), "x": rng.normal(size=500)})
    s = simulate(
        "y ~ x + (1 + x|g)",
        df,
        {"Intercept": 1.0, "x": 0.2},
        {"g|Intercept": 0.3, "g|x": 0.2},
        correlations={"g|Intercept,x": 0.4},
        family="poisson",
        random_seed=3,
    )
    csv = s.to_csv(index=False, float_format="%.17g").encode()
    assert (
        hashlib.sha256(csv).hexdigest()
        == "aac3df5097821f7ac7994f5d573b267323671fa66436a33d6b852d8a42273b0d"
    )
    fit = GLMM("y ~ x + (1 + x|g)", s, family="poisson").fit("laplace")
    p = profile_intervals(fit, progressbar=False)
    lme4 = {"g|Intercept": [0.45279176724, 0.8475424893], "g|x": [0.32005445047, 0.5972364720]}
    for c in ["g|Intercept", "g|x"]:
        lo, est, hi = p.loc[f"sd({c})", ["lower", "estimate", "upper"]]
        assert 0 <= lo < est < hi
        assert est == pytest.approx(np.sqrt(fit.variance_components[c]), rel=1e-6)
        np.testing.assert_allclose([lo, hi], lme4[c], atol=LME4_PROFILE_TOL)


def test_bootstrap_reproducible_and_calibrated(cbpp):
    """Bootstrap SDs of the fixed effects against the Wald standard errors. With B = 60
    replicates the relative Monte Carlo error of an SD is 1/sqrt(2(B-1)) = 9%; the bound
    0.35 is 3.8 of those (false-failure rate below 1e-3 per parameter), and also allows
    for the Wald approximation itself on 56 rows."""
    fit = GLMM(CBPP, cbpp).fit("laplace")
    b1 = bootstrap_intervals(fit, n_boot=60, random_seed=5, progressbar=False)
    b2 = bootstrap_intervals(fit, n_boot=60, random_seed=5, progressbar=False)
    assert b1.equals(b2)
    assert b1.attrs["n_failed"] == 0 and len(b1.attrs["draws"]) == 60
    names = list(fit.fixed_effects.index)
    ratio = b1.loc[names, "boot_sd"] / fit.fixed_effects_se
    assert np.all(np.abs(ratio - 1) < 0.35), ratio
    # the replicates are centred on the estimates: 4 Monte Carlo SEs
    mc_se = b1.loc[names, "boot_sd"] / np.sqrt(60)
    assert np.all(np.abs(b1.loc[names, "boot_mean"] - fit.fixed_effects) < 4 * mc_se)
    assert (b1["lower"] <= b1["upper"]).all()
    assert b1.loc["var(herd)", "lower"] < fit.variance_components["herd"]


def test_interval_inputs(salamander_fit, tmp_path):
    with pytest.raises(MethodError, match="n_boot"):
        bootstrap_intervals(salamander_fit, n_boot=1)
    loaded = FitResult.load(salamander_fit.save(tmp_path / "r.zip"))
    with pytest.raises(MethodError, match="pass the GLMM"):
        profile_intervals(loaded)
