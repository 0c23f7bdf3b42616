"""The propriety check in the fitting pipeline: refusal before compilation, allow_improper,
the report kept with the result, no false alarm on the shipped models, improper priors in
the PyMC model, and bad improper priors refused."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, ImproperPosteriorError, PriorError, check_propriety
from bayesglmm import priors as P
from bayesglmm.analysis.specs import available_specs, load_spec
from bayesglmm.bayes.nuts import check_priors
from bayesglmm.bayes.posterior import SamplingWarning
from bayesglmm.propriety import ImproperDriftWarning, PosteriorProprietyWarning, ensure_proper

JEFFREYS_ONE_WAY = {"Intercept": P.Flat(), "g": P.Jeffreys(), "sigma": P.Jeffreys()}


@pytest.fixture(scope="module")
def one_way():
    """Six groups of four, a weak group effect (sd 0.5 against a residual sd of 1)."""
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(6), 4)
    return pd.DataFrame({"y": rng.normal(size=24) + 0.5 * rng.normal(size=6)[g], "g": g})


def test_improper_fit_is_refused_before_any_compilation(one_way, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the model was built or sampled")

    import pymc

    monkeypatch.setattr(GLMM, "build_pymc", boom)
    monkeypatch.setattr(pymc, "sample", boom)
    m = GLMM("y ~ 1 + (1|g)", one_way, family="gaussian", priors=JEFFREYS_ONE_WAY)
    with pytest.raises(ImproperPosteriorError, match="allow_improper=True") as err:
        m.fit(method="nuts", draws=10, tune=10, chains=1, progressbar=False)
    assert "1|g ~ Jeffreys()" in str(err.value) and "a = 0" in str(err.value)


def test_allow_improper_samples_and_the_drift_check_sees_it(one_way):
    """A tiny NUTS run on the improper one-way model: log var(g) falls to -300 and below."""
    m = GLMM("y ~ 1 + (1|g)", one_way, family="gaussian", priors=JEFFREYS_ONE_WAY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = m.fit(
            method="nuts",
            draws=100,
            tune=100,
            chains=1,
            cores=1,
            random_seed=1,
            progressbar=False,
            allow_improper=True,
        )
    kinds = {w.category for w in caught}
    assert PosteriorProprietyWarning in kinds and ImproperDriftWarning in kinds
    assert fit.info["details"]["propriety"]["proper"] is False
    assert "var(g)" in fit.convergence["details"]["improper_drift"]["flagged"]
    json.dumps(fit.info["details"]["propriety"])


def test_proper_fit_keeps_the_report_and_raises_no_alarm(one_way):
    m = GLMM("y ~ 1 + (1|g)", one_way, family="gaussian")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # 2 x 200 draws: ESS is low, fine
        warnings.simplefilter("error", PosteriorProprietyWarning)
        warnings.simplefilter("error", ImproperDriftWarning)
        fit = m.fit(
            method="nuts", draws=200, tune=200, chains=2, cores=1, random_seed=2, progressbar=False
        )
    assert fit.info["details"]["propriety"]["proper"] is True
    assert fit.convergence["details"]["improper_drift"]["flagged"] == {}
    assert set(fit.convergence["details"]["improper_drift"]["checked"]) == {"var(g)", "sigma^2"}


def test_check_priors_always_runs_and_is_the_entry_point(one_way):
    proper = GLMM("y ~ 1 + (1|g)", one_way, family="gaussian")
    assert check_priors(proper, allow_improper=False)["proper"] is True
    improper = GLMM("y ~ 1 + (1|g)", one_way, family="gaussian", priors=JEFFREYS_ONE_WAY)
    with pytest.raises(ImproperPosteriorError):
        check_priors(improper, allow_improper=False)
    with pytest.warns(PosteriorProprietyWarning):
        assert check_priors(improper, allow_improper=True)["proper"] is False


def _crossed(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = np.meshgrid(np.arange(5), np.arange(5))
    a, b = np.tile(a.ravel(), 2), np.tile(b.ravel(), 2)
    return pd.DataFrame({"a": a, "b": b, "y": rng.integers(0, 2, a.size)})


def test_undecided_models_warn():
    """Crossed binomial random intercepts (5 x 5, two replicates) with uniform priors on
    both sd's. With seed 1 one level of ``a`` has its successes and failures in different
    cells, so its bound involves the improper effects of ``b``: not decided. With seed 0
    every level has a cell with both, and the sufficient condition holds."""
    flat_sd = {"a": P.HalfFlat(), "b": P.HalfFlat()}
    m = GLMM("y ~ 1 + (1|a) + (1|b)", _crossed(1), priors=flat_sd)
    with pytest.warns(PosteriorProprietyWarning, match="could not decide"):
        out = ensure_proper(m)
    assert out["proper"] is None and out["verdict"] == "undecided"
    assert check_propriety(GLMM("y ~ 1 + (1|a) + (1|b)", _crossed(0), priors=flat_sd)).proper


def test_jointly_separated_crossed_effects_are_improper():
    """4 x 4 crossed binary data that u_a + v_b separates exactly: the likelihood does not
    decay when both variances grow together (rho = 0), and two uniform priors on sd's
    give a divergent joint tail, though each factor alone has mixed groups."""
    y = np.array([[1, 1, 0, 1], [1, 1, 1, 1], [1, 1, 0, 1], [1, 0, 0, 0]])
    a, b = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    df = pd.DataFrame({"a": a.ravel(), "b": b.ravel(), "y": y.ravel()})
    m = GLMM("y ~ 1 + (1|a) + (1|b)", df, priors={"a": P.HalfFlat(), "b": P.HalfFlat()})
    report = check_propriety(m)
    assert report.proper is False and "1|a + 1|b" in report.reason and "rho = 0" in report.reason


@pytest.mark.parametrize("name", available_specs())
def test_shipped_models_pass_with_default_priors(name, request):
    """No false alarm: every spec in models/ (default priors written out), and the same
    formula with the package defaults, is proper, and the pre-fit check stays silent. The
    defaults are proper, so that verdict is the shortcut; the real checks run with Flat
    priors on every fixed effect (none of these data sets is separated, so the posterior is
    proper: Chen & Shao 2001, with the moment bound of bayesglmm.propriety.fixed for the
    proper variance priors) and with 1/sigma^2 on every variance (always improper in a
    GLMM: Natarajan & Kass 2000)."""
    spec = load_spec(name)
    data = request.getfixturevalue(spec.dataset)
    default = GLMM(spec.formula, data, family=spec.family, link=spec.link)
    for model in (spec.build(data=data), default):
        assert not model.priors.improper
        with warnings.catch_warnings():
            warnings.simplefilter("error", PosteriorProprietyWarning)
            assert ensure_proper(model)["proper"] is True
    flat = {term: P.Flat() for term in default.priors.fixed}
    report = check_propriety(
        GLMM(spec.formula, data, family=spec.family, link=spec.link, priors=flat)
    )
    assert report.proper is True and not report.separation, report
    assert any("p_F" in e.condition and e.met for e in report.entries), report
    jeffreys = {t.name.split("|", 1)[1]: P.Jeffreys() for t in default.design.random}
    report = check_propriety(
        GLMM(spec.formula, data, family=spec.family, link=spec.link, priors=jeffreys)
    )
    assert report.proper is False and "Jeffreys" in report.reason, report


def test_one_factor_binomial_models_with_uniform_priors_on_the_sd(cbpp, seeds, mouse_litters):
    """HalfFlat (uniform on the sd, a = -1/2) on the random intercept of the bundled
    one-factor binomial models (cbpp, seeds, mouse litters), Normal fixed effects: proper,
    as most of the herds, plates and litters have mixed responses (tail argument of
    bayesglmm.propriety.variance: m + 2a > 0 with m >= 2 such groups); on the same models a
    1/sigma^2 prior is improper (Natarajan & Kass 2000). The salamander model (two crossed
    factors) is not decided by the sufficient conditions implemented, and is left out."""
    models = [
        ("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp, "herd"),
        ("cbind(germ, n - germ) ~ x1 * x2 + (1|plate)", seeds, "plate"),
        ("cbind(dead, survived) ~ 1 + (1|litter)", mouse_litters, "litter"),
    ]
    for formula, data, group in models:
        flat_sd = check_propriety(GLMM(formula, data, priors={group: P.HalfFlat()}))
        assert flat_sd.proper is True, flat_sd
        jeffreys = check_propriety(GLMM(formula, data, priors={group: P.Jeffreys()}))
        assert jeffreys.proper is False, jeffreys


def test_improper_priors_build_into_the_pymc_model(one_way):
    """Flat/HalfFlat are flat; PowerVariance(a) adds -(a+1) log var as a Potential."""
    m = GLMM(
        "y ~ 1 + (1|g)",
        one_way,
        family="gaussian",
        priors={"Intercept": P.Flat(), "g": P.PowerVariance(-0.3), "sigma": P.HalfFlat()},
    )
    pm_model = m.build_pymc()
    names = {v.name for v in pm_model.free_RVs}
    assert {"Intercept", "1|g_var", "sigma"} <= names
    logp = pm_model.compile_logp(vars=list(pm_model.potentials), jacobian=False)
    point = pm_model.initial_point()
    point["1|g_var_log__"] = np.log(2.0)
    assert np.isclose(logp(point), -(1.0 - 0.3) * np.log(2.0))
    prior_logp = pm_model.compile_logp(
        vars=[pm_model["Intercept"], pm_model["sigma"]], jacobian=False
    )
    assert prior_logp(point) == 0.0


def test_improper_priors_that_cannot_be_built_are_refused(one_way):
    flat_sigma = GLMM("y ~ 1 + (1|g)", one_way, family="gaussian", priors={"sigma": P.Flat()})
    with pytest.raises(PriorError, match="HalfFlat"):
        check_propriety(flat_sigma)
    # the improper limit of a proper family would slip past the improper flag: refused
    ig0 = GLMM("y ~ 1 + (1|g)", one_way, family="gaussian", priors={"g": P.InverseGamma(0.0, 0.0)})
    with pytest.raises(PriorError, match="Jeffreys"):
        ig0.fit(method="nuts", draws=10, tune=10, chains=1, progressbar=False)
    df = one_way.assign(x=np.tile([0.0, 1.0], 12))
    corr = GLMM("y ~ x + (1 + x|g)", df, family="gaussian", priors={"g": P.HalfFlat()})
    with pytest.raises(PriorError, match="correlated term"):
        corr.fit(method="nuts", draws=10, tune=10, chains=1, progressbar=False)
