"""nutpie's sampler driven from its Rust extension, for the compiled densities.

The compiled densities reach nutpie as Numba C callbacks (:mod:`bayesglmm.bayes.callbacks`,
:mod:`bayesglmm.bayes.density_sampler`). :func:`sample` starts nutpie's sampler threads on
them and, while the chains run, imports what the InferenceData of the result is built
with (ArviZ, xarray and the array libraries xarray looks up on first use): about 3 s of a
cold process's work, which would otherwise come before the first draw, since
``import nutpie`` imports ArviZ. The draws are the same as ``nutpie.sample``'s for the same
seed and settings (tests/test_nutpie_driver.py).

nutpie's Python package is not imported before sampling: :func:`lib` loads its extension
module (``nutpie._lib``) alone, and the package, imported afterwards, finds it there. The
classes used (``PySampler``, ``PyMcModel``, ``LogpFunc`` ...) are the ones behind
``nutpie.compile_pymc.CompiledPyMCModel``, hence nutpie's pinned minor version in
``pyproject.toml``. In a notebook (nutpie's HTML progress bar) and for nutpie.sample's own
keywords (``transform_adapt``, ``zarr_store`` ...) the model goes through ``nutpie.sample``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: ``nutpie.sample`` keywords this driver handles itself (the rest of its own keywords send
#: the call to ``nutpie.sample``); every other key is a field of nutpie's settings
_DRIVER_KEYWORDS = {"low_rank_modified_mass_matrix", "init_mean"}

#: sample statistics nutpie leaves out unless asked for (as ``nutpie.sample`` does)
_OPTIONAL_STATS = {
    "store_gradient": ["gradient"],
    "store_unconstrained": ["unconstrained_draw"],
    "store_mass_matrix": ["mass_matrix_inv", "mass_matrix_eigvals", "mass_matrix_stds"],
    "store_divergences": [
        "divergence_start",
        "divergence_end",
        "divergence_momentum",
        "divergence_start_gradient",
    ],
}


def lib():
    """nutpie's extension module, loaded without nutpie's Python package (which imports
    ArviZ). Registered as ``nutpie._lib``, where the package looks for it."""
    mod = sys.modules.get("nutpie._lib")
    if mod is not None:
        return mod
    if "nutpie" in sys.modules:  # the package is (being) imported: let it load its module
        from nutpie import _lib

        return _lib
    spec = importlib.util.find_spec("nutpie")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("nutpie is not installed (the compiled NUTS path samples with it)")
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"_lib{suffix}"
            if path.exists():
                loader = importlib.machinery.ExtensionFileLoader("nutpie._lib", str(path))
                mod_spec = importlib.util.spec_from_file_location(
                    "nutpie._lib", path, loader=loader
                )
                mod = importlib.util.module_from_spec(mod_spec)
                sys.modules["nutpie._lib"] = mod
                try:
                    loader.exec_module(mod)
                except BaseException:
                    del sys.modules["nutpie._lib"]
                    raise
                return mod
    from nutpie import _lib  # an unusual layout: the package knows where its module is

    return _lib


@dataclass
class CallbackModel:
    """A density as C callbacks: ``logp(dim, x, grad, logp, user_data)`` and
    ``expand(dim, n_expanded, x, out, user_data)`` (Numba ``cfunc``\\ s), the ``user_data``
    header they read, and the named variables ``expand`` writes.

    Quacks like nutpie's compiled models (``n_dim``, ``coords``, ``_make_sampler``), so
    ``nutpie.sample`` takes it as well.
    """

    n_dim: int
    n_expanded: int
    logp_func: Any  # numba CFunc
    expand_func: Any  # numba CFunc
    user_data: np.ndarray
    names: list
    shapes: list
    dims: dict
    coords: dict
    initial_point: Callable[[int], np.ndarray]
    #: arrays whose addresses are in ``user_data``: they must outlive sampling
    keep_alive: dict = field(default_factory=dict)

    def _make_model(self, init_mean=None):
        nl = lib()
        expand_fn = nl.ExpandFunc(
            self.n_dim, self.n_expanded, self.expand_func.address, self.user_data.ctypes.data, self
        )
        logp_fn = nl.LogpFunc(self.logp_func.address, self.user_data.ctypes.data, self)
        coords = dict(self.coords)
        dim_sizes = {name: len(vals) for name, vals in coords.items()}
        variables = nl.PyVariable.new_variables(
            list(self.names),
            ["float64"] * len(self.names),
            [list(s) for s in self.shapes],
            dim_sizes,
            dict(self.dims),
        )

        def make_adapter(*args, **kwargs):  # nutpie's normalizing-flow adaptation
            from nutpie.transform_adapter import make_transform_adapter

            return make_transform_adapter()(*args, **kwargs, logp_fn=None)

        return nl.PyMcModel(
            logp_fn,
            expand_fn,
            variables,
            self.n_dim,
            dim_sizes,
            coords,
            self.initial_point,
            make_adapter,
        )

    def _make_sampler(self, settings, init_mean, cores, progress_type, store):
        return lib().PySampler.from_pymc(
            settings, cores, self._make_model(init_mean), progress_type, store
        )


def settings_for(seed: int, *, draws: int, tune: int, chains: int, **kwargs):
    """nutpie's settings object (``PyNutsSettings``), as ``nutpie.sample`` builds it."""
    nl = lib()
    low_rank = kwargs.pop("low_rank_modified_mass_matrix", False)
    kwargs.pop("init_mean", None)
    settings = nl.PyNutsSettings.LowRank(seed) if low_rank else nl.PyNutsSettings.Diag(seed)
    settings.num_tune = tune
    settings.num_draws = draws
    settings.num_chains = chains
    for name, value in kwargs.items():
        setattr(settings, name, value)
    return settings


def needs_nutpie_sample(kwargs: dict) -> bool:
    """True when ``kwargs`` hold a keyword of ``nutpie.sample`` this driver does not handle
    (it is neither one of :data:`_DRIVER_KEYWORDS` nor a field of nutpie's settings)."""
    fields = type(lib().PyNutsSettings.Diag(0))
    return any(key not in _DRIVER_KEYWORDS and not hasattr(fields, key) for key in kwargs)


def in_notebook() -> bool:
    """Inside a Jupyter kernel (where nutpie draws an HTML progress bar)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _prepare_result_libraries() -> None:
    """Import what the InferenceData of the result is built with. xarray looks up its
    optional array backends (dask ...) when it makes its first variable: done here too."""
    from .._arviz import import_arviz

    import_arviz()
    import xarray as xr

    xr.Variable(("draw",), np.zeros(1))


def sample(
    model: CallbackModel,
    *,
    draws: int,
    tune: int,
    chains: int,
    cores: int,
    seed: int,
    progressbar: bool,
    save_warmup: bool = False,
    **kwargs,
):
    """Draws as ArviZ InferenceData, as ``nutpie.sample(model, ...)`` returns them.

    ``kwargs``: nutpie's settings (``target_accept``, ``maxdepth``,
    ``use_grad_based_mass_matrix`` ...) and ``low_rank_modified_mass_matrix``/``init_mean``;
    other ``nutpie.sample`` keywords hand the call to it.
    """
    if in_notebook() or needs_nutpie_sample(kwargs):
        import nutpie

        return nutpie.sample(
            model,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            seed=seed,
            progress_bar=progressbar,
            save_warmup=save_warmup,
            **kwargs,
        )
    nl = lib()
    init_mean = kwargs.get("init_mean")
    if init_mean is None:
        init_mean = np.zeros(model.n_dim)
    settings = settings_for(seed, draws=draws, tune=tune, chains=chains, **kwargs)
    progress = nl.ProgressType.indicatif(100) if progressbar else nl.ProgressType.none()
    sampler = model._make_sampler(settings, init_mean, cores, progress, nl.PyStorage.arrow())
    try:
        _prepare_result_libraries()  # while the chains run
        sampler.wait(None)
    except KeyboardInterrupt:  # keep what was drawn, as nutpie.sample does
        sampler.abort()
    except BaseException:
        sampler.abort()
        raise
    results = sampler.take_results()
    return _to_inference_data(results, settings, model, save_warmup)


def _to_inference_data(results, settings, model: CallbackModel, save_warmup: bool):
    import pandas as pd
    from nutpie.sample import _arrow_to_arviz

    skip = [
        name
        for setting, names in _OPTIONAL_STATS.items()
        if not getattr(settings, setting, False)
        for name in names
    ]
    draw_batches, stat_batches = results.get_arrow_trace()
    return _arrow_to_arviz(
        draw_batches,
        stat_batches,
        skip_vars=skip,
        coords={name: pd.Index(vals) for name, vals in model.coords.items()},
        save_warmup=save_warmup,
    )


def named_posterior(raw, values: dict, dims: dict, coords: dict):
    """A posterior Dataset from the raw draws ``raw`` (DataArray (chain, draw, ndim)) and
    the named variables ``values`` computed from them (name -> (chain, draw, ...))."""
    import xarray as xr

    all_coords = {"chain": raw.chain.values, "draw": raw.draw.values}
    data = {}
    for name, arr in values.items():
        var_dims = dims.get(name, ())
        for dim in var_dims:
            all_coords.setdefault(dim, coords[dim])
        data[name] = (("chain", "draw", *var_dims), arr)
    return xr.Dataset(data, coords=all_coords, attrs=dict(raw.attrs))
