"""What every Gibbs-style step shares: the step protocol, and reading the PyMC model.

A step method here follows PyMC's :class:`~pymc.step_methods.compound.BlockedStep`
protocol: ``step(point) -> (point, stats)`` on a dict of value-variable values,
``competence(var, has_grad)``, ``stats_dtypes_shapes``, and randomness from ``self.rng``,
which :func:`pymc.sample` sets per chain through ``set_rng`` (so ``random_seed`` makes the
draws reproducible).

The steps read what they need from the PyMC model itself (prior parameters, observed data,
trials) through small compiled functions, so they follow :func:`pymc.set_data` or a shared
observed variable; from the :class:`~bayesglmm.design.Design` they take only the
structure: ``X``, the random-effect terms and the offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor
import scipy.sparse as sp
from pymc.distributions.multivariate import MvNormalRV
from pymc.step_methods.compound import BlockedStep, StepMethodState
from pymc.step_methods.state import dataclass_state
from pymc.util import get_random_generator, get_value_vars_from_user_vars
from pytensor.tensor.random.basic import BernoulliRV, BinomialRV, NormalRV

from ..._threads import blas_threads
from ...errors import MethodError

try:
    from pytensor.graph.traversal import ancestors
except ImportError:  # pytensor < 2.31
    from pytensor.graph.basic import ancestors


@dataclass_state
class GibbsStepState(StepMethodState):
    """Sampling state of a step without tuning: its variables and its random generator."""


class GibbsStep(BlockedStep):
    """Base of the Gibbs-style steps: value variables, model, random generator."""

    name = "gibbs"
    _state_class = GibbsStepState
    stats_dtypes_shapes: dict = {}

    def _setup(self, vars, model, rng, initial_point) -> dict:
        """Set model, value variables and generator; return the initial point."""
        self._model = model = pm.modelcontext(model)
        vars = [vars] if isinstance(vars, str) or not isinstance(vars, list | tuple) else vars
        vars = [model[v] if isinstance(v, str) else v for v in vars]
        self.vars = get_value_vars_from_user_vars(vars, model)
        self.rng = get_random_generator(rng)
        self.tune = False
        return model.initial_point() if initial_point is None else initial_point

    def __getnewargs_ex__(self):
        # what BlockedStep.__new__ needs on unpickling (in pm.sample's worker processes);
        # the rest of the state is restored from __dict__
        return (self.vars,), {"model": self._model}

    @staticmethod
    def competence(var, has_grad):
        """Never chosen automatically: a Gibbs step needs the model's structure."""
        return pm.step_methods.compound.Competence.INCOMPATIBLE


def value_name(model, rv) -> str:
    return model.rvs_to_values[rv].name


def rv_of(model, var):
    """The random variable of a value variable (or the variable itself if it is an RV)."""
    return model.values_to_rvs.get(var, var)


def free_rv(model, name: str, why: str):
    """``model[name]`` as a free random variable, or a MethodError saying why it must be."""
    if name not in model.named_vars:
        raise MethodError(f"{why}: the model has no variable {name!r}")
    rv = model[name]
    if rv not in model.free_RVs:
        hint = ""
        if rv in model.deterministics:
            hint = (
                " (it is a deterministic function of other variables: build the model "
                "with parameterization='centered')"
            )
        raise MethodError(f"{why}: {name!r} is not a free random variable of the model{hint}")
    return rv


class PointFunction:
    """``point -> [values of outs]``, reading only the value variables the outputs need.

    Cheaper to call than PyMC's ``PointFunc`` over all value variables (the cost of a Gibbs
    step on a small model is mostly such calls).
    """

    def __init__(self, model, outs) -> None:
        outs = model.replace_rvs_by_values(list(outs))
        used = set(ancestors(outs))
        inputs = [v for v in model.value_vars if v in used]
        self.names = [v.name for v in inputs]
        self.fn = model.compile_fn(outs, inputs=inputs, point_fn=False, on_unused_input="ignore")

    def __call__(self, point: dict):
        return self.fn(*[point[n] for n in self.names])


def compile_point_fn(model, outs) -> PointFunction:
    """A function ``point -> [values of outs]`` with random variables read from the point."""
    return PointFunction(model, outs)


def depends_on(graph, rv, model) -> bool:
    """Whether ``graph`` uses ``rv`` directly (not through another random variable)."""
    blockers = [r for r in model.basic_RVs if r is not rv]
    return rv in set(ancestors([graph], blockers=blockers))


def single_threaded_blas():
    """A context in which BLAS runs on one thread (a no-op without ``threadpoolctl``).

    The dense linear algebra of a Gibbs step works on matrices of a few hundred rows, where
    OpenBLAS's threads cost more than they save, by an order of magnitude on a busy
    machine (measured: 0.5 ms vs 10 ms per salamander step on 2 shared cores). Chains run in
    parallel processes anyway.
    """
    return blas_threads(1)


# ------------------------------------------------------------------------------- data
class ObservedData:
    """Current response and binomial trials of the model's single observed variable.

    With a ``design`` carrying prior weights, the observed variable is the weighted
    :class:`pymc.CustomDist` of :func:`~bayesglmm.bayes.family_pytensor.observed`: the
    response is still read from the model, the family and the trials from the design, and
    :attr:`weights` holds the weights (None without).
    """

    def __init__(self, model, why: str, design=None) -> None:
        if len(model.observed_RVs) != 1:
            raise MethodError(
                f"{why}: the model must have exactly one observed variable, "
                f"it has {len(model.observed_RVs)}"
            )
        obs = model.observed_RVs[0]
        self.rv = obs
        self.op = obs.owner.op
        y = model.rvs_to_values[obs]
        outs = [y]
        design = getattr(design, "design", design)
        self.weights = None if design is None else design.weights
        self._trials = None
        if self.weights is not None:
            self.weights = np.asarray(self.weights, dtype=float)
            self.binomial = design.family.name == "binomial"
            if self.binomial:
                n = design.trials if design.trials is not None else np.ones(design.n)
                self._trials = np.asarray(n, dtype=float)
        else:
            self.binomial = isinstance(self.op, BinomialRV | BernoulliRV)
            if isinstance(self.op, BinomialRV):
                outs.append(obs.owner.inputs[2])
        self._fn = pytensor.function([], outs, on_unused_input="ignore")

    def __call__(self) -> tuple[np.ndarray, np.ndarray | None]:
        out = self._fn()
        y = np.asarray(out[0], dtype=float)
        if self.weights is not None:
            return y, self._trials
        if isinstance(self.op, BernoulliRV):
            return y, np.ones_like(y)
        if len(out) > 1:
            return y, np.broadcast_to(np.asarray(out[1], dtype=float), y.shape)
        return y, None


# ----------------------------------------------------------------------------- layout
@dataclass
class FixedBlock:
    name: str
    cols: slice
    shape: tuple


@dataclass
class RandomBlock:
    name: str
    index: np.ndarray
    X: np.ndarray
    n_levels: int
    k: int
    Z: sp.csr_matrix
    all_ones: bool

    @property
    def size(self) -> int:
        return self.n_levels * self.k

    def contribution(self, b: np.ndarray) -> np.ndarray:
        b = b.reshape(self.n_levels, self.k)
        if self.all_ones:
            return b[self.index, 0]
        return np.einsum("ij,ij->i", self.X, b[self.index])


class EffectsLayout:
    """The fixed and random effects of a design, as variables of a centered PyMC model.

    The linear predictor is ``eta = X beta + sum_t Z_t b_t + offset``; ``beta`` is held by
    one variable per fixed-effect formula term, ``b_t`` by the variable named after term
    ``t`` (levels x columns, level-major as the columns of ``Z_t``).
    """

    def __init__(self, design, model, why: str) -> None:
        design = getattr(design, "design", design)
        self.design = None  # not kept: the step needs only the arrays below
        self.X = np.asarray(design.X, dtype=float)
        self.offset = np.asarray(design.offset, dtype=float)
        self.n = self.X.shape[0]
        self.fixed = []
        for term, sl in design.fixed_terms.items():
            rv = free_rv(model, term, why)
            self.fixed.append(FixedBlock(term, sl, tuple(rv.type.shape)))
        self.random = []
        for t in design.random:
            free_rv(model, t.name, why)
            X = np.asarray(t.X, dtype=float)
            self.random.append(
                RandomBlock(
                    t.name,
                    np.asarray(t.index),
                    X,
                    t.n_levels,
                    t.n_columns,
                    t.Z.tocsr(),
                    bool(np.all(X == 1.0)),
                )
            )
        self.names = [f.name for f in self.fixed] + [r.name for r in self.random]

    def block(self, name: str) -> FixedBlock | RandomBlock:
        for blk in self.fixed + self.random:
            if blk.name == name:
                return blk
        raise KeyError(name)

    def eta(self, point: dict) -> np.ndarray:
        """The linear predictor at ``point`` (offset included)."""
        eta = self.offset.copy()
        for f in self.fixed:
            eta += self.X[:, f.cols] @ np.atleast_1d(point[f.name])
        for r in self.random:
            eta += r.contribution(point[r.name])
        return eta


# ----------------------------------------------------------------------------- priors
class GaussianPriors:
    """Prior means and precisions of effect variables with Normal, MvNormal or Flat priors.

    Each variable's parameters are read from its PyMC distribution at the current point, so
    the priors may depend on other variables (a random effect's sd). Anything else raises a
    :class:`MethodError` naming the variable.
    """

    def __init__(self, model, names: list[str], why: str, initial_point: dict) -> None:
        self.kinds: dict[str, str] = {}
        self.shapes: dict[str, tuple] = {}
        outs = []
        for name in names:
            rv = model[name]
            op = rv.owner.op
            shape = tuple(np.shape(initial_point[value_name(model, rv)]))
            self.shapes[name] = shape
            if isinstance(op, NormalRV):
                self.kinds[name] = "normal"
                outs += list(rv.owner.inputs[2:4])
            elif isinstance(op, MvNormalRV):
                if len(shape) != 2:
                    raise MethodError(f"{why}: {name!r} must be levels x columns")
                self.kinds[name] = "mvnormal"
                outs += list(rv.owner.inputs[2:4])
            elif type(op).__name__ == "FlatRV":
                self.kinds[name] = "flat"
            else:
                raise MethodError(
                    f"{why}: {name!r} has a {_dist_name(op)} prior; this update needs a Normal "
                    "(or Flat) prior on fixed effects and a centered Normal or multivariate "
                    "Normal distribution of random effects"
                )
        self._fn = compile_point_fn(model, outs) if outs else None
        shared = [n for n, k in self.kinds.items() if k == "mvnormal"]
        if shared:
            vals = iter(self._fn(initial_point))
            for name, kind in self.kinds.items():
                if kind == "flat":
                    continue
                mu, cov = np.asarray(next(vals)), np.asarray(next(vals))
                if kind == "mvnormal" and (
                    mu.ndim > 1 and mu.shape[0] > 1 or cov.ndim > 2 and cov.shape[0] > 1
                ):
                    raise MethodError(
                        f"{why}: {name!r} has level-specific prior means or "
                        "covariances, which are not supported"
                    )

    def __call__(self, point: dict) -> dict[str, tuple]:
        """Per name: ``("normal", mean, precision)`` arrays of the variable's shape,
        ``("mvnormal", mean (k,), precision (k, k))`` or ``("flat", 0, 0)``."""
        vals = iter(self._fn(point) if self._fn is not None else [])
        out = {}
        for name, kind in self.kinds.items():
            shape = self.shapes[name]
            if kind == "normal":
                mu, sd = next(vals), next(vals)
                mu = np.broadcast_to(mu, shape)
                prec = np.broadcast_to(1.0 / np.asarray(sd, dtype=float) ** 2, shape)
                out[name] = ("normal", mu, prec)
            elif kind == "mvnormal":
                # one mean and covariance for all levels (checked at construction)
                mu, cov = np.asarray(next(vals)), np.asarray(next(vals))
                mu = mu.reshape(-1, mu.shape[-1])[0]
                cov = cov.reshape(-1, *cov.shape[-2:])[0]
                out[name] = ("mvnormal", mu, np.linalg.inv(cov))
            else:
                out[name] = ("flat", np.zeros(shape), np.zeros(shape))
        return out


def _dist_name(op) -> str:
    name = getattr(op, "_print_name", None)
    return name[0] if name else type(op).__name__
