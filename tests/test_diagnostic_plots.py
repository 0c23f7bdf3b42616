"""Residual and predictive-check plots: the simultaneous QQ band, the quantile regressions,
and the figures drawn for likelihood and Bayesian fits (Agg backend, nothing shown)."""

from __future__ import annotations

import itertools
import warnings
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

import bayesglmm as bg  # noqa: E402
from bayesglmm.diagnostics.plots import (  # noqa: E402
    ks_band,
    plot_loo_pit,
    plot_ppc_by_group,
    plot_residuals,
    quantile_regression,
)
from bayesglmm.diagnostics.residuals import residuals  # noqa: E402
from bayesglmm.errors import MethodError, OptionError  # noqa: E402

CBPP_FORMULA = "cbind(incidence, size - incidence) ~ period + (1|herd)"


def with_groups(res, model):
    """The residuals with ``groups`` (factor -> each row's level), as Residuals will carry."""
    if not getattr(res, "groups", None):
        res.groups = {
            t.group: np.asarray([str(v) for v in t.levels])[np.asarray(t.index)]
            for t in model.design.random
        }
    return res


@pytest.fixture(scope="module")
def cbpp_model():
    return bg.GLMM(CBPP_FORMULA, bg.datasets.load("cbpp"), family="binomial")


@pytest.fixture(scope="module")
def cbpp_laplace(cbpp_model):
    return cbpp_model.fit(method="laplace")


@pytest.fixture(scope="module")
def cbpp_nuts(cbpp_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: low-ESS notes are expected
        return cbpp_model.fit(
            method="nuts", draws=150, tune=150, chains=2, cores=1, random_seed=5, progressbar=False
        )


def check_loss(y, fit, q):
    u = y - fit
    return float(np.sum(u * (q - (u < 0))))


# ------------------------------------------------------------------------------------------
# the band


def test_points_leave_the_ks_band_exactly_when_the_ks_test_rejects():
    """Uniform and non-uniform samples: all inside the band <=> scipy's exact KS p >= 0.05."""
    rng = np.random.default_rng(1)
    seen = {True: 0, False: 0}
    for n in (5, 17, 60, 250):
        _, lower, upper = ks_band(n, 0.95)
        for a in (1.0, 1.15, 1.4, 0.7):
            for _ in range(40):
                u = np.sort(rng.beta(a, 1.0, size=n))
                p = stats.kstest(u, "uniform").pvalue
                if abs(p - 0.05) < 1e-9:
                    continue
                inside = bool(np.all((u >= lower) & (u <= upper)))
                assert inside == (p >= 0.05), (n, a, p)
                seen[inside] += 1
    assert min(seen.values()) > 50  # both outcomes were checked


def test_ks_band_covers_uniform_samples_simultaneously_at_95_percent():
    """4000 uniform samples of 40: the share wholly inside is 0.95 within 4 Monte Carlo
    standard errors (0.0034 each; false-failure rate 6e-5). A pointwise 95 % band (beta
    quantiles of each order statistic) covers whole samples far less often."""
    rng = np.random.default_rng(2)
    n, reps = 40, 4000
    expected, lower, upper = ks_band(n, 0.95)
    u = np.sort(rng.uniform(size=(reps, n)), axis=1)
    cover = np.mean(np.all((u >= lower) & (u <= upper), axis=1))
    assert abs(cover - 0.95) < 4 * np.sqrt(0.95 * 0.05 / reps)
    i = np.arange(1, n + 1)
    lo, hi = stats.beta.ppf(0.025, i, n + 1 - i), stats.beta.ppf(0.975, i, n + 1 - i)
    assert np.mean(np.all((u >= lo) & (u <= hi), axis=1)) < 0.75
    # the QQ line of uniform data (expected = observed) lies inside the band
    assert np.all((lower <= expected) & (expected <= upper))
    with pytest.raises(OptionError, match="level"):
        ks_band(10, 1.0)


# ------------------------------------------------------------------------------------------
# the quantile regressions


@pytest.mark.parametrize("q", [0.25, 0.5, 0.75])
def test_quantile_regression_matches_statsmodels_quantreg(q):
    from statsmodels.regression.quantile_regression import QuantReg

    rng = np.random.default_rng(3)
    x = rng.uniform(size=300)
    y = 0.2 + 0.5 * x + rng.standard_t(3, size=300) * (0.3 + 0.5 * x)  # slope varies with q
    beta = quantile_regression(x, y, q)
    ref = QuantReg(y, np.column_stack([np.ones_like(x), x])).fit(q=q, max_iter=5000).params
    # the LP is solved exactly; QuantReg's IRLS stops near the optimum
    assert check_loss(y, beta[0] + beta[1] * x, q) <= check_loss(y, ref[0] + ref[1] * x, q) + 1e-9
    np.testing.assert_allclose(beta, ref, atol=2e-3)


def test_quantile_regression_of_many_rows_is_fast_and_recovers_the_quantile_lines():
    """50,000 rows with a known conditional quantile line: y = x + (1 + x) e, e ~ N(0, 1), whose
    q quantile is x + (1 + x) z_q. Asymptotic standard errors (Koenker 2005, sec. 3.2, with
    the density at the quantile taken at x = 1/2): about 0.018 for the intercept and 0.032 for
    the slope; the tolerance 0.15 is over 4.5 of them (false-failure rate below 1e-5)."""
    import time

    rng = np.random.default_rng(7)
    x = rng.uniform(size=50_000)
    y = x + (1.0 + x) * rng.normal(size=x.size)
    start = time.perf_counter()
    for q in (0.25, 0.75):
        z = stats.norm.ppf(q)
        np.testing.assert_allclose(quantile_regression(x, y, q), [z, 1.0 + z], atol=0.15)
    assert time.perf_counter() - start < 20  # the dual LP: about a second per line


@pytest.mark.parametrize("q", [0.25, 0.5, 0.75])
def test_quantile_regression_is_the_best_line_through_two_points(q):
    """A linear quantile regression has an optimal line through two data points: brute force
    over all pairs of 14 points gives the same minimal check loss and line."""
    rng = np.random.default_rng(int(q * 100))
    x = rng.uniform(size=14)
    y = x + rng.normal(size=14)
    best = min(
        (check_loss(y, y[i] + (y[j] - y[i]) / (x[j] - x[i]) * (x - x[i]), q), i, j)
        for i, j in itertools.combinations(range(14), 2)
    )
    beta = quantile_regression(x, y, q)
    assert check_loss(y, beta[0] + beta[1] * x, q) == pytest.approx(best[0], rel=1e-9)
    _, i, j = best
    slope = (y[j] - y[i]) / (x[j] - x[i])
    np.testing.assert_allclose(beta, [y[i] - slope * x[i], slope], atol=1e-7)
    # a quadratic fits at least as well, and a wrong quantile fits worse
    assert check_loss(y, np.polyval(quantile_regression(x, y, q, degree=2)[::-1], x), q) <= (
        best[0] + 1e-9
    )
    other = quantile_regression(x, y, 0.9 if q < 0.9 else 0.1)
    assert check_loss(y, other[0] + other[1] * x, q) > best[0]


# ------------------------------------------------------------------------------------------
# the residual figures


def test_residual_figure_of_a_laplace_fit(cbpp_model, cbpp_laplace, tmp_path):
    res = with_groups(residuals(cbpp_laplace, random_seed=4), cbpp_model)
    fig = plot_residuals(res)
    qq, fitted, group = fig.axes
    p = stats.kstest(res.values, "uniform").pvalue
    assert f"KS p = {p:.3g}" in qq.get_title()
    # the sorted residuals are drawn at the plotting positions (i - 1/2) / n
    xs = np.concatenate([ln.get_xdata() for ln in qq.lines[1:]])
    ys = np.concatenate([ln.get_ydata() for ln in qq.lines[1:]])
    np.testing.assert_allclose(np.sort(ys), np.sort(res.values))
    np.testing.assert_allclose(np.sort(xs), (np.arange(56) + 0.5) / 56)
    # three red quantile lines, each the LP fit on the ranks of the fitted means
    x = (stats.rankdata(res.fitted) - 0.5) / 56
    red = [ln for ln in fitted.lines if ln.get_color() == "C3"]
    assert len(red) == 3
    for ln, q in zip(red, (0.25, 0.5, 0.75), strict=True):
        beta = quantile_regression(x, res.values, q)
        np.testing.assert_allclose(ln.get_ydata(), beta[0] + beta[1] * ln.get_xdata())
    assert [ln.get_ydata()[0] for ln in fitted.lines if ln.get_linestyle() == "--"] == [
        0.25,
        0.5,
        0.75,
    ]
    # one box per herd, sorted by median
    labels = [t.get_text() for t in group.get_xticklabels()]
    assert sorted(labels, key=int) == [str(i) for i in range(1, 16)]
    medians = [np.median(res.values[res.groups["herd"] == lev]) for lev in labels]
    assert medians == sorted(medians)
    fig.savefig(tmp_path / "res.png")
    assert (tmp_path / "res.png").stat().st_size > 10_000
    assert len(res.plot(kind="qq").axes) == 1  # Residuals.plot draws through plot_residuals
    plt.close("all")


def test_misfit_shows_outside_the_band_and_in_the_title():
    """Overdispersed residuals (U-shaped) leave the band: red points, KS p below 0.05."""
    rng = np.random.default_rng(6)
    values = rng.beta(0.5, 0.5, size=200)
    res = SimpleNamespace(values=values, fitted=rng.gamma(2.0, size=200), kind="quantile")
    fig = plot_residuals(res, kind="qq")
    (ax,) = fig.axes
    _, lower, upper = ks_band(200)
    y = np.sort(values)
    outside = int(np.sum((y < lower) | (y > upper)))
    red = [ln for ln in ax.lines if ln.get_color() == "C3"]
    assert outside > 0 and len(red) == 1 and len(red[0].get_xdata()) == outside
    assert stats.kstest(values, "uniform").pvalue < 0.05
    # no groups: "all" draws two panels; an explicit labelling adds the third
    assert len(plot_residuals(res).axes) == 2
    assert len(plot_residuals(res, group=np.repeat(list("abcd"), 50)).axes) == 3
    plt.close("all")


def test_other_kinds_and_given_axes(cbpp_laplace):
    res = residuals(cbpp_laplace, kind="pearson")
    res.groups = {}  # two panels without a grouping
    fig, axes = plt.subplots(1, 2)
    assert plot_residuals(res, ax=axes) is fig
    with pytest.raises(OptionError, match="3 axes needed for qq, fitted, group"):
        plot_residuals(res, ax=axes, group=np.repeat(np.arange(14), 4))
    assert "N(0, 1)" in axes[0].get_title()
    assert [ln.get_ydata()[0] for ln in axes[1].lines if ln.get_linestyle() == "--"] == [0.0]
    plt.close("all")


def test_bad_arguments_are_one_clear_error(cbpp_laplace):
    res = residuals(cbpp_laplace, random_seed=1)
    with pytest.raises(OptionError, match="kind must be one of"):
        plot_residuals(res, kind="box")
    bare = SimpleNamespace(values=res.values, fitted=res.fitted, kind="quantile")
    with pytest.raises(OptionError, match="needs a grouping"):
        plot_residuals(bare, kind="group")
    bare.groups = {"herd": np.zeros(56)}
    with pytest.raises(
        OptionError, match="'nope' is not a grouping factor of the residuals; they have 'herd'"
    ):
        plot_residuals(bare, kind="group", group="nope")
    with pytest.raises(OptionError, match="one label per residual"):
        plot_residuals(res, group=np.arange(3))
    with pytest.raises(OptionError, match="unknown option 'colour'"):
        plot_residuals(res, colour="red")
    with pytest.raises(MethodError, match="Bayesian fit"):
        plot_loo_pit(cbpp_laplace)
    plt.close("all")


# ------------------------------------------------------------------------------------------
# Bayesian checks


def test_ppc_by_group_and_loo_pit_of_a_nuts_fit(cbpp_nuts, tmp_path):
    fig = plot_ppc_by_group(cbpp_nuts, "herd", max_levels=4, ncols=2, random_seed=1)
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert titles == [f"herd = {h} (4 rows)" for h in ("1", "3", "4", "5")]  # the largest herds
    assert "posterior_predictive" in cbpp_nuts.idata.groups()
    fig.savefig(tmp_path / "ppc.png")
    with pytest.raises(OptionError, match="not a grouping factor"):
        plot_ppc_by_group(cbpp_nuts, "period")
    one = plot_loo_pit(cbpp_nuts, random_seed=2)
    two = plot_loo_pit(cbpp_nuts, random_seed=2)
    assert "randomized" in one.axes[0].get_title()
    a, b = one.axes[0].lines[0].get_ydata(), two.axes[0].lines[0].get_ydata()
    np.testing.assert_array_equal(a, b)  # same seed, same figure
    plt.close("all")
