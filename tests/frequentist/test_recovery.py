"""Parameter recovery by Laplace on data simulated with known parameters.

Tolerances come from the sampling variability estimated by the fit itself: every estimate
must be within 4 standard errors of the truth (fixed effects: Wald; variances and
correlations: delta method on the covariance of theta from the Hessian). Under asymptotic
normality a 4-SE miss has probability 6e-5 per parameter; the Laplace bias for Poisson
counts of these sizes is far below one standard error.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesglmm import GLMM, simulate

#: |estimate - truth| bound in standard errors: two-sided normal tail 6.3e-5 per comparison
Z_TOL = 4.0


def _delta_se(result, fun) -> np.ndarray:
    """Standard errors of fun(theta) by the delta method (numerical Jacobian)."""
    theta = np.array(result.info["theta"])
    V = np.asarray(result.info["details"]["vcov"])[: theta.size, : theta.size]
    f0 = np.asarray(fun(theta))
    J = np.empty((f0.size, theta.size))
    for j in range(theta.size):
        h = 1e-6
        e = np.zeros(theta.size)
        e[j] = h
        J[:, j] = (np.asarray(fun(theta + e)) - np.asarray(fun(theta - e))) / (2 * h)
    return np.sqrt(np.diag(J @ V @ J.T))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_poisson_random_intercept_recovery(seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"g": np.repeat(np.arange(150), 8), "x": rng.normal(size=1200)})
    truth = {"Intercept": 0.5, "x": 0.3}
    s = simulate("y ~ x + (1|g)", df, truth, {"g": 0.4}, family="poisson", random_seed=seed)
    r = GLMM("y ~ x + (1|g)", s, family="poisson").fit("laplace")
    z = (r.fixed_effects - pd.Series(truth)) / r.fixed_effects_se
    assert np.all(np.abs(z) < Z_TOL), z
    se_var = _delta_se(r, lambda th: [th[0] ** 2])[0]
    assert abs(r.variance_components["g"] - 0.4) < Z_TOL * se_var


@pytest.mark.parametrize("seed", [4, 5])
def test_correlated_random_slope_recovery(seed):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"g": np.repeat(np.arange(120), 10), "x": rng.normal(size=1200)})
    truth = {"Intercept": 1.0, "x": 0.3}
    var = {"g|Intercept": 0.4, "g|x": 0.2}
    s = simulate(
        "y ~ x + (1 + x|g)",
        df,
        truth,
        var,
        correlations={"g|Intercept,x": 0.5},
        family="poisson",
        random_seed=seed,
    )
    r = GLMM("y ~ x + (1 + x|g)", s, family="poisson").fit("laplace")
    z = (r.fixed_effects - pd.Series(truth)) / r.fixed_effects_se
    assert np.all(np.abs(z) < Z_TOL), z

    def components(th):
        T = np.array([[th[0], 0.0], [th[1], th[2]]])
        S = T @ T.T
        return [S[0, 0], S[1, 1], S[0, 1] / np.sqrt(S[0, 0] * S[1, 1])]

    est = np.array(components(np.array(r.info["theta"])))
    np.testing.assert_allclose(est, [*r.variance_components, r.re_correlations.iloc[0]], rtol=1e-10)
    se = _delta_se(r, components)
    assert np.all(np.abs(est - [0.4, 0.2, 0.5]) < Z_TOL * se), (est, se)


#: data sets in the coverage study, and the false-failure rate of its two-sided check
N_COVERAGE = 200
COVERAGE_ALPHA = 1e-3


def binomial_acceptance(n: int, p: float, alpha: float) -> tuple[int, int]:
    """[lo, hi] with P(X < lo) <= alpha/2 and P(X > hi) <= alpha/2 for X ~ Binomial(n, p)."""
    dist = stats.binom(n, p)
    lo = int(dist.ppf(alpha / 2))  # smallest k with P(X <= k) >= alpha/2
    lo += dist.cdf(lo) < alpha / 2  # (ppf of a discrete law may land one below)
    hi = int(dist.isf(alpha / 2))  # smallest k with P(X > k) <= alpha/2
    assert dist.cdf(lo - 1) <= alpha / 2 and dist.sf(hi) <= alpha / 2
    return lo, hi


def test_binomial_acceptance_interval():
    lo, hi = binomial_acceptance(200, 0.95, 1e-3)
    assert (lo, hi) == (179, 198)
    dist = stats.binom(200, 0.95)
    assert dist.cdf(lo) > 5e-4 and dist.sf(hi - 1) > 5e-4  # no narrower interval would do


@pytest.mark.slow
def test_wald_interval_coverage():
    """95% Wald intervals of the slope over N_COVERAGE simulated data sets (40 groups of 6,
    Poisson, random intercept). If they are calibrated, the number covering the truth is
    Binomial(N_COVERAGE, 0.95); it must fall in the two-sided acceptance interval of that
    law with false-failure rate COVERAGE_ALPHA ([179, 198] of 200), so that intervals too
    narrow (coverage 0.90: fails with probability 0.35) and too wide (coverage 0.99: 0.40)
    can both fail. Data: numpy default_rng(100 + k) for x, bayesglmm.simulate(random_seed=k)
    for y, k = 0 .. N_COVERAGE - 1."""
    lo, hi = binomial_acceptance(N_COVERAGE, 0.95, COVERAGE_ALPHA)
    covered = 0
    for seed in range(N_COVERAGE):
        rng = np.random.default_rng(100 + seed)
        df = pd.DataFrame({"g": np.repeat(np.arange(40), 6), "x": rng.normal(size=240)})
        s = simulate(
            "y ~ x + (1|g)",
            df,
            {"Intercept": 0.2, "x": 0.4},
            {"g": 0.5},
            family="poisson",
            random_seed=seed,
        )
        t = GLMM("y ~ x + (1|g)", s, family="poisson").fit("laplace").table.loc["x"]
        covered += bool(t["lower"] <= 0.4 <= t["upper"])
    assert lo <= covered <= hi, (covered, lo, hi)
