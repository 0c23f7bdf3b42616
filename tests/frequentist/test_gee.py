"""GEE (method="gee") against statsmodels' GEE and R's geepack; its errors and result."""

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, MethodError, OptionError, compare

#: agreement required with statsmodels' GEE (both solve the same equations to ~1e-11)
SM_TOL = 1e-6
#: agreement required with geepack; the R numbers are printed to 12 digits from fits
#: run to geese.control(epsilon = 1e-12, maxit = 200) (geepack's default epsilon = 1e-4
#: stops ~2e-5 short of the solution, e.g. cbpp exchangeable intercept -1.283499074 vs
#: -1.283499953)
GEEPACK_TOL = 1e-6


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


def _statsmodels(df, family, corstr, **fit_kw):
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
        return m.fit(ctol=1e-12, maxiter=500, cov_type="bias_reduced", **fit_kw)


@pytest.mark.reference
@pytest.mark.parametrize("family", ["binomial", "poisson"])
@pytest.mark.parametrize("corstr", ["independence", "exchangeable", "ar1", "unstructured"])
def test_matches_statsmodels(family, corstr):
    """With ``moments="statsmodels"``, estimates and all three standard errors equal
    statsmodels' GEE (rows given to bayesglmm shuffled: GEE must not need rows sorted by
    cluster)."""
    df = _clustered(family, seed=11, sd=1.0 if family == "binomial" else 0.5)
    ref = _statsmodels(df, family, corstr)  # df sorted by cluster and time
    shuffled = df.sample(frac=1.0, random_state=3)
    fit = GLMM("y ~ x + (1|g)", shuffled, family=family).fit(
        method="gee", corstr=corstr, time="t", se="bias_reduced", moments="statsmodels"
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
@pytest.mark.parametrize("family", ["binomial", "poisson"])
@pytest.mark.parametrize("corstr", ["independence", "exchangeable"])
def test_default_moments_match_statsmodels_without_ddof(family, corstr):
    """The default (geepack) moments are statsmodels' with ``fit(ddof_scale=0,
    scale="X2")``: scale ``sum r^2 / N`` (also for binomial and Poisson) and the
    exchangeable alpha without degrees-of-freedom corrections."""
    df = _clustered(family, seed=11, sd=1.0 if family == "binomial" else 0.5)
    ref = _statsmodels(df, family, corstr, ddof_scale=0, scale="X2")
    fit = GLMM("y ~ x + (1|g)", df.sample(frac=1.0, random_state=3), family=family).fit(
        method="gee", corstr=corstr, se="bias_reduced"
    )
    det = fit.info["details"]
    se = det["std_errors"]
    np.testing.assert_allclose(fit.fixed_effects.to_numpy(), ref.params, atol=SM_TOL)
    for ours, theirs in [
        ("robust", ref.cov_robust),
        ("model", ref.cov_naive),
        ("bias_reduced", ref.cov_robust_bc),
    ]:
        np.testing.assert_allclose(
            list(se[ours].values()), np.sqrt(np.diag(theirs)), atol=SM_TOL, err_msg=ours
        )
    assert det["scale"] == pytest.approx(ref.scale, abs=SM_TOL)
    if corstr == "exchangeable":
        alpha = det["working_correlation"]["alpha"]
        assert alpha == pytest.approx(float(ref.cov_struct.dep_params), abs=SM_TOL)
        # and it is not statsmodels' default (ddof = p) estimate (they differ by 7.7e-5
        # and 4.1e-4 here, deterministic data: 1e-5 separates them from round-off)
        sm_default = _statsmodels(df, family, corstr)
        assert abs(alpha - float(sm_default.cov_struct.dep_params)) > 1e-5


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
    fit = GLMM("y ~ x + (1|g)", df, family="gaussian").fit(method="gee", moments="statsmodels")
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
def test_cbpp_bernoulli_exchangeable_matches_geepack(cbpp):
    """R (geepack 1.3.x), with ``b`` cbpp expanded to one 0/1 row per animal (cases first,
    the rows of ``_cbpp_bernoulli``; herd and period factors)::

        geeglm(y ~ period, id = herd, data = b, family = binomial,
               corstr = "exchangeable", control = geese.control(epsilon = 1e-12, maxit = 200))

    coef, robust SE (``sqrt(diag(fit$geese$vbeta))``), naive SE (``vbeta.naiv``),
    ``fit$geese$alpha`` and ``fit$geese$gamma`` (the scale) below. statsmodels' default
    moments give alpha 0.029719."""
    fit = GLMM("y ~ period + (1|herd)", _cbpp_bernoulli(cbpp)).fit(method="gee")
    _check_geepack(
        fit,
        coef=[-1.283499952850, -0.973947588775, -1.088919152150, -1.489063234084],
        robust=[0.273558428722, 0.391252899645, 0.439303342710, 0.295171949707],
        naive=[0.171388540179, 0.266494867155, 0.283633351564, 0.365472829985],
        alpha=[0.029879923850],
        scale=0.892665493204,
    )


def _check_geepack(fit, coef, robust, naive, alpha, scale):
    det = fit.info["details"]
    np.testing.assert_allclose(fit.fixed_effects.to_numpy(), coef, atol=GEEPACK_TOL)
    np.testing.assert_allclose(list(det["std_errors"]["robust"].values()), robust, atol=GEEPACK_TOL)
    np.testing.assert_allclose(list(det["std_errors"]["model"].values()), naive, atol=GEEPACK_TOL)
    wc = det["working_correlation"]
    if "R" in wc:  # geepack's alpha: pairs (1,2), (1,3), ..., (1,T), (2,3), ...
        R = np.asarray(wc["R"])
        ours = R[np.triu_indices_from(R, 1)]
    else:
        ours = [wc["alpha"]] if "alpha" in wc else []
    np.testing.assert_allclose(ours, alpha, atol=GEEPACK_TOL)
    assert det["scale"] == pytest.approx(scale, abs=GEEPACK_TOL)
    assert fit.converged


#: sha256 of tests/data/gee_poisson.csv (simulated: 60 clusters of 1-5 rows, times 1-6)
GEE_POISSON_SHA256 = "713446d770c336f222e3fa60182fad403eca06ec3a5a0b05c6dc4f1170dae3e8"

#: R: ``p <- read.csv("tests/data/gee_poisson.csv"); tight <- geese.control(epsilon =
#: 1e-12, maxit = 200); f <- geeglm(y ~ x, id = id, data = p, family = poisson,
#: corstr = CORSTR, control = tight)`` (plus ``waves = t`` where the key says so); then
#: ``coef(f)``, ``sqrt(diag(f$geese$vbeta))``, ``sqrt(diag(f$geese$vbeta.naiv))``,
#: ``f$geese$alpha``, ``f$geese$gamma``. (geepack segfaults for unstructured with
#: ``waves = t`` here, as the largest wave exceeds the largest cluster size.)
GEEPACK_POISSON = {
    ("independence", None): dict(
        coef=[0.432241031714, 0.266206665927],
        robust=[0.092544128996, 0.051780289852],
        naive=[0.068088058265, 0.064469472380],
        alpha=[],
        scale=1.371842435182,
    ),
    ("exchangeable", None): dict(
        coef=[0.408797546165, 0.273835150908],
        robust=[0.092103674204, 0.050820183731],
        naive=[0.092683858637, 0.061390495281],
        alpha=[0.299662212221],
        scale=1.404642332512,
    ),
    ("ar1", None): dict(
        coef=[0.409832115999, 0.271554913573],
        robust=[0.093089126569, 0.058766038214],
        naive=[0.089183718007, 0.060345286400],
        alpha=[0.390892859473],
        scale=1.403279067474,
    ),
    ("ar1", "t"): dict(
        coef=[0.396596723491, 0.272456346152],
        robust=[0.095542507455, 0.066671004927],
        naive=[0.088760874353, 0.060954213581],
        alpha=[0.472059951141],
        scale=1.423054052592,
    ),
    ("unstructured", None): dict(
        coef=[0.404624438688, 0.295664911684],
        robust=[0.087484817759, 0.049811450141],
        naive=[0.091598959472, 0.058592820572],
        alpha=[
            0.420010828261,
            0.199099141649,
            0.477916764201,
            0.327569870482,
            0.221739214115,
            0.457166882825,
            0.456226035198,
            0.205819508078,
            0.019611518103,
            0.100641864771,
        ],
        scale=1.410275956947,
    ),
}


@pytest.mark.reference
@pytest.mark.parametrize("corstr,waves", list(GEEPACK_POISSON))
def test_poisson_matches_geepack(corstr, waves):
    """Held-out simulated Poisson data: estimates, robust and naive SEs, alpha and scale
    equal geepack's (R calls at GEEPACK_POISSON); ``waves = t`` is ``time="t"``."""
    import hashlib
    from pathlib import Path

    path = Path(__file__).parents[1] / "data" / "gee_poisson.csv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == GEE_POISSON_SHA256
    df = pd.read_csv(path)
    if waves is not None:  # times order the rows; without them the row order does, as in R
        df = df.sample(frac=1.0, random_state=7)
    fit = GLMM("y ~ x + (1|id)", df, family="poisson").fit(method="gee", corstr=corstr, time=waves)
    _check_geepack(fit, **GEEPACK_POISSON[corstr, waves])


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
