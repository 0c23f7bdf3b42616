"""From an optimum of a deviance function to the fit's
:class:`~bayesglmm.results.assemble.Estimates` (lme4's ``mkMerMod``), with the warnings a
user should see: singular fit, failed convergence, a Hessian that is not positive definite,
diverging fixed effects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._warn import warn
from ..results.assemble import Estimates
from ..results.details import Covariance, LikelihoodDetails
from ..results.result import parameter_rows, wald_table
from .covariance import SINGULAR_TOL
from .devfun import LaplaceDeviance
from .optimize import Optimum

#: a fixed effect on a link scale beyond this, with |z| below DIVERGE_Z, has diverged
#: (on the logit scale 15 means probabilities within 3e-7 of 0 or 1)
DIVERGE_ABS = 10.0
DIVERGE_Z = 1.0


class ConvergenceWarning(UserWarning):
    """The optimizer did not reach an optimum, or the optimum is degenerate."""


class SingularFitWarning(UserWarning):
    """A variance component is at zero (or a correlation at +-1): lme4's ``isSingular``."""


class SeparationWarning(UserWarning):
    """A fixed effect diverges: complete or quasi-complete separation."""


def _vcov(opt: Optimum, devfun: LaplaceDeviance) -> tuple[np.ndarray | None, str | None]:
    """Covariance of all free parameters: the inverse of half the deviance's Hessian."""
    if opt.hessian is None:
        return None, "no Hessian was computed"
    idx = np.flatnonzero(opt.free)
    Hf = 0.5 * opt.hessian[np.ix_(idx, idx)]
    try:
        L = np.linalg.cholesky(Hf)
    except np.linalg.LinAlgError:
        return None, "the Hessian of the deviance is not positive definite"
    Linv = np.linalg.inv(L)
    V = np.full((devfun.n_x, devfun.n_x), np.nan)
    V[np.ix_(idx, idx)] = Linv.T @ Linv
    return V, None


def pearson_quantiles(st, response) -> list[float]:
    """Min, quartiles and max of the Pearson residuals at the conditional modes."""
    r = response.family.pearson_residuals(response.y, st.terms.mu, response.n, st.dispersion)
    return np.quantile(r, [0, 0.25, 0.5, 0.75, 1]).tolist()


def likelihood_estimates(
    devfun: LaplaceDeviance,
    opt: Optimum,
    method: str,
    timing: dict,
    title: str,
    n_quad: int | None = None,
    loglik_se: float | None = None,
    extra_info: dict | None = None,
    convergence_extra: dict | None = None,
) -> Estimates:
    """The estimates of a likelihood fit (report ``title``); warns about what needs
    attention. ``extra_info`` and ``convergence_extra`` are further method diagnostics."""
    design = devfun.problem.design
    cov = devfun.cov
    problem = devfun.problem
    theta, beta, disp = devfun.split(opt.x)
    st = devfun.state_at(opt.x)
    V, vcov_problem = _vcov(opt, devfun)
    sl_beta = slice(devfun.n_theta, devfun.n_theta + devfun.p)
    if V is not None:
        se = np.sqrt(np.diag(V)[sl_beta])
    else:
        se = np.full(devfun.p, np.nan)
    table = wald_table(design.fixed_names, beta, se)
    variances = cov.variances(theta)
    cors = cov.correlations(theta)
    rows = [table, parameter_rows(variances, cors)]
    if devfun.has_disp:
        dname = design.family.dispersion_name
        dse = np.nan if V is None else disp * np.sqrt(V[-1, -1])  # delta method
        rows.append(pd.DataFrame({"estimate": [disp], "std_error": [dse]}, index=[dname]))
    table = pd.concat(rows)
    loglik = -0.5 * opt.fun

    # random effects: conditional modes and conditional variances, per term
    b = cov.b_from_u(theta, st.u)
    cvars = problem.conditional_variances(st) if cov.q else []
    random_effects = {}
    for t, lo, term, cv in zip(cov.terms, cov.offsets[:-1], design.random, cvars, strict=True):
        idx = pd.Index(term.levels, name=term.group)
        modes = b[lo : lo + t.k * t.n_levels].reshape(t.n_levels, t.k)
        random_effects[t.name] = pd.DataFrame(modes, index=idx, columns=t.columns)
        random_effects[f"{t.name} (conditional variance)"] = pd.DataFrame(
            np.diagonal(cv, axis1=1, axis2=2), index=idx, columns=t.columns
        )

    singular = cov.singular_components(theta)
    names = devfun.names
    free_grad = np.where(opt.free, opt.grad, 0.0)
    details = {
        "optimizer": "L-BFGS-B + Newton polish",
        "optimizer_message": opt.message,
        "optimizer_success": opt.success,
        "evaluations": opt.n_evals,
        "pirls_iterations": devfun.n_pirls,
        "pirls_converged": bool(st.converged),
        "gradient": dict(zip(names, opt.grad.tolist(), strict=True)),
        "max_abs_gradient": float(np.max(np.abs(free_grad), initial=0.0)),
        "max_newton_step": opt.info.get("max_newton_step"),
        "at_bound": [n for n, f in zip(names, opt.free, strict=True) if not f],
        "singular_components": singular,
        "hessian_problem": vcov_problem,
    }
    converged = bool(opt.converged and st.converged)
    messages = []
    if not opt.converged:
        messages.append(
            f"optimizer did not converge: {opt.message}; max |gradient| "
            f"{details['max_abs_gradient']:.3g}"
        )
    if not st.converged:
        messages.append("PIRLS did not converge at the optimum")
    details = {**details, **(convergence_extra or {})}
    info_details = LikelihoodDetails(
        title=title,
        df_resid=design.n - devfun.n_x,
        pearson_residuals=pearson_quantiles(st, problem.response),
        label=devfun.label,
        deviance=opt.fun,
        loglik_se=loglik_se,
        n_quad=n_quad,
        extra=dict(extra_info or {}),
    )
    _warn(design, details, converged, table, singular, vcov_problem, method)
    return Estimates(
        kind="likelihood",
        table=table,
        converged=converged,
        n_params=int(devfun.n_x),
        timing=timing,
        loglik=float(loglik),
        vcov=None if V is None else Covariance("model", names, V),
        random_effects=random_effects,
        messages=messages,
        iterations=opt.n_iter,
        singular=bool(singular),
        convergence_details=details,
        theta=theta,
        theta_names=cov.theta_names,
        details=info_details,
    )


def _warn(design, conv, converged, table, singular, vcov_problem, method) -> None:
    """Warn about what needs attention (``GLMM.fit`` keeps the warnings with the result)."""
    if singular:
        warn(
            f"boundary (singular) fit ({method}): {'; '.join(singular)} (a diagonal of the "
            f"relative covariance factor is below {SINGULAR_TOL:g}). The model is at the edge "
            "of its parameter space; consider dropping the term.",
            SingularFitWarning,
        )
    if not converged:
        warn(
            f"{method} fit did not converge: optimizer says {conv['optimizer_message']!r}; "
            f"max |gradient| {conv['max_abs_gradient']:.3g}, Newton step left "
            f"{conv['max_newton_step']:.3g} (see result.convergence). Try rescaling "
            "covariates, better starting values (start=...) or more iterations (max_iter=...).",
            ConvergenceWarning,
        )
    if design.family.discrete:  # counts: huge counts and separation
        if (counts := _large_counts(design)) is not None:
            _warn_large_counts(design, table, counts, method)
        else:
            _warn_separation(design, table)
    if vcov_problem and not singular:
        warn(
            f"{vcov_problem}: standard errors are not available; the model may not be "
            "identifiable (or the fit is at a saddle point)",
            ConvergenceWarning,
        )


def _warn_separation(design, table) -> None:
    fx = table.loc[design.fixed_names]
    scale = np.abs(design.X).max(axis=0)
    big = (np.abs(fx["estimate"].to_numpy()) * scale > DIVERGE_ABS) & ~(
        np.abs(fx["z"].to_numpy()) > DIVERGE_Z
    )
    for name in [str(v) for v in np.asarray(design.fixed_names)[big]]:
        row = fx.loc[name]
        warn(
            f"fixed effect {name!r} diverges (estimate {row['estimate']:.3g}, standard error "
            f"{row['std_error']:.3g}): complete or quasi-complete separation; the response "
            f"is (nearly) determined by {name!r}. Its estimate and Wald interval are not "
            "meaningful: merge levels, drop the column or use a penalized/Bayesian fit.",
            SeparationWarning,
        )
    for t in design.random:
        for j, comp in enumerate(t.component_names):
            sd = np.sqrt(table.loc[f"var({comp})", "estimate"])
            if sd * np.abs(t.X[:, j]).max() > DIVERGE_ABS:
                warn(
                    f"the variance of {comp!r} diverges (sd {sd:.3g} on the link scale): "
                    f"{_constant_groups(design, t)} The random effects of {t.group!r} "
                    "separate the responses; the variance is not estimable by maximum "
                    "likelihood (use a prior, i.e. a Bayesian fit, or drop the term).",
                    SeparationWarning,
                )


def _large_counts(design) -> str | None:
    """Why a count model's estimates sit far out on the log scale, when the response's own
    scale explains it (counts above ``exp(DIVERGE_ABS)``); None otherwise."""
    if design.family.name not in ("poisson", "negative_binomial"):
        return None
    top = float(np.max(design.y))
    if not top > np.exp(DIVERGE_ABS):
        return None
    resp = design.spec.response.expr
    return f"the response {resp!r} has counts up to {top:.3g} (mean {float(np.mean(design.y)):.3g})"


def _warn_large_counts(design, table, counts: str, method: str) -> None:
    fx = table.loc[design.fixed_names]
    scale = np.abs(design.X).max(axis=0)
    big = (np.abs(fx["estimate"].to_numpy()) * scale > DIVERGE_ABS) & ~(
        np.abs(fx["z"].to_numpy()) > DIVERGE_Z
    )
    flagged = [str(v) for v in np.asarray(design.fixed_names)[big]]
    for t in design.random:
        for j, comp in enumerate(t.component_names):
            sd = np.sqrt(table.loc[f"var({comp})", "estimate"])
            if sd * np.abs(t.X[:, j]).max() > DIVERGE_ABS:
                flagged.append(f"var({comp})")
    if flagged:
        warn(
            f"{method}: {counts}; at this scale the {design.family.name} likelihood is so "
            f"sharp that {flagged} are not reliably estimated (no standard error, or "
            "estimates far out on the log scale). If the response is a rescaled amount "
            "rather than a count, use its natural count unit or a continuous family.",
            ConvergenceWarning,
        )


def _constant_groups(design, term) -> str:
    """How many levels of ``term`` have all responses at 0 or all at the maximum."""
    y = design.y
    top = design.trials if design.trials is not None else None
    n_lev = term.n_levels
    count = np.bincount(term.index, minlength=n_lev)
    zero = np.bincount(term.index, weights=(y == 0), minlength=n_lev) == count
    full = (
        np.bincount(term.index, weights=(y == top), minlength=n_lev) == count
        if top is not None
        else np.zeros(n_lev, dtype=bool)
    )
    return (
        f"{int(zero.sum())} of {n_lev} levels have all responses zero and {int(full.sum())} "
        "all at the maximum."
    )
