"""The working quantities of PQL shared by its direct and iterative solvers.

Working response and weights, the GLM fit that starts the iteration, the state the iteration
stops in, and the separation check; :mod:`.pql` (direct linear algebra) and
:mod:`.crossed_pql` (the iterative solver of large crossed designs) both use them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lmm import LMMSolution

#: linear predictors beyond this (logit/probit/cloglog scale) mean fitted probabilities
#: numerically 0 or 1: the fixed effects are drifting to infinity (separation)
ETA_SEPARATION = 30.0
#: iterations of the GLM fit that starts PQL (R's glm.control maxit is 25)
GLM_MAX_ITER = 25
#: largest |theta| entry reused as the start of the next working fit
WARM_START_MAX = 100.0
GLM_TOL = 1e-10


def _working_parts(design, alpha: float | None):
    """Response on the fitting scale (proportions for binomial) and prior weights."""
    fam = design.family
    if fam.name == "binomial":
        n = design.trials
        return design.y / n, n.astype(float)
    return design.y.astype(float), np.ones(design.n)


def _variance(design, mu: np.ndarray, alpha: float | None) -> np.ndarray:
    return design.family.variance(mu, alpha if alpha is not None else 1.0)


def _mustart(design, y: np.ndarray, pw: np.ndarray) -> np.ndarray:
    """R's ``family$initialize`` starting means."""
    name = design.family.name
    if name == "binomial":
        return (pw * y + 0.5) / (pw + 1.0)
    if name in ("poisson", "negative_binomial"):
        return y + 0.1
    floor = 0.1 * max(float(np.mean(np.abs(y))), 1e-8)
    return np.where(y > 0, y, floor) if design.family.link.name == "log" else y


def working_response(design, eta, y, pw, alpha=None) -> tuple[np.ndarray, np.ndarray]:
    """Working response ``z`` (offset removed) and weights ``w`` at ``eta``."""
    link = design.family.link
    mu = link.linkinv(eta)
    mu_eta = link.mu_eta(eta)
    z = eta - design.offset + (y - mu) / mu_eta
    w = pw * mu_eta**2 / _variance(design, mu, alpha)
    return z, w


def glm_start(design, y, pw, alpha=None) -> tuple[np.ndarray, dict]:
    """Linear predictor of the GLM without random effects, fitted by IRLS (``glm``)."""
    link = design.family.link
    X = design.X
    mu = _mustart(design, y, pw)
    eta = link.linkfun(mu)
    iterations, change = 0, np.inf
    while iterations < GLM_MAX_ITER and change >= GLM_TOL:
        z, w = working_response(design, eta, y, pw, alpha)
        sw = np.sqrt(w)
        beta = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)[0]
        eta_new = X @ beta + design.offset
        change = _relative_change(eta_new, eta)
        eta = eta_new
        iterations += 1
    return eta, {"iterations": iterations, "converged": bool(change < GLM_TOL)}


def _relative_change(new: np.ndarray, old: np.ndarray) -> float:
    return float(np.linalg.norm(new - old) / max(np.linalg.norm(new), 1e-300))


@dataclass
class PQLState:
    """Where the PQL iteration stopped.

    Attributes
    ----------
    solution : LMMSolution
        The last working linear mixed model.
    eta : ndarray
        Its linear predictor, offset included.
    history : list of float
        Relative change of ``eta`` at each iteration.
    converged : bool
    separation : str or None
        Why the iteration stopped early on fitted probabilities of 0 or 1.
    glm_start : dict
        Iterations, convergence and seconds of the GLM that started the iteration.
    """

    solution: LMMSolution
    eta: np.ndarray
    history: list
    converged: bool
    separation: str | None
    glm_start: dict


def _separated(design, eta: np.ndarray) -> np.ndarray:
    """Rows whose fitted probability is numerically 0 or 1 (binomial links)."""
    if design.family.name != "binomial" or design.family.link.name == "log":
        return np.zeros(eta.shape, dtype=bool)
    return np.abs(eta) > ETA_SEPARATION


def _separation_message(design, eta: np.ndarray) -> str | None:
    bad = _separated(design, eta)
    if not np.any(bad):
        return None
    rows = design.row_labels[np.flatnonzero(bad)]
    shown = ", ".join(map(str, rows[:8])) + (" ..." if len(rows) > 8 else "")
    return (
        f"PQL stopped: fitted probabilities numerically 0 or 1 at {int(bad.sum())} row(s) "
        f"({shown}), |eta| > {ETA_SEPARATION:g}: complete separation by the fixed effects "
        "(or a random effect); the estimates drift to infinity and are not meaningful"
    )


def final_state(design, sol, eta, history, converged: bool, glm_info: dict) -> PQLState:
    """The state the PQL iteration stopped in; fitted 0/1 probabilities void convergence."""
    separation = _separation_message(design, eta)
    return PQLState(
        solution=sol,
        eta=eta,
        history=history,
        converged=converged and separation is None,
        separation=separation,
        glm_start=glm_info,
    )
