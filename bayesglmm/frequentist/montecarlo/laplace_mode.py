"""The Laplace approximation of ``p(u | y)`` that the importance and Metropolis samplers use.

At ``psi = (beta, Sigma)`` the package's PIRLS engine (:mod:`..pirls`) gives the conditional
mode ``u_hat`` of the spherical random effects (``b = Lambda(theta) u``) and the Cholesky
factor ``L`` of the curvature ``H = Lambda' Z' W Z Lambda + I``: ``p(u | y)`` is approximately
``N(u_hat, H^{-1})``. Nothing is rewritten here; this module only keeps the last state to
warm-start the next solve.
"""

from __future__ import annotations

import numpy as np

from ..pirls import PirlsState
from .complete import CompleteData


class LaplaceMode:
    """Conditional modes and curvature at successive parameter values (warm-started)."""

    def __init__(self, model: CompleteData) -> None:
        self.model = model
        self.last: PirlsState | None = None

    def at(self, psi: np.ndarray) -> tuple[np.ndarray, PirlsState]:
        """``(theta, state)`` at ``psi``."""
        m = self.model
        theta = m.theta(psi)
        beta = np.asarray(psi[: m.p], dtype=float)
        last = self.last
        st = m.problem.solve(
            theta,
            beta,
            u0=None if last is None else last.u,
            factor0=None if last is None else last.factor,
        )
        if not st.converged and last is not None:
            st = m.problem.solve(theta, beta)
        self.last = st
        return theta, st


def b_from_u(model: CompleteData, theta: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``b = Lambda(theta) u`` for each row of ``U`` (``m x q``)."""
    out = np.empty_like(U)
    for t, lo in zip(model.terms, model.offsets[:-1], strict=True):
        sl = slice(lo, lo + t.k * t.n_levels)
        seg = U[:, sl].reshape(U.shape[0], t.n_levels, t.k)
        out[:, sl] = (seg @ t.T(theta).T).reshape(U.shape[0], -1)
    return out
