"""A text summary of a likelihood fit in the layout of lme4's ``summary(glmer(...))``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..result import FitResult

_TITLES = {
    "laplace": "Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)",
    "agq": "Generalized linear mixed model fit by maximum likelihood (Adaptive Gauss-Hermite "
    "Quadrature, nAGQ = {n_quad})",
    "pql": "Generalized linear mixed model fit by penalized quasi-likelihood (PQL)",
}


def _fmt(v: float, digits: int = 4) -> str:
    return "NA" if v is None or not np.isfinite(v) else f"{v:#.{digits}g}"


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    for cut, s in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return s
    return ""


def _pvalue(p: float) -> str:
    if not np.isfinite(p):
        return "NA"
    return "<2e-16" if p < 2e-16 else (f"{p:.3g}" if p < 1e-4 else f"{p:.6f}")


def _split_component(name: str) -> tuple[str, str]:
    if "|" in name:
        g, c = name.rsplit("|", 1)
        return g, "(Intercept)" if c == "Intercept" else c
    return name, "(Intercept)"


def _random_table(r: FitResult) -> list[str]:
    rows = []
    for comp, var in r.variance_components.items():
        g, col = _split_component(str(comp))
        rows.append([g, col, var])
    if r.family == "gaussian" and "sigma" in r.dispersion.index:
        s = float(r.dispersion["sigma"])
        rows.append(["Residual", "", s**2])
    # correlations: "g|a,b" -> lower triangle under the row of b
    cors: dict[tuple[str, str], dict[str, float]] = {}
    for key, val in r.re_correlations.items():
        g, pair = str(key).rsplit("|", 1)
        a, b = pair.split(",")
        cors.setdefault((g, "(Intercept)" if b == "Intercept" else b), {})[a] = val
    has_cor = bool(cors)
    width_g = max([len("Groups")] + [len(x[0]) for x in rows])
    width_n = max([len("Name")] + [len(x[1]) for x in rows])
    head = f" {'Groups':<{width_g}} {'Name':<{width_n}} Variance Std.Dev."
    lines = [head + (" Corr" if has_cor else "")]
    last_g = None
    seen: dict[str, list[str]] = {}
    for g, col, var in rows:
        shown = g if g != last_g else ""
        last_g = g
        line = f" {shown:<{width_g}} {col:<{width_n}} {_fmt(var):<8} {_fmt(np.sqrt(var)):<8}"
        prev = seen.setdefault(g, [])
        if has_cor and (g, col) in cors:
            vals = cors[(g, col)]
            line += " " + " ".join(
                f"{vals[a if a != '(Intercept)' else 'Intercept']:5.2f}"
                if (a if a != "(Intercept)" else "Intercept") in vals
                else "     "
                for a in prev
            )
        prev.append(col)
        lines.append(line.rstrip())
    return lines


def format_summary(r: FitResult) -> str:
    """lme4-like summary: title, family, formula, information criteria, scaled residuals,
    random effects (Variance, Std.Dev., Corr), number of groups, fixed effects with Wald
    z tests, and any convergence or singular-fit messages."""
    info = r.info or {}
    title = _TITLES.get(r.method, f"Generalized linear mixed model fit by {r.method}")
    title = title.format(n_quad=info.get("n_quad", "?"))
    out = [title, f" Family: {r.family}  ( {r.link} )", f"Formula: {r.formula}", ""]
    if r.loglik is not None:
        dev = -2.0 * r.loglik
        df_resid = info.get("df_resid", r.nobs - r.n_params)
        vals = [r.aic, r.bic, r.loglik, dev]
        cells = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        out.append(" ".join(f"{c:>9}" for c in cells))
        out.append(" ".join(f"{v:>9.1f}" for v in vals) + f" {df_resid:>9d}")
        out.append("")
    if "pearson_residuals" in info:
        out.append("Scaled residuals: ")
        out.append(" ".join(f"{c:>8}" for c in ["Min", "1Q", "Median", "3Q", "Max"]))
        out.append(" ".join(f"{v:>8.4f}" for v in info["pearson_residuals"]))
        out.append("")
    out.append("Random effects:")
    out.extend(_random_table(r))
    groups = info.get("groups", {})
    grp = "; ".join(f"{g}, {n}" for g, n in groups.items())
    out.append(f"Number of obs: {r.nobs}" + (f", groups:  {grp}" if grp else ""))
    if len(r.dispersion) and r.family != "gaussian":
        for k, v in r.dispersion.items():
            out.append(f"Dispersion parameter ({k}): {_fmt(float(v))}")
    out.append("")
    out.append("Fixed effects:")
    fx = r.table.loc[list(r.fixed_effects.index)]
    frame = pd.DataFrame(
        {
            "Estimate": fx["estimate"].map(lambda v: f"{v:.4f}"),
            "Std. Error": fx["std_error"].map(lambda v: f"{v:.4f}" if np.isfinite(v) else "NA"),
            "z value": fx.get("z", pd.Series(np.nan, index=fx.index)).map(
                lambda v: f"{v:.3f}" if np.isfinite(v) else "NA"
            ),
            "Pr(>|z|)": fx.get("p", pd.Series(np.nan, index=fx.index)).map(_pvalue),
            "": fx.get("p", pd.Series(np.nan, index=fx.index)).map(_stars),
        }
    )
    out.append(frame.to_string())
    out.append("---")
    out.append("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1")
    conv = r.convergence or {}
    if conv.get("singular"):
        out.append("boundary (singular) fit: " + "; ".join(conv.get("singular_components", [])))
    if not r.converged:
        out.append(
            f"optimizer did not converge: {conv.get('message', '')}; max|grad| "
            f"{_fmt(conv.get('max_abs_gradient', np.nan), 3)}"
        )
    return "\n".join(out)
