"""Monte Carlo EM (``method="mcem"``): Wei & Tanner (1990), McCulloch (1994, 1997), Booth &
Hobert (1999), Caffo, Jank & Jones (2005).

Each iteration draws ``m`` random-effect vectors from ``p(b | y; psi)`` (the E-step sampler
of :mod:`.estep`), maximizes the Monte Carlo Q-function (:mod:`.mstep`) and lets the rule of
:mod:`.stopping` decide whether ``m`` grows and whether to stop. The estimate is the last
iterate; its Monte Carlo standard error (table column ``mcse``) is that of the last M-step
(Booth & Hobert 1999, eq. 3.2), its standard errors (``std_error``) come from Louis' (1982)
information by a final E-step at the estimate, and the log-likelihood is estimated by
importance sampling with its Monte Carlo error (``info["details"]["loglik_mcse"]``; level
by level with one grouping factor, see :mod:`.loglik`).
"""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from ...options import tqdm_progress
from ...results.assemble import Estimates
from .. import blas_threads
from .complete import CompleteData
from .estep import make_sampler
from .finish import (
    describe,
    final_sample,
    monte_carlo_estimates,
    seeded,
    starting_psi,
)
from .mstep import m_step
from .stopping import (
    GROWTH_K,
    TOL,
    StopState,
    ascent_lower_ok,
    ascent_next_size,
    delta_q,
    inside_ellipsoid,
    mc_covariance,
    standardized_change,
)


def fit_mcem(
    model,
    *,
    e_step: str,
    mc_rule: str,
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
    """Fit a binomial or Poisson GLMM by Monte Carlo EM.

    Parameters
    ----------
    model : GLMM
    e_step : {"mh", "importance", "rejection", "gibbs"}
        Metropolis-within-Gibbs chains (the default: on salamander 1.6 s to the stopping
        rule against 14 s for importance sampling, whose effective size is about 15 % of
        the draws with 120 crossed effects), importance sampling from the Laplace
        multivariate t (self-normalized weights), rejection sampling from the
        random-effect distribution (refused with a clear error when its acceptance rate is
        too small, as for crossed designs), or Gibbs sampling from the exact conditional by
        Polya-Gamma (logit) or Albert-Chib (probit) augmentation, binomial models only
        (dependent draws: the rule's Monte Carlo errors are taken over chain sums); see
        :mod:`.estep` and benchmarks/results/mcem_estep.txt.
    mc_rule : {"booth_hobert", "ascent"}
        Monte Carlo sample size and stopping rule (see :mod:`.stopping`).
    mc_size, mc_max : int
        Starting and largest Monte Carlo sample size.
    tol : float, optional
        Change in complete-data standard errors (``booth_hobert``, default 0.1, three
        iterations running) or upper bound of the Q-function's increase (``ascent``,
        default 0.001).
    max_iter : int
        Most EM iterations.
    loglik_draws : int
        Importance draws for the log-likelihood at the estimate.
    random_seed : int, optional
        The same seed gives the same fit.
    progressbar : bool or None
        A tqdm bar over the iterations (None: after a second).
    threads : int or None
        BLAS threads (None: one).
    start : array or dict, optional
        Starting values as for ``method="laplace"``; by default the Laplace estimate.

    Returns
    -------
    Estimates
        ``kind="monte_carlo"``; ``table`` with Louis standard errors and Monte Carlo
        standard errors (``mcse``); ``convergence["details"]["history"]`` the iterations
        (see :func:`bayesglmm.frequentist.montecarlo.history`).
    """
    t0 = time.perf_counter()
    mc = CompleteData(model.design, "mcem")
    rng, rng_ll = seeded(random_seed)
    tol = TOL[mc_rule] if tol is None else tol
    with blas_threads(1 if threads is None else threads):
        psi, start_info = starting_psi(mc, "mcem", start)
        sampler = make_sampler(e_step, mc, rng)
        t1 = time.perf_counter()
        psi, V, m, history, stop, last = _iterate(
            mc, sampler, psi, mc_rule, mc_size, mc_max, tol, max_iter, progressbar
        )
        t2 = time.perf_counter()
        final = final_sample(sampler, psi, m, last)
        messages = (
            [] if stop.converged else [stop.reason or f"no convergence in {max_iter} iterations"]
        )
        timing = {"start": t1 - t0, "iterations": t2 - t1}
        details = {
            "e_step": e_step,
            "mc_rule": mc_rule,
            "tol": tol,
            "stop_reason": stop.reason,
            "sampler": last,
            **start_info,
        }
        return monte_carlo_estimates(
            method="mcem",
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
            em_iterate=True,
        )


def _iterate(mc, sampler, psi, rule, m, mc_max, tol, max_iter, progressbar):
    stop = StopState(rule, tol)
    history = []
    names = mc.names
    V = np.zeros((mc.d, mc.d))
    info = {}
    bar = tqdm(
        total=max_iter, desc=f"MCEM ({sampler.name})", leave=False, **tqdm_progress(progressbar)
    )
    try:
        for it in range(1, max_iter + 1):
            sample = sampler.draw(psi, m)
            new, gain = m_step(mc, psi, sample)
            rec = {"iteration": it}
            if rule == "ascent":
                dq, ase = delta_q(mc, gain, psi)
                while not ascent_lower_ok(dq, ase) and sample.m < mc_max:
                    add = min(max(1, sample.m // GROWTH_K), mc_max - sample.m)
                    sample = sampler.draw(psi, add, append=sample)
                    new, gain = m_step(mc, psi, sample)
                    dq, ase = delta_q(mc, gain, psi)
                rec.update({"m": sample.m, "ess": sample.ess, "delta_q": dq, "delta_q_se": ase})
                V, scale = mc_covariance(mc, new, sample)
                rec["change"] = standardized_change(new, psi, scale)
                psi = new
                done = stop.ascent(dq, ase)
                m = min(mc_max, ascent_next_size(sample.m, dq, ase))
            else:
                V, scale = mc_covariance(mc, new, sample)
                inside, dist = inside_ellipsoid(new - psi, V)
                rec.update({"m": sample.m, "ess": sample.ess, "step_distance": dist})
                rec["change"] = standardized_change(new, psi, scale)
                psi = new
                done = stop.relative(rec["change"])
                if inside:
                    m = min(mc_max, m + max(1, m // GROWTH_K))
            rec["step_mcse"] = float(np.sqrt(np.max(np.diag(V), initial=0.0)))
            rec.update(dict(zip(names, psi.tolist(), strict=True)))
            history.append(rec)
            info = dict(sample.info)
            bar.update(1)
            bar.set_postfix_str(f"m={sample.m} {describe(psi, names)}", refresh=False)
            if done:
                break
    finally:
        bar.close()
    return psi, V, m, history, stop, info
