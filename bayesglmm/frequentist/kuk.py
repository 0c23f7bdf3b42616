"""Kuk's (1995) iterative simulation-based bias correction of a GLMM estimator.

Kuk (1995, JRSS-B 57, "Asymptotically unbiased estimation in generalized linear models with
random effects") corrects a biased but consistent-looking estimator ``T`` (here PQL or the
Laplace approximation, ``base``) by solving ``E_theta T = T(y)`` for ``theta`` with the
iteration

.. math::

    \\theta_{k+1} = \\theta_k + \\bigl(\\hat\\theta - \\bar T(\\theta_k)\\bigr),
    \\qquad \\theta_0 = \\hat\\theta = T(y),

where ``bar T(theta_k)`` is the mean of ``T`` over ``n_sim`` data sets simulated from the
model at ``theta_k`` (fixed effects and variance components; a variance driven below zero is
set to zero). The data sets of every iteration use the same seeds (common random numbers,
as Kuk recommends), so that ``bar T`` is a smooth function of ``theta`` and the iteration
settles; it stops when the largest change, relative to ``max(1, |theta|)``, is below ``tol``.

This module holds the pieces that run on a study worker (:func:`simulate_and_fit`) and the
arithmetic of the iteration and of the result (:func:`kuk_step`, :func:`kuk_estimates`); the
fitting function, which runs the simulations on :func:`bayesglmm.analysis.study.run_study`,
is :func:`bayesglmm.analysis.kuk.fit_kuk` (the engines layer does not import the study
runner).

Standard errors are the spread of ``T`` over the last iteration's simulations (a parametric
bootstrap of the base estimator at the corrected values; it ignores the slope of ``E T`` in
``theta``, so for PQL's shrunken variance components it is on the small side), and the Monte
Carlo error of each estimate is that spread over ``sqrt(n_sim)`` (``table["mcse"]``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import MethodError
from ..results.assemble import Estimates
from ..results.details import Covariance, QuasiDetails
from ..results.result import wald_table

#: the estimators Kuk's iteration can correct
BASES = ("pql", "laplace")

#: the report's title
TITLE = "Generalized linear mixed model fit by Kuk's simulation-based bias correction"
_BASE_NAMES = {"pql": "PQL", "laplace": "the Laplace approximation"}


def check_kuk(design, base: str) -> None:
    """One :class:`MethodError` when Kuk's correction of ``base`` cannot apply."""
    if base not in BASES:
        raise MethodError(f"base must be one of {', '.join(map(repr, BASES))}, got {base!r}")
    if design.family.has_dispersion:
        raise MethodError(
            "method 'kuk' simulates from the fitted fixed effects and variance components; "
            f"the {design.family.name} family's dispersion is not among them"
        )


def parameter_names(design) -> list[str]:
    """Fixed effects, then ``var(component)``: the vector the iteration corrects."""
    return [*design.fixed_names, *(f"var({c})" for c in design.component_names)]


def parameter_vector(table: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The estimates of ``names`` in a fit's table."""
    return table.loc[names, "estimate"].to_numpy(dtype=float)


def truth_of(design, theta: np.ndarray) -> dict:
    """``fixed_effects`` and ``variance_components`` of ``theta`` for :func:`simulate`."""
    p = len(design.fixed_names)
    return {
        "fixed_effects": dict(zip(design.fixed_names, map(float, theta[:p]), strict=True)),
        "variance_components": dict(
            zip(design.component_names, (max(float(v), 0.0) for v in theta[p:]), strict=True)
        ),
    }


def simulate_and_fit(
    model_class, model_args: dict, truth: dict, base: str, names: list, seed: int
) -> np.ndarray:
    """One simulated data set at ``truth`` and the base estimator on it (a study task).

    ``model_class`` is :class:`bayesglmm.GLMM` (passed in: engines do not import it).
    Returns the estimates of ``names``; raises when the fit does (the study records it).
    """
    from ..model.simulate import simulate

    sim = simulate(
        model_args["formula"],
        model_args["data"],
        family=model_args["family"],
        link=model_args["link"],
        random_seed=int(seed),
        **truth,
    )
    model = model_class(
        model_args["formula"], sim, family=model_args["family"], link=model_args["link"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes of single replicates
        fit = model.fit(base, progressbar=False)
    return parameter_vector(fit.table, names)


def kuk_step(theta: np.ndarray, target: np.ndarray, mean: np.ndarray, p: int) -> np.ndarray:
    """``theta + (target - mean)``, variances (entries from ``p`` on) kept at 0 or above."""
    new = theta + (target - mean)
    new[p:] = np.maximum(new[p:], 0.0)
    return new


def relative_change(new: np.ndarray, old: np.ndarray) -> float:
    """Largest ``|new - old| / max(1, |old|)``."""
    return float(np.max(np.abs(new - old) / np.maximum(1.0, np.abs(old))))


def kuk_estimates(
    design,
    theta: np.ndarray,
    draws: np.ndarray,
    base_fit,
    *,
    base: str,
    history: list,
    converged: bool,
    n_failed: int,
    tol: float,
    timing: dict,
) -> Estimates:
    """The :class:`Estimates` of a Kuk fit.

    ``draws`` (``n x k``) are the base estimates over the last iteration's simulations: their
    standard deviation is each estimate's standard error, over ``sqrt(n)`` its Monte Carlo
    error, their covariance (fixed effects) the ``vcov``.
    """
    names = parameter_names(design)
    p = len(design.fixed_names)
    n = draws.shape[0]
    sd = draws.std(axis=0, ddof=1)
    mcse = sd / np.sqrt(n)
    fixed = wald_table(design.fixed_names, theta[:p], sd[:p])
    var_rows = pd.DataFrame(
        {"estimate": theta[p:], "std_error": sd[p:]}, index=pd.Index(names[p:], dtype=object)
    )
    table = pd.concat([fixed, var_rows])
    table["mcse"] = mcse
    cov = np.atleast_2d(np.cov(draws[:, :p], rowvar=False))
    messages = [] if converged else [f"Kuk's iteration did not settle in {len(history)} steps"]
    if n_failed:
        messages.append(f"{n_failed} simulated fit(s) of the last iteration failed (left out)")
    return Estimates(
        kind="quasi_likelihood",
        table=table,
        converged=converged,
        n_params=len(names),
        loglik=None,
        vcov=Covariance("model", design.fixed_names, cov),
        random_effects=base_fit.random_effects,
        iterations=len(history),
        messages=messages,
        convergence_details={
            "relative_change": history[-1] if history else None,
            "history": history,
            "tol": tol,
            "n_sim": n,
            "failed_last_iteration": n_failed,
        },
        details=QuasiDetails(
            title=f"{TITLE} of {_BASE_NAMES[base]}",
            extra={
                "base": base,
                "uncorrected": dict(
                    zip(names, map(float, parameter_vector(base_fit.table, names)), strict=True)
                ),
                "standard_errors": (
                    "sd of the base estimator over the last iteration's simulations"
                ),
                "mcse": "that sd over sqrt(n_sim) (table column mcse)",
                "random_effects": f"the {base} fit's predictions on the observed data",
                "loglik": "Kuk's correction maximizes no likelihood: loglik is None",
            },
        ),
        timing=timing,
    )
