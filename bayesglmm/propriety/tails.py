"""How a prior behaves at the ends of its range, which is all a propriety argument needs.

A prior on a variance :math:`\\sigma^2` is summarised by two exponents,

.. math::

    p(\\sigma^2) \\asymp (\\sigma^2)^{-(a_0+1)} \\ (\\sigma^2 \\to 0), \\qquad
    p(\\sigma^2) \\asymp (\\sigma^2)^{-(a_\\infty+1)} \\ (\\sigma^2 \\to \\infty),

in Hobert & Casella's (1996) notation. ``PowerVariance(a)`` has :math:`a_0 = a_\\infty = a`;
a uniform prior on the standard deviation (:class:`HalfFlat`) is :math:`a = -1/2`. Proper
priors are integrable at 0 (no :math:`a_0`) and have :math:`a_\\infty > 0`, infinite for the
light tails (half-normal, exponential, gamma); a half-Student-t with :math:`\\nu` degrees of
freedom on the sd has :math:`a_\\infty = \\nu/2`; an inverse gamma with shape :math:`\\alpha`
on the variance has :math:`a_\\infty = \\alpha`.

Arguments that integrate a polynomially growing bound against a proper prior also need its
moments: ``moments`` is the supremum of the orders :math:`k` with
:math:`E|\\theta|^k < \\infty` (of the coefficient, or of the standard deviation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..model.priors import (
    Cauchy,
    Exponential,
    Fixed,
    Flat,
    Gamma,
    HalfCauchy,
    HalfFlat,
    HalfNormal,
    HalfStudentT,
    InverseGamma,
    Jeffreys,
    Normal,
    PowerVariance,
    Prior,
    StudentT,
)

INF = math.inf


@dataclass(frozen=True)
class Tails:
    """Tail summary of one prior.

    Attributes
    ----------
    improper : bool
    a0 : float or None
        Exponent at 0 on the variance scale (improper priors on variances only).
    a_inf : float
        Exponent at infinity on the variance scale (``inf`` for light tails, ``nan`` when
        unknown or not a variance prior).
    moments : float
        Supremum of finite moment orders (of the sd for variance priors); ``nan`` unknown.
    """

    improper: bool
    a0: float | None
    a_inf: float
    moments: float

    @property
    def known(self) -> bool:
        return not math.isnan(self.a_inf) or not math.isnan(self.moments)


def variance_tails(prior: Prior) -> Tails:
    """Tails of a prior on a standard deviation or variance."""
    if isinstance(prior, PowerVariance | Jeffreys):
        return Tails(True, prior.exponent, prior.exponent, 0.0)
    if isinstance(prior, HalfFlat):
        return Tails(True, -0.5, -0.5, 0.0)
    if isinstance(prior, Fixed):
        return Tails(False, None, INF, INF)
    if isinstance(prior, HalfNormal | Exponential | Gamma):
        return Tails(False, None, INF, INF)
    if isinstance(prior, HalfCauchy):
        return Tails(False, None, 0.5, 1.0)
    if isinstance(prior, HalfStudentT):
        nu = float(prior.nu)
        return Tails(False, None, nu / 2.0, nu)
    if isinstance(prior, InverseGamma):
        alpha = float(prior.alpha)
        return Tails(False, None, alpha, 2.0 * alpha)
    return Tails(bool(prior.improper), None, math.nan, math.nan)


def coefficient_moments(prior: Prior) -> float:
    """Supremum of finite moment orders of a prior on a coefficient (``nan`` if unknown)."""
    if isinstance(prior, Flat):
        return 0.0
    if isinstance(prior, Fixed | Normal):
        return INF
    if isinstance(prior, Cauchy):
        return 1.0
    if isinstance(prior, StudentT):
        return float(prior.nu)
    return math.nan
