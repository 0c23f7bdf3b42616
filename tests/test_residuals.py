"""Residuals of fits: closed-form kinds against a hand computation, and the simulated
quantile residuals' calibration, power, reproducibility and Bayesian version."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayesglmm as bg
from bayesglmm.diagnostics import Residuals
from bayesglmm.errors import OptionError

CBPP_FORMULA = "cbind(incidence, size - incidence) ~ period + (1|herd)"


@pytest.fixture(scope="module")
def cbpp_fit():
    return bg.GLMM(CBPP_FORMULA, bg.datasets.load("cbpp"), family="binomial").fit(method="laplace")


def poisson_data(
    seed: int, olre: float = 0.0, zeros: float = 0.0, slope: float = 0.0
) -> pd.DataFrame:
    """A Poisson one-factor model, 30 groups of 10 rows; optionally an observation-level
    random effect of variance ``olre``, a share ``zeros`` of structural zeros and a random
    slope of ``x`` with standard deviation ``slope``."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(30), 10)
    x = rng.normal(size=g.size)
    eta = 0.5 + 0.4 * x + rng.normal(0.0, 0.7, 30)[g]
    if slope:
        eta = eta + rng.normal(0.0, slope, 30)[g] * x
    if olre:
        eta = eta + rng.normal(0.0, np.sqrt(olre), g.size)
    y = rng.poisson(np.exp(eta))
    if zeros:
        y[rng.uniform(size=y.size) < zeros] = 0
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical([f"g{i}" for i in g])})


def poisson_fit(seed: int, **kw):
    return bg.GLMM("y ~ x + (1|g)", poisson_data(seed, **kw), family="poisson").fit(
        method="laplace"
    )


def p_value(res: Residuals, test: str) -> float:
    table = res.tests()
    return float(table.loc[table.test == test, "p_value"].iloc[0])


@pytest.mark.parametrize("conditional", [True, False])
def test_pearson_and_deviance_match_hand_computation(cbpp_fit, conditional):
    data = bg.datasets.load("cbpp")
    y = data["incidence"].to_numpy(float)
    n = data["size"].to_numpy(float)
    re_form = None if conditional else "~0"
    mu = cbpp_fit.predict(type="response", re_form=re_form).to_numpy(float)
    pearson = (y - n * mu) / np.sqrt(n * mu * (1 - mu))
    dev = 2 * (special.xlogy(y, y / (n * mu)) + special.xlogy(n - y, (n - y) / (n * (1 - mu))))
    deviance = np.sign(y - n * mu) * np.sqrt(dev)
    got_p = bg.residuals(cbpp_fit, kind="pearson", conditional=conditional)
    got_d = bg.residuals(cbpp_fit, kind="deviance", conditional=conditional)
    got_r = bg.residuals(cbpp_fit, kind="response", conditional=conditional)
    np.testing.assert_allclose(got_p.values, pearson, rtol=1e-10)
    np.testing.assert_allclose(got_d.values, deviance, rtol=1e-10)
    np.testing.assert_allclose(got_r.values, y - n * mu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_p.fitted, n * mu, rtol=1e-12)
    # conditional and population-level means differ on cbpp (herd variance ~0.4)
    other = bg.residuals(cbpp_fit, kind="pearson", conditional=not conditional)
    assert np.max(np.abs(other.values - got_p.values)) > 0.05
    note = got_p.tests()["note"].iloc[0]
    assert 'kind="quantile"' in note


def test_quantile_residuals_uniform_under_the_model():
    fit = poisson_fit(101)
    res = bg.residuals(fit, kind="quantile", random_seed=1)
    assert res.values.shape == (300,)
    assert np.all((res.values >= 0) & (res.values <= 1))
    # false-failure rate 0.1% for a fixed seed
    assert p_value(res, "uniformity") > 0.001
    assert p_value(bg.residuals(fit, conditional=False, random_seed=1), "uniformity") > 0.001


@pytest.mark.parametrize("conditional", [True, False])
def test_p_values_not_concentrated_near_zero(conditional):
    # under the model each test's p < 0.05 with probability <= 0.05; with 20 independent
    # data sets the count below 0.05 is <= 5 with probability 0.9997 (binomial(20, 0.05),
    # upper end of its 99.9 % interval): a false-failure rate of 3e-4 for each of the six
    # checks
    tables = [
        bg.residuals(poisson_fit(s), conditional=conditional, random_seed=s)
        .tests()
        .set_index("test")["p_value"]
        for s in range(20)
    ]
    ps = pd.DataFrame(tables)
    for test in [
        "uniformity",
        "dispersion",
        "zero_inflation",
        "outliers",
        "dispersion[g]",
        "re_normality[1|g]",
    ]:
        assert (ps[test] < 0.05).sum() <= 5, (test, ps[test].round(3).tolist())
    # the KS p-values are spread over (0, 1), not piled near 0
    assert ps["uniformity"].median() > 0.2, ps["uniformity"].tolist()


def test_dispersion_test_finds_an_unmodelled_observation_level_effect():
    res = bg.residuals(poisson_fit(5, olre=1.0), random_seed=1)
    assert p_value(res, "dispersion") < 0.01
    table = res.tests().set_index("test")
    assert table.loc["dispersion", "statistic"] > 1.5


def test_zero_inflation_test_finds_structural_zeros():
    res = bg.residuals(poisson_fit(5, zeros=0.3), random_seed=1)
    assert p_value(res, "zero_inflation") < 0.01
    assert res.tests().set_index("test").loc["zero_inflation", "statistic"] > 1.1


def test_tests_quiet_on_a_correct_model():
    table = bg.residuals(poisson_fit(7), random_seed=3).tests().set_index("test")
    assert list(table.index) == [
        "uniformity",
        "dispersion",
        "zero_inflation",
        "outliers",
        "dispersion[g]",
        "re_normality[1|g]",
    ]
    assert (table["p_value"] > 0.001).all(), table
    assert (
        "shrinkage makes this test weak and conservative" in table.loc["re_normality[1|g]", "note"]
    )


def test_same_seed_same_values(cbpp_fit):
    a = bg.residuals(cbpp_fit, random_seed=42)
    b = bg.residuals(cbpp_fit, random_seed=42)
    c = bg.residuals(cbpp_fit, random_seed=43)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.simulated, b.simulated)
    assert not np.array_equal(a.values, c.values)
    pd.testing.assert_frame_equal(a.tests(), b.tests())
    u = bg.residuals(cbpp_fit, conditional=False, random_seed=42)
    np.testing.assert_array_equal(
        u.values, bg.residuals(cbpp_fit, conditional=False, random_seed=42).values
    )


@pytest.mark.filterwarnings("ignore:effective sample size")
@pytest.mark.filterwarnings("ignore:R-hat")
def test_bayesian_quantile_residuals():
    fit = bg.GLMM(CBPP_FORMULA, bg.datasets.load("cbpp"), family="binomial").fit(
        method="nuts", draws=150, tune=150, chains=2, random_seed=3, progressbar=False
    )
    res = bg.residuals(fit, random_seed=5)
    assert res.values.shape == (56,)
    assert res.simulated.shape == (300, 56)  # one simulation per posterior draw
    assert res.n_sim == 300
    assert "re_normality[1|herd]" in res.tests()["test"].tolist()
    assert np.all((res.values >= 0) & (res.values <= 1))
    assert p_value(res, "uniformity") > 0.001
    np.testing.assert_array_equal(res.values, bg.residuals(fit, random_seed=5).values)
    marginal = bg.residuals(fit, conditional=False, random_seed=5)
    assert np.all((marginal.values >= 0) & (marginal.values <= 1))
    assert not np.array_equal(marginal.values, res.values)


def test_gee_residuals_simulate_the_marginal_model():
    fit = bg.GLMM("y ~ x + (1|g)", poisson_data(3), family="poisson").fit(method="gee")
    res = bg.residuals(fit, n_sim=2000, random_seed=1)
    assert not res.conditional
    # simulated means are the marginal means (no random effects): z-scores of 300 rows
    z = (res.simulated.mean(axis=0) - res.fitted) / np.sqrt(res.fitted / 2000)
    assert np.max(np.abs(z)) < 4.5
    # the data have a herd-level effect the marginal Poisson variance ignores
    assert p_value(res, "dispersion") < 0.01


def test_correlated_terms_simulated_unconditionally():
    data = poisson_data(3, slope=0.5)
    fit = bg.GLMM("y ~ x + (1 + x|g)", data, family="poisson").fit(method="laplace")
    assert abs(fit.re_correlations.iloc[0]) < 0.99  # a correlated, non-singular term
    res = bg.residuals(fit, conditional=False, n_sim=500, random_seed=2)
    assert p_value(res, "uniformity") > 0.001
    assert np.all((res.values >= 0) & (res.values <= 1))


def grouped_poisson(seed: int, bad_groups: int = 0, skewed: bool = False, groups=30, size=10):
    """Poisson one-factor data; the first ``bad_groups`` levels get an extra observation-level
    effect of sd 1.5 (overdispersion in a few levels only); ``skewed`` draws the level
    effects from a centred exponential (sd 0.7) instead of a normal."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), size)
    x = rng.normal(size=g.size)
    b = 0.7 * (rng.exponential(size=groups) - 1) if skewed else rng.normal(0.0, 0.7, groups)
    eta = 0.5 + 0.4 * x + b[g]
    bad = g < bad_groups
    eta = eta + np.where(bad, rng.normal(0.0, 1.5, g.size), 0.0)
    y = rng.poisson(np.exp(eta))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})


def test_group_dispersion_finds_overdispersed_levels():
    data = grouped_poisson(2, bad_groups=4)
    fit = bg.GLMM("y ~ x + (1|g)", data, family="poisson").fit(method="laplace")
    res = bg.residuals(fit, random_seed=1)
    table = res.tests().set_index("test")
    assert table.loc["dispersion[g]", "p_value"] < 0.01, table
    per_level = res.group_dispersion("g").set_index("level")
    assert list(per_level.index[:3]) == ["g0", "g1", "g2"]  # the data's order
    # the overdispersed levels are among the smallest per-level p-values
    worst = set(per_level["p_value"].nsmallest(6).index)
    assert len(worst & {"g0", "g1", "g2", "g3"}) >= 3, per_level.head(8)


def test_group_dispersion_table_by_hand(cbpp_fit):
    res = bg.residuals(cbpp_fit, random_seed=4)
    table = res.group_dispersion("herd").set_index("level")
    rows = res.groups["herd"] == "3"
    center = res.simulated.mean(axis=0)
    obs = np.sum((res.observed[rows] - center[rows]) ** 2)
    sims = ((res.simulated[:, rows] - center[rows]) ** 2).sum(axis=1)
    assert table.loc["3", "n"] == rows.sum()
    assert table.loc["3", "statistic"] == pytest.approx(obs / sims.mean())
    assert table.loc["3", "p_value"] == pytest.approx((1 + np.sum(sims >= obs)) / (len(sims) + 1))
    row = res.tests().set_index("test").loc["dispersion[herd]"]
    assert row["statistic"] == pytest.approx(table["p_value"].min())
    assert "per-level table" in row["note"]


def test_re_normality_finds_skewed_effects():
    data = grouped_poisson(1, skewed=True, groups=60, size=20)
    fit = bg.GLMM("y ~ x + (1|g)", data, family="poisson").fit(method="laplace")
    table = bg.residuals(fit, random_seed=1).tests().set_index("test")
    assert table.loc["re_normality[1|g]", "p_value"] < 0.01, table
    # Shapiro-Wilk on the conditional modes over their predictive sd, computed directly
    modes = fit.random_effects["1|g"]["Intercept"].to_numpy()
    cv = fit.random_effects["1|g (conditional variance)"]["Intercept"].to_numpy()
    z = modes / np.sqrt(fit.variance_components["g"] - cv)
    expected = stats.shapiro(z)
    assert table.loc["re_normality[1|g]", "statistic"] == pytest.approx(expected.statistic)


def test_tests_group_argument(cbpp_fit):
    res = bg.residuals(cbpp_fit, random_seed=4)
    assert "dispersion[herd]" in res.tests(group="herd")["test"].tolist()
    assert "dispersion[herd]" not in res.tests(group=[])["test"].tolist()
    with pytest.raises(OptionError, match="group"):
        res.tests(group="farm")
    with pytest.raises(OptionError, match="quantile"):
        bg.residuals(cbpp_fit, kind="pearson").group_dispersion("herd")


def test_residuals_expose_what_plots_need(cbpp_fit, monkeypatch):
    data = bg.datasets.load("cbpp")
    res = bg.residuals(cbpp_fit, random_seed=4, n_sim=120)
    assert res.kind == "quantile" and res.conditional and res.n_sim == 120
    np.testing.assert_array_equal(res.groups["herd"], data["herd"].astype(str).to_numpy())
    np.testing.assert_allclose(res.fitted, data["size"] * cbpp_fit.predict(type="response"))
    assert bg.residuals(cbpp_fit, kind="pearson").n_sim is None
    assert set(res.random_effects) == {"1|herd"}
    # .plot hands itself and its arguments to plots.plot_residuals
    from bayesglmm.diagnostics import plots

    seen = {}

    def fake(r, kind="all", group=None, ax=None, **kw):
        seen.update(r=r, kind=kind, group=group, ax=ax, kw=kw)
        return "drawn"

    monkeypatch.setattr(plots, "plot_residuals", fake)
    assert res.plot(kind="qq", group="herd", figsize=(3, 3)) == "drawn"
    assert seen == {"r": res, "kind": "qq", "group": "herd", "ax": None, "kw": {"figsize": (3, 3)}}


def test_crossed_factors_each_get_a_row():
    rng = np.random.default_rng(8)
    a = np.repeat(np.arange(12), 12)
    b = np.tile(np.arange(12), 12)
    eta = 0.3 + rng.normal(0, 0.5, 12)[a] + rng.normal(0, 0.5, 12)[b]
    data = pd.DataFrame(
        {"y": rng.poisson(np.exp(eta)), "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b]}
    )
    fit = bg.GLMM("y ~ 1 + (1|a) + (1|b)", data, family="poisson").fit(method="laplace")
    res = bg.residuals(fit, random_seed=2)
    assert set(res.groups) == {"a", "b"}
    table = res.tests().set_index("test")
    for name in ["dispersion[a]", "dispersion[b]", "re_normality[1|a]", "re_normality[1|b]"]:
        assert 0.001 < table.loc[name, "p_value"] <= 1.0, table
