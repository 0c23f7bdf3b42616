"""Estimating equations for the association parameters of binary GEE (``association=
"prentice"``) and the joint sandwich covariance of ``(beta, gamma, alpha)``.

Prentice (1988) adds to the mean equations of Liang & Zeger a second set for the
correlation parameters ``alpha``: with standardized residuals ``r_ij = (y_ij - mu_ij) /
sqrt(v_ij)``, the scale ``phi = gamma`` and the products ``z_ijk = r_ij r_ik / phi``
(``j < k``),

.. math::

    U_2(\\gamma) = \\sum_i \\sum_j \\frac{r_{ij}^2 - \\phi}{2\\phi} = 0, \\qquad
    U_3(\\alpha) = \\sum_i E_i^\\top (z_i - \\rho_i(\\alpha)) = 0,

``E_i = d rho_i / d alpha``: 1 for every pair (exchangeable, ``rho = alpha``) or
``d alpha^(d - 1)`` with ``d = |t_j - t_k|`` (AR(1), ``rho = alpha^d``). The weights of
both equations are those of R's geepack ``geese`` (Yan & Fine 2004) with its defaults
``sca.link = "identity"``, ``cor.link = "identity"``, ``scale.fix = FALSE``: identity
weights for ``z`` (``H_i = I``) and ``1 / (2 phi)`` for ``r^2``. Their roots are the
``moments="geepack"`` moment estimators (:mod:`.correlation`), so the estimates are those
of ``association="moment"``; what the equations add is the covariance of ``gamma`` and
``alpha``.

Stacking ``G_i = (U_1i, U_2i, U_3i)`` (``U_1i = D_i' (phi R_i)^{-1} r_i`` with ``D_i =
v_i^{-1/2} d mu_i / d beta'``), the sandwich is ``H^{-1} (sum_i G_i G_i') H^{-T}`` with
the block lower-triangular ``H = [[A, 0, 0], [B, C, 0], [D, E, F]]`` of minus the
derivatives of the equations, each block written as geepack's ``src/geesubs.cc``
(``HiandGi``, ``getS_Beta``, ``getZ_Beta``, ``getZ_Gamma``) writes it, so that the
standard errors are ``geese``'s ``san.se``:

* ``A = sum D' (phi R)^{-1} D``, ``C = N / (2 phi)``, ``F = sum E'E``;
* ``B = -sum_j f_j D_j / (2 phi)``, ``f_j = -2 r_j / sqrt(v_j) - r_j^2 v'_j / v_j``
  (``v'`` the derivative of the variance function);
* ``D = -sum_jk E_jk Zb_jk``, ``Zb_jk = (-r_j D_j - r_k D_k - r_j r_k (v'_j D_j /
  sqrt(v_j) + v'_k D_k / sqrt(v_k)) / 2) / phi``;
* ``E = sum_jk E_jk z_jk / phi``.

(``f_j`` and ``Zb_jk`` are geepack's expressions; the exact derivatives of ``r_j^2`` and
``r_j r_k`` differ from them in terms whose expectation is zero or by the factor
``sqrt(v_j)``.) Clusters of one observation add nothing to ``U_3``, ``D``, ``E``, ``F``.
geese (1.3.9) adds, for such a cluster, the ``alpha`` terms of the cluster before it
again (``HiandGi`` returns before setting them and the per-cluster terms are reused), so
with clusters of one observation its ``alpha`` standard error differs from this one;
``beta``, ``gamma``, ``alpha`` and the other standard errors agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: working correlations with Prentice's equations (one parameter ``alpha`` each)
PRENTICE_CORSTRS = ("exchangeable", "ar1")


@dataclass
class Association:
    """Estimates and joint sandwich covariance of ``(beta, gamma, alpha)``.

    Attributes
    ----------
    names : list of str
        ``beta`` names, then ``"gamma"``, then ``"alpha"``.
    estimates : ndarray
    cov : ndarray
        The sandwich covariance (``geese``'s ``vbeta``, ``vgamma``, ``valpha`` are its
        diagonal blocks).
    naive_alpha_var : float
        ``F^{-1}``, geese's ``valpha.naiv``.
    """

    names: list
    estimates: np.ndarray
    cov: np.ndarray
    naive_alpha_var: float

    @property
    def std_errors(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))


def _pair_derivative(corr, times: np.ndarray, j: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``d rho_jk / d alpha`` of the pairs ``(j, k)`` of clusters with ``times``, (m, P)."""
    if corr.name == "exchangeable":
        return np.ones((times.shape[0], j.size))
    d = np.abs(times[:, k] - times[:, j]).astype(float)
    a = corr.alpha
    return np.where(d == 1.0, 1.0, d * a ** np.maximum(d - 1.0, 0.0))


def association_covariance(data, clusters, corr, beta, scale: float, names=None) -> Association:
    """The joint sandwich of ``(beta, gamma, alpha)`` at the solution (module docstring).

    Parameters
    ----------
    data : GEEData
        Binary responses (trials 1).
    clusters : Clusters
    corr : Exchangeable or Autoregressive
        The working correlation at the solution (``moments="geepack"``).
    beta : ndarray
    scale : float
        ``gamma = phi = sum r^2 / N``.
    names : list of str, optional
        Names of ``beta`` (default ``"0"``, ``"1"`` ...).
    """
    n, p = data.X.shape
    link = data.family.link
    eta = data.X @ beta + data.offset
    mu = link.linkinv(eta)
    v = data.family.variance(mu)
    dv = 1.0 - 2.0 * mu  # derivative of the binomial variance function mu (1 - mu)
    sv = np.sqrt(v)
    r_all = (data.y - mu) / sv
    D_all = (link.mu_eta(eta) / sv)[:, None] * data.X
    phi = float(scale)
    q = p + 2
    A = np.zeros((p, p))
    B = np.zeros(p)
    Dblk = np.zeros(p)
    Eblk = F = 0.0
    L = np.zeros((q, q))
    for b in clusters.buckets:
        rows = b.rows
        m, k = rows.shape
        r, D = r_all[rows], D_all[rows]
        R = corr.covariance_matrix(b.times)
        sol = np.linalg.solve(phi * R, np.concatenate([D, r[:, :, None]], axis=2))
        A += np.einsum("mkp,mkq->pq", D, sol[:, :, :p])
        G = np.zeros((m, q))
        G[:, :p] = np.einsum("mkp,mk->mp", D, sol[:, :, p])
        f = -2.0 * r / sv[rows] - r * r * dv[rows] / v[rows]
        B += -np.einsum("mk,mkp->p", f, D) / (2.0 * phi)
        G[:, p] = ((r * r - phi) / (2.0 * phi)).sum(axis=1)
        if k > 1:
            j, l = np.triu_indices(k, 1)
            z = r[:, j] * r[:, l] / phi
            rho = R[:, j, l]
            E = _pair_derivative(corr, b.times, j, l)
            F += float((E * E).sum())
            G[:, p + 1] = (E * (z - rho)).sum(axis=1)
            c = dv[rows] / sv[rows]  # v' / sqrt(v)
            Dj, Dl = D[:, j], D[:, l]
            rr = (r[:, j] * r[:, l])[:, :, None]
            zb = (
                -r[:, j, None] * Dj
                - r[:, l, None] * Dl
                - 0.5 * rr * (c[:, j, None] * Dj + c[:, l, None] * Dl)
            ) / phi
            Dblk += -np.einsum("mP,mPp->p", E, zb)
            Eblk += float((E * z).sum()) / phi
        L += G.T @ G
    H = np.zeros((q, q))
    H[:p, :p] = A
    H[p, :p] = B
    H[p, p] = n / (2.0 * phi)
    H[p + 1, :p] = Dblk
    H[p + 1, p] = Eblk
    H[p + 1, p + 1] = F
    Hinv = np.linalg.inv(H)
    cov = Hinv @ L @ Hinv.T
    est = np.concatenate([beta, [phi, corr.alpha]])
    return Association(
        names=[*(names if names is not None else map(str, range(p))), "gamma", "alpha"],
        estimates=est,
        cov=cov,
        naive_alpha_var=1.0 / F if F > 0 else float("nan"),
    )
