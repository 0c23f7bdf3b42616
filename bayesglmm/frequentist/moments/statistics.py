"""Base statistics of Jiang's estimating equations and their expectations.

For a GLMM with random intercepts ``b_r ~ N(0, sigma_r^2)`` of factors ``r = 1..R``
(crossed or nested) and conditional means ``m_j = n_j h(x_j'beta + sum_r b_{r,l_r(j)})``,
the base statistics are

* ``S_k = sum_j x_jk y_j`` for each fixed effect ``k``;
* ``P_{r,l} = T_l^2 - T_l`` with ``T_l = sum_{j in l} y_j`` for each level ``l`` of each
  factor: for binomial rows (``y_j`` successes of ``n_j`` trials) the number of ordered
  pairs of distinct Bernoulli trials of the level that both succeed, within a row as well
  as across rows (the second factorial moment of the level's total for Poisson counts).
  With 0/1 responses this is Jiang's ``sum_{j != k} y_j y_k``; with counts, dropping the
  pairs inside a row (``T_l^2 - sum_j y_j^2``) would leave a level observed in a single row
  (e.g. one row per plate) with a statistic that is always 0, and the variance unidentified.

Jiang (1998) sums the ``P_{r,l}`` over the levels of each factor (one statistic per
variance); Jiang & Zhang (2001) keep them per level and weight them optimally. Given the
random effects the responses are independent, so ``E[S | b] = X'm`` and
``E[P_{r,l} | b] = (sum_l m)^2 - sum_l c_j m_j^2`` with ``c_j = 1/n_j`` for binomial rows
(``E[y(y - 1) | b] = n(n - 1)p^2``) and ``c_j = 0`` for Poisson (``E[y(y - 1) | b] = m^2``);
only the average over ``b`` is numerical:
Monte Carlo with common random numbers (fixed standard-normal draws ``xi``, ``b = sigma xi``,
so ``u(theta)`` is smooth in ``theta`` and differentiated exactly), or Gauss-Hermite
quadrature for a single factor (the statistics are sums over independent levels, so one
node shared by all levels integrates each level exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: rows of simulated random effects handled at once (memory ~ CHUNK * n doubles)
CHUNK = 256


@dataclass
class MomentProblem:
    """The arrays of the estimating equations.

    Attributes
    ----------
    y, trials, X, offset : ndarray
    family : Family
    indices : list of ndarray
        Level of each row for each random-intercept factor.
    n_levels : list of int
    names : list of str
        Factor names (variance components).
    """

    y: np.ndarray
    trials: np.ndarray
    X: np.ndarray
    offset: np.ndarray
    family: object
    indices: list
    n_levels: list
    names: list

    def __post_init__(self):
        n = self.y.size
        # E[y_j (y_j - 1) | b] = (1 - c_j) m_j^2: c_j = 1/n_j for binomial rows, 0 for Poisson
        if self.family.has_trials:
            t = np.asarray(self.trials, float)
            self.c = np.divide(1.0, t, out=np.zeros(n), where=t > 0)
        else:
            self.c = np.zeros(n)
        self.Z = [
            sp.csr_matrix((np.ones(n), (np.arange(n), idx)), shape=(n, L))
            for idx, L in zip(self.indices, self.n_levels, strict=True)
        ]

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def R(self) -> int:
        return len(self.indices)

    @property
    def n_stats(self) -> int:
        return self.p + sum(self.n_levels)

    def statistics(self, y: np.ndarray) -> np.ndarray:
        """Base statistics of responses ``y`` (n,) or (s, n): ``[X'y, P_1, ..., P_R]``."""
        Y = np.atleast_2d(y)
        parts = [Y @ self.X]
        for Z in self.Z:
            T = (Z.T @ Y.T).T
            parts.append(T * T - T)
        out = np.hstack(parts)
        return out[0] if np.ndim(y) == 1 else out

    def aggregate(self) -> np.ndarray:
        """Matrix summing the per-level statistics of each factor: Jiang's (1998) S."""
        A = np.zeros((self.p + self.R, self.n_stats))
        A[: self.p, : self.p] = np.eye(self.p)
        start = self.p
        for r, L in enumerate(self.n_levels):
            A[self.p + r, start : start + L] = 1.0
            start += L
        return A

    # ------------------------------------------------------------------------------
    def expectation(
        self, theta: np.ndarray, draws, per_draw: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``u(theta) = E S`` and its Jacobian ``U = du/dtheta'`` (n_stats, p + R).

        ``theta = (beta, sigma_1..sigma_R)``; ``draws`` a :class:`Draws`. With
        ``per_draw``, also the conditional expectations ``E[S | b_s]`` of every draw
        (n_draws, n_stats), whose spread gives the Monte Carlo error of ``u``.
        """
        p, R = self.p, self.R
        beta, sd = theta[:p], theta[p:]
        eta0 = self.X @ beta + self.offset
        link = self.family.link
        u = np.zeros(self.n_stats)
        U = np.zeros((self.n_stats, p + R))
        each = np.empty((draws.n, self.n_stats)) if per_draw else None
        for lo in range(0, draws.n, CHUNK):
            hi = min(lo + CHUNK, draws.n)
            w = draws.weights[lo:hi]
            re = [draws.xi[r][lo:hi][:, self.indices[r]] for r in range(R)]  # (c, n)
            eta = eta0[None, :] + sum(sd[r] * re[r] for r in range(R))
            m = self.trials * link.linkinv(eta)
            g = self.trials * link.mu_eta(eta)
            wm = w @ m
            wg = w[:, None] * g
            u[:p] += wm @ self.X
            if per_draw:
                each[lo:hi, :p] = m @ self.X
            U[:p, :p] += (wg.sum(0)[:, None] * self.X).T @ self.X
            for r in range(R):
                U[:p, p + r] += ((wg * re[r]).sum(0)) @ self.X
            start = p
            for r, Z in enumerate(self.Z):
                L = self.n_levels[r]
                T = (Z.T @ m.T).T  # (c, L)
                Q = (Z.T @ (self.c * m * m).T).T
                u[start : start + L] += w @ (T * T - Q)
                if per_draw:
                    each[lo:hi, start : start + L] = T * T - Q
                # dP_l/dtheta_a = sum_{j in l} 2 (T_l - c_j m_j) dm_j/dtheta_a
                coef = 2.0 * (T[:, self.indices[r]] - self.c * m) * wg  # (c, n), with weights
                csum = coef.sum(0)
                U[start : start + L, :p] += Z.T @ (csum[:, None] * self.X)
                for a in range(R):
                    U[start : start + L, p + a] += Z.T @ (coef * re[a]).sum(0)
                start += L
        return (u, U, each) if per_draw else (u, U)

    def simulate_statistics(self, theta: np.ndarray, n_sim: int, rng) -> np.ndarray:
        """Base statistics of ``n_sim`` data sets simulated from the model at ``theta``."""
        p = self.p
        beta, sd = theta[:p], theta[p:]
        eta0 = self.X @ beta + self.offset
        out = np.empty((n_sim, self.n_stats))
        for lo in range(0, n_sim, CHUNK):
            hi = min(lo + CHUNK, n_sim)
            c = hi - lo
            eta = np.repeat(eta0[None, :], c, axis=0)
            for r in range(self.R):
                b = rng.standard_normal((c, self.n_levels[r])) * sd[r]
                eta += b[:, self.indices[r]]
            mu = self.family.link.linkinv(eta)
            y = self.family.simulate(mu, rng, self.trials).astype(float)
            out[lo:hi] = self.statistics(y)
        return out


@dataclass
class Draws:
    """Standard-normal random effects ``xi[r]`` (n, L_r) and weights (n,) summing to 1."""

    xi: list
    weights: np.ndarray

    @property
    def n(self) -> int:
        return self.weights.size


def monte_carlo_draws(n_levels: list, n_sim: int, rng) -> Draws:
    """Common random numbers: the same ``xi`` for every ``theta``."""
    xi = [rng.standard_normal((n_sim, L)) for L in n_levels]
    return Draws(xi, np.full(n_sim, 1.0 / n_sim))


def quadrature_draws(n_levels: list, n_quad: int) -> Draws:
    """Gauss-Hermite nodes shared by all levels of one factor (exact per level)."""
    if len(n_levels) != 1:
        raise ValueError("quadrature integrates one random-effect factor")
    x, w = np.polynomial.hermite_e.hermegauss(n_quad)
    return Draws([np.repeat(x[:, None], n_levels[0], axis=1)], w / w.sum())
