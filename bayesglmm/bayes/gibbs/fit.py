"""``GLMM.fit(method="gibbs")``: Gibbs-style step methods through :func:`pymc.sample`."""

from __future__ import annotations

import copy
import logging
import os
import time

from ...errors import MethodError
from ...result import FitResult
from ..nuts import check_priors, run_pm_sample
from ..posterior import result_from_idata
from .assign import STEP_KINDS, build_steps, conjugate_priors, plan_steps
from .effects import single_threaded_blas

_log = logging.getLogger("bayesglmm.gibbs")


def fit_gibbs(
    model,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    random_seed: int | None = None,
    progressbar: bool = True,
    steps: dict | None = None,
    nuts_fallback: bool = True,
    scale_moves: bool = True,
    conjugate_defaults: bool = True,
    log_likelihood: bool = True,
    allow_improper: bool = False,
    **sample_kwargs,
) -> FitResult:
    """Sample the posterior with Gibbs-style updates (and NUTS where none applies).

    The model is built in the centered parameterization. Polya-Gamma (logit) or
    Albert-Chib (probit) augmentation draws all fixed and random effects jointly;
    inverse-gamma and inverse-Wishart updates draw variances and covariances;
    Metropolis-within-Gibbs, level by level, draws the random effects of other families.
    See :mod:`bayesglmm.bayes.gibbs.assign` for the rules.

    Parameters
    ----------
    model : GLMM
    draws, tune, chains, cores : int
        As :func:`pymc.sample` (tuning adapts the Metropolis and NUTS steps only).
    random_seed : int, optional
        The same seed gives the same draws.
    steps : dict, optional
        ``{variable: kind}`` to override the automatic choice, kinds in
        ``("polya_gamma", "albert_chib", "inverse_gamma", "inverse_wishart",
        "metropolis", "nuts")``; a Gibbs update that does not apply raises
        :class:`~bayesglmm.errors.MethodError` naming the variable and the reason.
    nuts_fallback : bool
        Variables without a Gibbs update get NUTS (default) or, if False, coordinate-wise
        random-walk Metropolis: no gradient-based step at all.
    scale_moves : bool
        After each inverse-gamma update, a Metropolis move rescaling the variance and its
        random effects together (Liu & Sabatti 2000), against the slow mixing of variances
        in the centered parameterization when levels carry little data.
    conjugate_defaults : bool
        Replace the *default* priors of variance components (not the ones the user chose)
        by ``InverseGamma(1, s^2)`` and ``InverseWishart(k+1, 2 s^2 I)``, ``s`` the
        response scale (1 except for Gaussian models); said in ``result.info`` and logged.
    log_likelihood : bool
        Store the pointwise log-likelihood (for LOO/WAIC).
    allow_improper : bool
        Sample even when the propriety check finds the posterior improper.
    **sample_kwargs
        Passed to :func:`pymc.sample` (``target_accept`` reaches the NUTS part).
    """

    from ..builder import build_pymc_model

    _check_options(draws, tune, chains, steps)
    t0 = time.perf_counter()
    priors, replaced = (
        conjugate_priors(model.design, model.priors) if conjugate_defaults else (model.priors, {})
    )
    sampled = copy.copy(model)
    sampled.priors = priors
    propriety = check_priors(sampled, allow_improper)
    if replaced:
        _log.warning(
            "method='gibbs' uses conjugate priors in place of the defaults: %s "
            "(set them in GLMM(priors=...) or pass conjugate_defaults=False to keep the "
            "defaults, sampled by NUTS)",
            ", ".join(f"{k}: {v}" for k, v in replaced.items()),
        )
    pm_model = build_pymc_model(model.design, priors, parameterization="centered")
    plan = plan_steps(model.design, priors, pm_model, steps, nuts_fallback, scale_moves)
    step_methods = build_steps(plan, model.design, pm_model)
    for note in plan.notes:
        _log.info(note)
    if cores is None:
        cores = max(1, min(chains, os.cpu_count() or 1))
    t1 = time.perf_counter()
    with single_threaded_blas():
        idata, timing = run_pm_sample(
            pm_model,
            log_likelihood,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=random_seed,
            step=step_methods,
            progressbar=progressbar,
            **sample_kwargs,
        )
    kinds = dict(plan.kinds)
    for rv in pm_model.free_RVs:
        kinds.setdefault(rv.name, "nuts")
    info = {
        "steps": kinds,
        "step_notes": plan.notes,
        "scale_moves": plan.scale_moves,
        "conjugate_defaults": replaced,
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "random_seed": random_seed,
        "parameterization": "centered",
        "priors": {k: p.describe() for k, p in priors.all()},
    }
    if propriety is not None:
        info["propriety"] = propriety
    timing = {"build": t1 - t0, **timing}
    result = result_from_idata(model, idata, "gibbs", timing, info)
    result.timing["total"] = time.perf_counter() - t0
    return result


def _check_options(draws, tune, chains, steps) -> None:
    for name, value, least in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise MethodError(f"{name} must be an integer >= {least}, got {value!r}")
    if steps is not None and not isinstance(steps, dict):
        raise MethodError(
            f"steps must be a dict {{variable: kind}} with kinds {STEP_KINDS}, "
            f"got {type(steps).__name__}"
        )
