"""PQL (Breslow & Clayton 1993) against R: nlme-based PQL loops and MASS::glmmPQL.

R 4.2.2, MASS 7.3-58.2, nlme 3.1-162. ``glmmPQL`` always fits its working model by ML
with the residual variance estimated; the other references come from the same loop with
the method and ``sigma`` of ``nlme::lme`` as arguments (``pql()`` below), iterated to a
relative change of ``1e-10``::

    pql <- function(fixed, random, family, data, method, sigma, tol = 1e-20, niter = 200) {
      family <- family()
      fit0 <- glm(formula = fixed, family = family, data = data)
      w <- fit0$prior.weights; eta <- fit0$linear.predictors
      data$zz <- eta + fit0$residuals; data$invwt <- 1 / fit0$weights
      fx <- fixed; fx[[2L]] <- quote(zz)
      for (i in seq_len(niter)) {
        fit <- lme(fx, random = random, data = data, method = method,
                   weights = varFixed(~invwt),
                   control = lmeControl(sigma = sigma, msMaxIter = 500, maxIter = 500,
                                        niterEM = 100, tolerance = 1e-10, msTol = 1e-12))
        etaold <- eta; eta <- fitted(fit)
        if (sum((eta - etaold)^2) / sum(eta^2) < tol) break
        mu <- family$linkinv(eta); me <- family$mu.eta(eta)
        data$zz <- eta + (fit0$y - mu) / me
        data$invwt <- 1 / (w * me^2 / family$variance(mu))
      }
      fit
    }
    # sigma = 1: dispersion fixed; sigma = 0: estimated. Crossed salamander terms:
    # random = list(dummy = pdBlocked(list(pdIdent(~Female - 1), pdIdent(~Male - 1))))
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.optimize
from threadpoolctl import threadpool_limits

from bayesglmm import GLMM, MethodError
from bayesglmm.frequentist import pql
from bayesglmm.frequentist.lmm import LMMProblem
from bayesglmm.frequentist.pql import PQLConvergenceWarning, PQLWarning, working_response

#: agreement required of PQL with R: the R values (bayesglmm/data/README.md) carry 4 decimals
TOL_R = 1e-3
#: nlme's values at convergence (8 significant digits) against ours at convergence: both
#: solve the same fixed point; the differences seen are below 1e-6
TOL_R_TIGHT = 1e-5
#: the fixed-point checks below recompute the working model from a fit converged to 1e-10
TOL_FIXED_POINT = 1e-6

SALAMANDER = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1|herd)"
SEEDS = "cbind(germ, n - germ) ~ x1 * x2 + (1|plate)"
MOUSE = "cbind(dead, survived) ~ 1 + (1|litter)"


def _fit(model, **options):
    return model.fit(method="pql", progressbar=False, **options)


def _check(fit, fixef, variances, tol):
    np.testing.assert_allclose(fit.fixed_effects.to_numpy(), fixef, atol=tol)
    np.testing.assert_allclose(fit.variance_components.to_numpy(), variances, atol=tol)


# --------------------------------------------------------------------------------------
# dispersion fixed at 1, ML working model: R values


@pytest.mark.reference
@pytest.mark.parametrize(
    "formula, data, fixef, variances, tol",
    [
        # README "PQL, dispersion fixed at 1, ML working LMM";
        # pql(Mate ~ 0 + Cross, <crossed>, binomial, d, "ML", 1) at convergence:
        # 0.77820632 0.24483335 -1.48223684 0.76902480 | 0.6544160 0.5763956
        (SALAMANDER, "salamander", [0.7782, 0.2448, -1.4822, 0.7690], [0.6544, 0.5764], TOL_R),
        # pql(cbind(incidence, size - incidence) ~ period, ~ 1 | herd, binomial, cb, "ML", 1)
        (
            CBPP,
            "cbpp",
            [-1.35751018, -0.97936607, -1.11417220, -1.56331805],
            [0.3900761],
            TOL_R_TIGHT,
        ),
        # pql(cbind(germ, n - germ) ~ x1 * x2, ~ 1 | plate, binomial, se, "ML", 1)
        (
            SEEDS,
            "seeds",
            [-0.54427617, 0.09785308, 1.32637792, -0.80450730],
            [0.05408938],
            TOL_R_TIGHT,
        ),
    ],
)
def test_fixed_dispersion_ml_matches_r(formula, data, fixef, variances, tol, request):
    fit = _fit(GLMM(formula, request.getfixturevalue(data)), reml=False, tol=1e-10)
    _check(fit, fixef, variances, tol)
    assert fit.converged and fit.loglik is None and len(fit.dispersion) == 0


@pytest.mark.reference
@pytest.mark.parametrize(
    "formula, data, fixef, variances, dispersion",
    [
        # pql(Mate ~ 0 + Cross, <crossed>, binomial, d, "REML", 0)
        (
            SALAMANDER,
            "salamander",
            [0.92969741, 0.28335554, -1.80098510, 0.90328730],
            [1.4431899, 1.3051408],
            0.6622817,
        ),
        # pql(cbind(incidence, size - incidence) ~ period, ~ 1 | herd, binomial, cb, "REML", 0)
        (
            CBPP,
            "cbpp",
            [-1.3275085, -1.0159272, -1.1497896, -1.6049900],
            [0.334169],
            1.510397,
        ),
        # pql(cbind(germ, n - germ) ~ x1 * x2, ~ 1 | plate, binomial, se, "REML", 0)
        (
            SEEDS,
            "seeds",
            [-0.54306529, 0.08793808, 1.33161058, -0.81383558],
            [0.08309791],
            1.14285201,
        ),
    ],
)
def test_estimated_dispersion_reml_matches_r(formula, data, fixef, variances, dispersion, request):
    """REML working model with the residual variance estimated (nlme's ordinary REML)."""
    fit = _fit(GLMM(formula, request.getfixturevalue(data)), dispersion="estimated", tol=1e-10)
    _check(fit, fixef, variances, TOL_R_TIGHT)
    assert fit.dispersion["dispersion"] == pytest.approx(dispersion, abs=TOL_R_TIGHT)


# --------------------------------------------------------------------------------------
# dispersion fixed at 1, REML working model


class NlmeFixedSigmaREML(LMMProblem):
    """The criterion ``nlme::lme(method = "REML", control = lmeControl(sigma = 1))`` optimizes.

    Traced in nlme 3.1-162 (``logLik.reStruct``, the path taken with ``varFixed``
    weights): with ``sigma`` fixed, its REML objective is

        -1/2 (log|L|^2 + log|R_X|^2 + r^2) + (p/2) log r^2 - sqrt(r^2) / 2 + const,

    the restricted log-likelihood plus two terms left over from the profiled
    (sigma-estimated) formula: ``(p/2) log r^2`` and ``exp(lRSS) / (2 sigma)`` where
    ``lRSS = log(r^2) / 2``. Maximum likelihood with fixed sigma has no such terms and
    agrees with bayesglmm (test above).
    """

    has_gradient = False

    def solve(self, theta):
        sol = super().solve(theta)
        if self.reml and self.sigma is not None:
            sol.deviance += -self.data.p * np.log(sol.pwrss) + np.sqrt(sol.pwrss)
        return sol


@pytest.mark.reference
@pytest.mark.parametrize(
    "formula, data, fixef, variances",
    [
        # README "PQL, dispersion fixed at 1, REML working LMM";
        # pql(..., "REML", 1): 0.79129321 0.24786424 -1.50867670 0.78041880 | 0.7519397 0.6653166
        (SALAMANDER, "salamander", [0.7913, 0.2479, -1.5087, 0.7804], [0.7519, 0.6653]),
        # README cbpp "PQL, dispersion fixed at 1, REML"
        (CBPP, "cbpp", [-1.3636, -0.9728, -1.1078, -1.5559], [0.4367]),
        # README seeds "PQL, dispersion fixed at 1, REML"
        (SEEDS, "seeds", [-0.5428, 0.0853, 1.3332, -0.8165], [0.0783]),
    ],
)
def test_readme_fixed_dispersion_reml_values_are_nlme_criterion(
    formula, data, fixef, variances, request, monkeypatch
):
    """The README's REML rows come from nlme's fixed-sigma REML objective, not REML.

    With that objective substituted for the working model, bayesglmm's PQL reproduces them
    to 1e-3 (to 1e-5 against the 8-digit values); with the restricted likelihood itself
    (the default) the estimates differ, e.g. salamander var(Female) 0.7183 against 0.7519,
    seeds var(plate) 0.0978 against 0.0783. The next test checks the default against the
    restricted likelihood computed densely.
    """
    model = GLMM(formula, request.getfixturevalue(data))
    default = _fit(model)
    monkeypatch.setattr(pql, "LMMProblem", NlmeFixedSigmaREML)
    fit = _fit(model)
    _check(fit, fixef, variances, TOL_R)
    assert np.max(np.abs(default.variance_components.to_numpy() - variances)) > 1e-3


def _dense_reml_sigma1(z, w, X, Z, n_terms_cols):
    """Restricted log-likelihood with sigma = 1, maximized over log variances (dense)."""

    def negloglik(logv):
        G = np.concatenate([np.full(c, np.exp(v)) for v, c in zip(logv, n_terms_cols, strict=True)])
        V = np.diag(1.0 / w) + (Z * G) @ Z.T
        cV = scipy.linalg.cho_factor(V)
        VX = scipy.linalg.cho_solve(cV, X)
        XVX = X.T @ VX
        beta = np.linalg.solve(XVX, VX.T @ z)
        r = z - X @ beta
        nll = np.sum(np.log(np.diag(cV[0]))) + 0.5 * r @ scipy.linalg.cho_solve(cV, r)
        return nll + 0.5 * np.linalg.slogdet(XVX)[1], beta

    with threadpool_limits(1):
        res = scipy.optimize.minimize(
            lambda v: negloglik(v)[0],
            np.zeros(len(n_terms_cols)),
            method="BFGS",
            options={"gtol": 1e-8},
        )
    return np.exp(res.x), negloglik(res.x)[1]


@pytest.mark.parametrize("formula, data", [(SALAMANDER, "salamander"), (SEEDS, "seeds")])
def test_fixed_dispersion_reml_is_the_restricted_likelihood(formula, data, request):
    """At convergence the variances maximize the dense REML likelihood of the working data."""
    model = GLMM(formula, request.getfixturevalue(data))
    fit = _fit(model, tol=1e-10)
    d = model.design
    eta = d.X @ fit.fixed_effects.to_numpy() + d.offset
    eta = eta + d.Z @ np.concatenate([f.to_numpy().ravel() for f in fit.random_effects.values()])
    y, pw = pql._working_parts(d, None)
    z, w = working_response(d, eta, y, pw)
    cols = [t.n_levels for t in d.random]
    variances, beta = _dense_reml_sigma1(z, w, d.X, d.Z.toarray(), cols)
    np.testing.assert_allclose(fit.variance_components.to_numpy(), variances, rtol=1e-5)
    np.testing.assert_allclose(fit.fixed_effects.to_numpy(), beta, atol=TOL_FIXED_POINT)


def test_fixed_point_fixed_effects_and_blups_solve_the_mixed_model_equations(cbpp):
    """Henderson's equations of the final working model, solved densely, give beta and b."""
    model = GLMM(CBPP, cbpp)
    fit = _fit(model, tol=1e-10)
    d = model.design
    b = fit.random_effects["1|herd"].to_numpy().ravel()
    eta = d.X @ fit.fixed_effects.to_numpy() + d.Z @ b
    y, pw = pql._working_parts(d, None)
    z, w = working_response(d, eta, y, pw)
    X, Z = d.X, d.Z.toarray()
    C = np.hstack([X, Z])
    lhs = (C.T * w) @ C
    lhs[d.p :, d.p :] += np.eye(Z.shape[1]) / fit.variance_components["herd"]
    sol = np.linalg.solve(lhs, (C.T * w) @ z)
    np.testing.assert_allclose(sol[: d.p], fit.fixed_effects.to_numpy(), atol=TOL_FIXED_POINT)
    np.testing.assert_allclose(sol[d.p :], b, atol=TOL_FIXED_POINT)
    assert list(fit.random_effects["1|herd"].index) == [str(h) for h in range(1, 16)]


# --------------------------------------------------------------------------------------
# dispersion estimated: MASS::glmmPQL


@pytest.mark.reference
def test_salamander_matches_glmmpql(salamander):
    """README ``MASS::glmmPQL`` row; R 4.2.2, MASS 7.3-58.2::

        d$dummy <- factor(1); Female <- d$Female; Male <- d$Male
        f <- glmmPQL(Mate ~ 0 + Cross, family = binomial, data = d,
                     random = list(dummy = pdBlocked(list(pdIdent(~Female - 1),
                                                         pdIdent(~Male - 1)))))
        fixef(f)     # 0.91963845 0.28046047 -1.77896283 0.89398767
        VarCorr(f)   # Female 1.3477133, Male 1.2192735, Residual 0.6596253
        summary(f)$tTable[, 2]  # 0.36624302 0.35719763 0.39587084 0.36508039

    glmmPQL stops after 5 iterations (its relative change below 1e-3); converged, the
    values move by less than 5e-5.
    """
    fit = _fit(GLMM(SALAMANDER, salamander), reml=False, dispersion="estimated")
    _check(fit, [0.9196, 0.2805, -1.7790, 0.8940], [1.3477, 1.2193], TOL_R)
    assert fit.dispersion["dispersion"] == pytest.approx(0.660, abs=TOL_R)
    # summary.lme's sqrt(n / (n - p)) adjustment of ML standard errors included
    se = [0.36624302, 0.35719763, 0.39587084, 0.36508039]
    np.testing.assert_allclose(fit.fixed_effects_se.to_numpy(), se, rtol=TOL_R)
    assert fit.info["options"]["dispersion"] == "estimated" and fit.info["options"]["reml"] is False
    assert "dispersion" in fit.table.index and "var(Female)" in fit.table.index


@pytest.mark.reference
def test_mouse_litters_glmmpql_is_its_tenth_iterate(mouse_litters):
    """README ``MASS::glmmPQL`` mouse-litter values are the 10th of an oscillating sequence.

    R 4.2.2, MASS 7.3-58.2::

        load("cran/turboEM/implants.RData"); m <- implants
        m$litter <- factor(seq_len(nrow(m)))
        f <- glmmPQL(cbind(dead, survived) ~ 1, ~ 1 | litter, binomial, m)
        fixef(f)    # -1.997986027
        VarCorr(f)  # litter 0.2065067, Residual 1.1897568

    Tracing glmmPQL's loop shows the relative squared change of eta at iterations 1-10:
    0.050 0.066 0.21 0.095 0.039 0.060 0.31 0.10 0.039 0.56. With one observation per
    litter the working model's residual and litter variances trade off (every other fit
    has sigma^2 ~ 1e-9), the iteration never settles, and glmmPQL returns its
    ``niter = 10``-th fit without a warning. Its rule reads ``tol=1e-3, max_iter=10`` here.
    """
    model = GLMM(MOUSE, mouse_litters)
    with pytest.warns(PQLConvergenceWarning, match="did not converge in 10 iterations"):
        fit = _fit(model, reml=False, dispersion="estimated", tol=1e-3, max_iter=10)
    assert fit.fixed_effects.iloc[0] == pytest.approx(-1.997986, abs=TOL_R)
    assert fit.variance_components["litter"] == pytest.approx(0.2065067, abs=TOL_R)
    assert fit.dispersion["dispersion"] == pytest.approx(1.1897568, abs=TOL_R)
    assert fit.converged is False
    assert fit.convergence["details"]["relative_change"] ** 2 == pytest.approx(0.5614, abs=TOL_R)


def test_non_convergence_warns_with_the_last_change(mouse_litters):
    model = GLMM(MOUSE, mouse_litters)
    with pytest.warns(PQLConvergenceWarning) as record:
        fit = _fit(model, reml=False, dispersion="estimated", max_iter=20)
    message = str(record[0].message)
    last = fit.convergence["details"]["relative_change"]
    assert f"{last:.3g}" in message and "dispersion='fixed'" in message
    assert last > 1e-2 and fit.convergence["iterations"] == 20
    # the Breslow-Clayton PQL (dispersion fixed) converges on the same data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fixed = _fit(model)
    assert fixed.converged and fixed.convergence["details"]["relative_change"] < 1e-6


# --------------------------------------------------------------------------------------
# redirects, degenerate fits and bad input


def test_gaussian_identity_is_redirected_to_the_lmm(cbpp):
    data = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])
    model = GLMM("prop ~ period + (1|herd)", data, family="gaussian")
    with pytest.warns(PQLWarning, match="linear mixed model itself"):
        fit = _fit(model, reml=False)
    lmm = model.fit(method="lmm", reml=False)
    assert fit.method == "lmm"
    np.testing.assert_allclose(fit.fixed_effects, lmm.fixed_effects)
    assert fit.loglik == pytest.approx(lmm.loglik)


def test_complete_separation_stops_with_a_warning():
    rng = np.random.default_rng(6)
    n = 200
    x = rng.normal(size=n)
    df = pd.DataFrame({"y": (x > 0).astype(int), "x": x, "g": rng.integers(0, 10, n)})
    with pytest.warns(PQLWarning, match="numerically 0 or 1"):
        fit = _fit(GLMM("y ~ x + (1|g)", df))
    assert not fit.converged
    assert "complete separation" in fit.convergence["details"]["separation"]
    assert "numerically 0 or 1" in fit.convergence["messages"][0]


@pytest.mark.parametrize(
    "options, match",
    [
        ({"dispersion": "free"}, "dispersion must be"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": -1.0}, "tol"),
        ({"reml": "yes"}, "reml"),
    ],
)
def test_bad_options(cbpp, options, match):
    with pytest.raises(MethodError, match=match):
        _fit(GLMM(CBPP, cbpp), **options)


def test_negative_binomial_needs_alpha_and_gaussian_log_needs_estimated_dispersion(cbpp):
    nb = GLMM("incidence ~ period + (1|herd)", cbpp, family="negative_binomial")
    with pytest.raises(MethodError, match="alpha"):
        _fit(nb)
    fit = _fit(nb, alpha=5.0)
    assert fit.converged and fit.info["options"]["alpha"] == 5.0
    data = cbpp.assign(inc1=cbpp["incidence"] + 1.0)
    gl = GLMM("inc1 ~ period + (1|herd)", data, family="gaussian", link="log")
    with pytest.raises(MethodError, match="estimated"):
        _fit(gl)
    assert _fit(gl, dispersion="estimated").converged


def test_poisson_fixed_point(cbpp):
    """Poisson log-link PQL: the working model at convergence reproduces the fit."""
    model = GLMM("incidence ~ period + offset(log(size)) + (1|herd)", cbpp, family="poisson")
    fit = _fit(model, tol=1e-10)
    d = model.design
    b = fit.random_effects["1|herd"].to_numpy().ravel()
    eta = d.X @ fit.fixed_effects.to_numpy() + d.Z @ b + d.offset
    z, w = working_response(d, eta, d.y, np.ones(d.n))
    C = np.hstack([d.X, d.Z.toarray()])
    lhs = (C.T * w) @ C
    lhs[d.p :, d.p :] += np.eye(d.Z.shape[1]) / fit.variance_components["herd"]
    sol = np.linalg.solve(lhs, (C.T * w) @ z)
    np.testing.assert_allclose(sol[: d.p], fit.fixed_effects.to_numpy(), atol=TOL_FIXED_POINT)


def test_progressbar_shows_iterations(cbpp, capsys):
    GLMM(CBPP, cbpp).fit(method="pql", progressbar=True)
    assert "PQL" in capsys.readouterr().err


def test_correlated_vector_term_fixed_point():
    """(1 + x | g): BLUPs, variances and correlation solve the final working model."""
    rng = np.random.default_rng(7)
    n, n_g = 600, 30
    g = rng.integers(0, n_g, n)
    x = rng.normal(size=n)
    b = rng.multivariate_normal([0, 0], [[0.8, 0.3], [0.3, 0.5]], size=n_g)
    eta = -0.3 + 0.7 * x + b[g, 0] + b[g, 1] * x
    trials = rng.integers(3, 8, n)
    succ = rng.binomial(trials, 1 / (1 + np.exp(-eta)))
    df = pd.DataFrame({"s": succ, "f": trials - succ, "x": x, "g": g})
    model = GLMM("cbind(s, f) ~ x + (1 + x | g)", df)
    fit = _fit(model, reml=False, tol=1e-10)
    d = model.design
    blups = fit.random_effects["1+x|g"]
    assert list(blups.columns) == ["Intercept", "x"] and blups.shape == (n_g, 2)
    v0, v1 = fit.variance_components[["g|Intercept", "g|x"]]
    rho = fit.re_correlations["g|Intercept,x"]
    S = np.array([[v0, rho * np.sqrt(v0 * v1)], [rho * np.sqrt(v0 * v1), v1]])
    bvec = blups.to_numpy().ravel()  # level-major, as Z's columns
    eta_hat = d.X @ fit.fixed_effects.to_numpy() + d.Z @ bvec
    y, pw = pql._working_parts(d, None)
    z, w = working_response(d, eta_hat, y, pw)
    C = np.hstack([d.X, d.Z.toarray()])
    lhs = (C.T * w) @ C
    lhs[d.p :, d.p :] += np.kron(np.eye(n_g), np.linalg.inv(S))
    sol = np.linalg.solve(lhs, (C.T * w) @ z)
    np.testing.assert_allclose(sol[: d.p], fit.fixed_effects.to_numpy(), atol=TOL_FIXED_POINT)
    np.testing.assert_allclose(sol[d.p :], bvec, atol=TOL_FIXED_POINT)
