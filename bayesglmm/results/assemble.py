"""What a fitting function returns (:class:`Estimates`) and the one assembler that turns it
into a :class:`~bayesglmm.results.result.FitResult` (:func:`assemble_result`).

A fitting function (``fit_laplace``, ``fit_gee`` ...) computes and returns its numbers, typed;
it does not time the fit, collect the warnings it raises, attach the model or touch a
result. :meth:`bayesglmm.GLMM.fit` checks the options and the design, times the call, records
its warnings and hands the estimates here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .details import Covariance, Details
from .result import FitResult, build_result


@dataclass
class Estimates:
    """The numbers of one fit, as the method computed them.

    Attributes
    ----------
    kind : str
        The kind of fit (:data:`bayesglmm.results.result.KINDS`).
    table : pandas.DataFrame
        One row per parameter (fixed effects, ``var(...)``, ``cor(...)``, dispersion), any
        subset of :data:`~bayesglmm.results.result.TABLE_COLUMNS`.
    converged : bool
    n_params : int
    loglik : float or None
        None where no likelihood is maximized (PQL, GEE, estimating equations, samplers).
    vcov : Covariance or None
        The covariance behind the table's standard errors.
    random_effects : dict
        Predicted random effects per term (and ``"<term> (conditional variance)"``).
    iterations, messages, singular, convergence_details
        The fit's convergence (``convergence_details``: the method's diagnostics).
    warnings : list of str
        Warnings the method keeps without raising them (those it raises are recorded by
        :meth:`bayesglmm.GLMM.fit`).
    theta, theta_names
        Relative covariance parameters of likelihood fits.
    priors, prior_swap, idata
        Bayesian fits: the priors sampled, those the sampler replaced, the draws.
    details : Details
        Typed method-specific details.
    timing : dict
        Seconds per stage (the total is the caller's).
    """

    kind: str
    table: pd.DataFrame
    converged: bool
    n_params: int
    loglik: float | None = None
    vcov: Covariance | None = None
    random_effects: dict = field(default_factory=dict)
    iterations: int | None = None
    messages: list = field(default_factory=list)
    singular: bool = False
    warnings: list = field(default_factory=list)
    convergence_details: dict = field(default_factory=dict)
    theta: object = None
    theta_names: list | None = None
    priors: dict | None = None
    prior_swap: dict | None = None
    idata: object = None
    details: Details = field(default_factory=Details)
    timing: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Delegate:
    """Returned by a fitting function when another method is the same fit on this model
    (PQL on a Gaussian identity-link model is the linear mixed model): ``GLMM.fit`` runs
    ``method`` with ``options`` instead."""

    method: str
    options: dict


def assemble_result(
    *,
    method: str,
    design,
    estimates: Estimates,
    options: dict,
    total: float,
    raised: list[str] | tuple = (),
    model=None,
) -> FitResult:
    """The :class:`FitResult` of ``estimates`` (through
    :func:`~bayesglmm.results.result.build_result`, which owns the schema), with
    ``timing["total"] = total``, its ``model`` and, in ``convergence["warnings"]``, the
    texts of the warnings ``raised`` during the fit followed by those the method kept
    without raising, each once."""
    e = estimates
    warned = list(dict.fromkeys([*map(str, raised), *map(str, e.warnings)]))
    return build_result(
        method=method,
        kind=e.kind,
        design=design,
        table=e.table,
        converged=e.converged,
        n_params=e.n_params,
        timing={**e.timing, "total": float(total)},
        loglik=e.loglik,
        random_effects=e.random_effects,
        messages=e.messages,
        iterations=e.iterations,
        singular=e.singular,
        warnings=warned,
        convergence_details=e.convergence_details,
        options=options,
        priors=e.priors,
        prior_swap=e.prior_swap,
        theta=e.theta,
        theta_names=e.theta_names,
        details=e.details,
        vcov=e.vcov,
        idata=e.idata,
        model=model,
    )
