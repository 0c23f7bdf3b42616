"""MCEM and MCNR with the Gibbs E-step (``e_step="gibbs"``: Polya-Gamma for the logit link,
Albert-Chib for the probit link; bayesglmm.frequentist.montecarlo.estep.GibbsSampler).

Reference values:

- the exact conditional ``p(b_l | y; psi)`` of each level of a one-factor model, by 1-D
  quadrature (a trapezoid rule on 4001 points over +-10 prior sds) in the test itself;
- cbpp, ``cbind(incidence, size - incidence) ~ period + (1|herd)``: R 4.2.2, lme4 1.1-31,
  ``glmer(..., family = binomial, nAGQ = 25)``: -1.3992, -0.9914, -1.1278, -1.5795; herd
  variance 0.4193 (the values of tests/frequentist/test_mcem.py);
- a simulated probit one-factor design: the package's adaptive quadrature (``method="agq"``,
  25 nodes), itself checked against glmer's in tests of that method.

Tolerances are in Monte Carlo standard errors: ``Z_TOL = 4.5`` (two-sided false-failure rate
7e-6 per comparison, 12 comparisons in the quadrature test) for the conditional moments,
whose errors are estimated over chain sums (the draws within a chain are dependent), and 4
reported mcse plus 2e-3 for the fits (as for the other E-steps).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, log_ndtr, ndtr

import bayesglmm as bg
from bayesglmm.errors import MethodError, OptionError
from bayesglmm.frequentist.montecarlo import history
from bayesglmm.frequentist.montecarlo.complete import CompleteData, Sample
from bayesglmm.frequentist.montecarlo.estep import GibbsSampler

CBPP_FORMULA = "cbind(incidence, size - incidence) ~ period + (1|herd)"
#: cbpp: glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial,
#: nAGQ = 25) in R 4.2.2, lme4 1.1-31
AGQ25_FIXED = np.array([-1.3992, -0.9914, -1.1278, -1.5795])
AGQ25_VAR = 0.4193
#: conditional moments within this many Monte Carlo standard errors
Z_TOL = 4.5
#: fits: within 4 reported mcse plus 2e-3 (rounding of the reference, approximate mcse)
N_MCSE, ABS_EXTRA = 4.0, 2e-3


def _one_factor(link: str, trials: int, seed: int, levels: int = 3, per: int = 8):
    """A one-factor binomial data set: ``y ~ x + (1|g)``."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(levels), per)
    x = rng.normal(size=g.size)
    b = rng.normal(scale=0.9, size=levels)
    eta = -0.3 + 0.7 * x + b[g]
    p = expit(eta) if link == "logit" else ndtr(eta)
    n = rng.integers(1, trials + 1, size=g.size) if trials > 1 else np.ones(g.size, int)
    y = rng.binomial(n, p)
    df = pd.DataFrame({"y": y, "f": n - y, "x": x, "g": [f"g{v}" for v in g]})
    formula = "cbind(y, f) ~ x + (1|g)" if trials > 1 else "y ~ x + (1|g)"
    return bg.GLMM(formula, df, family="binomial", link=link), df


def _exact_moments(df, link, beta, var):
    """Mean and variance of each level's ``b`` given ``y`` by 1-D quadrature."""
    sd = np.sqrt(var)
    grid = np.linspace(-10 * sd, 10 * sd, 4001)
    trials = (df["y"] + df["f"]).to_numpy()
    out = []
    for lev in sorted(df["g"].unique()):
        rows = df["g"].to_numpy() == lev
        eta = beta[0] + beta[1] * df["x"].to_numpy()[rows][:, None] + grid[None, :]
        y, n = df["y"].to_numpy()[rows][:, None], trials[rows][:, None]
        if link == "logit":
            ll = y * eta - n * np.logaddexp(0.0, eta)
        else:
            ll = y * log_ndtr(eta) + (n - y) * log_ndtr(-eta)
        logp = ll.sum(axis=0) - 0.5 * grid**2 / var
        p = np.exp(logp - logp.max())
        p /= np.trapezoid(p, grid)
        mean = np.trapezoid(grid * p, grid)
        out.append((mean, np.trapezoid((grid - mean) ** 2 * p, grid)))
    return np.array(out)


@pytest.mark.parametrize(("link", "trials"), [("logit", 4), ("probit", 1), ("probit", 3)])
def test_gibbs_draws_have_the_exact_conditional(link, trials):
    """The chains' states match p(b | y; psi) from quadrature (mean and variance per level).

    Logit with binomial counts (Polya-Gamma PG(n_i, eta_i)), probit with Bernoulli and with
    binomial rows (Albert-Chib, one latent per trial)."""
    model, df = _one_factor(link, trials, seed=11)
    beta, var = np.array([-0.2, 0.6]), 1.3
    mc = CompleteData(model.design)
    psi = mc.join(beta, [np.array([[var]])])
    sampler = GibbsSampler(mc, np.random.default_rng(5))
    sampler.draw(psi, 20_000)  # new chains: burn-in from the Laplace approximation
    s = sampler.draw(psi, 20_000)  # the same chains, further sweeps
    assert s.chain is not None and s.info["chains"] == 4000 and s.m == 20_000
    exact = _exact_moments(df, link, beta, var)
    mean = s.w @ s.B
    D = s.B - mean
    se_mean = np.sqrt(np.diag(s.sum_cov(D)))
    v = s.w @ D**2
    se_var = np.sqrt(np.diag(s.sum_cov(D**2 - v)))
    assert np.all(np.abs(mean - exact[:, 0]) < Z_TOL * se_mean), (mean, exact[:, 0], se_mean)
    assert np.all(np.abs(v - exact[:, 1]) < Z_TOL * se_var), (v, exact[:, 1], se_var)
    # a wrong conditional (the prior, or the mode) is far outside these bounds
    assert np.max(np.abs(exact[:, 0])) > 20 * se_mean.max()
    # dependent draws: the effective size is below the number of draws, and positive
    assert 0 < s.ess <= s.m and s.info["ess_fraction"] == s.ess / s.m


def test_chain_sums_give_the_monte_carlo_error_of_dependent_draws():
    """Sample.sum_cov over chain sums agrees with the spread of independent replicates, where
    the naive independent-draws formula is far too small.

    Two nearly aliased crossed factors (90 % of rows pair level j of one with level j of the
    other) make the block Gibbs sampler's draws strongly autocorrelated (effective size about
    a third of the draws). Over 30 replicates the root mean square of the 12 reported se
    against the replicates' sd is estimated within about 7 %: the bounds 0.75-1.33 are about
    4 of those (the naive ratio is about 0.55)."""
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(6), 20)
    h = g.copy()
    swap = rng.random(g.size) < 0.1
    h[swap] = rng.integers(0, 6, swap.sum())
    df = pd.DataFrame(
        {
            "y": rng.binomial(1, 0.5, g.size),
            "a": [f"a{v}" for v in g],
            "b": [f"b{v}" for v in h],
        }
    )
    mc = CompleteData(bg.GLMM("y ~ 1 + (1|a) + (1|b)", df, family="binomial").design)
    psi = mc.join(np.array([0.0]), [np.array([[2.0]]), np.array([[2.0]])])
    means, chain_se, naive_se = [], [], []
    for seed in range(30):
        s = GibbsSampler(mc, np.random.default_rng(seed), start_burn=50).draw(psi, 500)
        mean = s.w @ s.B
        means.append(mean)
        chain_se.append(np.sqrt(np.diag(s.sum_cov(s.B - mean))))
        naive = Sample(s.B, s.ZB, s.w)  # the same draws taken as independent
        naive_se.append(np.sqrt(np.diag(naive.sum_cov(s.B - mean))))
    spread2 = np.mean(np.var(means, axis=0, ddof=1))
    chain_ratio = np.sqrt(np.mean(np.square(chain_se)) / spread2)
    naive_ratio = np.sqrt(np.mean(np.square(naive_se)) / spread2)
    assert 0.75 < chain_ratio < 1.33, chain_ratio
    assert naive_ratio < 0.75, naive_ratio
    assert s.ess < 0.6 * s.m


def test_cbpp_mcem_gibbs_agrees_with_agq():
    """Binomial counts with logit link: Polya-Gamma PG(n_i, eta_i)."""
    cbpp = bg.GLMM(CBPP_FORMULA, bg.datasets.load("cbpp"), family="binomial")
    fit = cbpp.fit(
        method="mcem", e_step="gibbs", mc_size=1000, tol=0.05, random_seed=4, progressbar=False
    )
    assert fit.converged
    t = fit.table
    fixed = t["estimate"].iloc[:4].to_numpy()
    bound = N_MCSE * t["mcse"].iloc[:4].to_numpy() + ABS_EXTRA
    assert np.all(np.abs(fixed - AGQ25_FIXED) < bound), (fixed, bound)
    v, v_mcse = t.loc["var(herd)", "estimate"], t.loc["var(herd)", "mcse"]
    assert abs(v - AGQ25_VAR) < N_MCSE * v_mcse + ABS_EXTRA, (v, v_mcse)
    h = history(fit)
    assert np.all(h["ess"] <= h["m"]) and fit.convergence["details"]["e_step"] == "gibbs"


def test_probit_mcem_gibbs_agrees_with_quadrature():
    """Albert-Chib on a simulated Bernoulli probit one-factor design, against AGQ(25)."""
    model, _ = _one_factor("probit", 1, seed=2, levels=20, per=10)
    ref = model.fit(method="agq", n_quad=25)
    fit = model.fit(method="mcem", e_step="gibbs", mc_size=500, random_seed=8, progressbar=False)
    est, mcse = fit.table["estimate"], fit.table["mcse"]
    names = ["Intercept", "x", "var(g)"]
    diff = np.abs(est[names].to_numpy() - ref.table["estimate"][names].to_numpy())
    assert np.all(diff < N_MCSE * mcse[names].to_numpy() + ABS_EXTRA), (diff, mcse[names])


def test_same_seed_same_fit_mcem_and_mcnr():
    model, _ = _one_factor("logit", 4, seed=4, levels=10)
    for method in ("mcem", "mcnr"):
        kw = dict(method=method, e_step="gibbs", max_iter=3, progressbar=False, loglik_draws=200)
        a = model.fit(random_seed=7, **kw)
        b = model.fit(random_seed=7, **kw)
        c = model.fit(random_seed=8, **kw)
        np.testing.assert_array_equal(a.table["estimate"], b.table["estimate"])
        np.testing.assert_array_equal(a.table["mcse"], b.table["mcse"])
        pd.testing.assert_frame_equal(history(a), history(b))
        assert not np.array_equal(a.table["estimate"], c.table["estimate"])


def test_ascent_rule_appends_chains():
    model, _ = _one_factor("logit", 4, seed=4, levels=10)
    fit = model.fit(
        method="mcem",
        e_step="gibbs",
        mc_rule="ascent",
        max_iter=4,
        random_seed=3,
        progressbar=False,
        loglik_draws=200,
    )
    h = history(fit)
    assert np.all(np.isfinite(h["delta_q_se"])) and np.all(h["delta_q_se"] > 0)


def test_other_families_and_links_are_refused_before_fitting():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"y": rng.poisson(2.0, size=40), "g": np.repeat(list("abcdefgh"), 5)})
    pois = bg.GLMM("y ~ 1 + (1|g)", df, family="poisson")
    for method in ("mcem", "mcnr"):
        with pytest.raises(OptionError, match=r"e_step='gibbs'.*poisson/log"):
            pois.fit(method=method, e_step="gibbs")
    df["b"] = (df["y"] > 2).astype(int)
    cloglog = bg.GLMM("b ~ 1 + (1|g)", df, family="binomial", link="cloglog")
    with pytest.raises(OptionError, match="binomial/cloglog"):
        cloglog.fit(method="mcem", e_step="gibbs")
    # the sampler itself refuses too (for direct use)
    with pytest.raises(MethodError, match="Polya-Gamma"):
        GibbsSampler(CompleteData(pois.design), np.random.default_rng(0))
    # and simulated ML has no e_step at all
    with pytest.raises(OptionError, match="e_step"):
        pois.fit(method="sml", e_step="gibbs")
