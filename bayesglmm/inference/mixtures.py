"""Null distributions of variance-component tests at the boundary: chi-bar-square mixtures.

A variance cannot be negative, so the likelihood-ratio statistic of a variance component is
not ``chi2`` under the null (Self & Liang 1987):

- one variance: ``0.5 chi2(0) + 0.5 chi2(1)`` (:func:`one_variance`);
- one column of a correlated term of dimension ``q``: ``0.5 chi2(q - 1) + 0.5 chi2(q)``
  (Stram & Lee 1994, :func:`one_column`). Both hold whatever the information matrix;
- a whole correlated term (the cone of positive semi-definite matrices) or several
  uncorrelated variances (the orthant): ``sum_k w_k chi2(d_k)`` with weights from the
  efficient Fisher information of the tested parameters (:func:`cone_weights`,
  :func:`variance_information`, :func:`information_mixture`), or from the identity when it
  cannot be computed (:func:`psd_cone`, :func:`independent_variances`).

:mod:`bayesglmm.inference.variance_tests` describes the information it uses and applies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import MethodError
from ..model.families import DISPERSION_NAMES
from .reduced import GLMNullFit

#: information-based mixture weights are computed with dense n x n matrices up to this size
INFO_MAX_N = 5000

#: draws of the cone projection for information-based weights, and its seed
CONE_SIMULATIONS = 20_000

CONE_SEED = 20260101


@dataclass(frozen=True)
class Mixture:
    """A mixture of chi-square distributions: ``sum w_k chi2(df_k)``."""

    weights: tuple[float, ...]
    dfs: tuple[int, ...]
    source: str

    def sf(self, x: float) -> float:
        """``P(T >= x)`` (``chi2(0)`` is a point mass at zero)."""
        total = 0.0
        for w, k in zip(self.weights, self.dfs, strict=True):
            total += w * ((1.0 if x <= 0 else 0.0) if k == 0 else float(stats.chi2.sf(x, k)))
        return min(total, 1.0)

    def __str__(self) -> str:
        parts = [f"{w:.4g} chi2({k})" for w, k in zip(self.weights, self.dfs, strict=True)]
        return " + ".join(parts) + f" ({self.source})"


def one_variance() -> Mixture:
    """``0.5 chi2(0) + 0.5 chi2(1)``: one variance on the boundary."""
    return Mixture((0.5, 0.5), (0, 1), "Self & Liang 1987")


def one_column(q: int) -> Mixture:
    """``0.5 chi2(q-1) + 0.5 chi2(q)``: a correlated term of dimension ``q`` against ``q-1``."""
    if q == 1:
        return one_variance()
    return Mixture((0.5, 0.5), (q - 1, q), "Stram & Lee 1994")


def psd_cone(q: int, n_sim: int = 200_000, seed: int = 20260101) -> Mixture:
    """Chi-bar-square of the cone of ``q x q`` positive semi-definite matrices.

    The weight of ``chi2(k (k + 1) / 2 + k (q - k))`` (the dimension of the cone's face at a
    rank-``k`` matrix) is the probability that a ``q x q`` GOE matrix has ``k`` positive
    eigenvalues, estimated from ``n_sim`` draws with a fixed seed.
    """
    if q == 1:
        return one_variance()
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n_sim, q, q))
    goe = (a + np.swapaxes(a, 1, 2)) / 2.0
    k = np.sum(np.linalg.eigvalsh(goe) > 0, axis=1)
    weights = np.bincount(k, minlength=q + 1) / n_sim
    dfs = tuple(j * (j + 1) // 2 + j * (q - j) for j in range(q + 1))
    return Mixture(
        tuple(float(w) for w in weights),
        dfs,
        "chi-bar-square of the PSD cone, identity information; Shapiro 1988, Kuriki 1993",
    )


def independent_variances(q: int) -> Mixture:
    """``sum_k C(q, k) 2^-q chi2(k)``: ``q`` uncorrelated variances on the boundary, taken as
    orthogonal in the information (Self & Liang 1987, case 8 with orthogonal components)."""
    from math import comb

    weights = tuple(comb(q, k) / 2.0**q for k in range(q + 1))
    return Mixture(weights, tuple(range(q + 1)), "Self & Liang 1987, orthogonal components")


# --------------------------------------------------------------------------- cone weights
def vech_pairs(q: int) -> list[tuple[int, int]]:
    """``(j, k)``, ``j <= k``: the order of the covariance parameters of a ``q x q`` term
    (row-major upper triangle: ``(0, 0), (0, 1), ..., (1, 1), ...``)."""
    return [(j, k) for j in range(q) for k in range(j, q)]


def _project(u: np.ndarray, cone: str, q: int, pairs) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean projection of rows of ``u`` (Frobenius coordinates) on the cone, and the
    number of positive eigenvalues (components) of each projection."""
    if cone == "orthant":
        x = np.maximum(u, 0.0)
        return x, np.sum(x > 0, axis=1)
    j, k = np.array(pairs).T
    off = j != k
    S = np.zeros((u.shape[0], q, q))
    vals = np.where(off, u / math.sqrt(2.0), u)
    S[:, j, k] = vals
    S[:, k, j] = vals
    e, V = np.linalg.eigh(S)
    e = np.maximum(e, 0.0)
    P = (V * e[:, None, :]) @ np.swapaxes(V, 1, 2)
    x = np.where(off, P[:, j, k] * math.sqrt(2.0), P[:, j, k])
    return x, np.sum(e > 0, axis=1)


def cone_weights(
    information,
    q: int,
    cone: str = "psd",
    n_sim: int = CONE_SIMULATIONS,
    seed: int = CONE_SEED,
    max_iter: int = 2000,
    information_source: str = "given information",
) -> Mixture:
    """Chi-bar-square weights of a cone for a given information matrix, by simulation.

    Parameters
    ----------
    information : ndarray (m, m)
        Efficient Fisher information of the tested parameters: for ``cone="psd"`` the
        ``m = q (q + 1) / 2`` entries of the covariance matrix in the order of
        :func:`vech_pairs` (each covariance counted once); for ``cone="orthant"`` the ``q``
        variances.
    q : int
        Dimension of the term.
    cone : {"psd", "orthant"}
    n_sim : int
        Draws ``Z ~ N(0, I^-1)``.
    seed : int
        Seed of the draws: the weights are a fixed function of the information.
    max_iter : int
        Iterations of the projected accelerated gradient (FISTA); a draw stops once its
        iterate moves by less than ``1e-8`` (relative to the draws' scale).
    information_source : str
        What the information is, for the mixture's description.

    Returns
    -------
    Mixture
        ``w_k`` for ``chi2(d_k)``, ``d_k = k (k + 1) / 2 + k (q - k)`` (PSD cone) or ``k``
        (orthant), ``k = 0..q``.

    Notes
    -----
    In Frobenius coordinates (off-diagonal entries times ``sqrt 2``) the identity
    information gives GOE matrices, whose projection on the PSD cone clips the eigenvalues
    (:func:`psd_cone`): so ``information = diag(1, 2, 1)`` (``q = 2``) reproduces the GOE
    weights. The problem is first rescaled by ``S -> D S D``, ``D = diag(I_jj^(-1/4))``
    (each variance's information 1), which maps the cone onto itself; then the projection
    ``min (Z - x)' J (Z - x)`` over the cone is computed by FISTA with the Euclidean
    projection (eigenvalue clipping), step ``1 / lambda_max(J)`` and adaptive restart.
    """
    info = np.asarray(information, dtype=float)
    pairs = vech_pairs(q) if cone == "psd" else [(j, j) for j in range(q)]
    m = len(pairs)
    if info.shape != (m, m):
        raise MethodError(f"information must be {m} x {m} for a {cone} cone of dimension {q}")
    # precondition: S -> D S D with D = diag(I_jj^-1/4) maps either cone onto itself and
    # scales each variance's information to 1 (leaves the weights unchanged)
    diag_info = np.array([info[a, a] for a, (j, k) in enumerate(pairs) if j == k])
    dq = diag_info ** (-0.25)
    scale_pairs = np.array([dq[j] * dq[k] for j, k in pairs])
    info = info * np.outer(scale_pairs, scale_pairs)
    d = np.array([1.0 if j == k else math.sqrt(2.0) for j, k in pairs])
    J = info / np.outer(d, d)
    J = 0.5 * (J + J.T)
    cov = np.linalg.inv(J)
    L = np.linalg.cholesky(0.5 * (cov + cov.T))
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_sim, m)) @ L.T
    step = 1.0 / float(np.linalg.eigvalsh(J).max())
    x, ranks = _project(z, cone, q, pairs)
    y = x.copy()
    t = np.ones(n_sim)
    tol = 1e-8 * float(np.sqrt(np.mean(z**2)) or 1.0)
    active = np.arange(n_sim)
    for _ in range(max_iter):  # FISTA on the draws that have not converged
        xa, ya, za, ta = x[active], y[active], z[active], t[active]
        xn, rn = _project(ya - step * (ya - za) @ J, cone, q, pairs)
        tn = (1.0 + np.sqrt(1.0 + 4.0 * ta * ta)) / 2.0
        yn = xn + ((ta - 1.0) / tn)[:, None] * (xn - xa)
        # adaptive restart (O'Donoghue & Candes 2015): momentum against the descent
        restart = np.sum((ya - xn) * (xn - xa), axis=1) > 0
        yn[restart], tn[restart] = xn[restart], 1.0
        y[active] = yn
        moved = np.max(np.abs(xn - xa), axis=1)
        x[active], t[active], ranks[active] = xn, tn, rn
        active = active[moved >= tol]
        if active.size == 0:
            break
    weights = np.bincount(ranks, minlength=q + 1)[: q + 1] / n_sim
    if cone == "psd":
        dfs = tuple(k * (k + 1) // 2 + k * (q - k) for k in range(q + 1))
        what = "chi-bar-square of the PSD cone"
    else:
        dfs = tuple(range(q + 1))
        what = "chi-bar-square of the orthant"
    return Mixture(
        tuple(float(w) for w in weights),
        dfs,
        f"{what}, weights by simulating the projection of N(0, I^-1) on the cone, I the "
        f"{information_source}; Shapiro 1988",
    )


# --------------------------------------------------------------------------- information
def _dense(a) -> np.ndarray:
    return np.asarray(a.toarray() if hasattr(a, "toarray") else a, dtype=float)


def _random_effects_vector(fit, design) -> np.ndarray:
    """The conditional modes ``b`` of a likelihood fit, in the order of ``design.Z``."""
    parts = []
    for t in design.random:
        frame = fit.random_effects[t.name]
        parts.append(frame.loc[list(t.levels), list(t.columns)].to_numpy(float).ravel())
    return np.concatenate(parts) if parts else np.zeros(0)


def null_covariance(design, reduced, method: str):
    """``(r, W, gaussian)``: the null covariance ``V0 = diag(r) + W W'`` of the (working)
    response, from the reduced fit's estimates (module docstring)."""
    from ..frequentist.covariance import CovarianceFactor

    fam = design.family
    gaussian = method == "lmm" or fam.name == "gaussian"
    if isinstance(reduced, GLMNullFit):
        eta = design.X @ reduced.beta + design.offset
        W = None
        disp = reduced.dispersion
    else:
        rd = reduced.model.design
        beta = reduced.fixed_effects[list(rd.fixed_names)].to_numpy(float)
        b = _random_effects_vector(reduced, rd)
        eta = rd.X @ beta + rd.Z @ b + rd.offset
        cf = CovarianceFactor(rd)
        lam = cf.Lambda(np.asarray(reduced.info["theta"], dtype=float))
        disp = next((float(reduced.dispersion[k]) for k in DISPERSION_NAMES
                     if k in reduced.dispersion.index), None)  # fmt: skip
        W = _dense(rd.Z @ lam) * (disp if gaussian else 1.0)
    if gaussian:
        r = np.full(design.n, disp**2)
    else:
        alpha = 1.0 if disp is None else disp
        _, w = fam.score_weight(design.y, eta, design.trials, alpha)
        r = 1.0 / np.maximum(w, 1e-12)
    return r, W, gaussian


def _term_columns(t) -> list[np.ndarray]:
    Z = _dense(t.Z)
    k = t.n_columns
    return [Z[:, j::k] for j in range(k)]


def variance_information(fit, reduced, indices, ml: bool = False):
    """Efficient Fisher information of the tested covariance parameters at the null
    (module docstring).

    Parameters
    ----------
    fit : FitResult
        The full fit.
    reduced : FitResult or GLMNullFit
        The fit of the model without the tested terms (the null estimates).
    indices : int or list of int
        Random terms of ``fit``'s design under test: one term (its covariance entries, in
        the order of :func:`vech_pairs`, or its variances when uncorrelated) or several
        (their variances, in order).
    ml : bool
        ``V^-1`` in place of the REML projection ``P`` (an ML ``lmm`` fit).

    Returns
    -------
    (ndarray or None, str)
        The information, or None and why it is not available.
    """
    d = fit.model.design
    if d.n > INFO_MAX_N:
        return None, f"{d.n} rows (more than {INFO_MAX_N})"
    indices = [indices] if isinstance(indices, int | np.integer) else list(indices)
    r, W, gaussian = null_covariance(d, reduced, fit.method)
    if not np.all(np.isfinite(r)):
        return None, "non-finite weights at the null"
    V = np.diag(r)
    if W is not None:
        V += W @ W.T
    try:
        Vinv = np.linalg.inv(V)
        VX = Vinv @ d.X
        P = Vinv if ml else Vinv - VX @ np.linalg.solve(d.X.T @ VX, VX.T)
    except np.linalg.LinAlgError:
        return None, "a singular null covariance"
    # blocks of columns: the tested term's, then the other terms' of the reduced model
    blocks: list = []
    tested: list = []
    for i in indices:
        t = d.random[i]
        lo = len(blocks)
        blocks += _term_columns(t)
        k = t.n_columns
        pairs = vech_pairs(k) if t.correlated else [(j, j) for j in range(k)]
        tested += [(lo + a, lo + b) for a, b in pairs]
    gens: list = list(tested)
    if not isinstance(reduced, GLMNullFit):
        for u in reduced.model.design.random:
            lo = len(blocks)
            blocks += _term_columns(u)
            pairs = (
                vech_pairs(u.n_columns) if u.correlated else [(j, j) for j in range(u.n_columns)]
            )
            gens += [(lo + j, lo + k) for j, k in pairs]
    PC = [P @ c for c in blocks]
    B = {}

    def blk(a, b):
        if (a, b) not in B:
            B[(a, b)] = blocks[a].T @ PC[b]
        return B[(a, b)]

    def sides(g):
        j, k = g
        return [(j, k)] if j == k else [(j, k), (k, j)]

    def tr(ga, gb):  # tr(P G_a P G_b), G = sum of Z_j Z_k'; "s" is sigma^2 (G = I)
        if ga == "s" and gb == "s":
            return float(np.sum(P * P))
        if ga == "s" or gb == "s":
            g = gb if ga == "s" else ga
            return float(sum(np.sum(PC[k] * PC[j]) for j, k in sides(g)))
        return float(sum(np.sum(blk(k, l) * blk(j, m)) for j, k in sides(ga) for l, m in sides(gb)))

    if gaussian:
        gens.append("s")
    m = len(gens)
    info = np.empty((m, m))
    for a in range(m):
        for b in range(a, m):
            info[a, b] = info[b, a] = 0.5 * tr(gens[a], gens[b])
    nt = len(tested)
    Itt, Itn, Inn = info[:nt, :nt], info[:nt, nt:], info[nt:, nt:]
    eff = Itt - Itn @ np.linalg.pinv(Inn) @ Itn.T if m > nt else Itt
    eff = 0.5 * (eff + eff.T)
    ev = np.linalg.eigvalsh(eff)
    if not np.all(np.isfinite(ev)) or ev[0] <= 1e-10 * max(ev[-1], 1e-300):
        return None, "a singular information matrix at the null"
    return eff, ""


def information_mixture(fit, reduced, indices, ml: bool) -> tuple[Mixture, list[str]]:
    """The chi-bar-square for removing the whole correlated term ``indices[0]`` (``q >= 2``
    columns: the PSD cone) or the ``q >= 2`` variances of the terms ``indices`` (each one
    variance: the orthant), with weights from the information
    (:func:`variance_information`), or from the identity and a note saying why."""
    terms = [fit.model.design.random[i] for i in indices]
    psd = len(terms) == 1 and terms[0].correlated
    q = terms[0].n_columns if psd else sum(t.n_columns for t in terms)
    cone = "psd" if psd else "orthant"
    try:
        info, why = variance_information(fit, reduced, indices, ml)
    except Exception as err:  # noqa: BLE001 - the identity is the documented fallback
        info, why = None, f"{type(err).__name__}: {err}"
    if info is None:
        mix = psd_cone(q) if psd else independent_variances(q)
        return mix, [f"mixture weights from the identity information ({why})"]
    source = (
        "estimated information of the linear model at the null fit"
        if fit.method == "lmm" or fit.model.design.family.name == "gaussian"
        else "estimated information of the working linear model at the null fit"
    )
    return cone_weights(info, q, cone, information_source=source), []
