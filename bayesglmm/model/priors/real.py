"""Priors on a coefficient (the real line): Normal, Student-t, Cauchy, and the flat prior."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from .base import INF, NAN, PowerScaled, Prior, Tails, _arr, _mul, _stats, _tail_note


@dataclass(frozen=True)
class Normal(Prior):
    """Normal prior, mean ``mu`` and standard deviation ``sigma`` (a number, or one per
    column of a fixed-effect term). Power-scaled by ``alpha``: ``Normal(mu, sigma /
    sqrt(alpha))``."""

    mu: float = 0.0
    sigma: float = 1.0
    dist: ClassVar[str] = "Normal"
    positive_params: ClassVar[tuple[str, ...]] = ("sigma",)
    compiled_code: ClassVar[int | None] = 0

    def logpdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return _stats().norm.logpdf(x, _arr(self.mu, x), _arr(self.sigma, x))

    def sample(self, rng, size) -> np.ndarray:
        mu, sigma = np.asarray(self.mu), np.asarray(self.sigma)
        return _stats().norm.rvs(mu, sigma, size=size, random_state=rng)

    def tails(self) -> Tails:
        return Tails(False, None, NAN, INF)

    def powerscaled(self, alpha: float) -> PowerScaled:
        a = float(alpha)
        return PowerScaled(replace(self, sigma=_mul(self.sigma, 1.0 / np.sqrt(a))), True, "")

    def rescaled(self, factor: float) -> Prior:
        f = float(factor)
        return replace(self, mu=_mul(self.mu, f), sigma=_mul(self.sigma, f))

    def as_normal(self) -> tuple:
        return self.mu, self.sigma


@dataclass(frozen=True)
class StudentT(Prior):
    """Student-t prior, ``nu`` degrees of freedom, location ``mu``, scale ``sigma``.

    Power-scaling gives no Student-t: the tails become :math:`|x|^{-\\alpha(\\nu+1)}`,
    integrable when :math:`\\alpha(\\nu + 1) > 1`.
    """

    nu: float = 3.0
    mu: float = 0.0
    sigma: float = 1.0
    dist: ClassVar[str] = "StudentT"
    positive_params: ClassVar[tuple[str, ...]] = ("nu", "sigma")
    compiled_code: ClassVar[int | None] = 1

    def logpdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return _stats().t.logpdf(x, self.nu, _arr(self.mu, x), _arr(self.sigma, x))

    def sample(self, rng, size) -> np.ndarray:
        mu, sigma = np.asarray(self.mu), np.asarray(self.sigma)
        return _stats().t.rvs(self.nu, mu, sigma, size=size, random_state=rng)

    def tails(self) -> Tails:
        return Tails(False, None, NAN, float(self.nu))

    def powerscaled(self, alpha: float) -> PowerScaled:
        return _tail_note(float(alpha), float(self.nu))

    def rescaled(self, factor: float) -> Prior:
        f = float(factor)
        return replace(self, mu=_mul(self.mu, f), sigma=_mul(self.sigma, f))


@dataclass(frozen=True)
class Cauchy(Prior):
    """Cauchy prior, location ``alpha``, scale ``beta`` (PyMC's names); the Student-t with
    one degree of freedom."""

    alpha: float = 0.0
    beta: float = 1.0
    dist: ClassVar[str] = "Cauchy"
    positive_params: ClassVar[tuple[str, ...]] = ("beta",)
    compiled_code: ClassVar[int | None] = 2

    def logpdf(self, x) -> np.ndarray:
        return _stats().cauchy.logpdf(np.asarray(x, dtype=float), self.alpha, self.beta)

    def sample(self, rng, size) -> np.ndarray:
        return _stats().cauchy.rvs(self.alpha, self.beta, size=size, random_state=rng)

    def tails(self) -> Tails:
        return Tails(False, None, NAN, 1.0)

    def powerscaled(self, alpha: float) -> PowerScaled:
        return _tail_note(float(alpha), 1.0)

    def rescaled(self, factor: float) -> Prior:
        f = float(factor)
        return replace(self, alpha=self.alpha * f, beta=self.beta * f)


@dataclass(frozen=True)
class Flat(Prior):
    """Improper uniform prior on a fixed effect, :math:`p(\\beta) \\propto 1`.

    Proper only in combination with data that identify the coefficient: for binary and
    binomial responses, data without (quasi-)complete separation (Chen & Shao 2001).
    """

    dist: ClassVar[str] = "Flat"
    improper: ClassVar[bool] = True
    flat: ClassVar[bool] = True
    compiled_code: ClassVar[int | None] = 3

    def logpdf(self, x) -> np.ndarray:
        return np.zeros_like(np.asarray(x, dtype=float))

    def sample(self, rng, size) -> np.ndarray:
        self._refuse_draws()

    def tails(self) -> Tails:
        return Tails(True, None, NAN, 0.0)

    def powerscaled(self, alpha: float) -> PowerScaled:
        return PowerScaled(self, False, "flat: power-scaling leaves it unchanged")

    def rescaled(self, factor: float) -> Prior:
        return self

    def as_normal(self) -> tuple:
        return 0.0, INF
