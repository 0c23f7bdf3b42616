"""Prototype measured by ``bench_nuts.py --samplers ...,proto``: the compiled GLMM density
handed to nutpie as Numba *C callbacks* instead of Python functions.

``bayesglmm.bayes.compiled`` gives nutpie Python callables (``from_pyfunc``), so every
gradient (tens of thousands per chain) goes Rust -> Python -> Numba and back, holding the
GIL on the way: the chains of one process contend for it, and the call costs a few
microseconds each time. Here the same kernel (:func:`bayesglmm.bayes.kernel.logp_grad`) is
wrapped in ``numba.cfunc``s with the signatures nutpie's own Numba backend uses; the data
arrays reach them through a header of pointers (``user_data``), so the callbacks are
cached on disk like the kernel (no compilation in a warm process) and run without the GIL.
The result goes through the package's own result assembly, so the time measured is the time
to the same :class:`~bayesglmm.FitResult`.

Limits of the prototype: single-column random terms (random intercepts), the fused-loop
kernel only (not the NumPy-vectorized one used for many rows), and nutpie's
``CompiledPyMCModel`` built directly (a nutpie class, not its documented entry point).
"""

from __future__ import annotations

import time

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from bayesglmm.bayes import kernel
from bayesglmm.bayes.compiled import _add_data_groups, kernel_data

#: header slots: n, p, K, address of levels, family, (unused), then 9 array addresses and
#: the address of (dispersion scale, log-likelihood constant)
_HEADER = 16

_LOGP_SIG = types.int64(
    types.uint64,
    types.CPointer(types.double),
    types.CPointer(types.double),
    types.CPointer(types.double),
    types.voidptr,
)
_EXPAND_SIG = types.int64(
    types.uint64,
    types.uint64,
    types.CPointer(types.double),
    types.CPointer(types.double),
    types.voidptr,
)


@intrinsic
def _pointer(typingctx, address):
    """An int64 address as a void pointer (for ``numba.carray``)."""
    sig = types.voidptr(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen


@numba.cfunc(_LOGP_SIG, cache=True, nopython=True)
def _logp_cfunc(dim, x_, out_, logp_, user_data):
    h = numba.carray(user_data, (_HEADER,), dtype=np.int64)
    n, p, k = h[0], h[1], h[2]
    f8 = np.float64
    X = numba.carray(_pointer(h[6]), (n, p), dtype=f8)
    offset = numba.carray(_pointer(h[7]), (n,), dtype=f8)
    y = numba.carray(_pointer(h[8]), (n,), dtype=f8)
    trials = numba.carray(_pointer(h[9]), (n,), dtype=f8)
    re_x = numba.carray(_pointer(h[10]), (n, k), dtype=f8)
    re_zidx = numba.carray(_pointer(h[11]), (n, k), dtype=np.int64)
    beta_mu = numba.carray(_pointer(h[12]), (p,), dtype=f8)
    beta_sd = numba.carray(_pointer(h[13]), (p,), dtype=f8)
    sd_scale = numba.carray(_pointer(h[14]), (k,), dtype=f8)
    scalars = numba.carray(_pointer(h[15]), (2,), dtype=f8)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    lp, g = kernel.logp_grad(
        x,
        X,
        offset,
        y,
        trials,
        re_x,
        re_zidx,
        beta_mu,
        beta_sd,
        sd_scale,
        scalars[0],
        h[4],
        scalars[1],
    )
    logp_[0] = lp
    for i in range(dim):
        out[i] = g[i]
    if not np.isfinite(lp):
        return 4
    return 0


@numba.cfunc(_EXPAND_SIG, cache=True, nopython=True)
def _expand_cfunc(dim, n_expanded, x_, out_, user_data):
    """beta, then per random term: sigma, offsets z (L), effects sigma * z (L)."""
    h = numba.carray(user_data, (_HEADER,), dtype=np.int64)
    p, k = h[1], h[2]
    levels = numba.carray(_pointer(h[3]), (k,), dtype=np.int64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (n_expanded,))
    for j in range(p):
        out[j] = x[j]
    o, z = p, p + k
    for c in range(k):
        s = np.exp(x[p + c])
        out[o] = s
        o += 1
        n_levels = levels[c]
        for j in range(n_levels):
            out[o + j] = x[z + j]
            out[o + n_levels + j] = x[z + j] * s
        o += 2 * n_levels
        z += n_levels
    return 0


def compiled_model(model):
    """A nutpie model of a GLMM whose density and expansion are Numba C callbacks."""
    from nutpie.compile_pymc import CompiledPyMCModel

    d = model.design
    if any(t.n_columns != 1 for t in d.random) or d.family.name != "binomial":
        raise NotImplementedError("prototype: binomial-logit random intercepts only")
    kd = kernel_data(model)
    X, offset, y, trials, re_x, re_zidx, beta_mu, beta_sd, sd_scale, disp, family, lconst = kd.args
    arrays = [
        np.ascontiguousarray(a, dtype=np.int64 if i == 5 else np.float64)
        for i, a in enumerate((X, offset, y, trials, re_x, re_zidx, beta_mu, beta_sd, sd_scale))
    ]
    scalars = np.array([disp, lconst], dtype=np.float64)
    levels = np.array([t.n_levels for t in d.random], dtype=np.int64)
    header = np.zeros(_HEADER, dtype=np.int64)
    header[:6] = [d.n, d.p, kd.K, levels.ctypes.data, family, 0]
    for i, a in enumerate(arrays):
        header[6 + i] = a.ctypes.data
    header[15] = scalars.ctypes.data

    names, shapes = [], []
    for term, sl in d.fixed_terms.items():
        width = sl.stop - sl.start
        names.append(term)
        shapes.append((width,) if width > 1 else ())
    for t in d.random:
        names += [f"{t.name}_sigma", f"{t.name}_offset", t.name]
        shapes += [(), (t.n_levels,), (t.n_levels,)]
    n_expanded = int(sum(int(np.prod(s)) for s in shapes))
    keep_alive = {f"array{i}": a for i, a in enumerate([*arrays, scalars, levels])}

    def initial_point(seed):
        return np.random.default_rng(seed).uniform(-1.0, 1.0, kd.ndim)

    return CompiledPyMCModel(
        _n_dim=kd.ndim,
        dims={k: v for k, v in kd.dims.items() if k in names},
        _coords=kd.coords,
        _shapes=dict(zip(names, shapes, strict=True)),
        compiled_logp_func=_logp_cfunc,
        compiled_expand_func=_expand_cfunc,
        initial_point_func=initial_point,
        shared_data=keep_alive,
        user_data=header,
        n_expanded=n_expanded,
        shape_info=(names, None, [list(s) for s in shapes]),
        logp_func=None,
        expand_func=None,
    ), kd


def fit_proto(
    model,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int = 2,
    random_seed: int | None = None,
    target_accept: float = 0.8,
    log_likelihood: bool = True,
    **nutpie_kwargs,
):
    """Like ``model.fit(method="nuts", nuts_sampler="compiled")``, through C callbacks."""
    import nutpie

    from bayesglmm.bayes.posterior import result_from_idata

    t0 = time.perf_counter()
    compiled, kd = compiled_model(model)
    seed = int(np.random.SeedSequence(random_seed).generate_state(1)[0])
    idata = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        seed=seed,
        progress_bar=False,
        target_accept=target_accept,
        save_warmup=False,
        **nutpie_kwargs,
    )
    _add_data_groups(idata, model, kd, log_likelihood)
    timing = {"sample": time.perf_counter() - t0}
    info = {
        "nuts_sampler": "proto-cfunc",
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "random_seed": random_seed,
    }
    result = result_from_idata(model, idata, "nuts", timing, info)
    result.timing["total"] = time.perf_counter() - t0
    return result


# ------------------------------------------------------------------------------------------
# chains in separate processes: nutpie's threads share one GIL (Python callbacks) and, in
# nutpie 0.16, its Numba-callback path ran the chains of one process on one core (cores=1
# and cores=2 took the same time); forked processes sample their share of chains in parallel.

_FORKED: dict = {}


def _sample_share(task):
    import nutpie

    from bayesglmm.bayes.compiled import sample_compiled

    callback, chains, seed, draws, tune, target_accept, kwargs = task
    model = _FORKED["model"]
    if callback == "pyfunc":
        return sample_compiled(
            model, draws, tune, chains, 1, seed, False, target_accept, True, **kwargs
        )
    compiled, kd = compiled_model(model)
    idata = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=1,
        seed=int(np.random.SeedSequence(seed).generate_state(1)[0]),
        progress_bar=False,
        target_accept=target_accept,
        save_warmup=False,
        **kwargs,
    )
    _add_data_groups(idata, model, kd, True)
    return idata


def fit_forked(
    model,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    processes: int = 2,
    random_seed: int | None = None,
    target_accept: float = 0.8,
    callback: str = "auto",
    **nutpie_kwargs,
):
    """The compiled density sampled by ``processes`` forked processes, chains split evenly.

    ``callback``: "cfunc" (C callbacks), "pyfunc" (the package's Python callbacks) or
    "auto" (pyfunc above the package's vectorization threshold, where its NumPy-vectorized
    kernel is faster, cfunc below).
    """
    import multiprocessing

    import arviz as az

    from bayesglmm.bayes.posterior import result_from_idata

    if callback == "auto":
        callback = "pyfunc" if model.design.n > kernel.VECTORIZE_ABOVE else "cfunc"
    t0 = time.perf_counter()
    processes = max(1, min(processes, chains))
    shares = [chains // processes + (i < chains % processes) for i in range(processes)]
    tasks = [
        (callback, k, [random_seed or 0, i], draws, tune, target_accept, nutpie_kwargs)
        for i, k in enumerate(shares)
    ]
    _FORKED["model"] = model
    try:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            parts = pool.map(_sample_share, tasks)
    finally:
        _FORKED.clear()
    start = 0
    for part in parts:
        n = part.posterior.sizes["chain"]
        for group in ("posterior", "sample_stats", "log_likelihood"):
            if group in part.groups():
                ds = getattr(part, group).assign_coords(chain=np.arange(start, start + n))
                setattr(part, group, ds)
        start += n
    idata = az.concat(parts, dim="chain") if len(parts) > 1 else parts[0]
    if "observed_data" not in idata.groups():
        idata.add_groups({"observed_data": parts[0].observed_data})
    timing = {"sample": time.perf_counter() - t0}
    info = {
        "nuts_sampler": f"proto-forked-{callback}",
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "random_seed": random_seed,
    }
    result = result_from_idata(model, idata, "nuts", timing, info)
    result.timing["total"] = time.perf_counter() - t0
    return result
