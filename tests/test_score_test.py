"""Lin's (1997) score test of variance components (bayesglmm.inference.score_test)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesglmm as bg
from bayesglmm.errors import MethodError, OptionError
from bayesglmm.frequentist.agq import AGQDeviance, quadrature_structure
from bayesglmm.frequentist.glm import fit_glm_design
from bayesglmm.frequentist.pirls import PirlsProblem
from bayesglmm.inference.score_test import (
    _global_parts,
    _tested,
    column_block,
    score_parts,
    score_test,
)
from bayesglmm.inference.variance_tests import VarianceTest

#: two-sided 99.9 % normal quantile: Monte Carlo checks fail falsely once in 1000 runs
Z999 = stats.norm.ppf(0.9995)


def _clustered(seed, n_groups=30, size=5, sd=0.0, family="binomial", link=None, trials=1):
    """One covariate, a random intercept of standard deviation ``sd`` (0: the null)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=g.size)
    h = rng.integers(0, 8, g.size)
    eta = 0.2 + 0.5 * x + rng.normal(0.0, sd, n_groups)[g]
    if family == "binomial":
        y = rng.binomial(trials, _family(family, link).link.linkinv(eta))
    elif family == "poisson":
        y = rng.poisson(np.exp(eta))
    else:
        y = eta + rng.normal(size=g.size)
    df = pd.DataFrame({"y": y, "x": x, "g": g.astype(str), "h": h.astype(str)})
    df["f"] = trials - y if family == "binomial" else 0
    return df


def _family(name, link=None):
    from bayesglmm.model.families import get_family

    return get_family(name, link)


# --------------------------------------------------------------------------- exact score
@pytest.mark.parametrize(
    ("family", "link", "formula"),
    [
        ("binomial", "logit", "cbind(y, f) ~ x + (1|g)"),
        ("binomial", "probit", "cbind(y, f) ~ x + (1|g)"),
        ("poisson", "log", "y ~ x + (1|g)"),
    ],
)
def test_score_is_the_derivative_of_the_integrated_loglik(family, link, formula):
    """``U`` equals ``d loglik / d sigma^2`` at 0, the log-likelihood integrated by the
    package's adaptive quadrature (25 nodes; at tiny variances the quadrature is exact to
    rounding) at the GLM estimate, by Richardson-extrapolated forward differences."""
    data = _clustered(11, n_groups=12, size=4, sd=0.4, family=family, trials=3)
    model = bg.GLMM(formula, data, family=family, link=link)
    parts = score_parts(model)
    design = model.design
    beta = parts.null_fit.beta
    dev = AGQDeviance(PirlsProblem(design), 25, quadrature_structure(design))

    def loglik(v):
        return -0.5 * dev(np.concatenate([[np.sqrt(v)], beta]))

    l0 = float(np.sum(design.family.loglik(design.y, trials=design.trials, eta=design.X @ beta)))
    assert loglik(0.0) == pytest.approx(l0, abs=1e-8)

    def fd(h):  # error O(h^2)
        return (4.0 * (loglik(h) - l0) - (loglik(2 * h) - l0)) / (2.0 * h)

    u1, u2 = fd(2e-4), fd(1e-4)
    # the O(h^2) error shrinks four-fold from u1 to u2: |u2 - U| <= |u1 - u2| / 3, doubled
    # for the rounding of the quadrature (deviance ~1e-12 relative, over h = 1e-4)
    tol = max(abs(u1 - u2), 1e-6 * abs(u2)) + 1e-6
    assert parts.raw[0] == pytest.approx(u2, abs=tol)
    # by hand: 1/2 {sum_g (sum_i s_i)^2 - sum_i W_obs_i}
    fam = design.family
    tr = fam.eta_terms(design.y, design.X @ beta, design.trials, second=True)
    idx = design.random[0].index
    by_group = np.bincount(idx, weights=tr.score)
    assert parts.raw[0] == pytest.approx(0.5 * (by_group @ by_group - tr.W_obs.sum()), rel=1e-10)


def test_information_and_bias_correction_by_simulation():
    """Under the null, the bias-corrected score at the GLM estimate has mean near 0 and
    variance the efficient information; the uncorrected score has a negative mean. 1500
    replicate responses of one design; tolerances are 99.9 % Monte Carlo bounds."""
    data = _clustered(3, n_groups=25, size=4)
    model = bg.GLMM("y ~ x + (1|g)", data, family="binomial")
    design = model.design
    _, blocks, names, _ = _tested(design, None)
    beta0 = np.array([0.2, 0.5])
    p = 1 / (1 + np.exp(-(design.X @ beta0)))
    rng = np.random.default_rng(5)
    U, raw, info = [], [], []
    for _ in range(1500):
        d = dataclasses.replace(design, y=rng.binomial(1, p).astype(float))
        g = fit_glm_design(d)
        null = type("Null", (), {"beta": g.beta})()
        parts = _global_parts(d, blocks, names, null)
        U.append(parts.U[0])
        raw.append(parts.raw[0])
        info.append(parts.info[0, 0])
    U, raw = np.array(U), np.array(raw)
    sd = U.std()
    # the uncorrected score is biased down by 1/2 tr((W - P) A) ~ 0.55 here (0.2 sd)
    assert raw.mean() < -Z999 * raw.std() / np.sqrt(raw.size)
    # Lin's correction removes the first-order bias; the O(1) remainder of the module
    # docstring stays: 1/4 (X'W')' I^-1 X'(W' h) - 1/4 sum W'' h at the true beta
    W = p * (1 - p)
    W1, W2 = W * (1 - 2 * p), W * (1 - 6 * W)
    X = design.X
    I_inv = np.linalg.inv(X.T @ (W[:, None] * X))
    h = np.einsum("ij,jk,ik->i", X, I_inv, X)
    remainder = 0.25 * (X.T @ W1) @ I_inv @ (X.T @ (W1 * h)) - 0.25 * np.sum(W2 * h)
    assert remainder == pytest.approx(0.223, abs=0.001)
    assert abs(U.mean() - remainder) < Z999 * sd / np.sqrt(U.size)
    assert abs(U.mean()) < abs(raw.mean())
    # variance of the sample variance ~ (kurtosis - 1) var^2 / N
    var, mean_info = U.var(), float(np.mean(info))
    se_var = np.sqrt((stats.kurtosis(U, fisher=False) - 1.0) / U.size) * var
    assert abs(var - mean_info) < Z999 * se_var + 0.05 * mean_info  # 5 %: O(1/n) terms


# --------------------------------------------------------------------------- hand derivations
def _gaussian_data(seed, sd=0.0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), 5)
    h = np.tile(np.arange(6), 10)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(0, 0.8, 12)[g] + rng.normal(0, sd, 6)[h] + rng.normal(size=60)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str), "h": h.astype(str)})


def _dense_score(y_star, V, X, A, nuisance):
    """REML score test of ``V + theta A`` at ``theta = 0`` with dense matrices."""
    Vi = np.linalg.inv(V)
    P = Vi - Vi @ X @ np.linalg.solve(X.T @ Vi @ X, X.T @ Vi)
    e = P @ y_star
    U = 0.5 * (e @ A @ e - np.trace(P @ A))
    mats = [A, *nuisance]
    info = np.array([[0.5 * np.trace(P @ a @ P @ b) for b in mats] for a in mats])
    eff = info[0, 0] - info[0, 1:] @ np.linalg.solve(info[1:, 1:], info[1:, 0])
    return U, eff


def test_gaussian_global_is_the_classical_score_test():
    """Hand derivation: ``r = (I - H) y``, ``phi = r'r / (n - p)``, ``U = 1/2 (r'Ar/phi^2 -
    tr(MA)/phi)``, ``I = 1/2 (tr(MAMA) - tr(MA)^2 / (n - p)) / phi^2``."""
    data = _gaussian_data(1)
    model = bg.GLMM("y ~ x + (1|g)", data, family="gaussian")
    d = model.design
    X, y = d.X, d.y
    n, p = X.shape
    M = np.eye(n) - X @ np.linalg.solve(X.T @ X, X.T)
    r = M @ y
    phi = r @ r / (n - p)
    Z = column_block(d.random[0], 0).toarray()
    A = Z @ Z.T
    U = 0.5 * (r @ A @ r / phi**2 - np.trace(M @ A) / phi)
    info = 0.5 * (np.trace(M @ A @ M @ A) - np.trace(M @ A) ** 2 / (n - p)) / phi**2
    res = score_test(model)
    assert res.statistic == pytest.approx(U / np.sqrt(info), rel=1e-9)
    assert res.p_value == pytest.approx(stats.norm.sf(U / np.sqrt(info)), rel=1e-9)
    # the same through the dense REML score with sigma^2 as nuisance (A_phi = I)
    U2, eff2 = _dense_score(y, phi * np.eye(n), X, A, [np.eye(n)])
    assert U2 == pytest.approx(U, rel=1e-9) and eff2 == pytest.approx(info, rel=1e-9)


def test_gaussian_term_given_another_against_dense_reml_score():
    """``(1|h)`` given ``(1|g)``: the null ``lmm`` fit's ``V = sigma^2 I + s_g^2 Z_g Z_g'``,
    dense ``P``, nuisance ``sigma^2`` and ``s_g^2``."""
    data = _gaussian_data(2, sd=0.5)
    model = bg.GLMM("y ~ x + (1|g) + (1|h)", data, family="gaussian")
    res = score_test(model, "(1|h)")
    null = res.fits["null"]
    assert null.method == "lmm" and "(1|h)" not in null.formula.replace(" ", "")
    d = model.design
    Zg = column_block(d.random[0], 0).toarray()
    Zh = column_block(d.random[1], 0).toarray()
    s2, vg = float(null.dispersion["sigma"]) ** 2, float(null.variance_components["g"])
    n = d.n
    V = s2 * np.eye(n) + vg * Zg @ Zg.T
    U, eff = _dense_score(d.y, V, d.X, Zh @ Zh.T, [np.eye(n), Zg @ Zg.T])
    assert res.statistic == pytest.approx(U / np.sqrt(eff), rel=1e-7)


@pytest.mark.parametrize("dense_max", [6000, 0])
def test_correlated_null_term_against_dense_reml_score(monkeypatch, dense_max):
    """``(1|h)`` given ``(1 + x|g)``: the null ``lmm`` fit's ``V = sigma^2 I + Z_g D Z_g'``
    (``C`` block diagonal: the dense Cholesky path, and with ``DENSE_MAX = 0`` the sparse
    LU path); nuisance ``sigma^2``, both variances and the covariance of ``g``."""
    import bayesglmm.inference.score_test as st

    monkeypatch.setattr(st, "DENSE_MAX", dense_max)
    rng = np.random.default_rng(7)
    data = _gaussian_data(3, sd=0.3)
    data["y"] += rng.normal(0, 0.6, 12)[data["g"].astype(int)] * data["x"]
    model = bg.GLMM("y ~ x + (1 + x|g) + (1|h)", data, family="gaussian")
    res = score_test(model, "(1|h)")
    null = res.fits["null"]
    d = model.design
    tg = d.random[0]
    Z0 = column_block(tg, 0).toarray()
    Z1 = column_block(tg, 1).toarray()
    Zh = column_block(d.random[1], 0).toarray()
    vc = null.variance_components
    v0, v1 = float(vc["g|Intercept"]), float(vc["g|x"])
    c01 = float(null.re_correlations["g|Intercept,x"]) * np.sqrt(v0 * v1)
    s2 = float(null.dispersion["sigma"]) ** 2
    n = d.n
    V = s2 * np.eye(n) + v0 * Z0 @ Z0.T + v1 * Z1 @ Z1.T + c01 * (Z0 @ Z1.T + Z1 @ Z0.T)
    nuisance = [np.eye(n), Z0 @ Z0.T, Z1 @ Z1.T, Z0 @ Z1.T + Z1 @ Z0.T]
    U, eff = _dense_score(d.y, V, d.X, Zh @ Zh.T, nuisance)
    assert res.statistic == pytest.approx(U / np.sqrt(eff), rel=1e-7)


def test_binomial_term_given_another_against_dense_working_model():
    """``(1|h)`` given ``(1|g)`` for Bernoulli data: the working vector ``Y* = X beta + Z b
    + (y - mu) / mu_eta`` of the null Laplace fit, ``V = W^{-1} + s_g^2 Z_g Z_g'``, dense."""
    data = _clustered(4, n_groups=20, size=6, sd=0.8)
    model = bg.GLMM("y ~ x + (1|g) + (1|h)", data, family="binomial")
    res = score_test(model, "h", correction=False)
    null = res.fits["null"]
    assert null.method == "laplace"
    d = model.design
    tg = d.random[0]
    Zg = column_block(tg, 0).toarray()
    Zh = column_block(d.random[1], 0).toarray()
    beta = null.fixed_effects.to_numpy()
    b = null.random_effects["1|g"].reindex(tg.levels)["Intercept"].to_numpy()
    eta = d.X @ beta + Zg @ b
    mu = 1 / (1 + np.exp(-eta))
    w = mu * (1 - mu)
    y_star = d.X @ beta + Zg @ b + (d.y - mu) / w
    vg = float(null.variance_components["g"])
    V = np.diag(1 / w) + vg * Zg @ Zg.T
    U, eff = _dense_score(y_star, V, d.X, Zh @ Zh.T, [Zg @ Zg.T])
    assert res.statistic == pytest.approx(U / np.sqrt(eff), rel=1e-6)
    assert res.p_value == pytest.approx(stats.norm.sf(U / np.sqrt(eff)), rel=1e-6)
    assert res.df == 1 and res.method == "score"
    # the working form's default reference is N(0, 1), even for the binomial family
    assert score_test(model, "h").p_value == res.p_value


def test_correlated_term_tests_its_diagonal_variances():
    data = _clustered(6, n_groups=20, size=6, sd=0.8, family="poisson")
    model = bg.GLMM("y ~ x + (1 + x|g)", data, family="poisson")
    res = score_test(model, "(1 + x|g)")
    assert res.df == 2 and "g|Intercept" in res.null_distribution and "g|x" in res.null_distribution
    parts = score_parts(model)
    z = parts.U.sum() / np.sqrt(parts.info.sum())
    assert res.statistic == pytest.approx(z, rel=1e-12)
    wald = parts.U @ np.linalg.solve(parts.info, parts.U)
    assert res.p_value_naive == pytest.approx(stats.chi2.sf(wald, 2), rel=1e-9)
    # one column of the correlated term: the null keeps (1|g)
    col = score_test(model, "g|x")
    assert col.df == 1 and col.term == "g|x"
    assert "(1|g)" in col.fits["null"].formula.replace(" ", "")


def test_satterthwaite_correction_matches_mean_and_variance():
    data = _clustered(8, n_groups=40, size=3)
    model = bg.GLMM("y ~ x + (1|g)", data, family="binomial")
    parts = score_parts(model)
    res = score_test(model)  # binomial: corrected by default
    E, I, S = parts.mean[0], parts.info[0, 0], parts.quad[0]
    kappa, nu = I / (2 * E), 2 * E**2 / I
    assert res.p_value == pytest.approx(stats.chi2.sf(S / kappa, nu), rel=1e-12)
    assert "chi2" in res.null_distribution
    plain = score_test(model, correction=False)
    assert plain.p_value == pytest.approx(stats.norm.sf(plain.statistic), rel=1e-12)
    assert plain.statistic == res.statistic


# --------------------------------------------------------------------------- size and power
@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_size_under_the_null(family):
    """200 null data sets (30 clusters of 5): the rejection rate at 0.05 lies in the 99.9 %
    binomial interval around 0.05."""
    n_sets = 200
    rej = 0
    for seed in range(n_sets):
        data = _clustered(1000 + seed, family=family)
        rej += score_test(bg.GLMM("y ~ x + (1|g)", data, family=family)).p_value < 0.05
    lo, hi = stats.binom.interval(0.999, n_sets, 0.05)
    assert lo <= rej <= hi, rej / n_sets


def test_power_at_variance_one_half():
    """40 data sets, 30 clusters of 10, random-intercept variance 0.5: Bernoulli power is
    0.83 (200 sets, seeds 5000-5199) and Poisson power about 1; the check (more than half
    of Bernoulli and 95 % of Poisson sets rejected; P(<= 20 | 0.83) < 1e-4) fails for a
    test without power."""
    sd = np.sqrt(0.5)
    rej = {"binomial": 0, "poisson": 0}
    for seed in range(40):
        for family in rej:
            data = _clustered(2000 + seed, size=10, sd=sd, family=family)
            rej[family] += score_test(bg.GLMM("y ~ x + (1|g)", data, family=family)).p_value < 0.05
    assert rej["binomial"] > 20 and rej["poisson"] >= 38, rej


# --------------------------------------------------------------------------- results and errors
def test_result_fields_and_fit_input():
    data = _clustered(9, n_groups=20, size=6, sd=0.8)
    fit = bg.GLMM("y ~ x + (1|g) + (1|h)", data, family="binomial").fit(method="laplace")
    res = score_test(fit, "(1|h)")
    assert isinstance(res, VarianceTest)
    assert res.method == "score" and res.term.replace(" ", "") == "(1|h)"
    assert set(res.fits) == {"null"} and res.fits["null"].method == "laplace"
    assert 0 <= res.p_value <= 1 and 0 <= res.p_value_naive <= 1
    glob = score_test(fit.model)
    assert glob.term == "all" and glob.df == 2
    assert glob.fits["null"].beta.shape == (2,)


def test_errors():
    data = _clustered(10, n_groups=20, size=6, sd=0.8)
    model = bg.GLMM("y ~ x + (1|g)", data, family="binomial")
    with pytest.raises(MethodError, match="not a random term"):
        score_test(model, "(1|nope)")
    with pytest.raises(MethodError, match="GLMM or a likelihood fit"):
        score_test("y ~ x + (1|g)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pql = model.fit(method="pql")
    with pytest.raises(MethodError, match="quasi-likelihood"):
        score_test(pql)
    lap = model.fit(method="laplace")
    bayes = dataclasses.replace(lap, info={**lap.info, "kind": "bayesian"}, details=None)
    bayes.model = model
    with pytest.raises(MethodError, match="Bayesian"):
        score_test(bayes, "(1|g)")
    gee = dataclasses.replace(lap, info={**lap.info, "kind": "marginal"}, details=None)
    gee.model = model
    with pytest.raises(MethodError, match="GEE"):
        score_test(gee)
    counts = data.assign(y=np.random.default_rng(0).poisson(2.0, len(data)))
    nb = bg.GLMM("y ~ x + (1|g)", counts, family="negative_binomial")
    with pytest.raises(MethodError, match="families"):
        score_test(nb)
    shifted = counts.assign(y=counts["y"] + 1.0)
    gauss_log = bg.GLMM("y ~ x + (1|g)", shifted, family="gaussian", link="log")
    with pytest.raises(MethodError, match="identity link"):
        score_test(gauss_log)
    with pytest.raises(OptionError, match="correction"):
        score_test(model, correction="yes")


def test_same_answer_twice():
    data = _clustered(12, n_groups=15, size=6, sd=0.5)
    model = bg.GLMM("y ~ x + (1|g) + (1|h)", data, family="binomial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the null fit of (1|h) alone is singular here
        a, b = score_test(model, "(1|g)"), score_test(model, "(1|g)")
    assert a.statistic == b.statistic and a.p_value == b.p_value
