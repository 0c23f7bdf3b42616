"""The integrals of empirical best prediction: per-level adaptive Gauss-Hermite quadrature
(one grouping factor) and self-normalized importance sampling (any random effects).

Each engine is built at the conditional modes for one parameter value and one response, and
returns the first two conditional moments of every target at any parameter value
(:meth:`moments`) with its nodes or draws held fixed (smooth in the parameters, so that
finite differences of them are exact to rounding for quadrature and common-random-number
differences for importance sampling). A *target* is an average ``sum_r A[t, r] h_r(eta_r)``
of target rows (:class:`Targets`): one row (``A`` the identity), a random effect, or an
area's mean response over its rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ...errors import MethodError
from ...model.newdata import NewRows

#: Newton iterations for the conditional modes, and the step cap on the link scale
MODE_ITER, MAX_STEP = 100, 5.0
#: degrees of freedom of the importance proposal (heavier tails than the Laplace normal)
PROPOSAL_DF = 10
#: largest number of random effects the (dense) importance proposal handles
MAX_Q = 4000
#: smallest eigenvalue of a random-effect covariance, relative (see :func:`floor_cov`)
COV_FLOOR = 1e-10


@dataclass
class Psi:
    """Model parameters: fixed effects, one covariance per term, dispersion (or None)."""

    beta: np.ndarray
    covs: list
    dispersion: float | None


@dataclass
class Targets:
    """What to predict: ``zeta_t = sum_r A[t, r] h_r(x_r' beta + z_r' b)``.

    ``rows`` are the target rows, ``A`` a sparse (targets x rows) matrix whose rows each
    involve rows of one level (quadrature), ``link`` marks rows kept on the link scale
    (random effects) and ``level`` is the level of each target (-1: none, e.g. a new one).
    """

    rows: NewRows
    A: sp.csr_matrix
    link: np.ndarray

    @property
    def n(self) -> int:
        return self.A.shape[0]


def _row_loglik(design, y, trials, eta, disp):
    """Each row's log-likelihood at ``eta`` without its data-only term (constant in ``b``)."""
    fam = design.family
    return fam.loglik(y, fam.link.linkinv(eta), trials, disp, constant=0.0)


def _score_weight(design, y, trials, eta, disp):
    """Each row's score ``dl/deta`` and Fisher weight at ``eta``."""
    return design.family.score_weight(y, eta, trials, 1.0 if disp is None else disp)


def _log_normal(b: np.ndarray, S: np.ndarray) -> np.ndarray:
    """log N(b; 0, S) over the last axis (normalized)."""
    k = S.shape[0]
    w, U = np.linalg.eigh(S)
    w = np.clip(w, 1e-300, None)
    r = (b @ U) / np.sqrt(w)
    return -0.5 * (r**2).sum(-1) - 0.5 * np.log(w).sum() - 0.5 * k * np.log(2 * np.pi)


def floor_cov(S: np.ndarray) -> np.ndarray:
    """``S`` with eigenvalues at least ``COV_FLOOR`` times its largest (at least 1): a zero
    variance (a singular fit) becomes a point mass of width ~1e-5 that the quadrature and
    the Newton steps handle like any other."""
    w, U = np.linalg.eigh(S)
    low = COV_FLOOR * max(1.0, float(w.max(initial=0.0)))
    if w.min(initial=np.inf) >= low:
        return S
    return (U * np.maximum(w, low)) @ U.T


def _apply(targets: Targets, eta: np.ndarray, h) -> np.ndarray:
    """Target values from row linear predictors ``eta`` (rows x nodes)."""
    z = np.where(targets.link[:, None], eta, h(eta))
    return targets.A @ z


# --------------------------------------------------------------------------------------
# one grouping factor: adaptive Gauss-Hermite quadrature per level


class Quadrature:
    """Adaptive Gauss-Hermite quadrature per level (one grouping factor).

    ``y`` replaces the fit's response (same rows), e.g. for expectations over the data.
    """

    def __init__(self, design, targets: Targets, psi: Psi, n_quad: int, y=None) -> None:
        self.design, self.targets = design, targets
        self.y = design.y if y is None else np.asarray(y, dtype=float)
        rows = targets.rows
        terms = design.random
        self.L = terms[0].n_levels
        self.Zd = np.hstack([t.X for t in terms])  # (n, k): all effects of a row's level
        self.level = terms[0].index
        self.k = self.Zd.shape[1]
        # target rows: the re_form columns of each term in the k-vector
        n_t = rows.n
        self.Zt = np.zeros((n_t, self.k))
        self.tlevel = np.full(n_t, self.L)  # pseudo-level L: no data (new level / no term)
        lo, col = 0, {}
        for t in terms:
            col[t.name] = slice(lo, lo + t.n_columns)
            lo += t.n_columns
        for t, idx, Xz in zip(rows.terms, rows.index, rows.Xz, strict=True):
            self.Zt[:, col[t.name]] = Xz
            self.tlevel = np.where(idx >= 0, idx, self.L)
        # the level of each target: that of its first row (all its rows share it)
        A = targets.A.tocsr()
        first = A.indices[A.indptr[:-1]] if A.nnz else np.zeros(targets.n, int)
        self.target_level = self.tlevel[first]
        x, w = np.polynomial.hermite.hermgauss(n_quad)
        grids = np.meshgrid(*([x] * self.k), indexing="ij")
        self.nodes = np.stack([g.ravel() for g in grids], axis=-1)  # (J, k)
        wgrid = np.meshgrid(*([w] * self.k), indexing="ij")
        self.log_base = np.sum([np.log(g.ravel()) for g in wgrid], axis=0) + (self.nodes**2).sum(1)
        self.notes = {"n_quad": n_quad, "nodes_per_level": len(self.nodes)}
        self._points(psi)

    def _S(self, psi: Psi) -> np.ndarray:
        return floor_cov(scipy.linalg.block_diag(*psi.covs))

    def _mode(self, psi: Psi):
        d = self.design
        P = np.linalg.inv(self._S(psi))
        base = d.X @ psi.beta + d.offset
        b = np.zeros((self.L + 1, self.k))
        for _ in range(MODE_ITER):
            eta = base + np.einsum("ij,ij->i", self.Zd, b[self.level])
            s, w = _score_weight(d, self.y, d.trials, eta, psi.dispersion)
            grad = np.zeros((self.L + 1, self.k))
            np.add.at(grad, self.level, self.Zd * s[:, None])
            grad -= b @ P
            H = np.zeros((self.L + 1, self.k, self.k))
            np.add.at(H, self.level, w[:, None, None] * self.Zd[:, :, None] * self.Zd[:, None, :])
            H += P
            step = np.linalg.solve(H, grad[..., None])[..., 0]
            step *= np.minimum(
                1.0, MAX_STEP / np.maximum(np.abs(step).max(1, keepdims=True), 1e-300)
            )
            b = b + step
            if np.abs(step).max() < 1e-10:
                break
        return b, H

    def _points(self, psi: Psi) -> None:
        self.psi0 = psi
        self.b_mode, self.points = self._adapt(psi)

    def _adapt(self, psi: Psi):
        """Conditional modes and the nodes centred and scaled there, for ``psi``."""
        b, H = self._mode(psi)
        # b_lj = mode_l + sqrt(2) R_l x_j, R_l R_l' = H_l^{-1}
        R = np.linalg.cholesky(np.linalg.inv(H))
        return b, b[:, None, :] + np.sqrt(2.0) * np.einsum("lab,jb->lja", R, self.nodes)

    def _log_weights(self, psi: Psi, points) -> np.ndarray:
        d = self.design
        base = d.X @ psi.beta + d.offset
        eta = base[:, None] + np.einsum("ik,ijk->ij", self.Zd, points[self.level])
        ll = _row_loglik(
            d, self.y[:, None], None if d.trials is None else d.trials[:, None], eta, psi.dispersion
        )
        lw = np.zeros((self.L + 1, len(self.nodes)))
        np.add.at(lw, self.level, ll)
        lw += _log_normal(points, self._S(psi)) + self.log_base[None, :]
        lw -= lw.max(1, keepdims=True)
        w = np.exp(lw)
        return w / w.sum(1, keepdims=True)

    def _eta(self, psi: Psi, b_points) -> np.ndarray:
        r = self.targets.rows
        return (r.X @ psi.beta + r.offset)[:, None] + np.einsum(
            "ik,ijk->ij", self.Zt, b_points[self.tlevel]
        )

    def moments(self, psi: Psi, h):
        """``E(zeta | y)``, ``E(zeta^2 | y)`` and the Monte Carlo error (NaN: none).

        The nodes are re-adapted to ``psi`` (modes and curvatures): each value is accurate
        to the rule's error, so that differences in ``psi`` are smooth even from a variance
        at zero (nodes held at a point mass would not see a perturbed variance)."""
        points = self.points if psi is self.psi0 else self._adapt(psi)[1]
        w = self._log_weights(psi, points)
        z = _apply(self.targets, self._eta(psi, points), h)
        wt = w[self.target_level]
        return (wt * z).sum(1), (wt * z**2).sum(1), np.full(self.targets.n, np.nan)

    def at(self, psi: Psi, h, b: np.ndarray) -> np.ndarray:
        """Target values at the random effects ``b`` (levels x k, the design's order)."""
        b = np.vstack([b, np.zeros((1, self.k))])
        return _apply(self.targets, self._eta(psi, b[:, None, :]), h)[:, 0]

    def mode_eta(self, psi: Psi, h) -> np.ndarray:
        return self.at(psi, h, self.b_mode[: self.L])


# --------------------------------------------------------------------------------------
# several grouping factors: importance sampling over all random effects


class Importance:
    def __init__(self, design, targets: Targets, psi: Psi, n_draws: int, rng) -> None:
        self.design, self.targets = design, targets
        self.Z = design.Z.tocsr()
        self.q = self.Z.shape[1]
        if self.q > MAX_Q:
            raise MethodError(
                f"importance sampling here uses a dense proposal over all {self.q} random "
                f"effects; at most {MAX_Q} are supported"
            )
        self.blocks, lo = [], 0
        for t in design.random:
            size = t.n_levels * t.n_columns
            self.blocks.append((lo, t.n_levels, t.n_columns))
            lo += size
        b_mode, H = self._mode(psi)
        self.b_mode = b_mode
        C = np.linalg.cholesky(H)  # H = C C'; proposal scale H^{-1}
        z = rng.standard_normal((n_draws, self.q))
        chi = rng.chisquare(PROPOSAL_DF, n_draws) / PROPOSAL_DF
        u = scipy.linalg.solve_triangular(C.T, z.T, lower=False).T / np.sqrt(chi)[:, None]
        self.B = b_mode[None, :] + u
        # log t density of the proposal, up to a constant
        quad = (z**2).sum(1) / chi
        self.log_q = -0.5 * (PROPOSAL_DF + self.q) * np.log1p(quad / PROPOSAL_DF)
        self.new = []  # (rows mask, Xz, standard normal draws, term position)
        self.Zt = self._sums(self.B, rng, n_draws)
        self.notes = {
            "n_draws": n_draws,
            "proposal": f"multivariate t({PROPOSAL_DF}) at the conditional mode",
        }
        w = self._weights(psi)
        self.notes["ess"] = float(1.0 / np.sum(w**2))

    def _prior(self, b: np.ndarray, psi: Psi) -> np.ndarray:
        out = np.zeros(b.shape[0])
        for (lo, L, k), S in zip(self.blocks, psi.covs, strict=True):
            S = floor_cov(S)
            out += _log_normal(b[:, lo : lo + L * k].reshape(b.shape[0], L, k), S).sum(1)
        return out

    def _mode(self, psi: Psi):
        d = self.design
        P = sp.block_diag(
            [
                sp.kron(sp.identity(L), np.linalg.inv(floor_cov(S)))
                for (lo, L, k), S in zip(self.blocks, psi.covs, strict=True)
            ],
            format="csr",
        )
        base = d.X @ psi.beta + d.offset
        b = np.zeros(self.q)
        for _ in range(MODE_ITER):
            eta = base + self.Z @ b
            s, w = _score_weight(d, d.y, d.trials, eta, psi.dispersion)
            grad = self.Z.T @ s - P @ b
            H = (self.Z.T @ sp.diags(w) @ self.Z + P).toarray()
            step = np.linalg.solve(H, grad)
            step *= min(1.0, MAX_STEP / max(np.abs(step).max(), 1e-300))
            b = b + step
            if np.abs(step).max() < 1e-10:
                break
        return b, H

    def _sums(self, B: np.ndarray, rng=None, n_draws: int = 0) -> np.ndarray:
        """Target rows' random-effect sums per draw (rows x draws); with ``rng``, unseen
        levels are drawn from the prior (standard normals kept in ``self.new``)."""
        r = self.targets.rows
        out = np.zeros((r.n, B.shape[0]))
        pos = {t.name: i for i, t in enumerate(self.design.random)}
        for t, idx, Xz in zip(r.terms, r.index, r.Xz, strict=True):
            lo, L, k = self.blocks[pos[t.name]]
            seen = idx >= 0
            cols = lo + idx[seen, None] * k + np.arange(k)[None, :]
            out[seen] += np.einsum("ij,dij->id", Xz[seen], B[:, cols])
            if (~seen).any() and rng is not None:
                codes = -idx[~seen] - 1
                z = rng.standard_normal((n_draws, int(codes.max()) + 1, k))
                self.new.append((~seen, Xz[~seen], z[:, codes, :], pos[t.name]))
        return out

    def _weights(self, psi: Psi) -> np.ndarray:
        d = self.design
        eta = (d.X @ psi.beta + d.offset)[:, None] + self.Z @ self.B.T
        ll = _row_loglik(
            d, d.y[:, None], None if d.trials is None else d.trials[:, None], eta, psi.dispersion
        )
        lw = ll.sum(0) + self._prior(self.B, psi) - self.log_q
        lw -= lw.max()
        w = np.exp(lw)
        return w / w.sum()

    def moments(self, psi: Psi, h):
        w = self._weights(psi)
        r = self.targets.rows
        eta = (r.X @ psi.beta + r.offset)[:, None] + self.Zt
        for mask, Xz, z, j in self.new:
            root = np.linalg.cholesky(psi.covs[j] + 1e-12 * np.eye(z.shape[-1]))
            eta[mask] += np.einsum("ia,dia->id", Xz, z @ root.T)
        v = _apply(self.targets, eta, h)
        mean = v @ w
        mcse = np.sqrt(((v - mean[:, None]) ** 2) @ (w**2))
        return mean, (v**2) @ w, mcse

    def at(self, psi: Psi, h, b: np.ndarray) -> np.ndarray:
        """Target values at the random-effect vector ``b`` (the design's order)."""
        r = self.targets.rows
        eta = (r.X @ psi.beta + r.offset)[:, None] + self._sums(b[None, :])
        return _apply(self.targets, eta, h)[:, 0]

    def mode_eta(self, psi: Psi, h) -> np.ndarray:
        return self.at(psi, h, self.b_mode)
