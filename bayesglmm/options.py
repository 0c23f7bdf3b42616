"""One option vocabulary for every estimation method, checked before anything runs.

Every ``fit_*`` function starts with :func:`resolve_options`, which checks each option's
type and range against the table below and refuses unknown ones, all with one error type,
:class:`~bayesglmm.errors.OptionError`, and a one-line message that names the option (and,
for a misspelt one, the closest known name). Nothing is built, compiled or sampled before.

Shared options mean the same in every method that takes them:

``max_iter``
    most iterations of the optimizer (laplace, agq, lmm) or of the outer loop (pql);
``progressbar``
    None (default): a bar for long-running work only (sampling; iterations beyond
    :data:`PROGRESS_DELAY` seconds), on a terminal and in a pipe alike; False: none;
    True: always;
``random_seed``
    seed of every random draw (an integer >= 0); the same seed gives the same result;
``threads``
    BLAS threads for the fit's dense linear algebra; None: bayesglmm's choice;
``start``
    starting values (a dict or vector; for samplers one dict per chain is allowed).

A method that has no use for a shared option (``max_iter`` for NUTS, ``random_seed`` for the
deterministic Laplace fit) refuses it like any unknown option.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import MethodError, OptionError

#: under ``progressbar=None``, iterative work shows its bar once it has run this long (s)
PROGRESS_DELAY = 1.0
#: ``nuts_sampler`` values (:data:`bayesglmm.bayes.nuts.BACKENDS` says what each needs)
NUTS_SAMPLERS = ("auto", "compiled", "pymc", "nutpie", "numpyro", "blackjax")
#: ``init`` values of :func:`pymc.sample` (the PyMC backend's initialization)
PYMC_INITS = (
    "auto",
    "adapt_diag",
    "jitter+adapt_diag",
    "jitter+adapt_diag_grad",
    "adapt_full",
    "jitter+adapt_full",
)
#: names from other packages (or earlier versions) and the option that means the same here
ALIASES = {
    "maxiter": "max_iter",
    "maxit": "max_iter",
    "n_iter": "max_iter",
    "niter": "max_iter",
    "initvals": "start",
    "seed": "random_seed",
    "progress_bar": "progressbar",
    "nAGQ": "n_quad",
    "REML": "reml",
    "n_draws": "draws",
    "n_chains": "chains",
    "num_draws": "draws",
    "num_chains": "chains",
}


@dataclass(frozen=True)
class Option:
    """One option: ``check(name, value)`` returns the value (normalized) or raises."""

    name: str
    check: Callable[[str, Any], Any]
    meaning: str


# ------------------------------------------------------------------------------------------
# validators


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def integer(least: int, none: bool = False, most: int | None = None):
    """An integer ``>= least`` (``<= most``); ``bool`` and ``"100"`` are refused."""

    def check(name, v):
        if v is None and none:
            return None
        if _is_int(v) and v >= least and (most is None or v <= most):
            return int(v)
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
            least, f"an integer >= {least}"
        )
        span = "" if most is None else f" up to {most}"
        raise OptionError(f"{name} must be {kind}{span}{' or None' if none else ''}, got {v!r}")

    return check


def real(low: float, high: float = math.inf, none: bool = False):
    """A finite number in the open interval ``(low, high)``."""

    def check(name, v):
        if v is None and none:
            return None
        if (
            isinstance(v, int | float | np.integer | np.floating)
            and not isinstance(v, bool | np.bool_)
            and math.isfinite(v)
            and low < v < high
        ):
            return float(v)
        span = "a positive number" if (low, high) == (0, math.inf) else f"in ({low:g}, {high:g})"
        raise OptionError(f"{name} must be {span}{' or None' if none else ''}, got {v!r}")

    return check


def flag(none: bool = False):
    """True or False (or None when ``none``); 0, 1 and "yes" are refused."""

    def check(name, v):
        if v is None and none:
            return None
        if isinstance(v, bool | np.bool_):
            return bool(v)
        raise OptionError(f"{name} must be True or False{' or None' if none else ''}, got {v!r}")

    return check


def choice(*values, none: bool = False):
    """One of ``values``."""

    def check(name, v):
        if (v is None and none) or (isinstance(v, str) and v in values):
            return v
        known = ", ".join(repr(x) for x in values) + (", None" if none else "")
        near = _closest(v, [str(x) for x in values]) if isinstance(v, str) else ""
        raise OptionError(f"{name} must be one of {known}, got {v!r}{near}")

    return check


def mapping(name, v):
    """None or a dict with string keys."""
    if v is None:
        return None
    if isinstance(v, Mapping) and all(isinstance(k, str) for k in v):
        return dict(v)
    raise OptionError(f"{name} must be a dict with string keys or None, got {v!r}")


def column_name(name, v):
    """None or a column name (a non-empty string)."""
    if v is None or (isinstance(v, str) and v):
        return v
    raise OptionError(f"{name} must be a column name (a string) or None, got {_short(v)}")


def weight_vector(name, v):
    """None or a vector of positive finite numbers."""
    if v is None:
        return None
    try:
        x = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        x = None
    if x is not None and x.ndim == 1 and x.size and np.all(np.isfinite(x)) and np.all(x > 0):
        return [float(e) for e in x]
    raise OptionError(f"{name} must be a vector of positive numbers or None, got {_short(v)}")


def seed(name, v):
    """None or an integer >= 0 (NumPy's SeedSequence takes any such integer)."""
    if v is None or (_is_int(v) and v >= 0):
        return None if v is None else int(v)
    raise OptionError(f"{name} must be an integer >= 0 or None, got {v!r}")


def start_values(name, v):
    """None, a dict, a list of dicts (one per chain) or a vector of finite numbers."""
    if v is None or isinstance(v, Mapping):
        return v
    if isinstance(v, list | tuple) and v and all(isinstance(x, Mapping) for x in v):
        return list(v)
    if not isinstance(v, str | bytes):
        try:
            x = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            x = None
        if x is not None and x.ndim == 1 and x.size and np.all(np.isfinite(x)):
            return v
    raise OptionError(
        f"{name} must be a dict of starting values, a list of dicts (one per chain) or a "
        f"vector of finite numbers, got {_short(v)}"
    )


def laplace_start(name, v):
    """Laplace/AGQ starting values: a vector ``(theta, beta[, log dispersion])`` or a dict."""
    known = ("theta", "fixed_effects", "variance_components", "dispersion")
    if isinstance(v, Mapping):
        unknown = [k for k in v if k not in known]
        if unknown:
            raise OptionError(
                f"{name} has unknown key {unknown[0]!r}{_closest(unknown[0], known)}; known: "
                f"{', '.join(known)}"
            )
        return v
    if isinstance(v, list) and v and isinstance(v[0], Mapping):
        raise OptionError(f"{name} must be one dict or vector (one optimization), got a list")
    return start_values(name, v)


# ------------------------------------------------------------------------------------------
# the table

SHARED: dict[str, Option] = {
    o.name: o
    for o in (
        Option(
            "max_iter",
            integer(1),
            "most iterations of the optimizer (laplace, agq, lmm) or outer loop (pql)",
        ),
        Option(
            "progressbar",
            flag(none=True),
            "None: bars for long-running work only, terminal or pipe; False: none; True: always",
        ),
        Option("random_seed", seed, "seed of every random draw; same seed, same result"),
        Option(
            "threads",
            integer(1, none=True),
            "BLAS threads for the dense linear algebra; None: bayesglmm's choice",
        ),
        Option("start", start_values, "starting values"),
    )
}

_SAMPLING = (
    Option("draws", integer(1), "draws kept per chain"),
    Option("tune", integer(0), "tuning (warm-up) iterations per chain, discarded"),
    Option("chains", integer(1), "independent chains"),
    Option("cores", integer(1, none=True), "chains run in parallel; None: min(chains, CPUs)"),
    Option("log_likelihood", flag(), "store the pointwise log-likelihood (LOO/WAIC)"),
    Option("allow_improper", flag(), "sample even when the posterior is found improper"),
    Option(
        "sampler_kwargs",
        mapping,
        "further keywords for the sampler (pymc.sample or nutpie.sample), checked there",
    ),
)


def _table(shared: tuple[str, ...], *own: Option, **overrides: Option) -> dict[str, Option]:
    out = {name: overrides.get(name, SHARED[name]) for name in shared}
    out.update({o.name: o for o in own})
    return dict(sorted(out.items()))


_MC_COMMON = (
    Option("mc_size", integer(10), "(starting) Monte Carlo sample size"),
    Option("loglik_draws", integer(100), "importance draws for the log-likelihood estimate"),
)
_MONTE_CARLO = {
    "mcem": _MC_COMMON
    + (
        Option("e_step", choice("importance", "rejection", "mh"), "E-step sampler"),
        Option("mc_rule", choice("booth_hobert", "ascent"), "Monte Carlo size/stopping rule"),
        Option("mc_max", integer(10), "largest Monte Carlo sample size"),
        Option("tol", real(0, none=True), "stopping tolerance (see the rule)"),
    ),
    "mcnr": _MC_COMMON
    + (
        Option("e_step", choice("importance", "rejection", "mh"), "E-step sampler"),
        Option("mc_max", integer(10), "largest Monte Carlo sample size"),
        Option("tol", real(0, none=True), "relative change that stops (3 in a row)"),
    ),
    "sml": _MC_COMMON,
}

METHODS: dict[str, dict[str, Option]] = {
    "nuts": _table(
        ("progressbar", "random_seed", "start"),
        *_SAMPLING,
        Option("nuts_sampler", choice(*NUTS_SAMPLERS), "NUTS backend (auto: compiled or pymc)"),
        Option("target_accept", real(0, 1), "target acceptance rate of NUTS, in (0, 1)"),
        Option(
            "parameterization",
            choice("noncentered", "centered"),
            "random effects as sd * N(0, 1) offsets or drawn directly",
        ),
        Option("init", choice(*PYMC_INITS, none=True), "PyMC's initialization (pymc only)"),
    ),
    "gibbs": _table(
        ("progressbar", "random_seed", "start"),
        *_SAMPLING,
        Option("steps", mapping, "{variable: step kind} overriding the automatic choice"),
        Option("nuts_fallback", flag(), "NUTS (True) or Metropolis for variables without Gibbs"),
        Option("scale_moves", flag(), "Liu-Sabatti rescaling moves after variance updates"),
        Option("conjugate_priors", flag(), "conjugate priors in place of the default ones"),
        Option(
            "scheme",
            choice("auto", "collapsed", "steps"),
            "collapsed crossed-design sampler or PyMC steps (auto: collapsed when large)",
        ),
    ),
    "laplace": _table(
        ("max_iter", "progressbar", "random_seed", "threads", "start"),
        Option("curvature", choice("fisher", "observed"), "weights of the Laplace log-det"),
        Option(
            "solver",
            choice("auto", "direct", "iterative"),
            "linear algebra: exact factor, or iterative with memory linear in rows and levels",
        ),
        start=Option("start", laplace_start, "vector (theta, beta[, log dispersion]) or dict"),
    ),
    "agq": _table(
        ("max_iter", "progressbar", "threads", "start"),
        Option("n_quad", integer(1), "quadrature nodes per dimension (lme4's nAGQ)"),
        start=Option("start", laplace_start, "vector (theta, beta[, log dispersion]) or dict"),
    ),
    "mbp": _table(
        ("max_iter", "progressbar", "threads"),
        Option("n_quad", integer(1), "quadrature nodes per dimension of the full likelihood"),
        Option("tol", real(0, none=True), "largest relative parameter step that stops"),
    ),
    "pql": _table(
        ("max_iter", "progressbar", "random_seed", "threads"),
        Option(
            "solver",
            choice("auto", "direct", "iterative"),
            "linear algebra: exact factor, or iterative with memory linear in rows and levels",
        ),
        Option("reml", flag(), "REML (True) or ML for the working linear mixed model"),
        Option("dispersion", choice("fixed", "estimated"), "working residual variance"),
        Option("tol", real(0), "relative change of the linear predictor that stops"),
        Option("alpha", real(0, none=True), "negative binomial shape (required there)"),
    ),
    "lmm": _table(
        ("max_iter", "progressbar", "threads"),
        Option("reml", flag(), "REML (True, as lmer) or maximum likelihood"),
    ),
    **{
        m: _table(
            ("max_iter", "progressbar", "random_seed", "threads", "start"),
            *_MONTE_CARLO[m],
            start=Option("start", laplace_start, "vector (theta, beta) or dict; default Laplace"),
        )
        for m in ("mcem", "mcnr", "sml")
    },
    "gee": _table(
        ("max_iter", "start"),
        Option(
            "corstr",
            choice("independence", "exchangeable", "ar1", "unstructured"),
            "working correlation (geepack's names)",
        ),
        Option("se", choice("robust", "model", "bias_reduced"), "standard errors of the table"),
        Option("groups", column_name, "column of the clusters (default: the (1|g) term)"),
        Option("time", column_name, "column ordering rows within a cluster (AR(1), unstructured)"),
        Option("tol", real(0), "largest relative step of beta that stops"),
        Option(
            "moments",
            choice("geepack", "statsmodels"),
            "moment estimators of scale and correlation: R geepack's or statsmodels'",
        ),
    ),
    **{
        m: _table(
            ("max_iter", "random_seed", "start"),
            Option("n_sim", integer(2), "Monte Carlo draws of the random effects for E(S)"),
            Option(
                "expectation",
                choice("auto", "simulation", "quadrature"),
                "E(S) by simulation or (one factor) Gauss-Hermite quadrature",
            ),
            Option("n_quad", integer(1), "quadrature nodes for expectation='quadrature'"),
            Option("weights", weight_vector, "weights of the base statistics (first step B)"),
            Option("tol", real(0), "tolerance of the equation solver"),
        )
        for m in ("ee", "ee2")
    },
}


def register_options(method: str, shared: tuple[str, ...], *own: Option) -> None:
    """Declare the options of a new method (beside :func:`bayesglmm.methods.register_method`):
    the names of the :data:`SHARED` options it takes and its own :class:`Option` entries."""
    METHODS[method] = _table(shared, *own)


# ------------------------------------------------------------------------------------------
# resolving


def known_options(method: str) -> list[str]:
    """Names of the options ``method`` takes, sorted."""
    return list(_method_table(method))


def describe_options(method: str) -> str:
    """One line per option of ``method``: name and meaning (for help texts)."""
    return "\n".join(f"{o.name}: {o.meaning}" for o in _method_table(method).values())


def resolve_options(method: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check the options of a fit; return them by name, normalized (``np.int64`` -> int).

    Parameters
    ----------
    method : str
        A name in :data:`METHODS`.
    given : mapping
        Option values by name. A fit function passes its ``locals()`` on entry: ``model``
        is dropped, and its ``**unknown`` catch-all is merged in, so that unknown keywords
        meet this check (one :class:`~bayesglmm.errors.OptionError`) instead of Python's
        ``TypeError``.

    Raises
    ------
    OptionError
        For the first unknown option (naming the closest known one and listing all), or the
        first option of the wrong type or out of range.
    """
    table = _method_table(method)
    given = dict(given)
    given.pop("model", None)
    given.update(given.pop("unknown", None) or {})
    for name in given:
        if name not in table:
            raise OptionError(_unknown_message(method, name, table))
    return {name: table[name].check(name, given[name]) for name in table if name in given}


def show_progress(progressbar: bool | None) -> bool:
    """Whether a sampler (always long-running) shows its bar under ``progressbar``."""
    return progressbar is not False


def tqdm_progress(progressbar: bool | None) -> dict:
    """tqdm keywords for iterative work: shown after :data:`PROGRESS_DELAY` s under None."""
    return {
        "disable": progressbar is False,
        "delay": 0.0 if progressbar else PROGRESS_DELAY,
    }


def _method_table(method: str) -> dict[str, Option]:
    if method not in METHODS:
        raise MethodError(f"no option table for method {method!r}; known: {', '.join(METHODS)}")
    return METHODS[method]


def _unknown_message(method: str, name: str, table: dict) -> str:
    known = ", ".join(table)
    others = [m for m, t in METHODS.items() if name in t]
    alias = ALIASES.get(name)
    if others:
        hint = f" (an option of {', '.join(others)})"
    elif alias in table:
        hint = f" (did you mean {alias!r}?)"
    else:
        hint = _closest(name, list(table))
    return f"unknown option {name!r} for method {method!r}{hint}; known: {known}"


def _closest(name: str, candidates) -> str:
    match = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
