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
