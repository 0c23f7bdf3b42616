"""The relative covariance factor ``Lambda(theta)`` of the random effects, as in lme4.

The random effects are written ``b = Lambda(theta) u`` with spherical ``u ~ N(0, I)``. For a
term with ``k`` columns and ``L`` levels, ``Lambda`` holds ``L`` copies of a ``k x k`` lower
triangular block ``T`` (level-major, the column order of :attr:`RandomTerm.Z`), so the
covariance of the term's effects at one level is ``Sigma = T T'``. ``theta`` lists the free
entries of every ``T``:

- ``(1|g)``: one entry, the standard deviation;
- ``(1 + x|g)`` (correlated): the lower triangle, column by column as lme4 does
  (``T11, T21, T22``);
- uncorrelated vector terms: the diagonal only.

Diagonal entries are bounded below by zero; a diagonal entry at zero is a singular fit
(lme4's ``isSingular``). Nothing here depends on the estimation method, so PQL, Laplace,
AGQ and Monte Carlo EM share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import MethodError

#: a diagonal entry of T below this is "at the boundary" (lme4's isSingular default tol)
SINGULAR_TOL = 1e-4


@dataclass(frozen=True)
class TermFactor:
    """The ``k x k`` factor ``T`` of one random-effect term and where its ``theta`` sits.

    Attributes
    ----------
    name : str
        Term name (``"1|Female"``).
    group : str
        Grouping factor.
    columns : list of str
    component_names : list of str
        Variance names used in results (``"Female"``, ``"g|x"``).
    k : int
        Number of columns of the term.
    n_levels : int
    correlated : bool
    start : int
        Offset of the term's entries in the full ``theta``.
    rows, cols : ndarray of int
        Position in ``T`` of each of the term's ``theta`` entries.
    """

    name: str
    group: str
    columns: list[str]
    component_names: list[str]
    k: int
    n_levels: int
    correlated: bool
    start: int
    rows: np.ndarray
    cols: np.ndarray

    @property
    def size(self) -> int:
        return int(self.rows.size)

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.size)

    def T(self, theta: np.ndarray) -> np.ndarray:
        """The ``k x k`` lower triangular factor from the full ``theta``."""
        out = np.zeros((self.k, self.k))
        out[self.rows, self.cols] = theta[self.slice]
        return out

    def covariance(self, theta: np.ndarray) -> np.ndarray:
        T = self.T(theta)
        return T @ T.T


class CovarianceFactor:
    """``Lambda(theta)`` for all random-effect terms of a design.

    Parameters
    ----------
    design : Design
        Any :class:`~bayesglmm.design.Design`; only its random terms are read.

    Examples
    --------
    >>> cf = CovarianceFactor(design)                       # doctest: +SKIP
    >>> theta = cf.theta0()                                 # lme4's start: identity
    >>> cf.variances(theta), cf.correlations(theta)          # doctest: +SKIP
    """

    def __init__(self, design) -> None:
        structured = [t.spec.label for t in design.random if getattr(t, "structure", None)]
        if structured and type(self) is CovarianceFactor:
            # AR(1) and relationship-matrix terms have their own factor
            # (bayesglmm.frequentist.structured.covariance_factor); code that builds this
            # plain one does not know them, and refuses rather than mis-reading them
            raise MethodError(
                f"this computation does not take structured random-effect terms "
                f"({', '.join(structured)}): only unstructured and diagonal terms"
            )
        terms = []
        start = 0
        for t in design.random:
            k = t.n_columns
            if t.correlated:
                cols, rows = np.triu_indices(k)  # column-major lower triangle, as lme4
                rows, cols = np.asarray(rows), np.asarray(cols)
                order = np.lexsort((rows, cols))
                rows, cols = rows[order], cols[order]
            else:
                rows = cols = np.arange(k)
            terms.append(
                TermFactor(
                    name=t.name,
                    group=t.group,
                    columns=list(t.columns),
                    component_names=list(t.component_names),
                    k=k,
                    n_levels=t.n_levels,
                    correlated=bool(t.correlated),
                    start=start,
                    rows=rows,
                    cols=cols,
                )
            )
            start += rows.size
        self.terms: list[TermFactor] = terms
        self.n_theta: int = start
        offsets = np.cumsum([0] + [t.k * t.n_levels for t in terms])
        #: first column of each term in ``u`` (and in Z)
        self.offsets: np.ndarray = offsets

    # ------------------------------------------------------------------------- layout
    @property
    def q(self) -> int:
        return int(self.offsets[-1])

    @property
    def is_diagonal_entry(self) -> np.ndarray:
        """Boolean mask over ``theta``: True where the entry is a diagonal of some ``T``."""
        return (
            np.concatenate([t.rows == t.cols for t in self.terms])
            if self.terms
            else (np.zeros(0, dtype=bool))
        )

    @property
    def theta_names(self) -> list[str]:
        """``"Female"`` for a scalar term, ``"g|x,Intercept"`` for entry (x, Intercept) of T."""
        names = []
        for t in self.terms:
            if t.k == 1:
                names.append(t.group)
                continue
            for r, c in zip(t.rows, t.cols, strict=True):
                names.append(f"{t.group}|{t.columns[r]},{t.columns[c]}")
        return names

    def theta0(self) -> np.ndarray:
        """lme4's starting value: every ``T`` is the identity."""
        return self.is_diagonal_entry.astype(float)

    def lower_bounds(self) -> np.ndarray:
        """Zero for diagonal entries, minus infinity for the others."""
        return np.where(self.is_diagonal_entry, 0.0, -np.inf)

    def bounds(self) -> list[tuple[float | None, float | None]]:
        """Bounds in the form :func:`scipy.optimize.minimize` takes."""
        return [(0.0, None) if d else (None, None) for d in self.is_diagonal_entry]

    # ------------------------------------------------------------------------- matrices
    def Lambda(self, theta: np.ndarray) -> sp.csc_matrix:
        """The sparse block-diagonal ``q x q`` factor ``Lambda(theta)``."""
        blocks = [sp.kron(sp.eye(t.n_levels), sp.csr_matrix(t.T(theta))) for t in self.terms]
        if not blocks:
            return sp.csc_matrix((0, 0))
        return sp.block_diag(blocks, format="csc")

    def b_from_u(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``b = Lambda(theta) u`` without forming ``Lambda``."""
        out = np.empty_like(u, dtype=float)
        for t, lo in zip(self.terms, self.offsets[:-1], strict=True):
            seg = u[lo : lo + t.k * t.n_levels].reshape(t.n_levels, t.k)
            out[lo : lo + t.k * t.n_levels] = (seg @ t.T(theta).T).ravel()
        return out

    def u_from_b(self, theta: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``u = Lambda^{-1} b`` (least squares where ``T`` is singular)."""
        out = np.empty_like(b, dtype=float)
        for t, lo in zip(self.terms, self.offsets[:-1], strict=True):
            seg = b[lo : lo + t.k * t.n_levels].reshape(t.n_levels, t.k)
            out[lo : lo + t.k * t.n_levels] = (seg @ np.linalg.pinv(t.T(theta)).T).ravel()
        return out

    # ------------------------------------------------------------------------- reporting
    def covariances(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """``Sigma = T T'`` per term name."""
        return {t.name: t.covariance(theta) for t in self.terms}

    def variances(self, theta: np.ndarray) -> pd.Series:
        """Variances indexed by component name (``"Female"``, ``"g|x"``)."""
        values, names = [], []
        for t in self.terms:
            values.extend(np.diag(t.covariance(theta)))
            names.extend(t.component_names)
        return pd.Series(values, index=pd.Index(names, dtype=object), dtype=float)

    def correlations(self, theta: np.ndarray) -> pd.Series:
        """Correlations within correlated terms, indexed ``"group|a,b"`` (NaN at sd 0)."""
        values, names = [], []
        for t in self.terms:
            if not t.correlated:
                continue
            S = t.covariance(theta)
            sd = np.sqrt(np.diag(S))
            for a in range(t.k):
                for b in range(a + 1, t.k):
                    den = sd[a] * sd[b]
                    values.append(S[a, b] / den if den > 0 else np.nan)
                    names.append(f"{t.group}|{t.columns[a]},{t.columns[b]}")
        return pd.Series(values, index=pd.Index(names, dtype=object), dtype=float)

    def theta_from_covariances(self, covs: dict[str, np.ndarray]) -> np.ndarray:
        """``theta`` whose ``T T'`` equals the given covariance of each term (by term name).

        Uses the Cholesky factor (diagonal >= 0); semi-definite matrices are handled by a
        small ridge that is removed from the result's diagonal.
        """
        theta = np.zeros(self.n_theta)
        for t in self.terms:
            S = np.atleast_2d(np.asarray(covs[t.name], dtype=float))
            if not t.correlated:
                T = np.diag(np.sqrt(np.clip(np.diag(S), 0.0, None)))
            else:
                try:
                    T = np.linalg.cholesky(S)
                except np.linalg.LinAlgError:
                    w, V = np.linalg.eigh(S)
                    T = np.linalg.qr((V * np.sqrt(np.clip(w, 0, None))).T)[1].T
                    T = T * np.sign(np.where(np.diag(T) == 0, 1.0, np.diag(T)))[None, :]
            theta[t.slice] = T[t.rows, t.cols]
        return theta

    def singular_components(self, theta: np.ndarray, tol: float = SINGULAR_TOL) -> list[str]:
        """Terms whose factor ``T`` is (near) singular, as lme4's ``isSingular`` judges.

        A term is singular when a diagonal entry of ``T`` is below ``tol`` (a variance at
        zero, or a correlation at +-1). Returns readable descriptions.
        """
        out = []
        for t in self.terms:
            d = np.diag(t.T(theta))
            for j in np.flatnonzero(d < tol):
                if j == 0 or not t.correlated:
                    out.append(f"variance of {t.component_names[j]} is zero")
                else:
                    out.append(
                        f"the covariance of term {t.name} is singular (a correlation at +-1 "
                        f"or a zero variance at column {t.columns[j]!r})"
                    )
        return out
