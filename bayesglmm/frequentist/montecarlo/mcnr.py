"""Monte Carlo Newton-Raphson (``method="mcnr"``, McCulloch 1997).

Each iteration draws ``m`` random-effect vectors from ``p(b | y; psi)`` with one of the
E-step samplers of :mod:`.estep` and takes a Newton step on the log-likelihood,

.. math::

    \\psi \\leftarrow \\psi + I_m(\\psi)^{-1} \\bar S_m(\\psi),

with the Monte Carlo score ``S_bar = E[d log f(y, b) / d psi | y]`` and Louis' (1982)
observed information ``I_m`` from the same draws. Where ``I_m`` is not positive definite
(Monte Carlo noise far from the optimum) or the step leaves the parameter space after
halving, the iteration takes the EM step instead (so it is never worse than MCEM). The
sample grows by ``m / 3`` whenever the step lies inside the 75 % ellipsoid of its own Monte
Carlo error (``I^{-1} Var(S_bar) I^{-1}``; Booth & Hobert's rule applied to the Newton
step), and the fit stops when the relative change is below ``tol`` three times running.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from ...options import tqdm_progress
from ...results.assemble import Estimates
from .. import blas_threads
from .complete import CompleteData, sandwich
from .estep import make_sampler
from .finish import (
    describe,
    final_sample,
    monte_carlo_estimates,
    seeded,
    starting_psi,
)
from .mstep import m_step
from .stopping import GROWTH_K, TOL, StopState, inside_ellipsoid, mc_covariance, standardized_change

#: step halvings tried to keep the covariances positive semi-definite
HALVINGS = 10


def fit_mcnr(
    model,
    *,
    e_step: str,
    mc_size: int,
    mc_max: int,
    tol: float | None,
    max_iter: int,
    loglik_draws: int,
    random_seed: int | None,
    progressbar: bool | None,
    threads: int | None,
    start,
) -> Estimates:
    """Fit a binomial or Poisson GLMM by Monte Carlo Newton-Raphson.

    Parameters are those of :func:`bayesglmm.frequentist.montecarlo.mcem.fit_mcem` without
    ``mc_rule`` (the step-error rule above is used; with ``e_step="gibbs"`` the score's Monte
    Carlo covariance is taken over chain sums, the draws being dependent within a chain).
    Returns a ``kind="monte_carlo"`` ``Estimates``; ``convergence["details"]["history"]``
    records ``step`` (``"newton"`` or ``"em"``) per iteration.
    """
    t0 = time.perf_counter()
    mc = CompleteData(model.design, "mcnr")
    rng, rng_ll = seeded(random_seed)
    tol = TOL["booth_hobert"] if tol is None else tol
    with blas_threads(1 if threads is None else threads):
        psi, start_info = starting_psi(mc, "mcnr", start)
        sampler = make_sampler(e_step, mc, rng)
        t1 = time.perf_counter()
        stop = StopState("booth_hobert", tol)
        history, names, m = [], mc.names, mc_size
        V = np.zeros((mc.d, mc.d))
        bar = tqdm(total=max_iter, desc="MCNR", leave=False, **tqdm_progress(progressbar))
        try:
            for it in range(1, max_iter + 1):
                sample = sampler.draw(psi, m)
                new, V, scale, kind = newton_step(mc, psi, sample)
                inside, dist = inside_ellipsoid(new - psi, V)
                change = standardized_change(new, psi, scale)
                rec = {"iteration": it, "m": sample.m, "ess": sample.ess, "step": kind}
                rec.update({"step_distance": dist, "change": change})
                rec["step_mcse"] = float(np.sqrt(np.max(np.diag(V), initial=0.0)))
                psi = new
                rec.update(dict(zip(names, psi.tolist(), strict=True)))
                history.append(rec)
                bar.update(1)
                bar.set_postfix_str(f"m={sample.m} {describe(psi, names)}", refresh=False)
                if stop.relative(change):
                    break
                if inside:
                    m = min(mc_max, m + max(1, m // GROWTH_K))
        finally:
            bar.close()
        t2 = time.perf_counter()
        final = final_sample(sampler, psi, m, sample.info)
        messages = [] if stop.converged else [f"no convergence in {max_iter} iterations"]
        timing = {"start": t1 - t0, "iterations": t2 - t1}
        details = {
            "e_step": e_step,
            "mc_rule": "step_error",
            "tol": tol,
            "stop_reason": stop.reason,
        }
        details.update(start_info)
        return monte_carlo_estimates(
            method="mcnr",
            model=mc,
            psi=psi,
            mc_cov=V,
            final=final,
            rng=rng_ll,
            loglik_draws=loglik_draws,
            history=history,
            converged=stop.converged,
            messages=messages,
            iterations=len(history),
            timing=timing,
            details=details,
        )


def newton_step(mc: CompleteData, psi: np.ndarray, sample):
    """``(psi_new, its Monte Carlo covariance, complete-data se, "newton" | "em")``."""
    sample = sample.pruned()
    lo = mc.louis(psi, sample)
    scale = np.sqrt(np.clip(np.diag(np.linalg.pinv(-lo["hessian"])), 1e-300, None))
    info = 0.5 * (lo["info"] + lo["info"].T)
    try:
        np.linalg.cholesky(info)
    except np.linalg.LinAlgError:
        info = None
    if info is not None:
        step = np.linalg.solve(info, lo["score"])
        for _ in range(HALVINGS):
            new = psi + step
            if mc.valid(new):
                return new, sandwich(info, lo["score_cov"]), scale, "newton"
            step = 0.5 * step
    new, _ = m_step(mc, psi, sample)
    return new, mc_covariance(mc, new, sample)[0], scale, "em"
