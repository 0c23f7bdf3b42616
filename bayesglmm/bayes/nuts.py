"""NUTS fits through PyMC's samplers (PyMC, nutpie, numpyro, blackjax)."""

from __future__ import annotations

import importlib.util
import os
import time

from ..errors import BackendNotInstalledError, MethodError
from ..result import FitResult
from .posterior import result_from_idata

#: nuts_sampler value -> module that must be importable, and the extra that installs it
BACKENDS = {
    "auto": (None, None),
    "compiled": ("nutpie", None),
    "pymc": (None, None),
    "nutpie": ("nutpie", None),
    "numpyro": ("numpyro", "numpyro"),
    "blackjax": ("blackjax", None),
}


def check_backend(nuts_sampler: str) -> None:
    """Raise a clear error when the requested NUTS backend is unknown or not installed."""
    if nuts_sampler not in BACKENDS:
        raise MethodError(
            f"unknown nuts_sampler {nuts_sampler!r}; choose one of {', '.join(BACKENDS)}"
        )
    module, extra = BACKENDS[nuts_sampler]
    if module is not None and importlib.util.find_spec(module) is None:
        how = f"pip install 'bayesglmm[{extra}]'" if extra else f"pip install {module}"
        raise BackendNotInstalledError(
            f"nuts_sampler={nuts_sampler!r} needs the {module} package, which is not "
            f"installed; install it with: {how} (or use nuts_sampler='pymc')"
        )


def check_priors(model, allow_improper: bool) -> dict:
    """Refuse improper posteriors before sampling (see :mod:`bayesglmm.propriety`).

    Runs before every Bayesian fit (NUTS and Gibbs alike); with all priors proper it
    returns at once. Returns the propriety report as a dict for ``FitResult.info``.
    """
    from ..propriety import ensure_proper

    return ensure_proper(model, allow_improper=allow_improper)


def fit_nuts(
    model,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    random_seed: int | None = None,
    nuts_sampler: str = "auto",
    target_accept: float = 0.8,
    parameterization: str = "noncentered",
    progressbar: bool = True,
    log_likelihood: bool = True,
    allow_improper: bool = False,
    **sample_kwargs,
) -> FitResult:
    """Sample the posterior with NUTS.

    Parameters
    ----------
    model : GLMM
    draws, tune, chains, cores : int
        As :func:`pymc.sample`.
    random_seed : int, optional
        The same seed gives the same draws.
    nuts_sampler : {"auto", "compiled", "pymc", "nutpie", "numpyro", "blackjax"}
        ``"compiled"`` runs nutpie's NUTS on bayesglmm's precompiled GLMM density
        (:mod:`bayesglmm.bayes.kernel`: no PyTensor compilation; binomial-logit,
        Poisson-log and Gaussian models with the default prior families and uncorrelated
        random effects). ``"auto"`` (default) uses it when the model qualifies and PyMC's
        sampler otherwise; the others are PyMC's choices and must be installed.
    target_accept : float
        Raise towards 0.95 if divergences are reported.
    parameterization : {"noncentered", "centered"}
    log_likelihood : bool
        Store pointwise log-likelihood (for LOO/WAIC) in ``idata.log_likelihood``.
    allow_improper : bool
        Sample even when the propriety check finds the posterior improper.
    """
    check_backend(nuts_sampler)
    propriety = check_priors(model, allow_improper)
    if cores is None:
        cores = max(1, min(chains, os.cpu_count() or 1))
    backend = _choose_backend(model, nuts_sampler, parameterization)
    t0 = time.perf_counter()
    if backend == "compiled":
        from .compiled import sample_compiled

        idata = sample_compiled(
            model,
            draws,
            tune,
            chains,
            cores,
            random_seed,
            progressbar,
            target_accept,
            log_likelihood,
            **sample_kwargs,
        )
        timing = {"sample": time.perf_counter() - t0}
    else:
        idata, timing = _sample_pymc(
            model,
            draws,
            tune,
            chains,
            cores,
            random_seed,
            backend,
            target_accept,
            parameterization,
            progressbar,
            log_likelihood,
            sample_kwargs,
        )
    info = {
        "nuts_sampler": backend,
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "random_seed": random_seed,
        "target_accept": target_accept,
        "parameterization": parameterization,
        "priors": {k: p.describe() for k, p in model.priors.all()},
    }
    if propriety is not None:
        info["propriety"] = propriety
    result = result_from_idata(model, idata, "nuts", timing, info)
    result.timing["total"] = time.perf_counter() - t0
    return result


def _choose_backend(model, nuts_sampler: str, parameterization: str) -> str:
    if nuts_sampler not in ("auto", "compiled"):
        return nuts_sampler
    from .compiled import unsupported_reason

    reason = unsupported_reason(model, parameterization)
    if reason is None and importlib.util.find_spec("nutpie") is not None:
        return "compiled"
    if nuts_sampler == "compiled":
        raise MethodError(
            f"nuts_sampler='compiled' does not cover {reason}; use nuts_sampler='pymc'"
        )
    return "pymc"


def _sample_pymc(
    model,
    draws,
    tune,
    chains,
    cores,
    random_seed,
    nuts_sampler,
    target_accept,
    parameterization,
    progressbar,
    log_likelihood,
    sample_kwargs,
):

    t0 = time.perf_counter()
    pm_model = model.build_pymc(parameterization=parameterization)
    idata, timing = run_pm_sample(
        pm_model,
        log_likelihood,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        random_seed=random_seed,
        nuts_sampler=nuts_sampler,
        target_accept=target_accept,
        progressbar=progressbar,
        **sample_kwargs,
    )
    return idata, {"build": time.perf_counter() - t0 - sum(timing.values()), **timing}


def run_pm_sample(pm_model, log_likelihood: bool, **sample_args):
    """``pm.sample`` on ``pm_model`` (+ pointwise log-likelihood), with stage timings."""
    import pymc as pm

    t1 = time.perf_counter()
    with pm_model:
        idata = pm.sample(compute_convergence_checks=False, **sample_args)
        t2 = time.perf_counter()
        if log_likelihood:
            pm.compute_log_likelihood(idata, progressbar=False)
    return idata, {"sample": t2 - t1, "log_likelihood": time.perf_counter() - t2}
