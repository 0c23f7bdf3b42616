"""A collapsed Polya-Gamma Gibbs sampler for crossed random-intercept logit models.

The model (binomial or Bernoulli, logit link)

.. math::

    y_i \\sim \\mathrm{Bin}(n_i, \\mathrm{logit}^{-1} \\eta_i), \\qquad
    \\eta_i = o_i + x_i'\\beta + \\textstyle\\sum_{k=1}^K z_{ki}\\, b_k[g_k(i)], \\qquad
    b_k[l] \\sim N(0, s_k^2),

with a Normal (or flat) prior on ``beta`` and any prior on each ``s_k`` (or ``s_k^2``).
Given Polya-Gamma variables ``omega_i ~ PG(n_i, eta_i)`` (Polson, Scott & Windle 2013) the
model is Gaussian with weights ``omega`` and working response ``kappa / omega``,
``kappa = y - n / 2``. One scan:

1. ``omega | eta`` (the ``polyagamma`` package);
2. for each factor ``k``, the *collapsed* block ``(beta, b_k)`` jointly: ``beta`` from its
   conditional with ``b_k`` integrated out, then ``b_k | beta`` level by level. This is the
   blocking of Papaspiliopoulos, Roberts & Zanella (2020, Biometrika 107) -- the global
   effects updated with each factor -- extended to all fixed effects; with ``W_l, S_l,
   XW_l`` the per-level sums of ``omega z^2``, ``z omega r`` and ``omega z x``, the
   marginal precision of ``beta`` is ``P_0 + X'Omega X - sum_l XW_l XW_l' / (W_l + 1/s_k^2)``:
   ``O(n p^2)`` work, no matrix over levels;
3. for each factor, ``s_k | b_k`` (centred) and then a rescaling move ``(s_k, b_k) ->
   (gamma s_k, gamma b_k)`` drawn from its exact conditional (Liu & Sabatti 2000), which
   is the non-centred update of ``s_k`` (an interweaving of the two parameterizations, Yu
   & Meng 2011). Both are one-dimensional: slice sampling (Neal 2003) on the log of the
   prior's own variable, with the prior's log density from PyMC (any prior).

Every update is an exact conditional draw or a slice update, so each is reversible and the
scan run backwards is its time reversal (what :class:`bayesglmm.sbc` style checks need).
Cost per scan: ``O(n (K + p^2) + sum_k J_k)``; memory ``O(n K + sum_k J_k)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from polyagamma import random_polyagamma

#: initial slice width on the log scale; adapted (during tuning only) to 3 x mean move
INITIAL_WIDTH = 1.0
WIDTH_PER_MOVE = 3.0
MAX_STEPS_OUT = 50
MAX_SHRINKS = 200


@dataclass
class CrossedData:
    """What the sampler needs from a design (all arrays over rows unless said)."""

    X: np.ndarray  # (n, p)
    y: np.ndarray
    trials: np.ndarray
    offset: np.ndarray
    index: list[np.ndarray]  # level of each row, per factor
    z: list[np.ndarray | None]  # the term's covariate (None: an intercept, all ones)
    n_levels: list[int]
    prior_mean: np.ndarray  # (p,)
    prior_prec: np.ndarray  # (p,), 0 for a flat prior
    #: per factor: ``log p(x) + log x`` at ``u = log x`` (x the prior's sd or variance)
    scale_logp: list[Callable[[float], float]]
    #: per factor: 1 if the prior is on the sd, 0.5 if on the variance (``s = exp(c u)``)
    scale_power: list[float]

    def __post_init__(self):
        self.kappa = self.y - self.trials / 2.0
        self.informative = self.trials > 0
        self.bernoulli = bool(np.all(self.trials == 1.0))


@dataclass
class CrossedState:
    beta: np.ndarray
    b: list[np.ndarray]
    u: np.ndarray  # log of each factor's prior variable
    omega: np.ndarray
    #: per-factor contributions z * b[index] to the linear predictor, and X beta
    parts: list[np.ndarray] = field(default_factory=list)
    xb: np.ndarray | None = None
    xtox: np.ndarray | None = None  # X' Omega X at the current omega

    def sd(self, data: CrossedData, k: int) -> float:
        return math.exp(data.scale_power[k] * self.u[k])


def initial_state(data: CrossedData, beta, b, u) -> CrossedState:
    st = CrossedState(
        beta=np.array(beta, dtype=float),
        b=[np.array(v, dtype=float) for v in b],
        u=np.array(u, dtype=float),
        omega=np.zeros(data.y.shape[0]),
    )
    st.parts = [_part(data, k, st.b[k]) for k in range(len(st.b))]
    st.xb = data.X @ st.beta
    return st


def _part(data: CrossedData, k: int, bk: np.ndarray) -> np.ndarray:
    v = bk[data.index[k]]
    return v if data.z[k] is None else v * data.z[k]


def linear_predictor(data: CrossedData, st: CrossedState) -> np.ndarray:
    eta = data.offset + st.xb
    for p in st.parts:
        eta = eta + p
    return eta


def _level_sums(data: CrossedData, k: int, w: np.ndarray) -> np.ndarray:
    z, idx = data.z[k], data.index[k]
    return np.bincount(idx, weights=w if z is None else w * z, minlength=data.n_levels[k])


# ------------------------------------------------------------------------------------------
# the updates


def update_omega(data: CrossedData, st: CrossedState, rng: np.random.Generator) -> int:
    eta = linear_predictor(data, st)
    rows = data.informative
    if data.bernoulli:  # a scalar shape is faster in polyagamma
        st.omega = random_polyagamma(1.0, eta, random_state=rng)
    elif rows.all():
        st.omega = random_polyagamma(data.trials, eta, random_state=rng)
    else:
        st.omega = np.zeros_like(eta)
        st.omega[rows] = random_polyagamma(data.trials[rows], eta[rows], random_state=rng)
    st.xtox = (data.X * st.omega[:, None]).T @ data.X
    return 0


def effects_conditional(data, st, k, omega_r):
    """Per-level sums and the marginal Gaussian of ``beta`` (``b_k`` integrated out):
    ``(W, S, XW, P, h)`` with ``beta ~ N(P^-1 h, P^-1)`` (a function, so tests can break it)."""
    # the prior precision of b_k (capped: a scale at the edge of floating point is 0)
    tau = math.exp(min(-2.0 * data.scale_power[k] * st.u[k], 700.0))
    zw = st.omega if data.z[k] is None else st.omega * data.z[k]
    W = _level_sums(data, k, zw)
    S = _level_sums(data, k, omega_r)
    XW = np.stack([_level_sums(data, k, st.omega * col) for col in data.X.T], axis=1)
    D = 1.0 / (W + tau)
    P = np.diag(data.prior_prec) + st.xtox - XW.T @ (D[:, None] * XW)
    h = data.prior_prec * data.prior_mean + data.X.T @ omega_r - XW.T @ (D * S)
    return W, S, XW, D, P, h


def update_effects(data: CrossedData, st: CrossedState, k: int, rng) -> int:
    """``(beta, b_k)`` jointly given omega, the other factors and ``s_k``."""
    other = data.offset.copy()
    for j, p in enumerate(st.parts):
        if j != k:
            other += p
    omega_r = data.kappa - st.omega * other
    _, S, XW, D, P, h = effects_conditional(data, st, k, omega_r)
    if P.shape[0]:
        L = np.linalg.cholesky(P)
        mean = np.linalg.solve(L.T, np.linalg.solve(L, h))
        st.beta = mean + np.linalg.solve(L.T, rng.standard_normal(P.shape[0]))
        st.xb = data.X @ st.beta
    bk = D * (S - XW @ st.beta) + np.sqrt(D) * rng.standard_normal(D.shape[0])
    st.b[k] = bk
    st.parts[k] = _part(data, k, bk)
    return 0


def slice_1d(f, x0: float, width: float, rng) -> tuple[float, int]:
    """Neal's (2003) slice sampler: stepping out with a random split, then shrinkage."""
    level = f(x0) - rng.standard_exponential()
    left = x0 - width * rng.random()
    right = left + width
    j = int(math.floor(MAX_STEPS_OUT * rng.random()))
    k = MAX_STEPS_OUT - 1 - j
    evals = 1
    while j > 0 and f(left) > level:
        left, j, evals = left - width, j - 1, evals + 1
    while k > 0 and f(right) > level:
        right, k, evals = right + width, k - 1, evals + 1
    for _ in range(MAX_SHRINKS):
        new = left + (right - left) * rng.random()
        evals += 1
        if f(new) > level:
            return new, evals
        if new < x0:
            left = new
        else:
            right = new
    return x0, evals


def _safe(f):
    def g(u):
        try:
            v = f(u)
        except (OverflowError, ZeroDivisionError):  # far out in a tail
            return -math.inf
        return v if math.isfinite(v) else -math.inf

    return g


def centred_scale_density(data: CrossedData, st: CrossedState, k: int):
    """``log p(u | b_k)`` up to a constant, ``u`` the log of the prior's variable."""
    c, lp = data.scale_power[k], data.scale_logp[k]
    J, ss = st.b[k].size, float(st.b[k] @ st.b[k])
    return _safe(lambda u: lp(u) - J * c * u - 0.5 * ss * math.exp(-2.0 * c * u))


def update_scale(data: CrossedData, st: CrossedState, k: int, width: float, rng) -> int:
    new, evals = slice_1d(centred_scale_density(data, st, k), float(st.u[k]), width, rng)
    st.u[k] = new
    return evals


def move_density(data: CrossedData, st: CrossedState, k: int, omega_r):
    """The log density of ``u' = u + log(gamma) / c`` for the joint rescaling of
    ``(s_k, b_k)`` by ``gamma`` (the Gaussian prior of ``b_k`` and the Haar Jacobian
    cancel, leaving the prior of the scale and the augmented likelihood in ``gamma b_k``)."""
    c, lp, u0 = data.scale_power[k], data.scale_logp[k], float(st.u[k])
    part = st.parts[k]
    A = float(st.omega @ (part * part))
    B = float(part @ omega_r)
    return _safe(
        lambda u: lp(u) - 0.5 * A * math.exp(2 * c * (u - u0)) + B * math.exp(c * (u - u0))
    )


def update_move(data: CrossedData, st: CrossedState, k: int, width: float, rng) -> int:
    omega_r = data.kappa - st.omega * (linear_predictor(data, st) - st.parts[k])
    u0 = float(st.u[k])
    new, evals = slice_1d(move_density(data, st, k, omega_r), u0, width, rng)
    gamma = math.exp(data.scale_power[k] * (new - u0))
    st.u[k] = new
    st.b[k] = st.b[k] * gamma
    st.parts[k] = st.parts[k] * gamma
    return evals


def scan_updates(data: CrossedData) -> list[tuple[str, int]]:
    """The updates of one scan, in order: ``(kind, factor)``."""
    K = len(data.index)
    out = [("omega", -1)] + [("effects", k) for k in range(K)]
    for k in range(K):
        out += [("scale", k), ("move", k)]
    return out


class CrossedSampler:
    """One chain of the collapsed sampler; :meth:`apply` runs one named update."""

    def __init__(self, data: CrossedData, state: CrossedState, rng, widths=None):
        self.data, self.state, self.rng = data, state, rng
        K = len(data.index)
        self.widths = {
            (kind, k): INITIAL_WIDTH for kind, k in scan_updates(data) if kind in ("scale", "move")
        }
        self.widths.update(widths or {})
        self._moves = {key: 0.0 for key in self.widths}
        self._n_tuned = 0
        self.K = K

    def apply(self, kind: str, k: int, tune: bool = False) -> int:
        d, st, rng = self.data, self.state, self.rng
        if kind == "omega":
            return update_omega(d, st, rng)
        if kind == "effects":
            return update_effects(d, st, k, rng)
        u0 = float(st.u[k])
        w = self.widths[(kind, k)]
        fn = update_scale if kind == "scale" else update_move
        evals = fn(d, st, k, w, rng)
        if tune:
            key = (kind, k)
            self._moves[key] += (abs(float(st.u[k]) - u0) - self._moves[key]) / (self._n_tuned + 1)
            self.widths[key] = max(WIDTH_PER_MOVE * self._moves[key], 1e-3)
        return evals

    def scan(self, tune: bool = False, order=None) -> int:
        evals = 0
        for kind, k in order or scan_updates(self.data):
            evals += self.apply(kind, k, tune)
        if tune:
            self._n_tuned += 1
        return evals
