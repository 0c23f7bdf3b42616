"""What every Monte Carlo fit does at its estimate: Louis' standard errors, the likelihood by
importance sampling with its Monte Carlo error (:mod:`.loglik`), and the estimates
(``kind="monte_carlo"``).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ...errors import MethodError
from ...results.assemble import Estimates
from ...results.details import Covariance, MonteCarloDetails
from ...results.result import parameter_rows, wald_table
from ..devfun import LaplaceDeviance
from ..laplace import check_model, fit_laplace_design, start_vector
from .complete import CompleteData, Sample
from .loglik import loglik_at

#: effective draws of the final E-step behind Louis' information (at least)
LOUIS_DRAWS = 2000
#: but never more draws than this
LOUIS_MAX = 50_000
#: importance draws for the log-likelihood at the estimate
LOGLIK_DRAWS = 5000
#: below this importance effective size the log-likelihood estimate is flagged
LOGLIK_MIN_ESS = 100


def starting_psi(model: CompleteData, method: str, start=None) -> tuple[np.ndarray, dict]:
    """``psi`` to start from: the Laplace estimate (default) or the user's ``start`` (as for
    ``method="laplace"``), with the Laplace fit's log-likelihood for the record."""
    check_model(model.design, method)
    if start is None:
        devfun, opt = fit_laplace_design(model.design, hessian=False, problem=model.problem)
        theta, beta, _ = devfun.split(opt.x)
        return model.psi_from(theta, beta), {"start": "laplace", "laplace_loglik": -0.5 * opt.fun}
    devfun = LaplaceDeviance(model.problem)
    theta, beta, _ = devfun.split(start_vector(devfun, start))
    return model.psi_from(theta, beta), {"start": "user"}


def final_sample(sampler, psi: np.ndarray, m: int, last: dict) -> Sample:
    """Draws at the estimate for Louis' information: at least :data:`LOUIS_DRAWS`
    effective ones (importance sampling and the Gibbs sampler's dependent draws need
    ``m / ess`` times more)."""
    frac = last.get("ess_fraction", 1.0) if sampler.name in ("importance", "gibbs") else 1.0
    size = int(min(LOUIS_MAX, max(m, LOUIS_DRAWS / max(frac, 1e-3))))
    if size > m and sampler.name == "rejection":
        try:
            return sampler.draw(psi, size)
        except MethodError:  # beyond rejection's budget: the iterations' size will do
            return sampler.draw(psi, m)
    return sampler.draw(psi, size)


def louis_vcov(model: CompleteData, psi: np.ndarray, sample: Sample):
    """Inverse of Louis' observed information (pseudo-inverse, with a note, if singular),
    the note, and Louis' pieces (:meth:`CompleteData.louis`)."""
    lo = model.louis(psi, sample.pruned())
    info = 0.5 * (lo["info"] + lo["info"].T)
    try:
        np.linalg.cholesky(info)
        return np.linalg.inv(info), None, lo
    except np.linalg.LinAlgError:
        return np.linalg.pinv(info), "Louis' information is not positive definite (MC noise?)", lo


def em_iterate_covariance(V: np.ndarray, lo: dict) -> tuple[np.ndarray, float | None]:
    """Monte Carlo covariance of an EM iterate, not only of its last step.

    An iterate's error is ``e_{k+1} = J e_k + eps_k`` with ``Var(eps) = V`` and ``J`` the
    Jacobian of the EM map, ``I - I_c^{-1} I_obs`` (Dempster, Laird & Rubin 1977; the
    fraction of missing information): its stationary covariance solves ``S = J S J' + V``.
    The parameter-expanded map converges faster than this ``J``, so the result errs on the
    large side. Returns ``(S, spectral radius of J)``; ``V`` itself where ``J`` is not a
    contraction (Monte Carlo noise in the informations).
    """
    from scipy.linalg import solve_discrete_lyapunov

    try:
        J = np.eye(V.shape[0]) - np.linalg.solve(-lo["hessian"], 0.5 * (lo["info"] + lo["info"].T))
        rho = float(np.max(np.abs(np.linalg.eigvals(J))))
    except np.linalg.LinAlgError:
        return V, None
    if not (0.0 <= rho < 0.99):
        return V, rho
    return solve_discrete_lyapunov(J, V), rho


def random_effects_from(model: CompleteData, sample: Sample) -> dict:
    """Conditional means and variances of the random effects, from the final draws."""
    mean = sample.w @ sample.B
    var = sample.w @ (sample.B - mean) ** 2
    out = {}
    for t, lo, term in zip(model.terms, model.offsets[:-1], model.design.random, strict=True):
        sl = slice(lo, lo + t.k * t.n_levels)
        idx = pd.Index(term.levels, name=term.group)
        out[t.name] = pd.DataFrame(mean[sl].reshape(t.n_levels, t.k), index=idx, columns=t.columns)
        out[f"{t.name} (conditional variance)"] = pd.DataFrame(
            var[sl].reshape(t.n_levels, t.k), index=idx, columns=t.columns
        )
    return out


#: the reports' titles
TITLES = {
    "mcem": "Generalized linear mixed model fit by maximum likelihood (Monte Carlo EM)",
    "mcnr": "Generalized linear mixed model fit by maximum likelihood (Monte Carlo Newton-Raphson)",
    "sml": "Generalized linear mixed model fit by maximum likelihood (simulated maximum "
    "likelihood)",
}


def monte_carlo_estimates(
    *,
    method: str,
    model: CompleteData,
    psi: np.ndarray,
    mc_cov: np.ndarray,
    final: Sample,
    rng,
    loglik_draws: int,
    history: list[dict],
    converged: bool,
    messages: list[str],
    iterations: int,
    timing: dict,
    details: dict,
    em_iterate: bool = False,
) -> Estimates:
    """Louis' standard errors, the likelihood estimate and the estimates of a Monte Carlo
    fit (``timing``: its stages so far, with ``"final"`` added: the time spent here)."""
    t0 = time.perf_counter()
    names = model.names
    vcov, problem, lo = louis_vcov(model, psi, final)
    se = np.sqrt(np.clip(np.diag(vcov), 0.0, None))
    em_rate = None
    if em_iterate:
        mc_cov, em_rate = em_iterate_covariance(mc_cov, lo)
    mcse = np.sqrt(np.clip(np.diag(mc_cov), 0.0, None))
    p = model.p
    theta = model.theta(psi)
    table = wald_table(model.design.fixed_names, psi[:p], se[:p])
    table["mcse"] = mcse[:p]
    extra = parameter_rows(model.cov.variances(theta), model.cov.correlations(theta))
    pos = {n: i for i, n in enumerate(names)}
    extra["std_error"] = [se[pos[r]] if r in pos else np.nan for r in extra.index]
    extra["mcse"] = [mcse[pos[r]] if r in pos else np.nan for r in extra.index]
    table = pd.concat([table, extra])
    lik = loglik_at(model, psi, rng, loglik_draws)
    ll, ll_se, ll_ess = lik["loglik"], lik["mcse"], lik["ess"]
    singular = model.cov.singular_components(theta)
    conv = dict(details)
    conv.update(
        {
            "history": history,
            "final_mc_size": int(history[-1]["m"]) if history else int(final.m),
            "final_ess": float(final.ess),
            "loglik_mcse": ll_se,
            "louis_problem": problem,
            "em_rate": em_rate,
        }
    )
    info = MonteCarloDetails(
        title=TITLES.get(method),
        loglik_mcse=ll_se,
        extra={
            "loglik_draws": int(loglik_draws),
            "loglik_importance_ess": ll_ess,
            "loglik_estimator": lik["estimator"],
            "louis_draws": int(final.m),
            "mc_cov": mc_cov.tolist(),
        },
    )
    warnings = [problem] if problem else []
    if ll_ess < LOGLIK_MIN_ESS:
        warnings.append(
            f"the log-likelihood's importance sample is degenerate (effective size "
            f"{ll_ess:.0f} of {loglik_draws}): its estimate and Monte Carlo se are unreliable"
        )
    if ll_se > 0.5:
        warnings.append(f"the log-likelihood estimate has Monte Carlo se {ll_se:.2g}")
    random_effects = random_effects_from(model, final)
    return Estimates(
        kind="monte_carlo",
        table=table,
        converged=converged,
        n_params=model.d,
        timing={**timing, "final": time.perf_counter() - t0},
        loglik=ll,
        vcov=Covariance("model", names, vcov),
        random_effects=random_effects,
        messages=messages,
        iterations=iterations,
        singular=bool(singular),
        warnings=warnings,
        convergence_details=conv,
        theta=theta,
        theta_names=model.cov.theta_names,
        details=info,
    )


def seeded(random_seed) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent streams (E-steps; final likelihood) from one seed."""
    ss = np.random.SeedSequence(random_seed)
    a, b = ss.spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)


def describe(psi: np.ndarray, names: list[str], width: int = 3) -> str:
    return " ".join(f"{n}={v:.3f}" for n, v in list(zip(names, psi, strict=True))[:width])
