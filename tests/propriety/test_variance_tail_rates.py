"""The tail rate rho of bayesglmm.propriety.variance against brute-force quadrature.

The variance-component conditions rest on one claim: as sigma^2 -> infinity the marginal
likelihood decays like sigma^-rho, with rho = q - dim C (C the cone of non-decreasing
directions of [X_flat Z]). For a random intercept with a fixed (or proper) intercept that
is the number m of groups with mixed responses; a flat intercept absorbs one group
(rho = m - 1). Here the marginal likelihood of small one-way binomial and Poisson models is
integrated numerically at sigma = 100 and 1000 and the log-log slope compared with -rho.
For the Gaussian model the restricted likelihood is in closed form.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln, log_expit
from scipy.stats import norm

from bayesglmm import GLMM
from bayesglmm import priors as P
from bayesglmm.propriety.fixed import flat_columns, row_signs
from bayesglmm.propriety.variance import components, tail_rate

#: the slope between sigma = 100 and 1000 differs from its limit by O(1/sigma) terms and
#: by quadrature error (grid steps 0.04 in eta, sigma/40 in the intercept): a few 0.01
SLOPE_TOL = 0.1
SIGMAS = (100.0, 1000.0)
ETA = np.linspace(-40.0, 40.0, 2001)


def _group_integrals(logh: np.ndarray, limit: str, beta0: np.ndarray, sigma: float):
    """int h(eta) phi_sigma(eta - beta0) d eta for each beta0; ``limit`` says where h -> 1."""
    h = np.exp(logh)
    if limit == "up":
        step, base = (ETA > 0).astype(float), norm.cdf(beta0 / sigma)
    elif limit == "down":
        step, base = (ETA < 0).astype(float), norm.cdf(-beta0 / sigma)
    else:
        step, base = np.zeros_like(ETA), np.zeros_like(beta0)
    w = norm.pdf(ETA[None, :], loc=beta0[:, None], scale=sigma)
    return base + (w @ (h - step)) * (ETA[1] - ETA[0])


def _marginal(groups, sigma: float, flat: bool) -> float:
    """Marginal likelihood at intercept 0 (fixed) or integrated over a flat intercept."""
    beta0 = np.linspace(-10 * sigma, 10 * sigma, 401) if flat else np.zeros(1)
    logL = np.zeros(beta0.size)
    for logh, limit in groups:
        logL += np.log(np.maximum(_group_integrals(logh, limit, beta0, sigma), 1e-300))
    if not flat:
        return float(np.exp(logL[0]))
    return float(np.exp(logL).sum() * (beta0[1] - beta0[0]))


def _slope(groups, flat: bool) -> float:
    lo, hi = (_marginal(groups, s, flat) for s in SIGMAS)
    return np.log(hi / lo) / np.log(SIGMAS[1] / SIGMAS[0])


def _rho(model) -> int:
    d = model.design
    flat = flat_columns(d, model.priors)
    return tail_rate(d, d.X[:, flat], components(d, model.priors), row_signs(d))


BINARY = [(2, 1), (1, 3), (2, 2), (3, 0), (0, 2)]  # (successes, failures) per group
COUNTS = [[0, 2], [1, 0, 3], [0, 0], [4], [0, 0, 0]]  # Poisson counts per group


def _binary_model(flat: bool):
    rows = [(g, 1) for g, (s, _) in enumerate(BINARY) for _ in range(s)]
    rows += [(g, 0) for g, (_, f) in enumerate(BINARY) for _ in range(f)]
    pri = {"g": P.HalfFlat(), **({"Intercept": P.Flat()} if flat else {})}
    return GLMM("y ~ 1 + (1|g)", pd.DataFrame(rows, columns=["g", "y"]), priors=pri)


def _binary_groups():
    out = []
    for s, f in BINARY:
        logh = s * log_expit(ETA) + f * log_expit(-ETA)
        out.append((logh, "up" if f == 0 else "down" if s == 0 else None))
    return out


def _count_model(flat: bool):
    rows = [(g, y) for g, ys in enumerate(COUNTS) for y in ys]
    pri = {"g": P.HalfFlat(), **({"Intercept": P.Flat()} if flat else {})}
    return GLMM(
        "y ~ 1 + (1|g)", pd.DataFrame(rows, columns=["g", "y"]), family="poisson", priors=pri
    )


def _count_groups():
    out = []
    for ys in COUNTS:
        ys = np.asarray(ys)
        mu = np.exp(ETA)
        logh = ys.sum() * ETA - ys.size * mu - gammaln(ys + 1).sum()
        out.append((logh, "down" if ys.sum() == 0 else None))
    return out


@pytest.mark.parametrize("flat", [False, True], ids=["fixed intercept", "flat intercept"])
@pytest.mark.parametrize("kind", ["binomial", "poisson"])
def test_tail_rate_matches_quadrature(kind, flat):
    model = _binary_model(flat) if kind == "binomial" else _count_model(flat)
    groups = _binary_groups() if kind == "binomial" else _count_groups()
    rho = _rho(model)
    mixed = 3  # groups with mixed responses (binomial) or with a positive count (Poisson)
    assert rho == (mixed - 1 if flat else mixed)
    assert abs(_slope(groups, flat) + rho) < SLOPE_TOL


@pytest.mark.parametrize("flat", [False, True])
def test_gaussian_rate_is_the_rank_of_the_projected_design(flat):
    """Restricted likelihood |K' V K|^-1/2 with V = I + s^2 Z Z': slope -rank(P_XF' Z)."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(5), 3)
    df = pd.DataFrame({"y": rng.normal(size=15), "g": g})
    pri = {"g": P.HalfFlat(), "sigma": P.Jeffreys(), **({"Intercept": P.Flat()} if flat else {})}
    model = GLMM("y ~ 1 + (1|g)", df, family="gaussian", priors=pri)
    rho = _rho(model)
    assert rho == (4 if flat else 5)
    Z = model.design.Z.toarray()
    K = np.linalg.svd(np.ones((15, 1)))[0][:, 1:] if flat else np.eye(15)
    w = K.T @ df["y"].to_numpy()

    def loglik(s2):
        V = K.T @ (np.eye(15) + s2 * Z @ Z.T) @ K
        return -0.5 * np.linalg.slogdet(V)[1] - 0.5 * w @ np.linalg.solve(V, w)

    slope = (loglik(1e6) - loglik(1e4)) / np.log(1e2)  # per log(sigma^2)
    assert abs(slope + rho / 2) < SLOPE_TOL / 2
