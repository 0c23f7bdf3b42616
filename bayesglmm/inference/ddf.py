"""F and t tests of the fixed effects of a linear mixed model with approximate
denominator degrees of freedom (Satterthwaite, Kenward-Roger), as lmerTest and pbkrtest.

Hypotheses
    :func:`term_contrasts` gives one contrast matrix ``L`` per formula term, lmerTest's
    type III hypotheses (``get_contrasts_type3``): with ``rdX`` the rank-deficient design
    (every factor coded by indicators of all its levels) and ``X_t`` the treatment-coded
    design, ``L = t(ginv(X_t) rdX)``; the columns of a term contained in another (its
    variables a subset, with the same numeric variables) are made orthogonal to those of
    the containing terms, higher-order terms first; the rows of ``L`` kept are those of the
    columns of ``X_t``, and ``L`` is mapped to the fit's own coding by ``ginv(X_t) X``.
    The hypotheses do not depend on the coding (treatment, sum) of the fit. A model with one
    term uses lmerTest's type I (Doolittle) rows, as lmerTest does.

Satterthwaite (lmerTest, Kuznetsova, Brockhoff & Christensen 2017, *J. Stat. Softw.*
82(13))
    The variance parameters are ``(theta, sigma)``; their asymptotic covariance is
    ``2 H^{-1}`` with ``H`` the Hessian of the REML deviance with ``sigma`` not profiled
    out, and ``J_k`` the derivative of ``cov(beta) = sigma^2 (R_X' R_X)^{-1}`` in each
    parameter (both by Richardson-extrapolated central differences, as numDeriv). For one
    contrast ``l``: ``df = 2 (l V l')^2 / (g' A g)`` with ``g_k = l J_k l'``. For ``q > 1``
    rows: ``L V L' = P D P'``; ``F = sum_m (p_m' L b)^2 / d_m / q``, ``nu_m`` the
    one-contrast df of ``p_m' L`` and ``DenDF = 2 E / (E - q)``, ``E = sum nu_m / (nu_m - 2)``
    (2 when some ``nu_m <= 2``).

Kenward-Roger (Kenward & Roger 1997; pbkrtest's ``vcovAdj`` and ``KRmodcomp``)
    With ``Sigma = sum_i gamma_i G_i`` linear in the variances and covariances of the
    random effects and ``sigma^2``, the adjusted covariance ``Phi_A = Phi + 2 Phi U Phi``
    uses the expected information of ``gamma``; the F statistic is scaled and its
    denominator df matched to the first two moments. The ``n x n`` matrices are dense, as in
    pbkrtest, so this is for ``n <=`` :data:`KR_MAX_N`.

``SumSq`` and ``MeanSq`` are lmerTest's: ``MeanSq = F sigma^2`` (the unscaled F for
Kenward-Roger) and ``SumSq = MeanSq * NumDF``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg
from scipy import stats

from .._warn import warn
from ..errors import MethodError

#: values of ``ddf=``
DDF_METHODS = ("satterthwaite", "kenward-roger")
#: the largest number of rows for Kenward-Roger (dense ``n x n`` matrices, as pbkrtest)
KR_MAX_N = 4000
#: eigenvalues of the deviance's Hessian below this are taken as zero (lmerTest's tol)
HESSIAN_TOL = 1e-8
#: numDeriv's defaults: first step ``d |x|`` (``EPS`` where ``|x| < ZERO_TOL``), ``R`` halvings
STEP_D = 1e-1
STEP_EPS = 1e-4
ZERO_TOL = float(np.sqrt(np.finfo(float).eps / 7e-7))
RICHARDSON_R = 4


def normalize_ddf(ddf) -> str:
    """``"satterthwaite"`` or ``"kenward-roger"`` from a spelling such as ``"Kenward-Roger"``,
    ``"KR"``; :class:`MethodError` otherwise."""
    key = str(ddf).strip().lower().replace("_", "-").replace(" ", "-")
    aliases = {m: m for m in DDF_METHODS}
    aliases.update({"kr": "kenward-roger", "kenwardroger": "kenward-roger"})
    if not isinstance(ddf, str) or key not in aliases:
        raise MethodError(f"ddf must be one of {DDF_METHODS}, got {ddf!r}")
    return aliases[key]


# --------------------------------------------------------------------------------------
# hypotheses


def zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry."""
    x = np.asarray(x, dtype=float)
    mx = np.max(np.abs(x)) if x.size else 0.0
    if not mx > 0:
        return x
    return np.round(x, max(0, digits - int(np.ceil(np.log10(mx)))))


@dataclass
class _Term:
    name: str
    variables: list[str]
    numerics: set[str]
    columns_t: np.ndarray  # treatment-coded columns
    columns_rd: np.ndarray  # indicator (rank-deficient) columns
    keys_t: list[tuple]
    keys_rd: list[tuple]


def _component(comp) -> tuple[np.ndarray, np.ndarray, list, list, bool]:
    """(treatment-coded, indicator) columns of one formulae component and their keys."""
    value = np.asarray(comp.value, dtype=float)
    if value.ndim == 1:
        value = value[:, None]
    if comp.kind != "categoric":
        keys = [(comp.name, j) for j in range(value.shape[1])]
        return value, value, keys, keys, True
    C = np.asarray(comp.contrast_matrix.matrix, dtype=float)
    k = C.shape[0]
    if C.shape[1] == k:  # full coding: value = I C
        full = value @ np.linalg.inv(C)
    else:  # reduced coding: [1, value] = I [1, C]
        full = np.column_stack([np.ones(len(value)), value]) @ np.linalg.inv(
            np.column_stack([np.ones(k), C])
        )
    full = np.round(full, 12)
    keys_rd = [(comp.name, lev) for lev in range(k)]
    if C.shape[1] == k:
        return full, full, keys_rd, keys_rd, False
    return full[:, 1:], full, keys_rd[1:], keys_rd, False


def _rowwise_kron(mats: list[np.ndarray], keys: list[list]) -> tuple[np.ndarray, list[tuple]]:
    out, names = mats[0], [(k,) for k in keys[0]]
    for m, ks in zip(mats[1:], keys[1:], strict=True):
        out = (out[:, :, None] * m[:, None, :]).reshape(len(out), -1)
        names = [a + (b,) for a in names for b in ks]
    return out, names


def _terms(design) -> tuple[bool, list[_Term]]:
    from ..model import factors

    common = design.fixed_design
    has_intercept = "Intercept" in design.fixed_terms
    terms = []
    if common is None:
        return has_intercept, terms
    for raw, term in common.terms.items():
        name = factors.restore(raw)
        if name == "Intercept" or name not in design.fixed_terms:
            continue
        parts = [_component(c) for c in term.components]
        Xt, kt = _rowwise_kron([p[0] for p in parts], [p[2] for p in parts])
        Xr, kr = _rowwise_kron([p[1] for p in parts], [p[3] for p in parts])
        variables = [c.name for c in term.components]
        numerics = {c.name for c, p in zip(term.components, parts, strict=True) if p[4]}
        terms.append(_Term(name, variables, numerics, Xt, Xr, kt, kr))
    order = list(design.fixed_terms)
    terms.sort(key=lambda t: order.index(t.name))
    return has_intercept, terms


def _doolittle_rows(X: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``t(doolittle(crossprod(X))$L)`` of lmerTest."""
    x = X.T @ X
    n = x.shape[0]
    L, U = np.eye(n), np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            U[i, j] = x[i, j] - L[i, :i] @ U[:i, j]
        for j in range(i + 1, n):
            val = x[j, i] - L[j, :i] @ U[:i, i]
            L[j, i] = 0.0 if abs(U[i, i]) < eps else val / U[i, i]
    L[np.abs(L) < eps] = 0.0
    return L.T


def term_contrasts(design) -> dict[str, np.ndarray]:
    """lmerTest's type III contrast matrix of every fixed-effect term of ``design``.

    Parameters
    ----------
    design : Design

    Returns
    -------
    dict
        Term name (``"f"``, ``"x"``, ``"f:x"``) -> ``L`` with one column per fixed-effect
        column of the design (the intercept has no entry); see the module docstring.
    """
    X = np.asarray(design.X, dtype=float)
    has_intercept, terms = _terms(design)
    if not terms:
        return {}
    slices = design.fixed_terms
    if X.shape[1] <= 1 or len(terms) <= 1:  # lmerTest: type I for a model of one term
        L = _doolittle_rows(X)
        return {t.name: L[slices[t.name]] for t in terms}
    ones = [np.ones((X.shape[0], 1))] if has_intercept else []
    icpt = [("(Intercept)",)] if has_intercept else []
    Xt = np.hstack(ones + [t.columns_t for t in terms])
    rdX = np.hstack(ones + [t.columns_rd for t in terms])
    keys_t = icpt + [(t.name, k) for t in terms for k in t.keys_t]
    keys_rd = icpt + [(t.name, k) for t in terms for k in t.keys_rd]
    ginv = np.linalg.pinv(Xt)
    L = zapsmall((ginv @ rdX).T)  # rows: rdX columns, columns: Xt columns
    cols, start = {}, len(icpt)
    for t in terms:
        cols[t.name] = np.arange(start, start + t.columns_t.shape[1])
        start += t.columns_t.shape[1]

    present = {frozenset(t.variables) for t in terms}

    def coded(t: _Term) -> set[str]:
        """Variables of ``t`` whose margin (``t`` without them) is in the model: R's
        ``factors`` entries equal to 1, the only ones lmerTest's containment reads."""
        if len(t.variables) == 1:
            return set(t.variables)
        return {v for v in t.variables if frozenset(set(t.variables) - {v}) in present}

    def contains(a: _Term, b: _Term) -> bool:
        va, vb = coded(a), coded(b)
        return va <= vb and bool(vb - va) and (a.numerics & va) == (b.numerics & vb)

    for t in sorted(terms, key=lambda t: -len(t.variables)):  # stable, as R's order()
        within = [u for u in terms if contains(t, u)]
        if within:
            A = L[:, np.concatenate([cols[u.name] for u in within])]
            Y = L[:, cols[t.name]]
            coef = np.linalg.lstsq(A, Y, rcond=None)[0]
            L[:, cols[t.name]] = zapsmall(Y - A @ coef)
    position = {k: i for i, k in enumerate(keys_rd)}
    L = L[[position[k] for k in keys_t]]
    mapping = zapsmall(ginv @ X)  # Xt columns -> the fit's columns
    out = {}
    for t in terms:
        Lt = L[:, cols[t.name]].T
        Lt = Lt[np.abs(Lt).sum(axis=1) > 1e-8]
        out[t.name] = Lt @ mapping
    return out


# --------------------------------------------------------------------------------------
# the fit's pieces


@dataclass
class LmmPieces:
    """What the tests need from a REML ``lmm`` fit, rebuilt from its model and ``theta``."""

    design: object
    problem: object
    theta: np.ndarray
    sigma: float
    beta: np.ndarray
    vcov: np.ndarray
    names: list[str]

    def at(self, theta: np.ndarray):
        """The solution at ``theta`` (``sigma`` profiled out; the pieces do not need it)."""
        return self.problem.solve(np.asarray(theta, dtype=float))


def lmm_pieces(fit, theta=None) -> LmmPieces:
    """The REML problem of an ``lmm`` fit, at the fit's ``theta`` (or the one given)."""
    from ..frequentist.covariance import CovarianceFactor
    from ..frequentist.lmm import LMMProblem, lmm_data

    d = fit.model.design
    cf = CovarianceFactor(d)
    data = lmm_data(d.y - d.offset, d.X, d.Z, None, d.random)
    problem = LMMProblem(data, cf, reml=True)
    theta = np.asarray(fit.info["theta"] if theta is None else theta, dtype=float)
    sol = problem.solve(theta)
    return LmmPieces(
        design=d,
        problem=problem,
        theta=theta,
        sigma=float(np.sqrt(sol.sigma2)),
        beta=sol.beta,
        vcov=sol.cov_beta,
        names=[str(n) for n in d.fixed_names],
    )


# --------------------------------------------------------------------------------------
# numerical derivatives (numDeriv's Richardson extrapolation)


def _steps(x: np.ndarray) -> np.ndarray:
    return np.abs(STEP_D * x) + STEP_EPS * (np.abs(x) < ZERO_TOL)


def _richardson(values: list) -> object:
    """Extrapolate central differences at steps ``h, h/2, ...`` (error ``O(h^2)``)."""
    a = list(values)
    for m in range(1, len(a)):
        a = [(4**m * a[i + 1] - a[i]) / (4**m - 1) for i in range(len(a) - 1)]
    return a[0]


def jacobian(fun, x: np.ndarray) -> np.ndarray:
    """``d fun / d x`` (``fun`` array-valued), central differences with Richardson."""
    x = np.asarray(x, dtype=float)
    f0 = np.asarray(fun(x), dtype=float)
    out = np.empty(f0.shape + (x.size,))
    h0 = _steps(x)
    for i in range(x.size):
        est = []
        for r in range(RICHARDSON_R):
            h = h0[i] / 2**r
            e = np.zeros_like(x)
            e[i] = h
            est.append((np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2 * h))
        out[..., i] = _richardson(est)
    return out


def hessian(fun, x: np.ndarray) -> np.ndarray:
    """Hessian of a scalar ``fun``, central second differences with Richardson."""
    x = np.asarray(x, dtype=float)
    k = x.size
    f0 = float(fun(x))
    H = np.empty((k, k))
    h0 = _steps(x)
    for i in range(k):
        for j in range(i, k):
            est = []
            for r in range(RICHARDSON_R):
                hi, hj = h0[i] / 2**r, h0[j] / 2**r
                ei, ej = np.zeros(k), np.zeros(k)
                ei[i], ej[j] = hi, hj
                if i == j:
                    est.append((fun(x + ei) - 2 * f0 + fun(x - ei)) / hi**2)
                else:
                    pp, pm = fun(x + ei + ej), fun(x + ei - ej)
                    mp, mm = fun(x - ei + ej), fun(x - ei - ej)
                    est.append((pp - pm - mp + mm) / (4 * hi * hj))
            H[i, j] = H[j, i] = _richardson(est)
    return H


# --------------------------------------------------------------------------------------
# Satterthwaite


@dataclass
class Satterthwaite:
    """``A`` (covariance of ``(theta, sigma)``) and ``J_k`` (derivatives of ``cov(beta)``)."""

    vcov_varpar: np.ndarray
    jac: np.ndarray  # (p, p, n_varpar)
    vcov: np.ndarray


def satterthwaite_pieces(pieces: LmmPieces) -> Satterthwaite:
    """lmerTest's ``vcov_varpar`` and ``Jac_list`` of a REML fit."""
    problem = pieces.problem
    problem_data = problem.data
    m = problem_data.n - problem_data.p
    cache: dict = {}

    def solve(theta):
        key = theta.tobytes()
        if key not in cache:
            s = problem.solve(theta)
            Rinv = scipy.linalg.solve_triangular(s.RX, np.eye(s.RX.shape[0]))
            cache[key] = (s.ld_L2 + s.ld_RX2 - problem_data.ld_w, s.pwrss, Rinv @ Rinv.T)
        return cache[key]

    def deviance(varpar):
        a, r2, _ = solve(varpar[:-1].copy())
        s2 = varpar[-1] ** 2
        return a + r2 / s2 + m * np.log(2 * np.pi * s2)

    def covbeta(varpar):
        return varpar[-1] ** 2 * solve(varpar[:-1].copy())[2]

    varpar = np.append(pieces.theta, pieces.sigma)
    H = hessian(deviance, varpar)
    w, V = np.linalg.eigh(H)
    neg = w < -HESSIAN_TOL
    if np.any(neg):
        warn(
            f"the REML deviance's Hessian has {int(neg.sum())} negative eigenvalue(s) "
            f"({', '.join(f'{v:.1e}' for v in w[neg])}): the fit may not have converged"
        )
    pos = w > HESSIAN_TOL
    A = 2.0 * (V[:, pos] / w[pos]) @ V[:, pos].T
    return Satterthwaite(A, jacobian(covbeta, varpar), pieces.vcov)


def satterthwaite_1d(sat: Satterthwaite, l: np.ndarray) -> tuple[float, float]:
    """(variance of ``l b``, Satterthwaite df) of one contrast."""
    var = float(l @ sat.vcov @ l)
    grad = np.einsum("i,ijk,j->k", l, sat.jac, l)
    return var, float(2 * var**2 / (grad @ sat.vcov_varpar @ grad))


def fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's ``get_Fstat_ddf``: the df of an F from the df of its ``q`` parts."""
    nu = np.asarray(nu, dtype=float)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - nu.size)


def satterthwaite_f(sat: Satterthwaite, L: np.ndarray, beta: np.ndarray) -> dict:
    """lmerTest's ``contestMD`` (Satterthwaite): F, NumDF and DenDF of ``L beta = 0``."""
    L = np.atleast_2d(L)
    if L.shape[0] == 1:
        var, df = satterthwaite_1d(sat, L[0])
        return {"F": float((L[0] @ beta) ** 2 / var), "NumDF": 1, "DenDF": df}
    d, P = np.linalg.eigh(L @ sat.vcov @ L.T)
    d, P = d[::-1], P[:, ::-1]
    tol = max(np.sqrt(np.finfo(float).eps) * d[0], 0.0)
    q = int(np.sum(d > tol))
    PtL = (P.T @ L)[:q]
    if q == 1:
        var, df = satterthwaite_1d(sat, PtL[0])
        return {"F": float((PtL[0] @ beta) ** 2 / var), "NumDF": 1, "DenDF": df}
    F = float(np.sum((PtL @ beta) ** 2 / d[:q]) / q)
    nu = [2 * d[m] ** 2 / _grad_quad(sat, PtL[m]) for m in range(q)]
    return {"F": F, "NumDF": q, "DenDF": fstat_ddf(np.array(nu))}


def _grad_quad(sat: Satterthwaite, l: np.ndarray) -> float:
    grad = np.einsum("i,ijk,j->k", l, sat.jac, l)
    return float(grad @ sat.vcov_varpar @ grad)


# --------------------------------------------------------------------------------------
# Kenward-Roger


@dataclass
class KenwardRoger:
    """pbkrtest's ``vcovAdj``: ``Phi``, the adjusted ``Phi_A`` and its ``P`` and ``W``."""

    phi: np.ndarray
    phi_adj: np.ndarray
    P: list
    W: np.ndarray


def _sigma_parts(pieces: LmmPieces) -> tuple[list[np.ndarray], np.ndarray]:
    """``G_i`` (dense ``n x n``) and ``gamma``: ``Sigma = sum gamma_i G_i`` (pbkrtest's
    ``get_SigmaG``: lower-triangle entries of each term's covariance, then ``sigma^2``)."""
    from ..frequentist.covariance import CovarianceFactor

    d = pieces.design
    cf = CovarianceFactor(d)
    s2 = pieces.sigma**2
    G, gamma = [], []
    for t, tf in zip(d.random, cf.terms, strict=True):
        same = (t.index[:, None] == t.index[None, :]).astype(float)
        S = s2 * tf.covariance(pieces.theta)
        k = t.n_columns
        pairs = (
            [(i, j) for j in range(k) for i in range(j, k)]
            if tf.correlated
            else [(i, i) for i in range(k)]
        )
        for i, j in pairs:
            outer = np.outer(t.X[:, i], t.X[:, j])
            if i != j:
                outer = outer + outer.T
            G.append(same * outer)
            gamma.append(S[i, j])
    G.append(np.eye(d.n))
    gamma.append(s2)
    return G, np.array(gamma)


def kenward_roger_pieces(pieces: LmmPieces) -> KenwardRoger:
    """pbkrtest's ``vcovAdj_internal`` on the fit's ``Sigma``."""
    d = pieces.design
    if d.n > KR_MAX_N:
        raise MethodError(
            f"ddf='kenward-roger' builds dense {d.n} x {d.n} matrices (as pbkrtest); it is "
            f"limited to {KR_MAX_N} rows: use ddf='satterthwaite'"
        )
    X = np.asarray(d.X, dtype=float)
    G, gamma = _sigma_parts(pieces)
    Sigma = sum(g * Gi for g, Gi in zip(gamma, G, strict=True))
    Sinv = scipy.linalg.cho_solve(scipy.linalg.cho_factor(Sigma), np.eye(d.n))
    Phi = pieces.vcov
    TT = Sinv @ X
    HH = [Gi @ Sinv for Gi in G]
    OO = [H @ X for H in HH]
    k = len(G)
    PP = []
    QQ = {}
    for r in range(k):
        P = -OO[r].T @ TT
        PP.append((P + P.T) / 2)
        for s in range(r, k):
            QQ[r, s] = OO[r].T @ Sinv @ OO[s]
    IE2 = np.empty((k, k))
    for i in range(k):
        PhiP = Phi @ PP[i]
        for j in range(i, k):
            ktr = float(np.sum(HH[i].T * HH[j]))
            IE2[i, j] = IE2[j, i] = (
                ktr - 2 * float(np.sum(Phi * QQ[i, j])) + float(np.sum(PhiP * (PP[j] @ Phi)))
            )
    cond = np.min(np.abs(np.linalg.eigvalsh(IE2)))
    W = 2 * (np.linalg.inv(IE2) if cond > 1e-10 else np.linalg.pinv(IE2))
    W = (W + W.T) / 2
    U = np.zeros_like(Phi)
    for i in range(k - 1):
        for j in range(i + 1, k):
            U += W[i, j] * (QQ[i, j] - PP[i] @ Phi @ PP[j])
    U = U + U.T
    for i in range(k):
        U += W[i, i] * (QQ[i, i] - PP[i] @ Phi @ PP[i])
    return KenwardRoger(Phi, Phi + 2 * Phi @ U @ Phi, PP, W)


def _kr_a(kr: KenwardRoger, L: np.ndarray) -> tuple[float, float]:
    Theta = L.T @ np.linalg.solve(L @ kr.phi @ L.T, L)
    TP = Theta @ kr.phi
    u = [TP @ P @ kr.phi for P in kr.P]
    A1 = A2 = 0.0
    k = len(u)
    for i in range(k):
        for j in range(i, k):
            e = 1.0 if i == j else 2.0
            A1 += e * kr.W[i, j] * np.trace(u[i]) * np.trace(u[j])
            A2 += e * kr.W[i, j] * float(np.sum(u[i] * u[j].T))
    return A1, A2


def kenward_roger_f(kr: KenwardRoger, L: np.ndarray, beta: np.ndarray) -> dict:
    """pbkrtest's ``.KR_adjust``: unscaled and scaled F, ``F.scaling`` and the df."""
    L = np.atleast_2d(L)
    q = int(np.linalg.matrix_rank(L))
    A1, A2 = _kr_a(kr, L)
    df2 = _kr_df(A1, A2, q)
    scaling = 1.0 if abs(df2 - 2) < 0.01 else df2 * (1 - A2 / q) / (df2 - 2)
    Lb = L @ beta
    FU = float(Lb @ np.linalg.solve(L @ kr.phi_adj @ L.T, Lb)) / q
    return {"F_unscaled": FU, "F": FU * scaling, "NumDF": q, "DenDF": float(df2),
            "F_scaling": float(scaling)}  # fmt: skip


# --------------------------------------------------------------------------------------
# tables


def _method_pieces(pieces: LmmPieces, ddf: str):
    """Satterthwaite's or Kenward-Roger's pieces, BLAS limited as the ``lmm`` fit limits it
    (one thread for small dense blocks, where threads cost more than they save)."""
    from ..frequentist.lmm import blas_threads

    with blas_threads(pieces.design):
        if ddf == "satterthwaite":
            return satterthwaite_pieces(pieces)
        return kenward_roger_pieces(pieces)


def ddf_anova(pieces: LmmPieces, ddf: str) -> pd.DataFrame:
    """The type III F table of a REML fit: lmerTest's ``anova(m, ddf=...)``.

    Parameters
    ----------
    pieces : LmmPieces
        From :func:`lmm_pieces`.
    ddf : {"satterthwaite", "kenward-roger"}

    Returns
    -------
    pandas.DataFrame
        One row per term: ``SumSq``, ``MeanSq``, ``NumDF``, ``DenDF``, ``F``, ``p_value``.
    """
    contrasts = term_contrasts(pieces.design)
    method = _method_pieces(pieces, ddf)
    s2 = pieces.sigma**2
    rows = {}
    for term, L in contrasts.items():
        if ddf == "satterthwaite":
            r = satterthwaite_f(method, L, pieces.beta)
            ms, F = r["F"] * s2, r["F"]
        else:
            r = kenward_roger_f(method, L, pieces.beta)
            ms, F = r["F_unscaled"] * s2, r["F"]
        rows[term] = {
            "SumSq": ms * r["NumDF"],
            "MeanSq": ms,
            "NumDF": int(r["NumDF"]),
            "DenDF": r["DenDF"],
            "F": F,
            "p_value": float(stats.f.sf(F, r["NumDF"], r["DenDF"])),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "term"
    return table


def coefficient_tests(pieces: LmmPieces, ddf: str) -> pd.DataFrame:
    """t tests of each fixed effect: lmerTest's ``coef(summary(m, ddf=...))``."""
    method = _method_pieces(pieces, ddf)
    rows = {}
    for i, name in enumerate(pieces.names):
        l = np.zeros(len(pieces.names))
        l[i] = 1.0
        if ddf == "satterthwaite":
            var, df = satterthwaite_1d(method, l)
        else:
            var = float(l @ method.phi_adj @ l)
            A1, A2 = _kr_a(method, l[None, :])
            df = _kr_df(A1, A2, 1)
        se = float(np.sqrt(var))
        t = float(pieces.beta[i] / se)
        rows[name] = {
            "estimate": float(pieces.beta[i]),
            "std_error": se,
            "df": df,
            "t": t,
            "p_value": float(2 * stats.t.sf(abs(t), df)),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "parameter"
    return table


def _kr_df(A1: float, A2: float, q: int) -> float:
    """pbkrtest's ``Lb_ddf`` from ``A1`` and ``A2``."""
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0, V1, V2 = 1 + c1 * B, 1 - c2 * B, 1 - c3 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    ratio = 1.0 if abs(1 - A2 / q) < 1e-14 and abs(V1) < 1e-14 else (1 - A2 / q) / V1
    rho = ratio**2 * V0 / V2 / q
    return float(4 + (q + 2) / (q * rho - 1))
