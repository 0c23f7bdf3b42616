"""check_drift on synthetic draws: stationary chains pass, escaping chains are flagged.

Synthetic draws make the test deterministic and fast; the NUTS run that drifts for real is
in test_propriety_fit.py. The stationary chains are the shapes proper posteriors give:
log-normal variances (including a posterior piled up near zero by a half-normal prior on
the sd, whose density at sd = 0 is finite) and strongly autocorrelated AR(1) chains.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM
from bayesglmm import priors as P
from bayesglmm.propriety import ImproperDriftWarning, check_drift

CHAINS, DRAWS = 4, 1000


@pytest.fixture(scope="module")
def model():
    g = np.repeat(np.arange(5), 4)
    return GLMM(
        "y ~ x + (1|g)",
        pd.DataFrame({"g": g, "y": np.tile([0, 1], 10), "x": np.linspace(-1, 1, 20)}),
        priors={"Intercept": P.Flat(), "x": P.Flat()},
    )


def _idata(x=None):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(CHAINS, DRAWS)) if x is None else x
    return az.from_dict(posterior={"Intercept": rng.normal(size=(CHAINS, DRAWS)), "x": x})


def _ar1(rng, phi, scale, center):
    out = np.empty((CHAINS, DRAWS))
    out[:, 0] = rng.normal(size=CHAINS) * scale
    for t in range(1, DRAWS):
        out[:, t] = phi * out[:, t - 1] + np.sqrt(1 - phi**2) * scale * rng.normal(size=CHAINS)
    return center + out


def _check(model, var, x=None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = check_drift(model, _idata(x), draws={"var(g)": var})
    return out, [w for w in caught if w.category is ImproperDriftWarning]


@pytest.mark.parametrize("shape", ["lognormal", "near zero", "sticky AR(1)"])
def test_stationary_chains_are_not_flagged(model, shape):
    rng = np.random.default_rng(1)
    if shape == "lognormal":
        var = np.exp(rng.normal(0.0, 1.0, size=(CHAINS, DRAWS)))
    elif shape == "near zero":  # |N(0, 0.3)| sd: half-normal-like posterior at the boundary
        var = (0.3 * rng.normal(size=(CHAINS, DRAWS))) ** 2
    else:
        var = np.exp(_ar1(rng, 0.99, 1.5, -1.0))
    out, warned = _check(model, var)
    assert out["flagged"] == {} and not warned


def test_collapse_to_zero_is_flagged(model):
    rng = np.random.default_rng(2)
    logv = -np.cumsum(np.abs(rng.normal(0.0, 2.0, size=(CHAINS, DRAWS))), axis=1) / 5
    out, warned = _check(model, np.exp(logv))
    assert "drifting to 0" in out["flagged"]["var(g)"] and warned


def test_upward_trend_is_flagged(model):
    rng = np.random.default_rng(3)
    logv = np.linspace(0.0, 15.0, DRAWS)[None, :] + rng.normal(size=(CHAINS, DRAWS))
    out, _ = _check(model, np.exp(logv))
    assert "drifting to infinity" in out["flagged"]["var(g)"]


def test_flat_coefficient_escaping_is_flagged(model):
    rng = np.random.default_rng(4)
    x = np.cumsum(np.abs(rng.normal(0.0, 50.0, size=(CHAINS, DRAWS))), axis=1)
    out, warned = _check(model, np.exp(rng.normal(size=(CHAINS, DRAWS))), x=x)
    assert "x" in out["flagged"] and "Intercept" not in out["flagged"] and warned


def test_one_chain_stuck_near_zero_is_flagged(model):
    """As a chain started at sigma^2 = 1e-6 under a 1/sigma^2 prior stays on the plateau."""
    rng = np.random.default_rng(5)
    logv = rng.normal(0.0, 1.0, size=(CHAINS, DRAWS))
    logv[1] = _ar1(rng, 0.995, 3.0, -16.0)[1]
    out, warned = _check(model, np.exp(logv))
    assert "1 of 4 chain(s) stuck" in out["flagged"]["var(g)"] and warned
