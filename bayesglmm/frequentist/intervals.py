"""Intervals for the variance components under the Laplace approximation.

Wald intervals fail for variances near zero (the likelihood is skewed and bounded there).
lme4 users reach for two alternatives, both here:

- :func:`profile_intervals`: likelihood-ratio (profile) intervals for each random-effect
  standard deviation, as ``confint(fit, method = "profile")``: with every other parameter
  re-optimized at a fixed value ``s`` of the standard deviation, the signed root
  ``zeta(s) = sign(s - s_hat) sqrt(dev(s) - dev_min)`` is solved for ``+-z_{1 - alpha/2}``;
  a lower limit where ``dev(0) - dev_min < z^2`` is 0.
- :func:`bootstrap_intervals`: parametric bootstrap, as ``bootMer``: responses simulated
  from the fitted model (new random effects each time), refitted, percentile intervals.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.optimize
from scipy import stats
from tqdm.auto import tqdm

from .. import _warn
from ..errors import MethodError
from ..results.result import FitResult
from . import blas_threads
from .devfun import LaplaceDeviance
from .laplace import check_model, fit_laplace_design, start_vector
from .optimize import minimize_deviance
from .pirls import PirlsProblem

#: profile search: first step outwards, in standard errors of the standard deviation
PROFILE_STEP = 1.0
#: profile search gives up beyond this many doublings of the step
PROFILE_MAX_DOUBLINGS = 12
#: root-finding tolerance on the standard deviation
PROFILE_XTOL = 1e-6


def _model_and_result(result_or_model) -> tuple[object, FitResult]:
    if isinstance(result_or_model, FitResult):
        model = result_or_model.model
        if model is None or result_or_model.method != "laplace":
            raise MethodError(
                "intervals need the model: pass the GLMM, or a Laplace FitResult fitted in "
                "this process (a loaded result does not carry its data)"
            )
        return model, result_or_model
    model = result_or_model
    if not hasattr(model, "design"):
        raise MethodError(f"expected a GLMM or a Laplace FitResult, got {type(model).__name__}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model, model.fit(method="laplace")


def _curvature(result: FitResult) -> str:
    return (result.info.get("options") or {}).get("curvature", "fisher")


# ======================================================================================
# profile likelihood


class _Profile:
    """The deviance with one standard deviation held fixed, over the other parameters."""

    def __init__(self, devfun: LaplaceDeviance, term, comp: int) -> None:
        self.devfun = devfun
        self.term = term
        self.comp = comp
        rows = np.flatnonzero(term.rows == comp)
        self.row_idx = term.start + rows  # theta entries of row `comp` of T
        self.diag_idx = term.start + int(
            np.flatnonzero((term.rows == comp) & (term.cols == comp))[0]
        )
        self.scalar = self.row_idx.size == 1
        keep = np.ones(devfun.n_x, dtype=bool)
        keep[self.row_idx] = False
        self.keep = np.flatnonzero(keep)
        self.n_w = self.row_idx.size - 1
        self.s = 1.0

    def to_x(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Full ``x`` and the Jacobian of the row entries in ``w`` (None for scalar)."""
        x = np.empty(self.devfun.n_x)
        x[self.keep] = z[: self.keep.size]
        if self.scalar:
            x[self.row_idx] = self.s
            return x, None
        w = z[self.keep.size :]
        nrm = np.sqrt(1.0 + w @ w)
        v = np.append(w, 1.0) / nrm  # off-diagonals, then the diagonal (column-major order)
        order = np.argsort(self.term.cols[self.row_idx - self.term.start])
        x[self.row_idx[order]] = self.s * v
        J = np.zeros((self.n_w + 1, self.n_w))  # d v / d w
        J[: self.n_w] = np.eye(self.n_w) / nrm - np.outer(w, w) / nrm**3
        J[self.n_w] = -w / nrm**3
        return x, (self.row_idx[order], self.s * J)

    def from_x(self, x: np.ndarray) -> np.ndarray:
        z = x[self.keep]
        if self.scalar:
            return z
        order = np.argsort(self.term.cols[self.row_idx - self.term.start])
        row = x[self.row_idx[order]]
        d = max(row[-1], 1e-8)
        return np.append(z, row[:-1] / d)

    def value_and_grad(self, z: np.ndarray):
        x, jac = self.to_x(z)
        f, g = self.devfun.value_and_grad(x)
        gz = g[self.keep]
        if jac is not None:
            idx, J = jac
            gz = np.append(gz, g[idx] @ J)
        return f, gz

    def bounds(self):
        full = self.devfun.bounds()
        b = [full[i] for i in self.keep]
        return b + [(None, None)] * self.n_w

    def minimize(self, s: float, z0: np.ndarray) -> tuple[float, np.ndarray]:
        self.s = s
        res = scipy.optimize.minimize(
            self.value_and_grad,
            z0,
            jac=True,
            method="L-BFGS-B",
            bounds=self.bounds(),
            options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-6},
        )
        return float(res.fun), res.x


def profile_intervals(
    result_or_model, level: float = 0.95, progressbar: bool = True
) -> pd.DataFrame:
    """Profile-likelihood intervals for the random-effect standard deviations (Laplace).

    Parameters
    ----------
    result_or_model : GLMM or FitResult
        A model (fitted here by Laplace) or a Laplace result fitted in this process.
    level : float
    progressbar : bool

    Returns
    -------
    DataFrame
        Rows ``sd(<component>)`` and ``var(<component>)`` with ``estimate``, ``lower`` and
        ``upper`` (lme4's ``confint(fit, parm = "theta_", method = "profile")`` gives the
        ``sd`` rows). Correlations are not profiled.
    """
    model, result = _model_and_result(result_or_model)
    design = model.design
    check_model(design, "laplace")
    with blas_threads(1):
        devfun = LaplaceDeviance(PirlsProblem(design, curvature=_curvature(result)))
        x_hat = start_vector(
            devfun,
            {
                "theta": list(result.info["theta"]),
                "fixed_effects": result.fixed_effects,
                **({"dispersion": float(result.dispersion.iloc[0])} if devfun.has_disp else {}),
            },
        )
        opt = minimize_deviance(devfun, x_hat)
        x_hat, dev_min = opt.x, opt.fun
        vcov = result.info["details"].get("vcov")
        V = np.asarray(vcov, dtype=float) if vcov else None
        z_crit = stats.norm.ppf(0.5 + level / 2)
        rows = {}
        todo = [(t, c) for t in devfun.cov.terms for c in range(t.k)]
        for t, c in tqdm(todo, desc="profile", disable=not progressbar):
            prof = _Profile(devfun, t, c)
            T = t.T(x_hat)
            s_hat = float(np.linalg.norm(T[c, : c + 1]))
            se = np.nan
            if V is not None and np.isfinite(V[prof.diag_idx, prof.diag_idx]):
                se = float(np.sqrt(V[prof.diag_idx, prof.diag_idx]))
            step = PROFILE_STEP * (se if np.isfinite(se) and se > 0 else max(0.5 * s_hat, 0.1))
            z_hat = prof.from_x(x_hat)
            lower = _profile_side(prof, s_hat, z_hat, dev_min, -z_crit, step)
            upper = _profile_side(prof, s_hat, z_hat, dev_min, z_crit, step)
            name = t.component_names[c]
            rows[f"sd({name})"] = (s_hat, lower, upper)
            rows[f"var({name})"] = (s_hat**2, lower**2, upper**2)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["estimate", "lower", "upper"])
    out.attrs["level"] = level
    out.attrs["method"] = "profile likelihood (Laplace)"
    return out


def _profile_side(prof: _Profile, s_hat, z_hat, dev_min, target, step) -> float:
    """Solve ``zeta(s) = target`` on one side of ``s_hat``."""
    cache = {}

    def zeta(s: float) -> float:
        nearest = min(cache, key=lambda k: abs(k - s)) if cache else None
        z0 = cache[nearest][1] if nearest is not None else z_hat
        f, z = prof.minimize(s, z0)
        cache[s] = (f, z)
        return np.sign(s - s_hat) * np.sqrt(max(f - dev_min, 0.0))

    if target < 0:
        if s_hat <= 1e-8:
            return 0.0
        z0 = zeta(0.0) if s_hat > 0 else 0.0
        if -z0 < -target:  # not even s = 0 is excluded
            return 0.0
        a = 0.0
        b = s_hat
        # tighten the bracket by stepping down from s_hat
        s = s_hat - step
        while s > 0:
            zs = zeta(s)
            if zs <= target:
                a = s
                break
            b = s
            s -= step
        return scipy.optimize.brentq(lambda s: zeta(s) - target, a, b, xtol=PROFILE_XTOL)
    s, b = s_hat, s_hat + step
    for _ in range(PROFILE_MAX_DOUBLINGS):
        if zeta(b) >= target:
            return scipy.optimize.brentq(lambda v: zeta(v) - target, s, b, xtol=PROFILE_XTOL)
        s, b = b, b + 2 * (b - s)
    _warn.warn(
        f"profile of sd({prof.term.component_names[prof.comp]}) did not reach the upper limit "
        f"up to {b:.3g}: the interval is unbounded above"
    )
    return np.inf


# ======================================================================================
# parametric bootstrap


def bootstrap_intervals(
    result_or_model,
    n_boot: int = 200,
    level: float = 0.95,
    random_seed: int | None = None,
    progressbar: bool = True,
) -> pd.DataFrame:
    """Parametric-bootstrap percentile intervals (Laplace), as lme4's ``bootMer``.

    Each replicate draws new spherical random effects ``u* ~ N(0, I)``, a response from the
    family at ``eta* = X beta_hat + Z Lambda(theta_hat) u* + offset`` (same trials), and
    refits by Laplace from the original estimates.

    Parameters
    ----------
    result_or_model : GLMM or FitResult
    n_boot : int
    level : float
    random_seed : int, optional
    progressbar : bool

    Returns
    -------
    DataFrame
        One row per fixed effect, ``var(...)``, ``sd(...)``, ``cor(...)`` and dispersion:
        ``estimate`` (the original fit), ``lower``, ``upper`` (percentiles), ``boot_mean``,
        ``boot_sd``. ``attrs["draws"]`` holds the replicates, ``attrs["n_failed"]`` the
        refits that failed (not counted).
    """
    if not isinstance(n_boot, int | np.integer) or n_boot < 2:
        raise MethodError(f"n_boot must be an integer >= 2, got {n_boot!r}")
    model, result = _model_and_result(result_or_model)
    design = model.design
    rng = np.random.default_rng(random_seed)
    with blas_threads(1):
        problem = PirlsProblem(design, curvature=_curvature(result))
        devfun = LaplaceDeviance(problem)
        x_hat = start_vector(
            devfun,
            {
                "theta": list(result.info["theta"]),
                "fixed_effects": result.fixed_effects,
                **({"dispersion": float(result.dispersion.iloc[0])} if devfun.has_disp else {}),
            },
        )
        theta, beta, disp = devfun.split(x_hat)
        Aval = problem.A_values(theta)
        eta_fixed = problem.eta_fixed(beta)
        draws, failed = [], 0
        for _ in tqdm(range(n_boot), desc="bootstrap", disable=not progressbar):
            u = rng.standard_normal(problem.q)
            y = problem.response.simulate(eta_fixed + problem.A_mul(Aval, u), disp, rng)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    dv, opt = fit_laplace_design(
                        design, start=x_hat, y=y, hessian=False, problem=problem
                    )
            except Exception:  # a degenerate replicate: count it, report it
                failed += 1
                continue
            if not np.isfinite(opt.fun):
                failed += 1
                continue
            draws.append(_parameters(dv, opt.x))
    if not draws:
        raise MethodError("every bootstrap refit failed")
    frame = pd.DataFrame(draws)
    est = pd.Series(_parameters(devfun, x_hat))
    alpha = 1.0 - level
    out = pd.DataFrame(
        {
            "estimate": est,
            "lower": frame.quantile(alpha / 2),
            "upper": frame.quantile(1 - alpha / 2),
            "boot_mean": frame.mean(),
            "boot_sd": frame.std(ddof=1),
        }
    )
    out.attrs.update(
        {
            "draws": frame,
            "n_failed": failed,
            "level": level,
            "method": "parametric bootstrap (Laplace)",
            "n_boot": n_boot,
        }
    )
    if failed:
        _warn.warn(f"{failed} of {n_boot} bootstrap refits failed and were dropped")
    return out


def _parameters(devfun: LaplaceDeviance, x: np.ndarray) -> dict[str, float]:
    theta, beta, disp = devfun.split(x)
    out = dict(zip(devfun.problem.design.fixed_names, beta.tolist(), strict=True))
    var = devfun.cov.variances(theta)
    out.update({f"var({k})": v for k, v in var.items()})
    out.update({f"sd({k})": float(np.sqrt(v)) for k, v in var.items()})
    out.update({f"cor({k})": v for k, v in devfun.cov.correlations(theta).items()})
    if devfun.has_disp:
        out[devfun.problem.design.family.dispersion_name] = disp
    return out
