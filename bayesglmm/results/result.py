"""One result type for every estimation method, built by one builder.

Every method hands its numbers to :func:`build_result`, which owns the schema:

``table``
    One row per parameter, in the order fixed effects (``design.fixed_names``), variances
    (``var(<component>)``), correlations (``cor(<group>|a,b)``), dispersion (``sigma``,
    ``alpha`` or PQL's ``dispersion``). Its columns are always :data:`TABLE_COLUMNS`:
    ``estimate``, ``std_error`` (standard error or posterior sd), ``lower``/``upper`` (95 %
    Wald, profile or posterior interval), ``median``, ``z``/``p`` (Wald test), ``r_hat``,
    ``ess_bulk``/``ess_tail`` (samplers) and ``mcse`` (Monte Carlo standard error); a column a
    method does not compute is NaN. :meth:`FitResult.summary` hides the all-NaN ones.
``convergence``
    Always the keys of :data:`CONVERGENCE_KEYS`: ``converged`` (bool), ``messages`` (what
    went wrong, for people), ``iterations`` (int or None), ``singular`` (bool: a variance at
    zero or a correlation at +-1), ``warnings`` (the warnings the fit raised, as text) and
    ``details`` (a dict of method-specific diagnostics: gradients, divergences, R-hat ...).
``info``
    Always the keys of :data:`INFO_KEYS`: ``kind`` (see :data:`KINDS`), ``options`` (the
    resolved options of the fit), ``priors`` (parameter -> prior description, Bayesian fits;
    else None), ``prior_swap`` (priors the method replaced, Bayesian fits), ``theta`` and
    ``theta_names`` (lists: the relative covariance parameters of likelihood fits, else
    None), ``groups`` (grouping factor -> number of levels), ``response`` (the response
    column and, for a two-level factor, which level counts as success) and ``details``
    (method-specific, JSON-serialisable).

The fields ``fixed_effects``, ``variance_components``, ``re_correlations`` and
``dispersion`` are read off the table, so they can never disagree with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..model.families import DISPERSION_NAMES
from .details import Covariance, Details, details_from_dict, details_of_kind

#: the kinds of fit; ``report()`` prints one layout per kind
KINDS = ("likelihood", "quasi_likelihood", "lmm", "bayesian", "monte_carlo", "marginal")
#: columns of every result's table, in this order
TABLE_COLUMNS = (
    "estimate",
    "std_error",
    "lower",
    "upper",
    "median",
    "z",
    "p",
    "r_hat",
    "ess_bulk",
    "ess_tail",
    "mcse",
)
#: keys of every result's ``convergence``
CONVERGENCE_KEYS = ("converged", "messages", "iterations", "singular", "warnings", "details")
#: keys of every result's ``info``
INFO_KEYS = (
    "kind",
    "options",
    "priors",
    "prior_swap",
    "theta",
    "theta_names",
    "groups",
    "response",
    "details",
)
#: table rows that hold a dispersion parameter
DISPERSION_ROWS = (*DISPERSION_NAMES, "dispersion")
#: Wald intervals are 95 %
LEVEL = 0.95


@dataclass
class FitResult:
    """Estimates from one fit of a GLMM (see the module docstring for the schema).

    Attributes
    ----------
    method : str
        ``"nuts"``, ``"gibbs"``, ``"laplace"``, ``"agq"``, ``"pql"``, ``"lmm"``, ...
    formula, family, link : str
    fixed_effects : pandas.Series
        Point estimates indexed by column names such as ``"Cross[RR]"`` (posterior means
        for Bayesian fits).
    fixed_effects_se : pandas.Series
        Standard errors (frequentist) or posterior standard deviations (Bayesian).
    variance_components : pandas.Series
        Variances of the random effects, indexed by grouping factor (``"Female"``) for random
        intercepts and by ``"group|column"`` for other terms.
    re_correlations : pandas.Series
        Correlations within correlated terms, indexed ``"group|a,b"``; empty if none.
    dispersion : pandas.Series
        ``sigma`` (Gaussian residual sd), ``alpha`` (negative-binomial shape) or PQL's
        estimated ``dispersion``; else empty.
    loglik : float or None
        Maximized (approximate) log-likelihood; None where undefined (Bayesian, PQL).
    n_params : int
        Number of estimated parameters counted by AIC and BIC.
    nobs : int
    table : pandas.DataFrame
        One row per parameter, columns :data:`TABLE_COLUMNS`.
    random_effects : dict of str to pandas.DataFrame
        Predicted random effects (conditional modes, BLUPs or posterior means) per term,
        one row per level; ``"<term> (conditional variance)"`` where computed.
    converged : bool
    convergence : dict
        Keys :data:`CONVERGENCE_KEYS`.
    timing : dict
        Seconds spent per stage; ``timing["total"]`` is the wall time of the fit.
    idata : arviz.InferenceData or None
        Draws, for Bayesian fits.
    info : dict
        Keys :data:`INFO_KEYS`; JSON-serialisable.
    vcov : Covariance or None
        The covariance behind the table's standard errors, with its kind (``"model"``,
        ``"robust"``, ``"bias_reduced"``, ``"posterior"``); kept in ``info["details"]``.
    details : Details
        The method's details, typed: always the details class of the result's kind
        (:mod:`bayesglmm.results.details`); their JSON form is ``info["details"]``.
    model : GLMM or None
        The model the result was fitted from (set by :meth:`bayesglmm.GLMM.fit`); not saved
        or pickled.
    """

    method: str
    formula: str
    family: str
    link: str
    fixed_effects: pd.Series
    fixed_effects_se: pd.Series
    variance_components: pd.Series
    re_correlations: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    dispersion: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    loglik: float | None = None
    n_params: int = 0
    nobs: int = 0
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    random_effects: dict = field(default_factory=dict)
    converged: bool = True
    convergence: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    idata: object = None
    info: dict = field(default_factory=dict)
    vcov: Covariance | None = None
    details: Details | None = None
    model: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # a result read from a file or built by hand: the typed parts from info["details"]
        raw = self.info.get("details") or {} if isinstance(self.info, dict) else {}
        if self.details is None:
            self.details = details_from_dict(raw, self.info.get("kind"), self.method)
        self.details = details_of_kind(self.details, self.kind)
        if self.vcov is None:
            self.vcov = Covariance.from_details(raw)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["model"] = None  # the model and its data stay out of pickles
        return state

    # ----------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"likelihood"``, ``"lmm"``, ``"bayesian"``, ... (see :data:`KINDS`)."""
        return self.info.get("kind", "likelihood")

    @property
    def aic(self) -> float | None:
        return None if self.loglik is None else -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float | None:
        if self.loglik is None:
            return None
        return -2.0 * self.loglik + math.log(self.nobs) * self.n_params

    @property
    def elapsed(self) -> float:
        return float(self.timing.get("total", float("nan")))

    def summary(self) -> pd.DataFrame:
        """One row per parameter: the table without the columns this method leaves empty."""
        return self.table.dropna(axis=1, how="all").copy()

    def report(self, tests=None) -> str:
        """A text report in the layout users of this kind of fit know: ``summary(glmer)``
        for likelihood fits, ``summary(lmer)`` for linear mixed models, brms's for
        Bayesian fits.

        Parameters
        ----------
        tests : sequence, optional
            Tests of this fit to show under the report, in the given order: results of
            :func:`bayesglmm.test_variance` (their full fit must be this one) and tables
            such as :func:`bayesglmm.anova`'s (a ``pandas.DataFrame``, shown as it prints).
        """
        from .report import format_report, format_tests

        text = format_report(self)
        if tests is None:
            return text
        return text + "\n" + format_tests(self, tests)

    def __repr__(self) -> str:
        lines = [
            f"FitResult(method={self.method!r}, kind={self.kind}, "
            f"family={self.family}/{self.link}, nobs={self.nobs}, converged={self.converged})",
            f"  formula: {self.formula}",
        ]
        if self.loglik is not None:
            lines.append(f"  logLik {self.loglik:.4f}  AIC {self.aic:.4f}  BIC {self.bic:.4f}")
        with pd.option_context("display.width", 120, "display.max_columns", 12):
            lines.append(self.summary().to_string(float_format=lambda v: f"{v:.4f}"))
        return "\n".join(lines)

    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        re_form=None,
        allow_new_levels: bool = False,
        type: str = "response",
        interval: str | None = None,
        level: float = 0.95,
        model=None,
        random_seed=None,
    ):
        """Predictions with all, some (``re_form="~(1|g)"``) or no (``"~0"``) random effects,
        on the fit's rows or ``newdata``; see :func:`bayesglmm.predict.predict`. ``model=``
        (the fitted GLMM) is needed after :meth:`load`."""
        from .predict import predict

        return predict(
            self, newdata, re_form, allow_new_levels, type, interval, level, model, random_seed
        )

    # ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the result to one file (a zip holding JSON and, if any, netCDF draws)."""
        from .io import save_result

        return save_result(self, path)

    @classmethod
    def load(cls, path: str | Path) -> FitResult:
        """Read a result written by :meth:`save`."""
        from .io import load_result

        return load_result(cls, path)


# --------------------------------------------------------------------------------------
# the builder


def wald_table(names, estimate, std_error, level: float = LEVEL) -> pd.DataFrame:
    """Rows of Wald estimates: interval ``estimate +- z * se`` and the z test."""
    from scipy import stats

    est = np.asarray(estimate, dtype=float)
    se = np.asarray(std_error, dtype=float)
    zq = stats.norm.ppf(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = est / se
    return pd.DataFrame(
        {
            "estimate": est,
            "std_error": se,
            "lower": est - zq * se,
            "upper": est + zq * se,
            "z": zval,
            "p": 2 * stats.norm.sf(np.abs(zval)),
        },
        index=pd.Index([str(n) for n in names], dtype=object),
    )


def parameter_rows(
    variances: pd.Series | None = None,
    correlations: pd.Series | None = None,
    dispersion: pd.Series | None = None,
) -> pd.DataFrame:
    """Point-estimate rows ``var(...)``, ``cor(...)`` and dispersion, for the table."""
    parts = []
    if variances is not None and len(variances):
        parts.append(pd.Series(variances.to_numpy(float), [f"var({k})" for k in variances.index]))
    if correlations is not None and len(correlations):
        parts.append(
            pd.Series(correlations.to_numpy(float), [f"cor({k})" for k in correlations.index])
        )
    if dispersion is not None and len(dispersion):
        parts.append(pd.Series(dispersion.to_numpy(float), [str(k) for k in dispersion.index]))
    if not parts:
        return pd.DataFrame(columns=["estimate"], dtype=float)
    s = pd.concat(parts)
    return pd.DataFrame({"estimate": s.to_numpy()}, index=pd.Index(s.index, dtype=object))


def standard_table(design, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the columns :data:`TABLE_COLUMNS` and rows in the schema's order.

    Rows missing for a fixed effect or variance component of ``design`` are an error (a
    method must report every parameter); columns outside the schema are refused too.
    """
    extra = [c for c in table.columns if c not in TABLE_COLUMNS]
    if extra:
        raise ValueError(f"result table columns {extra} are not in the schema {TABLE_COLUMNS}")
    table = table.copy()
    table.index = pd.Index([str(i) for i in table.index], dtype=object)
    fixed = [str(n) for n in design.fixed_names]
    variances = [f"var({c})" for c in design.component_names]
    missing = [r for r in fixed + variances if r not in table.index]
    if missing:
        raise ValueError(f"result table lacks rows {missing}")
    cors = [r for r in table.index if r.startswith("cor(")]
    disp = [r for r in DISPERSION_ROWS if r in table.index]
    order = fixed + variances + cors + disp
    unknown = [r for r in table.index if r not in order]
    if unknown:
        raise ValueError(f"result table rows {unknown} are not parameters of the model")
    out = table.reindex(index=order, columns=list(TABLE_COLUMNS)).astype(float)
    out.index.name = "parameter"
    return out


def _series(table: pd.DataFrame, rows: list[str], name: str, strip: int = 0) -> pd.Series:
    idx = [r[strip:-1] if strip else r for r in rows]
    return pd.Series(
        table.loc[rows, "estimate"].to_numpy(float),
        index=pd.Index(idx, dtype=object),
        name=name,
        dtype=float,
    )


def response_info(design) -> dict:
    """The response column and, for a factor response, which level counts as success."""
    r = design.spec.response
    out = {"column": r.expr if r.kind == "column" else f"cbind({r.expr}, {r.failures_expr})"}
    levels = getattr(design, "response_levels", None)
    if levels:
        out["levels"] = dict(levels)
    return out


def build_result(
    *,
    method: str,
    kind: str,
    design,
    table: pd.DataFrame,
    converged: bool,
    n_params: int,
    timing: dict,
    loglik: float | None = None,
    random_effects: dict | None = None,
    messages: list[str] | tuple = (),
    iterations: int | None = None,
    singular: bool = False,
    warnings: list[str] | tuple = (),
    convergence_details: dict | None = None,
    options: dict | None = None,
    priors: dict | None = None,
    prior_swap: dict | None = None,
    theta=None,
    theta_names=None,
    details: Details | dict | None = None,
    vcov: Covariance | None = None,
    idata=None,
    model=None,
) -> FitResult:
    """The one way every method makes its :class:`FitResult` (schema: module docstring).

    Parameters
    ----------
    method : str
        The registered method name.
    kind : str
        One of :data:`KINDS`; chooses the report layout.
    design : bayesglmm.design.Design
    table : pandas.DataFrame
        One row per parameter (fixed-effect names, ``var(...)``, ``cor(...)``, dispersion),
        any subset of :data:`TABLE_COLUMNS`.
    converged, iterations, singular, messages, warnings, convergence_details
        Go to ``convergence``.
    options, priors, prior_swap, theta, theta_names
        Go to ``info``.
    details : Details or dict
        The method's details; their JSON form, with that of ``vcov``, is ``info["details"]``.
    vcov : Covariance, optional
    model : GLMM, optional
        The model fitted.
    """
    from .io import jsonable

    if kind not in KINDS:
        raise ValueError(f"unknown result kind {kind!r}; kinds: {KINDS}")
    if not isinstance(details, Details):
        if vcov is None:
            vcov = Covariance.from_details(details or {})
        details = details_from_dict(details or {}, kind, method)
    details = details_of_kind(details, kind)
    details_json = {**details.to_dict(), **(vcov.to_details() if vcov is not None else {})}
    table = standard_table(design, table)
    fixed_rows = [str(n) for n in design.fixed_names]
    var_rows = [f"var({c})" for c in design.component_names]
    cor_rows = [r for r in table.index if r.startswith("cor(")]
    disp_rows = [r for r in DISPERSION_ROWS if r in table.index]
    fixed = _series(table, fixed_rows, "estimate")
    fixed_se = pd.Series(
        table.loc[fixed_rows, "std_error"].to_numpy(float), index=fixed.index, name="std_error"
    )
    convergence = {
        "converged": bool(converged),
        "messages": [str(m) for m in messages],
        "iterations": None if iterations is None else int(iterations),
        "singular": bool(singular),
        "warnings": [str(w) for w in warnings],
        "details": jsonable(dict(convergence_details or {})),
    }
    info = {
        "kind": kind,
        "options": jsonable(dict(options or {})),
        "priors": None if priors is None else jsonable(dict(priors)),
        "prior_swap": None if prior_swap is None else jsonable(dict(prior_swap)),
        "theta": None if theta is None else [float(v) for v in np.ravel(theta)],
        "theta_names": None if theta_names is None else [str(n) for n in theta_names],
        "groups": {t.group: int(t.n_levels) for t in design.random},
        "response": response_info(design),
        "details": jsonable(details_json),
    }
    return FitResult(
        method=method,
        formula=design.spec.formula,
        family=design.family.name,
        link=design.family.link.name,
        fixed_effects=fixed,
        fixed_effects_se=fixed_se,
        variance_components=_series(table, var_rows, "variance", strip=4)
        if var_rows
        else pd.Series(dtype=float, name="variance"),
        re_correlations=_series(table, cor_rows, "correlation", strip=4),
        dispersion=_series(table, disp_rows, "dispersion"),
        loglik=None if loglik is None else float(loglik),
        n_params=int(n_params),
        nobs=int(design.n),
        table=table,
        random_effects=dict(random_effects or {}),
        converged=bool(converged),
        convergence=convergence,
        timing=dict(timing),
        idata=idata,
        info=info,
        vcov=vcov,
        details=details,
        model=model,
    )
