"""Posterior draws of the reported parameters, by result name, from ArviZ InferenceData.

Plain NumPy on the ``posterior`` (and ``constant_data``) groups, in the result layer: the
result names are the result's, and the readers of draws sit on both sides of it (the
Bayesian result assembly in :mod:`bayesglmm.bayes.posterior`, the drift check, predictions
in :mod:`bayesglmm.results.predict`). It imports none of them.
"""

from __future__ import annotations

import numpy as np

from ..model.families import DISPERSION_NAMES


def variable_draws(post, name: str, constants=None) -> np.ndarray:
    """Draws (chain, draw, ...) of a variable; a parameter held fixed is broadcast."""
    if name in post:
        return np.asarray(post[name].values, dtype=float)
    if constants is not None and name in constants:
        value = np.asarray(constants[name].values, dtype=float)
        shape = (post.sizes["chain"], post.sizes["draw"])
        return np.broadcast_to(value, shape + value.shape).copy()
    raise KeyError(f"{name!r} is neither in the posterior nor held fixed")


def derived_draws(model, idata) -> dict[str, np.ndarray]:
    """Draws (chain, draw) of every reported parameter, by result name."""
    d = model.design
    post = idata.posterior
    const = idata.constant_data if "constant_data" in idata.groups() else None
    out: dict[str, np.ndarray] = {}
    for term, sl in d.fixed_terms.items():
        names = d.fixed_names[sl]
        arr = variable_draws(post, term, const)
        if len(names) == 1:
            out[names[0]] = arr.reshape(arr.shape[:2])
        else:
            for j, n in enumerate(names):
                out[n] = arr[..., j]
    for t in d.random:
        if getattr(t, "structure", None) == "ar1":
            # sigma and the lag-one correlation rho, named as the Laplace table names them
            sd = variable_draws(post, f"{t.name}_sigma", const)
            out[f"var({t.component_names[0]})"] = sd**2
            rho = variable_draws(post, f"{t.name}_rho", const)
            out[f"cor({t.group}|{t.columns[0]},{t.columns[1]})"] = rho
            continue
        if t.n_columns == 1:
            sd = variable_draws(post, f"{t.name}_sigma", const)
            out[f"var({t.component_names[0]})"] = sd**2
            continue
        if t.correlated:
            sd = variable_draws(post, f"{t.name}_sigma", const)
        else:
            sd = np.stack(
                [variable_draws(post, f"{t.name}_sigma[{c}]", const) for c in t.columns], axis=-1
            )
        for j, c in enumerate(t.component_names):
            out[f"var({c})"] = sd[..., j] ** 2
        if t.correlated:
            corr = variable_draws(post, f"{t.name}_corr")
            for a in range(t.n_columns):
                for b in range(a + 1, t.n_columns):
                    key = f"cor({t.group}|{t.columns[a]},{t.columns[b]})"
                    out[key] = corr[..., a, b]
    for name in DISPERSION_NAMES:
        if name in post or (const is not None and name in const):
            out[name] = variable_draws(post, name, const)
    return out
