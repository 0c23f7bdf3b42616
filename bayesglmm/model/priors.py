"""Prior distributions for GLMM parameters, as plain data.

A prior is a small object describing a distribution; this module imports no PyMC, and
:mod:`bayesglmm.bayes.prior_dists` turns a prior into a PyMC random variable. Priors on
random-effect terms are priors on their standard deviations (as in brms and bambi) unless
the class says it acts on the variance.

Default priors (weakly informative, all proper), with ``s = 1`` for binomial, Poisson and
negative-binomial models and ``s = sd(y)`` for Gaussian ones:

* intercept and indicator (dummy) columns: ``Normal(0, 2.5 s)``;
* other fixed-effect columns ``x``: ``Normal(0, 2.5 s / sd(x))``;
* standard deviation of each random-effect column: ``HalfNormal(2.5 s)``;
* correlations of correlated random effects: ``LKJ(eta=1)`` (uniform over correlation
  matrices, as brms);
* Gaussian residual standard deviation: ``HalfNormal(2.5 s)``;
* negative-binomial shape ``alpha``: ``Gamma(0.01, 0.01)`` (as brms).

Improper priors (:class:`Flat`, :class:`HalfFlat`, :class:`Jeffreys`,
:class:`PowerVariance`) are available for teaching and for the classical objective-Bayes
analyses; whether the posterior then exists depends on the data, and
:func:`bayesglmm.check_propriety` decides it before every Bayesian fit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from ..errors import PriorError


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
class InverseWishart(Prior):
    """Inverse-Wishart prior on the **covariance matrix** of a correlated random-effect term.

    .. math:: \\Sigma \\sim \\mathrm{IW}(\\nu, \\Psi), \\qquad
              p(\\Sigma) \\propto |\\Sigma|^{-(\\nu + k + 1)/2}
              \\exp\\{-\\tfrac12 \\operatorname{tr}(\\Psi \\Sigma^{-1})\\}

    The conjugate choice for Gibbs updates of a covariance (``method="gibbs"``); NUTS can
    sample it too. ``nu=None`` means ``k + 1`` (uniform marginal prior on each correlation);
    ``psi`` is a number (times the identity) or a k x k matrix. Each variance then has the
    marginal prior ``InverseGamma((nu - k + 1) / 2, psi_jj / 2)``.
    """

    nu: float | None = None
    psi: float | tuple = 1.0
    dist: ClassVar[str] = "InverseWishart"
    default_scale: ClassVar[str] = "covariance"

    def __post_init__(self) -> None:
        if self.nu is not None and (
            isinstance(self.nu, bool) or not isinstance(self.nu, int | float) or self.nu <= 0
        ):
            raise PriorError(f"InverseWishart(nu) needs a positive number, got {self.nu!r}")
        if isinstance(self.psi, list | tuple | np.ndarray):
            rows = np.atleast_2d(np.asarray(self.psi, dtype=float))
            object.__setattr__(self, "psi", tuple(map(tuple, rows.tolist())))
        elif isinstance(self.psi, bool) or not isinstance(self.psi, int | float) or self.psi <= 0:
            raise PriorError(
                f"InverseWishart(psi) needs a positive number or a matrix, got {self.psi!r}"
            )

    def matrices(self, k: int) -> tuple[float, np.ndarray]:
        """``(nu, Psi)`` for a term with ``k`` columns, checked."""
        nu = float(k + 1 if self.nu is None else self.nu)
        psi = np.asarray(self.psi, dtype=float)
        psi = psi * np.eye(k) if psi.ndim == 0 else psi
        if psi.shape != (k, k):
            raise PriorError(f"{self.describe()}: psi must be {k} x {k} for this term")
        if not np.allclose(psi, psi.T) or np.any(np.linalg.eigvalsh(psi) <= 0):
            raise PriorError(f"{self.describe()}: psi must be symmetric positive definite")
        if nu <= k - 1:
            raise PriorError(f"{self.describe()}: nu must exceed k - 1 = {k - 1}")
        return nu, psi

    def describe(self) -> str:
        nu = "k+1" if self.nu is None else f"{self.nu:g}"
        return f"InverseWishart(nu={nu}, psi={_fmt(self.psi)})"


@dataclass(frozen=True)
class Fixed(Prior):
    """Hold a parameter at a known value (a standard deviation for variance terms)."""

    value: float = 1.0
    dist: ClassVar[str] = "Fixed"

    def describe(self) -> str:
        return f"Fixed({self.value:g})"


# --------------------------------------------------------------------------------------
# improper priors: a posterior built on them may not exist; bayesglmm.propriety checks it
# before every Bayesian fit.


@dataclass(frozen=True)
class Flat(Prior):
    """Improper uniform prior on a fixed effect, :math:`p(\\beta) \\propto 1`.

    Proper only in combination with data that identify the coefficient: for binary and
    binomial responses, data without (quasi-)complete separation (Chen & Shao 2001).
    """

    dist: ClassVar[str] = "Flat"
    improper: ClassVar[bool] = True


@dataclass(frozen=True)
class HalfFlat(Prior):
    """Improper uniform prior on a standard deviation, :math:`p(\\sigma) \\propto 1`.

    On the variance this is :math:`p(\\sigma^2) \\propto (\\sigma^2)^{-1/2}`, i.e.
    ``PowerVariance(a=-0.5)`` (Gelman 2006 recommends it for a moderate number of groups).
    """

    dist: ClassVar[str] = "HalfFlat"
    default_scale: ClassVar[str] = "sd"
    improper: ClassVar[bool] = True


@dataclass(frozen=True)
class PowerVariance(Prior):
    """Hobert & Casella's (1996) power prior on a **variance**.

    .. math:: p(\\sigma^2) \\propto (\\sigma^2)^{-(a+1)}, \\qquad \\sigma^2 > 0.

    ``a = 0`` is :class:`Jeffreys`, ``a = -1/2`` is :class:`HalfFlat` (uniform on the sd),
    ``a = -1`` is uniform on the variance. Improper for every ``a``. Built as an improper
    flat density on the variance plus a ``pm.Potential`` holding the log density.
    """

    a: float = -0.5
    dist: ClassVar[str] = "PowerVariance"
    default_scale: ClassVar[str] = "variance"
    improper: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if isinstance(self.a, bool) or not isinstance(self.a, int | float):
            raise PriorError(f"PowerVariance(a) needs a real number a, got {self.a!r}")
        if not np.isfinite(self.a):
            raise PriorError(f"PowerVariance(a) needs a finite a, got {self.a!r}")

    @property
    def exponent(self) -> float:
        """``a`` in :math:`(\\sigma^2)^{-(a+1)}`."""
        return float(self.a)

    def describe(self) -> str:
        return f"PowerVariance(a={self.exponent:g})"


@dataclass(frozen=True)
class Jeffreys(Prior):
    """Jeffreys' prior on a **variance**, :math:`p(\\sigma^2) \\propto 1/\\sigma^2`.

    Uniform on :math:`\\log \\sigma^2` (``PowerVariance(a=0)``). For a variance component
    of a mixed model the posterior is then *always* improper: the marginal likelihood stays
    bounded away from zero as :math:`\\sigma^2 \\to 0` (Hobert & Casella 1996; Natarajan &
    Kass 2000). For a Gaussian residual variance it is the usual choice, and proper when
    the data leave residual degrees of freedom.
    """

    dist: ClassVar[str] = "Jeffreys"
    default_scale: ClassVar[str] = "variance"
    improper: ClassVar[bool] = True

    @property
    def exponent(self) -> float:
        return 0.0

    def describe(self) -> str:
        return "Jeffreys()"


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
