"""The complete-data log-likelihood ``log f(y | b; beta) + log N(b; 0, Sigma)`` and its
derivatives, evaluated on many draws of the random effects at once.

The parameters of the Monte Carlo methods are

.. math::

    \\psi = (\\beta, \\; \\mathrm{vech}\\,\\Sigma_1, \\ldots, \\mathrm{vech}\\,\\Sigma_T),

the fixed effects and, per random-effect term, the distinct entries of its covariance (the
variances only for ``(1|g)`` and uncorrelated ``(x||g)`` terms). Draws ``B`` of the random
effects are held on the scale of ``b`` (``m x q``, the column order of ``Z``), with
``ZB = Z b`` per draw (``m x n``) so that the fixed-effect M-step never touches ``Z``.

Everything here is shared by MCEM, MCNR and simulated ML: per-draw scores
``S_d = d log f(y, b_d; psi) / d psi``, the weighted complete-data Hessian, Louis' observed
information and the Monte Carlo covariance of an estimate (the sandwich of Booth & Hobert
1999, eq. 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ...errors import MethodError
from ..pirls import PirlsProblem
from . import kernels


@dataclass
class Sample:
    """Draws of the random effects given ``y`` with their self-normalized weights.

    Attributes
    ----------
    B : ndarray (m, q)
        Random effects ``b`` per draw.
    ZB : ndarray (m, n)
        ``Z b`` per draw.
    w : ndarray (m,)
        Self-normalized weights (``1/m`` for unweighted samplers); sum to one.
    info : dict
        Sampler diagnostics (effective sample size, acceptance rates, ...).
    logw : ndarray (m,), optional
        Unnormalized log importance weights (importance sampling).
    chain : ndarray (m,) of int, optional
        The Markov chain each draw comes from, for dependent draws (the Gibbs E-step keeps
        several consecutive states of each chain): Monte Carlo covariances are then taken
        over chain sums (:meth:`sum_cov`). None: independent draws.
    n_eff : float, optional
        The effective sample size of dependent draws (:attr:`ess` returns it).
    """

    B: np.ndarray
    ZB: np.ndarray
    w: np.ndarray
    info: dict = field(default_factory=dict)
    logw: np.ndarray | None = None
    chain: np.ndarray | None = None
    n_eff: float | None = None

    @property
    def m(self) -> int:
        return int(self.B.shape[0])

    @property
    def ess(self) -> float:
        """Kish's effective sample size ``1 / sum w^2``, or :attr:`n_eff` for dependent
        draws."""
        if self.n_eff is not None:
            return float(self.n_eff)
        return float(1.0 / np.sum(self.w**2))

    def sum_cov(self, D: np.ndarray) -> np.ndarray:
        """Monte Carlo covariance of ``sum_d w_d D_d`` for centred per-draw values ``D``
        (``(m, d)`` or ``(m,)``): ``sum_d w_d^2 D_d D_d'`` for independent draws; with
        chains, ``K / (K - 1) sum_k G_k G_k'`` over the ``K`` chain sums ``G_k = sum_{d in
        k} w_d D_d`` (batch means with a chain as the batch: right whatever the dependence
        within a chain, as the chains are independent)."""
        if self.chain is None and D.ndim == 1:
            return float(np.sum(self.w**2 * D**2))
        D2 = D.reshape(D.shape[0], -1)
        if self.chain is None:
            C = (D2.T * self.w**2) @ D2
        else:
            K = int(self.chain.max()) + 1
            G = np.zeros((K, D2.shape[1]))
            np.add.at(G, self.chain, self.w[:, None] * D2)
            C = G.T @ G * (K / max(K - 1, 1))
        return C if D.ndim > 1 else float(C[0, 0])

    def pruned(self, rel: float = 1e-9) -> Sample:
        """The draws whose weight exceeds ``rel / m`` (renormalized): the others carry at
        most a ``rel`` share of the weight, and the M-step need not touch them."""
        keep = self.w > rel / self.m
        if keep.all():
            return self
        w = self.w[keep]
        lw = None if self.logw is None else self.logw[keep]
        ch = None if self.chain is None else self.chain[keep]
        return Sample(self.B[keep], self.ZB[keep], w / w.sum(), self.info, lw, ch)

    def concat(self, other: Sample) -> Sample:
        """The pooled sample (importance weights renormalized over both)."""
        B = np.concatenate([self.B, other.B])
        ZB = np.concatenate([self.ZB, other.ZB])
        if self.logw is not None and other.logw is not None:
            logw = np.concatenate([self.logw, other.logw])
            w = np.exp(logw - logw.max())
            info = dict(other.info)
            return Sample(B, ZB, w / w.sum(), info, logw)
        w = np.full(B.shape[0], 1.0 / B.shape[0])
        chain = None
        if self.chain is not None and other.chain is not None:  # the new draws' own chains
            chain = np.concatenate([self.chain, other.chain + int(self.chain.max()) + 1])
        return Sample(B, ZB, w, dict(other.info), chain=chain)


class CompleteData:
    """The complete-data model of one design (binomial or Poisson GLMM).

    Parameters
    ----------
    design : Design
    method : str
        Used in error messages.
    """

    def __init__(self, design, method: str = "mcem") -> None:
        if design.family.has_dispersion:  # the capability: no dispersion parameter
            raise MethodError(
                f"method {method!r} takes families without a dispersion parameter; the "
                f"{design.family.name} family's {design.family.dispersion_name!r} has no "
                "Monte Carlo M-step here"
            )
        self.design = design
        self.problem = PirlsProblem(design)
        self.cov = self.problem.cov
        self.resp = self.problem.response
        self.X = self.problem.X
        self.offset = self.problem.offset
        self.n, self.p = self.X.shape
        self.q = self.cov.q
        self.cols = self.problem.cols
        #: values of Z per row and slot (A = Z Lambda at Lambda = I)
        self.Zval = self.problem.A_values(self.cov.theta0())
        self.terms = self.cov.terms
        self.offsets = self.cov.offsets
        #: compiled loops for the canonical links (the bulk of the work is here)
        self._kind = kernels.FAMILIES.get((design.family.name, design.family.link.name))
        self._const_sum = float(np.sum(self.resp._const))
        # per term: which (i, j) entries of Sigma are parameters
        self.pairs = []
        for t in self.terms:
            if t.correlated:
                r, c = np.tril_indices(t.k)
            else:
                r = c = np.arange(t.k)
            self.pairs.append((np.asarray(r), np.asarray(c)))
        self.n_sigma = int(sum(r.size for r, _ in self.pairs))
        self.d = self.p + self.n_sigma
        # row -> level of each slot, and level-sum matrices per slot (for per-level sums)
        self.slot_term = self.problem.slot_term
        self.slot_comp = self.problem.slot_comp
        self.slot_level = []
        self.level_sum = []
        for j in range(self.cols.shape[1]):
            t = self.terms[self.slot_term[j]]
            lvl = (self.cols[:, j] - self.offsets[self.slot_term[j]]) // t.k
            self.slot_level.append(lvl)
            self.level_sum.append(
                sp.csr_matrix(
                    (np.ones(self.n), (np.arange(self.n), lvl)), shape=(self.n, t.n_levels)
                )
            )

    # ------------------------------------------------------------------ parameters
    @property
    def names(self) -> list[str]:
        """Names of ``psi``: fixed effects, then ``var(...)``/``cov(...)`` entries."""
        out = [str(n) for n in self.design.fixed_names]
        for t, (r, c) in zip(self.terms, self.pairs, strict=True):
            for i, j in zip(r, c, strict=True):
                if i == j:
                    out.append(f"var({t.component_names[i]})")
                else:
                    out.append(f"cov({t.group}|{t.columns[i]},{t.columns[j]})")
        return out

    def split(self, psi: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(beta, [Sigma_t])`` from ``psi``."""
        beta = np.asarray(psi[: self.p], dtype=float)
        sigmas, j = [], self.p
        for t, (r, c) in zip(self.terms, self.pairs, strict=True):
            S = np.zeros((t.k, t.k))
            S[r, c] = psi[j : j + r.size]
            S[c, r] = psi[j : j + r.size]
            sigmas.append(S)
            j += r.size
        return beta, sigmas

    def join(self, beta: np.ndarray, sigmas: list[np.ndarray]) -> np.ndarray:
        parts = [np.asarray(beta, dtype=float)]
        for S, (r, c) in zip(sigmas, self.pairs, strict=True):
            parts.append(np.asarray(S)[r, c])
        return np.concatenate(parts)

    def theta(self, psi: np.ndarray) -> np.ndarray:
        """lme4's ``theta`` (Cholesky factors) of the covariances in ``psi``."""
        _, sigmas = self.split(psi)
        return self.cov.theta_from_covariances(
            {t.name: S for t, S in zip(self.terms, sigmas, strict=True)}
        )

    def psi_from(self, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
        return self.join(beta, [t.covariance(theta) for t in self.terms])

    def valid(self, psi: np.ndarray) -> bool:
        """Every covariance positive semi-definite (variances >= 0)."""
        _, sigmas = self.split(psi)
        for S in sigmas:
            if not np.all(np.isfinite(S)) or np.linalg.eigvalsh(S).min() < -1e-12:
                return False
        return True

    # ------------------------------------------------------------------ draws
    def Zb(self, B: np.ndarray) -> np.ndarray:
        """``Z b`` for every draw: ``(m, q) -> (m, n)``."""
        out = np.zeros((B.shape[0], self.n))
        for j in range(self.cols.shape[1]):
            out += self.Zval[:, j] * B[:, self.cols[:, j]]
        return out

    def eta(self, beta: np.ndarray, ZB: np.ndarray) -> np.ndarray:
        return (self.X @ beta + self.offset) + ZB

    def cond_loglik(self, beta: np.ndarray, ZB: np.ndarray) -> np.ndarray:
        """``log f(y | b_d; beta)`` per draw, normalizing constants included."""
        if self._kind is not None:
            r = self.resp
            return kernels.draw_loglik(
                self._kind, self.X @ beta + self.offset, ZB, r.y, r.n, self._const_sum
            )
        return self.row_loglik(self.eta(beta, ZB)).sum(axis=1)

    def row_loglik(self, eta: np.ndarray) -> np.ndarray:
        """``log f(y_i | eta_i)`` per (draw, row)."""
        r = self.resp
        if self._kind is not None:
            return kernels.rows_loglik(self._kind, np.ascontiguousarray(eta), r.y, r.n, r._const)
        return r.loglik(eta, r.family.link.linkinv(eta))

    def q_pieces(self, beta: np.ndarray, sample: Sample):
        """Per-draw ``log f(y | b_d)`` and the weighted sums over draws of the score and the
        observed weight per row (all the fixed-effect M-step needs), in one pass."""
        r = self.resp
        if self._kind is not None:
            return kernels.weighted_pieces(
                self._kind,
                self.X @ beta + self.offset,
                sample.ZB,
                r.y,
                r.n,
                sample.w,
                self._const_sum,
            )
        eta = self.eta(beta, sample.ZB)
        tr = r.terms(eta, 1.0, second=True)
        return tr.loglik.sum(axis=1), sample.w @ tr.score, sample.w @ tr.W_obs

    def eta_pieces(self, eta: np.ndarray):
        """Per-draw ``log f(y | eta_d)``, and score and observed weight per (draw, row)."""
        r = self.resp
        if self._kind is not None:
            return kernels.eta_pieces(
                self._kind, np.ascontiguousarray(eta), r.y, r.n, self._const_sum
            )
        tr = r.terms(eta, 1.0, second=True)
        return tr.loglik.sum(axis=1), tr.score, tr.W_obs

    def Zb_term(self, B: np.ndarray, ti: int) -> np.ndarray:
        """``Z_t b_t`` of term ``ti`` for every draw: ``(m, n)``."""
        out = np.zeros((B.shape[0], self.n))
        for j in np.flatnonzero(self.slot_term == ti):
            out += self.Zval[:, j] * B[:, self.cols[:, j]]
        return out

    def draw_scores(self, beta: np.ndarray, sample: Sample):
        """Score per (draw, row) and the weighted sum over draws of the observed weight."""
        r = self.resp
        if self._kind is not None:
            return kernels.draw_scores(
                self._kind, self.X @ beta + self.offset, sample.ZB, r.y, r.n, sample.w
            )
        tr = r.terms(self.eta(beta, sample.ZB), 1.0, second=True)
        return tr.score, sample.w @ tr.W_obs

    def suff(self, B: np.ndarray) -> list[np.ndarray]:
        """``S_t = sum_l b_l b_l'`` per term and draw: ``(m, k, k)`` each."""
        out = []
        for t, lo in zip(self.terms, self.offsets[:-1], strict=True):
            bt = B[:, lo : lo + t.k * t.n_levels].reshape(B.shape[0], t.n_levels, t.k)
            out.append(np.einsum("mlk,mlj->mkj", bt, bt))
        return out

    def prior_logpdf(self, sigmas: list[np.ndarray], S: list[np.ndarray]) -> np.ndarray:
        """``sum_t log N(b_t; 0, I (x) Sigma_t)`` per draw (``-inf`` for a non-PD Sigma)."""
        m = S[0].shape[0] if S else 0
        out = np.zeros(m)
        for t, Sig, St in zip(self.terms, sigmas, S, strict=True):
            try:
                C = np.linalg.cholesky(Sig)
            except np.linalg.LinAlgError:
                return np.full(m, -np.inf)
            P = np.linalg.inv(Sig)
            logdet = 2.0 * np.sum(np.log(np.diag(C)))
            out += -0.5 * t.n_levels * (t.k * np.log(2 * np.pi) + logdet)
            out -= 0.5 * np.einsum("kj,mjk->m", P, St)
        return out

    def complete_loglik(self, psi: np.ndarray, sample: Sample) -> np.ndarray:
        beta, sigmas = self.split(psi)
        return self.cond_loglik(beta, sample.ZB) + self.prior_logpdf(sigmas, self.suff(sample.B))

    # ------------------------------------------------------------------ derivatives
    def scores(self, psi: np.ndarray, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """Per-draw complete-data scores ``(m, d)`` and the weighted complete-data Hessian
        ``sum_d w_d d^2 log f(y, b_d) / d psi^2`` ``(d, d)``."""
        beta, sigmas = self.split(psi)
        score, wW = self.draw_scores(beta, sample)
        m = sample.m
        S = np.empty((m, self.d))
        S[:, : self.p] = score @ self.X
        H = np.zeros((self.d, self.d))
        H[: self.p, : self.p] = -(self.X.T * wW) @ self.X
        j = self.p
        for t, Sig, St, (r, c) in zip(
            self.terms, sigmas, self.suff(sample.B), self.pairs, strict=True
        ):
            P = np.linalg.inv(Sig)
            L = t.n_levels
            G = -0.5 * L * P + 0.5 * np.einsum("ij,mjk,kl->mil", P, St, P)
            mult = np.where(r == c, 1.0, 2.0)
            S[:, j : j + r.size] = G[:, r, c] * mult
            Sbar = np.einsum("m,mij->ij", sample.w, St)
            E = []
            for i, jj in zip(r, c, strict=True):
                Ea = np.zeros((t.k, t.k))
                Ea[i, jj] = Ea[jj, i] = 1.0
                E.append(Ea)
            for a, Ea in enumerate(E):
                for b, Eb in enumerate(E):
                    PEa, PEb = P @ Ea, P @ Eb
                    H[j + a, j + b] = 0.5 * L * np.trace(PEb @ PEa) - np.trace(PEa @ PEb @ P @ Sbar)
            j += r.size
        return S, H

    def louis(self, psi: np.ndarray, sample: Sample) -> dict:
        """Louis' (1982) observed information and the Monte Carlo covariance of ``psi``.

        Returns a dict with ``info`` (``-E[H_c] - E[S S'] + E[S] E[S]'``), ``score`` (the
        Monte Carlo estimate of the observed-data score ``E[S]``), ``hessian`` (``E[H_c]``)
        and ``score_cov`` (Monte Carlo covariance of ``E[S]``: ``sum w_d^2 (S_d - Sbar)
        (S_d - Sbar)'``, Booth & Hobert 1999, eq. 3.2, with self-normalized weights; over
        chain sums for dependent draws, :meth:`Sample.sum_cov`).
        """
        S, H = self.scores(psi, sample)
        w = sample.w
        Sbar = w @ S
        D = S - Sbar
        info = -H - (S.T * w) @ S + np.outer(Sbar, Sbar)
        score_cov = sample.sum_cov(D)
        return {"info": info, "score": Sbar, "hessian": H, "score_cov": score_cov}


def sandwich(H: np.ndarray, score_cov: np.ndarray) -> np.ndarray:
    """``H^{-1} C H^{-1}``: Monte Carlo covariance of a root of a Monte Carlo estimating
    equation whose derivative is ``H`` and whose value has covariance ``C``."""
    Hi = np.linalg.pinv(H)
    return Hi @ score_cov @ Hi.T
