"""The beta-binomial family (Brooks et al. 1997) in glmmTMB's parameterization.

``y ~ BetaBinomial(n, mu phi, (1 - mu) phi)`` with the logit link; the reference values
come from glmmTMB 1.1.5 (R 4.2.2, Debian r-cran-glmmtmb), each R call quoted where its
numbers are stored. Tolerances: glmmTMB's own optimizer stops at about 1e-8 relative, so
Laplace is asked to match to 1e-5 relative; Monte Carlo checks use 5 standard errors (a
false-failure rate below 1e-6 per check).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

from bayesglmm import GLMM, priors
from bayesglmm.errors import DataError, MethodError
from bayesglmm.frequentist.agq import AGQDeviance, quadrature_structure
from bayesglmm.frequentist.laplace import fit_laplace_design
from bayesglmm.frequentist.optimize import minimize_deviance
from bayesglmm.model.datasets import load
from bayesglmm.model.families import BetaBinomial, get_family

#: agreement with glmmTMB, relative
TMB_RTOL = 1e-5
FAM = get_family("betabinomial")
FORMULA = "cbind(y, n - y) ~ x + (1|g)"


def _re_data() -> pd.DataFrame:
    """30 groups of 6 rows, 3-12 trials, a random intercept of sd 0.6 and phi = 4; written
    to CSV (``index=False``) for R."""
    rng = np.random.default_rng(20261208)
    G, m = 30, 6
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    n = rng.integers(3, 13, G * m)
    b = rng.normal(0, 0.6, G)
    eta = -0.4 + 0.7 * x + b[g]
    y = FAM.simulate(1 / (1 + np.exp(-eta)), rng, n, 4.0)
    return pd.DataFrame({"y": y, "n": n, "x": np.round(x, 6), "g": [f"g{i:02d}" for i in g]})


@pytest.fixture(scope="module")
def re_data():
    d = _re_data()
    digest = hashlib.sha256(d.to_csv(index=False).encode()).hexdigest()
    assert digest == RE_SHA256  # the data R saw
    return d


#: sha256 of the CSV that R read
RE_SHA256 = "cddce608cd5ab59c746a0e0a70af565f361191b3bd766b4f5ab6fd71a6f7e830"


def test_family_declaration():
    assert isinstance(FAM, BetaBinomial)
    assert get_family("beta-binomial") == FAM
    assert FAM.dispersion_name == "phi" and FAM.has_dispersion and FAM.has_trials
    assert FAM.links == ("logit",) and not FAM.fisher_information
    prior = FAM.default_dispersion_prior()
    assert not prior.improper  # proper: Gamma(0.01, 0.01) on phi
    with pytest.raises(Exception, match="does not take the 'probit' link"):
        get_family("betabinomial", "probit")


def test_loglik_is_scipy_betabinom():
    rng = np.random.default_rng(1)
    n = rng.integers(1, 20, 200).astype(float)
    mu = rng.uniform(0.02, 0.98, 200)
    phi = rng.uniform(0.3, 30.0, 200)
    y = np.floor(rng.uniform(0, 1, 200) * (n + 1))
    for p in (phi, 2.5):
        ref = stats.betabinom.logpmf(y, n, mu * p, (1 - mu) * p)
        np.testing.assert_allclose(FAM.loglik(y, mu, n, p), ref, rtol=1e-12, atol=1e-12)
    # one trial: the Bernoulli whatever phi (no information on phi in 0/1 data)
    y1 = (rng.uniform(size=200) < mu).astype(float)
    np.testing.assert_allclose(
        FAM.loglik(y1, mu, np.ones(200), 3.0), stats.bernoulli.logpmf(y1, mu), atol=1e-12
    )
    with pytest.raises(DataError, match="needs dispersion"):
        FAM.loglik(y, mu, n)


def _bb_ml(y, n):
    """Direct maximum likelihood of the intercept-only beta-binomial by SciPy."""

    def nll(par):
        mu, phi = special.expit(par[0]), np.exp(par[1])
        return -np.sum(stats.betabinom.logpmf(y, n, mu * phi, (1 - mu) * phi))

    res = optimize.minimize(nll, [0.0, 1.0], method="Nelder-Mead", options={
        "xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000})  # fmt: skip
    return res.x[0], np.exp(res.x[1]), -res.fun


def test_mouse_litters_intercept_only_is_glmmtmb_and_direct_ml():
    """glmmTMB(cbind(dead, survived) ~ 1, family = betabinomial, data = d) on
    bayesglmm's mouse_litters (523 litters): logLik -777.692495806241, (Intercept)
    -2.312177303356, sigma(m) 13.688604000963. The direct ML by SciPy equals it, and the
    family's log-likelihood at glmmTMB's estimates is glmmTMB's logLik."""
    d = load("mouse_litters")
    y = d["dead"].to_numpy(float)
    n = (d["dead"] + d["survived"]).to_numpy(float)
    ll_tmb, b_tmb, phi_tmb = -777.692495806241, -2.312177303356, 13.688604000963
    ll_fam = FAM.loglik(y, np.full(y.size, special.expit(b_tmb)), n, phi_tmb).sum()
    assert ll_fam == pytest.approx(ll_tmb, rel=1e-9)
    b, phi, ll = _bb_ml(y, n)
    assert b == pytest.approx(b_tmb, rel=TMB_RTOL)
    assert phi == pytest.approx(phi_tmb, rel=TMB_RTOL)
    assert ll == pytest.approx(ll_tmb, rel=1e-9)
    # intra-litter correlation rho = 1 / (phi + 1)
    assert 1 / (phi + 1) == pytest.approx(0.0680, abs=1e-4)


@pytest.fixture(scope="module")
def laplace_fit(re_data):
    m = GLMM(FORMULA, re_data, family="betabinomial")
    dev, opt = fit_laplace_design(m.design)
    return m, dev, opt


def test_data_are_the_r_data(re_data):
    assert re_data.shape == (180, 4)
    assert int(re_data["y"].sum()) == RE_SUM_Y


RE_SUM_Y = 518


def test_laplace_random_intercept_is_glmmtmb(laplace_fit):
    """glmmTMB(cbind(y, n - y) ~ x + (1|g), family = betabinomial, data = d), d from
    _re_data(): logLik -339.828295522157; fixef -0.558088951374 0.668021200301;
    sigma(m) 3.948620314282; VarCorr g 0.165588261932."""
    _, dev, opt = laplace_fit
    assert dev.names == ["theta[g]", "Intercept", "x", "log(phi)"]
    theta, beta, phi = dev.split(opt.x)
    assert -0.5 * dev(opt.x) == pytest.approx(-339.828295522157, rel=TMB_RTOL)
    np.testing.assert_allclose(beta, [-0.558088951374, 0.668021200301], rtol=TMB_RTOL)
    assert phi == pytest.approx(3.948620314282, rel=TMB_RTOL)
    assert theta[0] ** 2 == pytest.approx(0.165588261932, rel=TMB_RTOL)
    # the Laplace curvature is the observed information (as glmmTMB) whatever is asked
    assert dev.problem.curvature == "observed"
    # the exact gradient (theta, beta; log phi by differences) away from the optimum equals
    # central differences of the deviance (about 1e-8 relative apart)
    x = np.array([0.5, -0.3, 0.5, np.log(3.0)])
    _, grad = dev.value_and_grad(x)
    np.testing.assert_allclose(grad, dev.fd_gradient(x, dev.state_at(x)), rtol=1e-6)


def _marginal_loglik(d, beta, var, phi, nodes=80):
    """The random-intercept marginal log-likelihood by Gauss-Hermite quadrature in NumPy
    (non-adaptive, ``nodes`` points), independent of the engines."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    eta0 = beta[0] + beta[1] * d["x"].to_numpy()
    y, n = d["y"].to_numpy(float), d["n"].to_numpy(float)
    total = 0.0
    for _, rows in d.groupby("g").indices.items():
        eta = eta0[rows, None] + np.sqrt(var) * z[None, :]
        mu = special.expit(eta)
        ll = stats.betabinom.logpmf(y[rows, None], n[rows, None], mu * phi, (1 - mu) * phi)
        total += special.logsumexp(ll.sum(axis=0), b=w)
    return total


def test_agq_is_the_marginal_likelihood(laplace_fit, re_data):
    """AGQ with one node is Laplace; with 12 nodes its optimum's log-likelihood is the
    marginal likelihood computed by plain quadrature here, and its gradient is zero."""
    m, dev, opt = laplace_fit
    structure = quadrature_structure(m.design)
    agq1 = AGQDeviance(dev.problem, 1, structure)
    assert agq1(opt.x) == pytest.approx(dev(opt.x), rel=1e-10)
    agq = AGQDeviance(dev.problem, 12, structure)
    res = minimize_deviance(agq, opt.x, maxiter=200)
    theta, beta, phi = agq.split(res.x)
    ll = -0.5 * agq(res.x)
    assert ll == pytest.approx(_marginal_loglik(re_data, beta, theta[0] ** 2, phi), abs=1e-6)
    assert ll > -0.5 * agq(opt.x)  # the Laplace optimum is not the AGQ one
    assert ll != pytest.approx(-0.5 * dev(opt.x), abs=1e-3)
    h = 1e-5
    for j in range(res.x.size):
        e = np.zeros(res.x.size)
        e[j] = h
        assert abs((agq(res.x + e) - agq(res.x - e)) / (2 * h)) < 1e-3


def test_pymc_likelihood_and_prior(re_data):
    """The PyMC model: BetaBinomial rows equal SciPy's and phi carries its Gamma(0.01, 0.01)
    prior: the model's log-density moves with phi as SciPy's sum plus the prior."""
    from bayesglmm.bayes.builder import build_pymc_model

    m = GLMM(FORMULA, re_data, family="betabinomial")
    model = build_pymc_model(m.design, m.priors)
    assert "phi" in [v.name for v in model.free_RVs]
    logp = model.compile_logp(jacobian=False)
    point = model.initial_point()
    y, n, x = (re_data[c].to_numpy(float) for c in ("y", "n", "x"))

    def at(phi):
        pt = dict(point)
        pt.update({"Intercept": 0.2, "x": -0.3, "phi_log__": np.log(phi)})
        return float(logp(pt))

    def ref(phi):
        mu = special.expit(0.2 - 0.3 * x)  # random effects at 0 (initial point)
        ll = stats.betabinom.logpmf(y, n, mu * phi, (1 - mu) * phi).sum()
        return ll + stats.gamma.logpdf(phi, 0.01, scale=1 / 0.01)

    assert at(5.0) - at(2.0) == pytest.approx(ref(5.0) - ref(2.0), rel=1e-9)


def test_simulate_recovers_mean_and_variance():
    """40,000 draws at n = 10, mu = 0.3, phi = 4: mean 3 and variance n mu (1 - mu)
    (1 + (n - 1) / (phi + 1)) = 5.88, within 5 Monte Carlo standard errors (from the
    family's cumulants)."""
    size, n, mu, phi = 40_000, 10.0, 0.3, 4.0
    y = FAM.simulate(np.full(size, mu), np.random.default_rng(3), np.full(size, n), phi)
    k1, k2, _, k4 = (float(np.ravel(v)[0]) for v in FAM.cumulants(np.array([mu]), n, phi))
    assert k1 == pytest.approx(3.0) and k2 == pytest.approx(5.88)
    assert abs(y.mean() - k1) < 5 * np.sqrt(k2 / size)
    assert abs(y.var() - k2) < 5 * np.sqrt((k4 + 2 * k2**2) / size)
    # a binomial variance (2.1) would fail this; the same seed gives the same draws
    y2 = FAM.simulate(np.full(size, mu), np.random.default_rng(3), np.full(size, n), phi)
    np.testing.assert_array_equal(y, y2)


def test_simulate_a_glmm_response():
    """bayesglmm.model.simulate draws the family's response: 20,000 rows of 10 trials at
    mu = 0.3, phi = 4, with a random intercept of variance 0 (the family alone)."""
    from bayesglmm.model.simulate import simulate

    frame = pd.DataFrame({"g": np.arange(20_000) % 50})
    out = simulate(
        "cbind(y, f) ~ 1 + (1|g)", frame, {"Intercept": special.logit(0.3)}, {"g": 0.0},
        family="betabinomial", dispersion=4.0, trials=10, random_seed=4,
    )  # fmt: skip
    y = out["y"].to_numpy(float)
    assert np.all(out["y"] + out["f"] == 10)
    k1, k2, _, k4 = (float(np.ravel(v)[0]) for v in FAM.cumulants(np.array([0.3]), 10.0, 4.0))
    assert abs(y.mean() - k1) < 5 * np.sqrt(k2 / y.size)
    assert abs(y.var() - k2) < 5 * np.sqrt((k4 + 2 * k2**2) / y.size)
    with pytest.raises(DataError, match="needs dispersion"):
        simulate("cbind(y, f) ~ 1", frame, {"Intercept": 0.0}, family="betabinomial", trials=5)


@pytest.mark.parametrize("method", ["gibbs", "pql", "mbp", "kuk", "mcem", "gee", "hlik", "lmm"])
def test_other_methods_refuse_with_a_reason(re_data, method):
    m = GLMM(FORMULA, re_data, family="betabinomial")
    with pytest.raises(MethodError, match="betabinomial|beta-binomial"):
        m.fit(method)


def test_compiled_nuts_refuses_and_support_is_checked(re_data):
    from bayesglmm.bayes import compiled

    m = GLMM(FORMULA, re_data, family="betabinomial")
    assert "betabinomial/logit" in compiled.unsupported_reason(m)
    bad = re_data.assign(y=re_data["n"] + 1)
    with pytest.raises(DataError, match="more successes than trials"):
        GLMM(FORMULA, bad, family="betabinomial")
    binary = re_data.assign(y=(re_data["y"] > 0).astype(int))
    with pytest.raises(DataError, match="phi is not identified"):
        GLMM("y ~ x + (1|g)", binary, family="betabinomial")


def test_propriety_knows_phi(re_data):
    from bayesglmm.propriety.check import check_propriety

    m = GLMM(FORMULA, re_data, family="betabinomial")
    assert check_propriety(m).proper is True  # the default Gamma prior on phi is proper
    flat = {"Intercept": priors.Flat(), "x": priors.Flat()}
    sep = re_data.assign(y=np.where(re_data["x"] > 0, re_data["n"], 0))
    assert check_propriety(GLMM(FORMULA, sep, family="betabinomial", priors=flat)).proper is False
    assert (
        check_propriety(GLMM(FORMULA, re_data, family="betabinomial", priors=flat)).proper is None
    )


def test_fit_pipeline_reports_phi(re_data):
    """GLMM.fit by Laplace and AGQ returns phi as a dispersion row (glmmTMB's sigma(m)) and
    the same log-likelihood as the deviance function above; the report names it."""
    m = GLMM(FORMULA, re_data, family="betabinomial")
    fit = m.fit("laplace")
    assert fit.dispersion["phi"] == pytest.approx(3.948620314282, rel=TMB_RTOL)
    assert fit.loglik == pytest.approx(-339.828295522157, rel=TMB_RTOL)
    assert "phi" in fit.table.index and np.isfinite(fit.table.loc["phi", "std_error"])
    assert "phi" in fit.report()
    agq = m.fit("agq", n_quad=1)
    assert agq.loglik == pytest.approx(fit.loglik, rel=1e-8)
