"""The table of estimation methods behind :meth:`bayesglmm.GLMM.fit`.

Each method is a function ``fit(model, **options) -> FitResult`` in its own module,
imported only when used (so frequentist fits never import PyMC).
"""

from __future__ import annotations

import difflib
import importlib

from .errors import MethodError

_REGISTRY: dict[str, str] = {
    "nuts": "bayesglmm.bayes.nuts:fit_nuts",
    "gibbs": "bayesglmm.bayes.gibbs.fit:fit_gibbs",
    "lmm": "bayesglmm.frequentist.lmm:fit_lmm",
    "pql": "bayesglmm.frequentist.pql:fit_pql",
    "laplace": "bayesglmm.frequentist.laplace:fit_laplace",
    "agq": "bayesglmm.frequentist.agq:fit_agq",
    "mbp": "bayesglmm.frequentist.mbp:fit_mbp",
    "mcem": "bayesglmm.frequentist.montecarlo.mcem:fit_mcem",
    "mcnr": "bayesglmm.frequentist.montecarlo.mcnr:fit_mcnr",
    "sml": "bayesglmm.frequentist.montecarlo.sml:fit_sml",
    "gee": "bayesglmm.frequentist.gee.fit:fit_gee",
    "ee": "bayesglmm.frequentist.moments.fit:fit_ee",
    "ee2": "bayesglmm.frequentist.moments.fit:fit_ee2",
}


def register_method(name: str, target: str) -> None:
    """Register ``"module:function"`` under ``name`` (later issues add theirs here)."""
    _REGISTRY[name] = target


def available_methods() -> list[str]:
    return sorted(_REGISTRY)


def get_method(name: str):
    """The fitting function registered for ``name``."""
    if not isinstance(name, str) or name.lower() not in _REGISTRY:
        close = difflib.get_close_matches(str(name).lower(), available_methods(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise MethodError(
            f"unknown method {name!r}; {hint}available: {', '.join(available_methods())}"
        )
    module, func = _REGISTRY[name.lower()].split(":")
    return getattr(importlib.import_module(module), func)
