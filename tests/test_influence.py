"""Influence of the levels of a grouping factor (``bayesglmm.diagnostics.influence``).

Reference: the exact refits on cbpp against lme4 without each herd. The one-step estimates
against the exact refits: one Newton step on the exact case-deleted objective errs by a
second-order term (see ``QUADRATIC`` below). Everything here is deterministic (no Monte
Carlo), so the tolerances are numerical ones, each stated beside its constant.
"""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM
from bayesglmm.diagnostics.case_deletion import level_index, one_step
from bayesglmm.diagnostics.influence import Influence, criterion, influence
from bayesglmm.errors import MethodError, OptionError
from bayesglmm.frequentist.assemble import SingularFitWarning

CBPP = "cbind(incidence, size - incidence) ~ period + (1|herd)"

#: lme4 1.1 without each herd, glmer's Laplace fit (fixef, then the herd sd):
#:   for (h in levels(cbpp$herd)) {
#:     f <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
#:                family = binomial, data = subset(cbpp, herd != h))
#:     cat(h, c(fixef(f), attr(VarCorr(f)$herd, "stddev")))
#:   }
LME4_DROP_HERD = {
    "1": (-1.374780, -1.162081, -1.473716, -1.582768, 0.624382),
    "2": (-1.366405, -0.987703, -1.118844, -1.586886, 0.658499),
    "3": (-1.491994, -0.926884, -0.912980, -1.624164, 0.677006),
    "4": (-1.403657, -0.927488, -1.237333, -1.525564, 0.672813),
    "5": (-1.443255, -0.800578, -0.935775, -1.653758, 0.681600),
    "6": (-1.383494, -0.902328, -1.030551, -1.616569, 0.651489),
    "7": (-1.503571, -0.888407, -1.224554, -1.446086, 0.589370),
    "8": (-1.481276, -0.952595, -1.088971, -1.540640, 0.643730),
    "9": (-1.394650, -0.945067, -1.069868, -1.522669, 0.659145),
    "10": (-1.305039, -1.033408, -1.112186, -1.888817, 0.618112),
    "11": (-1.270714, -1.363908, -1.399067, -1.709692, 0.656469),
    "12": (-1.398920, -1.008237, -1.085997, -1.534225, 0.668564),
    "13": (-1.300050, -1.100799, -1.109621, -1.526302, 0.591160),
    "14": (-1.549565, -0.874337, -0.994689, -1.453414, 0.571215),
    "15": (-1.315112, -1.048246, -1.195391, -1.548685, 0.619901),
}
#: lme4 stops at a relative change of about 1e-4 of the deviance's scale; our full-data fit
#: agrees with glmer's to 2e-4, so refits agree to a few 1e-4
LME4_TOL = 2e-3
#: hessian="deleted" (the default): one Newton step from x_hat on the case-deleted
#: objective f_{-j} with its own Hessian leaves the error e = (1/2) H^{-1} D3f[d, d] of a
#: step of length d = x_{-j} - x_hat: second order, |e| <= K |d|^2. On the sd scale of a
#: variance parameter the curvature changes over the parameter's own size (third over second
#: derivative ~ 3 / theta, theta = 0.64 for cbpp), so K is a few units; measured: 1.05
#: (cbpp, herd 14: d = 0.17, e = 0.03) and 3.7 (the Gaussian LMM below, where the step is on
#: theta = sd / sigma and an error in theta moves both). K = 5 fails a step that is only
#: first-order accurate (a wrong gradient or Hessian: e ~ d, a ratio 1 / d of 10 to 50 for
#: levels that move the estimates by 0.02 to 0.1).
QUADRATIC = 5.0
#: hessian="full": the step is shorter than the Newton step by H^{-1} H_j d, first order
#: with relative size ~ n_j / n = 1 / 15 for cbpp's herds of equal size, on top of the
#: second-order error, at most K |d| = 1.05 * 0.17 relative (above); the sum, 0.25, bounds
#: the largest error relative to a herd's own change (measured 0.165).
FULL_RELATIVE = 0.3
#: one-step against exact over all 15 herds x 5 parameters (measured 0.9978 with the
#: deleted-data Hessian, 0.9989 with the full-data one): errors of at most 0.06 against
#: changes up to 0.37
CORRELATION = 0.99


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    return GLMM(CBPP, cbpp).fit("laplace")


@pytest.fixture(scope="module")
def cbpp_both(cbpp_fit):
    return influence(cbpp_fit, "herd", method="both", levels="all", max_workers=1)


@pytest.fixture(scope="module")
def lmm_model():
    rng = np.random.default_rng(20261207)
    J, nj = 12, 6
    g = np.repeat(np.arange(J), nj)
    x = rng.normal(size=J * nj)
    y = 1.0 + 0.5 * x + 0.8 * rng.normal(size=J)[g] + rng.normal(size=J * nj)
    df = pd.DataFrame({"y": y, "x": x, "g": [f"s{k:02d}" for k in g], "two": g % 2})
    return GLMM("y ~ x + (1|g)", df, family="gaussian")


# ------------------------------------------------------------------------------------------
# cbpp, binomial Laplace


def test_exact_refits_match_lme4(cbpp_both, cbpp_fit):
    t = cbpp_both.table
    exact = cbpp_both.deltas("exact") + t.groupby("parameter", sort=False)["estimate"].first()
    for herd, ref in LME4_DROP_HERD.items():
        np.testing.assert_allclose(exact.loc[herd].to_numpy(), ref, atol=LME4_TOL, err_msg=herd)
    assert cbpp_both.levels["converged"].all()
    assert list(exact.columns) == [*cbpp_fit.fixed_effects.index, "sd(herd)"]


def test_one_step_against_exact(cbpp_both):
    """The default one-step (deleted-data Hessian) is second order in the change."""
    assert cbpp_both.details["hessian"] == "deleted"
    assert cbpp_both.details["path"] == "level contributions"
    one, exact = cbpp_both.deltas("one_step"), cbpp_both.deltas("exact")
    r = np.corrcoef(one.to_numpy().ravel(), exact.to_numpy().ravel())[0, 1]
    assert r > CORRELATION
    err = (one - exact).abs().max(axis=1)
    size = exact.abs().max(axis=1)
    assert np.all(err <= QUADRATIC * size**2), (err / size**2).max()
    # the one-step is not the exact refit: a test that confused the two would pass anything
    assert err.max() > 1e-3


def test_full_hessian_one_step(cbpp_fit, cbpp_both):
    """The classical one-step: first-order error, Cook's distances shrunk towards zero
    (below the deleted-data Hessian's for each of the 15 herds, measured 0.73 to 0.92 of
    them)."""
    classic = influence(cbpp_fit, "herd", hessian="full")
    one, exact = classic.deltas(), cbpp_both.deltas("exact")
    r = np.corrcoef(one.to_numpy().ravel(), exact.to_numpy().ravel())[0, 1]
    assert r > CORRELATION
    relative = (one - exact).abs().max(axis=1) / exact.abs().max(axis=1)
    assert relative.max() < FULL_RELATIVE
    assert np.all(classic.cooks_distance < cbpp_both.cooks_distance)
    assert classic.flagged == ["11"]  # herd 1 (exact D 0.342) falls below 4/15 = 0.267


def test_level_contributions_equal_deleted_data(cbpp_fit, cbpp):
    """For one grouping factor the deviance is a sum over herds: H_{-j} = H - H_j from the
    herd's rows equals the Hessian of the deviance without the herd (forward differences
    of exact gradients with the same steps: agreement to 1e-5 relative)."""
    model = cbpp_fit.model
    crit = criterion(cbpp_fit, model, "herd")
    index, lev = level_index(model.design, "herd")
    whole = dataclasses.replace(crit, decomposes=False)
    for hessian in ("deleted", "full"):
        by_level = one_step(crit, index, len(lev), hessian=hessian)
        deleted = one_step(whole, index, len(lev), hessian=hessian)
        assert by_level.path == "level contributions" and deleted.path == "deleted data"
        np.testing.assert_allclose(by_level.steps, deleted.steps, rtol=1e-4, atol=1e-6)


def test_cooks_distance_and_flags(cbpp_both, cbpp_fit):
    fixed = list(cbpp_fit.fixed_effects.index)
    V = cbpp_fit.vcov.block(fixed)
    d = cbpp_both.deltas("one_step")[fixed].to_numpy()
    expected = np.einsum("ij,jk,ik->i", d, np.linalg.inv(V), d) / len(fixed)
    np.testing.assert_allclose(cbpp_both.cooks_distance.to_numpy(), expected, rtol=1e-12)
    assert cbpp_both.threshold == pytest.approx(4 / 15)
    assert cbpp_both.flagged == ["1", "11"]  # also flagged by the exact refits
    exact = cbpp_both.cooks_distance_exact
    assert sorted(exact.index[exact > cbpp_both.threshold]) == ["1", "11"]
    assert set(cbpp_both.table.columns) >= {"level", "parameter", "one_step", "exact"}
    assert len(cbpp_both.table) == 15 * 5


def test_both_refits_the_flagged_levels(cbpp_fit):
    res = influence(cbpp_fit, "herd", method="both", levels=["3"], max_workers=1)
    assert sorted(res.levels.index[res.levels["refitted"]]) == ["1", "11", "3"]
    assert res.table.loc[res.table["level"] == "5", "exact"].isna().all()
    assert isinstance(res, Influence) and "flagged: 1, 11" in repr(res)
    ax = res.plot()
    assert ax.get_ylabel() == "Cook's distance"
    assert any(np.allclose(line.get_ydata(), 4 / 15) for line in ax.get_lines())


# ------------------------------------------------------------------------------------------
# Gaussian linear mixed model


def test_lmm_known_variance_one_step_is_gls(lmm_model):
    """With theta and sigma held, the fixed effects without a level are the generalized
    least-squares estimate on the remaining rows, V = sigma^2 (I + sd^2/sigma^2 Z Z'):
    one Newton step on a quadratic, exact to rounding."""
    fit = lmm_model.fit("lmm")
    res = influence(fit, "g", hold_variance=True)
    d = lmm_model.design
    sd = np.sqrt(fit.variance_components["g"])
    sigma = fit.dispersion["sigma"]
    Z = d.Z.toarray()
    beta = fit.fixed_effects.to_numpy()
    index, levels = level_index(d, "g")
    for j, level in enumerate(levels):
        keep = index != j
        V = sigma**2 * np.eye(keep.sum()) + sd**2 * Z[keep] @ Z[keep].T
        X, y = d.X[keep], d.y[keep]
        Vi = np.linalg.inv(V)
        gls = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
        got = res.deltas().loc[level, list(fit.fixed_effects.index)].to_numpy()
        np.testing.assert_allclose(got, gls - beta, atol=1e-9)
        assert res.deltas().loc[level, ["sd(g)", "sigma"]].abs().max() == 0.0


def test_lmm_one_step_against_refits(lmm_model):
    fit = lmm_model.fit("lmm")
    res = influence(fit, "g", method="both", levels="all", max_workers=1)
    one, exact = res.deltas("one_step"), res.deltas("exact")
    assert list(one.columns) == ["Intercept", "x", "sd(g)", "sigma"]
    # without level s04 the variance of g is estimated as zero (a singular refit): the
    # Newton step from the interior moves sd(g) by -0.50 of the -0.89 to the bound, the
    # largest one-step change of any level; the other levels are interior
    singular = res.levels.index[res.levels["singular"].to_numpy(bool)].tolist()
    assert singular == ["s04"]
    assert (
        one["sd(g)"].idxmin() == "s04" and exact.loc["s04", "sd(g)"] == -exact["sd(g)"].abs().max()
    )
    one, exact = one.drop(index=singular), exact.drop(index=singular)
    r = np.corrcoef(one.to_numpy().ravel(), exact.to_numpy().ravel())[0, 1]
    assert r > CORRELATION
    err = (one - exact).abs().max(axis=1)
    assert np.all(err <= QUADRATIC * exact.abs().max(axis=1) ** 2)


# ------------------------------------------------------------------------------------------
# reproducibility and errors


def test_reproducible_and_resumable(cbpp_fit, tmp_path):
    a = influence(cbpp_fit, "herd", method="exact", levels=["1", "2"], store=tmp_path / "s",
                  max_workers=1, random_seed=5)  # fmt: skip
    b = influence(cbpp_fit, "herd", method="exact", levels=["1", "2"], store=tmp_path / "s",
                  max_workers=1, random_seed=5)  # fmt: skip
    assert b.study.table["resumed"].all()
    pd.testing.assert_frame_equal(a.table, b.table)
    c = influence(cbpp_fit, "herd")
    d = influence(cbpp_fit, "herd")
    pd.testing.assert_frame_equal(c.table, d.table)  # bitwise


def test_refusals(cbpp_fit, lmm_model):
    with pytest.raises(OptionError, match="grouping factors"):
        influence(cbpp_fit, "farm")
    with pytest.raises(OptionError, match="method must be one of"):
        influence(cbpp_fit, "herd", method="onestep")
    with pytest.raises(OptionError, match="nothing is refitted"):
        influence(cbpp_fit, "herd", levels=["1"])
    with pytest.raises(OptionError, match="store must be"):
        influence(cbpp_fit, "herd", method="exact", store=5)
    with pytest.raises(OptionError, match=r"levels \['99'\]"):
        influence(cbpp_fit, "herd", method="exact", levels=["99"])
    bayes = dataclasses.replace(cbpp_fit, method="nuts", info={**cbpp_fit.info, "kind": "bayesian"})
    with pytest.raises(MethodError, match="Bayesian"):
        influence(bayes, "herd")
    two = GLMM("y ~ x + (1|two)", lmm_model.data, family="gaussian").fit("lmm")
    with pytest.raises(OptionError, match="at least 3"):
        influence(two, "two")


def test_pql_one_step_against_refits(cbpp):
    """PQL: one Newton step of the working linear mixed model without the herd (theta;
    beta and the residual variance profiled), against refits by PQL: measured correlation
    0.999, largest error 0.08 of a herd's change."""
    fit = GLMM(CBPP, cbpp).fit("pql")
    res = influence(fit, "herd", method="both", levels="all", max_workers=1)
    assert res.details["path"] == "deleted data"
    one, exact = res.deltas("one_step"), res.deltas("exact")
    r = np.corrcoef(one.to_numpy().ravel(), exact.to_numpy().ravel())[0, 1]
    assert r > CORRELATION
    err = (one - exact).abs().max(axis=1)
    assert np.all(err <= QUADRATIC * exact.abs().max(axis=1) ** 2)
    assert res.flagged == ["1", "11"]


def test_level_carrying_a_fixed_effect(lmm_model):
    """A treatment seen in one level only: without that level its effect is not identified,
    so that level gets no one-step and no refit (with the reason); the others do."""
    df = lmm_model.data.assign(arm=np.where(lmm_model.data["g"] == "s03", "b", "a"))
    df.loc[df["g"].isin(["s03", "s05"]) & (df.index % 2 == 0), "arm"] = "c"
    fit = GLMM("y ~ x + arm + (1|g)", df, family="gaussian").fit("lmm")
    res = influence(fit, "g", method="both", levels=["s03", "s04"], max_workers=1)
    assert "arm[b] is zero on the other rows" in res.levels.loc["s03", "note"]
    assert res.deltas().loc["s03"].isna().all() and res.deltas().loc["s04"].notna().all()
    assert res.levels.loc["s03", "error"].startswith("the fixed effects are not identified")
    assert np.isfinite(res.deltas("exact").loc["s04"]).all()
    assert not res.levels.loc["s03", "refitted"]


def test_nested_factors_and_a_variance_at_zero():
    """(1|a/b) with var(a) estimated as zero: deleting a level of the outer factor splits
    the deviance by level; of the inner one, it does not. The one-step holds sd(a) at zero
    and notes the levels without which the deleted-data curvature at zero is negative: the
    refits of exactly those leave zero."""
    rng = np.random.default_rng(5)
    a = np.repeat(np.arange(8), 24)
    b = np.repeat(np.arange(32), 6)
    eta = -0.2 + 0.6 * rng.normal(size=8)[a] + 0.4 * rng.normal(size=32)[b]
    df = pd.DataFrame(
        {"y": rng.poisson(np.exp(eta)), "a": [f"a{i}" for i in a], "b": [f"b{i % 4}" for i in b]}
    )
    with pytest.warns(SingularFitWarning):
        fit = GLMM("y ~ 1 + (1|a/b)", df, family="poisson").fit("laplace")
    assert fit.variance_components["a"] == 0.0
    assert influence(fit, "a").details["path"] == "level contributions"
    res = influence(fit, "a:b", method="exact", levels=["a1:b1", "a4:b2", "a0:b0"], max_workers=1)
    one = influence(fit, "a:b")
    assert one.details["path"] == "deleted data"
    noted = one.levels.index[one.levels["note"].str.contains("may leave it")].tolist()
    assert noted == ["a1:b1", "a4:b2"]
    assert (one.deltas()["sd(a)"] == 0).all()
    leaves = res.deltas("exact")["sd(a)"].dropna()
    assert (leaves[noted] > 0.1).all() and leaves["a0:b0"] < 1e-6
