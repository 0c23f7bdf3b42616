"""Turn posterior draws (ArviZ InferenceData) into a :class:`~bayesglmm.result.FitResult`.

Shared by every sampler (NUTS, Gibbs), so all Bayesian fits report the same quantities and
the same diagnostics.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..propriety.drift import check_drift
from ..result import FitResult

#: R-hat above this is reported (Vehtari et al. 2021 recommend 1.01)
RHAT_LIMIT = 1.01
#: bulk or tail ESS below this (per chain x chains) is reported (Vehtari et al. 2021: 100/chain)
ESS_PER_CHAIN = 100


class SamplingWarning(UserWarning):
    """Divergences, high R-hat or low ESS after sampling."""


def _draws(post, name: str, constants=None) -> np.ndarray:
    """Draws (chain, draw, ...) of a variable; a parameter held fixed is broadcast."""
    if name in post:
        return np.asarray(post[name].values, dtype=float)
    if constants is not None and name in constants:
        value = np.asarray(constants[name].values, dtype=float)
        shape = (post.sizes["chain"], post.sizes["draw"])
        return np.broadcast_to(value, shape + value.shape).copy()
    raise KeyError(f"{name!r} is neither in the posterior nor held fixed")


def derived_draws(model, idata) -> dict[str, np.ndarray]:
    """Draws (chain, draw) of every reported parameter, by result name."""
    d = model.design
    post = idata.posterior
    const = idata.constant_data if "constant_data" in idata.groups() else None
    out: dict[str, np.ndarray] = {}
    for term, sl in d.fixed_terms.items():
        names = d.fixed_names[sl]
        arr = _draws(post, term, const)
        if len(names) == 1:
            out[names[0]] = arr.reshape(arr.shape[:2])
        else:
            for j, n in enumerate(names):
                out[n] = arr[..., j]
    for t in d.random:
        if t.n_columns == 1:
            sd = _draws(post, f"{t.name}_sigma", const)
            out[f"var({t.component_names[0]})"] = sd**2
            continue
        if t.correlated:
            sd = _draws(post, f"{t.name}_sigma", const)
        else:
            sd = np.stack([_draws(post, f"{t.name}_sigma[{c}]", const) for c in t.columns], axis=-1)
        for j, c in enumerate(t.component_names):
            out[f"var({c})"] = sd[..., j] ** 2
        if t.correlated:
            corr = _draws(post, f"{t.name}_corr")
            for a in range(t.n_columns):
                for b in range(a + 1, t.n_columns):
                    key = f"cor({t.group}|{t.columns[a]},{t.columns[b]})"
                    out[key] = corr[..., a, b]
    for name in ("sigma", "alpha"):
        if name in post or (const is not None and name in const):
            out[name] = _draws(post, name, const)
    return out


def _ess_rhat(stacked: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R-hat, bulk and tail ESS of every column of ``stacked`` (chain, draw, parameter)."""
    import arviz as az
    import xarray as xr

    k = stacked.shape[-1]
    nan = np.full(k, np.nan)
    if stacked.shape[1] < 4:
        return nan, nan, nan
    ds = xr.Dataset({"x": (("chain", "draw", "parameter"), stacked)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat = az.rhat(ds)["x"].values if stacked.shape[0] > 1 else nan
        bulk = az.ess(ds, method="bulk")["x"].values
        tail = az.ess(ds, method="tail")["x"].values
    return rhat, bulk, tail


def summarize_draws(draws: dict[str, np.ndarray]) -> pd.DataFrame:
    """Posterior mean, sd, 2.5%/50%/97.5% quantiles, R-hat and ESS per parameter."""
    names = list(draws)
    stacked = np.stack([draws[n] for n in names], axis=-1)
    flat = stacked.reshape(-1, len(names))
    rhat, bulk, tail = _ess_rhat(stacked)
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
        },
        index=pd.Index(names, name="parameter"),
    )
    return table


def sampler_diagnostics(idata, table: pd.DataFrame, n_chains: int) -> dict:
    """Divergences, R-hat and ESS summary, with advice; warns when something is off."""
    stats = idata.sample_stats if "sample_stats" in idata.groups() else None
    n_div = 0
    if stats is not None:
        for key in ("diverging", "divergences"):
            if key in stats:
                n_div = int(np.asarray(stats[key].values).sum())
                break
    max_rhat = float(np.nanmax(table["r_hat"])) if len(table) else float("nan")
    min_bulk = float(np.nanmin(table["ess_bulk"])) if len(table) else float("nan")
    min_tail = float(np.nanmin(table["ess_tail"])) if len(table) else float("nan")
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
        warnings.warn(msg, SamplingWarning, stacklevel=4)
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


def result_from_idata(model, idata, method: str, timing: dict, info: dict) -> FitResult:
    """Assemble the FitResult of a Bayesian fit."""
    d = model.design
    draws = derived_draws(model, idata)
    table = summarize_draws(draws)
    n_chains = int(idata.posterior.sizes["chain"])
    diag = sampler_diagnostics(idata, table, n_chains)
    diag["improper_drift"] = check_drift(model, idata, draws)
    fixed = table.loc[d.fixed_names, "estimate"].rename("estimate")
    fixed_sd = table.loc[d.fixed_names, "std_error"].rename("std_error")
    var_names = [f"var({c})" for c in d.component_names]
    variances = pd.Series(
        table.loc[var_names, "estimate"].to_numpy(), index=d.component_names, name="variance"
    )
    cor_rows = [r for r in table.index if r.startswith("cor(")]
    cors = pd.Series(
        table.loc[cor_rows, "estimate"].to_numpy(),
        index=[r[4:-1] for r in cor_rows],
        name="correlation",
        dtype=float,
    )
    disp_rows = [r for r in ("sigma", "alpha") if r in table.index]
    dispersion = table.loc[disp_rows, "estimate"].rename("dispersion")
    return FitResult(
        method=method,
        formula=d.spec.formula,
        family=d.family.name,
        link=d.family.link.name,
        fixed_effects=fixed,
        fixed_effects_se=fixed_sd,
        variance_components=variances,
        re_correlations=cors,
        dispersion=dispersion,
        loglik=None,
        n_params=len(table),
        nobs=d.n,
        table=table,
        random_effects=random_effect_means(model, idata),
        converged=diag["divergences"] == 0 and not (diag["max_r_hat"] > RHAT_LIMIT),
        convergence=diag,
        timing=timing,
        idata=idata,
        info=info,
    )
