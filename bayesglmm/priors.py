"""Prior distributions for GLMM parameters, as plain data.

A prior is a small object describing a distribution; the PyMC builder turns it into a
random variable. Priors on random-effect terms are priors on their standard deviations
(as in brms and bambi) unless the class says it acts on the variance.

Default priors (weakly informative, all proper), with ``s = 1`` for binomial, Poisson and
negative-binomial models and ``s = sd(y)`` for Gaussian ones:

* intercept and indicator (dummy) columns: ``Normal(0, 2.5 s)``;
* other fixed-effect columns ``x``: ``Normal(0, 2.5 s / sd(x))``;
* standard deviation of each random-effect column: ``HalfNormal(2.5 s)``;
* correlations of correlated random effects: ``LKJ(eta=1)`` (uniform over correlation
  matrices, as brms);
* Gaussian residual standard deviation: ``HalfNormal(2.5 s)``;
* negative-binomial shape ``alpha``: ``Gamma(0.01, 0.01)`` (as brms).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from .errors import PriorError


@dataclass(frozen=True)
class Prior:
    """Base class; subclasses name a PyMC distribution and its parameters."""

    #: PyMC distribution class name
    dist: ClassVar[str] = ""
    #: what the prior is on: "value" (coefficients), "sd", "variance" or "correlation"
    default_scale: ClassVar[str] = "value"
    #: True when the density does not integrate to one
    improper: ClassVar[bool] = False

    @property
    def scale(self) -> str:
        return getattr(self, "on", None) or self.default_scale

    def params(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "on"}

    def build(self, name: str, dims=None, shape=None):
        """Create the PyMC random variable in the current model context."""
        import pymc as pm

        cls = getattr(pm, self.dist)
        kwargs = {k: np.asarray(v) if isinstance(v, list | tuple) else v
                  for k, v in self.params().items()}
        return cls(name, **kwargs, dims=dims, shape=None if dims is not None else shape)

    def describe(self) -> str:
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def _fmt(v) -> str:
    if isinstance(v, np.ndarray | list | tuple):
        arr = np.asarray(v, dtype=float).ravel()
        if arr.size and np.allclose(arr, arr[0]):
            return f"{arr[0]:.4g}"
        return "[" + ", ".join(f"{x:.3g}" for x in arr[:4]) + (", ...]" if arr.size > 4 else "]")
    return f"{v:.4g}" if isinstance(v, float) else repr(v)


@dataclass(frozen=True)
class Normal(Prior):
    mu: float = 0.0
    sigma: float = 1.0
    dist: ClassVar[str] = "Normal"


@dataclass(frozen=True)
class StudentT(Prior):
    nu: float = 3.0
    mu: float = 0.0
    sigma: float = 1.0
    dist: ClassVar[str] = "StudentT"


@dataclass(frozen=True)
class Cauchy(Prior):
    alpha: float = 0.0
    beta: float = 1.0
    dist: ClassVar[str] = "Cauchy"


@dataclass(frozen=True)
class HalfNormal(Prior):
    sigma: float = 1.0
    dist: ClassVar[str] = "HalfNormal"
    default_scale: ClassVar[str] = "sd"


@dataclass(frozen=True)
class HalfStudentT(Prior):
    nu: float = 3.0
    sigma: float = 1.0
    dist: ClassVar[str] = "HalfStudentT"
    default_scale: ClassVar[str] = "sd"


@dataclass(frozen=True)
class HalfCauchy(Prior):
    beta: float = 1.0
    dist: ClassVar[str] = "HalfCauchy"
    default_scale: ClassVar[str] = "sd"


@dataclass(frozen=True)
class Exponential(Prior):
    lam: float = 1.0
    dist: ClassVar[str] = "Exponential"
    default_scale: ClassVar[str] = "sd"


@dataclass(frozen=True)
class Gamma(Prior):
    """Gamma prior (shape ``alpha``, rate ``beta``); on the sd unless ``scale="variance"``."""

    alpha: float = 2.0
    beta: float = 1.0
    on: str = "sd"
    dist: ClassVar[str] = "Gamma"


@dataclass(frozen=True)
class InverseGamma(Prior):
    """Inverse-gamma prior on a **variance** (the conjugate choice for Gibbs updates)."""

    alpha: float = 1.0
    beta: float = 1.0
    dist: ClassVar[str] = "InverseGamma"
    default_scale: ClassVar[str] = "variance"


@dataclass(frozen=True)
class LKJ(Prior):
    """LKJ prior on the correlation matrix of a correlated random-effect term.

    ``sd`` is the prior of each standard deviation (default: the model's default).
    """

    eta: float = 1.0
    sd: Prior | None = None
    dist: ClassVar[str] = "LKJCholeskyCov"
    default_scale: ClassVar[str] = "correlation"

    def params(self) -> dict:
        return {"eta": self.eta}

    def describe(self) -> str:
        sd = f", sd={self.sd.describe()}" if self.sd is not None else ""
        return f"LKJ(eta={self.eta:g}{sd})"


@dataclass(frozen=True)
class Fixed(Prior):
    """Hold a parameter at a known value (a standard deviation for variance terms)."""

    value: float = 1.0
    dist: ClassVar[str] = "Fixed"

    def build(self, name: str, dims=None, shape=None):
        import pymc as pm

        return pm.Data(name, np.asarray(self.value, dtype=float))

    def describe(self) -> str:
        return f"Fixed({self.value:g})"


def as_prior(value, key: str) -> Prior:
    """Accept a Prior or a number (meaning :class:`Fixed`)."""
    if isinstance(value, Prior):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Fixed(float(value))
    raise PriorError(f"prior for {key!r} must be a bayesglmm.priors object, got {value!r}")


def default_fixed_prior(column: np.ndarray, name: str, scale_y: float) -> tuple[float, float]:
    """(mu, sigma) of the default Normal prior of one fixed-effect column."""
    values = np.unique(column)
    if name == "Intercept" or (values.size <= 2 and set(values.tolist()) <= {0.0, 1.0}):
        return 0.0, 2.5 * scale_y
    sd = float(np.std(column))
    return 0.0, 2.5 * scale_y / (sd if sd > 0 else 1.0)
