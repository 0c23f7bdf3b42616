"""Priors on the correlation or covariance matrix of a correlated random-effect term."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from scipy.special import gammaln, multigammaln

from ...errors import PriorError
from .base import PowerScaled, Prior, _fmt, _stats


def _n_draws(size) -> tuple[tuple, int]:
    shape = (size,) if isinstance(size, int | np.integer) else tuple(size)
    return shape, int(np.prod(shape, dtype=np.int64))


@dataclass(frozen=True)
class LKJ(Prior):
    """LKJ prior on the correlation matrix of a correlated random-effect term.

    .. math:: p(R) = c_k(\\eta) \\, |R|^{\\eta - 1}

    (Lewandowski, Kurowicka & Joe 2009); ``eta = 1`` is uniform over correlation matrices.
    ``sd`` is the prior of each standard deviation (default: the model's default).
    """

    eta: float = 1.0
    sd: Prior | None = None
    dist: ClassVar[str] = "LKJCholeskyCov"
    default_scale: ClassVar[str] = "correlation"
    support: ClassVar[str] = "correlation"
    positive_params: ClassVar[tuple[str, ...]] = ("eta",)
    pymc_form: ClassVar[str | None] = "correlation"
    compiled_code: ClassVar[int | None] = 20

    def params(self) -> dict:
        return {"eta": self.eta}

    def describe(self) -> str:
        sd = f", sd={self.sd.describe()}" if self.sd is not None else ""
        return f"LKJ(eta={self.eta:g}{sd})"

    def log_normalizer(self, k: int) -> float:
        """:math:`\\log c_k(\\eta)` for ``k x k`` matrices (Lewandowski, Kurowicka & Joe
        2009, section 3.2); ``log c_2(1) = -log 2``.

        PyMC's ``_lkj_normalizing_constant(eta, k)`` is this with the opposite sign (its LKJ
        log density is off by a constant, as Stan's was before stan-dev/math#628); the
        compiled density adds PyMC's value, so that it equals the PyMC model's log density.
        """
        return -self._pymc_constant(k)

    def _pymc_constant(self, k: int) -> float:
        eta, n = float(self.eta), k
        if eta == 1:
            out = float(gammaln(2.0 * np.arange(1, int((n - 1) / 2) + 1)).sum())
            if n % 2 == 1:
                out += (
                    0.25 * (n**2 - 1) * np.log(np.pi)
                    - 0.25 * (n - 1) ** 2 * np.log(2.0)
                    - (n - 1) * gammaln(int((n + 1) / 2))
                )
            else:
                out += (
                    0.25 * n * (n - 2) * np.log(np.pi)
                    + 0.25 * (3 * n**2 - 4 * n) * np.log(2.0)
                    + n * gammaln(n / 2)
                    - (n - 1) * gammaln(n)
                )
            return float(out)
        j = np.arange(1, n)
        out = -(n - 1) * gammaln(eta + 0.5 * (n - 1))
        return float(out + (0.5 * j * np.log(np.pi) + gammaln(eta + 0.5 * (n - 1 - j))).sum())

    def logpdf(self, x) -> np.ndarray:
        """Log density of correlation matrices ``x`` (..., k, k)."""
        x = np.asarray(x, dtype=float)
        _, logdet = np.linalg.slogdet(x)
        return self.log_normalizer(x.shape[-1]) + (self.eta - 1.0) * logdet

    def sample(self, rng, size, k: int) -> np.ndarray:
        """Correlation matrices (*size, k, k), by the C-vine method (partial correlations
        drawn from scaled Beta distributions; Lewandowski, Kurowicka & Joe 2009)."""
        shape, n = _n_draws(size)
        out = np.empty((n, k, k))
        for s in range(n):
            P = np.zeros((k, k))
            corr = np.eye(k)
            beta = self.eta + (k - 1) / 2.0
            for i in range(k - 1):
                beta -= 0.5
                for j in range(i + 1, k):
                    P[i, j] = 2.0 * rng.beta(beta, beta) - 1.0
                    p = P[i, j]
                    for m in range(i - 1, -1, -1):
                        p = p * np.sqrt((1 - P[m, i] ** 2) * (1 - P[m, j] ** 2)) + P[m, i] * P[m, j]
                    corr[i, j] = corr[j, i] = p
            out[s] = corr
        return out.reshape(*shape, k, k)

    def powerscaled(self, alpha: float) -> PowerScaled:
        eta = float(alpha) * (self.eta - 1.0) + 1.0
        if eta > 0:
            return PowerScaled(replace(self, eta=eta), True, "")
        return PowerScaled(None, False, f"LKJ eta {eta:.3g} <= 0: improper")

    def rescaled(self, factor: float) -> Prior:
        return self if self.sd is None else replace(self, sd=self.sd.rescaled(factor))

    def sd_priors(self, k: int) -> list[Prior] | None:
        return None if self.sd is None else [self.sd for _ in range(k)]


@dataclass(frozen=True)
class InverseWishart(Prior):
    """Inverse-Wishart prior on the **covariance matrix** of a correlated random-effect term.

    .. math:: \\Sigma \\sim \\mathrm{IW}(\\nu, \\Psi), \\qquad p(\\Sigma) \\propto
              |\\Sigma|^{-(\\nu + k + 1)/2}
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
    support: ClassVar[str] = "covariance"
    positive_params: ClassVar[tuple[str, ...]] = ("nu",)
    pymc_form: ClassVar[str | None] = "covariance"
    conjugate_step: ClassVar[str | None] = "inverse_wishart"

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

    def logpdf(self, x) -> np.ndarray:
        """Log density of covariance matrices ``x`` (..., k, k)."""
        x = np.asarray(x, dtype=float)
        k = x.shape[-1]
        nu, psi = self.matrices(k)
        _, logdet_psi = np.linalg.slogdet(psi)
        _, logdet = np.linalg.slogdet(x)
        trace = np.trace(np.linalg.solve(x, np.broadcast_to(psi, x.shape)), axis1=-2, axis2=-1)
        const = 0.5 * nu * logdet_psi - 0.5 * nu * k * math.log(2.0) - multigammaln(nu / 2, k)
        return const - 0.5 * (nu + k + 1.0) * logdet - 0.5 * trace

    def sample(self, rng, size, k: int) -> np.ndarray:
        """Covariance matrices (*size, k, k)."""
        shape, n = _n_draws(size)
        nu, psi = self.matrices(k)
        draws = _stats().invwishart.rvs(nu, psi, size=n, random_state=rng)
        return draws.reshape(*shape, k, k)

    def rescaled(self, factor: float) -> Prior:
        f = float(factor)
        arr = np.asarray(self.psi, dtype=float) * (f * f)
        return replace(self, psi=float(arr) if arr.ndim == 0 else tuple(map(tuple, arr.tolist())))

    def sd_priors(self, k: int) -> list[Prior]:
        self.matrices(k)  # checks psi's dimension here, before any fit
        return [self for _ in range(k)]
