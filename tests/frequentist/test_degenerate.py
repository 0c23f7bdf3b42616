"""Degenerate data and fits: a variance at zero, a saddle at zero, complete separation,
responses constant within every group, all-zero responses, failed convergence. Each gives
a clear warning or error, never a silent estimate."""

import hashlib
import warnings

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, DataError, simulate
from bayesglmm.frequentist.assemble import (
    ConvergenceWarning,
    SeparationWarning,
    SingularFitWarning,
)

#: lme4 optimizes with bobyqa to FtolAbs 1e-5: its estimates agree with the optimum to ~1e-3
LME4_TOL = 1e-3


def csv_sha256(df: pd.DataFrame) -> str:
    """sha256 of the data as written for R: ``df.to_csv(path, index=False,
    float_format="%.17g")`` (17 digits: R reads back the same doubles). The R references
    below were computed from such a CSV; the pinned hash says the data are still those."""
    return hashlib.sha256(df.to_csv(index=False, float_format="%.17g").encode()).hexdigest()


def _binary_data():
    """bayesglmm.model.simulate: y ~ x + (1|g) (var 0.5) with a pure-noise factor h; written to
    CSV (x rounded to 4 digits) for the R reference."""
    rng = np.random.default_rng(1)
    n = 400
    df = pd.DataFrame(
        {
            "g": rng.integers(0, 20, n),
            "h": rng.integers(0, 10, n),
            "x": np.round(rng.normal(size=n), 4),
            "f": rng.choice(["a", "b", "c"], n),
        }
    )
    return simulate(
        "y ~ x + (1|g)",
        df,
        {"Intercept": 0.0, "x": 0.5},
        {"g": 0.5},
        family="binomial",
        random_seed=3,
    )


def _record(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = fn()
    return out, w


@pytest.mark.reference
def test_variance_at_zero_is_a_singular_fit_warning():
    """glmer(y ~ x + (1|g) + (1|h), binomial): fixef -0.1536586239 0.4304285490, var g
    1.126000605, var h 0, logLik -248.041244307, isSingular TRUE. Re-run (lme4 1.1-31):
    ``d <- read.csv("binary.csv"); d$g <- factor(d$g); d$h <- factor(d$h);
    glmer(y ~ x + (1|g) + (1|h), data = d, family = binomial)`` with binary.csv written by
    ``_binary_data().to_csv("binary.csv", index=False, float_format="%.17g")``."""
    data = _binary_data()
    assert csv_sha256(data) == "120315c4ceed5add845d24ada3813abf06711be63b7066e78a4de4a65e80218e"
    r, w = _record(lambda: GLMM("y ~ x + (1|g) + (1|h)", data).fit("laplace"))
    assert [type(x.message) for x in w] == [SingularFitWarning]
    assert "variance of h is zero" in str(w[0].message)
    assert r.convergence["singular"] and r.convergence["details"]["singular_components"]
    assert r.variance_components["h"] == 0.0
    assert r.variance_components["g"] == pytest.approx(1.126000605, abs=LME4_TOL)
    np.testing.assert_allclose(r.fixed_effects, [-0.1536586239, 0.4304285490], atol=LME4_TOL)
    assert r.loglik == pytest.approx(-248.041244307, abs=LME4_TOL)
    assert np.all(np.isfinite(r.fixed_effects_se))  # conditional on the zero variance
    assert "boundary (singular) fit" in r.report()


@pytest.mark.reference
def test_optimizer_escapes_the_saddle_at_zero():
    """The deviance is even in theta at 0, so its gradient vanishes there; here the
    quasi-Newton path lands on theta(a:b) = 0 although the optimum is interior. Reference:
    glmer(y ~ x + (1|a/b), poisson) on these data: var(a:b) 0.09084335299, var(a)
    0.49425879608, logLik -165.737068809 (we reach a slightly higher logLik). Re-run:
    ``sim.to_csv("saddle.csv", index=False, float_format="%.17g")``, then in R
    ``d <- read.csv("saddle.csv"); glmer(y ~ x + (1|a/b), data = d, family = poisson)``."""
    rng = np.random.default_rng(9)
    df = pd.DataFrame(
        [
            {"a": f"A{a}", "b": f"B{b}", "x": round(rng.normal(), 4)}
            for a in range(10)
            for b in range(3)
            for _ in range(4)
        ]
    )
    sim = simulate(
        "y ~ x + (1|a/b)",
        df,
        {"Intercept": 0.2, "x": 0.5},
        {"a": 0.5, "a:b": 0.3},
        family="poisson",
        random_seed=10,
    )
    assert csv_sha256(sim) == "b1fd1ddc6aa3197dda9b2d7e3a7cd87fd38162f3041ee7eade9df5eda143bd21"
    r, w = _record(lambda: GLMM("y ~ x + (1|a/b)", sim, family="poisson").fit("laplace"))
    assert w == []
    assert r.convergence["converged"] and not r.convergence["singular"]
    np.testing.assert_allclose(
        r.variance_components[["a", "a:b"]], [0.49425879608, 0.09084335299], atol=LME4_TOL
    )
    assert r.loglik >= -165.737068809 - 1e-6


def test_complete_separation_names_the_column():
    data = _binary_data()
    data.loc[data.f == "c", "y"] = 0  # level c of f: no successes
    r, w = _record(lambda: GLMM("y ~ x + f + (1|g)", data).fit("laplace"))
    sep = [x for x in w if issubclass(x.category, SeparationWarning)]
    assert len(sep) == 1 and "'f[c]'" in str(sep[0].message)
    assert r.fixed_effects["f[c]"] < -8


def test_responses_constant_within_groups_warn_that_the_variance_diverges():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": np.repeat(np.arange(12), 10), "x": rng.normal(size=120)})
    df["y"] = (df.g % 2).astype(int)
    r, w = _record(lambda: GLMM("y ~ x + (1|g)", df).fit("laplace"))
    msgs = [str(x.message) for x in w if issubclass(x.category, SeparationWarning)]
    assert len(msgs) == 1
    assert "variance of 'g' diverges" in msgs[0]
    assert "6 of 12 levels have all responses zero and 6 all at the maximum" in msgs[0]


def test_all_zero_group_is_estimable_and_all_zero_response_is_an_error():
    data = _binary_data()
    data.loc[data.g == 3, "y"] = 0
    r, w = _record(lambda: GLMM("y ~ x + (1|g)", data).fit("laplace"))
    assert w == []  # one all-zero group is ordinary data: its mode is pulled down, finitely
    modes = r.random_effects["1|g"]["Intercept"]
    assert np.isfinite(modes["3"]) and modes["3"] < modes.median()
    data["y"] = 0
    with pytest.raises(DataError, match="response 'y' has no successes"):
        GLMM("y ~ x + (1|g)", data).fit("laplace")
    with pytest.raises(DataError, match="no successes"):
        GLMM("y ~ x + (1|g)", data).fit("agq")


def test_failed_convergence_warns_with_diagnostics():
    """Diverging estimates (separation) also fail the convergence check: the Newton step
    left is large; the warning says so and the diagnostics are in result.convergence."""
    data = _binary_data()
    data.loc[data.f == "c", "y"] = 0
    r, w = _record(lambda: GLMM("y ~ x + f + (1|g)", data).fit("laplace"))
    conv = [str(x.message) for x in w if issubclass(x.category, ConvergenceWarning)]
    assert len(conv) == 1 and "did not converge" in conv[0] and "Newton step left" in conv[0]
    assert not r.converged
    assert r.convergence["details"]["max_newton_step"] > 1e-4
    assert "did not converge" in r.convergence["messages"][0]
    assert r.convergence["warnings"] and "did not converge" in " ".join(r.convergence["warnings"])
    assert set(r.convergence["details"]) >= {"optimizer_message", "evaluations", "gradient"}


def test_few_quasi_newton_iterations_are_finished_by_newton_steps():
    r = GLMM("y ~ x + (1|g)", _binary_data()).fit("laplace", max_iter=1)
    assert r.converged and r.convergence["iterations"] <= 2
    full = GLMM("y ~ x + (1|g)", _binary_data()).fit("laplace")
    np.testing.assert_allclose(r.fixed_effects, full.fixed_effects, atol=1e-6)
