"""Priors on a standard deviation or a variance: the proper half-distributions, exponential,
gamma and inverse gamma, and the improper uniform, power and Jeffreys priors.

Power-scaling by ``alpha`` (:math:`p(\\theta)^\\alpha` on the declared scale) stays in the
family for most of them:

=====================  ==================================================  =====================
prior                  power-scaled by ``alpha``                           proper when
=====================  ==================================================  =====================
HalfNormal(s)          HalfNormal(s / sqrt(alpha))                         always
Exponential(lam)       Exponential(alpha lam)                              always
Gamma(a, b)            Gamma(alpha (a - 1) + 1, alpha b)                   alpha (a - 1) + 1 > 0
InverseGamma(a, b)     InverseGamma(alpha (a + 1) - 1, alpha b)            alpha (a + 1) > 1
PowerVariance(a)       PowerVariance(alpha (a + 1) - 1)                    never (improper)
Jeffreys()             PowerVariance(alpha - 1)                            never (improper)
HalfFlat()             unchanged (log density 0)                           never (improper)
HalfStudentT(nu, s)    not a half-t; tails ~ x^-(alpha (nu + 1))           alpha (nu + 1) > 1
HalfCauchy(s)          as half-t with nu = 1                               alpha > 1/2
=====================  ==================================================  =====================

Doubling the scale of a half-normal prior is power-scaling it by ``alpha = 1/4``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from ...errors import PriorError
from .base import INF, LN2, PowerScaled, Prior, Tails, _arr, _mul, _stats, _tail_note


@dataclass(frozen=True)
class HalfNormal(Prior):
    """Half-normal prior on a standard deviation, scale ``sigma``."""

    sigma: float = 1.0
    dist: ClassVar[str] = "HalfNormal"
    default_scale: ClassVar[str] = "sd"
    support: ClassVar[str] = "positive"
    positive_params: ClassVar[tuple[str, ...]] = ("sigma",)
    compiled_code: ClassVar[int | None] = 10

    def logpdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return _stats().halfnorm.logpdf(x, scale=_arr(self.sigma, x))

    def sample(self, rng, size) -> np.ndarray:
        return _stats().halfnorm.rvs(scale=np.asarray(self.sigma), size=size, random_state=rng)

    def tails(self) -> Tails:
        return Tails(False, None, INF, INF)

    def powerscaled(self, alpha: float) -> PowerScaled:
        a = float(alpha)
        return PowerScaled(replace(self, sigma=_mul(self.sigma, 1.0 / np.sqrt(a))), True, "")

    def rescaled(self, factor: float) -> Prior:
        return replace(self, sigma=_mul(self.sigma, float(factor)))

    def as_half_normal(self):
        return self.sigma

    def scalar_log_kernel(self):
        sigma = self.sigma
        return lambda x, lx: -0.5 * (x / sigma) ** 2


@dataclass(frozen=True)
class HalfStudentT(Prior):
    """Half-Student-t prior on a standard deviation, ``nu`` degrees of freedom, scale
    ``sigma``; on the variance its tail exponent is :math:`a_\\infty = \\nu/2`."""

    nu: float = 3.0
    sigma: float = 1.0
    dist: ClassVar[str] = "HalfStudentT"
    default_scale: ClassVar[str] = "sd"
    support: ClassVar[str] = "positive"
    positive_params: ClassVar[tuple[str, ...]] = ("nu", "sigma")
    compiled_code: ClassVar[int | None] = 11

    def logpdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        out = LN2 + _stats().t.logpdf(x, self.nu, 0.0, self.sigma)
        return np.where(x >= 0, out, -np.inf)

    def sample(self, rng, size) -> np.ndarray:
        return np.abs(_stats().t.rvs(self.nu, 0.0, self.sigma, size=size, random_state=rng))

    def tails(self) -> Tails:
        nu = float(self.nu)
        return Tails(False, None, nu / 2.0, nu)

    def powerscaled(self, alpha: float) -> PowerScaled:
        return _tail_note(float(alpha), float(self.nu))

    def rescaled(self, factor: float) -> Prior:
        return replace(self, sigma=_mul(self.sigma, float(factor)))

    def scalar_log_kernel(self):
        nu, sigma = self.nu, self.sigma
        return lambda x, lx: -0.5 * (nu + 1.0) * math.log1p((x / sigma) ** 2 / nu)


@dataclass(frozen=True)
class HalfCauchy(Prior):
    """Half-Cauchy prior on a standard deviation, scale ``beta`` (Gelman 2006)."""

    beta: float = 1.0
    dist: ClassVar[str] = "HalfCauchy"
    default_scale: ClassVar[str] = "sd"
    support: ClassVar[str] = "positive"
    positive_params: ClassVar[tuple[str, ...]] = ("beta",)
    compiled_code: ClassVar[int | None] = 12

    def logpdf(self, x) -> np.ndarray:
        return _stats().halfcauchy.logpdf(np.asarray(x, dtype=float), scale=self.beta)

    def sample(self, rng, size) -> np.ndarray:
        return _stats().halfcauchy.rvs(scale=self.beta, size=size, random_state=rng)

    def tails(self) -> Tails:
        return Tails(False, None, 0.5, 1.0)

    def powerscaled(self, alpha: float) -> PowerScaled:
        return _tail_note(float(alpha), 1.0)

    def rescaled(self, factor: float) -> Prior:
        return replace(self, beta=self.beta * float(factor))

    def scalar_log_kernel(self):
        beta = self.beta
        return lambda x, lx: -math.log1p((x / beta) ** 2)


@dataclass(frozen=True)
class Exponential(Prior):
    """Exponential prior on a standard deviation, rate ``lam``."""

    lam: float = 1.0
    dist: ClassVar[str] = "Exponential"
    default_scale: ClassVar[str] = "sd"
    support: ClassVar[str] = "positive"
    positive_params: ClassVar[tuple[str, ...]] = ("lam",)
    compiled_code: ClassVar[int | None] = 13

    def logpdf(self, x) -> np.ndarray:
        return _stats().expon.logpdf(np.asarray(x, dtype=float), scale=1.0 / self.lam)

    def sample(self, rng, size) -> np.ndarray:
        return _stats().expon.rvs(scale=1.0 / self.lam, size=size, random_state=rng)

    def tails(self) -> Tails:
        return Tails(False, None, INF, INF)

    def powerscaled(self, alpha: float) -> PowerScaled:
        return PowerScaled(replace(self, lam=self.lam * float(alpha)), True, "")

    def rescaled(self, factor: float) -> Prior:
        return replace(self, lam=self.lam / float(factor))

    def scalar_log_kernel(self):
        lam = self.lam
        return lambda x, lx: -lam * x


@dataclass(frozen=True)
class Gamma(Prior):
    """Gamma prior (shape ``alpha``, rate ``beta``); on the sd unless ``on="variance"``
    (or ``on="value"``, for a positive parameter such as the negative-binomial shape)."""

    alpha: float = 2.0
    beta: float = 1.0
    on: str = "sd"
    dist: ClassVar[str] = "Gamma"
    support: ClassVar[str] = "positive"
    positive_params: ClassVar[tuple[str, ...]] = ("alpha", "beta")
    compiled_code: ClassVar[int | None] = 14

    def logpdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return _stats().gamma.logpdf(x, self.alpha, scale=1.0 / self.beta)

    def sample(self, rng, size) -> np.ndarray:
        stats = _stats()
        return stats.gamma.rvs(self.alpha, scale=1.0 / self.beta, size=size, random_state=rng)

    def tails(self) -> Tails:
        return Tails(False, None, INF, INF)

    def powerscaled(self, alpha: float) -> PowerScaled:
        a = float(alpha)
        shape = a * (self.alpha - 1.0) + 1.0
        if shape > 0:
            return PowerScaled(replace(self, alpha=shape, beta=self.beta * a), True, "")
        return PowerScaled(None, False, f"Gamma shape {shape:.3g} <= 0: improper at 0")

    def rescaled(self, factor: float) -> Prior:
        f = float(factor)
        return replace(self, beta=self.beta / (f * f if self.scale == "variance" else f))

    def scalar_log_kernel(self):
        alpha, beta = self.alpha, self.beta
        return lambda x, lx: (alpha - 1.0) * lx - beta * x


@dataclass(frozen=True)
class InverseGamma(Prior):
    """Inverse-gamma prior on a **variance** (the conjugate choice for Gibbs updates)."""

    alpha: float = 1.0
    beta: float = 1.0
    dist: ClassVar[str] = "InverseGamma"
    default_scale: ClassVar[str] = "variance"
    support: ClassVar[str] = "positive"
    positive_params: ClassVar[tuple[str, ...]] = ("alpha", "beta")
    compiled_code: ClassVar[int | None] = 15
    conjugate_step: ClassVar[str | None] = "inverse_gamma"

    def logpdf(self, x) -> np.ndarray:
        return _stats().invgamma.logpdf(np.asarray(x, dtype=float), self.alpha, scale=self.beta)

    def sample(self, rng, size) -> np.ndarray:
        return _stats().invgamma.rvs(self.alpha, scale=self.beta, size=size, random_state=rng)

    def tails(self) -> Tails:
        alpha = float(self.alpha)
        return Tails(False, None, alpha, 2.0 * alpha)

    def powerscaled(self, alpha: float) -> PowerScaled:
        a = float(alpha)
        shape = a * (self.alpha + 1.0) - 1.0
        if shape > 0:
            return PowerScaled(InverseGamma(shape, self.beta * a), True, "")
        return PowerScaled(None, False, f"inverse-gamma shape {shape:.3g} <= 0: improper tail")

    def rescaled(self, factor: float) -> Prior:
        f = float(factor)
        return replace(self, beta=self.beta * f * f)

    def scalar_log_kernel(self):
        alpha, beta = self.alpha, self.beta
        return lambda x, lx: -(alpha + 1.0) * lx - beta / x


# --------------------------------------------------------------------------------------
# improper priors: a posterior built on them may not exist; bayesglmm.propriety checks it
# before every Bayesian fit.


@dataclass(frozen=True)
class HalfFlat(Prior):
    """Improper uniform prior on a standard deviation, :math:`p(\\sigma) \\propto 1`.

    On the variance this is :math:`p(\\sigma^2) \\propto (\\sigma^2)^{-1/2}`, i.e.
    ``PowerVariance(a=-0.5)`` (Gelman 2006 recommends it for a moderate number of groups).
    """

    dist: ClassVar[str] = "HalfFlat"
    default_scale: ClassVar[str] = "sd"
    support: ClassVar[str] = "positive"
    improper: ClassVar[bool] = True
    flat: ClassVar[bool] = True
    compiled_code: ClassVar[int | None] = 16

    def logpdf(self, x) -> np.ndarray:
        return np.where(np.asarray(x, dtype=float) >= 0, 0.0, -np.inf)

    def sample(self, rng, size) -> np.ndarray:
        self._refuse_draws()

    def tails(self) -> Tails:
        return Tails(True, -0.5, -0.5, 0.0)

    def powerscaled(self, alpha: float) -> PowerScaled:
        return PowerScaled(self, False, "flat: power-scaling leaves it unchanged")

    def rescaled(self, factor: float) -> Prior:
        return self

    def scalar_log_kernel(self):
        return lambda x, lx: 0.0


@dataclass(frozen=True)
class _PowerLaw(Prior):
    """:math:`p(\\sigma^2) \\propto (\\sigma^2)^{-(a+1)}` on a variance, ``a = exponent``;
    improper for every ``a``, scale-free, and closed under power-scaling."""

    default_scale: ClassVar[str] = "variance"
    support: ClassVar[str] = "positive"
    improper: ClassVar[bool] = True
    pymc_form: ClassVar[str | None] = "power"

    @property
    def exponent(self) -> float:
        raise NotImplementedError

    def logpdf(self, x) -> np.ndarray:
        return -(self.exponent + 1.0) * np.log(np.asarray(x, dtype=float))

    def sample(self, rng, size) -> np.ndarray:
        self._refuse_draws()

    def tails(self) -> Tails:
        return Tails(True, self.exponent, self.exponent, 0.0)

    def powerscaled(self, alpha: float) -> PowerScaled:
        new_a = float(alpha) * (self.exponent + 1.0) - 1.0
        return PowerScaled(PowerVariance(new_a), False, f"PowerVariance(a={new_a:.4g})")

    def rescaled(self, factor: float) -> Prior:
        return self

    def scalar_log_kernel(self):
        a = self.exponent
        return lambda x, lx: -(a + 1.0) * lx


@dataclass(frozen=True)
class PowerVariance(_PowerLaw):
    """Hobert & Casella's (1996) power prior on a **variance**.

    .. math:: p(\\sigma^2) \\propto (\\sigma^2)^{-(a+1)}, \\qquad \\sigma^2 > 0.

    ``a = 0`` is :class:`Jeffreys`, ``a = -1/2`` is :class:`HalfFlat` (uniform on the sd),
    ``a = -1`` is uniform on the variance. Improper for every ``a``. Built as an improper
    flat density on the variance plus a ``pm.Potential`` holding the log density.
    """

    a: float = -0.5
    dist: ClassVar[str] = "PowerVariance"

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
class Jeffreys(_PowerLaw):
    """Jeffreys' prior on a **variance**, :math:`p(\\sigma^2) \\propto 1/\\sigma^2`.

    Uniform on :math:`\\log \\sigma^2` (``PowerVariance(a=0)``). For a variance component
    of a mixed model the posterior is then *always* improper: the marginal likelihood stays
    bounded away from zero as :math:`\\sigma^2 \\to 0` (Hobert & Casella 1996; Natarajan &
    Kass 2000). For a Gaussian residual variance it is the usual choice, and proper when
    the data leave residual degrees of freedom.
    """

    dist: ClassVar[str] = "Jeffreys"

    @property
    def exponent(self) -> float:
        return 0.0

    def describe(self) -> str:
        return "Jeffreys()"
