"""Simulation studies and the parametric bootstrap, on :func:`~bayesglmm.study.run_study`.

Both simulate responses on a model's design with :func:`bayesglmm.simulate` and refit them:
one task per replication, which fits every method on the same simulated data (the data and
each fit get seeds spawned from the task's seed). A method that raises on one data set is
recorded in that replication's rows (``error``), not retried: the same data would fail
again, and the failure rate is part of what a simulation study measures.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...errors import OptionError
from ...model.design import refuse_extensions
from ...model.families import DISPERSION_NAMES
from ...options import integer, known_options, resolve_options
from .runner import StudyResult, run_tasks
from .summary import FIT_COLUMNS, summarize, tidy_estimates
from .tasks import Task
from .truth import check_truth

# ------------------------------------------------------------------------------------------
# the task (runs on a worker)


def fit_replicate(
    model_args: dict, truth: dict, methods: dict, seed: int, simulate_args: dict | None = None
) -> pd.DataFrame:
    """Simulate one data set from ``truth`` and fit it by each method.

    Returns one row per method and parameter: ``method``, ``parameter``, ``estimate``,
    ``std_error``, ``lower``, ``upper``, ``converged``, ``seconds`` (of the fit),
    ``error`` and ``warnings`` (texts of the warnings the fit raised, which a study
    collects here instead of printing them once per replication).
    """
    from ...glmm import GLMM
    from ...model.simulate import simulate

    data_ss, *fit_ss = np.random.SeedSequence(seed).spawn(1 + len(methods))
    sim = simulate(
        model_args["formula"],
        model_args["data"],
        family=model_args["family"],
        link=model_args["link"],
        random_seed=_int_seed(data_ss),
        **truth,
        **(simulate_args or {}),
    )
    model = GLMM(model_args["formula"], sim, family=model_args["family"], link=model_args["link"])
    model.priors = model_args["priors"]  # the study's priors, not defaults refitted to the data
    frames = []
    for (label, (method, options)), ss in zip(methods.items(), fit_ss, strict=True):
        opts = dict(options)
        known = known_options(method)
        if "random_seed" in known and "random_seed" not in opts:
            opts["random_seed"] = _int_seed(ss)
        if "progressbar" in known:
            opts["progressbar"] = False
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fit = model.fit(method, **opts)
            except Exception as err:  # noqa: BLE001 - recorded in the rows (module docstring)
                frames.append(
                    pd.DataFrame({"method": [label], "parameter": [None], "error": [repr(err)]})
                )
                continue
        rows = fit.table.loc[:, list(FIT_COLUMNS)].copy()
        rows.insert(0, "parameter", rows.index.astype(str))
        rows.insert(0, "method", label)
        rows["converged"] = bool(fit.converged)
        rows["seconds"] = time.perf_counter() - start
        rows["error"] = None
        texts = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
        rows["warnings"] = "; ".join(texts) if texts else None
        frames.append(rows.reset_index(drop=True))
    return pd.concat(frames, ignore_index=True)


def _int_seed(ss: np.random.SeedSequence) -> int:
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


# ------------------------------------------------------------------------------------------
# simulation study


@dataclass
class SimulationStudy:
    """What :func:`simulation_study` returns.

    Attributes
    ----------
    estimates : DataFrame
        One row per replication, method and parameter: ``rep``, ``method``, ``parameter``,
        ``truth``, ``estimate``, ``std_error``, ``lower``, ``upper``, ``covered``,
        ``converged``, ``seconds``, ``error``, ``warnings``.
    summary : DataFrame
        One row per method and parameter (see :func:`summarize`).
    truth : Series
        True values by table row name (``x``, ``var(g)``, ``cor(g|1,x)``, ``sigma``).
    study : StudyResult
        The run (per-replication status, workers, seconds, seeds).
    """

    estimates: pd.DataFrame
    summary: pd.DataFrame
    truth: pd.Series
    study: StudyResult

    def __repr__(self) -> str:
        n = self.estimates["rep"].nunique() if len(self.estimates) else 0
        with pd.option_context("display.width", 120, "display.max_columns", 14):
            return f"SimulationStudy({n} replications)\n{self.summary.to_string()}"


def simulation_study(
    model,
    methods="laplace",
    n_rep: int = 100,
    fixed_effects=None,
    variance_components=None,
    correlations=None,
    dispersion=None,
    fit_options: Mapping | None = None,
    store=None,
    client=None,
    max_workers: int | None = None,
    random_seed: int | None = None,
    progressbar: bool | None = None,
    worker_timeout: float | None = 60.0,
) -> SimulationStudy:
    """Simulate ``n_rep`` data sets on a model's design and fit each by every method.

    Parameters
    ----------
    model : GLMM, ModelSpec or str
        The design (formula, data, family, link, priors) to simulate on; a spec (or a spec
        name such as ``"salamander"``) also gives default true values, its first reference.
    methods : str or list of str
        Methods to fit (:func:`bayesglmm.available_methods`).
    n_rep : int
        Replications (data sets).
    fixed_effects, variance_components, correlations, dispersion
        True values, as :func:`bayesglmm.simulate` takes them (``variance_components`` are
        variances by component name; ``dispersion`` the Gaussian residual sd or the negative
        binomial alpha).
    fit_options : dict, optional
        Options per method, e.g. ``{"nuts": {"draws": 500}}``, checked before anything runs.
        Methods that take ``random_seed`` get a derived one unless given here.
    store, client, max_workers, random_seed, progressbar, worker_timeout
        As :func:`~bayesglmm.study.run_study` (one task per replication).

    Returns
    -------
    SimulationStudy
        ``.estimates`` (tidy, one row per fit and parameter) and ``.summary`` (bias, MSE,
        coverage per method and parameter, with Monte Carlo standard errors).
    """
    n_rep = integer(1)("n_rep", n_rep)
    model_args, spec_truth, design = _model_args(model)
    truth = {
        "fixed_effects": fixed_effects,
        "variance_components": variance_components,
        "correlations": correlations,
        "dispersion": dispersion,
    }
    if fixed_effects is None:
        if spec_truth is None:
            raise OptionError("fixed_effects (the true values) must be given for a GLMM")
        truth.update({k: v for k, v in spec_truth.items() if truth.get(k) is None})
    truth = {k: v for k, v in truth.items() if v is not None}
    check_truth(design, truth, model_args["family"])
    resolved = _methods(methods, fit_options)
    truth_series = _truth_series(model_args, truth)
    tasks = [
        Task(
            f"rep={r}",
            fit_replicate,
            {"model_args": model_args, "truth": truth, "methods": resolved},
        )
        for r in range(n_rep)
    ]
    study = run_tasks(
        tasks, store, client, max_workers, random_seed, progressbar, desc="simulation",
        worker_timeout=worker_timeout,
    )  # fmt: skip
    estimates = tidy_estimates(study, truth_series, list(resolved))
    return SimulationStudy(estimates, summarize(estimates), truth_series, study)


# ------------------------------------------------------------------------------------------
# parametric bootstrap


@dataclass
class BootstrapResult:
    """What :func:`parametric_bootstrap` returns.

    Attributes
    ----------
    replicates : DataFrame
        One row per bootstrap refit and parameter (as :attr:`SimulationStudy.estimates`,
        with the original estimate as ``truth``).
    summary : DataFrame
        Per parameter: ``estimate`` (the original fit), ``boot_mean``, ``bias``,
        ``std_error`` (sd of the refits), ``lower`` and ``upper`` (percentile interval at
        ``level``), ``n`` (refits used), ``n_failed``; when every refit failed, one row
        whose ``note`` says so with the first error.
    study : StudyResult
    """

    replicates: pd.DataFrame
    summary: pd.DataFrame
    level: float
    study: StudyResult

    def __repr__(self) -> str:
        with pd.option_context("display.width", 120, "display.max_columns", 10):
            return f"BootstrapResult(level={self.level:g})\n{self.summary.to_string()}"


def parametric_bootstrap(
    result,
    n_boot: int = 200,
    model=None,
    level: float = 0.95,
    fit_options: Mapping | None = None,
    store=None,
    client=None,
    max_workers: int | None = None,
    random_seed: int | None = None,
    progressbar: bool | None = None,
    worker_timeout: float | None = 60.0,
) -> BootstrapResult:
    """Parametric bootstrap of a fit: simulate from its estimates, refit, ``n_boot`` times.

    Parameters
    ----------
    result : FitResult
        The fit; its estimates (fixed effects, variance components, correlations,
        dispersion) are the truth of the simulations and its method and options refit them.
    n_boot : int
    model : GLMM, optional
        The model ``result`` was fitted from (needed only after ``FitResult.load``).
    level : float
        Level of the percentile intervals.
    fit_options : dict, optional
        Options of the refits, replacing the original fit's.
    store, client, max_workers, random_seed, progressbar, worker_timeout
        As :func:`~bayesglmm.study.run_study`.
    """
    from ...options import real
    from ...results.predict import model_of

    n_boot = integer(2)("n_boot", n_boot)
    level = real(0, 1)("level", level)
    glmm = model_of(result, model)
    method = result.method
    if fit_options is None:
        given = (result.info or {}).get("options") or {}
        keep = set(known_options(method)) - {"progressbar", "random_seed"}
        fit_options = {k: v for k, v in given.items() if k in keep and v is not None}
    truth = {
        "fixed_effects": result.fixed_effects.to_dict(),
        "variance_components": result.variance_components.to_dict(),
        "correlations": result.re_correlations.to_dict() or None,
        "dispersion": _dispersion_of(result),
    }
    sim = simulation_study(
        glmm,
        [method],
        n_boot,
        **truth,
        fit_options={method: dict(fit_options)},
        store=store,
        client=client,
        max_workers=max_workers,
        random_seed=random_seed,
        progressbar=progressbar,
        worker_timeout=worker_timeout,
    )
    reps = sim.estimates
    rows = []
    alpha = (1 - level) / 2
    n_failed = int(reps["parameter"].isna().sum())
    for param, g in reps[reps["parameter"].notna()].groupby("parameter", sort=False):
        est = g["estimate"].dropna()
        rows.append(
            {
                "parameter": param,
                "estimate": float(g["truth"].iloc[0]),
                "boot_mean": float(est.mean()),
                "bias": float(est.mean() - g["truth"].iloc[0]),
                "std_error": float(est.std(ddof=1)),
                "lower": float(est.quantile(alpha)),
                "upper": float(est.quantile(1 - alpha)),
                "n": len(est),
                "n_failed": n_failed,
            }
        )
    if not rows:  # every refit failed
        first = reps["error"].dropna()
        rows.append(
            {
                "parameter": None,
                "n": 0,
                "n_failed": n_failed,
                "note": f"all {n_failed} refits failed (first: "
                f"{first.iloc[0] if len(first) else 'no error recorded'})",
            }
        )
    return BootstrapResult(reps, pd.DataFrame(rows), level, sim.study)


# ------------------------------------------------------------------------------------------
# helpers


def _model_args(model) -> tuple[dict, dict | None, object]:
    from ...glmm import GLMM
    from ..specs import ModelSpec, load_spec

    spec = None
    if isinstance(model, str | os.PathLike):
        spec = load_spec(model)
        model = spec.build()
    elif isinstance(model, ModelSpec):
        spec, model = model, model.build()
    if not isinstance(model, GLMM):
        raise OptionError(
            f"model must be a GLMM, a ModelSpec or a spec name, got {type(model).__name__}"
        )
    refuse_extensions(model.design, "simulation studies and the parametric bootstrap")
    args = {
        "formula": model.formula,
        "data": model.data,
        "family": model.design.family.name,
        "link": model.design.family.link.name,
        "priors": model.priors,
    }
    truth = None
    if spec is not None and spec.references:
        ref = spec.references[0]
        truth = {
            "fixed_effects": dict(ref.fixed_effects),
            "variance_components": dict(ref.variance_components),
        }
    return args, truth, model.design


def _methods(methods, fit_options) -> dict:
    from ...methods import available_methods

    if isinstance(methods, str):
        methods = [methods]
    methods = list(methods)
    if not methods:
        raise OptionError("methods must name at least one method")
    known = available_methods()
    fit_options = dict(fit_options or {})
    for m in fit_options:
        if m not in methods:
            raise OptionError(f"fit_options has method {m!r}, which is not in methods {methods}")
    out = {}
    for m in methods:
        if m not in known:
            raise OptionError(f"methods: unknown method {m!r}; known: {', '.join(known)}")
        if m in out:
            raise OptionError(f"methods: {m!r} is given twice")
        opts = dict(fit_options.get(m) or {})
        resolve_options(m, opts)  # one-line OptionError before anything runs
        out[m] = (m, opts)
    return out


def _truth_series(model_args: dict, truth: dict) -> pd.Series:
    values = dict(truth.get("fixed_effects") or {})
    values.update({f"var({k})": v for k, v in (truth.get("variance_components") or {}).items()})
    values.update({f"cor({k})": v for k, v in (truth.get("correlations") or {}).items()})
    if truth.get("dispersion") is not None:
        name = "sigma" if model_args["family"] == "gaussian" else "alpha"
        values[name] = truth["dispersion"]
    return pd.Series(values, dtype=float, name="truth")


def _dispersion_of(result):
    for name in DISPERSION_NAMES:
        if name in result.dispersion.index:
            return float(result.dispersion[name])
    return None
