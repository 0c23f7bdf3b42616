"""Separated data under proper priors: every Bayesian fit warns, before sampling, naming the
columns whose posterior is then driven by its prior. Improper (flat)
priors on separated columns still raise ImproperPosteriorError. The samplers are replaced
by a sentinel, so the tests show that the check runs before anything compiles."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm.bayes.builder as builder
import bayesglmm.bayes.compiled as compiled
import bayesglmm.bayes.nuts as nuts
from bayesglmm import GLMM, ImproperPosteriorError, priors
from bayesglmm.propriety import PriorDrivenWarning, check_separation


def _separated():
    """x > 0 exactly when y = 1 (complete separation in x), two rows per group."""
    x = [-2.0, -1.0, -0.5, 0.5, 1.0, 2.0, -1.5, 1.5, -0.3, 0.2, -1.2, 1.2]
    return pd.DataFrame({"y": [int(v > 0) for v in x], "x": x, "g": list("aabbccddeeff")[: len(x)]})


class Sampled(Exception):
    """Raised in place of sampling: the fit got past its checks."""


def _stop(*args, **kwargs):
    raise Sampled


@pytest.fixture
def no_sampling(monkeypatch):
    monkeypatch.setattr(compiled, "sample_compiled", _stop)
    monkeypatch.setattr(nuts, "_sample_pymc", _stop)
    monkeypatch.setattr(builder, "build_pymc_model", _stop)


def test_check_separation_finds_the_column():
    found = check_separation(GLMM("y ~ x + (1|g)", _separated()).design)
    assert found["kind"] == "complete"
    assert found["columns"] == ["x"] and found["terms"] == ["x"]
    assert found["direction"] == {"x": 1.0}
    assert len(found["rows"]) == 12
    df = _separated()
    df.loc[0, "y"] = 1  # one success at negative x: no separating direction left
    assert check_separation(GLMM("y ~ x + (1|g)", df).design) is None


def test_zero_count_direction_in_poisson_data():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"z": np.repeat([0, 1], 10), "g": np.tile(list("abcde"), 4)})
    df["y"] = np.where(df["z"] == 1, 0, rng.poisson(3.0, 20))
    found = check_separation(GLMM("y ~ z + (1|g)", df, family="poisson").design)
    assert found["kind"] == "zero-count" and found["columns"] == ["z"]
    assert found["direction"]["z"] < 0


@pytest.mark.parametrize("method", ["nuts", "gibbs"])
def test_bayesian_fits_warn_before_sampling(method, no_sampling):
    m = GLMM("y ~ x + (1|g)", _separated())
    with pytest.warns(PriorDrivenWarning) as record, pytest.raises(Sampled):
        m.fit(method=method, draws=10, tune=10, chains=1, progressbar=False)
    assert len(record) == 1
    message = str(record[0].message)
    assert "posterior of x is driven by its prior (x ~ Normal(mu=0, sigma=" in message
    assert record[0].filename == __file__  # points at the user's line


@pytest.mark.parametrize("method", ["nuts", "gibbs"])
def test_no_warning_without_separation(method, no_sampling):
    df = _separated()
    df.loc[0, "y"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", PriorDrivenWarning)
        with pytest.raises(Sampled):
            GLMM("y ~ x + (1|g)", df).fit(method=method, draws=10, tune=10, chains=1)


def test_flat_prior_on_a_separated_column_is_still_refused(no_sampling):
    m = GLMM("y ~ x + (1|g)", _separated(), priors={"x": priors.Flat()})
    with warnings.catch_warnings():
        warnings.simplefilter("error", PriorDrivenWarning)
        with pytest.raises(ImproperPosteriorError, match="separation"):
            m.fit(method="nuts", draws=10, tune=10, chains=1)
