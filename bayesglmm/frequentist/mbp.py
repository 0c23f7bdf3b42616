"""Maximization by parts (``method="mbp"``; Song, Fan & Kalbfleisch 2005).

The log-likelihood is split into a working part, whose information is easy to get, and
the remainder, ``l = l_w + l_e``; maximization by parts solves
``grad l_w(x_{k+1}) = -grad l_e(x_k)`` and iterates. Here ``l_w`` is the Laplace
approximation (:mod:`.laplace`) and ``l`` the adaptive Gauss-Hermite quadrature
log-likelihood of :mod:`.agq` (one grouping factor, or two nested ones), so ``l_e`` is the
correction of quadrature over Laplace. Each iteration takes the one Newton step on the
working equation that Song et al. recommend (their Section 3, "one-step" MBP),

.. math::

    x_{k+1} = x_k - H_w^{-1} \\nabla D(x_k),

with ``D = -2 l`` by quadrature and ``H_w`` the Hessian of the Laplace deviance at the
Laplace optimum, computed once. The fixed point is the quadrature maximum likelihood
estimate; the iteration converges linearly at a rate given by how much the quadrature
information differs from the Laplace one (small when Laplace is good: a few iterations on
cbpp). Only one quadrature gradient is needed per iteration and no line search, which is
the point of the method; standard errors come from the quadrature Hessian at the end.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import OptionError
from ..results.assemble import Estimates
from . import blas_threads
from .agq import AGQDeviance, quadrature_structure
from .assemble import likelihood_estimates
from .laplace import check_model, fit_laplace_design
from .optimize import Optimum, _free_mask, _newton_step, fd_hessian

#: stop when no parameter moves by more than this (relative to max(|x|, 0.1))
MBP_TOL = 1e-7


def mbp_optimum(design, n_quad: int = 25, max_iter: int = 200, tol: float = MBP_TOL):
    """Run maximization by parts; return the quadrature deviance function, the optimum and
    the iteration history (a list of dicts)."""
    lap, opt0 = fit_laplace_design(design, maxiter=1000)
    problem = lap.problem
    x = np.asarray(opt0.x, dtype=float).copy()
    lower = np.array([b[0] if b[0] is not None else -np.inf for b in lap.bounds()])
    H_w = opt0.hessian
    if H_w is None:
        _, g_lap = lap.value_and_grad(x)
        H_w = fd_hessian(lap, x, g_lap, lower)
    devfun = AGQDeviance(problem, int(n_quad), quadrature_structure(design))
    free_all = np.ones(x.size, dtype=bool)
    history = []
    converged = False
    f, g = devfun.value_and_grad(x)
    for it in range(1, max_iter + 1):
        step = _newton_step(H_w, g, free_all & _free_mask(x, g, lower))
        if step is None:
            break
        x_new = np.maximum(x - step, lower)
        size = float(np.max(np.abs(x_new - x) / np.maximum(np.abs(x), 0.1), initial=0.0))
        x = x_new
        f, g = devfun.value_and_grad(x)
        history.append({"iteration": it, "deviance": float(f), "step": size})
        if not np.isfinite(f):
            break
        if size < tol:
            converged = True
            break
    H = fd_hessian(devfun, x, g, lower)
    free = _free_mask(x, g, lower)
    s = _newton_step(H, g, free)
    left = float(np.max(np.abs(s[free]), initial=0.0)) if s is not None else np.nan
    opt = Optimum(
        x=x,
        fun=float(f),
        grad=g,
        hessian=H,
        free=free,
        newton_step=np.full_like(x, np.nan) if s is None else s,
        message="step below tolerance" if converged else "maximum iterations reached",
        success=converged,
        converged=converged,
        n_iter=len(history),
        n_evals=int(devfun.n_evals),
        info={"max_newton_step": left, "mbp_history": history},
    )
    return devfun, opt, history


#: the report's title
TITLE = (
    "Generalized linear mixed model fit by maximum likelihood (maximization by parts, "
    "Adaptive Gauss-Hermite Quadrature, nAGQ = {n_quad})"
)


def fit_mbp(
    model,
    *,
    n_quad: int,
    max_iter: int,
    tol: float | None,
    threads: int | None,
    progressbar: bool | None,
) -> Estimates:
    """Fit a GLMM by maximization by parts (Song, Fan & Kalbfleisch 2005).

    Parameters
    ----------
    model : GLMM
        One grouping factor (up to 3 random effects per group) or two nested factors, as
        for ``method="agq"``.
    n_quad : int
        Quadrature nodes per dimension for the full likelihood.
    max_iter : int
        Most MBP iterations.
    tol : float, optional
        Largest relative parameter change that stops (default 1e-7).
    threads : int or None
        BLAS threads during the fit; None (default): one.
    progressbar : bool or None
        Accepted for the shared vocabulary; the fit shows no bar.

    Returns
    -------
    Estimates
        As for ``method="agq"``; ``info["details"]["mbp_history"]`` lists each iteration's
        deviance and step.
    """
    t0 = time.perf_counter()
    design = model.design
    check_model(design, "mbp")
    structure = quadrature_structure(design)
    k_total = sum(t.n_columns for t in design.random)
    if n_quad**k_total > 10**7:
        raise OptionError(f"n_quad = {n_quad} gives {n_quad}^{k_total} nodes; use fewer")
    with blas_threads(1 if threads is None else threads):
        devfun, opt, history = mbp_optimum(
            design, n_quad, max_iter, MBP_TOL if tol is None else float(tol)
        )
        timing = {"optimize": time.perf_counter() - t0}
        return likelihood_estimates(
            devfun,
            opt,
            "mbp",
            timing,
            TITLE.format(n_quad=int(n_quad)),
            n_quad=int(n_quad),
            extra_info={"quadrature": structure["kind"], "mbp_history": history},
        )
