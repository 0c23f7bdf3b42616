"""PIRLS core: response derivatives, modes, the Laplace deviance and its exact gradient.

Checks against independent computations: numerical derivatives of the log-likelihood, the
exact Gaussian marginal likelihood (where Laplace is exact), dense inverses, and central
differences of the deviance.
"""

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesglmm import GLMM, simulate
from bayesglmm.frequentist.pirls import PirlsProblem
from bayesglmm.frequentist.response import Response
from bayesglmm.model.families import get_family

FAMILY_LINKS = [
    ("binomial", "logit"),
    ("binomial", "probit"),
    ("binomial", "cloglog"),
    ("poisson", "log"),
    ("poisson", "identity"),
    ("negative_binomial", "log"),
    ("gaussian", "identity"),
    ("gaussian", "log"),
]
#: central differences with step 1e-6 on O(1)-O(100) functions: truncation ~1e-12 relative,
#: rounding ~ eps * |f| / h ~ 1e-7 absolute at |f| ~ 1e3
FD_TOL = 2e-5


def _sim(family, link, seed=2):
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame(
        {"g": rng.integers(0, 20, n), "h": rng.integers(0, 8, n), "x": rng.normal(size=n)}
    )
    fe = {"Intercept": 5.0 if link == "identity" else 0.3, "x": 0.3}
    df = simulate(
        "y ~ x + (1 + x|g) + (1|h)",
        df,
        fe,
        {"g|Intercept": 0.3, "g|x": 0.2, "h": 0.2},
        correlations={"g|Intercept,x": 0.3},
        family=family,
        link=link,
        dispersion=None if family == "binomial" else 2.0,
        random_seed=seed,
    )
    return GLMM("y ~ x + (1 + x|g) + (1|h)", df, family=family, link=link), np.array(
        list(fe.values())
    )


@pytest.mark.parametrize("family,link", FAMILY_LINKS)
def test_response_derivatives_match_numerical(family, link):
    """score = dl/deta, W_obs = -d2l/deta2 and dW/deta against central differences."""
    rng = np.random.default_rng(3)
    eta = rng.uniform(0.2, 1.5, 50) if link in ("identity", "log") else rng.normal(0, 1, 50)
    fam = get_family(family, link)
    if family == "binomial":
        trials = rng.integers(1, 6, 50).astype(float)
        y = rng.binomial(trials.astype(int), 0.4).astype(float)
    else:
        trials = None
        y = rng.poisson(3.0, 50).astype(float)
    resp = Response(fam, y, trials)
    disp = 1.7
    h = 1e-5
    tr = resp.terms(eta, disp, second=True)

    def ll(e):
        return resp.loglik(e, fam.link.linkinv(e), disp)

    def score(e):
        return resp.terms(e, disp).score

    def weight(e):
        return resp.terms(e, disp).W

    # where mu is within 1e-10 of 0 or 1, 1 - mu has lost its digits: checked elsewhere
    mu = fam.link.linkinv(eta)
    ok = (mu > 1e-10) & (mu < 1 - 1e-10)

    def close(a, b, atol):
        np.testing.assert_allclose(a[ok], b[ok], atol=atol)

    close(tr.score, (ll(eta + h) - ll(eta - h)) / (2 * h), 1e-6)
    close(tr.W_obs, -(score(eta + h) - score(eta - h)) / (2 * h), 1e-5)
    close(tr.dW, (weight(eta + h) - weight(eta - h)) / (2 * h), 1e-5)
    # normalizing constants as R's logLik: the family's own scipy log-pmf/pdf
    close(tr.loglik, fam.loglik(y, mu, trials, disp), 1e-8)


@pytest.mark.parametrize("curvature", ["fisher", "observed"])
@pytest.mark.parametrize("family,link", FAMILY_LINKS)
def test_gradient_matches_central_differences(family, link, curvature):
    model, beta = _sim(family, link)
    pp = PirlsProblem(model.design, curvature=curvature)
    theta = np.array([0.5, 0.1, 0.4, 0.3])
    st = pp.solve(theta, beta, 2.0)
    assert st.converged
    g_theta, g_beta = pp.gradient(st)

    def dev(th, be):
        return pp.solve(th, be, 2.0, u0=st.u, tol=1e-13).deviance

    h = 1e-6
    fd_t = [(dev(theta + h * e, beta) - dev(theta - h * e, beta)) / (2 * h) for e in np.eye(4)]
    fd_b = [(dev(theta, beta + h * e) - dev(theta, beta - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(g_theta, fd_t, atol=FD_TOL, rtol=1e-6)
    np.testing.assert_allclose(g_beta, fd_b, atol=FD_TOL, rtol=1e-6)


def test_mode_is_stationary_and_conditional_variances_are_dense_inverse():
    model, beta = _sim("binomial", "logit")
    pp = PirlsProblem(model.design)
    theta = np.array([0.5, 0.1, 0.4, 0.3])
    st = pp.solve(theta, beta)
    # stationarity of the penalized deviance: A' s(eta_hat) = u_hat
    np.testing.assert_allclose(pp.At_mul(st.Aval, st.terms.score), st.u, atol=1e-8)
    # H = A' W A + I densely, Var(b | y) = Lambda H^{-1} Lambda'
    Z = model.design.Z.toarray()
    Lam = pp.cov.Lambda(theta).toarray()
    A = Z @ Lam
    H = A.T @ (st.terms.W[:, None] * A) + np.eye(pp.q)
    assert st.logdet == pytest.approx(np.linalg.slogdet(H)[1], abs=1e-9)
    V = Lam @ np.linalg.inv(H) @ Lam.T
    got = pp.conditional_variances(st)
    off = 0
    for t, cv in zip(pp.cov.terms, got, strict=True):
        for lvl in range(t.n_levels):
            s = slice(off + lvl * t.k, off + (lvl + 1) * t.k)
            np.testing.assert_allclose(cv[lvl], V[s, s], atol=1e-10)
        off += t.k * t.n_levels


def test_gaussian_laplace_is_the_exact_marginal_likelihood():
    """For the Gaussian identity model the Laplace deviance is exact: compare it with the
    dense marginal density y ~ N(X beta, Z Sigma Z' + sigma^2 I), constants included."""
    model, beta = _sim("gaussian", "identity")
    pp = PirlsProblem(model.design)
    theta = np.array([0.5, 0.1, 0.4, 0.3])
    sigma = 1.3
    st = pp.solve(theta, beta, sigma)
    Z = model.design.Z.toarray()
    Lam = pp.cov.Lambda(theta).toarray()
    cov = Z @ Lam @ Lam.T @ Z.T + sigma**2 * np.eye(model.design.n)
    exact = stats.multivariate_normal(model.design.X @ beta, cov).logpdf(model.design.y)
    assert -0.5 * st.deviance == pytest.approx(exact, abs=1e-8)


def test_crossed_design_never_densifies():
    """20,000 rows with 2,000 x 1,000 crossed levels: a dense n x q Z would take 480 MB;
    PIRLS and the gradient must stay within the dense 1,000 x 1,000 Schur complement
    (8 MB) and a few copies of it plus linear-size arrays."""
    rng = np.random.default_rng(5)
    n = 20_000
    df = pd.DataFrame(
        {"a": rng.integers(0, 2000, n), "b": rng.integers(0, 1000, n), "x": rng.integers(0, 2, n)}
    )
    df["y"] = rng.binomial(1, 0.4, n)
    model = GLMM("y ~ x + (1|a) + (1|b)", df)
    tracemalloc.start()
    pp = PirlsProblem(model.design)
    st = pp.solve(np.array([0.7, 0.7]), np.array([-0.4, 0.0]))
    pp.gradient(st)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    dense_z = n * pp.q * 8
    assert st.converged
    assert peak < dense_z / 5, f"peak {peak / 1e6:.0f} MB"
