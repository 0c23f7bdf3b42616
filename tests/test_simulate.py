import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, simulate
from bayesglmm.errors import DataError


def test_simulate_on_salamander_design(salamander):
    beta = {"Cross[RR]": 1.0, "Cross[RW]": 0.3, "Cross[WR]": -1.9, "Cross[WW]": 1.0}
    df = simulate(
        "Mate ~ 0 + Cross + (1|Female) + (1|Male)",
        salamander,
        beta,
        {"Female": 1.2, "Male": 1.0},
        random_seed=4,
    )
    assert set(df.Mate.unique()) <= {0, 1} and len(df) == 360
    truth = df.attrs["truth"]
    assert truth["fixed_effects"] == beta
    assert truth["random_effects"]["1|Female"].shape == (60, 1)
    again = simulate(
        "Mate ~ 0 + Cross + (1|Female) + (1|Male)",
        salamander,
        beta,
        {"Female": 1.2, "Male": 1.0},
        random_seed=4,
    )
    pd.testing.assert_series_equal(df.Mate, again.Mate)
    GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", df)  # simulated data are a valid model


def test_simulated_moments_match_the_model():
    """Large-sample check: Poisson mean and overdispersion from a random intercept."""
    n_groups, per = 400, 25
    df = pd.DataFrame({"g": np.repeat(np.arange(n_groups), per)})
    df = simulate(
        "y ~ 1 + (1|g)", df, {"Intercept": 0.5}, {"g": 0.25}, family="poisson", random_seed=1
    )
    # E[y] = exp(mu + var/2); sampling sd of the mean ~ sd/sqrt(groups) on this design
    expected = np.exp(0.5 + 0.125)
    group_means = df.groupby("g").y.mean()
    se = group_means.std() / np.sqrt(n_groups)
    assert abs(df.y.mean() - expected) < 4.5 * se


def test_correlated_slopes_and_cbind():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"x": rng.normal(size=3000), "g": np.repeat(np.arange(300), 10)})
    out = simulate(
        "y ~ x + (x|g)",
        df,
        [0.0, 1.0],
        {"g|Intercept": 1.0, "g|x": 1.0},
        correlations={"g|Intercept,x": 0.8},
        family="gaussian",
        dispersion=0.1,
        random_seed=3,
    )
    b = out.attrs["truth"]["random_effects"]["1+x|g"]
    # 300 groups: by Fisher's z the sample correlation leaves 0.8 +- 0.1 with probability 3e-5
    assert np.corrcoef(b.Intercept, b.x)[0, 1] == pytest.approx(0.8, abs=0.1)
    binom = simulate("cbind(s, f) ~ x + (1|g)", df, [0.0, 0.5], {"g": 0.5}, trials=7, random_seed=1)
    assert ((binom.s + binom.f) == 7).all()


def test_simulate_errors():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "g": [1, 1, 2, 2]})
    with pytest.raises(DataError, match="missing \\['x'\\]"):
        simulate("y ~ x + (1|g)", df, {"Intercept": 1}, {"g": 1})
    with pytest.raises(DataError, match="residual sd"):
        simulate("y ~ x + (1|g)", df, [1, 1], {"g": 1}, family="gaussian")
    with pytest.raises(DataError, match="unknown pairs"):
        simulate("y ~ x + (1|g)", df, [1, 1], {"g": 1}, correlations={"g|a,b": 0.5})


def test_zero_variance_gives_zero_effects():
    df = pd.DataFrame({"x": np.arange(8.0), "g": [1, 1, 2, 2, 3, 3, 4, 4]})
    out = simulate("y ~ x + (1|g)", df, [0.0, 0.1], {"g": 0.0}, random_seed=1)
    assert (out.attrs["truth"]["random_effects"]["1|g"].to_numpy() == 0).all()
