"""Joint maximization by nonlinear Gauss-Seidel (Jiang 2000) for crossed GLMMs.

For a canonical-link GLMM with random intercepts of factors ``r = 1..R`` (e.g. the crossed
logit model ``logit P(y_ij = 1 | u, v) = x'beta + u_i + v_j``) and given standard
deviations ``sigma_r``, maximize the joint (penalized) log-likelihood

.. math::

    \\ell(\\beta, b) = \\sum_k \\{y_k \\eta_k - n_k A(\\eta_k)\\}
        - \\sum_r \\sum_l b_{r,l}^2 / (2\\sigma_r^2)

one coordinate equation at a time: for factor ``r`` the equations of its levels,
``sum_{k in l} (y_k - n_k mu_k) = b_{r,l} / sigma_r^2``, are separable given the other
coordinates, so each sweep solves all of them together by a few one-dimensional Newton
steps (sums over rows with ``np.bincount``), then the next factor, then ``beta`` by one
Newton step. Cost and memory are linear in rows and levels: no ``n x q`` matrix, no
Cholesky factor of a crossed ``Z'WZ``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import MethodError
from ...model.families import Family, get_family

#: stop when the largest change of any coordinate in a sweep is below this
TOL = 1e-10
MAX_SWEEPS = 5000
#: Newton steps per block in a sweep, and the largest step on the link scale
INNER = 3
MAX_STEP = 5.0


@dataclass
class JointMaximum:
    """Result of :func:`gauss_seidel`: ``beta``, one array of effects per factor."""

    beta: np.ndarray
    effects: list
    sweeps: int
    converged: bool
    objective: float


def _canonical(family: str | Family) -> Family:
    """The family, which must have its canonical link and no dispersion: the score of a
    row is then ``y - n mu`` and its Fisher weight ``n V(mu)``."""
    fam = get_family(family)
    if not fam.canonical or fam.has_dispersion:
        raise MethodError(
            f"Gauss-Seidel joint maximization takes a canonical-link family without a "
            f"dispersion parameter, not {fam.name}/{fam.link.name}"
        )
    return fam


def _mean_weight(fam: Family, eta, trials):
    mu = fam.link.linkinv(eta)
    return mu, trials * fam.variance(mu)


def joint_objective(y, trials, X, offset, indices, sds, beta, effects, family="binomial"):
    """The penalized joint log-likelihood (without the data-only terms)."""
    fam = _canonical(family)
    eta = X @ beta + offset + sum(b[idx] for b, idx in zip(effects, indices, strict=True))
    ll = np.sum(fam.loglik(y, trials=trials, eta=eta, constant=0.0))
    return float(ll - sum(0.5 * np.sum(b * b) / s**2 for b, s in zip(effects, sds, strict=True)))


def gauss_seidel(
    y: np.ndarray,
    trials: np.ndarray | None,
    X: np.ndarray,
    offset: np.ndarray | None,
    indices: list,
    sds,
    family: str | Family = "binomial",
    beta: np.ndarray | None = None,
    tol: float = TOL,
    max_sweeps: int = MAX_SWEEPS,
) -> JointMaximum:
    """Maximize the joint log-likelihood over ``(beta, b_1, .., b_R)`` by Gauss-Seidel.

    Parameters
    ----------
    y, trials : ndarray (n,)
        Successes and trials (binomial, logit link) or counts (``family="poisson"``, log
        link; ``trials`` ignored).
    family : str or Family
        A canonical-link family without a dispersion parameter (binomial/logit,
        poisson/log), or its name.
    X : ndarray (n, p)
    offset : ndarray (n,) or None
    indices : list of int ndarray (n,)
        Level of each row for each factor (codes ``0..L_r - 1``).
    sds : sequence of float
        Standard deviations ``sigma_r > 0`` of the factors (fixed here).
    beta : ndarray, optional
        Starting fixed effects (default zeros).

    Returns
    -------
    JointMaximum
    """
    fam = _canonical(family)
    y = np.asarray(y, float)
    n = y.size
    trials = np.ones(n) if trials is None or not fam.has_trials else np.asarray(trials, float)
    offset = np.zeros(n) if offset is None else np.asarray(offset, float)
    indices = [np.asarray(i, np.int64) for i in indices]
    prec = [1.0 / float(s) ** 2 for s in sds]
    sizes = [int(i.max()) + 1 for i in indices]
    beta = np.zeros(X.shape[1]) if beta is None else np.asarray(beta, float).copy()
    effects = [np.zeros(L) for L in sizes]
    eta = X @ beta + offset
    converged = False
    sweep = 0
    for sweep in range(1, max_sweeps + 1):  # noqa: B007
        change = 0.0
        for r, idx in enumerate(indices):
            b = effects[r]
            for _ in range(INNER):
                mu, w = _mean_weight(fam, eta, trials)
                grad = np.bincount(idx, y - trials * mu, sizes[r]) - prec[r] * b
                hess = np.bincount(idx, w, sizes[r]) + prec[r]
                step = np.clip(grad / hess, -MAX_STEP, MAX_STEP)
                b += step
                eta += step[idx]
                big = float(np.max(np.abs(step)))
                change = max(change, big)
                if big < tol:
                    break
        mu, w = _mean_weight(fam, eta, trials)
        grad = X.T @ (y - trials * mu)
        H = (X * w[:, None]).T @ X
        step = np.clip(np.linalg.solve(H, grad), -MAX_STEP, MAX_STEP)
        beta += step
        eta += X @ step
        change = max(change, float(np.max(np.abs(step), initial=0.0)))
        if change < tol:
            converged = True
            break
    obj = joint_objective(y, trials, X, offset, indices, sds, beta, effects, fam)
    return JointMaximum(beta, effects, sweep, converged, obj)


def newton_joint(y, trials, X, offset, indices, sds, family="binomial", tol=1e-12, max_iter=100):
    """Direct Newton on all coordinates at once (dense; for checking small problems)."""
    fam = _canonical(family)
    n, p = X.shape
    trials = np.ones(n) if trials is None or not fam.has_trials else trials
    offset = np.zeros(n) if offset is None else offset
    sizes = [int(i.max()) + 1 for i in indices]
    blocks = [X] + [np.eye(L)[i] for L, i in zip(sizes, indices, strict=True)]
    M = np.hstack(blocks)
    P = np.diag(
        np.r_[np.zeros(p), *[np.full(L, 1 / s**2) for L, s in zip(sizes, sds, strict=True)]]
    )
    x = np.zeros(M.shape[1])
    for _ in range(max_iter):
        eta = M @ x + offset
        mu, w = _mean_weight(fam, eta, trials)
        g = M.T @ (y - trials * mu) - P @ x
        H = (M * w[:, None]).T @ M + P
        step = np.linalg.solve(H, g)
        x += step
        if np.max(np.abs(step)) < tol:
            break
    out, start = [], p
    for L in sizes:
        out.append(x[start : start + L])
        start += L
    return x[:p], out
