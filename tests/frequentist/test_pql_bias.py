"""Bias-corrected PQL (``bias_correction="lin-breslow"``) and Kuk's correction (``method="kuk"``).

The correction matrices of :func:`lin_breslow_correction` are checked against the same
equations computed with dense ``n x n`` matrices, and against two properties that Breslow &
Lin (1995) state for them (matched binary pairs at ``p = 1/2``: PQL estimates half the
variance as ``theta -> 0``; the factor tends to one as the binomial denominators grow). On
salamander the corrected estimates must lie between PQL's and the Laplace fit's. Kuk's
iteration is checked on one seeded data set (it must move PQL towards the truth and satisfy
its defining equation ``E_theta T = T(y)`` within Monte Carlo error), for the same answer
with one or two workers, and for its refusals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, MethodError, OptionError, simulate
from bayesglmm.frequentist.pql import lin_breslow_correction


def _dense_correction(design, beta, variances):
    """The module docstring's equations with dense n x n matrices (P, B_j, V)."""
    X = design.X
    eta = X @ beta + design.offset
    if design.family.name == "binomial":
        p = 1 / (1 + np.exp(-eta))
        n = design.trials
        v, v1, v2 = (
            n * p * (1 - p),
            n * p * (1 - p) * (1 - 2 * p),
            n * p * (1 - p) * (1 - 6 * p * (1 - p)),
        )
    else:
        v = v1 = v2 = np.exp(eta)
    W = np.diag(v)
    P = W - W @ X @ np.linalg.inv(X.T @ W @ X) @ X.T @ W
    Bs = []
    for t in design.random:
        Z = np.zeros((design.n, t.n_levels))
        Z[np.arange(design.n), t.index] = t.X[:, 0]
        Bs.append(Z @ Z.T)
    c = len(Bs)
    info = np.array([[0.5 * np.trace(P @ Bs[j] @ P @ Bs[k]) for k in range(c)] for j in range(c)])
    K = np.array(
        [
            [0.25 * np.sum(np.diag(P @ Bs[j] @ P) * v2 * np.diag(Bs[k]) / v**2) for k in range(c)]
            for j in range(c)
        ]
    )
    C = np.eye(c) + np.linalg.solve(info, K)
    theta = np.maximum(np.linalg.solve(C, variances), 0)
    V = np.diag(1 / v) + sum(th * B for th, B in zip(theta, Bs, strict=True))
    Vi = np.linalg.inv(V)
    s = 0.5 * v1 * sum(th * np.diag(B) for th, B in zip(theta, Bs, strict=True))
    shift = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ (s / v))
    return C, theta, beta - shift


@pytest.fixture(scope="module")
def crossed_binary():
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(
        {"x": rng.normal(size=30), "a": np.tile(list("abcde"), 6), "b": np.repeat(list("uvw"), 10)}
    )
    data = simulate(
        "y ~ x + (1|a) + (1|b)", frame, {"Intercept": 0.4, "x": 0.8}, {"a": 0.6, "b": 0.3},
        random_seed=11,
    )  # fmt: skip
    return GLMM("y ~ x + (1|a) + (1|b)", data)


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_correction_equals_the_dense_computation(crossed_binary, family):
    if family == "binomial":
        model = crossed_binary
    else:
        frame = crossed_binary.data.assign(x2=lambda d: np.abs(d["x"]))
        data = simulate(
            "y ~ x + (0 + x2|a) + (1|b)", frame, {"Intercept": 0.5, "x": 0.3},
            {"a|x2": 0.4, "b": 0.2}, family="poisson", random_seed=5,
        )  # fmt: skip
        model = GLMM("y ~ x + (0 + x2|a) + (1|b)", data, family="poisson")
    d = model.design
    beta, var = np.array([0.3, 0.7]), np.array([0.5, 0.25])
    out = lin_breslow_correction(d, beta, var)
    C, theta, b = _dense_correction(d, beta, var)
    np.testing.assert_allclose(out["C"], C, rtol=1e-10)
    np.testing.assert_allclose(out["variances"], theta, rtol=1e-10)
    np.testing.assert_allclose(out["beta"], b, rtol=1e-10, atol=1e-12)


def _pairs(n_pairs, trials=None):
    frame = pd.DataFrame({"pair": np.repeat(np.arange(n_pairs), 2).astype(str)})
    if trials is None:
        data = frame.assign(y=np.tile([0, 1], n_pairs))
        return GLMM("y ~ 1 + (1|pair)", data).design
    data = frame.assign(s=np.tile([trials // 2, trials - trials // 2], n_pairs), n=trials)
    data["f"] = data["n"] - data["s"]
    return GLMM("cbind(s, f) ~ 1 + (1|pair)", data).design


def test_matched_pairs_factor_is_one_half_at_p_one_half():
    """Binary matched pairs, p = 1/2: E(theta_PQL) = theta / 2 for small theta (C = 1/2 up
    to the O(1/pairs) of the intercept's projection)."""
    out = lin_breslow_correction(_pairs(400), np.array([0.0]), np.array([0.1]))
    assert out["C"][0, 0] == pytest.approx(0.5, abs=2e-3)
    assert out["variances"][0] == pytest.approx(0.2, rel=5e-3)


@pytest.mark.parametrize("trials", [2, 10, 50])
def test_factor_tends_to_one_with_the_binomial_denominators(trials):
    """C = 1 - 1/(2n) for pairs of binomial(n, 1/2) counts (one half for n = 1)."""
    out = lin_breslow_correction(_pairs(400, trials), np.array([0.0]), np.array([0.1]))
    assert out["C"][0, 0] == pytest.approx(1 - 1 / (2 * trials), abs=2e-3)


@pytest.fixture(scope="module")
def salamander_fits(salamander):
    m = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander, family="binomial")
    return m.fit("pql"), m.fit("pql", bias_correction="lin-breslow"), m.fit("laplace")


def test_salamander_moves_towards_maximum_likelihood(salamander_fits):
    """PQL var(Female) 0.718, var(Male) 0.634; Laplace (ML) 1.174, 1.041; corrected values
    lie between, and every fixed effect is closer to ML than PQL's."""
    pql, corrected, ml = salamander_fits
    for name in ("var(Female)", "var(Male)"):
        lo, mid, hi = (f.table.loc[name, "estimate"] for f in salamander_fits)
        assert lo < mid < hi, name
    assert corrected.table.loc["var(Female)", "estimate"] == pytest.approx(0.8766, abs=1e-3)
    assert corrected.table.loc["var(Male)", "estimate"] == pytest.approx(0.7926, abs=1e-3)
    gap_pql = np.abs(pql.fixed_effects - ml.fixed_effects)
    gap_corr = np.abs(corrected.fixed_effects - ml.fixed_effects)
    assert (gap_corr < gap_pql).all()
    # the standard errors stay PQL's; the fit says it is corrected
    np.testing.assert_array_equal(
        corrected.table.loc[pql.fixed_effects.index, "std_error"],
        pql.table.loc[pql.fixed_effects.index, "std_error"],
    )
    assert corrected.info["options"]["bias_correction"] == "lin-breslow"
    assert "bias-corrected" in corrected.report()
    rec = corrected.info["details"]["bias_correction"]
    assert rec["uncorrected"]["var(Female)"] == pytest.approx(0.7183, abs=1e-3)


@pytest.mark.parametrize(
    ("formula", "family", "options", "needle"),
    [
        ("y ~ x + (1|a)", "binomial", {"bias_correction": "lb"}, "bias_correction"),
        (
            "y ~ x + (1|a)",
            "binomial",
            {"bias_correction": "lin-breslow", "dispersion": "estimated"},
            "dispersion='fixed'",
        ),  # fmt: skip
        ("y ~ x + (x|a)", "binomial", {"bias_correction": "lin-breslow"}, "scalar"),
    ],
)
def test_bad_correction_options(crossed_binary, formula, family, options, needle):
    m = GLMM(formula, crossed_binary.data, family=family)
    with pytest.raises((OptionError, MethodError), match=needle):
        m.fit("pql", **options)


def test_correction_refuses_a_non_canonical_link(crossed_binary):
    m = GLMM("y ~ x + (1|a)", crossed_binary.data, family="binomial", link="probit")
    with pytest.raises(MethodError, match="canonical"):
        m.fit("pql", bias_correction="lin-breslow")


# ------------------------------------------------------------------------------------------
# Kuk


@pytest.fixture(scope="module")
def pairs_model():
    frame = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(40)], 3)})
    data = simulate("y ~ 1 + (1|g)", frame, {"Intercept": 0.0}, {"g": 2.0}, random_seed=4)
    return GLMM("y ~ 1 + (1|g)", data)


def test_kuk_moves_pql_towards_the_truth(pairs_model):
    """One seeded data set (40 clusters of 3, var 2): PQL's variance is shrunk; Kuk's
    correction of it is larger and closer to the truth, and at its estimate the mean of
    PQL over fresh simulations is PQL's value on the data (its defining equation), within
    three Monte Carlo errors."""
    pql = pairs_model.fit("pql").table.loc["var(g)", "estimate"]
    kuk = pairs_model.fit("kuk", n_sim=10, max_iter=3, random_seed=2, max_workers=1)
    est = kuk.table.loc["var(g)", "estimate"]
    assert pql < est
    assert abs(est - 2.0) < abs(pql - 2.0)
    assert kuk.table["mcse"].notna().all()
    assert kuk.info["details"]["base"] == "pql"
    from bayesglmm.frequentist.kuk import parameter_names, simulate_and_fit, truth_of

    names = parameter_names(pairs_model.design)
    args = {"formula": pairs_model.formula, "data": pairs_model.data, "family": "binomial",
            "link": "logit"}  # fmt: skip
    truth = truth_of(pairs_model.design, kuk.table.loc[names, "estimate"].to_numpy())
    draws = np.array(
        [simulate_and_fit(GLMM, args, truth, "pql", names, 1000 + i)[1] for i in range(10)]
    )
    assert abs(draws.mean() - pql) < 3 * draws.std(ddof=1) / np.sqrt(10) + 0.05


def test_kuk_is_the_same_with_one_or_two_workers(pairs_model, tmp_path):
    """Bit for bit: in this process, on a two-process executor, and resumed from a store."""
    from concurrent.futures import ProcessPoolExecutor

    opts = {"base": "laplace", "n_sim": 4, "max_iter": 2, "random_seed": 9}
    one = pairs_model.fit("kuk", max_workers=1, store=str(tmp_path / "s"), **opts)
    with ProcessPoolExecutor(max_workers=2) as pool:
        two = pairs_model.fit("kuk", client=pool, **opts)
    np.testing.assert_array_equal(one.table["estimate"], two.table["estimate"])
    np.testing.assert_array_equal(one.table["mcse"], two.table["mcse"])
    again = pairs_model.fit("kuk", max_workers=1, store=str(tmp_path / "s"), **opts)
    np.testing.assert_array_equal(again.table["estimate"], one.table["estimate"])
    assert (tmp_path / "s" / "iteration-1").is_dir()
    other = pairs_model.fit("kuk", max_workers=1, **{**opts, "random_seed": 10})
    assert not np.array_equal(other.table["estimate"], one.table["estimate"])


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"base": "nuts"}, "base"),
        ({"n_sim": 1}, "n_sim"),
        ({"tol": 0}, "tol"),
        ({"store": 5, "n_sim": 4}, "store"),
        ({"client": "local", "n_sim": 4}, "client"),
        ({"max_workers": 0}, "max_workers"),
        ({"bias_correction": "lin-breslow"}, "bias_correction"),
    ],
)
def test_kuk_bad_options(pairs_model, options, needle):
    with pytest.raises(OptionError, match=needle):
        pairs_model.fit("kuk", **options)


def test_kuk_refuses_a_gaussian_model(pairs_model):
    m = GLMM("y ~ 1 + (1|g)", pairs_model.data, family="gaussian")
    with pytest.raises(MethodError, match="kuk"):
        m.fit("kuk", n_sim=2)
