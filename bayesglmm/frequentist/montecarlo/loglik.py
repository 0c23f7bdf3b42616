"""The log-likelihood at a Monte Carlo estimate, by importance sampling, with its Monte Carlo
standard error.

One importance sample of the whole random-effect vector (Booth & Hobert 1999: a multivariate
t at the Laplace mode) degenerates as the number of effects grows: on the 523 litters of
``mouse_litters`` 5000 joint draws have an effective size of about 28, and ``log`` of their
mean weight is 1.2 units below the exact log-likelihood while its delta-method standard
error claims 0.19 (the mean of a heavy-tailed weight is dominated by draws that were not
made). With one grouping factor the likelihood is a product over its levels,

.. math::

    \\log L(\\psi) = \\sum_l \\log \\int f(y_l \\mid u_l)\\, \\phi(u_l)\\, du_l ,

and each factor is estimated on its own (:func:`blockwise_loglik`): ``m`` draws per level
from the ``k``-variate t at the level's mode with the level's block of the Laplace curvature.
Each level's relative variance ``v_l = Var(w_l) / (m \\bar w_l^2)`` is small and
well estimated, the standard error is ``sqrt(sum_l v_l)``, and the second-order bias of
``log \\bar w_l`` (``-v_l / 2``) is added back. Designs whose effects do not split by
level (crossed or several terms) keep the joint estimate (:func:`joint_loglik`), with the
same correction (:func:`bias_corrected`) and a standard error widened by its size; its
importance effective size is reported so that a degenerate one is flagged.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from .complete import CompleteData, Sample
from .estep import CHUNK, T_DF, ImportanceSampler, loglik_estimate
from .laplace_mode import LaplaceMode, b_from_u


def loglik_at(model: CompleteData, psi: np.ndarray, rng, draws: int) -> dict:
    """``log L`` at ``psi`` with its Monte Carlo standard error: level by level with one
    grouping factor, jointly otherwise. Returns ``{"loglik", "mcse", "ess", "estimator"}``
    (``ess`` the smallest effective size over the levels, or the joint one)."""
    if len(model.terms) == 1:
        return blockwise_loglik(model, psi, rng, draws)
    return joint_loglik(model, psi, rng, draws)


def joint_loglik(model: CompleteData, psi: np.ndarray, rng, draws: int) -> dict:
    """One importance sample of the whole random-effect vector, in chunks."""
    sampler = ImportanceSampler(model, rng)
    size = max(200, CHUNK // max(model.n, 1))
    logw = []
    for lo in range(0, draws, size):
        logw.append(sampler.draw(psi, min(size, draws - lo)).logw)
    lw = np.concatenate(logw)
    dummy = Sample(np.zeros((lw.size, 0)), np.zeros((lw.size, 0)), np.zeros(lw.size), {}, lw)
    est, se = loglik_estimate(dummy)
    w = np.exp(lw - lw.max())
    ess = float(w.sum() ** 2 / np.sum(w**2))
    est, se = bias_corrected(est, se)
    return {"loglik": est, "mcse": se, "ess": ess, "estimator": "joint importance sampling"}


def bias_corrected(log_mean: float, rel_se: float) -> tuple[float, float]:
    """``log`` of a mean weight corrected for its second-order bias, and its error.

    ``E log w-bar ~ log E w - v / 2`` with ``v = Var(w) / (m w-bar^2)`` the relative
    variance of the mean (``rel_se**2``), so ``v / 2`` is added back. The correction is
    itself estimated from the same draws (and understated when the weights are heavy
    tailed), so the standard error returned is ``sqrt(v) + v / 2``: the sampling error plus
    the size of the correction.
    """
    v = rel_se**2
    return log_mean + 0.5 * v, rel_se + 0.5 * v


def _level_curvature(model: CompleteData, st) -> np.ndarray:
    """Blocks ``A_l' W A_l + I`` (``L x k x k``) of the Laplace curvature, one term."""
    t = model.terms[0]
    A = st.Aval  # (n, k): one slot per column of the term
    H = np.einsum("i,ij,ik->ijk", st.terms.W, A, A)
    Hb = np.zeros((t.n_levels, t.k, t.k))
    np.add.at(Hb, model.slot_level[0], H)
    return Hb + np.eye(t.k)


class LevelProposal:
    """Independent ``k``-variate t draws per level (one term) at the Laplace mode of ``psi``,
    scale the level's block of the Laplace curvature, on the spherical scale ``u``."""

    def __init__(self, model: CompleteData, psi: np.ndarray, df: float = T_DF) -> None:
        t = model.terms[0]
        self.L, self.k, self.df = t.n_levels, t.k, df
        self.theta, st = LaplaceMode(model).at(psi)
        self.chol = np.linalg.cholesky(_level_curvature(model, st))  # H_l = C C'
        self.logdet = 2.0 * np.sum(np.log(np.diagonal(self.chol, axis1=1, axis2=2)), axis=1)
        self.mode = st.u.reshape(self.L, self.k)

    def draw(self, rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        """``(U, log t(U))``: ``(m, L, k)`` draws and their ``(m, L)`` log densities."""
        L, k, df = self.L, self.k, self.df
        Z = rng.standard_normal((m, L, k))
        g = rng.chisquare(df, size=(m, L)) / df
        # u - mode = C'^{-1} z / sqrt(g), so (u - mode)' H (u - mode) = z'z / g
        X = np.linalg.solve(np.swapaxes(self.chol, 1, 2)[None], Z[..., None])[..., 0]
        U = self.mode[None] + X / np.sqrt(g)[..., None]
        log_c = gammaln((df + k) / 2) - gammaln(df / 2) - 0.5 * k * math.log(df * math.pi)
        delta = np.sum(Z**2, axis=2) / g
        return U, log_c + 0.5 * self.logdet - 0.5 * (df + k) * np.log1p(delta / df)


def level_loglik(model: CompleteData, beta: np.ndarray, ZB: np.ndarray) -> np.ndarray:
    """``log f(y_l | b_l)`` per draw and level of the one term: ``(m, L)``."""
    rows = model.row_loglik(model.eta(beta, ZB))
    return np.asarray((model.level_sum[0].T @ rows.T).T)


def blockwise_loglik(
    model: CompleteData, psi: np.ndarray, rng: np.random.Generator, draws: int, df: float = T_DF
) -> dict:
    """``sum_l log mean_d w_{l,d}``: ``draws`` independent t draws per level (one term)."""
    prop = LevelProposal(model, psi, df)
    L, k = prop.L, prop.k
    beta = psi[: model.p]
    size = max(1, CHUNK // max(model.n, 1))
    logw = np.empty((draws, L))
    for lo in range(0, draws, size):
        m = min(size, draws - lo)
        U, log_t = prop.draw(rng, m)
        B = b_from_u(model, prop.theta, U.reshape(m, -1))
        ll = level_loglik(model, beta, model.Zb(B))
        logw[lo : lo + m] = (
            ll - 0.5 * np.sum(U**2, axis=2) - 0.5 * k * math.log(2 * math.pi) - log_t
        )
    est, se, ess = level_sums(logw)
    return {
        "loglik": est,
        "mcse": se,
        "ess": ess,
        "estimator": f"importance sampling level by level ({L} levels)",
    }


def level_sums(logw: np.ndarray) -> tuple[float, float, float]:
    """``(sum_l log mean_d w_{d,l} + sum_l v_l / 2, sqrt(sum_l v_l), min_l ESS_l)`` from
    ``(m, L)`` log weights, ``v_l`` the relative variance of level ``l``'s mean weight."""
    draws = logw.shape[0]
    top = logw.max(axis=0)
    r = np.exp(logw - top)
    mean = r.mean(axis=0)
    rel_var = (
        r.var(axis=0, ddof=1) / (draws * mean**2) if draws > 1 else np.full(r.shape[1], np.inf)
    )
    est = float(np.sum(top + np.log(mean)) + 0.5 * np.sum(rel_var))
    ess = float(np.min(r.sum(axis=0) ** 2 / np.sum(r**2, axis=0)))
    return est, float(math.sqrt(np.sum(rel_var))), ess


__all__ = [
    "LevelProposal",
    "bias_corrected",
    "blockwise_loglik",
    "joint_loglik",
    "level_loglik",
    "loglik_at",
]
