"""Text reports of a fit, one layout per kind of fit (``FitResult.report()``).

- likelihood fits (Laplace, AGQ) and PQL: the layout of lme4's ``summary(glmer(...))``;
- linear mixed models: the layout of ``summary(lmer(...))``, REML criterion or ML fit;
- Monte Carlo likelihood fits (MCEM, MCNR, simulated ML): the glmer layout with the Monte
  Carlo error of every estimate and of the log-likelihood, the E-step, the stopping rule and
  the Monte Carlo sample size reached;
- marginal fits (GEE): the layout of geepack's ``summary(geeglm(...))``: robust standard
  errors, Wald tests, the working correlation and its parameters, QIC;
- Bayesian fits (NUTS, Gibbs): the layout users know from brms and rstanarm: estimate,
  posterior sd, 95 % interval, R-hat, bulk and tail ESS; sampler, draws, divergences and
  the priors.

Reports read only the result schema (:mod:`bayesglmm.results.result`), never the method's
code; a layout reads the fields of its kind's details class
(:mod:`bayesglmm.results.details`), which a result's details always are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import OptionError
from ..model.families import FAMILIES

_SIGNIF = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def format_report(r) -> str:
    """The report of ``r`` in the layout of its kind."""
    layout = {
        "likelihood": _glmer_report,
        "quasi_likelihood": _glmer_report,
        "lmm": _lmer_report,
        "monte_carlo": _monte_carlo_report,
        "marginal": _marginal_report,
        "bayesian": _bayes_report,
    }.get(r.kind, _glmer_report)
    lines = layout(r)
    weights = _weights_name(r)
    if weights:
        lines.insert(1, f"Prior weights: {weights}")
    if not r.converged:
        lines.insert(1, _not_converged_line(r))
    return "\n".join(lines)


def _weights_name(r) -> str | None:
    """The prior weights' name (``GLMM(..., weights=)``): from ``info["response"]``, else
    from the model the result was fitted from; None without weights."""
    response = r.info.get("response") or {} if isinstance(r.info, dict) else {}
    name = response.get("weights") if isinstance(response, dict) else None
    design = getattr(r.model, "design", None)
    if name is None and getattr(design, "weights", None) is not None:
        name = design.weights_name
    return name


def format_tests(r, tests) -> str:
    """The "Tests" section of ``r.report(tests=...)``: each test as it prints.

    A test result that names its full fit (``fits["full"]``, as :func:`test_variance`'s
    likelihood-ratio tests do) must name ``r``: a test of another fit is refused, not shown
    under this one.
    """
    if isinstance(tests, (str, bytes, pd.DataFrame)) or not hasattr(tests, "__iter__"):
        tests = [tests]
    tests = list(tests)
    if not tests:
        raise OptionError("report(tests=...) got an empty list: give the tests to show")
    lines = ["Tests:"]
    for i, t in enumerate(tests):
        if isinstance(t, pd.DataFrame):
            lines.append(t.to_string())
            continue
        full = (getattr(t, "fits", None) or {}).get("full") if hasattr(t, "fits") else None
        if full is not None and full is not r:
            raise OptionError(
                f"report(tests=...): item {i} ({type(t).__name__} of "
                f"{getattr(t, 'term', '?')}) tests another fit ({full.formula!r}, "
                f"{full.method}), not this one"
            )
        if not hasattr(t, "p_value"):
            raise OptionError(
                f"report(tests=...): item {i} is a {type(t).__name__}, not a test result "
                "(test_variance's result or an anova table)"
            )
        lines.append(repr(t))
    return "\n".join(lines)


def _not_converged_line(r) -> str:
    """The warning line under the title of a fit that did not converge."""
    msgs = [m for m in (r.convergence or {}).get("messages") or [] if m]
    first = " ".join(str(msgs[0]).split()) if msgs else ""
    return "*** NOT CONVERGED: the estimates below are not reliable" + (
        f" ({first})" if first else ""
    )


# --------------------------------------------------------------------------------------
# pieces shared by the layouts


def _fmt(v: float | None, digits: int = 4) -> str:
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


def _residual_sd(r) -> str | None:
    """The name of ``r``'s dispersion when it is the residual sd (Gaussian ``sigma``), else
    None (:attr:`~bayesglmm.model.families.Family.dispersion_is_residual`)."""
    family = FAMILIES.get(r.family)
    return family.dispersion_name if family is not None and family.dispersion_is_residual else None


def _random_table(r, residual: bool) -> list[str]:
    """lme4's ``VarCorr`` block: Groups, Name, Variance, Std.Dev. and Corr."""
    rows = []
    for comp, var in r.variance_components.items():
        g, col = _split_component(str(comp))
        rows.append([g, col, var])
    sd = _residual_sd(r)
    if residual and sd in r.dispersion.index:
        rows.append(["Residual", "", float(r.dispersion[sd]) ** 2])
    ar1 = {g for g, col, _ in rows if col == "ar1"}
    ar1_rho: dict[str, float] = {}
    cors: dict[tuple[str, str], dict[str, float]] = {}
    for key, val in r.re_correlations.items():
        g, pair = str(key).rsplit("|", 1)
        if g in ar1:  # an AR(1) term's lag-one correlation, shown as glmmTMB does
            ar1_rho[g] = float(val)
            continue
        a, b = pair.split(",")
        cors.setdefault((g, "(Intercept)" if b == "Intercept" else b), {})[a] = val
    has_cor = bool(cors) or bool(ar1_rho)
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
        if col == "ar1" and g in ar1_rho:
            line += f" {ar1_rho[g]:.2f} (ar1)"
        elif has_cor and (g, col) in cors:
            vals = cors[(g, col)]
            keys = [a if a != "(Intercept)" else "Intercept" for a in prev]
            line += " " + " ".join(f"{vals[k]:5.2f}" if k in vals else "     " for k in keys)
        prev.append(col)
        lines.append(line.rstrip())
    return lines


def _groups_line(r) -> str:
    grp = "; ".join(f"{g}, {n}" for g, n in (r.info.get("groups") or {}).items())
    return f"Number of obs: {r.nobs}" + (f", groups:  {grp}" if grp else "")


def _criteria(r, df_resid: int) -> list[str]:
    cells = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    vals = [r.aic, r.bic, r.loglik, -2.0 * r.loglik]
    return [
        " ".join(f"{c:>9}" for c in cells),
        " ".join(f"{v:>9.1f}" for v in vals) + f" {df_resid:>9d}",
        "",
    ]


def _residuals(details) -> list[str]:
    if details.pearson_residuals is None:
        return []
    return [
        "Scaled residuals: ",
        " ".join(f"{c:>8}" for c in ["Min", "1Q", "Median", "3Q", "Max"]),
        " ".join(f"{v:>8.4f}" for v in details.pearson_residuals),
        "",
    ]


def _df_resid(r) -> int:
    return int(r.details.df_resid if r.details.df_resid is not None else r.nobs - r.n_params)


def _title(r, what: str) -> str:
    return r.details.title or f"{what} fit by {r.method}"


def _wald_block(r, stat: str, with_p: bool) -> list[str]:
    fx = r.table.loc[list(r.fixed_effects.index)].rename_axis(None)
    cols = {
        "Estimate": fx["estimate"].map(lambda v: f"{v:.4f}"),
        "Std. Error": fx["std_error"].map(lambda v: f"{v:.4f}" if np.isfinite(v) else "NA"),
        stat: fx["z"].map(lambda v: f"{v:.3f}" if np.isfinite(v) else "NA"),
    }
    if with_p:
        cols["Pr(>|z|)"] = fx["p"].map(_pvalue)
        cols[""] = fx["p"].map(_stars)
    lines = ["Fixed effects:", pd.DataFrame(cols).to_string()]
    if with_p:
        lines += ["---", _SIGNIF]
    return lines


def _closing(r) -> list[str]:
    conv = r.convergence
    out = []
    details = conv.get("details") or {}
    if conv.get("singular"):
        comps = details.get("singular_components") or details.get("singular") or []
        out.append("boundary (singular) fit" + (": " + "; ".join(comps) if comps else ""))
    if not r.converged:
        out.extend(m for m in conv.get("messages", []) if not m.startswith("boundary"))
    return out


# --------------------------------------------------------------------------------------
# glmer layout


def _glmer_report(r) -> list[str]:
    details = r.details
    out = [_title(r, "Generalized linear mixed model"), f" Family: {r.family}  ( {r.link} )"]
    out += [f"Formula: {r.formula}", ""]
    if r.loglik is not None:
        out += _criteria(r, _df_resid(r))
        if details.loglik_se is not None:  # the iterative solver of large crossed designs
            out.insert(
                -1,
                "(approximate Laplace: log det by conjugate gradients and a stochastic series; "
                f"logLik standard error {details.loglik_se:.2g})",
            )
    else:
        out += [f"{r.method} maximizes no likelihood: logLik, AIC and BIC are not defined", ""]
    out += _residuals(details)
    out += ["Random effects:", *_random_table(r, residual=_residual_sd(r) is not None)]
    out.append(_groups_line(r))
    if _residual_sd(r) is None:
        for k, v in r.dispersion.items():
            out.append(f"Dispersion parameter ({k}): {_fmt(float(v))}")
    out.append("")
    out += _wald_block(r, "z value", with_p=True)
    return out + _closing(r)


# --------------------------------------------------------------------------------------
# Monte Carlo likelihood layout


def _monte_carlo_report(r) -> list[str]:
    cdet = r.convergence.get("details") or {}
    opts = r.info.get("options") or {}
    out = [
        _title(r, "Generalized linear mixed model"),
        f" Family: {r.family}  ( {r.link} )",
        f"Formula: {r.formula}",
        "",
    ]
    ll_se = r.details.loglik_mcse
    out += _criteria(r, _df_resid(r))
    if ll_se is not None:
        out.insert(-1, f"(logLik estimated by importance sampling; Monte Carlo se {ll_se:.3g})")
    e_step = opts.get("e_step", cdet.get("e_step"))
    rule = opts.get("mc_rule", cdet.get("mc_rule"))
    out.append(
        f"E-step: {e_step}; Monte Carlo size rule: {rule}; final Monte Carlo size "
        f"{cdet.get('final_mc_size', 'NA')} (effective {_fmt(cdet.get('final_ess'), 3)}); "
        f"iterations: {r.convergence.get('iterations')}"
    )
    if cdet.get("stop_reason"):
        out.append(f"Stopped: {cdet['stop_reason']}")
    out.append("")
    out += ["Random effects:", *_random_table(r, residual=_residual_sd(r) is not None)]
    var_rows = [f"var({c})" for c in r.variance_components.index]
    mc = r.table.loc[var_rows, "mcse"] if var_rows else pd.Series(dtype=float)
    if len(mc) and np.isfinite(mc.to_numpy()).any():
        out.append(" Monte Carlo se of the variances: " + ", ".join(
            f"{k[4:-1]} {_fmt(v, 2)}" for k, v in mc.items()
        ))  # fmt: skip
    out += [_groups_line(r), ""]
    fx = r.table.loc[list(r.fixed_effects.index)].rename_axis(None)
    cols = {
        "Estimate": fx["estimate"].map(lambda v: f"{v:.4f}"),
        "Std. Error": fx["std_error"].map(lambda v: f"{v:.4f}" if np.isfinite(v) else "NA"),
        "MC error": fx["mcse"].map(lambda v: f"{v:.4f}" if np.isfinite(v) else "NA"),
        "z value": fx["z"].map(lambda v: f"{v:.3f}" if np.isfinite(v) else "NA"),
        "Pr(>|z|)": fx["p"].map(_pvalue),
        "": fx["p"].map(_stars),
    }
    out += ["Fixed effects:", pd.DataFrame(cols).to_string(), "---", _SIGNIF]
    out.append(
        "Std. Error: Louis' observed information; MC error: Monte Carlo standard error of "
        "the estimate."
    )
    return out + _closing(r)


# --------------------------------------------------------------------------------------
# geeglm layout


def _marginal_report(r) -> list[str]:
    def _geese_block(row: str | None, label: str) -> str:
        """One parameter of geese's scale or correlation model: Estimate, Std.err (its
        sandwich), Wald (z squared) and Pr(>W)."""
        if row is None or row not in r.table.index:
            return f"{label}  NA"
        t = r.table.loc[row]
        est, se, z, p = (float(t[k]) for k in ("estimate", "std_error", "z", "p"))
        cols = {
            "Estimate": [f"{est:.4f}"],
            "Std.err": [f"{se:.4f}" if np.isfinite(se) else "NA"],
            "Wald": [f"{z * z:.3f}" if np.isfinite(z) else "NA"],
            "Pr(>W)": [_pvalue(p)],
            "": [_stars(p)],
        }
        return pd.DataFrame(cols, index=[label]).to_string()

    d = r.details
    out = [
        "Generalized estimating equations: marginal (population-averaged) model",
        f" Family: {r.family}  ( {r.link} )",
        f"Formula: {r.formula}",
        "",
        "Coefficients:",
    ]
    fx = r.table.loc[list(r.fixed_effects.index)].rename_axis(None)
    cols = {
        "Estimate": fx["estimate"].map(lambda v: f"{v:.4f}"),
        "Std.err": fx["std_error"].map(lambda v: f"{v:.4f}" if np.isfinite(v) else "NA"),
        "Wald": (fx["z"] ** 2).map(lambda v: f"{v:.3f}" if np.isfinite(v) else "NA"),
        "Pr(>|W|)": fx["p"].map(_pvalue),
        "": fx["p"].map(_stars),
    }
    out += [pd.DataFrame(cols).to_string(), "---", _SIGNIF, ""]
    kind = r.vcov.kind if r.vcov is not None else d.se_type
    out.append(f"Standard errors: {kind or 'NA'}")
    assoc = (d.extra or {}).get("association")
    if assoc:  # geese's Scale Model and Correlation Model blocks
        rows = assoc.get("rows", {})
        out += ["", "Scale Model:", " Scale Link:                identity"]
        out += [" Estimated Scale Parameters:", _geese_block(rows.get("gamma"), "(Intercept)")]
        out += ["", "Correlation Model:", f" Correlation Structure:     {d.corstr or 'NA'}"]
        out += [" Correlation Link:          identity", " Estimated Correlation Parameters:"]
        out += [_geese_block(rows.get("alpha"), "alpha"), ""]
    out.append(f"Correlation structure = {d.corstr or 'NA'}")
    if d.working_correlation_text:
        out.append(f"Estimated correlation parameters: {d.working_correlation_text}")
    if d.scale is not None and not assoc:
        fixed = " (fixed)" if d.scale_fixed else ""
        out.append(f"Estimated scale parameter: {_fmt(float(d.scale))}{fixed}")
    sizes = d.cluster_sizes or {}
    n_clusters = "NA" if d.n_clusters is None else d.n_clusters
    out.append(
        f"Number of clusters: {n_clusters} ({d.cluster or ''})   "
        f"Maximum cluster size: {sizes.get('max', 'NA')}   Number of obs: {r.nobs}"
    )
    if d.QIC is not None:
        qicu = float("nan") if d.QICu is None else d.QICu
        out.append(f"QIC: {d.QIC:.3f}   QICu: {qicu:.3f}")
    return out + _closing(r)


# --------------------------------------------------------------------------------------
# lmer layout


def _lmer_report(r) -> list[str]:
    details = r.details
    reml = details.reml
    title = "Linear mixed model fit by " + ("REML" if reml else "maximum likelihood")
    out = [title, f"Formula: {r.formula}", ""]
    if reml:
        out += [f"REML criterion at convergence: {-2.0 * r.loglik:.1f}", ""]
    else:
        out += _criteria(r, _df_resid(r))
    out += _residuals(details)
    out += ["Random effects:", *_random_table(r, residual=True)]
    out += [_groups_line(r), ""]
    out += _wald_block(r, "t value", with_p=False)
    return out + _closing(r)


# --------------------------------------------------------------------------------------
# brms layout

_BAYES_COLUMNS = {
    "estimate": ("Estimate", "{:.2f}"),
    "std_error": ("Est.Error", "{:.2f}"),
    "lower": ("l-95% CI", "{:.2f}"),
    "upper": ("u-95% CI", "{:.2f}"),
    "r_hat": ("Rhat", "{:.2f}"),
    "ess_bulk": ("Bulk_ESS", "{:.0f}"),
    "ess_tail": ("Tail_ESS", "{:.0f}"),
}


def _bayes_block(table: pd.DataFrame, rows: list[str], labels: list[str]) -> str:
    cols = {}
    for key, (name, fmt) in _BAYES_COLUMNS.items():
        vals = table.loc[rows, key]
        cols[name] = [fmt.format(v) if np.isfinite(v) else "NA" for v in vals]
    return pd.DataFrame(cols, index=labels).to_string()


def _sampler_line(r) -> str:
    return f"Sampler: {r.details.describe()}"


def _bayes_report(r) -> list[str]:
    opts = r.info.get("options") or {}
    cdet = r.convergence.get("details") or {}
    chains, draws, tune = opts.get("chains", "?"), opts.get("draws", "?"), opts.get("tune", "?")
    total = chains * draws if isinstance(chains, int) and isinstance(draws, int) else "?"
    out = [
        f" Family: {r.family} ",
        f"  Links: mu = {r.link} ",
        f"Formula: {r.formula} ",
        f"   Data: {r.nobs} observations",
        f"  Draws: {chains} chains, each with iter = {draws}; warmup = {tune}; thin = 1;",
        f"         total post-warmup draws = {total}",
        f"{_sampler_line(r)}; divergent transitions: {cdet.get('divergences', 'NA')}",
        "",
    ]
    table = r.table
    by_group: dict[str, list[tuple[str, str]]] = {}
    for comp in r.variance_components.index:
        g, col = _split_component(str(comp))
        by_group.setdefault(g, []).append((f"var({comp})", f"var({col.strip('()')})"))
    for key in r.re_correlations.index:
        g, pair = str(key).rsplit("|", 1)
        by_group.setdefault(g, []).append((f"cor({key})", f"cor({pair})"))
    if by_group:
        out.append("Multilevel Hyperparameters:")
        groups = r.info.get("groups") or {}
        for g, rows in by_group.items():
            n = groups.get(g)
            out.append(f"~{g} (Number of levels: {n if n is not None else '?'}) ")
            out.append(_bayes_block(table, [a for a, _ in rows], [b for _, b in rows]))
            out.append("")
    fixed = list(r.fixed_effects.index)
    if fixed:
        out += ["Regression Coefficients:", _bayes_block(table, fixed, fixed), ""]
    disp = list(r.dispersion.index)
    if disp:
        out += ["Further Distributional Parameters:", _bayes_block(table, disp, disp), ""]
    priors = r.info.get("priors") or {}
    if priors:
        out.append("Priors:")
        width = max(len(k) for k in priors)
        out += [f"  {k:<{width}}  {v}" for k, v in priors.items()]
        for k, v in (r.info.get("prior_swap") or {}).items():
            out.append(f"  (replaced by the sampler: {k}: {v})")
        out.append("")
    out += [
        "For each parameter, Bulk_ESS and Tail_ESS are effective sample size measures, and",
        "Rhat is the potential scale reduction factor on split chains (at convergence, Rhat = 1).",
    ]
    out.extend(f"Warning: {m}" for m in r.convergence.get("messages", []))
    return out
