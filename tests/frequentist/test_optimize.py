"""The optimizer of the likelihood fits: whitening, the profiled first stage, restarts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.frequentist import blas_threads
from bayesglmm.frequentist.devfun import LaplaceDeviance, ProfiledDeviance
from bayesglmm.frequentist.laplace import start_vector
from bayesglmm.frequentist.optimize import (
    Whitened,
    _newton_step,
    fd_hessian,
    minimize_deviance,
    whitening,
)
from bayesglmm.frequentist.pirls import PirlsProblem


@pytest.fixture(autouse=True)
def one_blas_thread():
    """As the fits do: many BLAS threads on small factorizations only contend."""
    with blas_threads(1):
        yield


@pytest.fixture(scope="module")
def cbpp_model(cbpp):
    d = cbpp.copy()
    d["period"] = d["period"].astype(str)
    d["x"] = np.linspace(-1.0, 1.0, len(d))  # a covariate to rescale
    return d


def _devfun(d, formula="cbind(incidence, size - incidence) ~ period + x + (1|herd)"):
    m = bg.GLMM(formula, d, family="binomial")
    return LaplaceDeviance(PirlsProblem(m.design))


def test_whitening_follows_any_linear_recombination_of_x(cbpp_model):
    """R(X A) = R(X) A: gamma = R beta is the same whatever the columns' scale."""
    dv = _devfun(cbpp_model)
    x0 = start_vector(dv)
    R = whitening(dv, x0)
    d2 = cbpp_model.copy()
    d2["x"] = 100.0 * d2["x"] + 7.0  # rescaled and shifted: X A with A upper triangular
    dv2 = _devfun(d2)
    R2 = whitening(dv2, start_vector(dv2))
    A = np.eye(R.shape[0])
    A[-1, -1] = 100.0
    A[0, -1] = 7.0
    np.testing.assert_allclose(R2, R @ A, rtol=1e-6, atol=1e-8)


def test_whitened_optimum_maps_gradient_hessian_and_step_back(cbpp_model):
    """The optimum reported in beta has the gradient, Hessian and Newton step of beta."""
    dv = _devfun(cbpp_model)
    x0 = start_vector(dv)
    opt = minimize_deviance(dv, x0)
    assert opt.info["whitened"] and opt.converged
    f, g = dv.value_and_grad(opt.x)
    assert opt.fun == pytest.approx(f, abs=1e-8)
    np.testing.assert_allclose(opt.grad, g, atol=1e-6)
    lower = np.array([b[0] if b[0] is not None else -np.inf for b in dv.bounds()])
    H = fd_hessian(dv, opt.x, g, lower)
    # both Hessians are forward differences of the gradient (relative step 1e-4), in
    # different coordinates: they agree to the order of that step
    np.testing.assert_allclose(opt.hessian, H, rtol=2e-3, atol=2e-3 * np.abs(H).max())
    np.testing.assert_allclose(
        opt.newton_step, _newton_step(opt.hessian, opt.grad, opt.free), rtol=1e-6, atol=1e-12
    )
    # and the round trip of the parametrization is exact
    w = Whitened(dv, whitening(dv, x0))
    np.testing.assert_allclose(w.to_x(w.to_z(opt.x)), opt.x, rtol=1e-12)


def test_profiled_stage_profiles_beta_and_starts_at_the_optimum(cbpp_model):
    """lme4's nAGQ = 0 stage: at the joint mode the score in beta is zero, and its start
    leads the joint optimization to the same optimum as the default start."""
    dv = _devfun(cbpp_model)
    x0 = start_vector(dv)
    prof = ProfiledDeviance(dv)
    xs = prof.start(x0)
    theta, beta, disp = dv.split(xs)
    st = dv.problem.solve_joint(theta, beta, disp)
    assert st.converged
    np.testing.assert_allclose(dv.problem.X.T @ st.terms.score, 0.0, atol=1e-6)
    best = minimize_deviance(dv, x0)
    from_stage = minimize_deviance(LaplaceDeviance(dv.problem), xs)
    assert from_stage.fun == pytest.approx(best.fun, abs=1e-6)
    # the nAGQ = 0 criterion is above the Laplace optimum, but close (beta enters log det)
    assert dv(xs) >= best.fun - 1e-8
    assert dv(xs) - best.fun < 1.0


def test_restart_recovers_from_a_run_that_stops_early(cbpp_model):
    """A first run cut off after 2 iterations ends unconverged; the restarts finish it."""
    dv = _devfun(cbpp_model)
    x0 = start_vector(dv)
    alone = minimize_deviance(dv, x0, maxiter=2, polish=False, restarts=False)
    assert not alone.converged
    dv2 = LaplaceDeviance(dv.problem)
    calls = []

    def alt():
        calls.append(1)
        return ProfiledDeviance(dv2).start(x0)

    again = minimize_deviance(dv2, x0, maxiter=50, alt_start=alt)
    assert again.converged and calls == []  # no restart needed with room to work
    short = minimize_deviance(LaplaceDeviance(dv.problem), x0, maxiter=2, polish=False)
    assert short.info["runs"] > 1
    assert short.fun <= alone.fun


def test_laplace_fit_does_not_depend_on_covariate_units(cbpp_model):
    """x, 100 x and x / 50 give one fit: logLik to 1e-6, estimates rescaled."""
    fits = {}
    for s in (1.0, 100.0, 0.02):
        d = cbpp_model.copy()
        d["x"] = d["x"] * s
        fits[s] = bg.GLMM(
            "cbind(incidence, size - incidence) ~ period + x + (1|herd)", d, family="binomial"
        ).fit(method="laplace")
    base = fits[1.0]
    for s, r in fits.items():
        assert r.loglik == pytest.approx(base.loglik, abs=1e-6)
        fe = r.fixed_effects.copy()
        fe["x"] *= s
        # converged to a Newton step of 1e-4 in whitened units (about 1e-4 standard errors)
        np.testing.assert_allclose(fe.to_numpy(), base.fixed_effects.to_numpy(), atol=1e-4)
        se = r.fixed_effects_se.copy()
        se["x"] *= s
        np.testing.assert_allclose(se.to_numpy(), base.fixed_effects_se.to_numpy(), rtol=1e-3)


def test_whitening_skipped_for_collinear_columns():
    """A numerically singular X gives no whitening (and the fit proceeds unwhitened)."""
    rng = np.random.default_rng(3)
    n = 60
    d = pd.DataFrame(
        {
            "y": rng.poisson(2.0, n),
            "g": np.repeat(np.arange(12), 5).astype(str),
            "a": rng.normal(size=n),
        }
    )
    m = bg.GLMM("y ~ a + (1|g)", d, family="poisson")
    dv = LaplaceDeviance(PirlsProblem(m.design))
    x0 = start_vector(dv)
    assert whitening(dv, x0) is not None
    dv.problem.X = np.column_stack([dv.problem.X[:, 0], dv.problem.X[:, 0]])
    assert whitening(dv, x0) is None
