"""Metropolis-within-Gibbs updates for families without a conjugate route.

Karim & Zeger (1992) updated the random effects of a GLMM one level at a time. Given the
fixed effects, the other terms and the variance, the effects of different levels of one
term are conditionally independent (each row of the data belongs to one level), so
:class:`LevelMetropolisStep` proposes a random-walk move for every level at once and
accepts or rejects each level on its own ratio: exactly a sweep of one-level-at-a-time
Metropolis updates, at the cost of two evaluations of the log-likelihood.
:class:`CoordinateMetropolisStep` updates fixed-effect coefficients (or any other continuous
variable) one coordinate at a time in a random order, so that the sweep is reversible.

Both use the model's own log-density (any family, link and prior), and tune their
proposal scales per level or coefficient during PyMC's tuning phase only (Robbins-Monro on
the log scale towards a target acceptance rate); after tuning the kernel is fixed.
"""

from __future__ import annotations

import numpy as np
from pymc.step_methods.compound import StepMethodState
from pymc.step_methods.state import dataclass_state

from ...errors import MethodError
from .effects import GibbsStep, compile_point_fn, rv_of, value_name

#: Roberts, Gelman & Gilks (1997) / Roberts & Rosenthal (2001): about 0.44 for
#: one-dimensional random-walk proposals, lower for a few dimensions at once
TARGET_ACCEPT_1D, TARGET_ACCEPT_KD = 0.44, 0.30
#: step of the Robbins-Monro tuning at tuning iteration t: (t + 1) ** -_DECAY
_DECAY = 0.6
#: relative step of the finite differences giving the initial proposal scales
_H = 1e-3


@dataclass_state
class MetropolisState(StepMethodState):
    log_scale: np.ndarray
    n_tuned: int
    tune: bool


class _TunedMetropolis(GibbsStep):
    _state_class = MetropolisState
    stats_dtypes_shapes = {"accept_rate": (np.float64, [])}

    def _init_tuning(self, log_scale: np.ndarray, target: float) -> None:
        self.log_scale = log_scale
        self._untuned = log_scale.copy()
        self.n_tuned = 0
        self.target = target
        self.tune = True

    def _adapt(self, accepted: np.ndarray) -> None:
        if self.tune:
            gain = (self.n_tuned + 1.0) ** -_DECAY
            self.log_scale = self.log_scale + gain * (accepted - self.target)
            self.n_tuned += 1

    def reset_tuning(self) -> None:
        self.log_scale = self._untuned.copy()
        self.n_tuned = 0
        self.tune = True


class LevelMetropolisStep(_TunedMetropolis):
    """Random-walk Metropolis for the random effects of one term, level by level.

    Parameters
    ----------
    vars : variable or name
        One random term of a centered model (``"1|Female"``).
    design : Design or GLMM
        For the level of each row.
    model : pymc.Model, optional
    rng : seed or Generator, optional
    target_accept : float, optional
        Acceptance rate aimed at while tuning (default 0.44 for one column, 0.30 for more).
    """

    name = "level_metropolis"

    def __init__(
        self,
        vars,
        *,
        design,
        model=None,
        rng=None,
        initial_point=None,
        target_accept=None,
        blocked=True,
        compile_kwargs=None,
    ):
        ip = self._setup(vars, model, rng, initial_point)
        model = self._model
        design = getattr(design, "design", design)
        if len(self.vars) != 1:
            raise MethodError(
                "LevelMetropolisStep updates one random term; make one step per "
                f"term (got {[v.name for v in self.vars]})"
            )
        rv = rv_of(model, self.vars[0])
        terms = {t.name: t for t in design.random}
        if rv.name not in terms:
            raise MethodError(
                f"level-wise Metropolis: {rv.name!r} is not a random term of the "
                f"design ({', '.join(terms) or 'none'})"
            )
        if len(model.observed_RVs) != 1:
            raise MethodError("level-wise Metropolis needs exactly one observed variable")
        term = terms[rv.name]
        self.value = value_name(model, rv)
        self.index, self.n_levels = np.asarray(term.index), term.n_levels
        self.shape = tuple(np.shape(ip[self.value]))
        self.k = int(np.prod(self.shape)) // self.n_levels
        self._fn = compile_point_fn(
            model, model.logp(vars=[model.observed_RVs[0], rv], sum=False, jacobian=False)
        )
        target = target_accept or (TARGET_ACCEPT_1D if self.k == 1 else TARGET_ACCEPT_KD)
        self._init_tuning(self._initial_log_scale(ip), target)

    def _per_level(self, point) -> np.ndarray:
        ll, lp = self._fn(point)
        lp = np.asarray(lp).reshape(self.n_levels, -1).sum(axis=1)
        return np.bincount(self.index, weights=np.ravel(ll), minlength=self.n_levels) + lp

    def _initial_log_scale(self, ip) -> np.ndarray:
        """2.38 / sqrt(k) conditional sds, from the curvature at the initial point."""
        b0 = np.asarray(ip[self.value], dtype=float).reshape(self.n_levels, self.k)
        f0 = self._per_level(ip)
        curv = np.empty((self.n_levels, self.k))
        for j in range(self.k):
            h = _H * max(1.0, float(np.abs(b0[:, j]).max()))
            vals = []
            for sign in (1.0, -1.0):
                b = b0.copy()
                b[:, j] += sign * h
                vals.append(self._per_level({**ip, self.value: b.reshape(self.shape)}))
            curv[:, j] = -(vals[0] - 2.0 * f0 + vals[1]) / h**2
        sd = 1.0 / np.sqrt(np.clip(curv, 1e-6, None))
        return np.log(2.38 / np.sqrt(self.k) * np.clip(sd, 1e-3, 1e3))

    def step(self, point):
        b = np.asarray(point[self.value], dtype=float).reshape(self.n_levels, self.k)
        move = np.exp(self.log_scale) * self.rng.standard_normal(b.shape)
        proposal = {**point, self.value: (b + move).reshape(self.shape)}
        log_ratio = self._per_level(proposal) - self._per_level(point)
        accept = np.log(self.rng.random(self.n_levels)) < log_ratio
        new_b = np.where(accept[:, None], b + move, b)
        self._adapt(accept.astype(float)[:, None])
        return {**point, self.value: new_b.reshape(self.shape)}, [
            {"accept_rate": float(accept.mean())}
        ]


class CoordinateMetropolisStep(_TunedMetropolis):
    """Random-walk Metropolis on single coordinates, one at a time in a random order.

    Meant for fixed-effect coefficients (Karim & Zeger's scheme has no conjugate update for
    them outside the logit and probit links), but valid for any continuous variable: it
    moves the value variable (log scale for positive ones) under the model's whole
    log-density, Jacobian included.

    Parameters
    ----------
    vars : list of variables or names
        E.g. the fixed-effect terms ``"Intercept"``, ``"Cross"``; any prior.
    model : pymc.Model, optional
    rng : seed or Generator, optional
    """

    name = "coordinate_metropolis"

    def __init__(
        self,
        vars,
        *,
        model=None,
        rng=None,
        initial_point=None,
        target_accept=None,
        blocked=True,
        compile_kwargs=None,
    ):
        ip = self._setup(vars, model, rng, initial_point)
        model = self._model
        self.coords = [(v.name, idx) for v in self.vars for idx in np.ndindex(np.shape(ip[v.name]))]
        self._logp = model.compile_logp(jacobian=True)
        log_scale = np.array([self._coord_log_scale(ip, c) for c in self.coords])
        self._init_tuning(log_scale, target_accept or TARGET_ACCEPT_1D)

    def _set(self, point, coord, value):
        name, idx = coord
        arr = np.array(point[name], dtype=float)
        arr[idx] = value
        return {**point, name: arr}

    def _coord_log_scale(self, ip, coord) -> float:
        x0 = float(np.asarray(ip[coord[0]])[coord[1]])
        h = _H * max(1.0, abs(x0))
        f = [self._logp(self._set(ip, coord, x0 + d)) for d in (h, 0.0, -h)]
        curv = -(f[0] - 2.0 * f[1] + f[2]) / h**2
        return float(np.log(2.38 * np.clip(1.0 / np.sqrt(max(curv, 1e-6)), 1e-3, 1e3)))

    def step(self, point):
        order = self.rng.permutation(len(self.coords))
        accepted = np.zeros(len(self.coords))
        current = self._logp(point)
        for c in order:
            coord = self.coords[c]
            x = float(np.asarray(point[coord[0]])[coord[1]])
            proposal = self._set(
                point, coord, x + np.exp(self.log_scale[c]) * self.rng.standard_normal()
            )
            lp = self._logp(proposal)
            if np.log(self.rng.random()) < lp - current:
                point, current, accepted[c] = proposal, lp, 1.0
        self._adapt(accepted)
        return point, [{"accept_rate": float(accepted.mean())}]
