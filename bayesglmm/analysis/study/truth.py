"""The true values of a simulation study, checked against the model before anything runs."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...errors import OptionError


def parameter_names(design) -> dict[str, list[str]]:
    """The names :func:`bayesglmm.simulate` takes, by argument, for a model's design."""
    pairs = [
        f"{t.group}|{t.columns[a]},{t.columns[b]}"
        for t in design.random
        for a in range(t.n_columns)
        for b in range(a + 1, t.n_columns)
    ]
    return {
        "fixed_effects": list(design.fixed_names),
        "variance_components": list(design.component_names),
        "correlations": pairs,
    }


def check_truth(design, truth: dict, family: str) -> None:
    """One :class:`OptionError` naming the first true value that does not fit the model.

    Unknown names, missing fixed effects or variance components, values that are not finite
    numbers (or negative variances) and a dispersion the family needs but was not given are
    refused, each in one line listing the model's parameter names.
    """
    names = parameter_names(design)
    listing = "; ".join(f"{arg}: {', '.join(v) or '(none)'}" for arg, v in names.items())
    for arg, known in names.items():
        given = truth.get(arg)
        if given is None:
            given = {}
        if not isinstance(given, Mapping):
            if arg != "fixed_effects":
                raise OptionError(f"{arg} must be a dict by name, got {type(given).__name__}")
            arr = np.atleast_1d(np.asarray(given, dtype=object))
            if arr.shape != (len(known),):
                raise OptionError(
                    f"fixed_effects: expected {len(known)} values (for {', '.join(known)}), "
                    f"got {arr.size}"
                )
            given = dict(zip(known, arr.tolist(), strict=True))
        unknown = [str(k) for k in given if k not in known]
        if unknown:
            raise OptionError(
                f"{arg}: unknown name(s) {', '.join(map(repr, unknown))} for this model; "
                f"its parameters are {listing}"
            )
        missing = [k for k in known if k not in given]
        if missing and arg != "correlations":
            raise OptionError(
                f"{arg}: no true value for {', '.join(map(repr, missing))}; "
                f"the model's parameters are {listing}"
            )
        for k, v in given.items():
            _check_value(arg, k, v)
    from ...model.families import get_family

    fam = get_family(family)
    dispersion = truth.get("dispersion")
    if fam.has_dispersion and dispersion is None:
        raise OptionError(
            f"dispersion: the {family} family needs a true {fam.dispersion_name} (dispersion=)"
        )
    if dispersion is not None:
        if not fam.has_dispersion:
            raise OptionError(f"dispersion: the {family} family has no dispersion parameter")
        _check_value("dispersion", fam.dispersion_name, dispersion, positive=True)


def _check_value(arg: str, name, value, positive: bool = False) -> None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = None
    if x is None or isinstance(value, bool) or not np.isfinite(x):
        raise OptionError(f"{arg}[{name!r}] must be a finite number, got {value!r}")
    if arg == "variance_components" and x < 0:
        raise OptionError(f"variance_components[{name!r}] must be >= 0 (a variance), got {x:g}")
    if arg == "correlations" and not -1 <= x <= 1:
        raise OptionError(f"correlations[{name!r}] must be in [-1, 1], got {x:g}")
    if positive and x <= 0:
        raise OptionError(f"{arg} ({name}) must be > 0, got {x:g}")
