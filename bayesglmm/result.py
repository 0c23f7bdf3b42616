"""One result type for every estimation method.

A :class:`FitResult` carries point estimates, their uncertainty, variance components, the
log-likelihood where it is defined, convergence information and timing, for NUTS, Gibbs,
Laplace, AGQ, PQL and the rest alike, so that comparing methods is a table join.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

_FORMAT_VERSION = 1


@dataclass
class FitResult:
    """Estimates from one fit of a GLMM.

    Attributes
    ----------
    method : str
        ``"nuts"``, ``"gibbs"``, ``"laplace"``, ``"agq"``, ``"pql"``, ...
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
        ``sigma`` (Gaussian residual sd) or ``alpha`` (negative-binomial shape); else empty.
    loglik : float or None
        Maximized (approximate) log-likelihood; None where undefined (Bayesian fits).
    n_params : int
        Number of estimated parameters counted by AIC and BIC.
    nobs : int
    table : pandas.DataFrame
        One row per parameter: ``estimate``, ``std_error``, ``lower``, ``upper`` and
        method-specific columns (``r_hat``, ``ess_bulk`` ...). Shown by :meth:`summary`.
    random_effects : dict of str to pandas.DataFrame
        Predicted random effects (conditional modes or posterior means) per grouping
        factor, one row per level.
    converged : bool
    convergence : dict
        Method-specific diagnostics (messages, iterations, divergences, R-hat ...).
    timing : dict
        Seconds spent per stage; ``timing["total"]`` is the wall time of the fit.
    idata : arviz.InferenceData or None
        Draws, for Bayesian fits.
    info : dict
        Anything else worth keeping (priors used, options); JSON-serialisable.
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

    # ----------------------------------------------------------------------------------
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
        """One row per parameter with estimate, uncertainty and interval."""
        return self.table.copy()

    def report(self) -> str:
        """A text summary in the layout of lme4's ``summary(glmer(...))``."""
        from .frequentist.summary import format_summary

        return format_summary(self)

    def __repr__(self) -> str:
        lines = [
            f"FitResult(method={self.method!r}, family={self.family}/{self.link}, "
            f"nobs={self.nobs}, converged={self.converged})",
            f"  formula: {self.formula}",
        ]
        if self.loglik is not None:
            lines.append(f"  logLik {self.loglik:.4f}  AIC {self.aic:.4f}  BIC {self.bic:.4f}")
        with pd.option_context("display.width", 120, "display.max_columns", 12):
            lines.append(self.table.to_string(float_format=lambda v: f"{v:.4f}"))
        return "\n".join(lines)

    # ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the result to one file (a zip holding JSON and, if any, netCDF draws)."""
        path = Path(path)
        payload = {
            "format_version": _FORMAT_VERSION,
            "method": self.method,
            "formula": self.formula,
            "family": self.family,
            "link": self.link,
            "fixed_effects": _series_to(self.fixed_effects),
            "fixed_effects_se": _series_to(self.fixed_effects_se),
            "variance_components": _series_to(self.variance_components),
            "re_correlations": _series_to(self.re_correlations),
            "dispersion": _series_to(self.dispersion),
            "loglik": self.loglik,
            "n_params": self.n_params,
            "nobs": self.nobs,
            "table": _frame_to(self.table),
            "random_effects": {k: _frame_to(v) for k, v in self.random_effects.items()},
            "converged": bool(self.converged),
            "convergence": _jsonable(self.convergence),
            "timing": _jsonable(self.timing),
            "info": _jsonable(self.info),
        }
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("result.json", json.dumps(payload, allow_nan=True))
            if self.idata is not None:
                zf.writestr("idata.nc", _idata_bytes(self.idata))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FitResult:
        """Read a result written by :meth:`save`."""
        with zipfile.ZipFile(path) as zf:
            payload = json.loads(zf.read("result.json"))
            idata = _idata_from(zf.read("idata.nc")) if "idata.nc" in zf.namelist() else None
        return cls(
            method=payload["method"],
            formula=payload["formula"],
            family=payload["family"],
            link=payload["link"],
            fixed_effects=_series_from(payload["fixed_effects"]),
            fixed_effects_se=_series_from(payload["fixed_effects_se"]),
            variance_components=_series_from(payload["variance_components"]),
            re_correlations=_series_from(payload["re_correlations"]),
            dispersion=_series_from(payload["dispersion"]),
            loglik=payload["loglik"],
            n_params=payload["n_params"],
            nobs=payload["nobs"],
            table=_frame_from(payload["table"]),
            random_effects={k: _frame_from(v) for k, v in payload["random_effects"].items()},
            converged=payload["converged"],
            convergence=payload["convergence"],
            timing=payload["timing"],
            idata=idata,
            info=payload["info"],
        )


def _series_to(s: pd.Series) -> dict:
    return {
        "name": s.name,
        "index": [str(i) for i in s.index],
        "index_name": s.index.name,
        "values": s.tolist(),
    }


def _series_from(d: dict) -> pd.Series:
    return pd.Series(
        d["values"],
        index=pd.Index(d["index"], name=d.get("index_name")),
        name=d["name"],
        dtype=float,
    )


def _frame_to(df: pd.DataFrame) -> dict:
    return {
        "index": [str(i) for i in df.index],
        "index_name": df.index.name,
        "columns": [str(c) for c in df.columns],
        "dtypes": [str(t) for t in df.dtypes],
        "data": [[_scalar(v) for v in row] for row in df.itertuples(index=False)],
    }


def _frame_from(d: dict) -> pd.DataFrame:
    df = pd.DataFrame(
        d["data"], columns=d["columns"], index=pd.Index(d["index"], name=d["index_name"])
    )
    for col, dtype in zip(d["columns"], d["dtypes"], strict=True):
        if dtype.startswith(("float", "int", "bool")):
            df[col] = df[col].astype(dtype)
    return df


def _scalar(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, pd.Series):
        return {str(k): _scalar(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    return repr(obj)


def _idata_bytes(idata) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "idata.nc"
        idata.to_netcdf(str(f))
        return f.read_bytes()


def _idata_from(data: bytes):
    import tempfile

    import arviz as az

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "idata.nc"
        f.write_bytes(data)
        idata = az.from_netcdf(str(f))
        idata.load() if hasattr(idata, "load") else None
        for grp in idata.groups():
            getattr(idata, grp).load()
    return idata


def _compare_rank(key: str) -> int:
    """Fixed effects, then variances, correlations, dispersion and the log-likelihood."""
    if key == "logLik":
        return 4
    if key in ("sigma", "alpha"):
        return 3
    if key.startswith("cor("):
        return 2
    return 1 if key.startswith("var(") else 0


def compare(results: dict[str, FitResult] | list[FitResult]) -> pd.DataFrame:
    """Side-by-side estimates of several fits: one column per fit, one row per parameter."""
    if isinstance(results, list):
        results = {r.method: r for r in results}
    cols = {}
    for label, r in results.items():
        parts = [r.fixed_effects, r.variance_components.rename(lambda k: f"var({k})")]
        if len(r.re_correlations):
            parts.append(r.re_correlations.rename(lambda k: f"cor({k})"))
        if len(r.dispersion):
            parts.append(r.dispersion)
        if r.loglik is not None:
            parts.append(pd.Series({"logLik": r.loglik}))
        cols[label] = pd.concat(parts)
    seen = dict.fromkeys(key for series in cols.values() for key in series.index)
    order = sorted(seen, key=_compare_rank)  # stable: first-seen order within a kind
    return pd.DataFrame(cols).reindex(order)
