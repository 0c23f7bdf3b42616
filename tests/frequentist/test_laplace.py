"""Laplace (method="laplace") against lme4 and glmmTMB.

References: ../shared/data/README.md (R 4.2.2, lme4 1.1-31, glmmTMB 1.1.5), lme4's own tests
(tests/testthat/test-glmer.R), and values computed for these tests with the same R and
packages (Debian packages r-cran-lme4, r-cran-glmmtmb); each test quotes its R call.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, FitResult, MethodError, available_methods, simulate

#: agreement required with R: estimates to 1e-4, log-likelihood to 1e-3 (salamander); lme4's
#: own cbpp values to 5e-4; the benchmark data to 1e-3 of glmmTMB
EST_TOL = 1e-4
LOGLIK_TOL = 1e-3
CBPP_TOL = 5e-4
TMB_TOL = 1e-3
#: lme4's Wald standard errors come from its own finite-difference Hessian (deriv12, step
#: 1e-4), accurate to about 1e-4; ours from differences of the exact gradient
SE_TOL = 2e-4

SALAMANDER = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def csv_sha256(df: pd.DataFrame) -> str:
    """sha256 of the data as written for R: ``df.to_csv(path, index=False,
    float_format="%.17g")`` (17 digits: R reads back the same doubles). The R references on
    simulated data were computed from such a CSV (``s <- read.csv(path)``); the pinned hash
    says the data are still those."""
    return hashlib.sha256(df.to_csv(index=False, float_format="%.17g").encode()).hexdigest()


@pytest.fixture(scope="module")
def salamander_fit(salamander):
    return GLMM(SALAMANDER, salamander).fit("laplace")


@pytest.mark.reference
def test_salamander_matches_glmer(salamander_fit):
    """glmer(Mate ~ 0 + Cross + (1|Female) + (1|Male), family = binomial, data = sal)
    (README; sal$Female, sal$Male as factors): fixed effects, variances, logLik; vcov from
    ``sqrt(diag(vcov(fit)))``: 0.3937468548 0.3746624454 0.4459857182 0.3911616635."""
    r = salamander_fit
    np.testing.assert_allclose(
        r.fixed_effects.to_numpy(), [1.008208, 0.306178, -1.895956, 0.990402], atol=EST_TOL
    )
    np.testing.assert_allclose(
        r.variance_components[["Female", "Male"]].to_numpy(), [1.174330, 1.040969], atol=EST_TOL
    )
    assert r.loglik == pytest.approx(-209.276606, abs=LOGLIK_TOL)
    np.testing.assert_allclose(
        r.fixed_effects_se.to_numpy(),
        [0.3937468548, 0.3746624454, 0.4459857182, 0.3911616635],
        atol=SE_TOL,
    )
    assert r.converged and not r.convergence["singular"]
    assert r.n_params == 6
    assert r.aic == pytest.approx(-2 * r.loglik + 12)
    assert r.bic == pytest.approx(-2 * r.loglik + np.log(360) * 6)
    t = r.table.loc["Cross[WR]"]
    assert t["lower"] == pytest.approx(t["estimate"] - 1.959964 * t["std_error"], rel=1e-6)
    assert t["p"] == pytest.approx(2.13e-5, rel=0.02)  # lme4 prints 2.13e-05


@pytest.mark.reference
def test_salamander_conditional_modes_and_variances(salamander_fit):
    """re <- ranef(fit, condVar = TRUE); head(re$Female, 3);
    head(attr(re$Female, "postVar")[1, 1, ], 3) (same for Male), levels 1, 2, 3."""
    re = salamander_fit.random_effects
    np.testing.assert_allclose(
        re["1|Female"].loc[["1", "2", "3"], "Intercept"],
        [0.4552812, 0.8590631, 0.3200711],
        atol=EST_TOL,
    )
    np.testing.assert_allclose(
        re["1|Female (conditional variance)"].loc[["1", "2", "3"], "Intercept"],
        [0.5767239, 0.7064379, 0.5978722],
        atol=EST_TOL,
    )
    np.testing.assert_allclose(
        re["1|Male"].loc[["1", "2", "3"], "Intercept"],
        [1.0196438, 0.0138353, 1.0551473],
        atol=EST_TOL,
    )
    np.testing.assert_allclose(
        re["1|Male (conditional variance)"].loc[["1", "2", "3"], "Intercept"],
        [0.5981534, 0.5943086, 0.5866775],
        atol=EST_TOL,
    )
    assert re["1|Female"].index.name == "Female" and len(re["1|Female"]) == 60


@pytest.mark.reference
def test_salamander_summer_matches_glmer(salamander):
    """Same call on subset(sal, Experiment == 1) (README, summer experiment)."""
    r = GLMM(SALAMANDER, salamander[salamander.Experiment == 1]).fit("laplace")
    np.testing.assert_allclose(
        r.fixed_effects.to_numpy(), [1.335253, 0.913132, -1.605127, 1.153992], atol=EST_TOL
    )
    np.testing.assert_allclose(r.variance_components.to_numpy(), [1.574883, 0.072104], atol=EST_TOL)
    assert r.loglik == pytest.approx(-66.440860, abs=LOGLIK_TOL)


@pytest.mark.reference
def test_cbpp_matches_lme4_test_values(cbpp):
    """lme4 tests/testthat/test-glmer.R:
    glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)."""
    r = GLMM("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp).fit("laplace")
    np.testing.assert_allclose(
        r.fixed_effects.to_numpy(),
        [-1.39854982537216, -0.992335519118859, -1.12867532780426, -1.58030423764517],
        atol=CBPP_TOL,
    )
    assert r.variance_components["herd"] == pytest.approx(0.41245527438386, abs=CBPP_TOL)
    assert -2 * r.loglik == pytest.approx(184.052674598026, abs=10 * CBPP_TOL)
    assert r.aic == pytest.approx(194.052674598026, abs=10 * CBPP_TOL)
    assert r.info["groups"] == {"herd": 15}


@pytest.mark.reference
def test_mouse_litters_matches_glmer(mouse_litters):
    """glmer(cbind(dead, survived) ~ 1 + (1 | litter), binomial) (README)."""
    r = GLMM("cbind(dead, survived) ~ 1 + (1|litter)", mouse_litters).fit("laplace")
    assert r.fixed_effects["Intercept"] == pytest.approx(-2.65006, abs=1e-3)
    assert r.variance_components["litter"] == pytest.approx(0.8398331, abs=1e-3)
    assert r.loglik == pytest.approx(-772.5212, abs=1e-3)


@pytest.mark.reference
def test_correlated_random_slope_matches_glmer():
    """A vector term with a correlation. Data: bayesglmm.simulate (seeds 11/12 below),
    written to CSV and fitted in R:
    glmer(y ~ x + (1 + x | g), data = s, family = poisson,
          control = glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-9)))
    fixef 0.9423211293 0.1768939988; VarCorr: 0.4758563589, 0.1983870513, cor 0.7635962093;
    logLik -1193.88411664; theta 0.6898234259 0.3401108016 0.2875964081."""
    rng = np.random.default_rng(11)
    n = 600
    df = pd.DataFrame(
        {"g": [f"g{j:02d}" for j in rng.integers(0, 30, n)], "x": np.round(rng.normal(size=n), 3)}
    )
    s = simulate(
        "y ~ x + (1+x|g)",
        df,
        {"Intercept": 1.0, "x": 0.3},
        {"g|Intercept": 0.4, "g|x": 0.2},
        correlations={"g|Intercept,x": 0.5},
        family="poisson",
        random_seed=12,
    )
    assert int(s.y.sum()) == 2210  # the data R fitted
    assert csv_sha256(s) == "a5cb4c7ef87da2f7c7e4eb436cd5815b403715c40de34e319424ef4a6eb5bc89"
    r = GLMM("y ~ x + (1 + x|g)", s, family="poisson").fit("laplace")
    np.testing.assert_allclose(r.fixed_effects.to_numpy(), [0.9423211, 0.1768940], atol=EST_TOL)
    np.testing.assert_allclose(
        r.variance_components.to_numpy(), [0.4758564, 0.1983871], atol=EST_TOL
    )
    assert r.re_correlations["g|Intercept,x"] == pytest.approx(0.7635962, abs=EST_TOL)
    assert r.loglik == pytest.approx(-1193.884117, abs=LOGLIK_TOL)
    np.testing.assert_allclose(r.info["theta"], [0.6898234, 0.3401108, 0.2875964], atol=EST_TOL)


def _nb_gauss_data(family):
    """bayesglmm.model.simulate on 400 rows, 25 groups (seeds 21/22/23); written to CSV for R."""
    rng = np.random.default_rng(21)
    n = 400
    df = pd.DataFrame(
        {"g": [f"g{j:02d}" for j in rng.integers(0, 25, n)], "x": np.round(rng.normal(size=n), 4)}
    )
    if family == "negative_binomial":
        return simulate(
            "y ~ x + (1|g)",
            df,
            {"Intercept": 1.0, "x": 0.5},
            {"g": 0.3},
            family=family,
            dispersion=2.5,
            random_seed=22,
        )
    s = simulate(
        "y ~ x + (1|g)",
        df,
        {"Intercept": 1.0, "x": 0.5},
        {"g": 0.3},
        family="gaussian",
        dispersion=0.8,
        random_seed=23,
    )
    s["y"] = s["y"].round(4)
    return s


@pytest.mark.reference
def test_negative_binomial_matches_glmer_nb_and_glmmtmb():
    """Fisher curvature (default) as lme4: glmer.nb(y ~ x + (1|g), data = s):
    fixef 0.8832690890 0.4380801996; var 0.4031478116; theta 2.29198096; logLik
    -846.222553794 (glmer.nb's outer loop over theta stops early: we reach 3e-4 higher).
    Observed curvature as glmmTMB: glmmTMB(y ~ x + (1|g), s, family = nbinom2):
    0.8960090737 0.4402730320; var 0.4041096675; sigma 2.292303268; logLik -846.242731454;
    std. errors 0.13724634916 0.05152486866."""
    s = _nb_gauss_data("negative_binomial")
    assert csv_sha256(s) == "0b9263cb29b925e15fb47341395a19ae415a99caf88767a6165c8f08cfbbdd59"
    m = GLMM("y ~ x + (1|g)", s, family="negative_binomial")
    r = m.fit("laplace")
    np.testing.assert_allclose(r.fixed_effects, [0.8832690890, 0.4380801996], atol=EST_TOL)
    assert r.variance_components["g"] == pytest.approx(0.4031478116, abs=EST_TOL)
    assert r.dispersion["alpha"] == pytest.approx(2.29198096, abs=EST_TOL)
    assert -846.222553794 <= r.loglik < -846.222553794 + LOGLIK_TOL
    o = m.fit("laplace", curvature="observed")
    np.testing.assert_allclose(o.fixed_effects, [0.8960090737, 0.4402730320], atol=EST_TOL)
    assert o.variance_components["g"] == pytest.approx(0.4041096675, abs=EST_TOL)
    assert o.dispersion["alpha"] == pytest.approx(2.292303268, abs=EST_TOL)
    assert o.loglik == pytest.approx(-846.242731454, abs=LOGLIK_TOL)
    np.testing.assert_allclose(o.fixed_effects_se, [0.13724634916, 0.05152486866], atol=SE_TOL)


@pytest.mark.reference
def test_gaussian_is_exact_maximum_likelihood_as_lmer():
    """lmer(y ~ x + (1|g), data = s2, REML = FALSE): fixef 0.8981149716 0.5379074581;
    var g 0.1246686084, residual sd 0.8294423163; logLik -509.455603559; std. errors
    0.08271733508 0.04341969165."""
    s2 = _nb_gauss_data("gaussian")
    assert csv_sha256(s2) == "f47a30a38914adce47f815757b09cc56a7e60b344eb6003f943a4104dd30d392"
    r = GLMM("y ~ x + (1|g)", s2, family="gaussian").fit("laplace")
    np.testing.assert_allclose(r.fixed_effects, [0.8981149716, 0.5379074581], atol=EST_TOL)
    assert r.variance_components["g"] == pytest.approx(0.1246686084, abs=EST_TOL)
    assert r.dispersion["sigma"] == pytest.approx(0.8294423163, abs=EST_TOL)
    assert r.loglik == pytest.approx(-509.455603559, abs=LOGLIK_TOL)
    np.testing.assert_allclose(r.fixed_effects_se, [0.08271733508, 0.04341969165], atol=SE_TOL)


@pytest.mark.reference
def test_probit_link_matches_glmmtmb_and_lme4(salamander):
    """Observed curvature: glmmTMB(Mate ~ 0 + Cross + (1|Female) + (1|Male), sal,
    family = binomial(link = "probit")): 0.5950997308 0.1828824307 -1.1252231173
    0.5836824505; variances 0.4464143783 0.3867436893; logLik -208.111820606.
    Fisher curvature: glmer(..., family = binomial(link = "probit")): 0.6006123080
    0.1820121643 -1.1300229314 0.5917008846; variances 0.3913838047 0.3321775419; logLik
    -210.107253289. At lme4's own estimates our Fisher-Laplace log-likelihood is -210.10489,
    2.4e-3 above what lme4 reports: lme4 stops its (linearly converging) Fisher-scoring
    PIRLS early for non-canonical links, so its criterion is slightly off; we compare with
    lme4 to 2e-3 and require our optimum to be at least as high."""
    m = GLMM(SALAMANDER, salamander, link="probit")
    o = m.fit("laplace", curvature="observed")
    np.testing.assert_allclose(
        o.fixed_effects, [0.5950997308, 0.1828824307, -1.1252231173, 0.5836824505], atol=EST_TOL
    )
    np.testing.assert_allclose(o.variance_components, [0.4464143783, 0.3867436893], atol=EST_TOL)
    assert o.loglik == pytest.approx(-208.111820606, abs=LOGLIK_TOL)
    f = m.fit("laplace")
    np.testing.assert_allclose(
        f.fixed_effects, [0.6006123080, 0.1820121643, -1.1300229314, 0.5917008846], atol=2e-3
    )
    np.testing.assert_allclose(f.variance_components, [0.3913838047, 0.3321775419], atol=2e-3)
    assert f.loglik >= -210.107253289


@pytest.mark.reference
@pytest.mark.slow
def test_crossed_benchmark_matches_glmmtmb():
    """benchmarks/crossed_data.make_crossed() (10,000 rows, 1,000 x 1,000 levels) written to
    CSV and fitted once in R (glmmTMB 1.1.5):
    glmmTMB(y ~ x + (1|a) + (1|b), data = d, family = binomial)
    fixef -0.4103663240 0.9491847978; variances a 0.4366258148, b 0.3603354638;
    logLik -6533.15176278; std. errors 0.04332195921 0.04741993347."""
    sys.path.insert(0, str(BENCH))
    try:
        from crossed_data import FORMULA, make_crossed
    finally:
        sys.path.remove(str(BENCH))
    d = make_crossed()
    assert csv_sha256(d) == "c205b106df9cb65e566ac59d6d2b8c3e7e4404bc2f0f7c11fdebb1827c643525"
    r = GLMM(FORMULA, d).fit("laplace")
    np.testing.assert_allclose(
        r.fixed_effects.to_numpy(), [-0.4103663240, 0.9491847978], atol=TMB_TOL
    )
    np.testing.assert_allclose(
        r.variance_components.to_numpy(), [0.4366258148, 0.3603354638], atol=TMB_TOL
    )
    assert r.loglik == pytest.approx(-6533.15176278, abs=TMB_TOL)
    np.testing.assert_allclose(
        r.fixed_effects_se.to_numpy(), [0.04332195921, 0.04741993347], rtol=1e-3
    )


def test_registered_and_bad_options(salamander):
    assert {"laplace", "agq"} <= set(available_methods())
    m = GLMM(SALAMANDER, salamander)
    with pytest.raises(MethodError, match="unknown option.*n_quad"):
        m.fit("laplace", n_quad=3)
    with pytest.raises(MethodError, match="start has 2 values; expected 6"):
        m.fit("laplace", start=[1.0, 1.0])
    with pytest.raises(MethodError, match="at least one random-effect term"):
        GLMM("Mate ~ 0 + Cross", salamander).fit("laplace")


def test_start_values_and_save_roundtrip(salamander, tmp_path, salamander_fit):
    m = GLMM(SALAMANDER, salamander)
    r = m.fit(
        "laplace",
        start={
            "variance_components": {"Female": 1.0, "Male": 1.0},
            "fixed_effects": {"Cross[RR]": 1, "Cross[RW]": 0, "Cross[WR]": -2, "Cross[WW]": 1},
        },
    )
    np.testing.assert_allclose(r.fixed_effects, salamander_fit.fixed_effects, atol=1e-6)
    back = FitResult.load(r.save(tmp_path / "fit.zip"))
    assert back.loglik == pytest.approx(r.loglik)
    pd.testing.assert_frame_equal(
        back.random_effects["1|Male"], r.random_effects["1|Male"], check_index_type=False
    )
    assert back.convergence["converged"] is True


def test_frequentist_modules_do_not_import_pymc():
    code = (
        "import sys, bayesglmm.frequentist.laplace, bayesglmm.frequentist.agq, "
        "bayesglmm.frequentist.intervals, bayesglmm.report; "
        "assert 'pymc' not in sys.modules and 'pytensor' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
