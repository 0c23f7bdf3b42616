"""One option vocabulary for every estimation method, checked before anything runs.

:meth:`bayesglmm.GLMM.fit` starts with :func:`resolve_options`, which checks each option's
type and range against the method's table (declared in its record,
:mod:`bayesglmm.methods`) and refuses unknown ones, all with one error type,
:class:`~bayesglmm.errors.OptionError`, and a one-line message that names the option (and,
for a misspelt one, the closest known name). Nothing is built, compiled or sampled before.

Shared options mean the same in every method that takes them:

``max_iter``
    most iterations of the optimizer (laplace, agq, lmm) or of the outer loop (pql);
``progressbar``
    None (default): a bar for long-running work only (sampling; iterations beyond
    :data:`PROGRESS_DELAY` seconds), on a terminal or in a notebook; none when stderr goes
    to a file or pipe (the compiled NUTS sampler prints a line now and then there);
    False: none, PyMC's log lines included; True: always;
``random_seed``
    seed of every random draw (an integer >= 0); the same seed gives the same result;
``threads``
    BLAS threads for the fit's dense linear algebra; None: bayesglmm's choice; more than
    the CPU cores this process may use is clamped to them, with a warning;
``start``
    starting values (a dict or vector; for samplers one dict per chain is allowed).

Rules across options (``mc_size`` not above ``mc_max``, ...) and the memory a fit's sizes
need are the method records' (:mod:`bayesglmm.method_checks`), checked right after these.

A method that has no use for a shared option (``max_iter`` for NUTS, ``random_seed`` for the
deterministic Laplace fit) refuses it like any unknown option.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
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
    """One option: ``check(name, value)`` returns the value (normalized) or raises.

    ``default`` is the value a fit uses when the option is not given (never checked: a
    test checks every default against its validator).
    """

    name: str
    check: Callable[[str, Any], Any]
    meaning: str
    default: Any = None


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


def usable_cores() -> int:
    """CPUs this process may run on (its affinity set where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads(name, v):
    """None or a positive integer, clamped (with a warning) to :func:`usable_cores`."""
    n = integer(1, none=True)(name, v)
    cores = usable_cores()
    if n is not None and n > cores:
        from ._warn import warn

        warn(f"{name}={n} is more than the {cores} CPU cores available; using {name}={cores}")
        n = cores
    return n


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
# the shared options and the index of every method's table

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
            "None: bars for long-running work on a terminal only; False: none; True: always",
        ),
        Option("random_seed", seed, "seed of every random draw; same seed, same result"),
        Option(
            "threads",
            threads,
            "BLAS threads for the dense linear algebra; None: bayesglmm's choice",
        ),
        Option("start", start_values, "starting values"),
    )
}


def option_table(
    shared: tuple[str, ...] | dict[str, Any], *own: Option, **overrides: Option
) -> dict[str, Option]:
    """A method's option table: the :data:`SHARED` options it takes and its own.

    ``shared`` names the shared options, or maps each name to its default for this method
    (``{"max_iter": 200, "progressbar": None}``); ``overrides`` replace a shared option
    outright (a method's own spelling of ``start``). The table is sorted by name.
    """
    defaults = dict(shared) if isinstance(shared, Mapping) else {}
    out = {}
    for name in shared:
        option = overrides.get(name, SHARED[name])
        if name in defaults:
            option = replace(option, default=defaults[name])
        out[name] = option
    out.update({o.name: o for o in own})
    return dict(sorted(out.items()))


#: method name -> option table; filled by :func:`bayesglmm.methods.register_method` from
#: the method records (:mod:`bayesglmm.methods`), where each table is declared
METHODS: dict[str, dict[str, Option]] = {}


# ------------------------------------------------------------------------------------------
# resolving


def known_options(method: str) -> list[str]:
    """Names of the options ``method`` takes, sorted."""
    return list(_method_table(method))


def describe_options(method: str) -> str:
    """One line per option of ``method``: name, meaning and default (for help texts)."""
    return "\n".join(
        f"{o.name}: {o.meaning} (default {o.default!r})" for o in _method_table(method).values()
    )


def option_defaults(method: str) -> dict[str, Any]:
    """The default of every option of ``method``, by name."""
    return {name: o.default for name, o in _method_table(method).items()}


def complete_options(method: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`resolve_options` with the defaults of the options not given filled in: every
    option of ``method``, by name (what a fit function is called with)."""
    return {**option_defaults(method), **resolve_options(method, given)}


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
    """Whether a sampler (always long-running) shows its progress under ``progressbar``."""
    return progressbar is not False


def sampler_bar(progressbar: bool | None) -> bool:
    """Whether PyMC's sampler draws its bar: True always; None only where a bar renders
    (:func:`bars_render`: not into a file or pipe); False never."""
    return progressbar is True or (progressbar is None and bars_render())


def bars_render() -> bool:
    """Whether a tqdm bar on stderr is seen as a bar: stderr is a terminal, or a Jupyter
    kernel runs us (tqdm.auto draws a widget there); not when stderr is a file or pipe."""
    import sys

    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
    ipython = sys.modules.get("IPython")  # a Jupyter kernel has imported it already
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def tqdm_progress(progressbar: bool | None) -> dict:
    """tqdm keywords for iterative work: under None shown after :data:`PROGRESS_DELAY` s,
    and only where a bar renders (:func:`bars_render`); True always; False never."""
    shown = progressbar is True or (progressbar is None and bars_render())
    return {
        "disable": not shown,
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
