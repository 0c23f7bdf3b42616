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
method's own and is left visible, unless ``bias_correction="lin-breslow"`` asks for the
small-variance correction below.

Bias correction (``bias_correction="lin-breslow"``)
---------------------------------------------------
Breslow & Lin (1995, Biometrika 82, one component) and Lin & Breslow (1996, JASA 91, several
independent components) expand the PQL estimating equations to first order in the variance
components ``theta = (theta_1, ..., theta_c)`` of a canonical-link GLMM
``eta = X beta + sum_j Z_j b_j``, ``b_j ~ N(0, theta_j I)``, and find
``E(theta_PQL) = C theta``: the correction is ``theta_CP = C^{-1} theta_PQL``. The published
text of their correction matrices was not at hand when this was written; the matrices here
are derived along their lines (expansion around ``b = 0``, the fourth cumulant of the
response entering through the variance function's second derivative), and agree with their
two stated properties: a matched-pairs binary design is corrected by a factor 2 at
``p = 1/2`` as ``theta -> 0``, and the factor tends to one as binomial denominators grow.

With ``eta_0 = X beta_PQL + offset`` (the random effects at zero), the variance function
and its derivatives in ``eta`` on the count scale (``v = n p (1 - p)``,
``v' = v (1 - 2p)``, ``v'' = v (1 - 6p(1 - p))`` for the binomial-logit model;
``v = v' = v'' = mu`` for Poisson-log), ``W = diag(v)``, ``B_j = Z_j Z_j'`` and the REML
projection ``P = W - W X (X'WX)^{-1} X'W``:

.. math::

    I_{jk} = \\tfrac12 \\operatorname{tr}(P B_j P B_k) = \\tfrac12 \\|Z_j' P Z_k\\|_F^2,
    \\qquad
    K_{jk} = \\tfrac14 \\sum_i (P B_j P)_{ii}\\, \\frac{v''_i\\,(B_k)_{ii}}{v_i^2},

    C = I_c + I^{-1} K, \\qquad \\theta_{CP} = C^{-1} \\theta_{PQL}.

``I`` is the working (Gaussian) REML information at ``theta = 0`` and ``K theta`` the part
of the expected quadratic form ``e' B_j e`` of the GLM residuals ``e`` that the fourth
cumulant ``v''`` adds under the GLMM (``E[var(y | b)] = v + v'' sum_k theta_k diag(B_k) / 2``),
which the working model misses. For the fixed effects, the random effects shift the mean of
``y`` by ``s = v' * sum_k theta_k diag(B_k) / 2`` to first order, which PQL's equations
``X'(y - mu) = 0`` absorb into ``beta``; the corrected

.. math::

    \\beta_{CP} = \\beta_{PQL} - (X' V^{-1} X)^{-1} X' V^{-1} W^{-1} s(\\theta_{CP}),
    \\qquad V = W^{-1} + \\textstyle\\sum_k \\theta_{CP,k} B_k,

removes the part of that shift the working model's generalized least squares assigns to
``beta`` (``V = W^{-1}`` at ``theta = 0`` gives the first-order term
``(X'WX)^{-1} X' s``). The standard errors stay PQL's, the random effects PQL's BLUPs; the
correction matrix and the uncorrected estimates are in ``details["bias_correction"]``.
It takes binomial-logit and Poisson-log models with ``dispersion="fixed"`` and scalar
random-effect terms (``(1|g)``, ``(0 + x|g)``), Lin & Breslow's setting.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .._warn import warn
from ..errors import MethodError, OptionError
from ..options import tqdm_progress
from ..results.assemble import Delegate, Estimates
from ..results.details import Covariance, QuasiDetails
from ..results.result import parameter_rows, wald_table
from . import blas_threads as blas_limit
from .covariance import CovarianceFactor
from .crossed_pql import crossed_pql_iterations
from .crossed_solver import choose_solver
from .lmm import (
    LMMProblem,
    blas_threads,
    lmm_data,
    optimizer_messages,
    random_effects_frames,
    variance_components,
)
from .pql_working import (  # noqa: F401  (re-exported: the public working-model helpers)
    ETA_SEPARATION,
    WARM_START_MAX,
    PQLState,
    _relative_change,
    _separated,
    _separation_message,
    _working_parts,
    final_state,
    glm_start,
    working_response,
)


class PQLConvergenceWarning(UserWarning):
    """The PQL iteration stopped before the linear predictor settled."""


class PQLWarning(UserWarning):
    """PQL was asked for something it redirects (a Gaussian LMM) or finds degenerate."""


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
    if fam.has_dispersion and not fam.scale_free and (alpha is None or not alpha > 0):
        raise MethodError(
            "PQL for the negative binomial family needs its shape: pass alpha=... (as "
            "glmmPQL(family = negative.binomial(theta)) takes theta)"
        )
    if fam.scale_free and dispersion == "fixed":
        raise MethodError(
            "a Gaussian model has a free residual variance: use dispersion='estimated'"
        )


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
    eta, glm_info = glm_start(design, alpha)
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
    return final_state(design, sol, eta, history, converged, glm_info)


#: the report's title
TITLE = "Generalized linear mixed model fit by penalized quasi-likelihood (PQL)"
#: the report's title of a bias-corrected fit
TITLE_CORRECTED = (
    "Generalized linear mixed model fit by penalized quasi-likelihood (PQL), "
    "bias-corrected (Lin & Breslow)"
)


def fit_pql(
    model,
    *,
    reml: bool,
    dispersion: str,
    max_iter: int,
    tol: float,
    alpha: float | None,
    progressbar: bool | None,
    threads: int | None,
    solver: str,
    random_seed,
    bias_correction: str,
) -> Estimates | Delegate:
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
    solver : {"auto", "direct", "iterative"}
        Linear algebra of the working model, as for ``method="laplace"``: ``"iterative"``
        (two crossed scalar terms, canonical link, ``dispersion="fixed"``) fits the working
        LMM with conjugate gradients and the stochastic log-determinant of
        :mod:`.crossed_factor` (exact gradient of that estimate) in memory linear in rows
        and levels; ``"auto"`` takes it for crossed designs above 1,000 levels in the
        smaller term. The choice is in ``convergence["details"]["solver"]``.
    random_seed : int or None
        Seed of the iterative solver's log-determinant probes; None: a fixed default.
    bias_correction : {"none", "lin-breslow"}
        ``"lin-breslow"``: the variance components and fixed effects corrected for PQL's
        small-variance bias (module docstring; Breslow & Lin 1995, Lin & Breslow 1996);
        the uncorrected estimates and the correction matrix are kept in
        ``details["bias_correction"]``, the report's title says so.

    Returns
    -------
    Estimates or Delegate
        On a Gaussian model with the identity link, the linear mixed model (``method="lmm"``)
        to fit instead. Else ``fixed_effects`` and ``fixed_effects_se`` of the final
        working model (for an ML working model with estimated dispersion the standard
        errors carry ``summary.lme``'s ``sqrt(n / (n - p))`` adjustment, as ``glmmPQL``'s
        summary),
        variance components on the absolute scale, ``dispersion["dispersion"]`` when it
        is estimated, ``loglik`` None, BLUPs in ``random_effects``.

    Warns
    -----
    PQLConvergenceWarning
        When ``max_iter`` iterations end with the relative change above ``tol``.
    """
    d = model.design
    fam = d.family
    if fam.scale_free and fam.link.name == "identity":
        warn(
            "PQL on a Gaussian model with the identity link is the linear mixed model "
            f"itself (the working response is y): fitting method='lmm' with reml={reml}",
            PQLWarning,
        )
        return Delegate("lmm", {"reml": reml, "progressbar": progressbar, "threads": threads})
    _check_options(model, reml, dispersion, max_iter, tol, alpha)
    check_bias_correction(d, bias_correction, dispersion)
    chosen, reason = choose_solver(d, solver)
    if chosen == "iterative" and dispersion != "fixed":
        if solver == "iterative":
            raise OptionError("solver='iterative' needs dispersion='fixed' (Breslow-Clayton)")
        chosen, reason = "direct", "auto: dispersion='estimated' needs the direct path"
    t0 = time.perf_counter()
    cf = CovarianceFactor(d)
    with blas_threads(d) if threads is None else blas_limit(threads):
        if chosen == "iterative":
            state = crossed_pql_iterations(d, cf, reml, max_iter, tol, progressbar, random_seed)
        else:
            state = pql_iterations(d, cf, reml, dispersion, max_iter, tol, alpha, progressbar)
    sol = state.solution
    if state.separation:
        warn(state.separation, PQLWarning)
    elif not state.converged:
        hint = (
            " With dispersion='estimated' the residual and random-effect variances of the "
            "working model can trade off and the iteration oscillates; dispersion='fixed' "
            "is the Breslow-Clayton PQL."
            if dispersion == "estimated"
            else ""
        )
        warn(
            f"PQL did not converge in {len(state.history)} iterations: the last relative "
            f"change of the linear predictor was {state.history[-1]:.3g} (tol {tol:g}); the "
            f"estimates are those of the last iteration.{hint}",
            PQLConvergenceWarning,
        )
    t2 = time.perf_counter()

    se = np.sqrt(np.diag(sol.cov_beta))
    if not reml and dispersion == "estimated":
        se = se * np.sqrt(d.n / (d.n - d.p))  # nlme's summary.lme(adjustSigma = TRUE)
    var, cor = variance_components(cf, sol)
    beta, theta, title, extra = sol.beta, sol.theta, TITLE, {}
    if bias_correction == "lin-breslow":
        beta, var, theta, extra = _corrected(d, cf, sol, var)
        title = TITLE_CORRECTED
        if extra["bias_correction"]["clipped"]:
            warn(
                "the Lin-Breslow correction made the variance component(s) "
                f"{', '.join(extra['bias_correction']['clipped'])} negative; they are set to 0",
                PQLWarning,
            )
    disp = pd.Series(
        {"dispersion": sol.sigma2} if dispersion == "estimated" else {},
        name="dispersion",
        dtype=float,
    )
    table = pd.concat([wald_table(d.fixed_names, beta, se), parameter_rows(var, cor, disp)])
    messages = optimizer_messages(sol.optimizer)
    if state.separation:
        messages.insert(0, state.separation)
    elif not state.converged:
        messages.insert(0, f"PQL did not converge in {len(state.history)} iterations")
    return Estimates(
        kind="quasi_likelihood",
        table=table,
        converged=state.converged and sol.optimizer["success"],
        n_params=d.p + cf.n_theta + (dispersion == "estimated"),
        timing={
            "glm_start": state.glm_start["seconds"],
            "iterations": t2 - t0 - state.glm_start["seconds"],
        },
        loglik=None,
        vcov=Covariance("model", d.fixed_names, np.outer(se, se) * _correlation(sol.cov_beta)),
        random_effects=random_effects_frames(d, sol),
        messages=messages,
        iterations=len(state.history),
        singular=bool(sol.optimizer["singular"]),
        convergence_details={
            "relative_change": state.history[-1],
            "history": state.history,
            "tol": tol,
            "glm_start": state.glm_start,
            "working_lmm": sol.optimizer,
            "separation": state.separation,
            "solver": {"name": chosen, "reason": reason},
        },
        theta=theta,
        theta_names=cf.theta_names,
        details=QuasiDetails(
            title=title,
            extra={
                "working_model": "REML" if reml else "ML",
                "start": "glm without random effects (as MASS::glmmPQL)",
                "loglik": "PQL maximizes no likelihood: loglik is None (glmmPQL reports NA)",
                **extra,
            },
        ),
    )


def _corrected(design, cf, sol, var: pd.Series):
    """Corrected ``beta``, variances, relative ``theta`` and the details' record."""
    out = lin_breslow_correction(design, sol.beta, var.to_numpy(float))
    corrected = pd.Series(out["variances"], index=var.index, name=var.name)
    theta = np.sqrt(out["variances"])  # scalar terms, sigma = 1: theta is the sd
    names = [f"var({k})" for k in var.index]
    record = {
        "method": "lin-breslow",
        "uncorrected": {
            **dict(zip(design.fixed_names, map(float, sol.beta), strict=True)),
            **dict(zip(names, map(float, var.to_numpy(float)), strict=True)),
        },
        "correction_matrix": out["C"].tolist(),
        "beta_shift": out["beta_shift"].tolist(),
        "clipped": out["clipped"],
        "standard_errors": "PQL's (uncorrected) for the fixed effects",
    }
    return out["beta"], corrected, theta, {"bias_correction": record}


#: values of ``bias_correction``
BIAS_CORRECTIONS = ("none", "lin-breslow")
#: the canonical links the correction is derived for, by family
_CANONICAL = {"binomial": "logit", "poisson": "log"}


def check_bias_correction(design, bias_correction: str, dispersion: str) -> None:
    """One :class:`MethodError` when ``bias_correction`` cannot apply to ``design``."""
    if bias_correction not in BIAS_CORRECTIONS:
        raise MethodError(
            f"bias_correction must be one of {', '.join(map(repr, BIAS_CORRECTIONS))}, got "
            f"{bias_correction!r}"
        )
    if bias_correction == "none":
        return
    fam = design.family
    if _CANONICAL.get(fam.name) != fam.link.name:
        raise MethodError(
            "bias_correction='lin-breslow' is derived for the canonical links (binomial-logit, "
            f"Poisson-log); this model is {fam.name}/{fam.link.name}"
        )
    if dispersion != "fixed":
        raise MethodError(
            "bias_correction='lin-breslow' needs dispersion='fixed' (the GLMM's own variance)"
        )
    if getattr(design, "weights", None) is not None:
        raise MethodError(
            "bias_correction='lin-breslow' is derived without prior weights; this model has "
            f"weights={design.weights_name}: use bias_correction='none'"
        )
    for t in design.random:
        if t.n_columns != 1:
            raise MethodError(
                "bias_correction='lin-breslow' takes independent scalar random-effect terms "
                f"((1|g), (0 + x|g)); {t.name} has {t.n_columns} correlated columns"
            )


def _term_matrix(design, t):
    import scipy.sparse as sp

    x = np.asarray(t.X[:, 0], dtype=float)
    return sp.csc_matrix((x, (np.arange(design.n), t.index)), shape=(design.n, t.n_levels))


def lin_breslow_correction(design, beta: np.ndarray, variances: np.ndarray) -> dict:
    """Bias-corrected variance components and fixed effects from PQL's (module docstring).

    Parameters
    ----------
    design : Design
        A binomial-logit or Poisson-log design with scalar random-effect terms.
    beta : ndarray
        PQL's fixed effects.
    variances : ndarray
        PQL's variance components, one per random-effect term.

    Returns
    -------
    dict
        ``variances`` and ``beta`` (corrected), ``C`` (the correction matrix), ``I`` and
        ``K`` (its parts), ``beta_shift`` (what was subtracted from ``beta``) and
        ``clipped`` (names of components whose corrected value was negative, set to 0).
    """
    X = np.asarray(design.X, dtype=float)
    eta = X @ beta + design.offset
    fam = design.family.name
    if fam == "binomial":
        n = np.asarray(design.trials, dtype=float)
        p = 1.0 / (1.0 + np.exp(-eta))
        v = n * p * (1 - p)
        v1 = v * (1 - 2 * p)
        v2 = v * (1 - 6 * p * (1 - p))
    else:  # poisson, log link
        v = v1 = v2 = np.exp(eta)
    Zs = [_term_matrix(design, t) for t in design.random]
    dB = [np.asarray(Z.multiply(Z).sum(axis=1)).ravel() for Z in Zs]  # diag(Z_j Z_j')
    WX = v[:, None] * X
    XtWX_inv = np.linalg.inv(X.T @ WX)
    # P Z_j = W Z_j - W X (X'WX)^{-1} X' W Z_j, dense n x q_j
    PZ = [np.asarray(Z.multiply(v[:, None]).todense()) - WX @ (XtWX_inv @ (WX.T @ Z)) for Z in Zs]
    c = len(Zs)
    info = np.empty((c, c))
    K = np.empty((c, c))
    for j in range(c):
        h = np.sum(PZ[j] ** 2, axis=1)  # (P B_j P)_ii
        for k in range(c):
            G = Zs[j].T @ PZ[k]  # Z_j' P Z_k
            info[j, k] = 0.5 * float(np.sum(np.asarray(G) ** 2))
            K[j, k] = 0.25 * float(np.sum(h * v2 * dB[k] / v**2))
    C = np.eye(c) + np.linalg.solve(info, K)
    theta = np.linalg.solve(C, np.asarray(variances, dtype=float))
    clipped = [t.name for t, th in zip(design.random, theta, strict=True) if th < 0]
    theta = np.maximum(theta, 0.0)
    s = 0.5 * v1 * sum(th * d for th, d in zip(theta, dB, strict=True))
    # GLS of the working model: (X'V^{-1}X)^{-1} X'V^{-1} W^{-1} s with V = W^{-1} + sum B_k
    Vinv_X, Vinv_r = _woodbury(v, Zs, theta, X), _woodbury(v, Zs, theta, (s / v)[:, None])
    shift = np.linalg.solve(X.T @ Vinv_X, X.T @ Vinv_r[:, 0])
    return {
        "variances": theta,
        "beta": np.asarray(beta, dtype=float) - shift,
        "beta_shift": shift,
        "C": C,
        "I": info,
        "K": K,
        "clipped": clipped,
    }


def _woodbury(w: np.ndarray, Zs: list, theta: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``V^{-1} R`` for ``V = W^{-1} + sum_k theta_k Z_k Z_k'`` (Woodbury, dense in the
    random effects)."""
    import scipy.sparse as sp

    keep = [k for k, th in enumerate(theta) if th > 0]
    WR = w[:, None] * R
    if not keep:
        return WR
    Z = sp.hstack([Zs[k] * np.sqrt(theta[k]) for k in keep]).tocsc()
    WZ = np.asarray(Z.multiply(w[:, None]).todense())
    M = np.eye(Z.shape[1]) + np.asarray(Z.T @ WZ)
    return WR - WZ @ np.linalg.solve(M, WZ.T @ R)


def _correlation(cov: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)
