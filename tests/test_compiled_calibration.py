"""Calibration of the default NUTS path (``nuts_sampler="compiled"``: nutpie on the Numba
density of :mod:`bayesglmm.bayes.kernel`) against posteriors computed exactly.

Gaussian random-intercept model with unknown variances,

.. math:: y_{ij} = \\beta_0 + \\beta_1 x_{ij} + b_i + e_{ij}, \\quad b_i \\sim N(0, s^2),
          \\quad e_{ij} \\sim N(0, \\sigma^2),

priors :math:`\\beta_k \\sim N(m_k, t_k^2)`, :math:`s \\sim \\mathrm{HalfNormal}(s_0)`,
:math:`\\sigma \\sim \\mathrm{HalfNormal}(\\sigma_0)`. Given :math:`(s, \\sigma)` the
coefficients :math:`\\theta = (\\beta, b)` are jointly Gaussian, with precision
:math:`Q = A'A/\\sigma^2 + D^{-1}` (:math:`A = [X\\; Z]`, :math:`D` the prior variances),
and :math:`y` has the marginal density :math:`N(A m, \\sigma^2 I + A D A')`, whose log
determinant and quadratic form follow from :math:`Q` by the determinant lemma and
Woodbury's identity. The posterior of :math:`(\\log s, \\log \\sigma)` is then a
two-dimensional density, integrated on a fine grid (the trapezoid rule on a smooth density
that has decayed by :math:`e^{-30}` at the grid's edges: error far below the Monte Carlo
error), and mixing the conditional Gaussians over it gives the exact posterior mean and
variance of every coefficient and of both log standard deviations.

Two more cases check the binomial-logit and Poisson-log likelihoods of the kernel: a
regression without random effects (two coefficients, Normal priors), whose posterior is
integrated on a two-dimensional grid over :math:`(\\beta_0, \\beta_1)`.

The check: for every parameter :math:`\\theta_j` the draws' mean of :math:`\\theta_j` and of
:math:`(\\theta_j - \\mu_j)^2` (:math:`\\mu_j` the exact mean) must be within ``Z_BOUND``
Monte Carlo standard errors (ArviZ ``mcse(method="mean")``, i.e. from the effective sample
size of each function) of the exact mean and variance.

The checks fail on a broken density (local runs, same seeds, on the C-callback path or
with the kernel's ``logp_grad_columns`` wrapped on the Python-callback path): the sd prior
``HalfNormal(0.5)`` read as ``HalfNormal(1.0)``: 3 of 24 checks fail (|z| up to 5.8); the
log-Jacobian of the sd dropped: 17 fail; the HalfNormal prior on the sd dropped: 11 fail;
the prior mean of ``x`` doubled in the binomial and Poisson cases: 2 of 4 fail (|z| 27 and
12). A wrong gradient with the right log density (scaled by 1.3) passes, as it must: the
leapfrog map with any position-dependent force is volume-preserving and reversible, so the
Metropolis-corrected sampler stays exact, only less efficient.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from bayesglmm import GLMM
from bayesglmm import priors as P

#: two checks (mean, variance) per parameter, at most 2 x 12 = 24 per test; a total
#: false-failure rate of 1e-3 per test, Bonferroni-split: two-sided 1e-3 / 24 per check
#: (z = 4.10). The MCSE's themselves are estimates (from >= 1,000 effective draws, so a
#: few percent off), which the margin between 4.1 and the 3.3 of a single 1e-3 check covers.
N_CHECKS = 24
Z_BOUND = float(stats.norm.isf(1e-3 / N_CHECKS / 2))

# the Gaussian case: 8 groups of 5, priors informative enough that they matter (a sampler
# that dropped or mis-scaled a prior term would be off by several Monte Carlo errors)
GAUSS_PRIORS = {
    "Intercept": P.Normal(1.0, 2.0),
    "x": P.Normal(0.0, 1.0),
    "g": P.HalfNormal(0.5),
    "sigma": P.HalfNormal(1.0),
}
FIT = dict(
    method="nuts",
    nuts_sampler="compiled",
    draws=1000,
    tune=1000,
    chains=4,
    cores=1,
    progressbar=False,
    log_likelihood=False,
    target_accept=0.9,
)


def gaussian_data(seed: int = 20261130) -> pd.DataFrame:
    """8 groups of 5 rows; numpy's default_rng(seed)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(8), 5)
    x = rng.normal(size=40)
    y = 1.0 + 0.5 * x + 0.4 * rng.normal(size=8)[g] + 0.8 * rng.normal(size=40)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]})


def _trapezoid_weights(grid: np.ndarray) -> np.ndarray:
    w = np.full(grid.size, grid[1] - grid[0])
    w[[0, -1]] /= 2
    return w


def exact_gaussian_posterior(df: pd.DataFrame, priors: dict, n_grid: int = 241) -> dict:
    """Exact posterior means and variances: {name: (mean, variance)}, names as in the
    fit's posterior (``Intercept``, ``x``, ``1|g[level]``, ``log 1|g_sigma``, ``log sigma``).
    """
    levels = sorted(df["g"].unique())
    Z = (df["g"].to_numpy()[:, None] == np.array(levels)[None, :]).astype(float)
    X = np.column_stack([np.ones(len(df)), df["x"].to_numpy()])
    A = np.hstack([X, Z])
    y = df["y"].to_numpy()
    n, p, q = len(y), X.shape[1], Z.shape[1]
    m0 = np.array([priors["Intercept"].mu, priors["x"].mu] + [0.0] * q)
    beta_var = np.array([priors["Intercept"].sigma, priors["x"].sigma]) ** 2
    s0, sig0 = priors["g"].sigma, priors["sigma"].sigma
    r = y - A @ m0
    AtA, Atr, rtr = A.T @ A, A.T @ r, r @ r

    u = np.linspace(np.log(1e-15), np.log(8 * s0), n_grid)  # log s: tail ~ s at 0
    v = np.linspace(np.log(0.05), np.log(8 * sig0), n_grid)  # log sigma
    U, V = np.meshgrid(u, v, indexing="ij")
    s2, sig2 = np.exp(2 * U).ravel(), np.exp(2 * V).ravel()
    dvar = np.concatenate(
        [np.broadcast_to(beta_var, (s2.size, p)), np.repeat(s2[:, None], q, 1)], 1
    )
    Q = AtA[None] / sig2[:, None, None] + np.einsum("ij,gj->gij", np.eye(p + q), 1 / dvar)
    c = Atr[None] / sig2[:, None]
    L = np.linalg.cholesky(Q)
    Qinv_c = np.linalg.solve(Q, c[..., None])[..., 0]
    logdetQ = 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
    loglik = -0.5 * (
        n * np.log(2 * np.pi)
        + n * np.log(sig2)
        + np.log(dvar).sum(1)
        + logdetQ
        + rtr / sig2
        - (c * Qinv_c).sum(1)
    )
    # HalfNormal densities of s and sigma, times the Jacobians s and sigma of the log scale
    logprior = (
        stats.halfnorm.logpdf(np.sqrt(s2), scale=s0)
        + stats.halfnorm.logpdf(np.sqrt(sig2), scale=sig0)
        + U.ravel()
        + V.ravel()
    )
    logw = (
        loglik + logprior + np.log(np.outer(_trapezoid_weights(u), _trapezoid_weights(v))).ravel()
    )
    edge = logw.reshape(n_grid, n_grid)
    assert max(edge[0].max(), edge[-1].max(), edge[:, 0].max(), edge[:, -1].max()) < (
        logw.max() - 30
    ), "grid too narrow"
    w = np.exp(logw - special.logsumexp(logw))
    mean_c = m0 + Qinv_c  # conditional means
    var_c = np.diagonal(np.linalg.inv(Q), axis1=1, axis2=2)
    mean = w @ mean_c
    var = w @ (var_c + mean_c**2) - mean**2
    out = {"Intercept": (mean[0], var[0]), "x": (mean[1], var[1])}
    for j, level in enumerate(levels):
        out[f"1|g[{level}]"] = (mean[p + j], var[p + j])
    for name, t in (("log 1|g_sigma", U.ravel()), ("log sigma", V.ravel())):
        mu = w @ t
        out[name] = (mu, w @ (t - mu) ** 2)
    return out


def gaussian_draws(idata) -> dict[str, np.ndarray]:
    post = idata.posterior
    out = {"Intercept": post["Intercept"].values, "x": post["x"].values}
    for level in post["g"].values:
        out[f"1|g[{level}]"] = post["1|g"].sel(g=level).values
    out["log 1|g_sigma"] = np.log(post["1|g_sigma"].values)
    out["log sigma"] = np.log(post["sigma"].values)
    return out


def calibration_misses(draws: dict, exact: dict) -> list[str]:
    """The checks that fail: mean and variance of each parameter, in MCSE units."""
    misses = []
    for name, (mu, var) in exact.items():
        d = np.asarray(draws[name], dtype=float)  # (chain, draw)
        for what, f, target in (("mean", d, mu), ("variance", (d - mu) ** 2, var)):
            mcse = float(np.squeeze(az.mcse(f, method="mean")))
            z = (f.mean() - target) / mcse
            if abs(z) > Z_BOUND:
                misses.append(f"{name} {what}: {f.mean():.4g} vs exact {target:.4g} (z = {z:.1f})")
    return misses


def test_exact_posterior_grid_is_converged():
    """The quadrature is exact to far below the Monte Carlo error: halving the grid step
    changes no mean or variance by more than 1e-6 (relative to the posterior sd)."""
    df = gaussian_data()
    coarse = exact_gaussian_posterior(df, GAUSS_PRIORS, n_grid=121)
    fine = exact_gaussian_posterior(df, GAUSS_PRIORS, n_grid=241)
    for family in ("binomial", "poisson"):
        counts = count_data(family)
        coarse |= {
            f"{family} {k}": v for k, v in exact_count_posterior(counts, family, 151).items()
        }
        fine |= {f"{family} {k}": v for k, v in exact_count_posterior(counts, family, 301).items()}
    for k, (mu, var) in fine.items():
        assert abs(coarse[k][0] - mu) < 1e-6 * np.sqrt(var), k
        assert abs(coarse[k][1] / var - 1) < 1e-6, k


@pytest.mark.slow
def test_compiled_nuts_matches_the_exact_gaussian_posterior():
    df = gaussian_data()
    model = GLMM("y ~ x + (1|g)", df, family="gaussian", priors=GAUSS_PRIORS)
    fit = model.fit(random_seed=20261130, **FIT)
    assert fit.info["details"]["nuts_sampler"] == "compiled"
    misses = calibration_misses(
        gaussian_draws(fit.idata), exact_gaussian_posterior(df, GAUSS_PRIORS)
    )
    assert not misses, misses


def count_data(family: str, seed: int = 20261201) -> pd.DataFrame:
    """30 rows; binomial: 6 trials each; numpy's default_rng(seed)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=30)
    eta = -0.3 + 0.7 * x
    if family == "binomial":
        s = rng.binomial(6, special.expit(eta))
        return pd.DataFrame({"s": s, "f": 6 - s, "x": x})
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x})


COUNT_FORMULA = {"binomial": "cbind(s, f) ~ x", "poisson": "y ~ x"}
COUNT_PRIORS = {"Intercept": P.Normal(0.0, 1.0), "x": P.Normal(0.5, 0.5)}


def exact_count_posterior(df: pd.DataFrame, family: str, n_grid: int = 301) -> dict:
    """Exact posterior means and variances of (Intercept, x) by a grid over both."""
    x = df["x"].to_numpy()
    pri = [COUNT_PRIORS["Intercept"], COUNT_PRIORS["x"]]
    # a box of +-14 posterior sd's (normal approximation) around the mode, found by Newton
    X = np.column_stack([np.ones_like(x), x])
    prior_mu = np.array([p.mu for p in pri])
    prior_prec = np.array([p.sigma**-2.0 for p in pri])
    center = prior_mu.copy()
    for _ in range(30):
        eta = X @ center
        if family == "binomial":
            n_trials = (df["s"] + df["f"]).to_numpy()
            prob = special.expit(eta)
            resid, w = df["s"].to_numpy() - n_trials * prob, n_trials * prob * (1 - prob)
        else:
            resid, w = df["y"].to_numpy() - np.exp(eta), np.exp(eta)
        H = X.T @ (w[:, None] * X) + np.diag(prior_prec)
        center = center + np.linalg.solve(H, X.T @ resid - prior_prec * (center - prior_mu))
    half = 14 * np.sqrt(np.diag(np.linalg.inv(H)))
    b0 = np.linspace(center[0] - half[0], center[0] + half[0], n_grid)
    b1 = np.linspace(center[1] - half[1], center[1] + half[1], n_grid)
    B0, B1 = np.meshgrid(b0, b1, indexing="ij")
    eta = B0.ravel()[:, None] + B1.ravel()[:, None] * x[None, :]
    if family == "binomial":
        ll = (df["s"].to_numpy() * eta - (df["s"] + df["f"]).to_numpy() * np.logaddexp(0, eta)).sum(
            1
        )
    else:
        ll = (df["y"].to_numpy() * eta - np.exp(eta)).sum(1)
    logw = (
        ll
        + stats.norm.logpdf(B0.ravel(), pri[0].mu, pri[0].sigma)
        + stats.norm.logpdf(B1.ravel(), pri[1].mu, pri[1].sigma)
        + np.log(np.outer(_trapezoid_weights(b0), _trapezoid_weights(b1))).ravel()
    )
    edge = logw.reshape(n_grid, n_grid)
    assert max(edge[0].max(), edge[-1].max(), edge[:, 0].max(), edge[:, -1].max()) < (
        logw.max() - 30
    ), "grid too narrow"
    w = np.exp(logw - special.logsumexp(logw))
    out = {}
    for name, t in (("Intercept", B0.ravel()), ("x", B1.ravel())):
        mu = w @ t
        out[name] = (mu, w @ (t - mu) ** 2)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_compiled_nuts_matches_exact_count_posteriors(family):
    df = count_data(family)
    model = GLMM(COUNT_FORMULA[family], df, family=family, priors=COUNT_PRIORS)
    fit = model.fit(random_seed=20261201, **FIT)
    assert fit.info["details"]["nuts_sampler"] == "compiled"
    post = fit.idata.posterior
    draws = {k: post[k].values for k in ("Intercept", "x")}
    misses = calibration_misses(draws, exact_count_posterior(df, family))
    assert not misses, misses


# --------------------------------------------------------------------------------------
# simulation-based calibration through the general compiled density
# (bayesglmm.bayes.density: links, priors and the centered parameterization that the
# specialised kernel does not cover)

#: binomial (5 trials) with the cloglog link, 6 groups of 5 rows, centered effects
SBC_PRIORS = {
    "Intercept": P.Normal(-0.5, 0.7),
    "x": P.StudentT(5.0, 0.3, 0.5),
    "g": P.Exponential(2.0),
}
SBC_NAMES = ["Intercept", "x", "1|g_sigma"]
#: 19 thinned draws per replication: ranks 0..19 in 10 equiprobable bins
SBC_DRAWS, SBC_THIN = 19, 15


def _sbc_frame(rng) -> pd.DataFrame:
    g = np.repeat(np.arange(6), 5)
    return pd.DataFrame({"x": rng.normal(size=30), "g": [f"g{k}" for k in g]})


def sbc_simulate(rng):
    """Parameters from SBC_PRIORS, then the data given them."""
    df = _sbc_frame(rng)
    b0 = rng.normal(-0.5, 0.7)
    b1 = 0.3 + 0.5 * rng.standard_t(5.0)
    sd = rng.exponential(0.5)
    u = rng.normal(0.0, sd, 6)
    eta = b0 + b1 * df["x"].to_numpy() + u[np.repeat(np.arange(6), 5)]
    df["s"] = rng.binomial(5, -np.expm1(-np.exp(eta)))
    df["f"] = 5 - df["s"]
    return np.array([b0, b1, sd]), df


def sbc_sample(df, truth, rng, break_prior: bool = False):
    """Thinned draws of one nutpie chain on the general density (centered)."""
    import nutpie

    from bayesglmm.bayes import density_layout, density_sampler

    model = GLMM("cbind(s, f) ~ x + (1|g)", df, link="cloglog", priors=SBC_PRIORS)
    dd = density_layout.density_data(model, "centered")
    if break_prior:  # for the check that this test can fail: Exponential(2) read as (0.5)
        dd.args[11][0, 0] = 0.5
    idata = nutpie.sample(
        density_sampler.callback_model(dd, model.design),
        draws=SBC_DRAWS * SBC_THIN,
        tune=300,
        chains=1,
        seed=int(rng.integers(2**31)),
        progress_bar=False,
        target_accept=0.9,
    )
    raw = idata.posterior["__x"].values[0, SBC_THIN - 1 :: SBC_THIN]
    named = dd.expand(raw, model)
    return np.column_stack([named[name] for name in SBC_NAMES])


@pytest.mark.slow
def test_sbc_through_the_general_density():
    """Ranks of the truth among thinned posterior draws are uniform (Talts et al. 2018):
    probit/cloglog links, Student-t and exponential priors and the centered
    parameterization go through the general density, nutpie's sampler and the expansion
    to named draws. Family-wise false-failure rate 1e-3 (``run_sbc``'s Bonferroni over the
    three parameters, exact-null p-values). Thinning by 15 leaves near-independent draws
    (ESS per draw 0.3 to 1.2 in a local run of 2,000 draws). It can fail: with the sd prior
    read as Exponential(0.5) instead of Exponential(2) (``break_prior``) the sd's p-value
    is below 1e-6 (local run, same seeds); a milder error, Exponential(1), gives 0.013 and
    passes at 150 replications."""
    from bayesglmm.analysis.sbc import run_sbc

    res = run_sbc(sbc_simulate, sbc_sample, 150, SBC_NAMES, 20261130, SBC_DRAWS, bins=10,
                  progressbar=False)  # fmt: skip
    assert (res.pvalues >= res.alpha / len(SBC_NAMES)).all(), dict(
        zip(SBC_NAMES, res.pvalues, strict=True)
    )
