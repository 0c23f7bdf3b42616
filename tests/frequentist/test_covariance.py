"""The relative covariance factor Lambda(theta): layout, mapping to variances, bounds."""

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM
from bayesglmm.frequentist.covariance import CovarianceFactor

TOL = 1e-12  # exact arithmetic on a handful of numbers


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 120
    return pd.DataFrame(
        {
            "y": rng.poisson(2.0, n),
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "g": rng.integers(0, 6, n),
            "h": rng.integers(0, 4, n),
        }
    )


def _cf(formula, data):
    return CovarianceFactor(GLMM(formula, data, family="poisson").design)


def test_theta_layout_scalar_correlated_uncorrelated(data):
    cf = _cf("y ~ x + (1 + x|g) + (1|h) + (z||g)", data)
    # (1+x|g): lower triangle column-major (T11, T21, T22), as lme4's getME(, "theta")
    assert cf.theta_names[:3] == ["g|Intercept,Intercept", "g|x,Intercept", "g|x,x"]
    assert cf.theta_names[3] == "h"
    assert cf.n_theta == len(cf.theta_names)
    np.testing.assert_array_equal(cf.theta0(), cf.is_diagonal_entry.astype(float))
    lower = cf.lower_bounds()
    assert lower[1] == -np.inf and lower[0] == 0.0 and lower[3] == 0.0
    assert [b[0] for b in cf.bounds()] == [0.0 if d else None for d in cf.is_diagonal_entry]
    assert cf.q == 6 * 2 + 4 + sum(t.k * t.n_levels for t in cf.terms[2:])


def test_variances_correlations_and_roundtrip(data):
    cf = _cf("y ~ x + (1 + x|g) + (1|h)", data)
    theta = np.array([0.8, -0.3, 0.5, 1.7])
    T = np.array([[0.8, 0.0], [-0.3, 0.5]])
    S = T @ T.T
    var = cf.variances(theta)
    assert list(var.index) == ["g|Intercept", "g|x", "h"]
    np.testing.assert_allclose(var.to_numpy(), [S[0, 0], S[1, 1], 1.7**2], atol=TOL)
    cor = cf.correlations(theta)
    assert list(cor.index) == ["g|Intercept,x"]
    assert cor.iloc[0] == pytest.approx(S[0, 1] / np.sqrt(S[0, 0] * S[1, 1]), abs=TOL)
    back = cf.theta_from_covariances(cf.covariances(theta))
    np.testing.assert_allclose(back, theta, atol=1e-10)


def test_lambda_matches_b_from_u(data):
    cf = _cf("y ~ x + (1 + x|g) + (1|h)", data)
    theta = np.array([0.8, -0.3, 0.5, 1.7])
    u = np.random.default_rng(1).normal(size=cf.q)
    np.testing.assert_allclose(cf.Lambda(theta) @ u, cf.b_from_u(theta, u), atol=TOL)
    np.testing.assert_allclose(cf.u_from_b(theta, cf.b_from_u(theta, u)), u, atol=1e-10)


def test_singular_components_named(data):
    cf = _cf("y ~ x + (1 + x|g) + (1|h)", data)
    assert cf.singular_components(np.array([0.8, -0.3, 0.5, 1.7])) == []
    msgs = cf.singular_components(np.array([0.8, -0.3, 0.5, 0.0]))
    assert msgs == ["variance of h is zero"]
    msgs = cf.singular_components(np.array([0.8, -0.3, 0.0, 1.0]))  # correlation at -1
    assert len(msgs) == 1 and "1+x|g" in msgs[0] and "singular" in msgs[0]
