"""Maximum likelihood by the Laplace approximation (``method="laplace"``), lme4's ``nAGQ = 1``.

.. math::

    -2 \\log L(\\theta, \\beta) \\approx -2 \\log p(y \\mid \\hat u) + \\|\\hat u\\|^2
        + \\log\\det(\\Lambda' Z' W Z \\Lambda + I),

at the conditional modes ``u_hat(theta, beta)`` found by PIRLS (:mod:`.pirls`), with all
normalizing constants of ``p(y | u)``, so the log-likelihood equals R's ``logLik(glmer(...))``.
``theta`` (bounded at zero) and ``beta`` are optimized jointly with the exact gradient, over
whitened fixed effects so that the units of the covariates do not matter, restarting from
lme4's first stage (``theta`` with ``beta`` profiled out) when a run ends unconverged
(:mod:`.optimize`); Wald standard errors come from the Hessian of the deviance over
``(theta, beta)`` as lme4's default ``vcov``. The stages follow lme4's ``modular.R``: the
design (``lFormula``), a deviance function built once (``mkGlmerDevfun``,
:class:`.devfun.LaplaceDeviance`), its optimization (``optimizeGlmer``) and the result
(``mkMerMod``, :func:`.assemble.likelihood_estimates`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from ..errors import DataError, MethodError, OptionError
from ..results.assemble import Estimates
from . import blas_threads
from .assemble import likelihood_estimates
from .crossed_solver import make_problem
from .devfun import LaplaceDeviance, ProfiledDeviance
from .glm import fit_glm
from .optimize import minimize_deviance, optimizer_info
from .pirls import PirlsProblem


def check_model(design, method: str) -> None:
    """Raise a clear error for designs a likelihood fit cannot handle."""
    if not design.random:
        raise MethodError(
            f"method {method!r} needs at least one random-effect term such as (1|g); "
            "this formula has none (fit a GLM instead)"
        )
    y = design.y
    fam = design.family
    resp = design.spec.response.expr
    if fam.has_trials:
        if np.all(y == 0):
            raise DataError(f"response {resp!r} has no successes: nothing to estimate")
        if np.all(y == design.trials):
            raise DataError(f"response {resp!r} has no failures: nothing to estimate")
    elif fam.discrete and np.all(y == 0):
        raise DataError(f"response {resp!r} is zero in every row: nothing to estimate")


def glm_start(problem: PirlsProblem) -> np.ndarray:
    """Fixed effects of the GLM without random effects (:func:`.glm.fit_glm`)."""
    resp = problem.response
    return fit_glm(
        resp.family,
        problem.X,
        resp.y,
        resp.n,
        problem.offset,
        form="scoring",
        weights=resp.weights,
    ).beta


def _dispersion_start(problem: PirlsProblem, beta: np.ndarray) -> float:
    resp = problem.response
    mu = resp.family.link.linkinv(problem.X @ beta + problem.offset)
    return resp.family.dispersion_start(resp.y, mu)


def start_vector(devfun: LaplaceDeviance, start=None) -> np.ndarray:
    """Starting ``x``: lme4's ``theta = 1``, GLM fixed effects, or the user's ``start``.

    ``start`` may be an array ``(theta, beta[, log dispersion])`` or a mapping with any of
    ``"theta"`` (array), ``"fixed_effects"`` (mapping or array), ``"variance_components"``
    (mapping by component name; correlations taken as zero) and ``"dispersion"``.
    """
    problem = devfun.problem
    if start is not None and not isinstance(start, Mapping):
        x = np.asarray(start, dtype=float)
        if x.shape != (devfun.n_x,):
            raise OptionError(
                f"start has {x.size} values; expected {devfun.n_x} for {devfun.names}"
            )
        return x
    start = dict(start or {})
    unknown = set(start) - {"theta", "fixed_effects", "variance_components", "dispersion"}
    if unknown:
        raise OptionError(f"unknown keys in start: {sorted(unknown)}")
    if "fixed_effects" in start:
        fe = start["fixed_effects"]
        names = problem.design.fixed_names
        if isinstance(fe, Mapping):
            missing = [n for n in names if n not in fe]
            if missing:
                raise OptionError(f"start['fixed_effects'] lacks {missing}")
            beta = np.array([float(fe[n]) for n in names])
        else:
            beta = np.asarray(fe, dtype=float)
            if beta.shape != (len(names),):
                raise OptionError(
                    f"start['fixed_effects'] has {beta.size} values; expected {len(names)} "
                    f"for {names}"
                )
    else:
        beta = glm_start(problem)
    theta = devfun.cov.theta0()
    if "variance_components" in start:
        vc = start["variance_components"]
        covs = {}
        for t in devfun.cov.terms:
            missing = [c for c in t.component_names if c not in vc]
            if missing:
                raise OptionError(f"start['variance_components'] lacks {missing}")
            covs[t.name] = np.diag([float(vc[c]) for c in t.component_names])
        theta = devfun.cov.theta_from_covariances(covs)
    if "theta" in start:
        theta = np.asarray(start["theta"], dtype=float)
        if theta.shape != (devfun.cov.n_theta,):
            raise OptionError(
                f"start['theta'] has {theta.size} values; expected {devfun.cov.n_theta} for "
                f"{devfun.cov.theta_names}"
            )
    disp = start.get("dispersion")
    if devfun.has_disp and disp is None:
        disp = _dispersion_start(problem, beta)
    return devfun.join(theta, beta, disp)


def fit_laplace_design(
    design,
    start=None,
    maxiter: int = 1000,
    y: np.ndarray | None = None,
    hessian: bool = True,
    problem: PirlsProblem | None = None,
    curvature: str = "fisher",
    solver: str = "auto",
    random_seed=None,
) -> tuple[LaplaceDeviance, object]:
    """Build the Laplace deviance of ``design`` and minimize it (no result assembly).

    ``y`` replaces the response (bootstrap refits); ``problem`` reuses the precomputed
    layout of an earlier :class:`PirlsProblem` on the same design; ``hessian=False`` skips
    the finite-difference Hessian (and the Newton polish that uses it); ``solver`` and
    ``random_seed`` choose the linear algebra (:func:`.crossed_solver.choose_solver`).
    The deviance function carries ``solver`` and ``solver_reason``.
    """
    if problem is None:
        problem, chosen, reason = make_problem(
            design, y=y, curvature=curvature, solver=solver, random_seed=random_seed
        )
    else:
        chosen, reason = getattr(problem, "solver", "direct"), "the problem given"
        if y is not None:
            problem = problem.with_response(y)
    devfun = LaplaceDeviance(problem)
    devfun.solver, devfun.solver_reason = chosen, reason
    if chosen == "iterative":
        devfun.label = "Approximate Laplace (stochastic log-determinant)"
    x0 = start_vector(devfun, start)
    opt = minimize_deviance(
        devfun,
        x0,
        maxiter=maxiter,
        hessian=hessian,
        alt_start=lambda: ProfiledDeviance(devfun).start(x0),
    )
    return devfun, opt


#: the report's title
TITLE = "Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)"


def fit_laplace(
    model,
    *,
    start,
    max_iter: int,
    curvature: str,
    solver: str,
    random_seed,
    threads: int | None,
    progressbar: bool | None,
) -> Estimates:
    """Fit a GLMM by maximum likelihood under the Laplace approximation.

    Parameters
    ----------
    model : GLMM
    start : array or dict, optional
        Starting values (see :func:`start_vector`); by default ``theta = 1`` (lme4) and the
        fixed effects of the GLM without random effects.
    max_iter : int
        Iterations of the quasi-Newton optimizer.
    curvature : {"fisher", "observed"}
        Weights in ``log det(Lambda' Z' W Z Lambda + I)``: Fisher (expected) information, as
        lme4's ``glmer``/``glmer.nb``, or the observed information (the second derivative of
        the log-likelihood, as glmmTMB and the textbook Laplace approximation). They differ
        only for non-canonical links (probit, cloglog, the negative binomial's log link).
        The beta-binomial, whose ``W`` is only a working weight, always takes the observed
        information (as glmmTMB).
    solver : {"auto", "direct", "iterative"}
        Linear algebra of ``H = Lambda' Z' W Z Lambda + I``. ``"direct"``: the exact block
        Cholesky factor (dense Schur complement of all but the largest term). ``"iterative"``
        (two crossed scalar terms, canonical link): conjugate-gradient modes and
        ``log det H`` exact but for a stochastic series, memory linear in rows and levels;
        the log-likelihood is then an estimate with its standard error in
        ``details.loglik_se`` (an approximate Laplace fit; the gradient is exact
        for that estimate). ``"auto"``: iterative for crossed designs with more than
        1,000 levels in the smaller term, else direct (nested designs always direct). The
        choice and its reason are in ``convergence["details"]["solver"]``.
    random_seed : int or None
        Seed of the log-determinant probes of the iterative solver (held fixed over the
        fit); None: a fixed default, so that a fit is reproducible.
    threads : int or None
        BLAS threads during the fit (see :func:`bayesglmm.frequentist.blas_threads`);
        None (default): one, the fastest for these small dense blocks on a shared machine.
    progressbar : bool or None
        Accepted for the shared vocabulary; the fit (seconds at most) shows no bar.

    Returns
    -------
    Estimates
        ``loglik`` as R's ``logLik``; ``table`` with Wald intervals (95%) for the fixed
        effects; ``random_effects[term]`` the conditional modes and
        ``random_effects[term + " (conditional variance)"]`` their conditional variances;
        ``convergence`` the optimizer's diagnostics (message, gradient, Newton step left,
        singular components). Warns on singular fits, failed convergence and separation.
    """
    t0 = time.perf_counter()
    design = model.design
    check_model(design, "laplace")
    if design.structured_terms:
        if solver == "iterative":
            raise OptionError(
                f"solver='iterative' does not take the structured term "
                f"{design.structured_terms[0].name}; use solver='direct'"
            )
        solver = "direct"
    with blas_threads(1 if threads is None else threads):
        devfun, opt = fit_laplace_design(
            design,
            start=start,
            maxiter=max_iter,
            curvature=curvature,
            solver=solver,
            random_seed=random_seed,
        )
        timing = {"optimize": time.perf_counter() - t0}
        solver_info = solver_details(devfun, opt)
        return likelihood_estimates(
            devfun,
            opt,
            "laplace",
            timing,
            TITLE,
            loglik_se=solver_info.get("loglik_se"),
            extra_info={"optimizer": optimizer_info(opt), "solver": solver_info["solver"]},
            convergence_extra={"solver": solver_info["solver"]},
        )


def solver_details(devfun: LaplaceDeviance, opt) -> dict:
    """What the fit's linear algebra was, for ``info["details"]`` (JSON-serialisable).

    ``solver`` (``{"name", "reason"}`` and, on the iterative path, the probes, series terms
    and conjugate-gradient iterations of the final state) and, on the iterative path,
    ``loglik_se``: the standard error of the estimated log-likelihood (half that of
    ``log det H``).
    """
    name = getattr(devfun, "solver", "direct")
    out = {"name": name, "reason": getattr(devfun, "solver_reason", "")}
    if name != "iterative":
        return {"solver": out}
    st = devfun.state_at(opt.x)
    fac = st.factor
    fac.logdet()
    out.update(
        {
            "logdet": "estimated: diagonal, tr G and tr G^2 exact, Hutchinson series "
            "from order 3 (common random numbers)",
            "probes": int(fac.pattern.probes.shape[1]),
            "series_terms": int(fac.series_terms),
            "logdet_se": float(fac.logdet_se),
            "cg_iterations_final_state": int(fac.cg_iterations),
        }
    )
    return {"solver": out, "loglik_se": 0.5 * float(fac.logdet_se)}
