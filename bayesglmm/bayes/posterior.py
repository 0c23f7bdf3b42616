"""Turn posterior draws (ArviZ InferenceData) into the estimates of a Bayesian fit.

Shared by every sampler (NUTS, Gibbs), so all Bayesian fits report the same quantities and
the same diagnostics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._warn import warn
from ..propriety.drift import check_drift
from ..results.assemble import Estimates
from ..results.details import Covariance, SamplerDetails
from .diagnostics import ess_rhat_mcse
from .draws import derived_draws
from .draws import variable_draws as _draws
from .log_prior import add_log_prior, sampled_priors

#: R-hat above this is reported (Vehtari et al. 2021 recommend 1.01)
RHAT_LIMIT = 1.01
#: bulk or tail ESS below this (per chain x chains) is reported (Vehtari et al. 2021: 100/chain)
ESS_PER_CHAIN = 100


class SamplingWarning(UserWarning):
    """Divergences, high R-hat or low ESS after sampling."""


def _ess_rhat(stacked: np.ndarray) -> tuple[np.ndarray, ...]:
    """R-hat, bulk and tail ESS and the Monte Carlo standard error of the mean of every
    column of ``stacked`` (chain, draw, parameter): ArviZ's estimators, computed in NumPy
    (:mod:`bayesglmm.bayes.diagnostics`)."""
    return ess_rhat_mcse(stacked)


def summarize_draws(draws: dict[str, np.ndarray]) -> pd.DataFrame:
    """Posterior mean, sd, 2.5%/50%/97.5% quantiles, R-hat and ESS per parameter."""
    names = list(draws)
    stacked = np.stack([draws[n] for n in names], axis=-1)
    flat = stacked.reshape(-1, len(names))
    rhat, bulk, tail, mcse = _ess_rhat(stacked)
    q = np.quantile(flat, [0.025, 0.5, 0.975], axis=0)
    table = pd.DataFrame(
        {
            "estimate": flat.mean(axis=0),
            "std_error": flat.std(axis=0, ddof=1),
            "lower": q[0],
            "upper": q[2],
            "median": q[1],
            "r_hat": rhat,
            "ess_bulk": bulk,
            "ess_tail": tail,
            "mcse": mcse,
        },
        index=pd.Index(names, name="parameter"),
    )
    return table


def _finite(column: pd.Series, pick) -> float:
    """``pick`` (max or min) of the non-NaN values of ``column``; NaN when there are none
    (R-hat of one chain), without NumPy's all-NaN warning."""
    values = np.asarray(column, dtype=float)
    values = values[~np.isnan(values)]
    return float(pick(values)) if values.size else float("nan")


def sampler_diagnostics(idata, table: pd.DataFrame, n_chains: int) -> dict:
    """Divergences, R-hat and ESS summary, with advice; warns when something is off."""
    stats = idata.sample_stats if "sample_stats" in idata.groups() else None
    n_div = 0
    if stats is not None:
        for key in ("diverging", "divergences"):
            if key in stats:
                n_div = int(np.asarray(stats[key].values).sum())
                break
    max_rhat = _finite(table["r_hat"], max)
    min_bulk = _finite(table["ess_bulk"], min)
    min_tail = _finite(table["ess_tail"], min)
    messages = []
    if n_div:
        messages.append(
            f"{n_div} divergent transition(s): the sampler could not follow the posterior's "
            "geometry. Raise target_accept (e.g. fit(..., target_accept=0.95)); if they "
            "persist, try parameterization='centered' for well-informed groups or more "
            "informative priors on the variance components."
        )
    if np.isfinite(max_rhat) and max_rhat > RHAT_LIMIT:
        worst = table["r_hat"].idxmax()
        messages.append(
            f"R-hat up to {max_rhat:.3f} (for {worst}) exceeds {RHAT_LIMIT}: the chains "
            "disagree. Run more tuning and draws (tune=2000, draws=2000) and check the "
            "trace plots."
        )
    limit = ESS_PER_CHAIN * n_chains
    if np.isfinite(min_bulk) and min(min_bulk, min_tail) < limit:
        worst = table[["ess_bulk", "ess_tail"]].min(axis=1).idxmin()
        messages.append(
            f"effective sample size as low as {min(min_bulk, min_tail):.0f} (for {worst}), "
            f"below {limit}: estimates of tails and intervals are unreliable; draw more."
        )
    for msg in messages:
        warn(msg, SamplingWarning)
    return {
        "divergences": n_div,
        "max_r_hat": max_rhat,
        "min_ess_bulk": min_bulk,
        "min_ess_tail": min_tail,
        "messages": messages,
    }


def random_effect_means(model, idata) -> dict[str, pd.DataFrame]:
    out = {}
    for t in model.design.random:
        arr = _draws(idata.posterior, t.name)
        mean = arr.reshape(-1, *arr.shape[2:]).mean(axis=0)
        frame = pd.DataFrame(
            mean.reshape(t.n_levels, t.n_columns),
            index=pd.Index(t.levels, name=t.group),
            columns=t.columns,
        )
        out[t.name] = frame
    return out


def posterior_estimates(
    model,
    idata,
    timing: dict,
    details: SamplerDetails,
    priors: dict | None = None,
    prior_swap: dict | None = None,
    conjugate_priors: bool = False,
) -> Estimates:
    """The estimates of a Bayesian fit from its draws, the same for every sampler.

    Adds the ``log_prior`` group to ``idata`` (the density of each top-level prior at the
    draws, on the scale it is declared, no Jacobian). ``priors`` are the priors sampled
    (default: the model's), ``prior_swap`` those the sampler replaced. ``vcov`` is the
    posterior covariance of the fixed effects.
    """
    if priors is None:
        priors = {k: p.describe() for k, p in model.priors.all()}
    swap = prior_swap if prior_swap is not None else {}
    sampled = {"conjugate_priors": conjugate_priors, "prior_swap": swap}
    # the log prior of the draws (ArviZ's log_prior group), for power-scaling sensitivity
    add_log_prior(model, idata, sampled_priors(model, sampled))
    draws = derived_draws(model, idata)
    table = summarize_draws(draws)
    n_chains = int(idata.posterior.sizes["chain"])
    n_draws = int(idata.posterior.sizes["draw"])
    diag = sampler_diagnostics(idata, table, n_chains)
    messages = diag.pop("messages")
    diag["improper_drift"] = check_drift(model, idata, draws)
    flagged = (diag["improper_drift"] or {}).get("flagged") or {}
    converged = diag["divergences"] == 0 and not (diag["max_r_hat"] > RHAT_LIMIT)
    fixed = [str(n) for n in model.design.fixed_names]
    vcov = None
    if fixed and all(n in draws for n in fixed):
        stacked = np.stack([np.ravel(draws[n]) for n in fixed])
        vcov = Covariance("posterior", fixed, np.atleast_2d(np.cov(stacked)))
    return Estimates(
        kind="bayesian",
        table=table,
        converged=converged,
        n_params=len(table),
        timing=timing,
        loglik=None,
        vcov=vcov,
        random_effects=random_effect_means(model, idata),
        messages=messages + [f"{k}: {v}" for k, v in flagged.items()],
        iterations=n_draws,
        singular=False,
        convergence_details=diag,
        priors=priors,
        prior_swap=swap,
        details=details,
        idata=idata,
    )
