"""Joint Gaussian draw of fixed and random effects given working weights and responses.

After data augmentation (Polya-Gamma for the logit link, Albert-Chib latent variables for
the probit link) the likelihood of the effects ``theta = (b, beta)`` is Gaussian:

.. math::

    p(\\theta \\mid \\omega, y) \\propto
    \\exp\\{-\\tfrac12 \\theta' A \\theta + \\theta' r\\}, \\qquad
    A = C' \\Omega C + P, \\quad r = C'(\\kappa - \\Omega o) + P m,

with ``C = [Z X]`` the columns being updated, ``o`` the rest of the linear predictor
(offset and effects not in this block), ``P`` and ``m`` the prior precision and mean. The
draw is ``A^{-1} r + L'^{-1} z`` with ``A = L L'`` and ``z ~ N(0, I)``.

Small blocks factor ``A`` densely. Large ones use :class:`~bayesglmm.linalg.BlockCholesky`
with the largest random term first (its sub-matrix of ``A`` is block diagonal, one block
per level), so a crossed design with 1,000 x 1,000 levels costs one dense factorization of
the ~1,000-row Schur complement and no dense ``q x q`` inverse.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ...model.linalg import BlockCholesky
from .effects import EffectsLayout, FixedBlock

#: blocks of at most this many coefficients are factored densely (at a few hundred
#: coefficients a dense Cholesky costs under a millisecond; above, sparse structure wins)
DENSE_LIMIT = 400


class EffectsConditional:
    """The Gaussian full conditional of a set of effect variables.

    Parameters
    ----------
    layout : EffectsLayout
    names : list of str
        The effect variables drawn jointly (fixed-effect terms and random terms).
    dense_limit : int, optional
        Factor densely up to this many coefficients (default :data:`DENSE_LIMIT`).
    """

    def __init__(self, layout: EffectsLayout, names: list[str], dense_limit: int | None = None):
        blocks = [layout.block(n) for n in names]
        random = sorted((b for b in blocks if not isinstance(b, FixedBlock)), key=lambda b: -b.size)
        fixed = [b for b in blocks if isinstance(b, FixedBlock)]
        cols, self.parts, start = [], [], 0
        for b in random:
            cols.append(b.Z)
            self.parts.append((b.name, start, b.size, b))
            start += b.size
        for b in fixed:
            Xb = layout.X[:, b.cols]
            cols.append(sp.csr_matrix(Xb))
            self.parts.append((b.name, start, Xb.shape[1], b))
            start += Xb.shape[1]
        self.m = start
        self.C = sp.hstack(cols, format="csr") if cols else sp.csr_matrix((layout.n, 0))
        self.Ct = self.C.T.tocsr()
        limit = DENSE_LIMIT if dense_limit is None else dense_limit
        self.dense = self.m <= limit
        self.Cd = self.C.toarray() if self.dense else None
        self.Ctd = np.ascontiguousarray(self.Cd.T) if self.dense else None
        if random:
            self.first, self.block = slice(0, random[0].size), random[0].k
        else:
            self.first, self.block = None, 1

    # ------------------------------------------------------------------ point <-> vector
    def gather(self, point: dict) -> np.ndarray:
        theta = np.empty(self.m)
        for name, start, size, _ in self.parts:
            theta[start : start + size] = np.ravel(point[name])
        return theta

    def scatter(self, theta: np.ndarray, point: dict) -> dict:
        new = dict(point)
        for name, start, size, _ in self.parts:
            new[name] = theta[start : start + size].reshape(np.shape(point[name]))
        return new

    # --------------------------------------------------------------------------- prior
    def prior(self, params: dict) -> tuple[object, np.ndarray]:
        """Prior precision ``P`` (dense or sparse) and ``P m`` from GaussianPriors output."""
        diag = np.zeros(self.m)
        mean = np.zeros(self.m)
        full = []  # (start, n_levels, k, precision block)
        for name, start, size, _ in self.parts:
            kind, mu, prec = params[name]
            if kind == "mvnormal":
                k = prec.shape[0]
                full.append((start, size // k, k, prec))
                mean[start : start + size] = np.tile(mu, size // k)
            else:
                diag[start : start + size] = np.ravel(prec)
                mean[start : start + size] = np.ravel(mu)
        if self.dense:
            P = np.diag(diag)
            for start, L, k, prec in full:
                idx = start + np.arange(L)[:, None] * k + np.arange(k)[None, :]
                P[idx[:, :, None], idx[:, None, :]] = prec
        else:
            P = sp.diags(diag, format="csr")
            for start, L, k, prec in full:
                blocks = sp.kron(sp.eye(L), sp.csr_matrix(prec), format="csr")
                pad = sp.block_diag(
                    [
                        sp.csr_matrix((start, start)),
                        blocks,
                        sp.csr_matrix((self.m - start - L * k,) * 2),
                    ],
                    format="csr",
                )
                P = P + pad
        return P, P @ mean

    # ---------------------------------------------------------------------------- draw
    def draw(self, weights: np.ndarray, rhs: np.ndarray, P, rng: np.random.Generator):
        """``theta ~ N(A^{-1} rhs, A^{-1})`` with ``A = C' diag(weights) C + P``."""
        z = rng.standard_normal(self.m)
        if self.dense:
            A = (self.Ctd * weights) @ self.Cd + P
            L = scipy.linalg.cholesky(A, lower=True, check_finite=False)
            mean = scipy.linalg.cho_solve((L, True), rhs, check_finite=False)
            return mean + scipy.linalg.solve_triangular(
                L, z, lower=True, trans=1, check_finite=False
            )
        A = (self.Ct @ sp.diags(weights) @ self.C + P).tocsr()
        f = BlockCholesky(A, self.first, self.block)
        return f.solve(rhs) + f.solve_Lt(z)

    def rhs(self, kappa: np.ndarray, weights: np.ndarray, rest: np.ndarray, Pm: np.ndarray):
        """``C'(kappa - weights * rest) + P m``."""
        return self.Ct @ (kappa - weights * rest) + Pm
