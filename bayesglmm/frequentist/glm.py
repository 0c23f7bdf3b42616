"""The GLM without random effects, fitted by IRLS: the start of the Laplace, AGQ, GEE, PQL
and estimating-equation fits and of the compiled NUTS chains.

One loop (:func:`fit_glm`) from R's starting means (``family$initialize``), every piece
taken from the family (:mod:`bayesglmm.model.families`). A step can be written two ways,
the same step in exact arithmetic:

- ``"scoring"``: regress ``eta - offset + s / W`` on ``X`` with weights ``W``, the score
  ``s`` and Fisher weight ``W`` of the response (successes of ``n`` trials) at ``eta``;
  stop when no coefficient moves by ``tol`` (1e-8). The Laplace, AGQ and MBP fits start
  here.
- ``"working"``: R's ``glm.fit``, regress the working response ``eta - offset + (y/n - mu)
  / mu_eta`` (:func:`working_response`, also PQL's working model) with weights
  ``n mu_eta^2 / V(mu)``; stop when ``eta`` changes by less than ``tol`` (1e-10)
  relative. PQL, GEE, the estimating equations and the NUTS start use it.

The two round differently in the last digits, and the fits that start from them carry that
difference: a Laplace fit's Hessian-based standard errors by about 1e-7, a NUTS chain's
draws by their Monte Carlo error. Each caller keeps the form its results were computed with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.families import Family

#: iterations of the fit (R's glm.control maxit is 25)
MAX_ITER = 25
#: default tolerance of each form (see the module docstring)
TOL = {"scoring": 1e-8, "working": 1e-10}


@dataclass
class GLMFit:
    """The GLM fit: coefficients, linear predictor (offset included) and how it stopped."""

    beta: np.ndarray
    eta: np.ndarray
    iterations: int
    converged: bool


def working_response(
    family: Family,
    eta: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    offset: np.ndarray,
    dispersion: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """R's working response ``z = eta - offset + (y - mu) / mu_eta`` and working weights
    ``w = weights mu_eta^2 / V(mu)`` at ``eta`` (PQL's working model).

    ``y`` and ``weights`` are on the family's fitting scale
    (:meth:`~bayesglmm.model.families.Family.fitting_scale`); ``dispersion`` enters the
    variance function (the negative-binomial ``alpha``; 1 when None).
    """
    link = family.link
    mu = link.linkinv(eta)
    mu_eta = link.mu_eta(eta)
    z = eta - offset + (y - mu) / mu_eta
    w = weights * mu_eta**2 / family.variance(mu, dispersion if dispersion is not None else 1.0)
    return z, w


def relative_change(new: np.ndarray, old: np.ndarray) -> float:
    """``|new - old| / |new|`` (Euclidean norms)."""
    return float(np.linalg.norm(new - old) / max(np.linalg.norm(new), 1e-300))


def fit_glm(
    family: Family,
    X: np.ndarray,
    y: np.ndarray,
    trials: np.ndarray | None,
    offset: np.ndarray,
    dispersion: float = 1.0,
    form: str = "working",
    max_iter: int = MAX_ITER,
    tol: float | None = None,
    weights: np.ndarray | None = None,
) -> GLMFit:
    """Fit the GLM by iteratively reweighted least squares.

    Parameters
    ----------
    family : Family
    X : ndarray (n, p)
    y, trials : ndarray (n,)
        Response (successes) and binomial trials (None for other families).
    offset : ndarray (n,)
    dispersion : float
        Passed to the family (the negative-binomial ``alpha``; a Gaussian ``sigma`` does
        not change the estimate).
    form : {"working", "scoring"}
        How a step is written and when the fit stops (module docstring).
    max_iter : int
        At most this many steps. A step whose coefficients are not finite ends the fit at
        the previous one.
    tol : float, optional
        The form's stopping tolerance (:data:`TOL` by default).
    weights : ndarray (n,), optional
        Prior weights (R's ``glm(weights=)``): they multiply the score and the working
        weights (:meth:`~bayesglmm.model.families.Family.weighted`).
    """
    if form not in TOL:
        raise ValueError(f"form must be one of {', '.join(TOL)}, got {form!r}")
    tol = TOL[form] if tol is None else tol
    eta = family.link.linkfun(family.mustart(y, trials))
    if form == "working":
        yw, fit_weights = family.fitting_scale(y, trials)
        if weights is not None:
            fit_weights = fit_weights * weights
    beta = np.zeros(X.shape[1])
    iterations, converged = 0, False
    for _ in range(max_iter):
        if form == "scoring":
            tr = family.eta_terms(y, eta, trials, dispersion, weights=weights)
            w = tr.W
            z = eta - offset + tr.score / np.maximum(w, 1e-300)
        else:
            z, w = working_response(family, eta, yw, fit_weights, offset, dispersion)
        sw = np.sqrt(w)
        new = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)[0]
        if not np.all(np.isfinite(new)):
            break
        eta_new = X @ new + offset
        if form == "scoring":
            converged = bool(np.max(np.abs(new - beta)) < tol)
        else:
            converged = relative_change(eta_new, eta) < tol
        beta, eta = new, eta_new
        iterations += 1
        if converged:
            break
    return GLMFit(beta=beta, eta=eta, iterations=iterations, converged=converged)


def coefficient_covariance(
    family: Family,
    X: np.ndarray,
    fit: GLMFit,
    y: np.ndarray,
    trials: np.ndarray | None,
    offset: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Covariance of the fit's coefficients, ``phi (X' W X)^{-1}`` with the working weights
    at the fit (times the prior ``weights``); ``phi`` is Pearson's estimate for families
    with a free scale, else 1."""
    yf, fit_weights = family.fitting_scale(y, trials)
    if weights is not None:
        fit_weights = fit_weights * weights
    z, w = working_response(family, fit.eta, yf, fit_weights, offset)
    phi = 1.0
    if family.scale_free:
        n, p = X.shape
        phi = float(np.sum(w * (z - (fit.eta - offset)) ** 2) / max(n - p, 1))
    return np.linalg.pinv(X.T @ (w[:, None] * X)) * phi


def fit_glm_design(design, dispersion: float = 1.0, **kwargs) -> GLMFit:
    """:func:`fit_glm` on a :class:`~bayesglmm.model.design.Design`'s response, ``X`` and
    prior weights."""
    kwargs.setdefault("weights", getattr(design, "weights", None))
    return fit_glm(
        design.family, design.X, design.y, design.trials, design.offset, dispersion, **kwargs
    )
