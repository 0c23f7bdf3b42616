"""What every prior declares and computes: the :class:`Prior` protocol.

A prior is a small frozen dataclass (its parameters) that owns its math, in NumPy/SciPy:

* :meth:`Prior.logpdf` on the scale it is declared (a coefficient, a standard deviation,
  a variance, a correlation or covariance matrix), and :meth:`Prior.sample`;
* :meth:`Prior.tails`: how the density behaves at the ends of its range (a
  :class:`Tails`), all the posterior-propriety check needs;
* :meth:`Prior.powerscaled` (:math:`p(\\theta)^\\alpha`, for power-scaling sensitivity)
  and :meth:`Prior.rescaled` (the prior of a parameter whose unit changes).

Engines never switch on the class: they ask a declared capability and refuse a prior
without it, with the reason. ``pymc_form`` says how the PyMC model holds the prior
(:mod:`bayesglmm.bayes.prior_dists` builds each form); ``compiled_code`` is its code in the
compiled densities (:mod:`bayesglmm.bayes.density`); :meth:`Prior.as_normal` and
:meth:`Prior.as_half_normal` serve the Gaussian Gibbs updates and the specialised kernel;
``conjugate_step`` names the conjugate Gibbs update of a variance or covariance prior;
:meth:`Prior.scalar_log_kernel` is a plain-float form for per-draw loops.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import ClassVar, NamedTuple

import numpy as np

from ...errors import PriorError

INF = math.inf
NAN = math.nan
LN2 = float(np.log(2.0))


@dataclass(frozen=True)
class Tails:
    """How a prior behaves at the ends of its range, which is all a propriety argument needs.

    A prior on a variance :math:`\\sigma^2` is summarised by two exponents,

    .. math::

        p(\\sigma^2) \\asymp (\\sigma^2)^{-(a_0+1)} \\ (\\sigma^2 \\to 0), \\qquad
        p(\\sigma^2) \\asymp (\\sigma^2)^{-(a_\\infty+1)} \\ (\\sigma^2 \\to \\infty),

    in Hobert & Casella's (1996) notation, whatever scale the prior is declared on (a prior
    on the sd is read on the variance). ``PowerVariance(a)`` has :math:`a_0 = a_\\infty = a`;
    a uniform prior on the standard deviation is :math:`a = -1/2`. Proper priors are
    integrable at 0 (no :math:`a_0`) and have :math:`a_\\infty > 0`, infinite for light
    tails (half-normal, exponential, gamma).

    Arguments that integrate a polynomially growing bound against a proper prior also need
    its moments: ``moments`` is the supremum of the orders :math:`k` with
    :math:`E|\\theta|^k < \\infty`, of the coefficient for a prior on a coefficient, of the
    standard deviation for a prior on an sd or a variance (0 for improper priors).

    Attributes
    ----------
    improper : bool
    a0 : float or None
        Exponent at 0 on the variance scale (improper priors on variances only).
    a_inf : float
        Exponent at infinity on the variance scale (``inf`` for light tails, ``nan`` when
        unknown or not a variance prior).
    moments : float
        Supremum of finite moment orders; ``nan`` unknown.
    """

    improper: bool
    a0: float | None
    a_inf: float
    moments: float

    @property
    def known(self) -> bool:
        return not math.isnan(self.a_inf) or not math.isnan(self.moments)


class PowerScaled(NamedTuple):
    """:math:`p(\\theta)^\\alpha` of a prior: the prior it is (None when it has no named
    form), whether it is proper, and a note (empty when there is nothing to say)."""

    prior: Prior | None
    proper: bool
    note: str


def _stats():
    from scipy import stats  # imported when used: scipy.stats takes a second to import

    return stats


def _arr(v, x):
    """A parameter (a number or one per column) broadcast against draws ``x`` (..., k)."""
    a = np.asarray(v, dtype=float)
    return a if a.ndim == 0 else np.broadcast_to(a, x.shape[-a.ndim :])


def _mul(v, f):
    if isinstance(v, tuple | list):
        return tuple(float(x) * f for x in v)
    return float(v) * f


def _fmt(v) -> str:
    if isinstance(v, np.ndarray | list | tuple):
        arr = np.asarray(v, dtype=float).ravel()
        if arr.size and np.allclose(arr, arr[0]):
            return f"{arr[0]:.4g}"
        return "[" + ", ".join(f"{x:.3g}" for x in arr[:4]) + (", ...]" if arr.size > 4 else "]")
    return f"{v:.4g}" if isinstance(v, float) else repr(v)


def _tail_note(alpha: float, order: float) -> PowerScaled:
    """Power-scaling a density with tails ``x^-(order + 1)``: integrable when
    ``alpha (order + 1) > 1``; no named form."""
    rate = alpha * (order + 1.0)
    ok = rate > 1.0
    return PowerScaled(None, ok, "" if ok else f"tails x^-{rate:.3g}: not integrable")


@dataclass(frozen=True)
class Prior:
    """Base class of every prior; a subclass holds its parameters and owns its math.

    Class attributes (declared capabilities)
    -----------------------------------------
    dist : str
        Name of the PyMC distribution taking ``params()`` (for ``pymc_form ==
        "distribution"``), else a label.
    default_scale : str
        What the prior is on: ``"value"`` (a coefficient), ``"sd"``, ``"variance"``,
        ``"correlation"`` or ``"covariance"``; see :attr:`scale`.
    improper : bool
        The density does not integrate to one.
    flat : bool
        The log density is constant on the support (``Flat``, ``HalfFlat``).
    point_mass : bool
        The prior holds its parameter at one value (no density; fits any parameter).
    support : str
        ``"real"``, ``"positive"``, ``"correlation"``, ``"covariance"`` or ``"point"``.
    positive_params : tuple of str
        Parameters that must be positive (checked before every Bayesian fit).
    pymc_form : str or None
        How the PyMC model holds the prior: ``"distribution"`` (the PyMC distribution
        ``dist`` with ``params()``), ``"constant"`` (``params()["value"]`` as data),
        ``"power"`` (a flat variable on (0, inf) plus ``-(exponent + 1) log x`` as a
        Potential), ``"correlation"`` (the LKJ density of a correlated term),
        ``"covariance"`` (a packed Cholesky factor); None: no PyMC form.
    compiled_code : int or None
        Code of the density in :mod:`bayesglmm.bayes.density` (parameters in
        ``params()`` order); None: the compiled densities refuse the prior.
    conjugate_step : str or None
        The conjugate Gibbs update the prior allows (``"inverse_gamma"`` for a variance,
        ``"inverse_wishart"`` for a covariance).
    """

    dist: ClassVar[str] = ""
    default_scale: ClassVar[str] = "value"
    improper: ClassVar[bool] = False
    flat: ClassVar[bool] = False
    point_mass: ClassVar[bool] = False
    support: ClassVar[str] = "real"
    positive_params: ClassVar[tuple[str, ...]] = ()
    pymc_form: ClassVar[str | None] = "distribution"
    compiled_code: ClassVar[int | None] = None
    conjugate_step: ClassVar[str | None] = None

    @property
    def scale(self) -> str:
        return getattr(self, "on", None) or self.default_scale

    def params(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "on"}

    def describe(self) -> str:
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def nonpositive_parameter(self) -> str | None:
        """The first parameter that must be positive and is not (None when all are)."""
        for name, value in self.params().items():
            if name in self.positive_params and isinstance(value, int | float | tuple | list):
                if not np.all(np.asarray(value, dtype=float) > 0):
                    return name
        return None

    # ------------------------------------------------------------------ the math
    def logpdf(self, x) -> np.ndarray:
        """Log density at ``x`` on the declared scale (normalized when proper)."""
        raise NotImplementedError(f"{type(self).__name__} defines no logpdf")

    def sample(self, rng: np.random.Generator, size) -> np.ndarray:
        """Draws on the declared scale; raises :class:`PriorError` when improper."""
        raise NotImplementedError(f"{type(self).__name__} defines no sample")

    def _refuse_draws(self):
        raise PriorError(f"{self.describe()} is improper")

    def tails(self) -> Tails:
        """Tail exponents and moments (see :class:`Tails`); unknown by default."""
        return Tails(bool(self.improper), None, NAN, NAN)

    def powerscaled(self, alpha: float) -> PowerScaled:
        """:math:`p(\\theta)^\\alpha` on the declared scale, as a prior where it has one."""
        return PowerScaled(None, True, f"{self.describe()}: no power-scaled form")

    def rescaled(self, factor: float) -> Prior:
        """The prior of the parameter when its unit changes by ``factor``: of
        ``factor * theta`` for a coefficient or an sd, ``factor**2 * theta`` for a
        variance or a covariance matrix. Scale-free priors come back unchanged."""
        raise NotImplementedError(f"{type(self).__name__} defines no rescaled form")

    # ------------------------------------------------------------------ capabilities
    def as_normal(self) -> tuple | None:
        """``(mean, sd)`` when the prior is a normal density on the real line (``sd =
        inf``: flat), for Gaussian updates and the specialised compiled kernel."""
        return None

    def as_half_normal(self):
        """The scale ``sigma`` when the prior is a half-normal density on (0, inf)."""
        return None

    def scalar_log_kernel(self) -> Callable[[float, float], float] | None:
        """``(x, log x) -> log p(x)`` up to an additive constant at one positive ``x``, in
        plain float math for per-draw loops; None when the prior has none."""
        return None

    def sd_priors(self, k: int) -> list[Prior] | None:
        """For a prior on a term's correlations or covariance: the priors it sets on the
        term's ``k`` standard deviations (None: it leaves them as they are)."""
        return None


@dataclass(frozen=True)
class Fixed(Prior):
    """Hold a parameter at a known value (a standard deviation for variance terms).

    A point mass: :meth:`logpdf` is 0 at the value and ``-inf`` elsewhere; power-scaling
    leaves it as it is, and so does :meth:`rescaled` (a held value is not a prior scale).
    """

    value: float = 1.0
    dist: ClassVar[str] = "Fixed"
    point_mass: ClassVar[bool] = True
    support: ClassVar[str] = "point"
    pymc_form: ClassVar[str | None] = "constant"

    def describe(self) -> str:
        return f"Fixed({self.value:g})"

    def logpdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.where(x == float(self.value), 0.0, -np.inf)

    def sample(self, rng, size) -> np.ndarray:
        return np.full(size, float(self.value))

    def tails(self) -> Tails:
        return Tails(False, None, INF, INF)

    def powerscaled(self, alpha: float) -> PowerScaled:
        return PowerScaled(self, True, "")

    def rescaled(self, factor: float) -> Prior:
        return self
