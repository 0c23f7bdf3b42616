"""Empirical best prediction (Jiang & Lahiri 2001): quadrature against brute-force integrals,
importance sampling against quadrature, EBP against the Laplace conditional modes; the
second-order MSPE against Prasad & Rao's closed forms (balanced nested-error model) and
against brute-force integrals (cbpp); the parametric bootstrap's reproducibility; options."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import bayesglmm as bg
from bayesglmm.analysis.study.ebp_bootstrap import ebp as ebp_boot
from bayesglmm.errors import DataError, MethodError, OptionError
from bayesglmm.frequentist.ebp import ebp
from bayesglmm.frequentist.ebp.design_consistent import mebp
from bayesglmm.model.simulate import simulate

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
    out = ebp(fit, type="response", by="row")
    herds = model.design.random[0].index
    for row in (0, 5, 30):
        mean, second = _herd_integrals(model, beta, var, herds[row], row, special.expit)
        assert out["estimate"].iloc[row] == pytest.approx(mean, abs=QUAD_TOL)
        assert out["g1"].iloc[row] == pytest.approx(second - mean**2, abs=QUAD_TOL)


def test_ebp_is_close_to_but_not_the_conditional_mode(cbpp):
    """On the link scale E(b|y) differs from the mode of b|y (a skewed conditional law):
    by a few hundredths on cbpp, well below the conditional sd (~0.3)."""
    _, fit = cbpp
    out = ebp(fit, type="link", by="row")
    np.testing.assert_allclose(out["conditional_mode"], fit.predict(type="link"), rtol=1e-8)
    gap = (out["estimate"] - out["conditional_mode"]).abs()
    assert gap.max() < 0.1
    assert (gap > 1e-3).mean() > 0.9
    assert np.all(gap < 0.25 * np.sqrt(out["g1"]))


def test_g2_is_the_delta_method_over_beta_and_theta(cbpp):
    model, fit = cbpp
    # population level on the link scale: zeta = x'beta, so g1 = 0 and g2 = x' V_beta x
    pop = ebp(fit, type="link", re_form="~0", by="row")
    se = fit.predict(type="link", re_form="~0", interval="confidence")["std_error"]
    np.testing.assert_allclose(pop["estimate"], model.design.X @ fit.fixed_effects, rtol=1e-12)
    np.testing.assert_allclose(pop["g1"], 0.0, atol=1e-12)
    np.testing.assert_allclose(pop["g2"], se**2, rtol=1e-6)  # central differences of a line
    # a herd's probability: gradient over (beta, theta) by brute-force integrals
    out = ebp(fit, type="response", by="row")
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
    # finite differences of quad integrals carry ~1e-8 / 1e-4 error per component;
    # g2 is the fixed-effect block, g3 the rest (theta and its covariance with beta)
    total = out["g2"].iloc[row] + out["g3"].iloc[row]
    assert total == pytest.approx(grad @ V @ grad, rel=1e-3)
    assert out["g2"].iloc[row] == pytest.approx(grad[:4] @ V[:4, :4] @ grad[:4], rel=1e-3)
    np.testing.assert_allclose(out["mspe_g1g2"], out["g1"] + out["g2"])


@pytest.mark.slow
def test_importance_sampling_agrees_with_quadrature(cbpp):
    _, fit = cbpp
    quad = ebp(fit, type="link", by="row", mspe="g1g2")
    imp = ebp(
        fit, type="link", by="row", mspe="g1g2", method="importance", n_draws=20000, random_seed=2
    )
    assert imp.attrs["ess"] > 10000
    z = (imp["estimate"] - quad["estimate"]) / imp["mcse"]
    assert z.abs().max() < IS_Z
    # g1 is a variance estimated from the same draws: 5 % relative (ESS > 10000)
    np.testing.assert_allclose(imp["g1"], quad["g1"], rtol=0.05)
    again = ebp(
        fit, type="link", by="row", mspe="g1g2", method="importance", n_draws=20000, random_seed=2
    )
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
    out = ebp(fit, females, re_form="~(1|Female)", random_seed=1, n_draws=4000, mspe="g1g2")
    assert out.attrs["method"] == "importance" and out.attrs["ess"] > 200
    assert np.all(out["mcse"] < 0.02)
    gap = (out["estimate"] - out["conditional_mode"]).abs()
    assert gap.max() < 0.1 and gap.max() > 1e-3
    assert np.all(out["g2"] > 0) and np.all(out["mspe"] < 0.1)
    with pytest.raises(MethodError, match="one grouping factor"):
        ebp(fit, method="quadrature")
    with pytest.raises(OptionError, match="type"):
        ebp(fit, type="odds")


# --------------------------------------------------------------------------------------
# second-order MSPE: Prasad & Rao's closed forms for the balanced nested-error model

#: quadrature of a Gaussian posterior is exact; derivatives are central differences with
#: relative steps 1e-4 (first) and 0.05 standard errors (second: truncation ~1e-3 of B1)
PR_RTOL, B1_RTOL = 1e-5, 2e-2


@pytest.fixture(scope="module")
def nested_error():
    m, n = 12, 4
    rng = np.random.default_rng(7)
    data = pd.DataFrame({"g": np.repeat([f"a{i:02d}" for i in range(m)], n)})
    data["x"] = rng.normal(size=m * n)
    sim = simulate(
        "y ~ x + (1|g)",
        data,
        {"Intercept": 1.0, "x": 0.5},
        {"g": 0.5},
        family="gaussian",
        dispersion=1.0,
        random_seed=11,
    )
    model = bg.GLMM("y ~ x + (1|g)", sim, family="gaussian")
    return model, model.fit(method="lmm"), m, n


def test_prasad_rao_closed_form_balanced_nested_error(nested_error):
    """g1 = gamma s_e^2 / n, g2 = (1 - gamma)^2 xbar' V_beta xbar (area mean; gamma^2 for
    the random effect), g3 = n^-2 (s_v^2 + s_e^2/n)^-3 [s_e^4 V_vv + s_v^4 V_ee - 2 s_e^2
    s_v^2 V_ve] with V the inverse of the balanced information, B1 = -g3 (REML), so that
    the second-order MSPE is g1 + g2 + 2 g3 (Prasad & Rao 1990, eqs. 2.12-2.15)."""
    model, fit, m, n = nested_error
    out = ebp(fit, type="link")
    assert out.attrs["g3"].startswith("expected")
    sv, se = float(fit.variance_components["g"]), float(fit.dispersion["sigma"]) ** 2
    lam = se + n * sv
    info = (
        0.5
        * m
        * np.array([[n**2 / lam**2, n / lam**2], [n / lam**2, (n - 1) / se**2 + 1 / lam**2]])
    )
    V = np.linalg.inv(info)
    gamma = sv / (sv + se / n)
    g1 = gamma * se / n
    g3 = (se**2 * V[0, 0] + sv**2 * V[1, 1] - 2 * se * sv * V[0, 1]) / (n**2 * (sv + se / n) ** 3)
    Vb = fit.vcov.matrix
    X = model.design.X
    level = model.design.random[0].index
    xbar = np.array([X[level == i].mean(0) for i in range(m)])
    quad = np.einsum("ij,jk,ik->i", xbar, Vb, xbar)
    for quantity, factor in (("mean", (1 - gamma) ** 2), ("random_effect", gamma**2)):
        part = out[out["quantity"] == quantity]
        np.testing.assert_allclose(part["g1"], g1, rtol=PR_RTOL)
        np.testing.assert_allclose(part["g2"], factor * quad, rtol=PR_RTOL)
        np.testing.assert_allclose(part["g3"], g3, rtol=PR_RTOL)
        np.testing.assert_allclose(part["g1_bias"], -g3, rtol=B1_RTOL)
        np.testing.assert_allclose(
            part["mspe_second_order"], g1 + factor * quad + 2 * g3, rtol=B1_RTOL * g3 / g1
        )
    # the chosen estimator and its interval
    np.testing.assert_array_equal(out["mspe"], out["mspe_second_order"])
    half = stats.norm.ppf(0.975) * np.sqrt(out["mspe"])
    np.testing.assert_allclose(out["upper"] - out["estimate"], half, rtol=1e-12)
    np.testing.assert_allclose(out["estimate"] - out["lower"], half, rtol=1e-12)
    first = ebp(fit, type="link", mspe="g1g2", level=0.9)
    np.testing.assert_allclose(first["mspe"], first["g1"] + first["g2"], rtol=1e-12)
    assert np.all(out["mspe"] > first["mspe"])


def test_level_means_average_the_row_predictions(cbpp):
    """E(mean_j h(eta_j) | y) is the mean of the rows' EBPs; the random effects are
    E(b | y) on the link scale (the row EBP on the link scale minus x'beta)."""
    model, fit = cbpp
    lev = ebp(fit, mspe="g1g2")
    rows = ebp(fit, by="row", mspe="g1g2")
    herd = model.design.random[0].index
    means = lev[lev["quantity"] == "mean"]
    expect = rows["estimate"].groupby(herd).mean().to_numpy()
    np.testing.assert_allclose(means["estimate"], expect, rtol=1e-12)
    link = ebp(fit, type="link", by="row", mspe="g1g2")
    b = (link["estimate"] - model.design.X @ fit.fixed_effects.to_numpy()).groupby(herd).first()
    re = lev[lev["quantity"] == "random_effect"]
    np.testing.assert_allclose(re["estimate"], b.to_numpy(), rtol=1e-10, atol=1e-12)
    assert list(re["level"]) == list(model.design.random[0].levels)


def _herd_grid(model, beta, var, herd: int, row: int):
    """E(p_row | y) and Var for one herd by the trapezoid rule on 4001 points of [-12, 12]
    standard deviations' worth of b (spectrally accurate for this smooth integrand)."""
    d = model.design
    rows = d.random[0].index == herd
    b = np.linspace(-12, 12, 4001)[:, None]
    eta = (d.X @ beta)[rows][None, :] + b
    ll = stats.binom.logpmf(d.y[rows], d.trials[rows], special.expit(eta)).sum(1)
    lw = ll + stats.norm.logpdf(b[:, 0], 0.0, np.sqrt(var))
    w = np.exp(lw - lw.max())
    p = special.expit(d.X[row] @ beta + b[:, 0])
    mean = np.trapezoid(w * p, b[:, 0]) / np.trapezoid(w, b[:, 0])
    return np.trapezoid(w * p**2, b[:, 0]) / np.trapezoid(w, b[:, 0]) - mean**2


def test_glmm_second_order_terms_against_brute_force(cbpp):
    """B1 = 1/2 tr(Hess g1 V) over (beta, theta) for one herd's probability (Jiang & Lahiri
    2001's bias of g1 without the O(1/m) bias of the estimates), by second differences of
    brute-force integrals with steps of 0.02 standard errors."""
    model, fit = cbpp
    out = ebp(fit, by="row")
    names = fit.info["details"]["vcov_names"]
    V = np.asarray(fit.info["details"]["vcov"])
    order = [names.index(n) for n in list(fit.fixed_effects.index) + ["theta[herd]"]]
    V = V[np.ix_(order, order)]
    beta, theta = fit.fixed_effects.to_numpy(), fit.info["theta"][0]
    row, herd = 1, model.design.random[0].index[1]
    steps = 0.02 * np.sqrt(np.diag(V))

    def g1(delta):
        return _herd_grid(model, beta + delta[:4], (theta + delta[4]) ** 2, herd, row)

    base = g1(np.zeros(5))
    assert out["g1"].iloc[row] == pytest.approx(base, rel=1e-8)
    H = np.zeros((5, 5))
    for a in range(5):
        ea = np.eye(5)[a] * steps[a]
        H[a, a] = (g1(ea) - 2 * base + g1(-ea)) / steps[a] ** 2
        for c in range(a + 1, 5):
            ec = np.eye(5)[c] * steps[c]
            cross = g1(ea + ec) - g1(ea - ec) - g1(ec - ea) + g1(-ea - ec)
            H[a, c] = H[c, a] = cross / (4 * steps[a] * steps[c])
    b1 = 0.5 * np.sum(H * V)
    # both are second differences (0.05 vs 0.02 standard errors): a few percent apart
    assert out["g1_bias"].iloc[row] == pytest.approx(b1, rel=0.05)
    assert np.all(out["g2"] + out["g3"] > 0)  # grad' V grad; g3 alone has cross terms
    expect = out["g1"] - out["g1_bias"] + out["g2"] + out["g3"]
    np.testing.assert_allclose(
        out["mspe_second_order"], np.fmax(expect, out["mspe_g1g2"]), rtol=1e-12
    )


# --------------------------------------------------------------------------------------
# bootstrap and options


def test_bootstrap_is_reproducible(nested_error, tmp_path):
    model, fit, m, n = nested_error
    kw = {"type": "link", "mspe": "bootstrap", "n_boot": 3, "max_workers": 1}
    a = ebp_boot(fit, random_seed=5, **kw)
    b = ebp_boot(fit, random_seed=5, store=tmp_path / "boot", **kw)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    again = ebp_boot(fit, random_seed=5, store=tmp_path / "boot", **kw)  # read back
    pd.testing.assert_frame_equal(a, again, check_exact=True)
    other = ebp_boot(fit, random_seed=6, **kw)
    assert not np.allclose(a["mspe_bootstrap"], other["mspe_bootstrap"])
    assert a.attrs["n_boot"] == 3 and a.attrs["n_boot_failed"] == 0
    np.testing.assert_array_equal(a["mspe"], a["mspe_bootstrap"])
    np.testing.assert_allclose(a["mspe_second_order"], ebp(fit, type="link")["mspe"])
    assert np.all(a["mspe_bootstrap"] > 0) and np.all(a["mspe_bootstrap_naive"] > 0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"mspe": "jackknife"}, "mspe"),
        ({"by": "area"}, "by"),
        ({"level": 1.5}, "level"),
        ({"n_boot": 10}, "n_boot"),
        ({"store": "somewhere"}, "store"),
        ({"max_workers": 2}, "max_workers"),
        ({"mspe": "bootstrap", "n_boot": 1}, "n_boot"),
        ({"by": "level", "re_form": "~0"}, "by"),
    ],
)
def test_ebp_options_refused(cbpp, kwargs, name):
    _, fit = cbpp
    call = ebp_boot if kwargs.get("mspe") == "bootstrap" else ebp
    with pytest.raises(OptionError, match=name):
        call(fit, **kwargs)


def test_bootstrap_needs_the_study_runner(cbpp):
    _, fit = cbpp
    with pytest.raises(MethodError, match="study runner"):
        ebp(fit, mspe="bootstrap")


def test_prasad_rao_at_a_zero_variance():
    """A REML fit at the boundary (var(g) = 0): the EBP is the regression line (g1 = 0),
    g3 = n V_vv / s_e^2 (Prasad & Rao's g3 at s_v^2 = 0, a one-sided derivative) and
    B1 = -g3 up to the O(step) shift of its stencil (differenced above zero)."""
    m, n = 15, 5
    data = pd.DataFrame({"g": np.repeat([f"a{i:02d}" for i in range(m)], n)})
    data["x"] = np.random.default_rng(0).normal(size=m * n)
    sim = simulate(
        "y ~ x + (1|g)",
        data,
        {"Intercept": 1.0, "x": 0.5},
        {"g": 0.5},
        family="gaussian",
        dispersion=1.0,
        random_seed=1,
    )
    fit = bg.GLMM("y ~ x + (1|g)", sim, family="gaussian").fit(method="lmm")
    assert float(fit.variance_components["g"]) == 0.0
    out = ebp(fit, type="link")
    re = out[out["quantity"] == "random_effect"]
    se = float(fit.dispersion["sigma"]) ** 2
    info = 0.5 * m * np.array([[n**2 / se**2, n / se**2], [n / se**2, (n - 1) / se**2 + 1 / se**2]])
    g3 = n * np.linalg.inv(info)[0, 0] / se
    np.testing.assert_allclose(re["g1"], 0.0, atol=1e-9)
    # forward difference with step 1e-4: relative error n step / s_e^2 ~ 6e-4 per gradient
    np.testing.assert_allclose(re["g3"], g3, rtol=3e-3)
    np.testing.assert_allclose(re["g1_bias"], -g3, rtol=0.2)
    assert np.all(re["mspe"] > 1.5 * g3)


# --------------------------------------------------------------------------------------
# model-assisted (design-consistent) EBP of area means (Jiang & Lahiri 2006)


def _survey_sample(seed, areas=12, n=30, family="gaussian"):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(areas), n)
    x = rng.normal(size=g.size)
    v = rng.normal(0.0, 0.7, areas)
    if family == "gaussian":
        y = 1.0 + 0.5 * x + v[g] + rng.normal(size=g.size)
    else:
        y = rng.binomial(1, special.expit(-0.3 + 0.8 * x + v[g]))
    w = rng.uniform(1.0, 5.0, g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"a{i:02d}" for i in g], "w": w})


def test_mebp_gaussian_is_the_pseudo_eblup():
    """Gaussian, identity link: the MEBP is You & Rao's pseudo-EBLUP at the fit's
    parameters, ``x~_w'b + gamma (ybar_w - x~_w'b)``, ``gamma = s_v^2 / (s_v^2 + s_e^2
    sum w~^2)``, with g1 = gamma s_e^2 sum w~^2 (closed forms; quadrature exact to rounding)."""
    data = _survey_sample(1)
    fit = bg.GLMM("y ~ x + (1|g)", data, family="gaussian").fit(method="lmm")
    out = mebp(fit, "w").set_index("level")
    s2v = float(fit.variance_components["g"])
    s2e = float(fit.dispersion["sigma"]) ** 2
    b = fit.fixed_effects.to_numpy()
    data["wt"] = data["w"] / data.groupby("g")["w"].transform("sum")
    agg = data.assign(wy=data.wt * data.y, wx=data.wt * data.x, w2=data.wt**2).groupby("g")
    yw, xw, delta = agg["wy"].sum(), agg["wx"].sum(), agg["w2"].sum()
    gamma = s2v / (s2v + s2e * delta)
    reg = b[0] + b[1] * xw
    np.testing.assert_allclose(out["estimate"], (reg + gamma * (yw - reg))[out.index], atol=1e-10)
    np.testing.assert_allclose(out["g1"], (gamma * s2e * delta)[out.index], atol=1e-10)
    np.testing.assert_allclose(out["direct"], yw[out.index], atol=1e-12)
    # the survey-weighted equation x~_w'b + v = ybar_w
    np.testing.assert_allclose(out["v_solution"], (yw - reg)[out.index], atol=1e-8)
    assert np.all(out["g2"] > 0) and np.all(out["mspe"] == out["g1"] + out["g2"])
    # the weights enter normalized within each area: a per-area rescaling changes nothing
    scaled = data["w"] * data["g"].str[1:].astype(int).add(1).to_numpy()
    again = mebp(fit, scaled.to_numpy()).set_index("level")
    np.testing.assert_allclose(again["estimate"], out["estimate"], rtol=1e-12)


def test_mebp_tends_to_the_sample_mean_with_equal_weights():
    """Every unit sampled with equal weight: as the area sample grows the MEBP tends to the
    area's sample mean (the Hajek estimator) and the conditional mode of v to the root of
    the survey-weighted equation. Logistic model, 4 areas; the gap is O(1/n) (the
    conditional variance of v is ~ 1/(n mu(1-mu))): it shrinks ~ 100-fold from n = 50 to
    n = 2000 on these data (deterministic, seeded)."""
    gaps = []
    for n in (50, 2000):
        data = _survey_sample(2, areas=4, n=n, family="binomial")
        fit = bg.GLMM("y ~ x + (1|g)", data, family="binomial").fit(method="laplace")
        out = mebp(fit, np.ones(len(data)))
        means = data.groupby("g")["y"].mean().reindex(out["level"]).to_numpy()
        np.testing.assert_allclose(out["direct"], means, atol=1e-12)
        gaps.append(np.abs(out["estimate"] - means).max())
        if n == 2000:
            np.testing.assert_allclose(out["v_mode"], out["v_solution"], atol=0.02)
    assert gaps[1] < 2e-3  # 8.1e-4 here (0.088 at n = 50)
    assert gaps[1] < gaps[0] / 10


def _informative_errors(n, n_rep, seed):
    """Errors (reps x areas) of the plain EBP and the MEBP of finite-population area means
    under sampling with probability proportional to 1 + 3y and a failed logistic model
    (as benchmarks/bench_mebp.py, smaller)."""
    rng = np.random.default_rng(7)
    areas, size = 8, 500
    area = np.repeat(np.arange(areas), size)
    x = rng.normal(size=area.size)
    a = rng.gamma(2.0, 0.8, areas) - 1.6  # skewed, var 1.28
    y = rng.binomial(1, special.expit(a[area] - 1.0 + 1.5 * x**2))
    truth = np.bincount(area, y) / size
    rng = np.random.default_rng(seed)
    err = {"ebp": [], "mebp": []}
    for _ in range(n_rep):
        rows, ws = [], []
        for i in range(areas):
            s = 1.0 + 3.0 * y[area == i]
            p = s / s.sum()
            pick = rng.choice(size, size=n, replace=True, p=p)
            rows.append(i * size + pick)
            ws.append(1.0 / (n * p[pick]))
        rows = np.concatenate(rows)
        data = pd.DataFrame(
            {
                "y": y[rows],
                "x": x[rows],
                "g": [f"a{i}" for i in area[rows]],
                "w": np.concatenate(ws),
            }
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = bg.GLMM("y ~ x + (1|g)", data, family="binomial").fit(method="laplace")
        plain = ebp(fit, mspe="g1g2")
        plain = plain[plain["quantity"] == "mean"]["estimate"].to_numpy()
        err["ebp"].append(plain - truth)
        err["mebp"].append(mebp(fit, "w")["estimate"].to_numpy() - truth)
    return {k: np.array(v) for k, v in err.items()}


def test_mebp_design_bias_vanishes_where_the_ebp_does_not():
    """Informative sampling, failed model: the design bias (averaged over areas) of the
    MEBP falls as the area sample grows from 5 to 80, that of the plain EBP does not, and at
    n = 80 the MEBP's is well below the EBP's. Differences are asked to exceed 4 Monte Carlo
    standard errors (over 25 repeated samples; false failure < 1e-4 each)."""
    small, large = _informative_errors(5, 25, 11), _informative_errors(80, 25, 12)

    def bias(e):
        per_rep = e.mean(1)
        return per_rep.mean(), per_rep.std(ddof=1) / np.sqrt(len(per_rep))

    (m5, s_m5), (m80, s_m80) = bias(small["mebp"]), bias(large["mebp"])
    e5, (e80, s_e80) = bias(small["ebp"])[0], bias(large["ebp"])
    assert m5 - m80 > 4 * np.hypot(s_m5, s_m80)
    assert e80 - m80 > 4 * np.hypot(s_e80, s_m80)
    assert e80 > 0.5 * e5  # the EBP's bias stays
    assert abs(m80) < 0.6 * e80


@pytest.mark.parametrize(
    "weights, match",
    [
        ("nope", "no column 'nope'"),
        (np.ones(10), "has 10 values"),
        ("neg", "must be positive"),
        ("nan", "has NaN"),
    ],
)
def test_mebp_bad_weights(weights, match):
    data = _survey_sample(3, areas=5, n=6)
    data["neg"] = data["w"].where(data.index != 4, -1.0)
    data["nan"] = data["w"].where(data.index != 2, np.nan)
    fit = bg.GLMM("y ~ x + (1|g)", data, family="gaussian").fit(method="lmm")
    with pytest.raises(DataError, match=match):
        mebp(fit, weights)


def test_mebp_refuses_prior_weights_and_other_random_effects():
    data = _survey_sample(3, areas=5, n=6)
    fit = bg.GLMM("y ~ x + (1|g)", data, family="gaussian", weights="w").fit(method="lmm")
    with pytest.raises(MethodError, match="prior weights"):
        mebp(fit, "w")
    fit = bg.GLMM("y ~ x + (1 + x|g)", data, family="gaussian").fit(method="lmm")
    with pytest.raises(MethodError, match="one random intercept"):
        mebp(fit, "w")


def test_mebp_jackknife_against_refits_by_hand():
    """mspe="jackknife" is Jiang, Lahiri & Wan's delete-one-area jackknife: assembled here
    from refits by hand without each area and You & Rao's closed forms (Gaussian)."""
    data = _survey_sample(4, areas=8, n=10)
    fit = bg.GLMM("y ~ x + (1|g)", data, family="gaussian").fit(method="lmm")
    out = mebp(fit, "w", mspe="jackknife").set_index("level")
    data["wt"] = data["w"] / data.groupby("g")["w"].transform("sum")
    agg = data.assign(wy=data.wt * data.y, wx=data.wt * data.x, w2=data.wt**2).groupby("g")
    yw, xw, delta = agg["wy"].sum(), agg["wx"].sum(), agg["w2"].sum()

    def closed(f):
        s2v, s2e = float(f.variance_components["g"]), float(f.dispersion["sigma"]) ** 2
        b = f.fixed_effects.to_numpy()
        gamma = s2v / (s2v + s2e * delta)
        reg = b[0] + b[1] * xw
        return reg + gamma * (yw - reg), gamma * s2e * delta

    est, g1 = closed(fit)
    parts = [
        closed(bg.GLMM("y ~ x + (1|g)", data[data.g != u], family="gaussian").fit(method="lmm"))
        for u in sorted(data.g.unique())
    ]
    m = len(parts)
    jack = (
        g1
        - (m - 1) / m * sum(p[1] - g1 for p in parts)
        + (m - 1) / m * sum((p[0] - est) ** 2 for p in parts)
    )
    np.testing.assert_allclose(out["mspe"], jack[out.index], rtol=1e-8)
    np.testing.assert_allclose(out["mspe_jackknife"], out["mspe"])
    assert out.attrs["n_jackknife_failed"] == 0
    with pytest.raises(OptionError, match="mspe"):
        mebp(fit, "w", mspe="bootstrap")
