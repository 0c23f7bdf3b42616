"""Penalized quasi-likelihood (Breslow & Clayton 1993), as ``MASS::glmmPQL`` computes it.

Around the current linear predictor ``eta`` (offset included) PQL forms the working response
and weights of iteratively reweighted least squares,

.. math::

    z_i = \\eta_i - o_i + (y_i - \\mu_i)\\,\\frac{d\\eta}{d\\mu}, \\qquad
    w_i = \\frac{n_i\\,(d\\mu/d\\eta)^2}{V(\\mu_i)},

(binomial data on the proportion scale ``y_i / n_i`` with prior weights ``n_i``, as
``glm`` and ``glmmPQL`` use them), fits the weighted linear mixed model
``z = X beta + Z b + e``, ``e ~ N(0, phi W^{-1})`` by REML or ML
(:mod:`bayesglmm.frequentist.lmm`), and repeats with ``eta = X beta + Z b + o`` until
``||eta_new - eta|| / ||eta_new||`` falls below ``tol``. The start is the GLM without
random effects, as in ``glmmPQL``.

With ``dispersion="fixed"`` the residual variance ``phi`` of the working model is 1
(Breslow & Clayton). With ``dispersion="estimated"`` it is estimated with the other
variance parameters, which is what ``glmmPQL`` does (it calls ``nlme::lme`` with
``weights = varFixed(~ 1/w)`` and ``method = "ML"``); the variance components are then
reported on the absolute scale, ``phi`` times the relative ones, as ``VarCorr`` does, and
``phi`` is the reported dispersion. ``glmmPQL`` is reproduced by
``fit_pql(model, reml=False, dispersion="estimated", tol=1e-3, max_iter=10)``: its stopping
rule ``sum((eta - etaold)^2) < 1e-6 * sum(eta^2)`` is a relative change below 1e-3, and it
stops after ``niter = 10`` iterations without a word when the iteration has not converged.

The REML working model with the dispersion fixed maximizes the restricted likelihood with
``sigma = 1``. ``nlme::lme(method = "REML", control = lmeControl(sigma = 1))`` (nlme 3.1)
optimizes ``-1/2 (log|L|^2 + log|R_X|^2 + r^2) + (p/2) log r^2 - r/2`` instead (traced in
its ``logLik.reStruct``), so PQL loops built on it give other REML values (salamander
``var(Female)`` 0.752 there, 0.718 here); with ML, or with the dispersion estimated, the two
agree.

PQL maximizes no likelihood, so ``loglik`` is None. Its downward bias of the variance
components (and, with them, of the fixed effects) for binary data and small clusters is the
method's own and is left visible.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .._warn import warn
from ..errors import MethodError
from ..options import resolve_options, tqdm_progress
from ..result import FitResult, build_result, parameter_rows, wald_table
from . import blas_threads as blas_limit
from .covariance import CovarianceFactor
from .lmm import (
    LMMProblem,
    LMMSolution,
    blas_threads,
    check_random_terms,
    fit_lmm,
    lmm_data,
    optimizer_messages,
    random_effects_frames,
    variance_components,
)

#: linear predictors beyond this (logit/probit/cloglog scale) mean fitted probabilities
#: numerically 0 or 1: the fixed effects are drifting to infinity (separation)
ETA_SEPARATION = 30.0
#: iterations of the GLM fit that starts PQL (R's glm.control maxit is 25)
GLM_MAX_ITER = 25
#: largest |theta| entry reused as the start of the next working fit
WARM_START_MAX = 100.0
GLM_TOL = 1e-10


class PQLConvergenceWarning(UserWarning):
    """The PQL iteration stopped before the linear predictor settled."""


class PQLWarning(UserWarning):
    """PQL was asked for something it redirects (a Gaussian LMM) or finds degenerate."""


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


def _check_options(model, reml, dispersion, max_iter, tol, alpha) -> None:
    if not isinstance(reml, bool | np.bool_):
        raise MethodError(f"reml must be True or False, got {reml!r}")
    if dispersion not in ("fixed", "estimated"):
        raise MethodError(
            f"dispersion must be 'fixed' (at 1, Breslow & Clayton) or 'estimated' "
            f"(as MASS::glmmPQL), got {dispersion!r}"
        )
    if not isinstance(max_iter, int | np.integer) or max_iter < 1:
        raise MethodError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not (isinstance(tol, float | int) and tol > 0):
        raise MethodError(f"tol must be a positive number, got {tol!r}")
    fam = model.design.family
    if fam.name == "negative_binomial" and (alpha is None or not alpha > 0):
        raise MethodError(
            "PQL for the negative binomial family needs its shape: pass alpha=... (as "
            "glmmPQL(family = negative.binomial(theta)) takes theta)"
        )
    if fam.name == "gaussian" and dispersion == "fixed":
        raise MethodError(
            "a Gaussian model has a free residual variance: use dispersion='estimated'"
        )


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


def pql_iterations(
    design,
    cf: CovarianceFactor,
    reml: bool,
    dispersion: str,
    max_iter: int,
    tol: float,
    alpha: float | None = None,
    progressbar: bool | None = False,
) -> PQLState:
    """Iterate working response, weights and working LMM fit until ``eta`` settles."""
    t0 = time.perf_counter()
    y, pw = _working_parts(design, alpha)
    eta, glm_info = glm_start(design, y, pw, alpha)
    glm_info["seconds"] = time.perf_counter() - t0
    sigma = 1.0 if dispersion == "fixed" else None
    Z = design.Z
    theta = None
    history: list[float] = []
    converged = False
    with tqdm(total=max_iter, desc="PQL", leave=False, **tqdm_progress(progressbar)) as bar:
        for _ in range(max_iter):
            z, w = working_response(design, eta, y, pw, alpha)
            problem = LMMProblem(lmm_data(z, design.X, Z, w, design.random), cf, reml, sigma)
            sol = problem.optimize(theta)
            # warm start, unless the last fit ran off towards a zero residual variance
            # (theta = sigma_b / sigma without bound): there the criterion is flat and a
            # start from it stays, where glmmPQL's fresh start finds the interior optimum
            theta = sol.theta if np.all(sol.theta < WARM_START_MAX) else None
            eta_new = sol.fitted + design.offset
            change = _relative_change(eta_new, eta)
            eta = eta_new
            history.append(change)
            bar.set_postfix(change=f"{change:.2e}", refresh=False)  # refresh: no delay
            bar.update(1)
            if not np.all(np.isfinite(eta)):
                raise MethodError("the PQL iteration diverged (non-finite linear predictor)")
            if change < tol:
                converged = True
                break
            if _separated(design, eta).any():
                break  # the estimates drift to infinity: the caller says so
    separation = _separation_message(design, eta)
    return PQLState(
        solution=sol,
        eta=eta,
        history=history,
        converged=converged and separation is None,
        separation=separation,
        glm_start=glm_info,
    )


def fit_pql(
    model,
    reml: bool = True,
    dispersion: str = "fixed",
    max_iter: int = 100,
    tol: float = 1e-6,
    alpha: float | None = None,
    progressbar: bool | None = None,
    threads: int | None = None,
    **unknown,
) -> FitResult:
    """Fit a GLMM by penalized quasi-likelihood.

    Parameters
    ----------
    model : GLMM
    reml : bool
        REML (default) or ML for the working linear mixed model. ``glmmPQL`` uses ML.
    dispersion : {"fixed", "estimated"}
        Residual variance of the working model held at 1 (Breslow & Clayton 1993) or
        estimated (``glmmPQL``).
    max_iter : int
        Most PQL iterations (working model fits).
    tol : float
        Convergence when the relative change of the linear predictor,
        ``||eta_new - eta|| / ||eta_new||``, is below ``tol``.
    alpha : float, optional
        Shape of the negative binomial family (required there; held fixed).
    progressbar : bool or None
        None (default): a tqdm bar only once the iterations have run a second (so never for
        a fit that takes a tenth of one); True: from the start; False: never.
    threads : int or None
        BLAS threads; None (default): one for small dense blocks, the BLAS default else.

    Returns
    -------
    FitResult
        ``fixed_effects`` and ``fixed_effects_se`` of the final working model (for an ML
        working model with estimated dispersion the standard errors carry
        ``summary.lme``'s ``sqrt(n / (n - p))`` adjustment, as ``glmmPQL``'s summary),
        variance components on the absolute scale, ``dispersion["dispersion"]`` when it
        is estimated, ``loglik`` None, BLUPs in ``random_effects``.

    Warns
    -----
    PQLConvergenceWarning
        When ``max_iter`` iterations end with the relative change above ``tol``.
    """
    options = resolve_options("pql", locals())
    d = model.design
    fam = d.family
    if fam.name == "gaussian" and fam.link.name == "identity":
        warn(
            "PQL on a Gaussian model with the identity link is the linear mixed model "
            f"itself (the working response is y): fitting method='lmm' with reml={reml}",
            PQLWarning,
        )
        return fit_lmm(model, reml=reml, progressbar=progressbar, threads=threads)
    _check_options(model, reml, dispersion, max_iter, tol, alpha)
    check_random_terms(d, "pql")
    t0 = time.perf_counter()
    cf = CovarianceFactor(d)
    with blas_threads(d) if threads is None else blas_limit(threads):
        state = pql_iterations(d, cf, reml, dispersion, max_iter, tol, alpha, progressbar)
    sol = state.solution
    said: list[str] = []
    if state.separation:
        said.append(state.separation)
        warn(state.separation, PQLWarning)
    elif not state.converged:
        hint = (
            " With dispersion='estimated' the residual and random-effect variances of the "
            "working model can trade off and the iteration oscillates; dispersion='fixed' "
            "is the Breslow-Clayton PQL."
            if dispersion == "estimated"
            else ""
        )
        said.append(
            f"PQL did not converge in {len(state.history)} iterations: the last relative "
            f"change of the linear predictor was {state.history[-1]:.3g} (tol {tol:g}); the "
            f"estimates are those of the last iteration.{hint}"
        )
        warn(said[-1], PQLConvergenceWarning)
    t2 = time.perf_counter()

    se = np.sqrt(np.diag(sol.cov_beta))
    if not reml and dispersion == "estimated":
        se = se * np.sqrt(d.n / (d.n - d.p))  # nlme's summary.lme(adjustSigma = TRUE)
    var, cor = variance_components(cf, sol)
    disp = pd.Series(
        {"dispersion": sol.sigma2} if dispersion == "estimated" else {},
        name="dispersion",
        dtype=float,
    )
    table = pd.concat([wald_table(d.fixed_names, sol.beta, se), parameter_rows(var, cor, disp)])
    messages = optimizer_messages(sol.optimizer)
    if state.separation:
        messages.insert(0, state.separation)
    elif not state.converged:
        messages.insert(0, f"PQL did not converge in {len(state.history)} iterations")
    return build_result(
        method="pql",
        kind="quasi_likelihood",
        design=d,
        table=table,
        converged=state.converged and sol.optimizer["success"],
        n_params=d.p + cf.n_theta + (dispersion == "estimated"),
        timing={
            "glm_start": state.glm_start["seconds"],
            "iterations": t2 - t0 - state.glm_start["seconds"],
            "total": time.perf_counter() - t0,
        },
        loglik=None,
        random_effects=random_effects_frames(d, sol),
        messages=messages,
        iterations=len(state.history),
        singular=bool(sol.optimizer["singular"]),
        warnings=said,
        convergence_details={
            "relative_change": state.history[-1],
            "history": state.history,
            "tol": tol,
            "glm_start": state.glm_start,
            "working_lmm": sol.optimizer,
            "separation": state.separation,
        },
        options=options,
        theta=sol.theta,
        theta_names=cf.theta_names,
        details={
            "working_model": "REML" if reml else "ML",
            "start": "glm without random effects (as MASS::glmmPQL)",
            "loglik": "PQL maximizes no likelihood: loglik is None (glmmPQL reports NA)",
            "vcov": (np.outer(se, se) * _correlation(sol.cov_beta)).tolist(),
            "vcov_names": list(d.fixed_names),
        },
    )


def _correlation(cov: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)


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
