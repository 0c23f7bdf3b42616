"""The generalized estimating equations of Liang & Zeger (1986), solved by Fisher scoring.

For clusters ``i`` with responses ``y_i``, means ``m_i = n_i * h(X_i beta + o_i)``
(``n_i`` binomial trials, else 1), ``D_i = dm_i / dbeta'`` and working covariance
``W_i = A_i^{1/2} R_i(alpha) A_i^{1/2}`` (``A_i`` the variance function), ``beta`` solves

.. math::

    U(\\beta) = \\sum_i D_i^\\top W_i^{-1} (y_i - m_i) = 0,

alternating one scoring step ``beta += (sum D'W^{-1}D)^{-1} U`` with a moment update of
``alpha`` from the Pearson residuals, to the joint fixed point. Covariances of ``beta``:

* model-based ``phi * M^{-1}``, ``M = sum D'W^{-1}D``;
* robust (sandwich) ``M^{-1} (sum u_i u_i') M^{-1}``, ``u_i = D_i'W_i^{-1}(y_i - m_i)``;
* bias-reduced (Mancl & DeRouen 2001): the same with ``(I - H_i)^{-1}(y_i - m_i)`` in
  ``u_i``, ``H_i = D_i M^{-1} D_i' W_i^{-1}``.

``phi`` (Pearson residuals ``r``): with ``moments="geepack"`` (R's geepack with
``scale.fix = FALSE``, its default) ``sum r^2 / N`` for every family, binomial and Poisson
included (it enters the model-based covariance only); with ``moments="statsmodels"`` 1 for
the binomial and Poisson families and ``sum r^2 / (N - p)`` otherwise.

Prior weights ``w`` (geepack's ``weights=``, ``src/geesubs.cc`` ``HiandGi``) divide each
row's variance, ``A_i = diag(n V(mu) / w)``, so they multiply the rows' contributions to
``U``, ``M`` and the sandwich; ``phi = sum w r^2 / sum w`` (``r`` the unweighted Pearson
residuals), and the correlation's moment equations weight each pair by ``w_j w_k``
(:mod:`.correlation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..glm import fit_glm
from .clusters import Clusters
from .correlation import WorkingCorrelation

#: Fisher scoring stops when the largest step of beta is below this (times 1 + |beta|)
TOL = 1e-10
MAX_ITER = 100


@dataclass
class GEEData:
    """Arrays of one GEE problem: response, trials (or ones), X, offset, family."""

    y: np.ndarray
    trials: np.ndarray
    X: np.ndarray
    offset: np.ndarray
    family: object
    #: prior weights (None: none): the variance of row ``i`` is ``n V(mu) / w_i``
    weights: np.ndarray | None = None

    def moments(self, beta: np.ndarray):
        """Mean, d mean / d eta and variance of each row at ``beta``."""
        eta = self.X @ beta + self.offset
        link = self.family.link
        mu = link.linkinv(eta)
        mean = self.trials * mu
        dmu = self.trials * link.mu_eta(eta)
        var = self.trials * self.family.variance(mu)
        return mean, dmu, var

    @property
    def fixed_scale(self) -> bool:
        """The family has no dispersion parameter (its scale is 1 under independence)."""
        return not self.family.has_dispersion


@dataclass
class GEEState:
    """Solution of the estimating equations and the covariances of ``beta``."""

    beta: np.ndarray
    converged: bool
    iterations: int
    scale: float
    cov: dict = field(default_factory=dict)
    score: np.ndarray | None = None
    mean: np.ndarray | None = None


def _pearson_buckets(data: GEEData, clusters: Clusters, beta, scale=1.0):
    """Per bucket ``(r, times)``, ``r`` the Pearson residuals over ``sqrt(scale)``; with
    prior weights ``(r, times, w)``, ``r`` unweighted (the weights travel beside it)."""
    mean, _, var = data.moments(beta)
    r = (data.y - mean) / np.sqrt(var * scale)
    if data.weights is not None:
        return [(r[b.rows], b.times, data.weights[b.rows]) for b in clusters.buckets]
    return [(r[b.rows], b.times) for b in clusters.buckets]


def _scale(data: GEEData, beta, moments: str = "statsmodels") -> float:
    """The scale ``phi`` under the ``moments`` convention (module docstring)."""
    geepack = moments == "geepack"
    if data.fixed_scale and not geepack:
        return 1.0
    mean, _, var = data.moments(beta)
    n, p = data.X.shape
    if data.weights is not None:
        ssr = float(np.sum(data.weights * (data.y - mean) ** 2 / var))
        return ssr / (float(np.sum(data.weights)) if geepack else n - p)
    return float(np.sum((data.y - mean) ** 2 / var) / (n if geepack else n - p))


def _bucket_terms(data, clusters, corr, beta):
    """Per bucket: D (m,k,p), W^{-1}D, residual (m,k), W^{-1} r and W (m,k,k)."""
    mean, dmu, var = data.moments(beta)
    if data.weights is not None:
        var = var / data.weights  # prior weights divide the variance (geepack)
    out = []
    for b in clusters.buckets:
        D = dmu[b.rows][:, :, None] * data.X[b.rows]
        s = np.sqrt(var[b.rows])
        W = s[:, :, None] * corr.covariance_matrix(b.times) * s[:, None, :]
        res = data.y[b.rows] - mean[b.rows]
        rhs = np.concatenate([D, res[:, :, None]], axis=2)
        sol = np.linalg.solve(W, rhs)
        out.append((D, sol[:, :, :-1], res, sol[:, :, -1], W))
    return out


def _information_and_score(terms):
    p = terms[0][0].shape[2]
    M = np.zeros((p, p))
    U = np.zeros(p)
    for D, WiD, _, Wir, _ in terms:
        M += np.einsum("mkp,mkq->pq", D, WiD)
        U += np.einsum("mkp,mk->p", D, Wir)
    return M, U


def glm_start(data: GEEData, max_iter: int = 50) -> np.ndarray:
    """The GLM (independence) estimate (:func:`bayesglmm.frequentist.glm.fit_glm`), the
    starting point of GEE."""
    return fit_glm(
        data.family,
        data.X,
        data.y,
        data.trials,
        data.offset,
        max_iter=max_iter,
        weights=data.weights,
    ).beta


def solve_gee(
    data: GEEData,
    clusters: Clusters,
    corr: WorkingCorrelation,
    start: np.ndarray | None = None,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
    moments: str = "geepack",
) -> GEEState:
    """Solve the estimating equations; covariances in ``state.cov`` (robust, model,
    bias_reduced); ``moments`` names the convention of the scale (module docstring)."""
    n, p = data.X.shape
    corr.initialize(clusters.n_times)
    beta = glm_start(data) if start is None else np.asarray(start, float).copy()
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        corr.update(_pearson_buckets(data, clusters, beta, _scale(data, beta, moments)), ddof=p)
        M, U = _information_and_score(_bucket_terms(data, clusters, corr, beta))
        try:
            step = np.linalg.solve(M, U)
        except np.linalg.LinAlgError:
            step = np.linalg.pinv(M) @ U
        beta = beta + step
        if not np.all(np.isfinite(beta)):
            break
        if np.max(np.abs(step)) < tol * (1.0 + np.max(np.abs(beta))):
            converged = True
            break
    scale = _scale(data, beta, moments)
    corr.update(_pearson_buckets(data, clusters, beta, scale), ddof=p)
    state = GEEState(beta=beta, converged=converged, iterations=it, scale=scale)
    state.cov, state.score = covariances(data, clusters, corr, beta, state.scale)
    state.mean = data.moments(beta)[0]
    return state


def covariances(data, clusters, corr, beta, scale):
    """Model-based, robust and bias-reduced covariances of ``beta``; and the score."""
    terms = _bucket_terms(data, clusters, corr, beta)
    M, U = _information_and_score(terms)
    Minv = np.linalg.pinv(M) if np.linalg.cond(M) > 1e14 else np.linalg.inv(M)
    p = M.shape[0]
    meat = np.zeros((p, p))
    meat_bc = np.zeros((p, p))
    for D, WiD, res, Wir, _ in terms:
        u = np.einsum("mkp,mk->mp", D, Wir)
        meat += u.T @ u
        # H_i = D_i M^{-1} D_i' W_i^{-1}; (W^{-1}D)' = D'W^{-1}, so H = D M^{-1} (W^{-1}D)'
        H = np.einsum("mkp,pq,mlq->mkl", D, Minv, WiD)
        k = H.shape[1]
        IH = np.eye(k)[None] - H
        try:
            adj = np.linalg.solve(IH, res[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            adj = np.einsum("mkl,ml->mk", np.linalg.pinv(IH), res)
        # D'W^{-1}(adj) = (W^{-1}D)' adj
        ubc = np.einsum("mkp,mk->mp", WiD, adj)
        meat_bc += ubc.T @ ubc
    cov = {
        "robust": Minv @ meat @ Minv,
        "model": scale * Minv,
        "bias_reduced": Minv @ meat_bc @ Minv,
    }
    return cov, U


def quasi_loglik(data: GEEData, mean: np.ndarray, scale: float = 1.0) -> float:
    """Quasi-likelihood ``Q(mu; y)`` under independence (Pan 2001), as geepack's ``QIC``
    (:meth:`~bayesglmm.model.families.Family.quasi_loglik`), divided by ``scale``."""
    q = data.family.quasi_loglik(data.y, mean / data.trials, data.trials)
    if data.weights is not None:
        q = data.weights * q
    return float(np.sum(q) / scale)


def qic(data: GEEData, clusters: Clusters, beta, robust_cov, scale: float = 1.0) -> dict:
    """QIC and QICu of Pan (2001): ``-2Q + 2 tr(Omega_I V_R)`` and ``-2Q + 2p``, with
    ``Omega_I`` the model-based information under independence."""
    from .correlation import Independence

    ind = Independence()
    ind.initialize(clusters.n_times)
    M, _ = _information_and_score(_bucket_terms(data, clusters, ind, beta))
    mean = data.moments(beta)[0]
    q = quasi_loglik(data, mean, scale)
    p = len(beta)
    trace = float(np.trace((M / scale) @ robust_cov))
    return {"QIC": -2 * q + 2 * trace, "QICu": -2 * q + 2 * p, "quasi_loglik": q, "CIC": trace}
