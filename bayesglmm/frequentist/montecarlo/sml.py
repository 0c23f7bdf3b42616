"""Simulated maximum likelihood (``method="sml"``): importance sampling with one fixed sample.

``m`` draws ``b_d`` from the multivariate t of :class:`.estep.ImportanceSampler` at the
Laplace estimate ``psi_0`` (density ``g``) are held fixed, and

.. math::

    \\hat L_m(\\psi) = \\frac1m \\sum_d
        \\frac{f(y \\mid b_d; \\beta)\\, N(b_d; 0, \\Sigma(\\theta))}{g(b_d)}

is maximized over ``(theta, beta)`` by L-BFGS-B (Geyer & Thompson 1992; Geyer 1994; the
gradient in ``beta`` exact, in ``theta`` by differences of the cheap prior part). The
estimate's Monte Carlo covariance is ``I^{-1} Var(grad log L_m) I^{-1}`` with Louis'
information ``I`` from the same weighted draws. The importance sample is only good near
``psi_0``: with many random effects its effective size is small and the estimate is
noisy (the literature's finding; the result reports the effective size). With one
grouping factor the likelihood is a product over its levels and the draws are made and
weighted level by level instead (:mod:`.sml_levels`), which keeps nearly all of them
(mouse_litters, 523 litters: effective size 1 of 10,000 jointly, over 4,800 per litter).
"""

from __future__ import annotations

import time

import numpy as np
from scipy import optimize
from scipy.special import logsumexp
from tqdm.auto import tqdm

from ...errors import MethodError
from ...options import tqdm_progress
from ...results.assemble import Estimates
from .. import blas_threads
from .complete import CompleteData, Sample, sandwich
from .estep import ImportanceSampler, MetropolisSampler
from .finish import (
    LOUIS_DRAWS,
    final_sample,
    monte_carlo_estimates,
    seeded,
    starting_psi,
)
from .sml_levels import LevelObjective

#: relative step of the differences in theta
FD_STEP = 1e-6


def fit_sml(
    model,
    *,
    mc_size: int,
    max_iter: int,
    loglik_draws: int,
    random_seed: int | None,
    progressbar: bool | None,
    threads: int | None,
    start,
) -> Estimates:
    """Fit a binomial or Poisson GLMM by simulated maximum likelihood.

    Parameters
    ----------
    model : GLMM
    mc_size : int
        Importance draws, fixed for the whole optimization.
    max_iter : int
        Most L-BFGS-B iterations.
    loglik_draws, random_seed, progressbar, threads, start
        As for ``method="mcem"``; ``start`` also sets the centre of the importance density.

    Returns
    -------
    Estimates
        ``kind="monte_carlo"``; ``convergence["details"]["importance_ess"]`` the effective
        size of the importance sample at the estimate.
    """
    t0 = time.perf_counter()
    mc = CompleteData(model.design, "sml")
    rng, rng_ll = seeded(random_seed)
    with blas_threads(1 if threads is None else threads):
        psi0, start_info = starting_psi(mc, "sml", start)
        beta0, sig0 = mc.split(psi0)
        if any(np.linalg.eigvalsh(S).min() <= 1e-10 for S in sig0):
            raise MethodError(
                "method 'sml' needs positive-definite covariances at the start (the centre of "
                "its importance density); the Laplace fit is singular here"
            )
        levelwise = len(mc.terms) == 1  # the likelihood is a product over the levels
        if levelwise:
            obj = LevelObjective(mc, psi0, rng, mc_size)
        else:
            sample = ImportanceSampler(mc, rng).draw(psi0, mc_size)
            suff = mc.suff(sample.B)
            # log g(b_d) on the scale of b: log w = log f + log N(b; Sigma_0) - log g
            log_g = mc.cond_loglik(beta0, sample.ZB) + mc.prior_logpdf(sig0, suff) - sample.logw
            obj = _Objective(mc, sample, suff, log_g)
        t1 = time.perf_counter()
        x0 = np.concatenate([mc.theta(psi0), beta0])
        bounds = mc.cov.bounds() + [(None, None)] * mc.p
        history = []
        bar = tqdm(total=max_iter, desc="SML", leave=False, **tqdm_progress(progressbar))

        def record(xk):
            history.append({"iteration": len(history) + 1, "m": mc_size, "loglik": -obj(xk)[0]})
            history[-1].update(dict(zip(mc.names, obj.psi(xk).tolist(), strict=True)))
            bar.update(1)

        try:
            opt = optimize.minimize(
                obj,
                x0,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                callback=record,
                options={"maxiter": max_iter, "gtol": 1e-7, "ftol": 1e-13},
            )
        finally:
            bar.close()
        t2 = time.perf_counter()
        psi = obj.psi(opt.x)
        if levelwise:  # Louis' information from Metropolis draws at the estimate
            final = final_sample(MetropolisSampler(mc, rng), psi, LOUIS_DRAWS, {})
            lo = mc.louis(psi, final.pruned())
            V = sandwich(lo["info"], obj.score_cov(opt.x))
            ess = float(np.min(1.0 / np.sum(obj.weights(opt.x) ** 2, axis=0)))
        else:
            final = obj.weighted(opt.x)
            lo = mc.louis(psi, final.pruned())
            V = sandwich(lo["info"], lo["score_cov"])
            ess = final.ess
        messages = [] if opt.success else [f"optimizer: {opt.message}"]
        details = {
            "e_step": "importance",
            "optimizer": "L-BFGS-B",
            "optimizer_message": str(opt.message),
            "importance_ess": ess,
            "importance_sampling": "level by level" if levelwise else "joint",
            "simulated_loglik": -float(opt.fun),
            **start_info,
        }
        if ess < 100:
            messages.append(
                f"importance sample degenerate at the estimate (effective size {ess:.0f} "
                f"of {mc_size}): the estimate is unreliable"
            )
        timing = {"start": t1 - t0, "iterations": t2 - t1}
        return monte_carlo_estimates(
            method="sml",
            model=mc,
            psi=psi,
            mc_cov=V,
            final=final,
            rng=rng_ll,
            loglik_draws=loglik_draws,
            history=history or [{"iteration": 0, "m": mc_size}],
            converged=bool(opt.success) and ess >= 100,
            messages=messages,
            iterations=int(opt.nit),
            timing=timing,
            details=details,
        )


class _Objective:
    """``-log L_m(theta, beta)`` and its gradient over ``x = (theta, beta)``."""

    def __init__(self, mc: CompleteData, sample: Sample, suff, log_g) -> None:
        self.mc, self.sample, self.suff, self.log_g = mc, sample, suff, log_g
        self.m = sample.m
        self.n_theta = mc.cov.n_theta

    def psi(self, x: np.ndarray) -> np.ndarray:
        mc = self.mc
        theta = x[: self.n_theta]
        return mc.join(x[self.n_theta :], [t.covariance(theta) for t in mc.terms])

    def _prior(self, theta: np.ndarray) -> np.ndarray:
        sig = [t.covariance(theta) for t in self.mc.terms]
        return self.mc.prior_logpdf(sig, self.suff)

    def weighted(self, x: np.ndarray) -> Sample:
        theta, beta = x[: self.n_theta], x[self.n_theta :]
        lw = self.mc.cond_loglik(beta, self.sample.ZB) + self._prior(theta) - self.log_g
        w = np.exp(lw - lw.max())
        return Sample(self.sample.B, self.sample.ZB, w / w.sum(), {}, lw)

    def __call__(self, x: np.ndarray):
        mc = self.mc
        theta, beta = x[: self.n_theta], x[self.n_theta :]
        sample = self.sample
        w_unit = np.full(self.m, 1.0)
        ll, _, _ = mc.q_pieces(beta, Sample(sample.B, sample.ZB, w_unit, {}))
        prior = self._prior(theta)
        lw = ll + prior - self.log_g
        if not np.all(np.isfinite(prior)):
            return np.inf, np.zeros_like(x)
        f = float(logsumexp(lw) - np.log(self.m))
        w = np.exp(lw - lw.max())
        w /= w.sum()
        _, score, _ = mc.q_pieces(beta, Sample(sample.B, sample.ZB, w, {}))
        g_beta = mc.X.T @ score
        g_theta = np.zeros(self.n_theta)
        for j in range(self.n_theta):
            h = FD_STEP * max(1.0, abs(theta[j]))
            tp = theta.copy()
            tp[j] += h
            lw_p = ll + self._prior(tp) - self.log_g
            g_theta[j] = (logsumexp(lw_p) - np.log(self.m) - f) / h
        return -f, -np.concatenate([g_theta, g_beta])
