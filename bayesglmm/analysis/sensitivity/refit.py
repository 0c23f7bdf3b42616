"""Prior sensitivity by refitting: :func:`sensitivity`, refits under alternative priors run
as a study (:func:`bayesglmm.study.run_study`), with power-scaling predictions of each refit
from the baseline fit and prior predictive checks of every alternative."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..._warn import warn
from ...errors import MethodError, OptionError, PriorError
from ...method_checks import check_planned
from ...methods import get_record
from ...options import integer, resolve_options
from .prior_ops import alternative_priors, scale_variance_priors, with_priors

BASELINE = "baseline"
#: keywords sensitivity sets itself (per task) or takes as its own arguments
_OWN = ("random_seed", "priors", "model", "method")


class PriorSensitivityWarning(UserWarning):
    """An alternative prior could not be fitted, or its propriety was not decided."""


def refit_task(model, priors, method: str, options: dict, keep_idata: bool, seed: int) -> dict:
    """One refit (a study task): the draws of the reported parameters and diagnostics."""
    import warnings

    from ..._arviz import import_arviz

    az = import_arviz()

    from .powerscale import parameter_draws

    m = with_priors(model, priors)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = m.fit(method=method, random_seed=int(seed % 2**32), **options)
    draws = parameter_draws(m, fit.idata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mcse = {k: float(az.mcse(v, method="median")) for k, v in draws.items()}
    det = fit.convergence["details"]
    out = {
        "draws": draws,
        "mcse_median": mcse,
        "divergences": int(det.get("divergences", 0)),
        "max_r_hat": float(det.get("max_r_hat", np.nan)),
        "min_ess_bulk": float(det.get("min_ess_bulk", np.nan)),
        "seconds": float(fit.timing.get("total", np.nan)),
        "warnings": sorted({str(w.message).splitlines()[0][:200] for w in caught}),
    }
    if keep_idata:
        groups = {
            g: fit.idata[g] for g in ("posterior", "constant_data") if g in fit.idata.groups()
        }
        out["idata"] = az.InferenceData(**groups)
    return out


@dataclass
class SensitivityResult:
    """What :func:`sensitivity` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        Tidy, one row per prior and parameter: ``median``, ``mean``, ``sd``, ``q2.5``,
        ``q97.5``, ``mcse_median``; ``shift`` (median minus the baseline median, in baseline
        posterior sds); ``predicted_median``, ``predicted_mcse`` and ``khat`` (importance
        weighting of the baseline draws; NaN where k-hat is too high) and ``z`` (refit
        minus prediction over their combined Monte Carlo error).
    fits : pandas.DataFrame
        Per prior: its description, divergences, max R-hat, min bulk ESS, seconds, warnings.
    prior_predictive : pandas.DataFrame
        Per prior and statistic (:func:`~bayesglmm.sensitivity.prior_predictive.
        prior_predictive_check`).
    priors : dict
        Name -> PriorSet.
    """

    table: pd.DataFrame
    fits: pd.DataFrame
    prior_predictive: pd.DataFrame
    priors: dict
    draws: dict = field(default_factory=dict, repr=False)
    study: object = field(default=None, repr=False)

    def plot(self, parameters=None, ax=None):
        """The posterior of each parameter under each prior (kernel densities)."""
        from .plots import plot_alternatives

        return plot_alternatives(self.draws, parameters, ax)

    def shifts(self) -> pd.DataFrame:
        """Median shift (in baseline sds), prior by parameter."""
        return self.table.pivot(index="parameter", columns="prior", values="shift")

    def __str__(self) -> str:
        cols = ["median", "shift", "predicted_median", "predicted_mcse", "khat", "z"]
        t = self.table.set_index(["prior", "parameter"])[cols]
        return "Prior sensitivity by refitting\n" + t.round(3).to_string()


def _alternatives(model, priors, scales) -> dict:
    alts = {BASELINE: model.priors}
    if scales is not None:
        vals = np.atleast_1d(np.asarray(scales, dtype=float)) if np.ndim(scales) else None
        if vals is None or vals.size == 0 or not np.all(np.isfinite(vals) & (vals > 0)):
            raise OptionError(f"scales must be positive numbers, got {scales!r}")
        for s in vals:
            if s != 1.0:
                alts[f"variance priors x{s:g}"] = scale_variance_priors(model.priors, s)
    if priors is not None:
        if not isinstance(priors, dict):
            raise OptionError(
                f"priors must be a dict name -> prior overrides, got {type(priors).__name__}"
            )
        for name, spec in priors.items():
            if not isinstance(name, str) or name == BASELINE or name in alts:
                raise OptionError(f"priors: name {name!r} is reserved or repeated")
            alts[name] = alternative_priors(model, spec, name)
    if len(alts) == 1:
        raise OptionError("sensitivity needs alternatives: pass priors={name: {...}} or scales")
    return alts


def _check_propriety(model, alts: dict, allow_improper: bool) -> None:
    from ...propriety import check_propriety

    for name, ps in alts.items():
        report = check_propriety(with_priors(model, ps))
        if report.proper is False and not allow_improper:
            raise PriorError(
                f"priors[{name!r}]: the posterior is improper under these priors "
                f"({report.reason}); drop this alternative or pass allow_improper=True"
            )
        if report.proper is None:
            warn(f"priors[{name!r}]: propriety undecided: {report.reason}", PriorSensitivityWarning)


def _check_model(model) -> None:
    from ...glmm import GLMM
    from ...results.result import FitResult

    if isinstance(model, GLMM):
        return
    if isinstance(model, FitResult):
        hint = (
            "pass the model it was fitted from: sensitivity(fit.model, ...)"
            if model.model is not None
            else "pass the GLMM it was fitted from (a loaded result holds no model)"
        )
        raise OptionError(f"sensitivity: model must be a GLMM, got a FitResult; {hint}")
    text = repr(model)
    text = text if len(text) <= 40 else text[:37] + "..."
    raise OptionError(f"sensitivity: model must be a GLMM, got a {type(model).__name__} ({text})")


def sensitivity(
    model,
    priors: dict | None = None,
    *,
    scales=None,
    method: str = "nuts",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = 1,
    predict: bool = True,
    prior_predictive: bool = True,
    prior_draws: int = 400,
    store=None,
    client=None,
    max_workers: int | None = None,
    progressbar: bool | None = None,
    **fit_options,
) -> SensitivityResult:
    """Refit ``model`` under alternative priors and report how each parameter moves.

    Parameters
    ----------
    model : GLMM
        The baseline: its own priors.
    priors : dict, optional
        Named alternatives: name -> overrides by key as ``GLMM(priors=...)`` (applied to
        the model's priors), e.g. ``{"half-t": {"Female": HalfStudentT(3, 2.5), "Male":
        HalfStudentT(3, 2.5)}}``, or name -> a whole PriorSet.
    scales : sequence of float, optional
        A grid: every variance-component prior with its scale multiplied by each value
        (``(0.5, 1, 2, 4)``; 1 is the baseline). Scale-free priors (power priors) stay.
    method : {"nuts", "gibbs"}
    draws, tune, chains : int
        Per refit.
    random_seed : int, optional
        The study's seed; each refit gets one derived from it and the prior's name.
    predict : bool
        Predict each refit from the baseline draws by importance weighting
        (:func:`~bayesglmm.sensitivity.importance.predict_from_idata`).
    prior_predictive : bool
        Prior predictive checks of every prior set, ``prior_draws`` simulated data sets each.
    store, client, max_workers, progressbar
        As :func:`bayesglmm.study.run_study`: a result store to resume from, a Dask client,
        local processes (1: in this process).
    **fit_options
        Further options of the fit (``target_accept``, ``nuts_sampler``, ...), checked
        before anything runs.

    Returns
    -------
    SensitivityResult

    Raises
    ------
    OptionError, PriorError
        For bad arguments, unknown prior keys, or an alternative whose posterior the
        propriety check finds improper, before anything is fitted.
    """
    from ..study import Task, derive_seed, run_study

    _check_model(model)
    if method not in ("nuts", "gibbs"):
        raise OptionError(f"method must be 'nuts' or 'gibbs' (a Bayesian fit), got {method!r}")
    for key in _OWN:
        if key in fit_options:
            raise OptionError(f"{key}= is set by sensitivity itself; pass it as its own argument")
    options = {"draws": draws, "tune": tune, "chains": chains, **fit_options}
    resolve_options(method, options)
    check_planned(get_record(method), model.design, options)  # across options; memory
    options.setdefault("progressbar", False)
    prior_draws = integer(1)("prior_draws", prior_draws)
    alts = _alternatives(model, priors, scales)
    _check_propriety(model, alts, bool(fit_options.get("allow_improper", False)))
    tasks = [
        Task(
            key=name,
            fn=refit_task,
            kwargs={
                "model": model,
                "priors": ps,
                "method": method,
                "options": options,
                "keep_idata": bool(predict and name == BASELINE),
            },
        )
        for name, ps in alts.items()
    ]
    study = run_study(
        tasks,
        store=store,
        client=client,
        max_workers=max_workers,
        random_seed=random_seed,
        progressbar=progressbar,
    )
    results = study.results
    errors = study.table.set_index("key")["error"]
    if BASELINE not in results:
        raise MethodError(f"the baseline fit failed: {errors[BASELINE]}")
    for key in study.failed:
        warn(
            f"the refit under priors {key!r} failed: {errors[key]}",
            PriorSensitivityWarning,
        )
    table = _table(model, alts, results, predict)
    fits = pd.DataFrame(
        [
            {
                "prior": name,
                "priors": "; ".join(f"{k}: {p.describe()}" for k, p in alts[name].all()),
                **{
                    k: results[name][k]
                    for k in ("divergences", "max_r_hat", "min_ess_bulk", "seconds")
                },
                "warnings": " | ".join(results[name]["warnings"]),
            }
            for name in alts
            if name in results
        ]
    )
    ppc = pd.DataFrame()
    if prior_predictive:
        from .prior_predictive import prior_predictive_check

        parts = []
        for name, ps in alts.items():
            seed = derive_seed(study.random_seed, f"prior predictive {name}")
            part = prior_predictive_check(model, ps, prior_draws, seed)
            part.insert(0, "prior", name)
            parts.append(part)
        ppc = pd.concat(parts, ignore_index=True)
    return SensitivityResult(
        table=table,
        fits=fits,
        prior_predictive=ppc,
        priors=alts,
        draws={k: results[k]["draws"] for k in alts if k in results},
        study=study,
    )


def _table(model, alts, results, predict: bool) -> pd.DataFrame:
    from .importance import predict_from_idata
    from .weights import weighted_summary

    base = {k: weighted_summary(v) for k, v in results[BASELINE]["draws"].items()}
    rows = []
    for name, ps in alts.items():
        if name not in results:
            continue
        res = results[name]
        pred = None
        if predict and name != BASELINE:
            pred = predict_from_idata(model, results[BASELINE]["idata"], alts[BASELINE], ps, name)
        for pname, x in res["draws"].items():
            s = weighted_summary(x)
            b = base[pname]
            row = {
                "prior": name,
                "parameter": pname,
                "median": s["median"],
                "mean": s["mean"],
                "sd": s["sd"],
                "q2.5": s["q2.5"],
                "q97.5": s["q97.5"],
                "mcse_median": res["mcse_median"][pname],
                "shift": (s["median"] - b["median"]) / b["sd"] if b["sd"] > 0 else np.nan,
                "predicted_median": np.nan,
                "predicted_mcse": np.nan,
                "khat": np.nan,
                "z": np.nan,
            }
            if pred is not None:
                p = pred.loc[pname]
                row["predicted_median"] = p["median"]
                row["predicted_mcse"] = p["mcse_median"]
                row["khat"] = p["khat"]
                err = np.hypot(row["mcse_median"], p["mcse_median"])
                row["z"] = (s["median"] - p["median"]) / err if err > 0 else np.nan
            rows.append(row)
    return pd.DataFrame(rows)
