"""``GLMM.fit(method="gibbs")``: Gibbs-style step methods through :func:`pymc.sample`."""

from __future__ import annotations

import copy
import logging
import os
import time

import numpy as np

from ...errors import OptionError
from ...options import sampler_bar, show_progress
from ...results.assemble import Estimates
from ...results.details import SamplerDetails
from ..nuts import _OWN_KEYWORDS, _check_pymc_keywords, check_priors, run_pm_sample
from ..posterior import posterior_estimates
from ..start import check_start, start_dicts, start_number
from .assign import STEP_KINDS, build_steps, plan_steps
from .assign import conjugate_priors as conjugate_prior_set
from .collapsed import choose_scheme, run_collapsed
from .effects import single_threaded_blas

_log = logging.getLogger("bayesglmm.gibbs")


def fit_gibbs(
    model,
    *,
    draws: int,
    tune: int,
    chains: int,
    cores: int | None,
    random_seed: int | None,
    progressbar: bool | None,
    steps: dict | None,
    nuts_fallback: bool,
    scale_moves: bool,
    conjugate_priors: bool,
    log_likelihood: bool,
    allow_improper: bool,
    start: dict | list | None,
    sampler_kwargs: dict | None,
    scheme: str,
) -> Estimates:
    """Sample the posterior with Gibbs-style updates (and NUTS where none applies).

    The model is built in the centered parameterization, with the model's own priors (the
    ones NUTS samples). Polya-Gamma (logit) or Albert-Chib (probit) augmentation draws all
    fixed and random effects jointly; inverse-gamma and inverse-Wishart updates draw
    variances and covariances with conjugate priors, a slice update standard deviations
    and variances with any other prior (the default half-normal included);
    Metropolis-within-Gibbs, level by level, draws the random effects of other families;
    NUTS (within the same compound step) what has no Gibbs update, such as the LKJ
    Cholesky factor of correlated terms. See :mod:`bayesglmm.bayes.gibbs.assign` for the
    rules; ``result.info["details"]["step_kinds"]`` says what each variable got.

    Prior weights (``GLMM(..., weights=)``) enter the model's weighted likelihood
    (:func:`bayesglmm.bayes.family_pytensor.observed`), which the Metropolis, slice and
    NUTS updates evaluate; the Polya-Gamma updates (both schemes) augment ``w_i y_i``
    successes in ``w_i n_i`` trials, ``PG(w_i n_i, eta_i)`` for any real weights;
    Albert-Chib takes weights only when ``w_i y_i`` and ``w_i n_i`` are whole numbers and
    refuses others with the reason. The stored pointwise log-likelihood is the weighted one.

    Parameters
    ----------
    model : GLMM
    draws, tune, chains, cores : int
        As :func:`pymc.sample` (tuning adapts the Metropolis and NUTS steps only).
    random_seed : int, optional
        The same seed gives the same draws.
    steps : dict, optional
        ``{variable: kind}`` to override the automatic choice, kinds in
        ``("polya_gamma", "albert_chib", "inverse_gamma", "inverse_wishart", "slice",
        "metropolis", "nuts")``; a Gibbs update that does not apply raises
        :class:`~bayesglmm.errors.MethodError` naming the variable and the reason.
    nuts_fallback : bool
        Variables without a Gibbs update get NUTS (default) or, if False, coordinate-wise
        random-walk Metropolis: no gradient-based step at all.
    scale_moves : bool
        After each inverse-gamma or slice update, a Metropolis move rescaling the scale
        and its random effects together (Liu & Sabatti 2000), against the slow mixing of
        variances in the centered parameterization when levels carry little data.
    conjugate_priors : bool
        If True, replace the *default* priors of variance components (not the ones the
        user chose) by ``InverseGamma(1, s^2)`` and ``InverseWishart(k+1, 2 s^2 I)``, ``s``
        the response scale (1 except for Gaussian models): a different model from the one
        NUTS fits, sometimes faster to sample. ``result.info["priors"]`` holds the priors
        sampled and ``result.info["prior_swap"]`` what was replaced (empty by default);
        an :class:`~bayesglmm.errors.OptionError` when every variance prior is the user's
        (nothing would be replaced).
    log_likelihood : bool
        Store the pointwise log-likelihood (for LOO/WAIC).
    allow_improper : bool
        Sample even when the propriety check finds the posterior improper.
    start : dict or list of dict, optional
        Initial values ``{variable: value}`` (one dict, or one per chain), as
        :func:`pymc.sample`'s ``initvals``.
    sampler_kwargs : dict, optional
        Further keywords for :func:`pymc.sample` (``target_accept`` reaches the NUTS part);
        checked before the model is built.
    scheme : {"auto", "collapsed", "steps"}
        ``"steps"``: the PyMC step methods above. ``"collapsed"``: for binomial logit models
        with one-column random terms (crossed or not), a NumPy Polya-Gamma sampler that
        draws the fixed effects jointly with each factor's effects (Papaspiliopoulos,
        Roberts & Zanella 2020) and each scale by a slice update plus a rescaling move
        (:mod:`~bayesglmm.bayes.gibbs.crossed`): cost per iteration linear in rows and
        levels, chains in ``cores`` forked processes (``steps``, ``nuts_fallback``,
        ``scale_moves`` and ``sampler_kwargs`` do not apply). ``"auto"``: collapsed for
        crossed designs (two or more grouping factors) of at least
        :data:`~bayesglmm.bayes.gibbs.collapsed.AUTO_MIN_ROWS` rows where it applies.
        ``result.info["details"]["scheme"]`` says which ran.

    Raises
    ------
    OptionError
        For an unknown option or a value out of range, before the model is built.
    """

    options = {k: v for k, v in locals().items() if k != "model"}  # first: the arguments
    from ..builder import build_pymc_model

    sample_kwargs = _check_options(options)
    t0 = time.perf_counter()
    priors, replaced = (
        conjugate_prior_set(model.design, model.priors) if conjugate_priors else (model.priors, {})
    )
    if conjugate_priors and not replaced:
        raise OptionError(_nothing_to_swap(model))
    sampled = copy.copy(model)
    sampled.priors = priors
    propriety = check_priors(sampled, allow_improper)
    if replaced:
        _log.info(
            "conjugate_priors=True: sampling conjugate priors in place of the defaults: %s",
            ", ".join(f"{k}: {v}" for k, v in replaced.items()),
        )
    chosen = choose_scheme(model.design, priors, scheme)
    if chosen == "collapsed":
        _check_collapsed_start(model.design, start, chains)
        return _fit_collapsed(model, priors, replaced, propriety, options)
    pm_model = build_pymc_model(model.design, priors, parameterization="centered")
    check_start(pm_model, start, chains)  # before PyMC compiles
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
            log_lines=show_progress(progressbar),
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=random_seed,
            step=step_methods,
            progressbar=sampler_bar(progressbar),
            **sample_kwargs,
        )
    kinds = dict(plan.kinds)
    for rv in pm_model.free_RVs:
        kinds.setdefault(rv.name, "nuts")
    details = SamplerDetails(
        sampler="gibbs",
        scheme="steps",
        # the update each variable got (not the option "steps", which only overrides)
        step_kinds=kinds,
        extra={
            "step_notes": plan.notes,
            "scale_moved": plan.scale_moves,
            "conjugate_priors": conjugate_priors,
            "parameterization": "centered",
            **({} if propriety is None else {"propriety": propriety}),
        },
    )
    return posterior_estimates(
        model,
        idata,
        {"build": t1 - t0, **timing},
        details,
        priors={k: p.describe() for k, p in priors.all()},
        prior_swap=replaced,
        conjugate_priors=conjugate_priors,
    )


def _check_options(options: dict) -> dict:
    """What :func:`~bayesglmm.options.resolve_options` cannot check alone; returns the extra
    keywords of :func:`pymc.sample` (``sampler_kwargs`` and ``start`` as ``initvals``)."""
    for var, kind in (options.get("steps") or {}).items():
        if kind not in STEP_KINDS:
            raise OptionError(
                f"steps[{var!r}] = {kind!r} is not a step kind; choose one of "
                f"{', '.join(STEP_KINDS)}"
            )
    extra = dict(options.get("sampler_kwargs") or {})
    for key in extra:
        if key in _OWN_KEYWORDS and key not in ("target_accept", "init"):  # NUTS part's own
            raise OptionError(
                f"sampler_kwargs[{key!r}] is set by bayesglmm; use {_OWN_KEYWORDS[key]}= instead"
            )
    _check_pymc_keywords(extra, nuts=True)
    if options.get("start") is not None:
        extra["initvals"] = options["start"]
    return extra


def _check_collapsed_start(design, start, chains: int) -> None:
    """Numbers of the right shape for the collapsed sampler's variables (names and signs are
    checked where the state is built)."""
    shapes = {term: (sl.stop - sl.start,) for term, sl in design.fixed_terms.items()}
    shapes.update({t.name: (t.n_levels,) for t in design.random})
    for d in start_dicts(start, chains):
        for key, value in d.items():
            x = start_number(key, value)
            if key in shapes:
                try:
                    np.broadcast_to(x, shapes[key])
                except ValueError:
                    raise OptionError(
                        f"start[{key!r}] has shape {x.shape}; the variable has shape {shapes[key]}"
                    ) from None


def _nothing_to_swap(model) -> str:
    """Why ``conjugate_priors=True`` would do nothing: every variance prior is the user's."""
    if not model.design.random:
        return "conjugate_priors=True: this model has no variance components to give them"
    groups = {t.group for t in model.design.random}
    chosen = sorted(groups & model.priors.user_keys) or sorted(model.priors.user_keys)
    return (
        "conjugate_priors=True replaces only default priors of variance components, and every "
        f"variance prior of this model was chosen (priors for {', '.join(chosen)}, e.g. by "
        "its spec or priors=): it would sample the same model; drop conjugate_priors, or "
        "leave those priors at their defaults to have them replaced"
    )


def _fit_collapsed(model, priors, replaced, propriety, options) -> Estimates:
    """The ``scheme="collapsed"`` path of :func:`fit_gibbs` (options already checked)."""
    for key in ("steps", "sampler_kwargs"):
        if options.get(key):
            raise OptionError(f"{key} applies to scheme='steps' only; got scheme='collapsed'")
    idata, timing, details = run_collapsed(
        model,
        priors,
        draws=options["draws"],
        tune=options["tune"],
        chains=options["chains"],
        random_seed=options["random_seed"],
        progressbar=options["progressbar"],
        start=options.get("start"),
        log_likelihood=options["log_likelihood"],
        cores=options.get("cores"),
    )
    details = dict(details)
    typed = SamplerDetails(
        sampler="gibbs",
        scheme="collapsed",
        step_kinds=details.pop("step_kinds", None),
        extra={**details, **({} if propriety is None else {"propriety": propriety})},
    )
    return posterior_estimates(
        model,
        idata,
        timing,
        typed,
        priors={k: p.describe() for k, p in priors.all()},
        prior_swap=replaced,
        conjugate_priors=options["conjugate_priors"],
    )
