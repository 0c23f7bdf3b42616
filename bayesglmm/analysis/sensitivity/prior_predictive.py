"""Prior predictive checks: simulate responses from the priors, compare with the data.

For each prior set: draw every parameter from its prior (the prior's own ``sample``), the
random effects from the drawn variances, a response from the family, and compute summary
statistics of the response (mean, sd, and the sd of the per-level means of each grouping
factor, the statistic the variance priors speak to). Improper priors have no prior predictive
distribution: their rows say so. Correlated terms draw their correlation matrix (or, under
an inverse-Wishart prior, their covariance) from its prior.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: a count's mean is capped here, so that vague priors draw finite counts
MAX_MEAN = 1e9


def _sd(prior, n: int, rng) -> np.ndarray:
    x = prior.sample(rng, (n,))
    return np.sqrt(x) if prior.scale == "variance" else x


def _random_effects(term, priors, n: int, rng) -> np.ndarray:
    """(n, levels, k) random effects drawn from their prior."""
    k, L = term.n_columns, term.n_levels
    sd_priors = priors.random_sd[term.name]
    matrix = priors.correlation.get(term.name) if term.correlated else None
    if matrix is not None and matrix.scale == "covariance":
        cov = matrix.sample(rng, (n,), k)
    else:
        sds = np.stack([_sd(p, n, rng) for p in sd_priors], axis=-1)
        corr = (
            matrix.sample(rng, (n,), k)
            if matrix is not None
            else np.broadcast_to(np.eye(k), (n, k, k))
        )
        cov = corr * sds[:, :, None] * sds[:, None, :]
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(k))
    z = rng.standard_normal((n, L, k))
    return np.einsum("nlk,njk->nlj", z, chol)


def simulate_prior(model, priors, n: int, rng) -> np.ndarray:
    """(n, rows) responses simulated from the prior predictive distribution."""
    d = model.design
    eta = np.zeros((n, d.n)) + d.offset
    for term, sl in d.fixed_terms.items():
        k = sl.stop - sl.start
        beta = priors.fixed[term].sample(rng, (n, k) if k > 1 else (n, 1))
        eta += beta @ d.X[:, sl].T
    for t in d.random:
        b = _random_effects(t, priors, n, rng)
        eta += np.einsum("nrk,rk->nr", b[:, t.index, :], t.X)
    fam = d.family
    with np.errstate(over="ignore"):
        mu = fam.link.linkinv(eta)
    if fam.discrete:
        mu = np.minimum(mu, MAX_MEAN)
    disp = None
    if fam.has_dispersion:  # the Gaussian sigma, the negative-binomial alpha
        disp = _sd(priors.dispersion[fam.dispersion_name], n, rng)[:, None]
    try:
        y = fam.simulate(mu, rng, d.trials, disp)
    except NotImplementedError:
        raise ValueError(f"no prior predictive simulation for family {fam.name!r}") from None
    return fam.fitting_scale(y.astype(float), d.trials)[0]  # binomial: proportions


def statistics(model, y: np.ndarray) -> dict[str, np.ndarray]:
    """Summary statistics of responses ``y`` (..., rows), per simulated data set."""
    d = model.design
    y = np.atleast_2d(y)
    out = {"mean": y.mean(axis=-1), "sd": y.std(axis=-1)}
    for t in d.random:
        counts = np.bincount(t.index, minlength=t.n_levels)
        sums = np.stack([np.bincount(t.index, weights=row, minlength=t.n_levels) for row in y])
        out[f"sd of {t.group} means"] = (sums / np.maximum(counts, 1)).std(axis=-1)
    return out


def prior_predictive_check(model, priors, n: int = 400, seed: int | None = None) -> pd.DataFrame:
    """Prior predictive distribution of the summary statistics against the observed ones.

    Returns one row per statistic: ``observed``, ``q5``, ``median``, ``q95`` of the
    simulated statistic, and ``p_ge_observed`` (the share of simulated data sets at or
    above the observed value; near 0 or 1 says the prior does not cover the data).
    """
    d = model.design
    y_obs = d.family.fitting_scale(d.y, d.trials)[0]
    observed = {k: float(v[0]) for k, v in statistics(model, y_obs).items()}
    rng = np.random.default_rng(seed)
    try:
        sims = statistics(model, simulate_prior(model, priors, n, rng))
        note = ""
    except ValueError as err:
        sims, note = None, f"no prior predictive distribution: {err}"
    rows = []
    for k, obs in observed.items():
        row = {"statistic": k, "observed": obs}
        if sims is None:
            row.update({"q5": np.nan, "median": np.nan, "q95": np.nan, "p_ge_observed": np.nan})
        else:
            q = np.quantile(sims[k], [0.05, 0.5, 0.95])
            row.update(
                {
                    "q5": q[0],
                    "median": q[1],
                    "q95": q[2],
                    "p_ge_observed": float(np.mean(sims[k] >= obs)),
                }
            )
        row["note"] = note
        rows.append(row)
    return pd.DataFrame(rows)
