"""The working quantities of PQL shared by its direct and iterative solvers.

Working response and weights, the GLM fit that starts the iteration, the state the iteration
stops in, and the separation check; :mod:`.pql` (direct linear algebra) and
:mod:`.crossed_pql` (the iterative solver of large crossed designs) both use them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import glm
from .lmm import LMMSolution

#: linear predictors beyond this (logit/probit/cloglog scale) mean fitted probabilities
#: numerically 0 or 1: the fixed effects are drifting to infinity (separation)
ETA_SEPARATION = 30.0
#: largest |theta| entry reused as the start of the next working fit
WARM_START_MAX = 100.0
_relative_change = glm.relative_change


def _working_parts(design, alpha: float | None):
    """Response on the fitting scale (proportions for binomial) and prior weights (the
    trials times the design's own prior weights, :attr:`Design.weights`, as ``glm``)."""
    y, pw = design.family.fitting_scale(design.y, design.trials)
    weights = getattr(design, "weights", None)
    return (y, pw) if weights is None else (y, pw * weights)


def working_response(design, eta, y, pw, alpha=None) -> tuple[np.ndarray, np.ndarray]:
    """Working response ``z`` (offset removed) and weights ``w`` at ``eta``."""
    return glm.working_response(design.family, eta, y, pw, design.offset, alpha)


def glm_start(design, alpha: float | None = None) -> tuple[np.ndarray, dict]:
    """Linear predictor of the GLM without random effects (:func:`.glm.fit_glm`), and its
    iterations and convergence."""
    fit = glm.fit_glm_design(design, 1.0 if alpha is None else alpha)
    return fit.eta, {"iterations": fit.iterations, "converged": fit.converged}


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
