"""Monte Carlo sample size and stopping rules for MCEM and MCNR.

``booth_hobert`` (Booth & Hobert 1999, section 3)
    After each M-step, the Monte Carlo covariance ``V`` of the new estimate is estimated
    (the sandwich of :func:`.complete.sandwich`). When the previous estimate lies inside the
    ``100 (1 - alpha) %`` confidence ellipsoid ``(psi_old - psi_new)' V^{-1} (...) <=
    chi2_d(1 - alpha)`` the step is swamped by Monte Carlo error, and the sample grows by
    ``m / k``. Stops when ``max_j |psi_new_j - psi_old_j| / (|psi_old_j| + delta1) < tol``
    for three consecutive iterations.
``ascent`` (Caffo, Jank & Jones 2005)
    The change of the Q-function ``Delta Q = Q(psi_new | psi_old) - Q(psi_old | psi_old)``
    is estimated with its asymptotic standard error ``ase``. A step whose lower bound
    ``Delta Q - z_alpha ase`` is negative is not accepted: ``m / k`` draws are appended and
    the M-step is redone. The next sample starts at ``max(m, ase^2 m (z_alpha + z_beta)^2
    / Delta Q^2)``. Stops when the upper bound ``Delta Q + z_gamma ase < tol``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .complete import CompleteData, Sample, sandwich

#: Booth & Hobert: confidence level of the ellipsoid, growth divisor, delta1, consecutive
BH_ALPHA = 0.25
GROWTH_K = 3
DELTA1 = 1e-3
CONSECUTIVE = 3
#: Caffo, Jank & Jones (2005): alpha, beta, gamma of their section 3
ASCENT_ALPHA = 0.25
ASCENT_BETA = 0.25
ASCENT_GAMMA = 0.25
#: default tolerances: relative change (booth_hobert) and Delta Q upper bound (ascent)
TOL = {"booth_hobert": 0.1, "ascent": 1e-3}


def mc_covariance(model: CompleteData, psi: np.ndarray, sample: Sample):
    """Monte Carlo covariance of the M-step's estimate ``psi`` (a root of ``E_w[S(psi)] = 0``)
    and the complete-data standard errors ``sqrt(diag(-E[H_c])^{-1})`` (the scale of the
    stopping rule)."""
    sample = sample.pruned()
    S, H = model.scores(psi, sample)
    D = S - sample.w @ S
    C = sample.sum_cov(D)  # over chain sums for the Gibbs E-step's dependent draws
    scale = np.sqrt(np.clip(np.diag(np.linalg.pinv(-H)), 1e-300, None))
    return sandwich(H, C), scale


def standardized_change(new: np.ndarray, old: np.ndarray, scale: np.ndarray) -> float:
    """``max_j |new_j - old_j| / se_j``: the step in units of the complete-data standard
    errors (Booth & Hobert's ``|old_j| + delta1`` replaced by a statistical scale, so that a
    parameter near zero does not demand a huge Monte Carlo sample)."""
    return float(np.max(np.abs(new - old) / scale))


def inside_ellipsoid(
    delta: np.ndarray, V: np.ndarray, alpha: float = BH_ALPHA
) -> tuple[bool, float]:
    """Whether the step ``delta`` lies in the ``100 (1 - alpha) %`` Monte Carlo ellipsoid.

    Near the fixed point of a fast (parameter-expanded) EM map the step is the difference
    of two independent Monte Carlo errors, so its covariance is ``2 V``, not Booth &
    Hobert's ``V`` (which holds for a slow map, whose step is nearly one error).
    """
    keep = np.diag(V) > 0
    if not keep.any():
        return False, 0.0
    Vk = 2.0 * V[np.ix_(keep, keep)]
    dist = float(delta[keep] @ np.linalg.pinv(Vk) @ delta[keep])
    return dist <= stats.chi2.ppf(1 - alpha, int(keep.sum())), dist


def delta_q(model: CompleteData, gain, old: np.ndarray) -> tuple[float, float]:
    """``Delta Q`` and its asymptotic standard error (Caffo, Jank & Jones 2005, eq. 3.3).

    ``gain = (sample, complete)`` from :func:`.mstep.m_step`: the draws and the complete-data
    log-likelihood per draw at the new estimate.
    """
    sample, complete = gain
    lam = complete - model.complete_loglik(old, sample)
    dq = float(sample.w @ lam)
    ase = float(np.sqrt(sample.sum_cov(lam - dq)))
    return dq, ase


@dataclass
class StopState:
    """Running state of a stopping rule."""

    rule: str
    tol: float
    streak: int = 0
    converged: bool = False
    reason: str = ""

    def relative(self, change: float) -> bool:
        self.streak = self.streak + 1 if change < self.tol else 0
        if self.streak >= CONSECUTIVE:
            self.converged = True
            self.reason = (
                f"change below {self.tol:g} standard errors for {CONSECUTIVE} consecutive "
                "iterations"
            )
        return self.converged

    def ascent(self, dq: float, ase: float) -> bool:
        upper = dq + stats.norm.ppf(1 - ASCENT_GAMMA) * ase
        if upper < self.tol:
            self.converged = True
            self.reason = f"upper bound of the Q-function's increase {upper:.2g} < {self.tol:g}"
        return self.converged


def ascent_lower_ok(dq: float, ase: float) -> bool:
    return dq - stats.norm.ppf(1 - ASCENT_ALPHA) * ase > 0


def ascent_next_size(m: int, dq: float, ase: float) -> int:
    """Caffo, Jank & Jones' start size for the next iteration."""
    z = stats.norm.ppf(1 - ASCENT_ALPHA) + stats.norm.ppf(1 - ASCENT_BETA)
    if dq <= 0:
        return m
    return int(max(m, np.ceil(ase**2 * m * z**2 / dq**2)))
