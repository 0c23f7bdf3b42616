"""``Lambda(theta)`` for structured random-effect terms: AR(1) and known relationship matrices.

:class:`~.covariance.CovarianceFactor` holds one ``k x k`` factor ``T`` per term, repeated
over the levels. Two structures change what ``theta`` means:

- ``ar1(time + 0 | g)``: the ``T`` effects of a level are ``N(0, sigma^2 R(rho))``,
  ``R_st = rho^|s-t|``; ``theta = (sigma, atanh rho)`` and ``T = sigma chol(R)``, which has
  the closed form ``T[t, 0] = rho^t``, ``T[t, s] = rho^(t-s) sqrt(1 - rho^2)`` (``1 <= s <= t``).
  Its inverse is bidiagonal (the precision of an AR(1) is tridiagonal), so solves with ``T``
  cost ``O(T)``; the block itself is ``T x T`` per level, as for any term with ``T`` columns.
- ``(1|animal)`` with ``relmat``: ``b = sigma L u`` with ``L L' = K``; ``theta = sigma`` and
  ``T = [sigma]``, the coupling of levels being in ``L`` (applied by PIRLS to the design).

:func:`covariance_factor` returns the plain factor for designs without such terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .covariance import CovarianceFactor, TermFactor

#: |rho| of an AR(1) term is kept below this (atanh(rho) finite)
RHO_MAX = 1.0 - 1e-10


def ar1_cholesky(rho: float, k: int) -> np.ndarray:
    """Lower triangular ``C`` with ``C C' = R``, ``R_st = rho^|s-t|`` (``k x k``)."""
    s = np.arange(k)
    lag = s[:, None] - s[None, :]
    C = np.where(lag >= 0, np.power(rho, np.clip(lag, 0, None)), 0.0)
    C[:, 1:] *= np.sqrt(max(1.0 - rho * rho, 0.0))
    return np.tril(C)


@dataclass(frozen=True)
class AR1Factor(TermFactor):
    """``T = sigma chol(R(rho))`` of an AR(1) term; ``theta = (sigma, atanh rho)``."""

    structure: str = "ar1"

    def rho(self, theta: np.ndarray) -> float:
        return float(np.clip(np.tanh(theta[self.start + 1]), -RHO_MAX, RHO_MAX))

    def T(self, theta: np.ndarray) -> np.ndarray:
        return theta[self.start] * ar1_cholesky(self.rho(theta), self.k)


@dataclass(frozen=True)
class RelmatFactor(TermFactor):
    """A scalar term ``b = sigma L u`` with ``L L' = K`` (``L`` sparse, levels x levels)."""

    L: sp.csr_matrix | None = None
    structure: str = "relmat"


def ar1_correlation_name(term) -> str:
    """The table's name of an AR(1) term's ``rho``: the correlation of its first two time
    levels, ``"g|time[t0],time[t1]"`` (``cor(...)`` in the table), as for any correlation."""
    return f"{term.group}|{term.columns[0]},{term.columns[1]}"


def covariance_factor(design) -> CovarianceFactor:
    """The covariance factor of ``design``: :class:`StructuredCovarianceFactor` when a term
    is structured, else the plain :class:`~.covariance.CovarianceFactor`."""
    if any(getattr(t, "structure", None) for t in design.random):
        return StructuredCovarianceFactor(design)
    return CovarianceFactor(design)


class StructuredCovarianceFactor(CovarianceFactor):
    """:class:`~.covariance.CovarianceFactor` with AR(1) and relationship-matrix terms.

    The table shows an AR(1) term as ``var(g|ar1)`` (``sigma^2``) and
    ``cor(g|time[t0],time[t1])`` (``rho``, the correlation at lag one), glmmTMB's
    ``Std.Dev.`` and ``Corr`` of the term; a
    relationship-matrix term as ``var(animal)`` (``sigma^2``, the variance of an effect
    with ``K_ii = 1``).
    """

    def __init__(self, design) -> None:
        super().__init__(design)
        terms, start = [], 0
        for tf, t in zip(self.terms, design.random, strict=True):
            common = dict(
                name=tf.name,
                group=tf.group,
                columns=tf.columns,
                component_names=tf.component_names,
                k=tf.k,
                n_levels=tf.n_levels,
                correlated=False,
                start=start,
            )
            if t.structure == "ar1":
                # sigma is a "diagonal" entry (bounded at 0), atanh(rho) is free
                tf = AR1Factor(**common, rows=np.array([0, 1]), cols=np.array([0, 0]))
            elif t.structure == "relmat":
                tf = RelmatFactor(**common, rows=np.array([0]), cols=np.array([0]), L=t.relmat)
            else:
                common["correlated"] = tf.correlated
                tf = TermFactor(**common, rows=tf.rows, cols=tf.cols)
            terms.append(tf)
            start += tf.size
        self.terms = terms
        self.n_theta = start

    @property
    def theta_names(self) -> list[str]:
        names = super().theta_names
        out, j = [], 0
        for t in self.terms:
            if isinstance(t, AR1Factor):
                out += [f"{t.group}|ar1 sd", f"{t.group}|ar1 atanh(rho)"]
            else:
                out += names[j : j + t.size]
            j += t.size
        return out

    def theta0(self) -> np.ndarray:
        return self.is_diagonal_entry.astype(float)

    def Lambda(self, theta: np.ndarray) -> sp.csc_matrix:
        blocks = []
        for t in self.terms:
            if isinstance(t, RelmatFactor):
                blocks.append(theta[t.start] * sp.csr_matrix(t.L))
            else:
                blocks.append(sp.kron(sp.eye(t.n_levels), sp.csr_matrix(t.T(theta))))
        if not blocks:
            return sp.csc_matrix((0, 0))
        return sp.block_diag(blocks, format="csc")

    def b_from_u(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        out = super().b_from_u(theta, u)
        for t, lo in zip(self.terms, self.offsets[:-1], strict=True):
            if isinstance(t, RelmatFactor):
                out[lo : lo + t.n_levels] = theta[t.start] * (t.L @ u[lo : lo + t.n_levels])
        return out

    def u_from_b(self, theta: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = super().u_from_b(theta, b)
        for t, lo in zip(self.terms, self.offsets[:-1], strict=True):
            if isinstance(t, RelmatFactor):
                sig = theta[t.start]
                seg = b[lo : lo + t.n_levels]
                sol = sp.linalg.spsolve_triangular(t.L.tocsr(), seg, lower=True)
                out[lo : lo + t.n_levels] = sol / sig if sig > 0 else 0.0
        return out

    def variances(self, theta: np.ndarray) -> pd.Series:
        values, names = [], []
        for t in self.terms:
            if isinstance(t, AR1Factor):
                values.append(theta[t.start] ** 2)
            else:
                values.extend(np.diag(t.covariance(theta)))
            names.extend(t.component_names)
        return pd.Series(values, index=pd.Index(names, dtype=object), dtype=float)

    def correlations(self, theta: np.ndarray) -> pd.Series:
        base = super().correlations(theta)
        extra = {
            ar1_correlation_name(t): t.rho(theta) for t in self.terms if isinstance(t, AR1Factor)
        }
        if not extra:
            return base
        return pd.concat([base, pd.Series(extra, dtype=float)])

    def theta_from_covariances(self, covs: dict[str, np.ndarray]) -> np.ndarray:
        plain = [t for t in self.terms if getattr(t, "structure", None) is None]
        theta = np.zeros(self.n_theta)
        for t in self.terms:
            S = np.atleast_2d(np.asarray(covs[t.name], dtype=float))
            if isinstance(t, AR1Factor):
                sd = np.sqrt(np.clip(np.diag(S), 0.0, None))
                var = float(np.mean(np.diag(S)))
                lag1 = np.diag(S, 1) / np.maximum(sd[:-1] * sd[1:], 1e-300)
                rho = float(np.clip(np.mean(lag1) if lag1.size else 0.0, -0.99, 0.99))
                theta[t.slice] = [np.sqrt(max(var, 0.0)), np.arctanh(rho)]
            elif isinstance(t, RelmatFactor):
                theta[t.start] = np.sqrt(max(float(S[0, 0]), 0.0))
        if plain:
            sub = CovarianceFactor.__new__(CovarianceFactor)
            sub.terms, sub.n_theta = plain, self.n_theta
            vals = CovarianceFactor.theta_from_covariances(
                sub, {t.name: covs[t.name] for t in plain}
            )
            for t in plain:
                theta[t.slice] = vals[t.slice]
        return theta

    def singular_components(self, theta: np.ndarray, tol: float = 1e-4) -> list[str]:
        out = []
        for t in self.terms:
            if isinstance(t, AR1Factor):
                if theta[t.start] < tol:
                    out.append(f"variance of {t.component_names[0]} is zero")
                elif abs(t.rho(theta)) > 1.0 - tol:
                    out.append(f"the AR(1) correlation of {t.name} is at +-1")
            elif isinstance(t, RelmatFactor):
                if theta[t.start] < tol:
                    out.append(f"variance of {t.component_names[0]} is zero")
            else:
                sub = CovarianceFactor.__new__(CovarianceFactor)
                sub.terms = [t]
                out += CovarianceFactor.singular_components(sub, theta, tol)
        return out
