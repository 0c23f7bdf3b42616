"""``V = Var_theta(S)`` of the base statistics without simulating responses.

Given the random effects ``b`` the rows are independent, so

.. math::  V = E_b\\,\\mathrm{Var}(S \\mid b) + \\mathrm{Var}_b\\,E(S \\mid b)

and ``Var(S | b)`` is exact from the first four cumulants of each row (the family's
:meth:`~bayesglmm.model.families.Family.cumulants`; binomial with ``n`` trials and
probability ``p``: ``npq``, ``npq(1 - 2p)``, ``npq(1 - 6pq)``; Poisson: all equal to the
mean). Writing a level's total ``T = M + D`` (``M = E[T | b]``), its
pair statistic is ``T^2 - T = D^2 + (2M - 1)D + const``, whence

* ``Var(T^2 - T | b) = k4 + 2 k2^2 + (2M - 1)^2 k2 + 2(2M - 1) k3``;
* ``Cov(y_j, T^2 - T | b) = (2M - 1) v_j + k3_j`` for a row ``j`` of the level;
* two levels of different factors sharing the rows ``C`` (a cell of a crossed table),
  totals ``T_a``, ``T_b``: ``Cov = (2M_a - 1)(2M_b - 1) k2_C + 2(M_a + M_b - 1) k3_C +
  k4_C + 2 k2_C^2``; levels of one factor share no rows.

Only the average over ``b`` is numerical, over the same draws as ``u(theta)``
(:mod:`.statistics`). With one factor the levels are independent, so ``V`` is assembled
level by level (exact under Gauss-Hermite quadrature, whose nodes are shared by all levels
and would otherwise correlate them); with several factors the between-draw part is the
weighted covariance of ``E(S | b_s)`` over the common random numbers, the only Monte Carlo
error left (responses are not simulated: their noise would enter ``B* = U'V^{-1}``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .statistics import CHUNK


def _row_cumulants(prob, eta):
    """Mean, variance, third and fourth cumulants of each row given ``b`` (c, n)."""
    return prob.family.cumulants(prob.family.link.linkinv(eta), prob.trials)


def statistics_variance(prob, theta: np.ndarray, draws) -> np.ndarray:
    """``Var_theta(S)`` (n_stats, n_stats) of ``prob.statistics`` by conditioning on ``b``."""
    p, R = prob.p, prob.R
    beta, sd = theta[:p], theta[p:]
    eta0 = prob.X @ beta + prob.offset
    X = prob.X
    starts = np.cumsum([p] + list(prob.n_levels))
    V = np.zeros((prob.n_stats, prob.n_stats))
    pairs = [(r, s) for r in range(R) for s in range(r + 1, R)]
    cells = {}  # (r, s) -> (level of r, level of s, rows -> cells matrix) per shared cell
    for r, s in pairs:
        key = prob.indices[r].astype(np.int64) * prob.n_levels[s] + prob.indices[s]
        uniq, cell = np.unique(key, return_inverse=True)
        C = sp.csr_matrix((np.ones(key.size), (np.arange(key.size), cell)))
        cells[(r, s)] = (uniq // prob.n_levels[s], uniq % prob.n_levels[s], C)
    # between-draw part: one factor level by level (levels independent), else jointly
    if R == 1:
        Z, L = prob.Z[0], prob.n_levels[0]
        f_sum = np.zeros((L, p))
        p_sum = np.zeros(L)
        ff = np.zeros((L, p, p))
        fp = np.zeros((L, p))
        pp = np.zeros(L)
    else:
        e_sum = np.zeros(prob.n_stats)
        ee = np.zeros((prob.n_stats, prob.n_stats))
    for lo in range(0, draws.n, CHUNK):
        hi = min(lo + CHUNK, draws.n)
        w = draws.weights[lo:hi]
        re = [draws.xi[r][lo:hi][:, prob.indices[r]] for r in range(R)]
        eta = eta0[None, :] + sum(sd[r] * re[r] for r in range(R))
        m, v, k3, k4 = _row_cumulants(prob, eta)
        # within-draw part E_b Var(S | b)
        V[:p, :p] += (X * (w @ v)[:, None]).T @ X
        M = []
        for r, Zr in enumerate(prob.Z):
            a, b = starts[r], starts[r + 1]
            Mr, k2r = (Zr.T @ m.T).T, (Zr.T @ v.T).T
            k3r, k4r = (Zr.T @ k3.T).T, (Zr.T @ k4.T).T
            g = 2.0 * Mr - 1.0
            V[a:b, a:b] += np.diag(w @ (k4r + 2 * k2r**2 + g**2 * k2r + 2 * g * k3r))
            coef = w @ (g[:, prob.indices[r]] * v + k3)  # (n,)
            V[:p, a:b] += (Zr.T @ (coef[:, None] * X)).T
            M.append(Mr)
        for r, s in pairs:
            lv, kv, C = cells[(r, s)]
            k2c, k3c, k4c = ((C.T @ k.T).T for k in (v, k3, k4))  # (c, cells)
            ga, gb = 2.0 * M[r][:, lv] - 1.0, 2.0 * M[s][:, kv] - 1.0
            tot = w @ (ga * gb * k2c + (ga + gb) * k3c + k4c + 2 * k2c**2)
            np.add.at(V, (starts[r] + lv, starts[s] + kv), tot)
        # between-draw part Var_b E(S | b)
        if R == 1:
            F = np.stack([(Z.T @ (m[c][:, None] * X)) for c in range(hi - lo)])  # (c, L, p)
            P = M[0] ** 2 - (Z.T @ (prob.c * m * m).T).T  # (c, L)
            f_sum += np.einsum("c,clp->lp", w, F)
            p_sum += w @ P
            ff += np.einsum("c,clp,clq->lpq", w, F, F)
            fp += np.einsum("c,clp,cl->lp", w, F, P)
            pp += w @ (P * P)
        else:
            cond = np.hstack(
                [m @ X]
                + [Mr**2 - (Zr.T @ (prob.c * m * m).T).T for Mr, Zr in zip(M, prob.Z, strict=True)]
            )
            e_sum += w @ cond
            ee += (cond * w[:, None]).T @ cond
    # the within-draw part filled the upper triangle: mirror it
    V = np.triu(V) + np.triu(V, 1).T
    if R == 1:
        a = p
        V[:p, :p] += (ff - f_sum[:, :, None] * f_sum[:, None, :]).sum(0)
        cross = (fp - f_sum * p_sum[:, None]).T
        V[:p, a:] += cross
        V[a:, :p] += cross.T
        V[a:, a:] += np.diag(pp - p_sum**2)
    else:
        V += ee - np.outer(e_sum, e_sum)
    return V
