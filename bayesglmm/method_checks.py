"""Rules across a method's options, and the memory its sizes need, checked before a fit runs.

The method records (:mod:`bayesglmm.methods`) declare, besides each option's own check, the
rules that tie options to each other and to the model (:class:`CrossCheck`: ``mc_size`` not
above ``mc_max``, no ``n_sim`` where the expectation is computed by quadrature, ...) and a
``memory(design, options) -> bytes`` estimate of what the fit's sizes make it allocate.
:func:`check_fit` runs both right after the options are resolved, so every way into a fit
(``GLMM.fit``, ``compare``, the CLI, the studies) refuses, in one line naming the options, a
contradiction or a size that cannot fit in the memory available, before anything is built.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ._warn import warn
from .errors import OptionError

#: bytes of one float64
_F8 = 8


@dataclass(frozen=True)
class CrossCheck:
    """One rule across options: ``text`` for people, ``refuse(design, given, options)`` the
    one-line reason the options break it (None when they keep it). ``given`` holds the
    options the user passed, ``options`` every option (defaults filled in)."""

    text: str
    refuse: Callable[[object, Mapping, Mapping], str | None]


# ------------------------------------------------------------------------------------------
# rules across options


def _mc_sizes(design, given, options) -> str | None:
    m, most = options.get("mc_size"), options.get("mc_max")
    if m is not None and most is not None and m > most:
        return (
            f"mc_size={m} is above mc_max={most}: the Monte Carlo sample size would start "
            "beyond its largest allowed value; lower mc_size or raise mc_max"
        )
    return None


#: the (family, link) pairs whose random effects MCEM/MCNR's ``e_step="gibbs"`` draws by data
#: augmentation (Polya-Gamma for the logit link, Albert-Chib for the probit link)
GIBBS_E_STEP_LINKS = (("binomial", "logit"), ("binomial", "probit"))


def gibbs_e_step_refusal(family: str, link: str) -> str | None:
    """Why ``e_step="gibbs"`` cannot sample this family and link (None: it can)."""
    if (family, link) in GIBBS_E_STEP_LINKS:
        return None
    return (
        f"e_step='gibbs' draws the random effects by Polya-Gamma (binomial/logit) or "
        f"Albert-Chib (binomial/probit) augmentation; this model is {family}/{link}: use "
        "e_step='mh' or 'importance'"
    )


def _gibbs_e_step(design, given, options) -> str | None:
    if options.get("e_step") != "gibbs":
        return None
    return gibbs_e_step_refusal(design.family.name, design.family.link.name)


def moment_expectation(design, expectation: str) -> str:
    """``"quadrature"`` or ``"simulation"``: what ee/ee2's ``expectation`` resolves to
    (``"auto"``: quadrature for one random-effect factor, as the engine decides)."""
    if expectation == "auto":
        return "quadrature" if len(design.random) == 1 else "simulation"
    return expectation


def _moment_sizes(design, given, options) -> str | None:
    how = moment_expectation(design, options["expectation"])
    why = "" if options["expectation"] != "auto" else " (expectation='auto' on this model)"
    if how == "quadrature" and "n_sim" in given:
        return (
            f"n_sim={given['n_sim']} sets the Monte Carlo draws of expectation='simulation', "
            f"but E(S) is computed by quadrature{why}, which ignores it: drop n_sim or pass "
            "expectation='simulation'"
        )
    if how == "simulation" and "n_quad" in given:
        return (
            f"n_quad={given['n_quad']} sets the nodes of expectation='quadrature', but E(S) "
            f"is computed by simulation{why}, which ignores it: drop n_quad or pass "
            "expectation='quadrature'"
        )
    return None


def _alpha(design, given, options) -> str | None:
    fam = design.family.name
    if options.get("alpha") is not None and fam != "negative_binomial":
        return (
            f"alpha={options['alpha']!r} is the negative binomial shape, but this model is "
            f"{fam}, which has none: drop alpha"
        )
    return None


def _number(value) -> float | None:
    if isinstance(value, bool | np.bool_ | str | bytes):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _numbers(value) -> bool:
    if isinstance(value, str | bytes):
        return False
    try:
        x = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return False
    return bool(np.all(np.isfinite(x)))


def _likelihood_start(design, given, options) -> str | None:
    """The dict form of the Laplace/AGQ/Monte Carlo ``start``: numbers where numbers go,
    variances and dispersion positive, component names of this model."""
    start = options.get("start")
    if not isinstance(start, Mapping):
        return None
    fe = start.get("fixed_effects")
    if fe is not None:
        values = fe.values() if isinstance(fe, Mapping) else [fe]
        if isinstance(fe, Mapping):
            unknown = [k for k in fe if k not in design.fixed_names]
            if unknown:
                return (
                    f"start['fixed_effects'] names {unknown[0]!r}, not a fixed effect of this "
                    f"model; known: {', '.join(design.fixed_names)}"
                )
        if not all(_numbers(v) for v in values):
            return f"start['fixed_effects'] must hold finite numbers, got {_short(fe)}"
    if "theta" in start and not _numbers(start["theta"]):
        return f"start['theta'] must hold finite numbers, got {_short(start['theta'])}"
    vc = start.get("variance_components")
    if vc is not None:
        if not isinstance(vc, Mapping):
            return f"start['variance_components'] must be a dict by component, got {_short(vc)}"
        known = [c for t in design.random for c in t.component_names]
        for key, value in vc.items():
            if key not in known:
                return (
                    f"start['variance_components'] names {key!r}, not a variance component of "
                    f"this model; known: {', '.join(known)}"
                )
            x = _number(value)
            if x is None or x <= 0:
                return (
                    f"start['variance_components'][{key!r}] must be a positive number (a "
                    f"variance), got {value!r}"
                )
    if start.get("dispersion") is not None:
        x = _number(start["dispersion"])
        if x is None or x <= 0:
            return f"start['dispersion'] must be a positive number, got {start['dispersion']!r}"
    return None


def _vector_start(with_sds: bool):
    """GEE's start (the fixed effects) or, ``with_sds``, ee/ee2's (the fixed effects, then
    one standard deviation per factor): a vector of that many numbers, sds >= 0."""

    def refuse(design, given, options) -> str | None:
        return _check_vector_start(design, options.get("start"), with_sds)

    return refuse


def _check_vector_start(design, start, with_sds: bool) -> str | None:
    if start is None:
        return None
    sds = len(design.random) if with_sds else 0
    k = design.p + sds
    what = "the fixed effects" + (", then one sd per factor" if sds else "")
    if isinstance(start, Mapping) or (
        isinstance(start, list) and start and isinstance(start[0], Mapping)
    ):
        return f"start must be a vector of {k} numbers ({what}), got a dict"
    x = np.asarray(start, dtype=float)  # finite numbers: checked by the option's validator
    if x.shape != (k,):
        return f"start must have {k} values ({what}), got {x.size}"
    if sds and np.any(x[design.p :] < 0):
        return (
            f"start: the standard deviations (the values after the {design.p} fixed effects) "
            f"must be >= 0, got {_short(start)}"
        )
    return None


MC_SIZES = CrossCheck("mc_size <= mc_max", _mc_sizes)
GIBBS_E_STEP = CrossCheck("e_step='gibbs' for binomial logit or probit only", _gibbs_e_step)
MOMENT_SIZES = CrossCheck("n_sim with simulation only, n_quad with quadrature only", _moment_sizes)
ALPHA = CrossCheck("alpha for the negative binomial family only", _alpha)
GEE_START = CrossCheck("start: one number per fixed effect", _vector_start(False))
MOMENT_START = CrossCheck("start: the fixed effects, then one sd per factor", _vector_start(True))
LIKELIHOOD_START = CrossCheck(
    "start: numbers, positive variances, names of this model", _likelihood_start
)


# ------------------------------------------------------------------------------------------
# memory


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable, else the free
    physical pages), or None where the system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: float) -> str:
    """``n`` bytes for people (``"160 GB"``)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"  # pragma: no cover


def _levels(design) -> int:
    return sum(t.n_levels for t in design.random)


def _n_parameters(design) -> int:
    """Values a posterior draw stores: fixed effects, the effects (and their offsets),
    the scales and correlations, a dispersion."""
    scales = sum(t.n_columns * (t.n_columns + 1) // 2 for t in design.random)
    return design.p + 2 * design.q + 2 * scales + 1


def sampler_memory(design, options) -> int:
    """Posterior draws (draws x chains x parameters) and, when kept, the pointwise
    log-likelihood (rows x draws x chains), 8 bytes each."""
    per_draw = _n_parameters(design) + (design.n if options.get("log_likelihood") else 0)
    return _F8 * options["draws"] * options["chains"] * per_draw


def monte_carlo_memory(design, options) -> int:
    """The largest Monte Carlo sample: ``max(mc_size, mc_max)`` draws of every random
    effect, twice (the draws and their weights or proposals)."""
    m = max(options.get("mc_size") or 0, options.get("mc_max") or 0)
    m = max(m, options.get("loglik_draws") or 0)
    return 2 * _F8 * m * max(design.q, 1)


def _nodes(design, n_quad: int) -> int:
    return n_quad ** sum(design.grouping["dims"].values())


def rule_memory(n_quad: int) -> int:
    """The Gauss-Hermite rule of ``n_quad`` nodes: its ``n_quad x n_quad`` Jacobi matrix."""
    return _F8 * n_quad * n_quad


def quadrature_memory(design, options) -> int:
    """``n_quad^dim`` nodes for every level and every row (the linear predictor at each),
    and the rule itself (:func:`rule_memory`)."""
    n_quad = options["n_quad"]
    return _F8 * _nodes(design, n_quad) * (_levels(design) + design.n) + rule_memory(n_quad)


def moments_memory(design, options) -> int:
    """Simulation: ``n_sim`` draws of every level and the linear predictor of every row at
    each; quadrature: ``n_quad`` nodes of every level and row."""
    if moment_expectation(design, options["expectation"]) == "quadrature":
        k = options["n_quad"]
        return 2 * _F8 * k * (_levels(design) + design.n) + rule_memory(k)
    return 2 * _F8 * options["n_sim"] * (_levels(design) + design.n)


def check_memory(need: int, what: str) -> None:
    """Refuse, in one line, a fit whose sizes need more memory than is available."""
    have = available_memory()
    if have is None or need <= have:
        return
    raise OptionError(
        f"{what} needs about {format_bytes(need)} of memory; {format_bytes(have)} is "
        "available: lower the size"
    )


# ------------------------------------------------------------------------------------------
# time

#: an estimate above this many seconds is warned about (never refused)
LONG_SECONDS = 300.0
#: MCEM/MCNR: seconds per Monte Carlo draw, per row and random effect, per iteration (E-step
#: and M-step). Calibrated on salamander (360 rows, 120 effects) on 2 shared cores: mcem
#: with mc_size = mc_max = 20,000 and 80,000 for 3 iterations took 22 s and 80 s
#: (3.3e-4 s per draw and iteration); mcnr with 10,000 took 6.6 s.
_MC_SECONDS = 7e-7
#: the Monte Carlo sample grows by a third per iteration until mc_max (Booth & Hobert's
#: k = 3, :data:`bayesglmm.frequentist.montecarlo.stopping.GROWTH_K`); at the largest size
#: the rules stop after 3 iterations in a row within the tolerance
_MC_GROWTH, _MC_LAST = 3, 3
#: ee/ee2: seconds per simulated draw, per level and row, per solver iteration. Calibrated on
#: salamander (120 levels, 360 rows): ee2 with n_sim = 20,000 and 100,000 took 6.9 s and
#: 30 s in 6 iterations (5e-5 s per draw and iteration); estimates assume 5 iterations a step
_SIM_SECONDS = 1e-7
_SIM_ITERATIONS = 5


def monte_carlo_seconds(design, options) -> float:
    """MCEM/MCNR: the draws of every iteration as the sample grows from ``mc_size`` to
    ``mc_max`` (at most ``max_iter`` iterations), and a few at ``mc_max``."""
    m, most = options.get("mc_size"), options.get("mc_max")
    if not m or not most:
        return 0.0
    its, total = min(options.get("max_iter") or 1, 10_000), 0
    while its > 0 and m < most:
        total, m, its = total + m, min(most, m + max(1, m // _MC_GROWTH)), its - 1
    total += min(its, _MC_LAST) * most
    return _MC_SECONDS * total * (design.n + max(design.q, 1))


def moments_seconds(steps: int) -> Callable[[object, Mapping], float]:
    """ee (``steps=1``) / ee2 (``steps=2``) by simulation: ``n_sim`` draws of every level
    and row per solver iteration of each step; nothing to warn about by quadrature."""

    def seconds(design, options) -> float:
        if moment_expectation(design, options["expectation"]) == "quadrature":
            return 0.0
        per = options["n_sim"] * (_levels(design) + design.n)
        return _SIM_SECONDS * _SIM_ITERATIONS * steps * per

    return seconds


def warn_long(seconds: float, what: str, lower: str) -> None:
    """One-line UserWarning when the estimate exceeds :data:`LONG_SECONDS`."""
    if seconds > LONG_SECONDS:
        warn(f"{what} may take up to about {seconds / 60:.3g} minutes; {lower} to go faster")


def size_summary(options: Mapping, names) -> str:
    """``"draws=1000000000, chains=4"``: the size options that drive the estimate."""
    return ", ".join(f"{k}={options[k]}" for k in names if options.get(k) is not None)


def check_fit(record, design, given: Mapping, options: Mapping) -> None:
    """Run ``record``'s cross-option rules and memory estimate (OptionError, one line)."""
    for rule in record.checks:
        reason = rule.refuse(design, given, options)
        if reason:
            raise OptionError(reason)
    if record.memory is not None:
        sizes = size_summary(options, record.sizes)
        check_memory(record.memory(design, options), f"method={record.name!r} with {sizes}")
    if record.seconds is not None:
        sizes = size_summary(options, record.slow)
        seconds = record.seconds(design, options)
        warn_long(seconds, f"method={record.name!r} with {sizes}", f"lower {record.slow[0]}")


def check_planned(record, design, options: Mapping) -> None:
    """:func:`check_fit` for a fit not run yet (``compare``, studies): ``options`` resolved
    against ``record``'s table, the rest at their defaults."""
    from .options import option_defaults, resolve_options

    given = resolve_options(record.name, options)
    check_fit(record, design, given, {**option_defaults(record.name), **given})


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
