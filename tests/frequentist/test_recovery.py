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

from bayesglmm import GLMM, simulate

Z_TOL = 4.0


def _delta_se(result, fun) -> np.ndarray:
    """Standard errors of fun(theta) by the delta method (numerical Jacobian)."""
    theta = np.array(list(result.info["theta"].values()))
    V = np.asarray(result.info["vcov"])[: theta.size, : theta.size]
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

    est = np.array(components(np.array(list(r.info["theta"].values()))))
    np.testing.assert_allclose(est, [*r.variance_components, r.re_correlations.iloc[0]], rtol=1e-10)
    se = _delta_se(r, components)
    assert np.all(np.abs(est - [0.4, 0.2, 0.5]) < Z_TOL * se), (est, se)


@pytest.mark.slow
def test_wald_interval_coverage():
    """95% Wald intervals of the slope over 40 simulated data sets: the number covering the
    truth is Binomial(40, 0.95) if they are calibrated; P(at most 33) = 1.1e-3."""
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        df = pd.DataFrame({"g": np.repeat(np.arange(60), 6), "x": rng.normal(size=360)})
        s = simulate(
            "y ~ x + (1|g)",
            df,
            {"Intercept": 0.2, "x": 0.4},
            {"g": 0.5},
            family="poisson",
            random_seed=seed,
        )
        t = GLMM("y ~ x + (1|g)", s, family="poisson").fit("laplace").table.loc["x"]
        covered += t["lower"] <= 0.4 <= t["upper"]
    assert covered >= 34
