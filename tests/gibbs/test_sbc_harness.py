"""The simulation-based calibration harness itself: its uniformity test holds its stated
false-failure rate, it passes an exact sampler, it rejects a wrong one, and ties (a
Metropolis chain that stays put) do not bias the ranks."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesglmm import GLMM, priors
from bayesglmm.analysis.sbc import StepMethodSBC, run_sbc, uniformity_test
from bayesglmm.bayes.gibbs import InverseGammaStep, PolyaGammaStep

#: a rejection rate checked over this many null replications, with a binomial bound at
#: false-failure rate 1e-4
N_NULL = 4000


def test_uniformity_test_holds_its_level():
    rng = np.random.default_rng(1)
    ranks = rng.integers(0, 100, size=(200, N_NULL))
    _, p = uniformity_test(ranks, n_draws=99, bins=10)
    for level in (0.01, 0.05):
        upper = stats.binom.isf(1e-4, N_NULL, level) / N_NULL
        assert (p <= level).mean() <= upper
    assert (p <= 0.05).mean() > stats.binom.ppf(1e-4, N_NULL, 0.05) / N_NULL
    with pytest.raises(ValueError, match="multiple of bins"):
        uniformity_test(ranks, n_draws=98, bins=10)


def _normal_model(bias=1.0):
    """theta ~ N(0, 1), y_i ~ N(theta, 1), i = 1..4: theta | y ~ N(sum y / 5, 1 / 5)."""

    def simulate(rng):
        theta = rng.normal()
        return np.array([theta]), rng.normal(theta, 1.0, size=4)

    def sample(y, truth, rng):
        return rng.normal(y.sum() / 5, bias * np.sqrt(1 / 5), size=(49, 1))

    return simulate, sample


def test_exact_sampler_passes_and_overdispersed_one_fails():
    simulate, sample = _normal_model()
    good = run_sbc(simulate, sample, 300, ["theta"], seed=5, n_draws=49, bins=10, progressbar=False)
    assert good.passed, good.summary()
    simulate, sample = _normal_model(bias=1.6)
    bad = run_sbc(simulate, sample, 300, ["theta"], seed=5, n_draws=49, bins=10, progressbar=False)
    assert not bad.passed and bad.failing == ["theta"]


def test_ties_are_broken_at_random():
    """A chain stuck at the truth ties with it every time: ranks must still be uniform."""

    def simulate(rng):
        return np.array([rng.normal()]), None

    result = run_sbc(
        simulate,
        lambda data, truth, rng: np.tile(truth, (49, 1)),
        300,
        ["theta"],
        seed=2,
        n_draws=49,
        bins=10,
        progressbar=False,
    )
    assert result.passed, result.summary()


def test_step_method_driver_runs_and_keeps_the_chain_stationary():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "g": np.repeat(["a", "b", "c", "d"], 4),
            "x": rng.normal(size=16),
            "y": rng.integers(0, 2, size=16),
        }
    )
    m = GLMM("y ~ x + (1|g)", df, priors={"g": priors.InverseGamma(3, 2)})
    sbc = StepMethodSBC(
        m.build_pymc(parameterization="centered"),
        lambda model: [PolyaGammaStep(design=m), InverseGammaStep("1|g_var")],
        n_draws=9,
        thin=1,
        pilot_tune=0,
        seed=1,
    )
    assert sorted(sbc.names) == [
        "1|g[0]",
        "1|g[1]",
        "1|g[2]",
        "1|g[3]",
        "1|g_var_log__",
        "Intercept",
        "x",
    ]
    truth, data = sbc.simulate(np.random.default_rng(3))
    draws = sbc.sample(data, truth, np.random.default_rng(4))
    assert draws.shape == (9, 7) and np.all(np.isfinite(draws))
    assert np.all(np.abs(np.diff(draws, axis=0)).sum(axis=0) > 0)
    result = sbc.run(10, seed=1, bins=10, progressbar=False)
    assert result.ranks.shape == (10, 7) and result.ranks.max() <= 9
