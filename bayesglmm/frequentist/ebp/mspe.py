"""The terms of the MSPE of an empirical best predictor.

With ``zeta-tilde(y, psi) = E_psi(zeta | y)`` the best predictor and ``psi-hat`` the
estimates with sampling covariance ``V`` (fixed effects ``beta``; variance parameters
``phi``),

.. math::

    \\text{MSPE} = g_1 + g_2 + g_3 + o(m^{-1}), \\quad
    E\\,g_1(\\hat\\psi) = g_1(\\psi) + B_1 + o(m^{-1}),

- ``g1 = Var_psi(zeta | y)``, the MSPE of the best predictor;
- ``g2 = grad_beta' V_beta grad_beta`` and ``g3`` the rest of ``grad' V grad`` (``phi`` and
  its covariance with ``beta``): the delta-method variance of ``zeta-tilde(y, psi-hat)``;
- ``B1 = 1/2 tr(Hess g1 V) + grad g1' bias(psi-hat)``, the bias of the plug-in ``g1``.

The second-order estimator is ``g1 - B1 + g2 + g3``. For the balanced nested-error model
(REML, unbiased to ``o(1/m)``) ``B1 = -g3`` exactly and this is Prasad & Rao's (1990)
``g1 + g2 + 2 g3``; for GLMMs it is Jiang & Lahiri's (2001) ``b(psi-hat) + e(psi-hat) -
B(psi-hat)`` with the conditional variance and the delta term at the observed response.

``g3`` is the expectation over the area's response of the delta term (Prasad & Rao's form)
for a Gaussian response with the identity link and one grouping factor, computed exactly
(the derivative of the BLUP in ``phi`` is linear in ``y``: a symmetric cubature on
``y = mu +- L e_c``, ``L L' = Var(y)`` per level, integrates its square exactly); otherwise
it is evaluated at the observed response (an unbiased estimate of that expectation to the
order that matters). Derivatives are central differences of the quadrature (smooth in the
parameters with the nodes fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engines import Psi, Quadrature

#: relative step of the first differences; the Hessian's step in standard errors
GRAD_STEP, HESS_STEP = 1e-4, 0.05
#: largest rows per level for the exact expectation of g3 (else: at the observed y)
MAX_ROWS_EXACT_G3 = 200


@dataclass
class ParamMap:
    """The estimated parameters the predictor depends on: names, covariance ``V``, how many
    are fixed effects (the first ``p``), the ``O(1/m)`` bias of the estimates and
    ``build(delta) -> Psi``; ``scale`` caps the Hessian's steps (variance parameters)."""

    names: list
    V: np.ndarray
    p: int
    bias: np.ndarray
    build: object
    scale: np.ndarray
    source: str


def gaussian_params(result, design, psi: Psi, V_beta: np.ndarray | None) -> ParamMap | None:
    """Variances of each term (correlations held) and the residual variance, with the
    inverse Fisher information ``1/2 tr(V^-1 V_j V^-1 V_k)`` (one grouping factor, levels
    independent); the ML bias of Datta & Lahiri (2000) when the fit is not REML."""
    if V_beta is None:
        return None
    terms = design.random
    Zd = np.hstack([t.X for t in terms])
    level = terms[0].index
    G = _block(psi.covs)
    comps = [(i, j) for i, t in enumerate(terms) for j in range(t.n_columns)]
    offsets = np.cumsum([0] + [t.n_columns for t in terms])
    sds = np.sqrt(np.clip(np.diag(G), 0.0, None))
    R = G / np.outer(np.where(sds > 0, sds, 1.0), np.where(sds > 0, sds, 1.0))
    dG = []  # d G / d var_c with the correlations held (none at a zero variance)
    for i, j in comps:
        c = offsets[i] + j
        D = np.zeros_like(G)
        if sds[c] > 0:
            D[c, :] = R[c, :] * sds / (2 * sds[c])
            D[:, c] = D[c, :]
        D[c, c] = 1.0
        dG.append(D)
    s2 = psi.dispersion**2
    P = len(comps) + 1
    info = np.zeros((P, P))
    X = design.X
    XVX = np.zeros((X.shape[1], X.shape[1]))
    tr_ml = np.zeros((P, X.shape[1], X.shape[1]))
    for lev in range(terms[0].n_levels):
        rows = level == lev
        Z = Zd[rows]
        Vi = s2 * np.eye(Z.shape[0]) + Z @ G @ Z.T
        Vinv = np.linalg.inv(Vi)
        derivs = [Z @ D @ Z.T for D in dG] + [np.eye(Z.shape[0])]
        M = [Vinv @ Dj for Dj in derivs]
        for a in range(P):
            for b in range(a, P):
                info[a, b] = info[b, a] = info[a, b] + 0.5 * np.sum(M[a] * M[b].T)
        Xi = X[rows]
        XVX += Xi.T @ Vinv @ Xi
        for a in range(P):
            tr_ml[a] += Xi.T @ M[a] @ Vinv @ Xi
    V_phi = np.linalg.pinv(info)
    reml = bool((result.info.get("details") or {}).get("reml", True))
    bias = np.zeros(P)
    if not reml:  # E(ML score) = -1/2 tr((X'V^-1X)^-1 X'V^-1 V_j V^-1 X)
        S = np.linalg.inv(XVX)
        bias = V_phi @ np.array([-0.5 * np.sum(S * tr_ml[a].T) for a in range(P)])
    p = len(psi.beta)
    V = np.zeros((p + P, p + P))
    V[:p, :p] = V_beta
    V[p:, p:] = V_phi
    variances = np.array([G[offsets[i] + j, offsets[i] + j] for i, j in comps] + [s2])
    names = [f"var({terms[i].component_names[j]})" for i, j in comps] + ["var(residual)"]

    def build(delta: np.ndarray) -> Psi:
        covs = [c.copy() for c in psi.covs]
        for (i, j), dv in zip(comps, delta[p:-1], strict=True):
            covs[i] = set_variance(covs[i], j, covs[i][j, j] + dv)
        sigma = np.sqrt(max(s2 + delta[-1], 1e-300))
        return Psi(psi.beta + delta[:p], covs, sigma)

    scale = np.concatenate([np.full(p, np.inf), 0.5 * variances])
    return ParamMap(
        list(design.fixed_names) + names,
        V,
        p,
        np.concatenate([np.zeros(p), bias]),
        build,
        scale,
        "inverse Fisher information of the variances" + ("" if reml else " (ML bias)"),
    )


def set_variance(S: np.ndarray, j: int, var: float) -> np.ndarray:
    """``S`` with variance ``var`` (floored at 0) for component ``j``, its correlations
    held (zero from a zero variance)."""
    S = S.copy()
    sd_old, sd_new = np.sqrt(max(S[j, j], 0.0)), np.sqrt(max(var, 0.0))
    if sd_old > 0:
        S[j, :] *= sd_new / sd_old
        S[:, j] *= sd_new / sd_old
    else:
        S[j, :] = S[:, j] = 0.0
    S[j, j] = max(var, 0.0)
    return S


def _block(covs):
    import scipy.linalg

    return scipy.linalg.block_diag(*covs)


def delta_terms(engine, psi: Psi, h, pm: ParamMap):
    """Gradient of the predictor (targets x parameters) and ``(g2, g3)`` at the observed
    response."""
    grad = gradient(engine, pm, h)
    p = pm.p
    total = np.einsum("ij,jk,ik->i", grad, pm.V, grad)
    g2 = np.einsum("ij,jk,ik->i", grad[:, :p], pm.V[:p, :p], grad[:, :p])
    return grad, g2, total - g2


def gradient(engine, pm: ParamMap, h, which: int = 0) -> np.ndarray:
    """Central differences of the conditional mean (``which=0``) or of ``g1`` (``1``);
    forward ones for a variance within a step of zero."""
    n_par = pm.V.shape[0]
    out, base = [], None
    for j in range(n_par):
        step = GRAD_STEP * max(1.0, np.sqrt(pm.V[j, j]))
        e = np.zeros(n_par)
        e[j] = step
        up = _value(engine, pm.build(e), h, which)
        if pm.scale[j] < step:  # a variance at (or within a step of) zero: forward
            if base is None:
                base = _value(engine, pm.build(np.zeros(n_par)), h, which)
            out.append((up - base) / step)
            continue
        down = _value(engine, pm.build(-e), h, which)
        out.append((up - down) / (2 * step))
    return np.column_stack(out) if out else np.zeros((engine.targets.n, 0))


def _value(engine, psi, h, which):
    mean, second, _ = engine.moments(psi, h)
    return mean if which == 0 else second - mean**2


def g1_bias(engine, psi: Psi, h, pm: ParamMap, g1: np.ndarray) -> np.ndarray:
    """``B1 = 1/2 tr(Hess g1 V) + grad g1' bias``: second differences of ``g1`` with steps
    of ``HESS_STEP`` standard errors. A variance parameter closer to zero than twice its
    step (``pm.scale`` is half of it) is differenced about a centre one step above it, so
    that every point keeps it >= 0 (the Hessian, smooth, moves by O(step))."""
    n_par = pm.V.shape[0]
    steps = HESS_STEP * np.sqrt(np.clip(np.diag(pm.V), 0, None))
    centre = np.where(pm.scale < steps, steps, 0.0)
    use = [j for j in range(n_par) if steps[j] > 0]
    f = {}

    def at(delta):
        key = tuple(np.round(delta, 15))
        if key not in f:
            f[key] = _value(engine, pm.build(centre + delta), h, 1)
        return f[key]

    base = g1 if not centre.any() else at(np.zeros(n_par))
    out = np.zeros(engine.targets.n)
    for a in use:
        ea = np.zeros(n_par)
        ea[a] = steps[a]
        plus, minus = at(ea), at(-ea)
        out += 0.5 * pm.V[a, a] * (plus - 2 * base + minus) / steps[a] ** 2
        out += pm.bias[a] * (plus - minus) / (2 * steps[a])
        for b in use:
            if b <= a or pm.V[a, b] == 0:
                continue
            eb = np.zeros(n_par)
            eb[b] = steps[b]
            cross = at(ea + eb) - at(ea - eb) - at(eb - ea) + at(-ea - eb)
            out += pm.V[a, b] * cross / (4 * steps[a] * steps[b])
    return out


def expected_g3(engine: Quadrature, psi: Psi, h, pm: ParamMap) -> np.ndarray | None:
    """Prasad & Rao's ``g3 = E_y[grad_phi' V_phi grad_phi]`` for a Gaussian response with
    the identity link: the gradient is linear in ``y`` (zero at ``y = X beta``), so the
    symmetric points ``mu +- L_i e_c`` (``L_i L_i' = Var(y_i)``) integrate its square
    exactly. None when a level has more than ``MAX_ROWS_EXACT_G3`` rows."""
    d = engine.design
    level = d.random[0].index
    counts = np.bincount(level, minlength=d.random[0].n_levels)
    if counts.max() > MAX_ROWS_EXACT_G3:
        return None
    Zd = np.hstack([t.X for t in d.random])
    G = _block(psi.covs)
    mu = d.X @ psi.beta + d.offset
    p = pm.p
    Vphi = pm.V[p:, p:]
    sub = ParamMap(pm.names, pm.V, pm.p, pm.bias, pm.build, pm.scale, pm.source)

    def grad_phi(y):
        eng = Quadrature(d, engine.targets, psi, engine.notes["n_quad"], y=y)
        return gradient(eng, sub, h)[:, p:]

    a = grad_phi(mu)
    E = np.einsum("ij,ik->ijk", a, a)
    cols = [
        np.linalg.cholesky(
            psi.dispersion**2 * np.eye(c) + Zd[level == lev] @ G @ Zd[level == lev].T
        )
        for lev, c in enumerate(counts)
    ]
    for c in range(counts.max()):
        shift = np.zeros(d.n)
        for lev, L in enumerate(cols):
            if L.shape[0] > c:
                shift[level == lev] = L[:, c]
        up, down = grad_phi(mu + shift), grad_phi(mu - shift)
        E += 0.5 * (np.einsum("ij,ik->ijk", up, up) + np.einsum("ij,ik->ijk", down, down))
        E -= np.einsum("ij,ik->ijk", a, a)
    return np.einsum("ijk,jk->i", E, Vphi)
