"""Starting values of the samplers, checked against the model before anything compiles.

``start`` reaches PyMC as ``initvals``; PyMC finds a wrong name, a string or a wrong shape
only after compiling (a raw ``KeyError``, "Invalid string strategy"). :func:`check_start`
refuses them first, in one :class:`~bayesglmm.errors.OptionError` naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import OptionError


def start_dicts(start, chains: int) -> list[dict]:
    """``start`` as one dict per chain (a list must have one per chain)."""
    if start is None:
        return []
    if isinstance(start, Mapping):
        return [dict(start)]
    if isinstance(start, list | tuple) and all(isinstance(s, Mapping) for s in start):
        if len(start) != chains:
            raise OptionError(f"start: {len(start)} dicts given for chains={chains}")
        return [dict(s) for s in start]
    raise OptionError(
        "start of a sampler must be a dict {variable: value} or one dict per chain, got a "
        f"{type(start).__name__}"
    )


def start_number(key: str, value) -> np.ndarray:
    """``value`` as finite floats, or an OptionError naming ``start[key]``."""
    bad = isinstance(value, str | bytes) or (
        isinstance(value, list | tuple) and any(isinstance(v, str | bytes) for v in value)
    )
    try:
        x = None if bad else np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        x = None
    if x is None or not np.all(np.isfinite(x)):
        text = repr(value)
        text = text if len(text) <= 60 else text[:57] + "..."
        raise OptionError(f"start[{key!r}] must be a finite number or array, got {text}")
    return x


def check_start(pm_model, start, chains: int) -> None:
    """Refuse ``start`` for ``pm_model`` unless each key is a free variable (or its
    transformed value), each value finite numbers of a shape that fits, and each value of a
    positive variable (standard deviation, variance) positive."""
    dicts = start_dicts(start, chains)
    if not dicts:
        return
    free = {rv.name: rv for rv in pm_model.free_RVs}
    values = {pm_model.rvs_to_values[rv].name: rv for rv in pm_model.free_RVs}
    for d in dicts:
        for key, value in d.items():
            if not isinstance(key, str) or (key not in free and key not in values):
                raise OptionError(
                    f"start[{key!r}] is not a variable of the model; known: {', '.join(free)}"
                )
            x = start_number(key, value)
            rv = free.get(key)
            if rv is None:
                continue  # a transformed value: any real number
            shape = _shape(pm_model, rv)
            if shape is not None:
                try:
                    np.broadcast_to(x, shape)
                except ValueError:
                    raise OptionError(
                        f"start[{key!r}] has shape {x.shape}; the variable has shape {shape}"
                    ) from None
            transform = pm_model.rvs_to_transforms.get(rv)
            if getattr(transform, "name", None) == "log" and not np.all(x > 0):
                raise OptionError(f"start[{key!r}] must be positive, got {value!r}")


def _shape(pm_model, rv) -> tuple | None:
    dims = pm_model.named_vars_to_dims.get(rv.name)
    if dims:
        try:
            return tuple(len(pm_model.coords[d]) for d in dims)
        except (KeyError, TypeError):
            return None
    return () if rv.type.ndim == 0 else None
