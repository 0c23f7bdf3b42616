"""The Laplace fit of large crossed designs in memory linear in rows and levels.

``solver="auto"`` (the default of ``method="laplace"``) keeps the direct path (the exact
block Cholesky factor of :class:`bayesglmm.linalg.BlockCholesky`) unless the design is two
*crossed* scalar random-effect terms (``(1|f) + (1|m)``, or one slope each) with a canonical
link and more than :data:`AUTO_LEVELS` (1,000) levels in the smaller term, where the dense Schur
complement costs ``O(levels^3)`` time and ``O(levels^2)`` memory. Nested terms (every level
of one term inside one level of the other) keep the exact direct path: their dependence is a
tree and the factorization does not fill in.

The iterative path (:class:`CrossedProblem`) runs the same PIRLS and the same optimizer
(:mod:`.pirls`, :mod:`.optimize`) on :class:`.crossed_factor.CrossedFactor`: modes by
conjugate gradients, ``log det H`` exact but for a stochastic series estimated with probes
held fixed over the fit, and the exact gradient of that estimated criterion. The result is
labelled an approximate Laplace fit, with the standard error of its log-likelihood.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from .crossed_factor import DEFAULT_SEED, LOGDET_PROBES, CrossedFactor, CrossedPattern
from .pirls import PirlsProblem, PirlsState

#: ``solver="auto"`` takes the iterative path above this many levels in the smaller term.
#: Measured (crossed logit, 10 rows per level, 2 cores): at 1,000 x 1,000 levels direct
#: 3.0 s, iterative 2.0 s; at 2,000 x 2,000 16 s and 1.8 s; at 3,000 x 3,000 57 s and 2.8 s.
#: Up to here the exact path costs seconds and gives the exact log-likelihood.
AUTO_LEVELS = 1000
SOLVERS = ("auto", "direct", "iterative")


def iterative_support(design) -> str | None:
    """Why the iterative path cannot fit ``design`` (None: it can)."""
    terms = design.random
    if len(terms) != 2 or any(t.n_columns != 1 for t in terms):
        return (
            "it needs exactly two random-effect terms of one column each, such as "
            f"(1|f) + (1|m); this model has {', '.join(t.name for t in terms) or 'none'}"
        )
    fam = design.family
    canonical = (fam.name, fam.link.name) in {
        ("binomial", "logit"),
        ("poisson", "log"),
        ("gaussian", "identity"),
    }
    if not canonical:
        return f"it needs a canonical link; this model has {fam.name}({fam.link.name})"
    return None


def _nested(design) -> bool:
    """Every level of one term within a single level of the other."""
    a, b = (np.asarray(t.index, dtype=np.int64) for t in design.random)
    pairs = np.unique(a * (int(b.max(initial=0)) + 1) + b).size
    return pairs == max(np.unique(a).size, np.unique(b).size)


def choose_solver(design, solver: str = "auto") -> tuple[str, str]:
    """``(solver, reason)``: ``"direct"`` or ``"iterative"`` for ``design``.

    Raises
    ------
    OptionError
        ``solver`` unknown, or ``"iterative"`` asked for a design it cannot fit.
    """
    if solver not in SOLVERS:
        raise OptionError(f"solver must be one of {', '.join(SOLVERS)}; got {solver!r}")
    if solver == "direct":
        return "direct", "asked for (exact block Cholesky factor)"
    why = iterative_support(design)
    if solver == "iterative":
        if why is not None:
            raise OptionError(f"solver='iterative' is not available: {why}")
        return "iterative", "asked for"
    if why is not None:
        return "direct", f"auto: the iterative path is not available ({why})"
    if _nested(design):
        return "direct", "auto: nested terms (exact sparse factorization, no fill-in)"
    levels = sorted(t.n_levels for t in design.random)
    if levels[0] <= AUTO_LEVELS:
        return "direct", (
            f"auto: {levels[1]:,} x {levels[0]:,} crossed levels; the dense Schur complement "
            f"of {levels[0]:,} levels is affordable (<= {AUTO_LEVELS:,})"
        )
    return "iterative", (
        f"auto: {levels[1]:,} x {levels[0]:,} crossed levels (> {AUTO_LEVELS:,} in the smaller "
        "term): conjugate gradients and a stochastic log-determinant, memory linear"
    )


def make_problem(
    design, y=None, curvature: str = "fisher", solver: str = "auto", random_seed=None
) -> tuple[PirlsProblem, str, str]:
    """The PIRLS problem of ``design`` on the chosen solver: ``(problem, solver, reason)``."""
    chosen, reason = choose_solver(design, solver)
    if chosen == "iterative":
        return CrossedProblem(design, y=y, random_seed=random_seed), chosen, reason
    return PirlsProblem(design, y=y, curvature=curvature), chosen, reason


class CrossedProblem(PirlsProblem):
    """:class:`~.pirls.PirlsProblem` whose ``H`` is a :class:`.crossed_factor.CrossedFactor`.

    Parameters
    ----------
    design : Design
        Two scalar crossed terms, canonical link (see :func:`iterative_support`).
    y : ndarray, optional
    random_seed : int, optional
        Seed of the log-determinant probes (held fixed over the fit); None: a fixed seed.
    probes : int
    """

    solver = "iterative"

    def __init__(self, design, y=None, random_seed=None, probes: int = LOGDET_PROBES) -> None:
        why = iterative_support(design)
        if why is not None:
            raise OptionError(f"solver='iterative' is not available: {why}")
        super().__init__(design, y=y, curvature="fisher")
        self.slot_r, self.slot_c = int(self.s1[0]), int(self.s2[0])
        self.lvl_r = self.cols[:, self.slot_r] - self.first.start
        self.lvl_c = self._local2[:, 0]
        seed = DEFAULT_SEED if random_seed is None else int(random_seed)
        self.pattern = CrossedPattern(
            self._b_inv[:, 0], self._b_indptr, self._b_indices, self.q1, self.q2, probes, seed
        )
        # what the base class laid out for its direct factor and is not needed here
        for name in ("_b_lin", "_c_inv", "_c_uniq", "_pair_inv", "_pair_uniq", "_d_index"):
            if hasattr(self, name):
                delattr(self, name)

    def _setup_pattern(self) -> None:
        # only the pieces of the base layout this class uses (memory linear in rows)
        from ..model import linalg

        first, _ = linalg.term_blocks(self.design)
        self.first, self.k1 = first, 1
        self.q1 = first.stop - first.start
        self.q2 = self.q - self.q1
        in1 = (self.cols[0] >= first.start) & (self.cols[0] < first.stop)
        self.s1 = np.flatnonzero(in1)
        self.s2 = np.flatnonzero(~in1)
        local2 = self.cols[:, self.s2] - np.where(self.cols[:, self.s2] >= first.stop, self.q1, 0)
        self._local2 = local2
        lin = (self.cols[:, self.s1[0]] - first.start).astype(np.int64) * self.q2 + local2[:, 0]
        uniq, inv = np.unique(lin, return_inverse=True)
        self._b_inv = inv.reshape(-1, 1)
        rows, bcols = np.divmod(uniq, self.q2)
        self._b_indices = bcols.astype(np.int64)
        self._b_indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=self.q1))])
        self._b_nnz = uniq.size

    def factor(self, Aval: np.ndarray, W: np.ndarray) -> CrossedFactor:
        """``A' diag(W) A + I`` as a :class:`.crossed_factor.CrossedFactor`."""
        ar, ac = Aval[:, self.slot_r], Aval[:, self.slot_c]
        pt = self.pattern
        Dr = 1.0 + np.bincount(self.lvl_r, weights=W * ar * ar, minlength=self.q1)
        Dc = 1.0 + np.bincount(self.lvl_c, weights=W * ac * ac, minlength=self.q2)
        Bd = np.bincount(pt.pair, weights=W * ar * ac, minlength=pt.nnz)
        return CrossedFactor(pt, Dr, Dc, Bd, self.first, self.q)

    def row_inverse_blocks(self, factor):  # noqa: ARG002
        raise NotImplementedError("selected inversion is not available on the iterative path")

    def logdet_partials(self, st: PirlsState) -> tuple[np.ndarray, np.ndarray]:
        """``d logdet / d W_i`` (n,) and ``d logdet / d A_ij`` (n, 2) of the estimate."""
        return self.logdet_partials_at(st.factor, st.Aval, st.terms.W)

    def logdet_partials_at(self, factor: CrossedFactor, Aval, W):
        """:meth:`logdet_partials` for the factor of ``A' diag(W) A + I``."""
        gDr, gDc, gB = factor.partials()
        ar, ac = Aval[:, self.slot_r], Aval[:, self.slot_c]
        gr, gc, gb = gDr[self.lvl_r], gDc[self.lvl_c], gB[self.pattern.pair]
        h = gr * ar * ar + gb * ar * ac + gc * ac * ac
        ga = np.empty_like(Aval)
        ga[:, self.slot_r] = 2.0 * gr * W * ar + gb * W * ac
        ga[:, self.slot_c] = 2.0 * gc * W * ac + gb * W * ar
        return h, ga

    def gradient(self, st: PirlsState) -> tuple[np.ndarray, np.ndarray]:
        """Exact gradient of the estimated Laplace deviance in ``(theta, beta)``.

        As :meth:`.pirls.PirlsProblem.gradient` (canonical link: Fisher and observed weights
        agree), with the leverages ``a_i' H^{-1} a_i`` and ``d log det / dA`` replaced by the
        derivatives of the estimated log-determinant (:meth:`logdet_partials`).
        """
        resp = self.response
        tr = resp.terms(st.eta, st.dispersion, second=True)
        Aval, u = st.Aval, st.u
        h, ga = self.logdet_partials(st)
        c = tr.dW * h
        v = st.factor.solve(self.At_mul(Aval, c))
        Av = self.A_mul(Aval, v)
        s, W = tr.score, tr.W
        g_beta = self.X.T @ (-2.0 * s + c - W * Av)
        g_theta = np.zeros(self.cov.n_theta)
        j0 = 0
        for t, Xt in zip(self.cov.terms, self.term_X, strict=True):
            xr = Xt[:, 0]
            uc = u[self.cols[:, j0]]
            vc = v[self.cols[:, j0]]
            dAu, dAv = xr * uc, xr * vc
            g = -2.0 * s @ dAu + c @ dAu + s @ dAv - (Av * W) @ dAu + xr @ ga[:, j0]
            g_theta[t.start] = g
            j0 += t.k
        return g_theta, g_beta

    def conditional_variances(self, st: PirlsState) -> list[np.ndarray]:
        """``Var(b | y)`` per term from the estimated diagonal of ``H^{-1}``."""
        d = st.factor.inverse_diagonal()
        out = []
        for t, lo in zip(self.cov.terms, self.cov.offsets[:-1], strict=True):
            T = float(t.T(st.theta)[0, 0])
            out.append((T * T * d[lo : lo + t.n_levels]).reshape(-1, 1, 1))
        return out
