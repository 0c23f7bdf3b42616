"""The tables of a simulation study: its estimates, one row per fit and parameter, and
their summary per method and parameter (bias, MSE, coverage), which says so when every
fit of a method failed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .runner import StudyResult

#: columns of the fit rows a replication returns
FIT_COLUMNS = ("estimate", "std_error", "lower", "upper")
#: columns of :attr:`SimulationStudy.estimates`
_TIDY_COLUMNS = (
    "rep", "method", "parameter", "truth", *FIT_COLUMNS, "converged", "seconds", "error",
    "warnings", "covered",
)  # fmt: skip


def summarize(estimates: pd.DataFrame) -> pd.DataFrame:
    """Per method and parameter: ``truth``, ``n`` (fits), ``n_failed``, ``converged``
    (fraction), ``mean``, ``bias`` and ``bias_mcse``, ``sd`` (empirical), ``mean_se``,
    ``mse``, ``rmse``, ``coverage`` (of the fits' intervals, where they have them),
    ``coverage_mcse`` and ``note``. Monte Carlo standard errors are ``sd / sqrt(n)`` and
    ``sqrt(c (1 - c) / n)``. A method none of whose fits succeeded has one row, without a
    parameter, whose ``note`` says so and gives the first error."""
    ok = estimates[estimates["parameter"].notna()]
    bad = estimates[estimates["parameter"].isna()]
    failed = bad.groupby("method", sort=False).size()
    rows = []
    for method in pd.unique(estimates["method"].dropna()):
        if method in set(ok["method"]):
            rows.extend(_method_rows(method, ok[ok["method"] == method], failed))
            continue
        first = bad.loc[bad["method"] == method, "error"].dropna()
        rows.append(
            {
                "method": method,
                "parameter": None,
                "n": 0,
                "n_failed": int(failed.get(method, 0)),
                "note": f"all {int(failed.get(method, 0))} fits failed (first: "
                f"{first.iloc[0] if len(first) else 'no error recorded'})",
            }
        )
    return pd.DataFrame(rows, columns=list(_SUMMARY_COLUMNS))


_SUMMARY_COLUMNS = (
    "method", "parameter", "truth", "n", "n_failed", "converged", "mean", "bias",
    "bias_mcse", "sd", "mean_se", "mse", "rmse", "coverage", "coverage_mcse", "note",
)  # fmt: skip


def _method_rows(method: str, ok: pd.DataFrame, failed: pd.Series) -> list[dict]:
    rows = []
    for param, g in ok.groupby("parameter", sort=False):
        err = g["estimate"] - g["truth"]
        n = int(g["estimate"].notna().sum())
        cov = g["covered"].dropna().astype(float)
        c = float(cov.mean()) if len(cov) else np.nan
        sd = float(g["estimate"].std(ddof=1)) if n > 1 else np.nan
        n_failed = int(failed.get(method, 0))
        rows.append(
            {
                "method": method,
                "parameter": param,
                "truth": float(g["truth"].iloc[0]),
                "n": n,
                "n_failed": n_failed,
                "converged": float(g["converged"].astype(float).mean()),
                "mean": float(g["estimate"].mean()),
                "bias": float(err.mean()),
                "bias_mcse": sd / np.sqrt(n) if n > 1 else np.nan,
                "sd": sd,
                "mean_se": float(g["std_error"].mean()),
                "mse": float((err**2).mean()),
                "rmse": float(np.sqrt((err**2).mean())),
                "coverage": c,
                "coverage_mcse": float(np.sqrt(c * (1 - c) / len(cov))) if len(cov) else np.nan,
                "note": f"{n_failed} fit(s) failed" if n_failed else None,
            }
        )
    return rows


def tidy_estimates(study: StudyResult, truth: pd.Series, methods: list[str]) -> pd.DataFrame:
    """The replications' rows; a replication that failed as a whole (its task raised) gives
    one row per method with the task's error, so that it counts as a failed fit of each."""
    frames = []
    for key, rows in study.results.items():
        rows = rows.copy()
        rows.insert(0, "rep", int(key.split("=", 1)[1]))
        frames.append(rows)
    for _, row in study.table[study.table["status"] == "failed"].iterrows():
        error = f"the replication failed: {row['error']}"
        rep = int(row["key"].split("=", 1)[1])
        frames.append(pd.DataFrame({"rep": rep, "method": methods, "error": error}))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out = out.reindex(columns=list(_TIDY_COLUMNS))
    out["parameter"] = out["parameter"].astype(object).where(out["parameter"].notna(), None)
    out["truth"] = out["parameter"].map(truth).astype(float)
    for c in FIT_COLUMNS:
        out[c] = out[c].astype(float)
    inside = (out["lower"] <= out["truth"]) & (out["truth"] <= out["upper"])
    has = out["lower"].notna() & out["upper"].notna() & out["truth"].notna()
    out["covered"] = inside.where(has)
    return out.sort_values("rep", kind="stable", ignore_index=True)
