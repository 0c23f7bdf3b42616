"""A univariate slice update for a scale with any prior: the non-conjugate variance step.

A standard deviation with a half-normal, half-Student-t, half-Cauchy, exponential, gamma or
improper prior has no conjugate update given its random effects. Its full conditional is
still one-dimensional and cheap to evaluate: on the value scale ``u = log sd`` (or ``log``
variance) it is

.. math:: \\log p(u \\mid b, \\ldots) = \\log p_{\\text{prior}}(e^u) + u
          + \\textstyle\\sum_j \\log \\mathcal N(b_j \\mid \\mu_j, e^u) + \\text{const},

the prior's log density, the Jacobian ``u`` of the log transform, and the log densities of
everything that depends on the scale directly (its random effects; potentials holding an
improper prior's density). :class:`SliceScaleStep` draws ``u`` from it by Neal's (2003)
slice sampler: a level under the density, an interval of width ``w`` placed at random and
stepped out (at most ``m`` widths, split at random between the sides, which keeps the
update exactly reversible), then shrunk towards the current point until a draw lands in
the slice. No proposal is rejected, and with ``w`` fixed after tuning the update leaves the
full conditional invariant whatever the prior, so it is valid for every prior the
propriety check accepts. The density is the model's own (PyMC's log density of the
variable's Markov blanket), so nothing about the prior is reimplemented here.
"""

from __future__ import annotations

import math

import numpy as np
from pymc.step_methods.compound import StepMethodState
from pymc.step_methods.state import dataclass_state

from ...errors import MethodError
from .effects import GibbsStep, compile_point_fn, depends_on, rv_of, value_name

#: initial slice width on the value (log) scale; tuned during PyMC's tuning phase
INITIAL_WIDTH = 1.0
#: the tuned width is this multiple of the mean absolute move (about 3.4 posterior sds
#: for a Gaussian conditional; Neal 2003 recommends a width somewhat above the slice's)
WIDTH_PER_MOVE = 3.0
#: most widths stepped out per update (Neal's ``m``); the random split keeps it exact
MAX_STEPS_OUT = 50
#: most shrinkages per update; the interval then has shrunk onto the current point, where
#: the chain stays (only a density that is infinite or NaN at the current point, e.g. an
#: improper posterior's pole at a variance of 0, gets there; the drift check reports it)
MAX_SHRINKS = 200


@dataclass_state
class SliceState(StepMethodState):
    width: np.ndarray
    mean_move: np.ndarray
    n_tuned: int
    tune: bool


class SliceScaleStep(GibbsStep):
    """Slice sampling (Neal 2003) of a standard deviation or variance given its effects.

    Parameters
    ----------
    vars : variable or name
        A continuous variable, typically the sd ``"1|Female_sigma"`` (any prior on the sd)
        or variance ``"1|Female_var"`` of a random term in the centered model; it is
        updated on its value scale (log for positive variables, Jacobian included), one
        coordinate at a time.
    model : pymc.Model, optional
    rng : seed or Generator, optional
    width : float, optional
        Initial slice width on the value scale (tuned during PyMC's tuning phase, then
        fixed).

    Notes
    -----
    The update conditions on every other variable. It is exact for any prior, but like
    every Gibbs update of a scale given its effects it mixes slowly when the levels carry
    little information (the centered "funnel"); ``method="gibbs"`` follows it with a
    :class:`~bayesglmm.bayes.gibbs.scale.ScaleMoveStep` for that reason.
    """

    name = "slice"
    _state_class = SliceState
    stats_dtypes_shapes = {"slice_evals": (np.int64, []), "slice_stuck": (np.int64, [])}

    def __init__(
        self,
        vars,
        *,
        model=None,
        rng=None,
        initial_point=None,
        width=None,
        blocked=True,
        compile_kwargs=None,
    ):
        ip = self._setup(vars, model, rng, initial_point)
        model = self._model
        if len(self.vars) != 1:
            raise MethodError(
                "SliceScaleStep updates one variable; make one step per variable "
                f"(got {[v.name for v in self.vars]})"
            )
        rv = rv_of(model, self.vars[0])
        self.rv_name, self.value = rv.name, value_name(model, rv)
        if not rv.type.dtype.startswith("float"):
            raise MethodError(f"slice update of {rv.name!r}: the variable is discrete")
        blanket = [
            other
            for other in model.basic_RVs
            if other is not rv and any(depends_on(i, rv, model) for i in other.owner.inputs)
        ]
        potentials = [p for p in model.potentials if depends_on(p, rv, model)]
        self._logp_fn = compile_point_fn(
            model, [model.logp(vars=[rv, *blanket, *potentials], jacobian=True)]
        )
        self.blanket = [b.name for b in blanket + potentials]
        self.shape = tuple(np.shape(ip[self.value]))
        # the same function with unchecked inputs, for the inner loop: the step passes
        # arrays of the inputs' own dtypes (the checks cost more than the log density)
        fn = self._logp_fn.fn
        values = {v.name: v for v in model.value_vars}
        self._dtypes = [values[n].type.dtype for n in self._logp_fn.names]
        self._position = self._logp_fn.names.index(self.value)
        fn.trust_input = True  # a function of this step's own, always given _args(point)
        if not np.isfinite(self._logp(ip)):
            raise MethodError(
                f"slice update of {rv.name!r}: the log density is not finite at the initial point"
            )
        w = INITIAL_WIDTH if width is None else float(width)
        size = int(np.prod(self.shape))
        self.width = np.full(size, w)
        self._untuned = self.width.copy()
        self.mean_move = np.zeros(size)
        self.n_tuned = 0
        self.tune = True

    def _args(self, point) -> list:
        return [
            np.asarray(point[n], dtype=d)
            for n, d in zip(self._logp_fn.names, self._dtypes, strict=True)
        ]

    def _logp(self, point) -> float:
        lp = float(self._logp_fn.fn(*self._args(point))[0])
        return lp if np.isfinite(lp) else -np.inf

    def reset_tuning(self) -> None:
        self.width = self._untuned.copy()
        self.mean_move = np.zeros_like(self.width)
        self.n_tuned = 0
        self.tune = True

    def _density(self, point, x: np.ndarray):
        """``f(value, i)``: the log density with coordinate ``i`` of the variable at ``value``."""
        fn, args = self._logp_fn.fn, self._args(point)
        pos, dtype = self._position, self._dtypes[self._position]

        def f(value_i: float, i: int) -> float:
            y = x.astype(dtype, copy=True)
            y[i] = value_i
            args[pos] = y.reshape(self.shape)
            lp = float(fn(*args)[0])
            return -math.inf if math.isnan(lp) else lp

        return f

    def step(self, point):
        x = np.array(point[self.value], dtype=float).ravel()
        evals, stuck = 0, 0
        n_tuned = self.n_tuned + 1
        for i in range(x.size):
            f = self._density(point, x)
            x0, w = float(x[i]), float(self.width[i])
            level = f(x0, i) - self.rng.standard_exponential()
            left = x0 - w * self.rng.random()
            right = left + w
            j = int(np.floor(MAX_STEPS_OUT * self.rng.random()))
            k = MAX_STEPS_OUT - 1 - j
            evals += 1
            while j > 0 and f(left, i) > level:
                left, j, evals = left - w, j - 1, evals + 1
            while k > 0 and f(right, i) > level:
                right, k, evals = right + w, k - 1, evals + 1
            for _ in range(MAX_SHRINKS):
                new = left + (right - left) * self.rng.random()
                evals += 1
                if f(new, i) > level:
                    break
                if new < x0:
                    left = new
                else:
                    right = new
            else:
                new, stuck = x0, stuck + 1
            x[i] = new
            if self.tune:
                self.mean_move[i] += (abs(new - x0) - self.mean_move[i]) / n_tuned
                self.width[i] = max(WIDTH_PER_MOVE * self.mean_move[i], 1e-3)
        if self.tune:
            self.n_tuned = n_tuned
        stats = {"slice_evals": evals, "slice_stuck": stuck}
        return {**point, self.value: x.reshape(self.shape)}, [stats]
