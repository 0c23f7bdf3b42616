"""Simulated maximum likelihood level by level, for one grouping factor.

With one random-effect term the likelihood is a product over the levels, and its simulated
version is

.. math::

    \\log \\hat L_m(\\psi) = \\sum_l \\log \\frac1m \\sum_d
        \\frac{f(y_l \\mid b_{d,l}; \\beta)\\, N(b_{d,l}; 0, \\Sigma(\\theta))}{g_l(b_{d,l})},

``m`` fixed draws per level from the level's t at the Laplace estimate
(:class:`.loglik.LevelProposal`). A joint importance sample of all the effects degenerates
as their number grows (mouse_litters: effective size 1 of 10,000 for 523 litters, and the
optimizer stops on noise); the level-wise sample keeps nearly all its draws. The estimate's
Monte Carlo covariance is ``I^{-1} C I^{-1}`` with ``C = sum_l sum_d w_{d,l}^2 (s_{d,l} -
bar s_l)(s_{d,l} - bar s_l)'`` (per-level complete-data scores, self-normalized weights)
and ``I`` Louis' information at the estimate.
"""

from __future__ import annotations

import numpy as np

from .complete import CompleteData
from .laplace_mode import b_from_u
from .loglik import LevelProposal, level_loglik

#: relative step of the differences in theta
FD_STEP = 1e-6


class LevelObjective:
    """``-log L_m(theta, beta)`` and its gradient over ``x = (theta, beta)``, level-wise."""

    def __init__(self, mc: CompleteData, psi0: np.ndarray, rng, m: int) -> None:
        self.mc, self.m = mc, m
        self.n_theta = mc.cov.n_theta
        self.term = mc.terms[0]
        prop = LevelProposal(mc, psi0)
        U, log_t = prop.draw(rng, m)
        self.L, self.k = prop.L, prop.k
        self.B = b_from_u(mc, prop.theta, U.reshape(m, -1))
        self.ZB = mc.Zb(self.B)
        self.Bl = self.B.reshape(m, self.L, self.k)
        T = self.term.T(prop.theta)
        log_det_T = float(np.sum(np.log(np.abs(np.diag(T)))))  # T lower triangular
        # density of b_l = T u_l: g_b = g_u / |det T|
        self.log_g = log_t - log_det_T
        self.level = mc.slot_level[0]
        self._last = None

    def psi(self, x: np.ndarray) -> np.ndarray:
        theta = x[: self.n_theta]
        return self.mc.join(x[self.n_theta :], [t.covariance(theta) for t in self.mc.terms])

    def prior(self, theta: np.ndarray) -> np.ndarray:
        """``log N(b_{d,l}; 0, Sigma(theta))`` per draw and level (``-inf`` if not PD)."""
        Sig = self.term.covariance(theta)
        k = self.k
        try:
            C = np.linalg.cholesky(Sig)
        except np.linalg.LinAlgError:
            return np.full((self.m, self.L), -np.inf)
        P = np.linalg.inv(Sig)
        logdet = 2.0 * np.sum(np.log(np.diag(C)))
        quad = np.einsum("mli,ij,mlj->ml", self.Bl, P, self.Bl)
        return -0.5 * (k * np.log(2 * np.pi) + logdet) - 0.5 * quad

    def log_weights(self, x: np.ndarray) -> np.ndarray:
        theta, beta = x[: self.n_theta], x[self.n_theta :]
        return level_loglik(self.mc, beta, self.ZB) + self.prior(theta) - self.log_g

    def weights(self, x: np.ndarray) -> np.ndarray:
        """Self-normalized weights per level: ``(m, L)``, columns summing to one."""
        lw = self.log_weights(x)
        w = np.exp(lw - lw.max(axis=0))
        return w / w.sum(axis=0)

    def __call__(self, x: np.ndarray):
        x = np.asarray(x, dtype=float)
        if self._last is not None and np.array_equal(self._last[0], x):
            return self._last[1]  # the optimizer's callback asks again for the same x
        out = self._evaluate(x)
        self._last = (x.copy(), out)
        return out

    def _evaluate(self, x: np.ndarray):
        mc = self.mc
        theta, beta = x[: self.n_theta], x[self.n_theta :]
        ll = level_loglik(mc, beta, self.ZB)
        pr = self.prior(theta)
        if not np.all(np.isfinite(pr)):
            return np.inf, np.zeros_like(x)
        base = ll - self.log_g
        f = _sum_log_mean(base + pr)
        lw = base + pr
        w = np.exp(lw - lw.max(axis=0))
        w /= w.sum(axis=0)
        score, _ = mc.draw_scores(beta, _Unit(self.B, self.ZB))
        g_beta = mc.X.T @ np.sum(w[:, self.level] * score, axis=0)
        g_theta = np.zeros(self.n_theta)
        for j in range(self.n_theta):
            h = FD_STEP * max(1.0, abs(theta[j]))
            tp = theta.copy()
            tp[j] += h
            fp = _sum_log_mean(base + self.prior(tp))
            g_theta[j] = (fp - f) / h
        return -f, -np.concatenate([g_theta, g_beta])

    def score_cov(self, x: np.ndarray) -> np.ndarray:
        """Monte Carlo covariance of the simulated score at ``x`` (see the module docstring)."""
        mc = self.mc
        psi = self.psi(x)
        beta, sigmas = mc.split(psi)
        w = self.weights(x)
        score, _ = mc.draw_scores(beta, _Unit(self.B, self.ZB))
        R = mc.level_sum[0]
        parts = [np.asarray((R.T @ (score * mc.X[:, j]).T).T)[..., None] for j in range(mc.p)]
        P = np.linalg.inv(sigmas[0])
        r, c = mc.pairs[0]
        G = -0.5 * P + 0.5 * np.einsum("ij,mlj,mlk,kn->mlin", P, self.Bl, self.Bl, P)
        parts.append(G[:, :, r, c] * np.where(r == c, 1.0, 2.0))
        S = np.concatenate(parts, axis=2)  # (m, L, d)
        D = S - np.einsum("ml,mld->ld", w, S)[None]
        return np.einsum("ml,mld,mle->de", w**2, D, D)


def _sum_log_mean(lw: np.ndarray) -> float:
    """``sum_l log mean_d exp(lw_{d,l})`` (a lean logsumexp over axis 0)."""
    top = lw.max(axis=0)
    return float(np.sum(np.log(np.mean(np.exp(lw - top), axis=0)) + top))


class _Unit:
    """The minimal sample :meth:`CompleteData.draw_scores` reads (unit weights)."""

    def __init__(self, B: np.ndarray, ZB: np.ndarray) -> None:
        self.B, self.ZB = B, ZB
        self.w = np.full(B.shape[0], 1.0 / B.shape[0])
        self.m = B.shape[0]
