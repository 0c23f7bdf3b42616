"""Empirical best prediction (Jiang & Lahiri 2001): quadrature against brute-force integrals,
importance sampling against quadrature, EBP against the Laplace conditional modes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import bayesglmm as bg
from bayesglmm.errors import MethodError, OptionError

#: adaptive Gauss-Hermite with 30 points is exact to rounding for these smooth integrands;
#: scipy's quad is asked for 1e-12
QUAD_TOL = 1e-8
#: |importance - quadrature| / mcse: 15 independent herds, P(max |z| > 4.5) < 1e-4
IS_Z = 4.5


@pytest.fixture(scope="module")
def cbpp():
    model = bg.GLMM(
        "cbind(incidence, size - incidence) ~ period + (1|herd)", bg.datasets.load("cbpp")
    )
    return model, model.fit(method="laplace")


def _herd_integrals(model, beta, var, herd: int, row: int, h):
    """E(h(eta_row) | y) and E(h^2 | y) for one herd by scipy's adaptive quadrature."""
    d = model.design
    rows = d.random[0].index == herd
    base, y, n = (d.X @ beta)[rows], d.y[rows], d.trials[rows]
    eta0 = d.X[row] @ beta

    def f(b, power):
        lik = np.exp(stats.binom.logpmf(y, n, special.expit(base + b)).sum())
        return h(eta0 + b) ** power * lik * stats.norm.pdf(b, 0.0, np.sqrt(var))

    opts = {"epsabs": 0, "epsrel": 1e-12, "limit": 200}
    den = integrate.quad(f, -12, 12, args=(0,), **opts)[0]
    return (integrate.quad(f, -12, 12, args=(p,), **opts)[0] / den for p in (1, 2))


def test_quadrature_equals_brute_force_integral(cbpp):
    model, fit = cbpp
    beta = fit.fixed_effects.to_numpy()
    var = fit.variance_components["herd"]
    out = bg.ebp(fit, type="response")
    herds = model.design.random[0].index
    for row in (0, 5, 30):
        mean, second = _herd_integrals(model, beta, var, herds[row], row, special.expit)
        assert out["estimate"].iloc[row] == pytest.approx(mean, abs=QUAD_TOL)
        assert out["g1"].iloc[row] == pytest.approx(second - mean**2, abs=QUAD_TOL)


def test_ebp_is_close_to_but_not_the_conditional_mode(cbpp):
    """On the link scale E(b|y) differs from the mode of b|y (a skewed conditional law):
    by a few hundredths on cbpp, well below the conditional sd (~0.3)."""
    _, fit = cbpp
    out = bg.ebp(fit, type="link")
    np.testing.assert_allclose(out["conditional_mode"], fit.predict(type="link"), rtol=1e-8)
    gap = (out["estimate"] - out["conditional_mode"]).abs()
    assert gap.max() < 0.1
    assert (gap > 1e-3).mean() > 0.9
    assert np.all(gap < 0.25 * np.sqrt(out["g1"]))


def test_g2_is_the_delta_method_over_beta_and_theta(cbpp):
    model, fit = cbpp
    # population level on the link scale: zeta = x'beta, so g1 = 0 and g2 = x' V_beta x
    pop = bg.ebp(fit, type="link", re_form="~0")
    se = fit.predict(type="link", re_form="~0", interval="confidence")["std_error"]
    np.testing.assert_allclose(pop["estimate"], model.design.X @ fit.fixed_effects, rtol=1e-12)
    np.testing.assert_allclose(pop["g1"], 0.0, atol=1e-12)
    np.testing.assert_allclose(pop["g2"], se**2, rtol=1e-6)  # central differences of a line
    # a herd's probability: gradient over (beta, theta) by brute-force integrals
    out = bg.ebp(fit, type="response")
    assert out.attrs["g2_parameters"][-1] == "theta[herd]"
    names = fit.info["details"]["vcov_names"]
    V = np.asarray(fit.info["details"]["vcov"])
    order = [names.index(n) for n in list(fit.fixed_effects.index) + ["theta[herd]"]]
    V = V[np.ix_(order, order)]
    beta, theta = fit.fixed_effects.to_numpy(), fit.info["theta"][0]
    row, herd = 1, model.design.random[0].index[1]
    grad = []
    for j in range(5):
        vals = []
        for sign in (1, -1):
            b, t = beta.copy(), theta
            if j < 4:
                b[j] += sign * 1e-4
            else:
                t += sign * 1e-4
            vals.append(next(_herd_integrals(model, b, t**2, herd, row, special.expit)))
        grad.append((vals[0] - vals[1]) / 2e-4)
    grad = np.array(grad)
    # finite differences of quad integrals carry ~1e-8 / 1e-4 error per component
    assert out["g2"].iloc[row] == pytest.approx(grad @ V @ grad, rel=1e-3)
    np.testing.assert_allclose(out["mspe"], out["g1"] + out["g2"])


@pytest.mark.slow
def test_importance_sampling_agrees_with_quadrature(cbpp):
    _, fit = cbpp
    quad = bg.ebp(fit, type="link")
    imp = bg.ebp(fit, type="link", method="importance", n_draws=20000, random_seed=2)
    assert imp.attrs["ess"] > 10000
    z = (imp["estimate"] - quad["estimate"]) / imp["mcse"]
    assert z.abs().max() < IS_Z
    # g1 is a variance estimated from the same draws: 5 % relative (ESS > 10000)
    np.testing.assert_allclose(imp["g1"], quad["g1"], rtol=0.05)
    again = bg.ebp(fit, type="link", method="importance", n_draws=20000, random_seed=2)
    pd.testing.assert_frame_equal(imp, again)


def test_crossed_salamander_females():
    """Each female's mating probability with a male of average effect, on crossed data:
    importance sampling, near the plug-in at the Laplace conditional modes."""
    data = bg.datasets.load("salamander")
    model = bg.GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(method="laplace")
    females = data.drop_duplicates("Female").assign(Cross="RR").head(12)
    out = bg.ebp(fit, females, re_form="~(1|Female)", random_seed=1, n_draws=4000)
    assert out.attrs["method"] == "importance" and out.attrs["ess"] > 200
    assert np.all(out["mcse"] < 0.02)
    gap = (out["estimate"] - out["conditional_mode"]).abs()
    assert gap.max() < 0.1 and gap.max() > 1e-3
    assert np.all(out["g2"] > 0) and np.all(out["mspe"] < 0.1)
    with pytest.raises(MethodError, match="one grouping factor"):
        bg.ebp(fit, method="quadrature")
    with pytest.raises(OptionError, match="type"):
        bg.ebp(fit, type="odds")
