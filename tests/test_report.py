"""The lme4-like text summary (FitResult.report)."""

import numpy as np
import pandas as pd

from bayesglmm import GLMM, simulate


def test_salamander_report_reads_like_lme4(salamander):
    """Numbers as printed by summary(glmer(Mate ~ 0 + Cross + (1|Female) + (1|Male), ...)):
    AIC 430.6, BIC 453.9, logLik -209.3, deviance 418.6, df.resid 354; Female 1.174 1.084;
    Male 1.041 1.020; CrossWR -1.8960 0.4460 -4.251 2.13e-05 ***."""
    text = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander).fit("laplace").report()
    lines = text.splitlines()
    assert lines[0].startswith("Generalized linear mixed model fit by maximum likelihood")
    assert "(Laplace Approximation)" in lines[0]
    assert lines[1] == " Family: binomial  ( logit )"
    i = next(
        j
        for j, s in enumerate(lines)
        if s.split()[:5] == ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    )
    assert lines[i + 1].split() == ["430.6", "453.9", "-209.3", "418.6", "354"]
    assert any(s.split() == ["Female", "(Intercept)", "1.174", "1.084"] for s in lines)
    assert any(s.split() == ["Male", "(Intercept)", "1.041", "1.020"] for s in lines)
    assert "Number of obs: 360, groups:  Female, 60; Male, 60" in text
    wr = next(s for s in lines if s.startswith("Cross[WR]")).split()
    assert wr == ["Cross[WR]", "-1.8960", "0.4460", "-4.251", "2.13e-05", "***"]
    assert "Scaled residuals:" in text and "Signif. codes:" in text


def test_correlated_term_shows_corr_column_and_agq_title():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": rng.integers(0, 30, 600), "x": rng.normal(size=600)})
    s = simulate(
        "y ~ x + (1+x|g)",
        df,
        {"Intercept": 1.0, "x": 0.3},
        {"g|Intercept": 0.4, "g|x": 0.2},
        correlations={"g|Intercept,x": 0.5},
        family="poisson",
        random_seed=2,
    )
    r = GLMM("y ~ x + (1+x|g)", s, family="poisson").fit("agq", n_quad=5)
    text = r.report()
    assert "Adaptive Gauss-Hermite Quadrature, nAGQ = 5" in text.splitlines()[0]
    lines = text.splitlines()
    head = next(s for s in lines if s.strip().startswith("Groups"))
    assert head.split() == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    row = lines[lines.index(head) + 2].split()
    cor = r.re_correlations["g|Intercept,x"]
    assert row[0] == "x" and float(row[-1]) == round(cor, 2)


def test_gibbs_report_lists_its_step_kinds():
    """The sampler line names every kind of update the Gibbs fit used (Polya-Gamma for the
    effects, slice for the standard deviation here), read from its typed details."""
    import warnings

    from bayesglmm import GLMM, datasets

    data = datasets.load("cbpp")
    m = GLMM("cbind(incidence, size - incidence) ~ period + (1|herd)", data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit(method="gibbs", draws=30, tune=30, chains=1, random_seed=1, progressbar=False)
    kinds = sorted(set(fit.details.step_kinds.values()))
    assert kinds == ["polya_gamma", "slice"]
    line = next(x for x in fit.report().splitlines() if x.startswith("Sampler:"))
    assert line.startswith("Sampler: gibbs (polya_gamma, slice)"), line


def _hand_built(kind: str, details):
    """A result built by hand (as read from an old file): ``details`` a dict without a
    ``details_type`` tag, or a Details of another kind."""
    from bayesglmm import FitResult
    from bayesglmm.results.details import Details
    from bayesglmm.results.result import TABLE_COLUMNS

    table = pd.DataFrame(
        {
            "estimate": [0.5, 0.3],
            "std_error": [0.1, np.nan],
            "z": [5.0, np.nan],
            "p": [1e-6, np.nan],
            "mcse": [0.01, 0.02],
        },
        index=pd.Index(["Intercept", "var(g)"], name="parameter"),
    ).reindex(columns=list(TABLE_COLUMNS))
    info = {"kind": kind, "groups": {"g": 5}, "details": {}}
    if isinstance(details, Details):
        typed = details
    else:
        info["details"], typed = details, None
    return FitResult(
        method="m",
        formula="y ~ 1 + (1|g)",
        family="binomial",
        link="logit",
        fixed_effects=pd.Series({"Intercept": 0.5}),
        fixed_effects_se=pd.Series({"Intercept": 0.1}),
        variance_components=pd.Series({"g": 0.3}),
        loglik=-20.0,
        n_params=2,
        nobs=30,
        table=table,
        convergence={"iterations": 3, "messages": []},
        info=info,
        details=typed,
    )


def test_reports_read_the_declared_fields_of_their_kind():
    """A result's details are always its kind's class, also when built by hand or read from
    a file without the tag: the layouts read REML, the log-likelihood's standard errors and
    the sampler from those fields."""
    from bayesglmm.results.details import (
        Details,
        LikelihoodDetails,
        LmmDetails,
        MonteCarloDetails,
        SamplerDetails,
    )

    lmm = _hand_built("lmm", {"reml": True})
    assert isinstance(lmm.details, LmmDetails) and lmm.details.reml is True
    assert lmm.report().splitlines()[0] == "Linear mixed model fit by REML"
    ml = _hand_built("lmm", Details(title="by hand"))
    assert isinstance(ml.details, LmmDetails) and ml.details.title == "by hand"
    assert ml.report().splitlines()[0] == "Linear mixed model fit by maximum likelihood"

    lik = _hand_built("likelihood", {"loglik_se": 0.25})
    assert isinstance(lik.details, LikelihoodDetails) and lik.details.loglik_se == 0.25
    assert "logLik standard error 0.25" in lik.report()
    assert "standard error" not in _hand_built("likelihood", {}).report().split("Random")[0]

    mc = _hand_built("monte_carlo", {"loglik_mcse": 0.125})
    assert isinstance(mc.details, MonteCarloDetails) and mc.details.loglik_mcse == 0.125
    assert "Monte Carlo se 0.125" in mc.report()

    bayes = _hand_built("bayesian", Details(extra={"nuts_sampler": "compiled"}))
    assert isinstance(bayes.details, SamplerDetails)
    assert "Sampler: NUTS (bayesglmm's compiled density, nutpie)" in bayes.report()


def test_report_shows_the_tests_asked_for(cbpp):
    """report(tests=...) appends each test as it prints, refuses a test of another fit."""
    import pytest

    from bayesglmm.errors import OptionError
    from bayesglmm.inference.anova import anova
    from bayesglmm.inference.variance_tests import test_variance

    formula = "cbind(incidence, size - incidence) ~ period + (1|herd)"
    fit = GLMM(formula, cbpp).fit("laplace")
    lrt = test_variance(fit, "(1|herd)")
    small = GLMM("cbind(incidence, size - incidence) ~ 1 + (1|herd)", cbpp).fit("laplace")
    table = anova(small, fit)
    text = fit.report(tests=[lrt, table])
    assert text.startswith(fit.report())
    tail = text[len(fit.report()) :].splitlines()
    assert tail[1] == "Tests:"
    assert tail[2] == repr(lrt)
    assert tail[3:] == table.to_string().splitlines()
    assert fit.report(tests=lrt).endswith(repr(lrt))
    with pytest.raises(OptionError, match="tests another fit"):
        small.report(tests=[lrt])
    with pytest.raises(OptionError, match="not a test result"):
        fit.report(tests=[3.0])
    with pytest.raises(OptionError, match="empty"):
        fit.report(tests=[])
