"""GEE with Prentice's (1988) estimating equations for the association (``method="gee",
association="prentice"``) against R's geepack ``geese``: beta, the scale gamma, the
correlation alpha and the sandwich standard errors of all three.

The data are simulated here (binary responses, clusters of 2-6 rows, a cluster-level and
an observation-level covariate, exchangeable dependence from a random intercept) from
uniform draws only, so the rows do not depend on numpy's normal or binomial samplers;
``binary_clusters(...).to_csv(path, index=False)`` wrote the CSV files R read.
"""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from bayesglmm import GLMM, MethodError, OptionError
from bayesglmm.results.result import FitResult

#: agreement required with geese: both solve the same equations, R run to
#: geese.control(epsilon = 1e-12, maxit = 200) (geese's default epsilon = 1e-4 stops short
#: of the root: data A exchangeable, intercept -0.289213580639 vs -0.289213807950)
GEESE_TOL = 1e-6


def _normal(u1, u2):
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def binary_clusters(seed, n_clusters, beta, sd, link="logit"):
    """Clusters ``id`` of 2-6 rows at distinct waves ``t`` in 1..6 (sorted); ``x1`` per
    cluster, ``x2`` per row; ``y`` Bernoulli given a normal random intercept of sd ``sd``."""
    rng = np.random.default_rng(seed)
    u = rng.random((n_clusters, 16))
    sizes = 2 + np.floor(5 * u[:, 0]).astype(int)
    x1 = np.round(_normal(u[:, 1], u[:, 2]), 6)
    b = sd * _normal(u[:, 3], u[:, 4])
    rows = []
    for i in range(n_clusters):
        k = sizes[i]
        t = np.sort(np.argsort(u[i, 5:11])[:k]) + 1
        v = rng.random((k, 3))
        x2 = np.round(_normal(v[:, 0], v[:, 1]), 6)
        eta = beta[0] + beta[1] * x1[i] + beta[2] * x2 + b[i]
        p = 1 / (1 + np.exp(-eta)) if link == "logit" else norm.cdf(eta)
        y = (v[:, 2] < p).astype(int)
        rows += [(i + 1, t[j], x1[i], x2[j], y[j]) for j in range(k)]
    return pd.DataFrame(rows, columns=["id", "t", "x1", "x2", "y"])


def data_a():
    """150 clusters (589 rows), logit, random-intercept sd 1."""
    return binary_clusters(20261207, 150, (-0.4, 0.6, 0.8), 1.0)


def data_b():
    """90 clusters (361 rows), probit, another sign pattern and sd 0.8."""
    return binary_clusters(7, 90, (0.5, -1.0, 0.5), 0.8, link="probit")


def data_singletons():
    """Data A with clusters 5, 40, 77 and 120 cut to their first row."""
    a = data_a()
    return a[~(a["id"].isin([5, 40, 77, 120]) & a.duplicated("id"))].reset_index(drop=True)


#: R (geepack 1.3.9), with ``a``, ``b`` the CSV files of data_a(), data_b() and
#: ``tight <- geese.control(epsilon = 1e-12, maxit = 200)``::
#:
#:     f <- geese(y ~ x1 + x2, id = id, data = a, family = binomial,
#:                corstr = "exchangeable", control = tight)          # ("a", "exchangeable", None)
#:     geese(..., id = id, waves = t, data = a, corstr = "ar1", ...)  # ("a", "ar1", "t")
#:     geese(..., id = id, data = a, corstr = "ar1", ...)             # ("a", "ar1", None)
#:     geese(..., data = b, family = binomial(link = "probit"), corstr = "exchangeable", ...)
#:     geese(..., waves = t, data = b, family = binomial(link = "probit"), corstr = "ar1", ...)
#:     s <- summary(f)
#:
#: beta, beta_se: ``s$mean$estimate``, ``s$mean$san.se``; gamma: ``s$scale`` (estimate,
#: san.se); alpha: ``s$correlation`` (estimate, san.se; row "alpha"); printed with
#: ``sprintf("%.12f", ...)``.
GEESE = {
    ("a", "exchangeable", None): dict(
        beta=[-0.289213807950, 0.491183259943, 0.580407220260],
        beta_se=[0.112611983776, 0.103968579616, 0.099348781901],
        gamma=[1.001125526220, 0.069488650695],
        alpha=[0.153550133615, 0.047586003825],
    ),
    ("a", "ar1", "t"): dict(
        beta=[-0.276168804282, 0.488044453901, 0.603418900514],
        beta_se=[0.113035672763, 0.104447607412, 0.101628422510],
        gamma=[1.003133194344, 0.070966535715],
        alpha=[0.231275398863, 0.063489844148],
    ),
    ("a", "ar1", None): dict(
        beta=[-0.269373256435, 0.498992677632, 0.587745173804],
        beta_se=[0.113309435568, 0.105271405483, 0.099200046471],
        gamma=[1.001152453726, 0.069821380359],
        alpha=[0.216203831391, 0.055312212475],
    ),
    ("b", "exchangeable", None): dict(
        beta=[0.380109500030, -0.668454227982, 0.260010243175],
        beta_se=[0.095424113954, 0.100997005524, 0.065776716710],
        gamma=[0.988383384854, 0.225226823928],
        alpha=[0.220952958140, 0.078763947513],
    ),
    ("b", "ar1", "t"): dict(
        beta=[0.399616642086, -0.653966083051, 0.254708977172],
        beta_se=[0.095860269700, 0.101622267196, 0.070563354729],
        gamma=[0.987752988843, 0.222071228303],
        alpha=[0.335198786687, 0.114748094901],
    ),
}
_DATA = {"a": (data_a, None), "b": (data_b, "probit")}


def _fit(df, link=None, **options):
    options.setdefault("association", "prentice")
    return GLMM("y ~ x1 + x2 + (1|id)", df, link=link).fit(method="gee", **options)


def test_simulated_data_are_those_r_read():
    """The rows R fitted: sizes and sums of data_a() and data_b() (a change in the
    generator would make the R numbers refer to other data)."""
    a, b = data_a(), data_b()
    assert a.shape == (589, 5) and b.shape == (361, 5)
    assert int(a["y"].sum()) == 242 and int(b["y"].sum()) == 230
    assert a.groupby("id").size().value_counts().sort_index().tolist() == [31, 36, 24, 31, 28]
    assert b["t"].value_counts().sort_index().tolist() == [55, 61, 61, 65, 61, 58]
    assert a["x2"].sum() == pytest.approx(3.407153, abs=1e-9)
    assert b["x1"].sum() == pytest.approx(-12.692362, abs=1e-9)


@pytest.mark.reference
@pytest.mark.parametrize("key", list(GEESE))
def test_matches_geese(key):
    """beta, gamma, alpha and the sandwich SEs of all three equal geese's (R at GEESE);
    with ``waves = t`` the rows are shuffled and ``time="t"`` orders them."""
    which, corstr, waves = key
    make, link = _DATA[which]
    df = make()
    if waves is not None:
        df = df.sample(frac=1.0, random_state=5)
    fit = _fit(df, link, corstr=corstr, time=waves, tol=1e-12)
    ref = GEESE[key]
    t = fit.table
    np.testing.assert_allclose(fit.fixed_effects.to_numpy(), ref["beta"], atol=GEESE_TOL)
    np.testing.assert_allclose(fit.fixed_effects_se.to_numpy(), ref["beta_se"], atol=GEESE_TOL)
    got_gamma = t.loc["dispersion", ["estimate", "std_error"]].to_numpy(float)
    got_alpha = t.loc["cor(alpha)", ["estimate", "std_error"]].to_numpy(float)
    np.testing.assert_allclose(got_gamma, ref["gamma"], atol=GEESE_TOL)
    np.testing.assert_allclose(got_alpha, ref["alpha"], atol=GEESE_TOL)
    # geese's Wald statistic (estimate / san.se)^2 and its chi-square(1) p-value
    assert t.loc["cor(alpha)", "z"] ** 2 == pytest.approx(
        (ref["alpha"][0] / ref["alpha"][1]) ** 2, rel=1e-5
    )
    # the joint covariance: its diagonal holds the table's standard errors
    assoc = fit.info["details"]["association"]
    V = np.asarray(assoc["vcov"])
    assert assoc["names"] == ["Intercept", "x1", "x2", "gamma", "alpha"]
    np.testing.assert_allclose(
        np.sqrt(np.diag(V))[-2:], [ref["gamma"][1], ref["alpha"][1]], atol=GEESE_TOL
    )
    np.testing.assert_allclose(V, V.T, atol=1e-14)
    assert fit.converged and fit.re_correlations["alpha"] == got_alpha[0]


def test_same_estimates_as_moments_and_rows_only_with_prentice():
    """Prentice's equations with geese's identity weights have the geepack moment
    estimators as roots: the estimates of ``association="moment"``; only the rows for
    gamma and alpha (and their SEs) are new."""
    df = data_a()
    moment = _fit(df, association="moment", tol=1e-12)
    prentice = _fit(df, tol=1e-12)
    np.testing.assert_allclose(prentice.fixed_effects, moment.fixed_effects, atol=1e-12)
    np.testing.assert_allclose(prentice.fixed_effects_se, moment.fixed_effects_se, atol=1e-12)
    det = moment.info["details"]
    assert prentice.table.loc["cor(alpha)", "estimate"] == pytest.approx(
        det["working_correlation"]["alpha"], abs=1e-12
    )
    assert prentice.table.loc["dispersion", "estimate"] == pytest.approx(det["scale"], abs=1e-12)
    assert "cor(alpha)" not in moment.table.index and "association" not in det
    assert moment.dispersion.empty and moment.re_correlations.empty
    # se= chooses the coefficients' SEs only; gamma and alpha keep geese's sandwich
    model_se = _fit(df, se="model", tol=1e-12)
    assert not np.allclose(model_se.fixed_effects_se, prentice.fixed_effects_se, atol=1e-4)
    np.testing.assert_allclose(
        model_se.table.loc[["dispersion", "cor(alpha)"], "std_error"],
        prentice.table.loc[["dispersion", "cor(alpha)"], "std_error"],
        atol=1e-12,
    )


@pytest.mark.reference
def test_clusters_of_one_row():
    """R: ``geese(y ~ x1 + x2, id = id, data = s, family = binomial, corstr =
    "exchangeable", control = tight)`` on data_singletons(): estimates and the beta and
    gamma SEs agree. alpha's SE does not: geese re-adds the alpha terms of the preceding
    cluster for a cluster of one row (geese's 0.04771273596, which an emulation of that
    reuse reproduces), where such a cluster adds nothing here."""
    fit = _fit(data_singletons(), tol=1e-12)
    t = fit.table
    np.testing.assert_allclose(
        fit.fixed_effects, [-0.2784817248, 0.4931690035, 0.5777665169], atol=GEESE_TOL
    )
    np.testing.assert_allclose(
        fit.fixed_effects_se, [0.11304202009, 0.10383048242, 0.09998629194], atol=GEESE_TOL
    )
    np.testing.assert_allclose(
        t.loc["dispersion", ["estimate", "std_error"]], [1.001183113, 0.06942432857], atol=GEESE_TOL
    )
    assert t.loc["cor(alpha)", "estimate"] == pytest.approx(0.1500505168, abs=GEESE_TOL)
    assert t.loc["cor(alpha)", "std_error"] > 0.04771273596 + 1e-4


def test_report_has_geese_scale_and_correlation_blocks(tmp_path):
    fit = _fit(data_a(), corstr="ar1", time="t", tol=1e-12)
    text = fit.report()
    assert "Correlation Model:" in text and "Scale Model:" in text
    line = next(s for s in text.splitlines() if s.startswith("alpha"))
    assert line.split()[:4] == ["alpha", "0.2313", "0.0635", "13.269"]  # (0.2313/0.0635)^2
    assert "Pr(>W)" in text and " Correlation Structure:     ar1" in text
    assert "Estimated scale parameter" not in text
    back = FitResult.load(fit.save(tmp_path / "prentice.zip"))
    assert back.report() == text
    assert "Correlation Model:" not in _fit(data_a(), association="moment").report()


@pytest.mark.parametrize(
    "family,options,error,match",
    [
        ("poisson", {}, MethodError, r"^association='prentice' is for binary.*'poisson'$"),
        ("binomial", {"corstr": "independence"}, OptionError, "corstr 'exchangeable' or 'ar1'"),
        ("binomial", {"corstr": "unstructured"}, OptionError, "got 'unstructured'$"),
        ("binomial", {"moments": "statsmodels"}, OptionError, "moments must be 'geepack'"),
        ("binomial", {"association": "lipsitz"}, OptionError, "^association must be one of"),
    ],
)
def test_refused_before_fitting(family, options, error, match, monkeypatch):
    import bayesglmm.frequentist.gee.fit as gee_fit

    def no_fit(*a, **k):
        raise AssertionError("the estimating equations were solved")

    monkeypatch.setattr(gee_fit, "solve_gee", no_fit)
    df = data_b()
    with pytest.raises(error, match=match) as info:
        GLMM("y ~ x1 + x2 + (1|id)", df, family=family).fit(
            method="gee", **{"association": "prentice", **options}
        )
    assert "\n" not in str(info.value)


def test_binomial_totals_are_refused():
    df = data_b()
    agg = df.groupby(["id", "x1"], as_index=False).agg(k=("y", "sum"), n=("y", "size"))
    with pytest.raises(MethodError, match="binomial totals above 1"):
        GLMM("cbind(k, n - k) ~ x1 + (1|id)", agg).fit(method="gee", association="prentice")
