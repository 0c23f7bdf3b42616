"""PSIS-LOO, WAIC and ELPD comparison of Bayesian fits (bayesglmm.inference.loo)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesglmm as bg
from bayesglmm._arviz import import_arviz
from bayesglmm.errors import BayesGLMMError, MethodError
from bayesglmm.inference.group_loo import (
    group_refit_elpd,
    integrated_group_loglik,
    integrated_level_loglik,
    psis_mcse,
)
from bayesglmm.inference.loo import GROUP_LOO_KINDS
from bayesglmm.model.families import get_family

# short chains on purpose: their R-hat/ESS warnings and ArviZ's Pareto-k/WAIC warnings are
# not what these tests check (the numbers are compared with ArviZ's on the same draws)
pytestmark = [
    pytest.mark.filterwarnings("ignore::bayesglmm.bayes.posterior.SamplingWarning"),
    pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto"),
    pytest.mark.filterwarnings("ignore:For one or more samples the posterior variance"),
]
SMALL = {"draws": 200, "tune": 200, "chains": 2, "cores": 1, "progressbar": False}


def _data(n: int = 200, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {"x": rng.normal(size=n), "g": np.repeat([f"g{i}" for i in range(20)], n // 20)}
    )
    return bg.simulate(
        "y ~ x + (1|g)",
        df,
        {"Intercept": 0.5, "x": 0.8},
        {"g": 0.25},
        family="poisson",
        random_seed=seed,
    )


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def right(data):
    return bg.GLMM("y ~ x + (1|g)", data, family="poisson").fit(random_seed=3, **SMALL)


@pytest.fixture(scope="module")
def wrong(data):
    return bg.GLMM("y ~ 1 + (1|g)", data, family="poisson").fit(random_seed=4, **SMALL)


def test_loo_is_arviz_loo_on_the_same_draws(right):
    az = import_arviz()
    ours = bg.loo(right, pointwise=True)
    theirs = az.loo(right.idata, pointwise=True)
    assert ours["elpd_loo"] == theirs["elpd_loo"]
    assert ours["se"] == theirs["se"]
    np.testing.assert_array_equal(ours.pareto_k.values, theirs.pareto_k.values)
    assert ours.pareto_k.size == right.nobs == 200


def test_loo_of_a_gibbs_fit_is_arviz_loo(data):
    az = import_arviz()
    fit = bg.GLMM("y ~ x + (1|g)", data, family="poisson").fit(
        method="gibbs", random_seed=3, **SMALL
    )
    ours, theirs = bg.loo(fit, pointwise=True), az.loo(fit.idata, pointwise=True)
    assert ours["elpd_loo"] == theirs["elpd_loo"]
    np.testing.assert_array_equal(ours.pareto_k.values, theirs.pareto_k.values)


def test_waic_is_arviz_waic(right):
    az = import_arviz()
    theirs = az.waic(right.idata, pointwise=True)
    assert bg.waic(right, pointwise=True)["elpd_waic"] == theirs["elpd_waic"]
    ours = bg.waic(right)  # labelled elpd_waic without pointwise too, and printable
    assert ours["elpd_waic"] == theirs["elpd_waic"] and ours["se"] == theirs["se"]
    assert "waic" in repr(ours)


def test_compare_models_ranks_the_right_model_first(right, wrong):
    table = bg.compare_models({"y ~ 1": wrong, "y ~ x": right})
    assert list(table.index) == ["y ~ x", "y ~ 1"]
    diff, dse = table.loc["y ~ 1", ["elpd_diff", "dse"]]
    assert diff > 4 * dse > 0
    waic_table = bg.compare_models({"y ~ 1": wrong, "y ~ x": right}, ic="waic")
    assert waic_table.index[0] == "y ~ x"


def test_conditional_group_loo_sums_the_rows_of_each_level(right):
    az = import_arviz()
    with pytest.warns(UserWarning, match="level\\(s\\) of 'g' have Pareto k above 0.7"):
        out = bg.loo(right, group="g", pointwise=True, integrate=False, refit=False)
    assert out["loo_kind"] == GROUP_LOO_KINDS[False] and out["group"] == "g"
    assert out.pareto_k.size == 20
    assert "conditional leave-one-group-out over the levels of 'g'" in repr(out)
    # the same PSIS on the log-likelihood summed by hand over the 10 rows of each level
    ll = right.idata.log_likelihood["y"].values
    summed = ll.reshape(*ll.shape[:2], 20, 10).sum(axis=-1)  # rows are sorted by level
    by_hand = az.InferenceData(
        posterior=right.idata.posterior,
        log_likelihood=xr.Dataset({"y": (("chain", "draw", "level"), summed)}),
    )
    assert out["elpd_loo"] == pytest.approx(az.loo(by_hand)["elpd_loo"], rel=1e-12)
    with pytest.raises(MethodError, match="'Male'.*grouping factor"):
        bg.loo(right, group="Male")


def test_refuses_a_laplace_fit(data):
    fit = bg.GLMM("y ~ x + (1|g)", data, family="poisson").fit(method="laplace")
    for call in (bg.loo, bg.waic):
        with pytest.raises(MethodError, match="likelihood fit.*'laplace'.*nuts"):
            call(fit)


def test_refuses_a_fit_without_log_likelihood(data, right):
    fit = bg.GLMM("y ~ x + (1|g)", data, family="poisson").fit(
        random_seed=5, log_likelihood=False, **SMALL
    )
    with pytest.raises(MethodError, match="log_likelihood=True"):
        bg.loo(fit)
    with pytest.raises(MethodError, match="fit 'b'.*log_likelihood=True"):
        bg.compare_models({"a": right, "b": fit})


def test_compare_models_refuses_fits_of_different_data(right):
    fewer = _data(n=180, seed=1)
    other = bg.GLMM("y ~ x + (1|g)", fewer, family="poisson").fit(random_seed=6, **SMALL)
    with pytest.raises(BayesGLMMError, match="'a' and 'b'.*number of observations: 200 vs 180"):
        bg.compare_models({"a": right, "b": other})
    resampled = _data(seed=2)
    other = bg.GLMM("y ~ x + (1|g)", resampled, family="poisson").fit(random_seed=6, **SMALL)
    with pytest.raises(BayesGLMMError, match="'a' and 'b'.*observed values differ"):
        bg.compare_models({"a": right, "b": other})


def test_compare_models_refuses_a_bad_ic_and_a_single_fit(right):
    with pytest.raises(MethodError, match="ic='aic'"):
        bg.compare_models({"a": right, "b": right}, ic="aic")
    with pytest.raises(BayesGLMMError, match="fits must be a dict of at least two"):
        bg.compare_models({"a": right})


# ------------------------------------------------------------------------------------------
# integrated leave-one-group-out (bayesglmm.inference.group_loo)

SALAMANDER = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
SAL_DRAWS = {"draws": 1000, "tune": 500, "chains": 2, "cores": 1, "progressbar": False}


@pytest.fixture(scope="module")
def sal_fit(salamander):
    return bg.GLMM(SALAMANDER, salamander, family="binomial").fit(random_seed=11, **SAL_DRAWS)


@pytest.fixture(scope="module")
def sal_loo(sal_fit):
    with warnings.catch_warnings():  # levels above k = 0.7 are named in a warning
        warnings.simplefilter("ignore", UserWarning)
        return bg.loo(sal_fit, group="Female", pointwise=True, refit=False)


@pytest.fixture(scope="module")
def sal_matrix(sal_fit):
    return integrated_group_loglik(sal_fit, "Female")


def test_integrated_group_loo_is_arviz_loo_on_the_integrated_matrix(sal_fit, sal_loo, sal_matrix):
    az = import_arviz()
    matrix = sal_matrix
    assert matrix.dims == ("chain", "draw", "Female") and matrix.shape == (2, 1000, 60)
    idata = az.InferenceData(
        posterior=sal_fit.idata.posterior, log_likelihood=xr.Dataset({"Mate": matrix})
    )
    theirs = az.loo(idata, pointwise=True)
    assert sal_loo["elpd_loo"] == theirs["elpd_loo"] and sal_loo["se"] == theirs["se"]
    np.testing.assert_array_equal(sal_loo.pareto_k.values, theirs.pareto_k.values)
    assert sal_loo["loo_kind"] == GROUP_LOO_KINDS[True] and sal_loo["refitted"] == []
    assert "integrated leave-one-group-out over the levels of 'Female'" in repr(sal_loo)
    # one value per level, as the conditional version; integrating the level's effect out
    # leaves far fewer levels with a high Pareto k (conditional: about 40% above 0.7 here)
    with pytest.warns(UserWarning, match="refit=False"):
        conditional = bg.loo(sal_fit, group="Female", pointwise=True, integrate=False, refit=False)
    assert conditional.pareto_k.shape == sal_loo.pareto_k.shape == (60,)
    high = (sal_loo.pareto_k.values > 0.7).sum()
    assert high <= 3 < (conditional.pareto_k.values > 0.7).sum()
    # the integrated marginal likelihood of a level is below the conditional one at the
    # level's own effect draws on average (its effect is not tuned to its own rows)
    assert sal_loo["elpd_loo"] < conditional["elpd_loo"]


def _brute_force_level(fit, design, level: str, draws: np.ndarray, n_mc: int, seed: int):
    """log mean over b ~ N(0, sigma^2) of prod_i Bernoulli(y_i | logit^-1(eta0_i + b)),
    written directly from the posterior's variables (an implementation independent of the
    package's), with its Monte Carlo standard error (delta method)."""
    post = fit.idata.posterior
    female = design.groups["Female"]
    male = design.groups["Male"]
    rows = np.flatnonzero(np.asarray(female.levels)[female.index] == level)
    cross = post["Cross"].values.reshape(-1, 4)[draws]  # columns RR RW WR WW
    males = post["1|Male"].values.reshape(-1, 60)[draws]
    sigma = post["1|Female_sigma"].values.ravel()[draws]
    male_pos = [list(post["Male"].values.astype(str)).index(m) for m in male.levels]
    eta0 = design.X[rows] @ cross.T + males[:, np.asarray(male_pos)[male.index[rows]]].T
    y = design.y[rows]
    b = np.random.default_rng(seed).standard_normal(n_mc)
    out, se = [], []
    for s in range(len(draws)):
        eta = eta0[:, s][:, None] + sigma[s] * b[None, :]
        ll = np.sum(y[:, None] * eta - np.logaddexp(0.0, eta), axis=0)
        p = np.exp(ll - ll.max())
        out.append(np.log(p.mean()) + ll.max())
        se.append(p.std() / np.sqrt(n_mc) / p.mean())
    return np.array(out), np.array(se)


def test_quadrature_matches_brute_force_monte_carlo(sal_fit, sal_matrix):
    design = sal_fit.model.design
    draws = np.arange(0, 2000, 250)  # eight draws from both chains
    mc, se = _brute_force_level(sal_fit, design, "7", draws, n_mc=100_000, seed=1)
    agq = sal_matrix.sel(Female="7").values.ravel()[draws]
    laplace = integrated_group_loglik(sal_fit, "Female", nodes=1).sel(Female="7")
    laplace = laplace.values.ravel()[draws]
    # 5 Monte Carlo standard errors: a false failure rate below 1e-5 over the eight draws
    np.testing.assert_array_less(np.abs(agq - mc), 5 * se)
    # the test tells quadrature from the Laplace approximation (one node)
    assert np.max(np.abs(laplace - mc) / se) > 5


def test_quadrature_in_two_dimensions_is_the_gaussian_marginal_and_monte_carlo():
    rng = np.random.default_rng(4)
    S, n, J = 3, 12, 3
    index = np.repeat(np.arange(J), n // J)
    Z = np.column_stack([np.ones(n), rng.normal(size=n)])
    Sigma = np.array([[[0.8, 0.3], [0.3, 0.5]], [[0.2, -0.1], [-0.1, 0.4]], [[1.5, 0], [0, 1e-12]]])
    root = np.linalg.cholesky(Sigma + 1e-15 * np.eye(2))
    eta0 = rng.normal(size=(S, n))
    # gaussian: the marginal of y_j is N(eta0_j, Z_j Sigma Z_j' + sigma^2 I), exactly
    gauss = get_family("gaussian")
    sigma = np.array([0.7, 1.1, 0.9])
    y = eta0[0] + rng.normal(size=n)
    got = integrated_level_loglik(gauss, y, None, eta0, Z, index, J, root, sigma)
    from scipy.stats import multivariate_normal

    for s in range(S):
        for j in range(J):
            r = index == j
            cov = Z[r] @ Sigma[s] @ Z[r].T + sigma[s] ** 2 * np.eye(r.sum())
            exact = multivariate_normal(eta0[s, r], cov).logpdf(y[r])
            assert got[s, j] == pytest.approx(exact, abs=1e-8)
    # poisson with a correlated random intercept and slope: against Monte Carlo
    pois = get_family("poisson")
    y = rng.poisson(np.exp(eta0[0] + 0.5))
    got = integrated_level_loglik(pois, y.astype(float), None, eta0, Z, index, J, root)
    u = rng.standard_normal((400_000, 2))
    for s in range(S):
        b = u @ root[s].T
        for j in range(J):
            r = index == j
            eta = eta0[s, r][:, None] + Z[r] @ b.T
            ll = np.sum(y[r][:, None] * eta - np.exp(eta), axis=0) - np.sum(
                np.log(np.arange(1, y[r].max() + 1)).cumsum()[y[r] - 1][y[r] > 0]
            )
            p = np.exp(ll - ll.max())
            mc, se = np.log(p.mean()) + ll.max(), p.std() / np.sqrt(p.size) / p.mean()
            assert abs(got[s, j] - mc) < 5 * se  # 5 MC standard errors (rate < 1e-5)


def test_integrated_importance_sampling_equals_exact_refits(sal_fit, sal_loo, sal_matrix):
    # the first three levels with Pareto k below 0.5, refitted without their rows (NUTS,
    # the fit's options)
    k = sal_loo.pareto_k.to_series()
    levels = list(k.index[k < 0.5][:3])
    exact = group_refit_elpd(sal_fit, "Female", levels, random_seed=2, max_workers=1)
    assert exact["error"].isna().all() and (exact["n_rows"] == 6).all()
    matrix = sal_matrix
    for level in levels:
        psis = float(sal_loo.loo_i.sel(Female=level))
        se = np.hypot(psis_mcse(matrix.sel(Female=level).values), exact.loc[level, "mcse"])
        # 4 Monte Carlo standard errors of both estimates (false failure rate ~6e-5 each)
        assert abs(psis - exact.loc[level, "elpd"]) < 4 * se, (level, psis, exact.loc[level])
        assert se < 0.05


def test_refits_replace_the_levels_above_the_threshold(sal_fit, sal_loo):
    k = sal_loo.pareto_k.to_series().sort_values()
    threshold = float(k.iloc[-3])  # forces a refit of the two levels with the highest k
    top = list(k.index[-2:])
    out = bg.loo(
        sal_fit, group="Female", pointwise=True, k_threshold=threshold, random_seed=9,
        max_workers=1,
    )  # fmt: skip
    assert sorted(out["refitted"]) == sorted(top) == sorted(out["flagged"])
    assert out["k_threshold"] == threshold and not out["warning"]
    exact = group_refit_elpd(sal_fit, "Female", top, random_seed=9, max_workers=1)
    loo_i = out.loo_i.to_series()
    for level in top:  # the same refit (seed derived from random_seed and the level)
        assert loo_i[level] == exact.loc[level, "elpd"]
        assert out["refits"].loc[level, "elpd_exact"] == exact.loc[level, "elpd"]
        assert out["refits"].loc[level, "elpd_psis"] == float(sal_loo.loo_i.sel(Female=level))
    rest = [lv for lv in loo_i.index if lv not in top]
    np.testing.assert_array_equal(loo_i[rest], sal_loo.loo_i.to_series()[rest])
    assert out["elpd_loo"] == pytest.approx(loo_i.sum(), rel=1e-12)
    assert out["se"] == pytest.approx(np.sqrt(60 * np.var(loo_i)), rel=1e-12)
    lppd = sal_loo["elpd_loo"] + sal_loo["p_loo"]  # unchanged by the refits
    assert out["elpd_loo"] + out["p_loo"] == pytest.approx(lppd, rel=1e-12)
    assert "exact refits without levels" in repr(out)


def test_too_many_flagged_levels_are_named_not_refitted(sal_fit, sal_loo):
    n = int((sal_loo.pareto_k.values > 0.1).sum())
    assert n > 2
    with pytest.warns(UserWarning, match=rf"{n} level\(s\) of 'Female'.*max_refits=2.*\['"):
        out = bg.loo(sal_fit, group="Female", k_threshold=0.1, max_refits=2)
    assert out["refitted"] == [] and len(out["flagged"]) == n and out["warning"]
    assert out["elpd_loo"] == sal_loo["elpd_loo"]
    assert "loo_i" not in out  # pointwise=False


def test_refit_false_names_the_flagged_levels(right):
    with pytest.warns(UserWarning, match="of 'g' have Pareto k above 0 .*refit=False"):
        out = bg.loo(right, group="g", k_threshold=0.0, refit=False)
    assert out["refitted"] == [] and out["flagged"]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"k_threshold": -0.1}, "k_threshold"),
        ({"max_refits": -1}, "max_refits"),
        ({"nodes": 0}, "nodes"),
        ({"integrate": "yes"}, "integrate"),
        ({"refit": 1}, "refit"),
    ],
)
def test_group_loo_refuses_bad_options(right, options, match):
    with pytest.raises(MethodError, match=match):
        bg.loo(right, group="g", **options)


def test_integrate_and_refit_need_a_group(right):
    with pytest.raises(MethodError, match="give group="):
        bg.loo(right, refit=True)
    with pytest.raises(MethodError, match="levels: \\['x'\\] are not levels"):
        group_refit_elpd(right, "g", ["x"])


def test_refits_resume_from_a_store(sal_fit, tmp_path):
    first = group_refit_elpd(sal_fit, "Female", ["3"], random_seed=4, store=tmp_path, max_workers=1)
    assert any(tmp_path.iterdir())
    again = group_refit_elpd(sal_fit, "Female", ["3"], random_seed=4, store=tmp_path, max_workers=1)
    assert again.loc["3", "elpd"] == first.loc["3", "elpd"]
    np.testing.assert_array_equal(again.attrs["loglik"]["3"], first.attrs["loglik"]["3"])
