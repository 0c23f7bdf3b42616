"""The sparse weighted LMM (lme4's profiled deviance) against dense algebra and lmer."""

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.optimize
from threadpoolctl import threadpool_limits

from bayesglmm import GLMM, MethodError
from bayesglmm.frequentist.covariance import CovarianceFactor
from bayesglmm.frequentist.lmm import LMMProblem, lmm_data

#: the dense reference optimum is found by BFGS (finite differences) on log-Cholesky
#: parameters to a gradient of 1e-6; estimates of the two optimizers agree to ~2e-7 relative
TOL_DENSE = 2e-5
#: the maximized criterion (about -300 here) agrees to ~1e-12 relative
TOL_CRIT = 1e-9
#: lmer's printed values (10 significant digits) and its own optimizer tolerance (BOBYQA,
#: xtol_abs 1e-10): agreement to 1e-6 on estimates, 1e-7 on the log-likelihood
TOL_LMER = 1e-6
#: variances near zero (cbpp herd: 7e-5) are compared on an absolute scale
TOL_LMER_ABS = 1e-7


# --------------------------------------------------------------------------------------
# an independent dense implementation: V = Z G Z' + sigma^2 W^-1, maximized with scipy


def _dense_fit(y, X, Z_blocks, w, reml, start):
    """Maximize the (RE)ML log-likelihood written with the marginal covariance V.

    ``Z_blocks`` lists (Z_t dense (n, L*k), k, correlated); parameters are, per term, the
    log-Cholesky entries of its covariance, then log sigma.
    """
    n, p = X.shape

    def unpack(par):
        covs, pos = [], 0
        for _, k, corr in Z_blocks:
            T = np.zeros((k, k))
            if corr:
                for j in range(k):
                    for i in range(j, k):
                        T[i, j] = np.exp(par[pos]) if i == j else par[pos]
                        pos += 1
            else:
                for j in range(k):
                    T[j, j] = np.exp(par[pos])
                    pos += 1
            covs.append(T @ T.T)
        return covs, np.exp(2 * par[pos])

    def negloglik(par):
        covs, s2 = unpack(par)
        V = np.diag(s2 / w)
        for (Zt, k, _), S in zip(Z_blocks, covs, strict=True):
            G = np.kron(np.eye(Zt.shape[1] // k), S)
            V += Zt @ G @ Zt.T
        cV = scipy.linalg.cho_factor(V)
        VX = scipy.linalg.cho_solve(cV, X)
        XVX = X.T @ VX
        beta = np.linalg.solve(XVX, VX.T @ y)
        r = y - X @ beta
        ll = -0.5 * (2 * np.sum(np.log(np.diag(cV[0]))) + r @ scipy.linalg.cho_solve(cV, r))
        if reml:
            ll += -0.5 * (np.linalg.slogdet(XVX)[1] + (n - p) * np.log(2 * np.pi))
        else:
            ll += -0.5 * n * np.log(2 * np.pi)
        return -ll, beta

    with threadpool_limits(1):  # small dense matrices: BLAS threads only cost time
        res = scipy.optimize.minimize(
            lambda q: negloglik(q)[0], start, method="BFGS", options={"gtol": 1e-6}
        )
    covs, s2 = unpack(res.x)
    return {"covs": covs, "sigma2": s2, "beta": negloglik(res.x)[1], "loglik": -res.fun}


def _simulated(seed, n=240):
    """Crossed (1 + x | g) correlated and (1 | h), with a fixed covariate."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 12, n)
    h = rng.integers(0, 9, n)
    x = rng.normal(size=n)
    Sg = np.array([[1.0, 0.4], [0.4, 0.5]])
    bg = rng.multivariate_normal([0, 0], Sg, size=12)
    bh = rng.normal(0, 0.7, 9)
    y = 1.0 + 0.5 * x + bg[g, 0] + bg[g, 1] * x + bh[h] + rng.normal(0, 0.8, n)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})


def _dense_blocks(design):
    return [(t.Z.toarray(), t.n_columns, t.correlated) for t in design.random]


def _start(design):
    par = []
    for t in design.random:
        par += [0.0] * (t.n_columns * (t.n_columns + 1) // 2 if t.correlated else t.n_columns)
    return np.array(par + [0.0])


# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reml", [True, False])
def test_vector_term_and_crossed_match_dense_likelihood(reml):
    """(1 + x | g) correlated, crossed with (1 | h): fit_lmm equals a dense REML/ML fit."""
    data = _simulated(1)
    model = GLMM("y ~ x + (1 + x | g) + (1 | h)", data, family="gaussian")
    fit = model.fit(method="lmm", reml=reml)
    d = model.design
    ref = _dense_fit(d.y, d.X, _dense_blocks(d), np.ones(d.n), reml, _start(d))
    assert fit.loglik == pytest.approx(ref["loglik"], abs=TOL_CRIT * abs(ref["loglik"]))
    np.testing.assert_allclose(fit.fixed_effects.to_numpy(), ref["beta"], rtol=TOL_DENSE)
    Sg, Sh = ref["covs"]
    expected = [Sg[0, 0], Sg[1, 1], Sh[0, 0]]
    np.testing.assert_allclose(fit.variance_components.to_numpy(), expected, rtol=TOL_DENSE)
    cor = Sg[0, 1] / np.sqrt(Sg[0, 0] * Sg[1, 1])
    assert fit.re_correlations.iloc[0] == pytest.approx(cor, rel=TOL_DENSE)
    assert fit.dispersion["sigma"] ** 2 == pytest.approx(ref["sigma2"], rel=TOL_DENSE)
    assert list(fit.variance_components.index) == ["g|Intercept", "g|x", "h"]
    assert fit.random_effects["1+x|g"].shape == (12, 2)
    assert fit.converged


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("sigma", [None, 1.3])
def test_weighted_nested_match_dense_likelihood(reml, sigma):
    """Nested (1 | a/b) with precision weights, sigma profiled or held fixed."""
    rng = np.random.default_rng(2)
    n = 200
    a = rng.integers(0, 8, n)
    b = rng.integers(0, 3, n)
    w = rng.uniform(0.3, 3.0, n)
    y = 2.0 + 0.9 * rng.normal(size=8)[a] + 0.6 * rng.normal(size=(8, 3))[a, b]
    y = y + rng.normal(size=n) * 1.1 / np.sqrt(w)
    df = pd.DataFrame({"y": y, "a": a, "b": b, "x": rng.normal(size=n)})
    model = GLMM("y ~ x + (1 | a/b)", df, family="gaussian")
    d = model.design
    cf = CovarianceFactor(d)
    problem = LMMProblem(lmm_data(d.y, d.X, d.Z, w, d.random), cf, reml=reml, sigma=sigma)
    sol = problem.optimize()

    blocks = _dense_blocks(d)
    if sigma is None:
        ref = _dense_fit(d.y, d.X, blocks, w, reml, _start(d))
    else:
        ref = _dense_fixed_sigma(d.y, d.X, blocks, w, reml, sigma)
    assert -0.5 * sol.deviance == pytest.approx(ref["loglik"], abs=TOL_CRIT * abs(ref["loglik"]))
    np.testing.assert_allclose(sol.beta, ref["beta"], rtol=TOL_DENSE)
    var = cf.variances(sol.theta) * sol.sigma2
    np.testing.assert_allclose(var, [c[0, 0] for c in ref["covs"]], rtol=TOL_DENSE)
    assert sol.sigma2 == pytest.approx(ref["sigma2"], rel=TOL_DENSE)


def _dense_fixed_sigma(y, X, blocks, w, reml, sigma):
    """Dense fit with sigma held at ``sigma`` (log-variance parameters of scalar terms)."""
    n, p = X.shape

    def negloglik(par):
        V = np.diag(sigma**2 / w)
        for (Zt, _, _), lv in zip(blocks, par, strict=True):
            V += np.exp(lv) * Zt @ Zt.T
        cV = scipy.linalg.cho_factor(V)
        VX = scipy.linalg.cho_solve(cV, X)
        XVX = X.T @ VX
        beta = np.linalg.solve(XVX, VX.T @ y)
        r = y - X @ beta
        m = n - p if reml else n
        ll = -0.5 * (2 * np.sum(np.log(np.diag(cV[0]))) + r @ scipy.linalg.cho_solve(cV, r))
        ll += -0.5 * m * np.log(2 * np.pi)
        if reml:
            ll += -0.5 * np.linalg.slogdet(XVX)[1]
        return -ll, beta

    with threadpool_limits(1):
        res = scipy.optimize.minimize(
            lambda q: negloglik(q)[0],
            np.zeros(len(blocks)),
            method="BFGS",
            options={"gtol": 1e-6},
        )
    return {
        "covs": [np.array([[np.exp(v)]]) for v in res.x],
        "sigma2": sigma**2,
        "beta": negloglik(res.x)[1],
        "loglik": -res.fun,
    }


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("sigma", [None, 0.8])
def test_analytic_gradient_matches_finite_differences(reml, sigma):
    """The exact gradient of the profiled criterion (diagonal Lambda, weights)."""
    data = _simulated(3)
    model = GLMM("y ~ x + (1 | g) + (1 | h)", data, family="gaussian")
    d = model.design
    w = np.random.default_rng(4).uniform(0.5, 2.0, d.n)
    problem = LMMProblem(lmm_data(d.y, d.X, d.Z, w, d.random), CovarianceFactor(d), reml, sigma)
    assert problem.has_gradient
    theta = np.array([0.7, 0.4])
    _, grad = problem.deviance_and_gradient(theta)
    h = 1e-6
    fd = [
        (problem.deviance(theta + h * e) - problem.deviance(theta - h * e)) / (2 * h)
        for e in np.eye(2)
    ]
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------
# lme4 reference values


@pytest.mark.reference
@pytest.mark.parametrize(
    "reml, fixef, se, var_herd, sigma2, loglik",
    [
        (
            True,
            [0.2197947632, -0.1457384708, -0.1304203234, -0.1785391977],
            [0.03230118992, 0.04638930606, 0.04638930606, 0.04730702298],
            6.968063261e-05,
            1.558082242e-02,
            29.02893593,
        ),
        (
            False,
            [0.2197947632, -0.1457383507, -0.1304202032, -0.1785392055],
            [0.03112620795, 0.04470158357, 0.04470158357, 0.04558592282],
            6.488703721e-05,
            1.446772528e-02,
            39.01832569,
        ),
    ],
)
def test_cbpp_proportions_match_lmer(cbpp, reml, fixef, se, var_herd, sigma2, loglik):
    """Near-singular herd variance; values from R 4.2.2, lme4 1.1-31::

    cb <- read.csv("rdatasets/lme4/cbpp.csv"); cb$herd <- factor(cb$herd)
    cb$period <- factor(cb$period)
    ctl <- lmerControl(optCtrl = list(xtol_abs = 1e-10, ftol_abs = 1e-12))
    g <- lmer(incidence / size ~ period + (1 | herd), cb, REML = reml, control = ctl)
    fixef(g); sqrt(diag(vcov(g))); as.data.frame(VarCorr(g))[, 4]; logLik(g)
    """
    data = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])
    fit = GLMM("prop ~ period + (1|herd)", data, family="gaussian").fit(method="lmm", reml=reml)
    np.testing.assert_allclose(fit.fixed_effects.to_numpy(), fixef, rtol=TOL_LMER, atol=1e-9)
    np.testing.assert_allclose(fit.fixed_effects_se.to_numpy(), se, rtol=TOL_LMER)
    assert fit.variance_components["herd"] == pytest.approx(var_herd, abs=TOL_LMER_ABS)
    assert fit.dispersion["sigma"] ** 2 == pytest.approx(sigma2, rel=TOL_LMER)
    assert fit.loglik == pytest.approx(loglik, abs=TOL_LMER)
    assert fit.n_params == 6  # lmer's df
    assert fit.aic == pytest.approx(-2 * loglik + 12, abs=1e-5)


@pytest.mark.reference
@pytest.mark.parametrize(
    "reml, var, se, sigma2, loglik",
    [
        (True, [0.03398746148, 0.03073006309], 0.06208823585, 0.15279283908, -225.7037788),
        (False, [0.03235450861, 0.02924868412], 0.06120248834, 0.15230743393, -218.0502396),
    ],
)
def test_salamander_crossed_gaussian_matches_lmer(salamander, reml, var, se, sigma2, loglik):
    """Crossed (1|Female) + (1|Male), a linear probability model; R 4.2.2, lme4 1.1-31::

    d <- read.csv("rdatasets/lme4/salamander.csv")
    d$Female <- factor(d$Female); d$Male <- factor(d$Male)
    g <- lmer(Mate ~ 0 + Cross + (1 | Female) + (1 | Male), d, REML = reml,
              control = lmerControl(optCtrl = list(xtol_abs = 1e-10, ftol_abs = 1e-12)))
    fixef(g)  # 0.6666666667 0.5555555556 0.2111111111 0.6666666667 (balanced design)
    sqrt(diag(vcov(g))); as.data.frame(VarCorr(g))[, 4]; logLik(g)
    """
    model = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander, family="gaussian")
    fit = model.fit(method="lmm", reml=reml)
    np.testing.assert_allclose(
        fit.fixed_effects.to_numpy(), [2 / 3, 5 / 9, 19 / 90, 2 / 3], rtol=TOL_LMER
    )
    np.testing.assert_allclose(fit.fixed_effects_se.to_numpy(), se, rtol=1e-5)
    # lmer stops its optimizer within ~3e-7 of these variances (its logLik agrees to 1e-8)
    np.testing.assert_allclose(fit.variance_components.to_numpy(), var, atol=1e-6)
    assert fit.dispersion["sigma"] ** 2 == pytest.approx(sigma2, rel=1e-5)
    assert fit.loglik == pytest.approx(loglik, abs=TOL_LMER)


@pytest.mark.reference
@pytest.mark.parametrize(
    "reml, fixef, var, loglik",
    [
        (
            True,
            [0.2176886946, -0.1210657212, -0.1303802458, -0.1535483956],
            [0.003920924734, 0.189770554849],
            24.69047471,
        ),
        (
            False,
            [0.2177144250, -0.1212493647, -0.1305636442, -0.1537535013],
            [0.003586216549, 0.176637969758],
            34.62032248,
        ),
    ],
)
def test_weighted_lmm_matches_lmer(cbpp, reml, fixef, var, loglik):
    """Precision weights (``weights = size``); R 4.2.2, lme4 1.1-31::

    g <- lmer(incidence / size ~ period + (1 | herd), cb, weights = size, REML = reml,
              control = lmerControl(optCtrl = list(xtol_abs = 1e-10, ftol_abs = 1e-12)))
    fixef(g); as.data.frame(VarCorr(g))[, 4]  # herd variance, residual sigma^2
    logLik(g)
    """
    data = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])
    d = GLMM("prop ~ period + (1|herd)", data, family="gaussian").design
    w = cbpp["size"].to_numpy(dtype=float)
    sol = LMMProblem(lmm_data(d.y, d.X, d.Z, w, d.random), CovarianceFactor(d), reml).optimize()
    np.testing.assert_allclose(sol.beta, fixef, rtol=1e-5)
    assert sol.sigma2 * sol.theta[0] ** 2 == pytest.approx(var[0], rel=1e-4)
    assert sol.sigma2 == pytest.approx(var[1], rel=1e-5)
    assert -0.5 * sol.deviance == pytest.approx(loglik, abs=TOL_LMER)


# --------------------------------------------------------------------------------------
# boundary, singular fits and bad input


def test_zero_variance_is_exactly_zero_and_reported():
    """Group means all equal: the ML variance estimate is on the boundary."""
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(10), 6)
    e = rng.normal(size=60)
    e = e - np.bincount(g, e)[g] / 6  # every group mean is 0
    df = pd.DataFrame({"y": 3.0 + e, "g": g})
    fit = GLMM("y ~ 1 + (1|g)", df, family="gaussian").fit(method="lmm", reml=False)
    assert fit.variance_components["g"] == 0.0
    assert fit.convergence["singular"] is True
    assert fit.convergence["details"]["singular"] == ["variance of g is zero"]
    # sigma^2 is then the ML variance of y around its mean
    assert fit.dispersion["sigma"] ** 2 == pytest.approx(np.mean(e**2), rel=1e-10)


def test_lmm_refuses_non_gaussian_and_models_without_random_effects(cbpp):
    binomial = GLMM("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp)
    with pytest.raises(MethodError, match="Gaussian"):
        binomial.fit(method="lmm")
    data = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])
    fixed_only = GLMM("prop ~ period", data, family="gaussian")
    with pytest.raises(MethodError, match="no random-effect term"):
        fixed_only.fit(method="lmm")


def test_lmm_result_fields(salamander):
    model = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander, family="gaussian")
    fit = model.fit(method="lmm")
    assert fit.method == "lmm"
    assert list(fit.table.index) == [
        *fit.fixed_effects.index,
        "var(Female)",
        "var(Male)",
        "sigma",
    ]
    lower, upper = fit.table.loc["Cross[RR]", ["lower", "upper"]]
    assert upper - lower == pytest.approx(2 * 1.959964 * fit.fixed_effects_se["Cross[RR]"])
    # conditional modes against lme4 (R 4.2.2, lme4 1.1-31; the lmer call of
    # test_salamander_crossed_gaussian_matches_lmer with REML = TRUE):
    # head(ranef(g)$Female, 3): 0.10170657815 0.15732273081 0.07565549793;
    # head(ranef(g)$Male, 3): 0.16914046410 0.00196712866 0.16310146229;
    # sum(ranef(g)$Female[, 1]^2) 1.074787557, sum(ranef(g)$Male[, 1]^2) 0.9247925006.
    # lmer's optimum is within ~3e-7 of ours in the variances: 1e-5 in the modes.
    female, male = fit.random_effects["1|Female"], fit.random_effects["1|Male"]
    assert female.shape == (60, 1) and list(female.index[:3]) == ["1", "2", "3"]
    np.testing.assert_allclose(
        female.iloc[:3, 0], [0.10170657815, 0.15732273081, 0.07565549793], atol=1e-5
    )
    np.testing.assert_allclose(
        male.iloc[:3, 0], [0.16914046410, 0.00196712866, 0.16310146229], atol=1e-5
    )
    np.testing.assert_allclose(
        [(female**2).to_numpy().sum(), (male**2).to_numpy().sum()],
        [1.074787557, 0.9247925006],
        rtol=1e-4,
    )
    assert fit.info["options"]["reml"] is True
    assert fit.timing["total"] > 0


def test_sparse_schur_complement_gives_the_same_fit(monkeypatch):
    """Above DENSE_LIMIT the Schur complement is factored sparsely (finite-difference
    gradients then); the fit must not change."""
    import bayesglmm.frequentist.lmm as lmm
    import bayesglmm.model.linalg as linalg

    model = GLMM("y ~ x + (1 + x | g) + (1 | h)", _simulated(1), family="gaussian")
    dense = model.fit(method="lmm")
    monkeypatch.setattr(linalg, "DENSE_LIMIT", 0)
    monkeypatch.setattr(lmm, "DENSE_LIMIT", 0)
    sparse = model.fit(method="lmm")
    assert sparse.loglik == pytest.approx(dense.loglik, abs=1e-9)
    np.testing.assert_allclose(
        sparse.variance_components.to_numpy(), dense.variance_components.to_numpy(), rtol=1e-6
    )
