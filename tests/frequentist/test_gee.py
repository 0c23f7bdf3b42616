"""GEE (method="gee") against statsmodels' GEE and R's geepack; its errors and result."""

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, MethodError, OptionError, compare

#: the issue's tolerance against statsmodels (both solve the same equations to ~1e-11)
SM_TOL = 1e-6
#: geepack prints 12 digits; the same estimating equations under independence
GEEPACK_TOL = 1e-6
#: geepack's exchangeable alpha comes from its own moment equation (0.029879 here vs
#: statsmodels' and ours 0.029719), which moves estimates and SEs by < 5e-4
GEEPACK_ALPHA_TOL = 1e-3


def _clustered(family, seed, n_clusters=150, sd=1.0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 6, n_clusters)
    g = np.repeat(np.arange(n_clusters), sizes)
    t = np.concatenate([np.sort(rng.choice(6, k, replace=False)) for k in sizes])
    x = rng.normal(size=g.size)
    eta = 0.3 + 0.5 * x + sd * rng.normal(size=n_clusters)[g]
    if family == "binomial":
        y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    else:
        y = rng.poisson(np.exp(eta))
    return pd.DataFrame({"y": y, "x": x, "g": [f"c{i}" for i in g], "t": t, "gi": g})


def _statsmodels(df, family, corstr):
    import statsmodels.api as sm

    fam = {"binomial": sm.families.Binomial(), "poisson": sm.families.Poisson()}[family]
    cov = {
        "independence": sm.cov_struct.Independence(),
        "exchangeable": sm.cov_struct.Exchangeable(),
        "ar1": sm.cov_struct.Autoregressive(grid=True),
        "unstructured": sm.cov_struct.Unstructured(),
    }[corstr]
    X = np.column_stack([np.ones(len(df)), df["x"]])
    kw = {"time": df["t"].to_numpy()} if corstr == "unstructured" else {}
    m = sm.GEE(df["y"].to_numpy(float), X, groups=df["gi"], family=fam, cov_struct=cov, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.fit(ctol=1e-12, maxiter=500, cov_type="bias_reduced")


@pytest.mark.reference
@pytest.mark.parametrize("family", ["binomial", "poisson"])
@pytest.mark.parametrize("corstr", ["independence", "exchangeable", "ar1", "unstructured"])
def test_matches_statsmodels(family, corstr):
    """Estimates and all three standard errors equal statsmodels' GEE (rows given to
    bayesglmm shuffled: GEE must not need rows sorted by cluster)."""
    df = _clustered(family, seed=11, sd=1.0 if family == "binomial" else 0.5)
    ref = _statsmodels(df, family, corstr)  # df sorted by cluster and time
    shuffled = df.sample(frac=1.0, random_state=3)
    fit = GLMM("y ~ x + (1|g)", shuffled, family=family).fit(
        method="gee", corstr=corstr, time="t", se="bias_reduced"
    )
    se = fit.info["details"]["std_errors"]
    np.testing.assert_allclose(fit.fixed_effects.to_numpy(), ref.params, atol=SM_TOL)
    for ours, theirs in [
        ("robust", ref.cov_robust),
        ("model", ref.cov_naive),
        ("bias_reduced", ref.cov_robust_bc),
    ]:
        np.testing.assert_allclose(
            list(se[ours].values()), np.sqrt(np.diag(theirs)), atol=SM_TOL, err_msg=ours
        )
    np.testing.assert_allclose(fit.fixed_effects_se.to_numpy(), list(se["bias_reduced"].values()))
    if corstr in ("exchangeable", "ar1"):
        alpha = fit.info["details"]["working_correlation"]["alpha"]
        assert alpha == pytest.approx(float(ref.cov_struct.dep_params), abs=SM_TOL)
    assert fit.kind == "marginal" and fit.converged


@pytest.mark.reference
def test_qic_matches_statsmodels_gaussian():
    """Pan's QIC: for the Gaussian identity model statsmodels' QIC (given our scale) uses
    the same Omega_I = sum X'X / phi and quasi-likelihood."""
    import statsmodels.api as sm

    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(60), 4)
    x = rng.normal(size=g.size)
    y = 1 + x + rng.normal(size=60)[g] + rng.normal(size=g.size)
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    fit = GLMM("y ~ x + (1|g)", df, family="gaussian").fit(method="gee")
    det = fit.info["details"]
    m = sm.GEE(
        y, np.column_stack([np.ones_like(x), x]), groups=g, cov_struct=sm.cov_struct.Exchangeable()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit(ctol=1e-12, maxiter=500)
        q, qu = r.qic(scale=det["scale"], n_step=20001)
    # statsmodels integrates the quasi-likelihood by the trapezoidal rule (error ~1e-7 here)
    assert det["QIC"] == pytest.approx(q, abs=1e-4)
    assert det["QICu"] == pytest.approx(qu, abs=1e-4)
    assert fit.dispersion["dispersion"] == pytest.approx(r.scale, rel=1e-8)


@pytest.mark.reference
def test_cbpp_independence_matches_geepack(cbpp):
    """R: ``geeglm(cbind(incidence, size - incidence) ~ period, id = herd, data = cbpp,
    family = binomial, corstr = "independence")`` (geepack 1.3.9): coef and robust SE."""
    fit = GLMM("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp).fit(
        method="gee", corstr="independence"
    )
    np.testing.assert_allclose(
        fit.fixed_effects.to_numpy(),
        [-1.26902348937, -1.17076272514, -1.30140533386, -1.78227863534],
        atol=GEEPACK_TOL,
    )
    np.testing.assert_allclose(
        fit.fixed_effects_se.to_numpy(),
        [0.275026064652, 0.439569642929, 0.495650088901, 0.387960892241],
        atol=GEEPACK_TOL,
    )


def _cbpp_bernoulli(cbpp):
    """One row per animal, in R's order: herds, periods, then the cases before the rest."""
    rows = []
    d = cbpp.sort_values(["herd", "period"], key=lambda s: s.cat.codes)
    for h, p, k, n in d[["herd", "period", "incidence", "size"]].itertuples(index=False):
        rows += [(h, p, 1)] * k + [(h, p, 0)] * (n - k)
    out = pd.DataFrame(rows, columns=["herd", "period", "y"])
    out["period"] = pd.Categorical(out["period"].astype(str), ["1", "2", "3", "4"])
    out["herd"] = out["herd"].astype(str)
    return out


@pytest.mark.reference
def test_cbpp_bernoulli_exchangeable_near_geepack(cbpp):
    """R, with ``b`` cbpp expanded to one 0/1 row per animal (cases first):
    ``geeglm(y ~ period, id = herd, data = b, family = binomial, corstr = "exchangeable")``
    gives coef -1.283499074471 -0.973959104431 -1.088931430222 -1.489084138691, robust SE
    0.273558411456 0.391255009976 0.439306280498 0.295175952957, alpha 0.02987931564."""
    fit = GLMM("y ~ period + (1|herd)", _cbpp_bernoulli(cbpp)).fit(method="gee")
    np.testing.assert_allclose(
        fit.fixed_effects.to_numpy(),
        [-1.283499074471, -0.973959104431, -1.088931430222, -1.489084138691],
        atol=GEEPACK_ALPHA_TOL,
    )
    np.testing.assert_allclose(
        fit.fixed_effects_se.to_numpy(),
        [0.273558411456, 0.391255009976, 0.439306280498, 0.295175952957],
        atol=GEEPACK_ALPHA_TOL,
    )
    assert fit.info["details"]["working_correlation"]["alpha"] == pytest.approx(0.0299, abs=5e-4)


def test_crossed_design_points_to_ee(salamander):
    m = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander)
    with pytest.raises(MethodError, match="one clustering factor.*method='ee'"):
        m.fit(method="gee")


def test_options_and_result_schema():
    df = _clustered("binomial", seed=2, n_clusters=40)
    m = GLMM("y ~ x + (1|g)", df)
    with pytest.raises(OptionError, match="corstr"):
        m.fit(method="gee", corstr="ar2")
    with pytest.raises(OptionError, match="^se must be"):
        m.fit(method="gee", se="sandwich")
    with pytest.raises(Exception, match="nope"):
        m.fit(method="gee", time="nope")
    robust = m.fit(method="gee")
    model = m.fit(method="gee", se="model")
    np.testing.assert_allclose(robust.fixed_effects, model.fixed_effects)
    assert not np.allclose(robust.fixed_effects_se, model.fixed_effects_se)
    assert np.isnan(robust.variance_components["g"])
    assert robust.loglik is None
    table = compare({"GEE": robust, "Laplace": m.fit(method="laplace")})
    assert "GEE [marginal]" in table.columns
    # groups= instead of the (1|g) term: the same fit
    by_column = GLMM("y ~ x", df).fit(method="gee", groups="g")
    np.testing.assert_allclose(by_column.fixed_effects, robust.fixed_effects, atol=1e-12)
