"""NUTS fits through PyMC's samplers (PyMC, nutpie, numpyro, blackjax)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import multiprocessing
import os
import time

from ..errors import BackendNotInstalledError, MethodError, OptionError
from ..options import sampler_bar, show_progress
from ..results.assemble import Estimates
from ..results.details import SamplerDetails
from .posterior import posterior_estimates
from .start import check_start

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
    """Refuse improper posteriors and warn about separation before sampling.

    Runs before every Bayesian fit (NUTS and Gibbs alike; see :mod:`bayesglmm.propriety`):
    an improper posterior raises :class:`~bayesglmm.errors.ImproperPosteriorError` (flat
    priors on separated columns among the reasons); a proper one on separated data (the
    default priors) gets a :class:`~bayesglmm.propriety.PriorDrivenWarning` naming the
    columns whose posterior is then driven by their prior. Returns the propriety report as
    a dict for ``FitResult.info``, with the separation found (or None) under
    ``"separation_proper_priors"``.
    """
    from .._warn import warn
    from ..propriety import ensure_proper
    from ..propriety.separation import PriorDrivenWarning, check_separation, separation_message

    report = ensure_proper(model, allow_improper=allow_improper)
    found = None
    if report.get("proper") is not False:
        found = check_separation(model.design)
        if found is not None:
            warn(separation_message(found, model.priors), PriorDrivenWarning)
    report["separation_proper_priors"] = found
    return report


def fit_nuts(
    model,
    *,
    draws: int,
    tune: int,
    chains: int,
    cores: int | None,
    random_seed: int | None,
    nuts_sampler: str,
    target_accept: float,
    parameterization: str,
    progressbar: bool | None,
    log_likelihood: bool,
    allow_improper: bool,
    start: dict | list | None,
    init: str | None,
    sampler_kwargs: dict | None,
) -> Estimates:
    """Sample the posterior with NUTS.

    Parameters
    ----------
    model : GLMM
    draws, tune, chains, cores : int
        As :func:`pymc.sample`.
    random_seed : int, optional
        The same seed gives the same draws.
    nuts_sampler : {"auto", "compiled", "pymc", "nutpie", "numpyro", "blackjax"}
        ``"compiled"`` runs nutpie's NUTS on bayesglmm's precompiled GLMM density (no
        PyTensor compilation): :mod:`bayesglmm.bayes.kernel` for binomial-logit,
        Poisson-log and Gaussian models with Normal/HalfNormal priors and uncorrelated
        noncentered effects, :mod:`bayesglmm.bayes.density` for the rest: probit and
        cloglog links, negative binomial, correlated terms with an LKJ prior, the centered
        parameterization, Normal/StudentT/Cauchy/Flat priors on fixed effects and
        HalfNormal/HalfStudentT/HalfCauchy/Exponential/Gamma/InverseGamma/HalfFlat priors
        on standard deviations or variances. ``"auto"`` (default) uses it when the model
        qualifies (not: inverse-Wishart, Jeffreys, PowerVariance or Fixed priors, Poisson
        or negative binomial with identity link, Gaussian with log link, prior weights)
        and PyMC's sampler otherwise; the others are PyMC's choices and must be installed.
        With prior weights (``GLMM(..., weights=)``) the PyMC model carries the weighted
        likelihood (:func:`bayesglmm.bayes.family_pytensor.observed`).
    target_accept : float
        Raise towards 0.95 if divergences are reported.
    parameterization : {"noncentered", "centered"}
    progressbar : bool, optional
        None (default) shows the sampler's progress: nutpie's or PyMC's bar on a terminal;
        in a file or pipe, no bar (the compiled path prints a line every few seconds).
        True always draws the bar; False shows nothing, PyMC's log lines included.
    log_likelihood : bool
        Store pointwise log-likelihood (for LOO/WAIC) in ``idata.log_likelihood``; with
        prior weights the weighted one (``w_i l_i``; the Gaussian ``N(mu_i, sigma^2 / w_i)``
        density), so LOO and WAIC then use the weighted pointwise values.
    allow_improper : bool
        Sample even when the propriety check finds the posterior improper.
    start : dict or list of dict, optional
        Initial values ``{variable: value}`` (one dict, or one per chain), as
        :func:`pymc.sample`'s ``initvals``; PyMC-model backends only (the compiled density
        starts each chain uniformly in (-1, 1) on the unconstrained scale, the fixed effects
        within two standard errors of the GLM fit without random effects).
    init : str, optional
        :func:`pymc.sample`'s initialization (``"jitter+adapt_diag"`` ...); with
        ``nuts_sampler="pymc"`` only (nutpie adapts its own mass matrix).
    sampler_kwargs : dict, optional
        Further keywords for the sampler: nutpie's settings (``maxdepth``, ...) on the compiled
        path, :func:`pymc.sample`'s (``max_treedepth``, ...) otherwise; checked before
        sampling. The compiled path adapts a diagonal mass matrix from the variances of the
        warm-up draws, as Stan and PyMC do (``use_grad_based_mass_matrix=False``; nutpie's
        own default is its gradient-based estimate, which gave lower ESS on the GLMM
        benchmarks: ``{"use_grad_based_mass_matrix": True}`` restores it).

    Raises
    ------
    OptionError
        For options that do not go together (``init`` or ``start`` on the compiled path,
        ``sampler_kwargs`` the sampler does not know), before anything is compiled.
    """
    options = {k: v for k, v in locals().items() if k != "model"}
    check_backend(nuts_sampler)
    backend = _choose_backend(model, nuts_sampler, parameterization)
    sample_kwargs = backend_options(backend, options)
    propriety = check_priors(model, allow_improper)
    if cores is None:
        cores = max(1, min(chains, os.cpu_count() or 1))
    if backend == "pymc" and cores > 1 and multiprocessing.current_process().daemon:
        # a daemonic process (a Dask worker) may not start PyMC's chain processes: the
        # chains run one after another, each with its own seed, so the draws are the same
        cores = 1
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
            show_progress(progressbar),
            target_accept,
            log_likelihood,
            parameterization=parameterization,
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
    details = SamplerDetails(
        sampler="NUTS",
        nuts_sampler=backend,
        extra={} if propriety is None else {"propriety": propriety},
    )
    return posterior_estimates(model, idata, timing, details)


#: keywords the sampler call sets from options of their own
_OWN_KEYWORDS = {
    "draws": "draws",
    "tune": "tune",
    "chains": "chains",
    "cores": "cores",
    "random_seed": "random_seed",
    "seed": "random_seed",
    "progressbar": "progressbar",
    "progress_bar": "progressbar",
    "target_accept": "target_accept",
    "initvals": "start",
    "init": "init",
    "nuts_sampler": "nuts_sampler",
    "step": "steps (method='gibbs')",
    "model": "the GLMM",
    "compute_convergence_checks": "bayesglmm's own checks",
    "save_warmup": "bayesglmm (warm-up draws are not kept)",
}


def backend_options(backend: str, options: dict) -> dict:
    """The sampler keywords from ``start``, ``init`` and ``sampler_kwargs``, checked for
    ``backend`` (``"compiled"`` for nutpie on the compiled density, else PyMC's sampler)."""
    extra = dict(options.get("sampler_kwargs") or {})
    for key in extra:
        if key in _OWN_KEYWORDS:
            raise OptionError(
                f"sampler_kwargs[{key!r}] is set by bayesglmm; use {_OWN_KEYWORDS[key]}= instead"
            )
    init, start = options.get("init"), options.get("start")
    if init is not None and backend != "pymc":
        raise OptionError(
            f"init={init!r} is PyMC's initialization and applies to nuts_sampler='pymc' only; "
            f"this fit samples with {backend!r}, which adapts its own mass matrix: drop init "
            "or pass nuts_sampler='pymc'"
        )
    if start is not None and backend == "compiled":
        raise OptionError(
            "start (initial values) needs a PyMC-model backend; the compiled density starts "
            "each chain at random near the GLM fit without random effects: drop start or "
            "pass nuts_sampler='pymc'"
        )
    if backend == "compiled":
        _check_nutpie_settings(extra)
    else:
        _check_pymc_keywords(extra, nuts=True)
    if init is not None:
        extra["init"] = init
    if start is not None:
        extra["initvals"] = start
    return extra


def _check_nutpie_settings(extra: dict) -> None:
    if not extra:
        return
    import inspect

    from .nutpie_driver import lib, needs_nutpie_sample

    named = set()
    if needs_nutpie_sample(extra):  # a keyword of nutpie.sample itself (imports ArviZ)
        import nutpie

        named = set(inspect.signature(nutpie.sample).parameters) - {"compiled_model", "kwargs"}
    settings = lib().PyNutsSettings.Diag(0)
    for key, value in extra.items():
        if key in named:
            continue
        try:
            setattr(settings, key, value)
        except (AttributeError, TypeError, ValueError, OverflowError) as err:
            kind = "is not a setting" if isinstance(err, AttributeError) else "is invalid for"
            raise OptionError(
                f"sampler_kwargs[{key!r}] = {value!r} {kind} of nutpie.sample (the compiled "
                f"NUTS path): {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            ) from None


def _check_pymc_keywords(extra: dict, nuts: bool) -> None:
    """Keys of ``extra`` must be parameters of ``pymc.sample`` (or, with NUTS, of its step)."""
    if not extra:
        return
    import inspect

    import pymc as pm

    known = set(inspect.signature(pm.sample).parameters) - {"kwargs"}
    if nuts:
        for cls in (pm.NUTS, pm.step_methods.hmc.base_hmc.BaseHMC):
            known |= set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs", "vars"}
    for key in extra:
        if key not in known:
            raise OptionError(
                f"sampler_kwargs[{key!r}] is not a parameter of pymc.sample or its NUTS step"
            )


def _choose_backend(model, nuts_sampler: str, parameterization: str) -> str:
    if nuts_sampler not in ("auto", "compiled"):
        return nuts_sampler
    from .compiled import unsupported_reason

    structured = model.design.structured_terms
    if structured:  # the compiled densities know unstructured terms only
        reason = f"the structured term {structured[0].name} ({structured[0].structure})"
    else:
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
    check_start(pm_model, sample_kwargs.get("initvals"), chains)  # before PyMC compiles
    idata, timing = run_pm_sample(
        pm_model,
        log_likelihood,
        log_lines=show_progress(progressbar),
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        random_seed=random_seed,
        nuts_sampler=nuts_sampler,
        target_accept=target_accept,
        progressbar=sampler_bar(progressbar),
        **sample_kwargs,
    )
    return idata, {"build": time.perf_counter() - t0 - sum(timing.values()), **timing}


@contextlib.contextmanager
def pymc_log_lines(shown: bool):
    """PyMC's INFO lines ("Sampling 4 chains ...") kept (``shown``) or silenced while the
    block runs: the ``pymc`` logger's level is raised to WARNING, then restored."""
    logger = logging.getLogger("pymc")
    level = logger.level
    if not shown:
        logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def run_pm_sample(pm_model, log_likelihood: bool, log_lines: bool = True, **sample_args):
    """``pm.sample`` on ``pm_model`` (+ pointwise log-likelihood), with stage timings; PyMC's
    log lines only with ``log_lines`` (False under ``progressbar=False``)."""
    import pymc as pm

    t1 = time.perf_counter()
    with pm_model, pymc_log_lines(log_lines):
        idata = pm.sample(compute_convergence_checks=False, **sample_args)
        t2 = time.perf_counter()
        if log_likelihood:
            pm.compute_log_likelihood(idata, progressbar=False)
    return idata, {"sample": t2 - t1, "log_likelihood": time.perf_counter() - t2}
