"""Jiang's estimating equations (method="ee", "ee2") and Gauss-Seidel joint maximization."""

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, MethodError, OptionError
from bayesglmm.frequentist.gee.engine import GEEData, glm_start
from bayesglmm.frequentist.moments.fit import moment_problem, solve_equations
from bayesglmm.frequentist.moments.gauss_seidel import gauss_seidel, newton_joint
from bayesglmm.frequentist.moments.statistics import monte_carlo_draws, quadrature_draws
from bayesglmm.frequentist.moments.variance import statistics_variance

#: a |z| beyond this fails: two-sided normal tail 6e-6 per comparison (false-failure rate)
Z_FAIL = 4.5
#: Gauss-Seidel and Newton both converge to 1e-10 in every coordinate; 1e-6 is the agreement
#: required of the two solvers
JOINT_TOL = 1e-6


def _simulate(seed, n_a=200, n_b=None, per=6, beta=(-0.5, 0.8), sd=(1.0, 0.7), nested=False):
    """Logistic data with one factor ``a`` (and a crossed or nested factor ``b``)."""
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(n_a), per)
    n = a.size
    x = rng.normal(size=n)
    eta = beta[0] + beta[1] * x + sd[0] * rng.normal(size=n_a)[a]
    df = pd.DataFrame({"x": x, "a": [f"a{i}" for i in a]})
    if n_b:
        b = np.tile(np.arange(per) // 2, n_a) if nested else rng.integers(0, n_b, n)
        levels = a * per + b if nested else b
        eta = eta + sd[1] * rng.normal(size=levels.max() + 1)[levels]
        df["b"] = [f"b{i}" for i in b]
    df["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return df


def test_jacobian_is_exact_under_common_random_numbers(salamander):
    prob = moment_problem(GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander), "ee")
    draws = monte_carlo_draws(prob.n_levels, 100, np.random.default_rng(0))
    theta = np.array([1.0, 0.3, -1.9, 1.0, 1.2, 1.1])
    _, U = prob.expectation(theta, draws)
    h = 1e-6
    J = np.column_stack(
        [
            (prob.expectation(theta + h * e, draws)[0] - prob.expectation(theta - h * e, draws)[0])
            / (2 * h)
            for e in np.eye(6)
        ]
    )
    # central differences of a smooth function: error ~ h^2 * u''' plus rounding ~1e-8
    np.testing.assert_allclose(U, J, atol=1e-6 * np.abs(U).max())


def test_expectation_equals_mean_of_simulated_statistics():
    """u(theta) by quadrature (one factor) and by common random numbers (two crossed
    factors) against the mean of the statistics of data simulated at theta."""
    for df, formula, kind in [
        (_simulate(1, n_a=60), "y ~ x + (1|a)", "quadrature"),
        (_simulate(2, n_a=40, n_b=30), "y ~ x + (1|a) + (1|b)", "simulation"),
    ]:
        prob = moment_problem(GLMM(formula, df), "ee")
        theta = np.r_[-0.5, 0.8, [1.0, 0.7][: prob.R]]
        if kind == "quadrature":
            draws = quadrature_draws(prob.n_levels, 40)
        else:
            draws = monte_carlo_draws(prob.n_levels, 20000, np.random.default_rng(3))
        A = prob.aggregate()
        u = A @ prob.expectation(theta, draws)[0]
        sims = prob.simulate_statistics(theta, 4000, np.random.default_rng(4)) @ A.T
        se = sims.std(axis=0) / np.sqrt(len(sims))
        if kind == "simulation":  # plus the Monte Carlo error of u itself (20000 draws)
            se = se * np.sqrt(1 + 4000 / 20000)
        z = (sims.mean(axis=0) - u) / se
        assert np.all(np.abs(z) < Z_FAIL), (kind, z)


@pytest.mark.parametrize("method", ["ee", "ee2"])
def test_recovers_one_factor_logistic(method):
    """300 groups of 6: estimates within Z_FAIL sandwich standard errors of the truth."""
    df = _simulate(7, n_a=300)
    fit = GLMM("y ~ x + (1|a)", df).fit(method=method, random_seed=1)
    assert fit.converged and fit.info["details"]["expectation"] == "quadrature"
    z = (fit.table["estimate"] - pd.Series([-0.5, 0.8, 1.0], fit.table.index)) / fit.table[
        "std_error"
    ]
    assert np.all(np.abs(z) < Z_FAIL), z


@pytest.mark.parametrize("nested", [False, True])
def test_crossed_and_nested(nested):
    df = _simulate(8, n_a=100 if nested else 150, n_b=40, per=6, nested=nested)
    formula = "y ~ x + (1|a/b)" if nested else "y ~ x + (1|a) + (1|b)"
    m = GLMM(formula, df)
    fit = m.fit(method="ee2", random_seed=2, n_sim=500)
    assert fit.converged
    truth = pd.Series([-0.5, 0.8, 1.0, 0.49], fit.table.index)
    z = (fit.table["estimate"] - truth) / fit.table["std_error"]
    assert np.all(np.abs(z) < Z_FAIL), z
    assert np.all(fit.table["std_error"] > 0)


def test_salamander_reproducible_and_between_laplace_and_nuts(salamander):
    """The same seed gives the same fit; the variances exceed Laplace's (1.174, 1.041 in
    the README: Laplace shrinks them) and the SEs are finite."""
    m = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander)
    one = m.fit(method="ee", random_seed=5)
    two = m.fit(method="ee", random_seed=5)
    np.testing.assert_array_equal(one.table["estimate"], two.table["estimate"])
    assert one.converged and one.kind == "quasi_likelihood" and one.loglik is None
    assert np.all(one.variance_components > [1.174, 1.041])
    assert np.all(np.isfinite(one.table["std_error"]))
    # another seed moves the first-step estimates by their Monte Carlo error only
    other = m.fit(method="ee", random_seed=6)
    diff = other.table["estimate"] - one.table["estimate"]
    assert np.all(np.abs(diff) < Z_FAIL * np.sqrt(2) * one.table["mcse"]), diff
    assert np.all(one.table["mcse"] < 0.1 * one.table["std_error"])


def test_errors():
    df = _simulate(9, n_a=30)
    with pytest.raises(MethodError, match="binomial and Poisson"):
        GLMM("x ~ 1 + (1|a)", df, family="gaussian").fit(method="ee")
    with pytest.raises(MethodError, match="random intercepts only"):
        GLMM("y ~ x + (x|a)", df).fit(method="ee")
    df2 = _simulate(9, n_a=30, n_b=10)
    with pytest.raises(MethodError, match="expectation='simulation'"):
        GLMM("y ~ x + (1|a) + (1|b)", df2).fit(method="ee", expectation="quadrature")
    with pytest.raises(OptionError, match="n_sim"):
        GLMM("y ~ x + (1|a)", df).fit(method="ee", n_sim=0)
    with pytest.raises(MethodError, match="weights must have 3"):
        GLMM("y ~ x + (1|a)", df).fit(method="ee", weights=[1, 1])


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_gauss_seidel_equals_newton(family):
    rng = np.random.default_rng(4)
    n, I, J = 500, 25, 18
    ui, vj = rng.integers(0, I, n), rng.integers(0, J, n)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    eta = -0.3 + 0.6 * x + rng.normal(size=I)[ui] + 0.7 * rng.normal(size=J)[vj]
    if family == "binomial":
        trials = rng.integers(1, 4, n).astype(float)
        y = rng.binomial(trials.astype(int), 1 / (1 + np.exp(-eta))).astype(float)
    else:
        trials = None
        y = rng.poisson(np.exp(eta)).astype(float)
    gs = gauss_seidel(y, trials, X, None, [ui, vj], [1.0, 0.7], family=family)
    beta, effects = newton_joint(y, trials, X, None, [ui, vj], [1.0, 0.7], family=family)
    assert gs.converged
    np.testing.assert_allclose(gs.beta, beta, atol=JOINT_TOL)
    for a, b in zip(gs.effects, effects, strict=True):
        np.testing.assert_allclose(a, b, atol=JOINT_TOL)


def _jz(seed, m=100, sizes=(2, 6)):
    """Jiang & Zhang's kind of design (benchmarks/bench_ee_simulation.py, ``jz``):
    logit p = 0.2 + a_i, sd(a) = 1, half the clusters of size ``sizes[0]``, half
    ``sizes[1]``."""
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(m), np.where(np.arange(m) < m // 2, *sizes))
    eta = 0.2 + rng.normal(size=m)[a]
    return pd.DataFrame({"a": a, "y": rng.binomial(1, 1 / (1 + np.exp(-eta)))})


def test_ee2_without_a_root_keeps_the_first_step():
    """50 clusters of 5 whose pair statistics are below what any sd >= 0 gives: neither
    step has a root; ee2 warns and returns the first-step estimate (sd at the boundary 0,
    flagged as not converged)."""
    rng = np.random.default_rng(54)  # benchmarks/bench_ee_simulation.py, one, m=50
    a = np.repeat(np.arange(50), 5)
    x = rng.normal(size=a.size)
    eta = -0.5 + 0.8 * x + rng.normal(size=50)[a]
    df = pd.DataFrame({"x": x, "a": a, "y": rng.binomial(1, 1 / (1 + np.exp(-eta)))})
    m = GLMM("y ~ x + (1|a)", df)
    with pytest.warns(UserWarning, match="no root"):
        first = m.fit(method="ee", random_seed=1)
    with pytest.warns(UserWarning, match="returning the first-step estimate"):
        second = m.fit(method="ee2", random_seed=1)
    np.testing.assert_allclose(second.table["estimate"], first.table["estimate"])
    assert second.info["details"]["steps"][1]["root_found"] is False
    # falling back is never silent: the result's messages say so
    assert any("returning the first-step estimate" in s for s in second.convergence["messages"])
    assert not second.converged and second.convergence["singular"]


def test_ee2_refines_a_first_step_at_the_boundary():
    """The first step has no root (sd at 0, where its SE is 0 and du/dsd = 0); the
    optimally weighted equations have one (B* evaluated with sd raised to 0.1). Before the
    fix B*'s sd row was rounding noise and the root was refused for lying 1e18 first-step
    SEs from 0 (3 of 100 J&Z replicates fell back so)."""
    m = GLMM("y ~ 1 + (1|a)", _jz(42))
    with pytest.warns(UserWarning, match="no root"):
        first = m.fit(method="ee", random_seed=1)
    second = m.fit(method="ee2", random_seed=1)
    assert first.variance_components.iloc[0] == 0.0
    assert second.converged and second.info["details"]["steps"][1]["root_found"] is True
    assert second.variance_components.iloc[0] > 0.1


def test_optimal_weights_gain_only_where_levels_differ():
    """Jiang & Zhang: with exchangeable levels (intercept only, equal cluster sizes) U and
    V treat every level alike, so U'V^{-1} spans the first step's sums and ee2 equals ee;
    with clusters of 2 and 6 rows it weighs them differently and moves. A V estimated from
    simulated data sets (5000) would carry noise into B* and move ee2 in the balanced case
    too (there its MSE was 13% worse than ee's over 60 replicates)."""
    for sizes, same in (((4, 4), True), ((2, 6), False)):
        m = GLMM("y ~ 1 + (1|a)", _jz(3, sizes=sizes))
        ee, ee2 = (m.fit(method=k, random_seed=1) for k in ("ee", "ee2"))
        assert ee.converged and ee2.converged
        assert ee2.info["details"]["steps"][1]["root_found"] is True
        diff = np.max(np.abs(ee2.table["estimate"] - ee.table["estimate"]))
        # both solved to relative residual < ROOT_TOL = 1e-6: equal roots agree to ~1e-6
        assert (diff < 1e-5) if same else (diff > 1e-3), (sizes, diff)


def test_statistics_variance_is_exact_given_the_random_effects():
    """At sd = 0 the statistics' law is a product of binomials: enumerate all 3^8 outcomes
    of a 2 x 2 crossed table with 2 rows of 2 trials per cell and compare every entry of
    V, cross-factor cell terms included (simulation cannot resolve those), to rounding."""
    rng = np.random.default_rng(23)
    df = pd.DataFrame(
        {"a": np.repeat([0, 1], 4), "b": np.tile(np.repeat([0, 1], 2), 2)}
        | {"x": rng.normal(size=8), "y": 1, "f": 1}
    )
    prob = moment_problem(GLMM("cbind(y, f) ~ x + (1|a) + (1|b)", df), "ee")
    theta = np.array([-0.4, 0.9, 0.0, 0.0])
    V = statistics_variance(prob, theta, monte_carlo_draws(prob.n_levels, 3, rng))
    p = 1 / (1 + np.exp(-(prob.X @ theta[:2])))
    ys = np.array(np.meshgrid(*[[0, 1, 2]] * 8, indexing="ij")).reshape(8, -1).T
    prob_y = np.prod(np.array([(1 - p) ** 2, 2 * p * (1 - p), p**2]).T[np.arange(8), ys], 1)
    stats = prob.statistics(ys.astype(float))
    mean = prob_y @ stats
    exact = (stats - mean).T @ ((stats - mean) * prob_y[:, None])
    np.testing.assert_allclose(V, exact, rtol=1e-9, atol=1e-9 * np.abs(exact).max())


def test_statistics_variance_equals_covariance_of_simulated_statistics():
    """V = E Var(S | b) + Var E(S | b) from conditional cumulants against the covariance
    of simulated statistics: one factor (binomial counts, unbalanced, exact by quadrature)
    and two crossed factors with repeated cells (levels sharing rows; Monte Carlo over b
    with 5 times as many draws as simulated data sets, so its error adds 20% of the
    simulation's variance)."""
    rng = np.random.default_rng(20)
    a = np.repeat(np.arange(12), rng.integers(1, 5, 12))
    df = pd.DataFrame({"x": rng.normal(size=a.size), "a": a})
    df["y"] = rng.binomial(3, 0.4, a.size)
    df["f"] = 3 - df["y"]
    a, b = (g.ravel() for g in np.meshgrid(np.arange(5), np.arange(4), indexing="ij"))
    a, b = np.r_[a, a[:7]], np.r_[b, b[:7]]
    df2 = pd.DataFrame({"x": rng.normal(size=a.size), "a": a, "b": b})
    df2["y"] = rng.binomial(1, 0.5, a.size)
    cases = [
        ("cbind(y, f) ~ x + (1|a)", df, [-0.3, 0.5, 0.9], 1.0),
        ("y ~ x + (1|a) + (1|b)", df2, [-0.3, 0.5, 0.9, 0.6], np.sqrt(1.2)),
    ]
    n = 10000
    for formula, data, theta, inflate in cases:
        prob = moment_problem(GLMM(formula, data), "ee")
        if prob.R == 1:
            draws = quadrature_draws(prob.n_levels, 40)
        else:
            draws = monte_carlo_draws(prob.n_levels, 5 * n, np.random.default_rng(21))
        V = statistics_variance(prob, np.array(theta), draws)
        sims = prob.simulate_statistics(np.array(theta), n, np.random.default_rng(22))
        d = sims - sims.mean(axis=0)
        prod = d[:, :, None] * d[:, None, :]
        se = prod.std(axis=0) / np.sqrt(n) * inflate
        z = (prod.mean(axis=0) - V) / np.where(se > 0, se, 1.0)
        # Z_FAIL per entry, <= 200 distinct entries a case: false-failure rate ~1e-3
        assert np.all(np.abs(z) < Z_FAIL), (formula, np.abs(z).max())


# --- binomial counts (cbind(successes, failures)) and Poisson counts --------------------


def _counts(seed, family, n_groups=200, beta=(-0.5, 0.8), sd=0.5):
    """One row per group (the seeds layout): binomial with 10..30 trials a row, or Poisson
    with mean exp(1 + eta). The pair statistic must count pairs inside the row."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n_groups)
    eta = beta[0] + beta[1] * x + sd * rng.normal(size=n_groups)
    df = pd.DataFrame({"x": x, "g": np.arange(n_groups)})
    if family == "binomial":
        n = rng.integers(10, 31, n_groups)
        df["y"] = rng.binomial(n, 1 / (1 + np.exp(-eta)))
        df["f"] = n - df["y"]
        return df, "cbind(y, f) ~ x + (1|g)", np.array([*beta, sd**2])
    df["y"] = rng.poisson(np.exp(1.0 + eta))
    return df, "y ~ x + (1|g)", np.array([beta[0] + 1.0, beta[1], sd**2])


def test_pair_statistic_counts_pairs_of_distinct_trials():
    """Expanded into Bernoulli trials, the pair statistic of a level is Jiang's
    sum_{j != k} y_j y_k over the trials, pairs inside a row included ((sum y)^2 - sum y^2
    over rows would be 0 for a level with one row)."""
    df = pd.DataFrame(
        {"g": [0, 0, 1, 2, 2, 2], "x": [0.1, -0.3, 0.5, 1.0, 0.2, -1.0]}
        | {"y": [2, 3, 4, 0, 1, 5], "f": [1, 0, 3, 2, 2, 0]}
    )
    prob = moment_problem(GLMM("cbind(y, f) ~ x + (1|g)", df), "ee")
    S = prob.statistics(prob.y)
    ones = [
        np.repeat(df.g, df.y + df.f).to_numpy(),
        np.concatenate([np.r_[np.ones(a), np.zeros(b)] for a, b in zip(df.y, df.f, strict=True)]),
    ]
    pairs = [
        sum(ones[1][ones[0] == lvl]) ** 2 - sum(ones[1][ones[0] == lvl] ** 2) for lvl in range(3)
    ]
    np.testing.assert_array_equal(S[prob.p :], pairs)
    np.testing.assert_array_equal(S[: prob.p], prob.X.T @ df.y.to_numpy())


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_count_expectation_and_jacobian(family):
    """u(theta) by quadrature against the mean of simulated statistics (one count row a
    level), and the Jacobian (with its within-row term) against central differences."""
    df, formula, _ = _counts(11, family, n_groups=60)
    prob = moment_problem(GLMM(formula, df, family=family), "ee")
    theta = np.array([-0.3, 0.8, 0.6])
    draws = quadrature_draws(prob.n_levels, 40)
    A = prob.aggregate()
    u, U = prob.expectation(theta, draws)
    sims = prob.simulate_statistics(theta, 4000, np.random.default_rng(12)) @ A.T
    z = (sims.mean(axis=0) - A @ u) / (sims.std(axis=0) / np.sqrt(len(sims)))
    assert np.all(np.abs(z) < Z_FAIL), z
    h = 1e-6
    J = np.column_stack(
        [
            (prob.expectation(theta + h * e, draws)[0] - prob.expectation(theta - h * e, draws)[0])
            / (2 * h)
            for e in np.eye(3)
        ]
    )
    # central differences: error ~ h^2 u''' plus rounding, relative to the largest entry
    np.testing.assert_allclose(U, J, atol=1e-6 * np.abs(U).max())


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_recovers_truth_on_count_data(family):
    """Four seeded replicates of 200 groups with one count row each (truth known): each
    estimate within Z_FAIL sandwich SEs of the truth, the replicates' mean z within Z_FAIL
    (mean of 4 independent z's times 2 is N(0, 1)), and the variance informative: its
    sandwich SE was 0.08-0.12 (binomial) and 0.08-0.19 (Poisson) over 8 seeds, so 0.5
    (twice the true variance) flags a pair statistic over rows, which is 0 for these data."""
    zs = []
    for seed in range(100, 104):
        df, formula, truth = _counts(seed, family)
        fit = GLMM(formula, df, family=family).fit(method="ee", random_seed=seed)
        assert fit.converged, fit.convergence["messages"]
        z = (fit.table["estimate"].to_numpy() - truth) / fit.table["std_error"].to_numpy()
        assert np.all(np.abs(z) < Z_FAIL), (seed, z)
        assert fit.table["std_error"].iloc[-1] < 0.5
        zs.append(z)
    assert np.all(np.abs(np.mean(zs, axis=0) * 2) < Z_FAIL), zs


#: R references (/work/shared/data/README.md): cbpp ``glmer(cbind(incidence, size -
#: incidence) ~ period + (1 | herd), cbpp, binomial)`` (Laplace, lme4's own test values);
#: seeds ``glmer(cbind(germ, n - germ) ~ x1 * x2 + (1 | plate), binomial, nAGQ = 25)``;
#: mouse_litters ``glmer(cbind(dead, survived) ~ 1 + (1 | litter), binomial, nAGQ = 25)``
REFERENCES = {
    "cbpp": (
        "cbind(incidence, size - incidence) ~ period + (1|herd)",
        [-1.39854982537216, -0.992335519118859, -1.12867532780426, -1.58030423764517, 0.41245527],
    ),
    "seeds": (
        "cbind(germ, n - germ) ~ x1 * x2 + (1|plate)",
        [-0.5484, 0.0969, 1.3370, -0.8104, 0.0558],
    ),
    "mouse_litters": ("cbind(dead, survived) ~ 1 + (1|litter)", [-2.646346, 0.8578296]),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_count_data_close_to_maximum_likelihood(name, request):
    """ee and ee2 on cbind(successes, failures) data within 3 of their sandwich SEs of
    maximum likelihood, every parameter. Both estimate the same parameter and ML is
    efficient, so Var(ee - ML) = Var(ee) - Var(ML) <= Var(ee): a false failure has
    probability below 0.27% a parameter under the normal approximation. The failures this
    guards against: cbpp's period[4] running off to -17 (no root), and seeds' variance
    staying at its start, 1.0, with ee2 identical to ee; ee2 must find its own root (or say
    it fell back)."""
    df = request.getfixturevalue(name).copy()
    if name == "seeds":
        df["x1"] = (df.gen == "O73").astype(int)
        df["x2"] = (df.extract == "cucumber").astype(int)
    formula, ref = REFERENCES[name]
    m = GLMM(formula, df)
    fits = {meth: m.fit(method=meth, random_seed=1) for meth in ("ee", "ee2")}
    for meth, fit in fits.items():
        assert fit.converged, (meth, fit.convergence["messages"])
        est, se = fit.table["estimate"].to_numpy(), fit.table["std_error"].to_numpy()
        assert np.all(np.abs(est - ref) < 3 * se), (meth, est, se)
        assert est[-1] > 1e-4  # SD_ZERO**2: not at the boundary
    ee, ee2 = (fits[k].table["estimate"].to_numpy() for k in ("ee", "ee2"))
    assert fits["ee2"].info["details"]["steps"][1]["root_found"] is True
    assert not any("first-step" in s for s in fits["ee2"].convergence["messages"])
    assert np.max(np.abs(ee2 - ee)) > 1e-4, "ee2 silently returned the first step"


def test_refuses_variance_without_pairs():
    """One Bernoulli trial per level: every pair statistic is 0 and the variance is not
    identified by the moment equations."""
    df = _simulate(13, n_a=40)
    df["obs"] = np.arange(len(df))
    with pytest.raises(MethodError, match=r"var\(obs\).*no level of obs has two"):
        GLMM("y ~ x + (1|obs)", df).fit(method="ee")


def test_no_root_keeps_fixed_effects_near_the_glm(cbpp):
    """cbpp with its pair statistics halved (less within-herd agreement than any sd >= 0
    gives): no root, sd at 0, where the X'y equations are the GLM's score equations. The
    least-squares compromise weighs equations by their relative residuals, so the fixed
    effects stay within 1 (about 3 GLM standard errors of a period effect) of the GLM fit;
    unscaled, the O(T^2) pair equation dominated and period[4] went to -19."""
    m = GLMM("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp)
    prob = moment_problem(m, "ee")
    S = prob.statistics(prob.y)
    S[prob.p :] *= 0.5
    glm = glm_start(GEEData(prob.y, prob.trials, prob.X, prob.offset, prob.family))
    draws = quadrature_draws(prob.n_levels, 30)
    sol = solve_equations(prob, prob.aggregate(), S, draws, np.r_[glm, 1.0])
    assert sol.x[-1] == 0.0
    assert np.all(np.abs(sol.x[: prob.p] - glm) < 1.0), (sol.x, glm)
