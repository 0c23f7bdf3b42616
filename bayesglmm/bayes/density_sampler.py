"""nutpie's NUTS on the general compiled density (:mod:`bayesglmm.bayes.density`).

The density reaches nutpie as a cached Numba C callback (no GIL, nothing compiled in a new
process), like the specialised kernel of :mod:`bayesglmm.bayes.callbacks`. nutpie stores
the unconstrained vector as it is (one variable ``__x``); the PyMC model's variables are
computed from all draws at once afterwards (:meth:`DensityData.expand`), so one expansion
serves every family, prior and term.
"""

from __future__ import annotations

import numba
import numpy as np

from . import density
from .callbacks import _LOGP_SIG, _pointer, raw_model, start_box
from .density_layout import DensityData, density_data, pointwise_loglik

#: header: 0 n, 1 p, 2 K, 3 T, then the addresses of the 17 arrays of ``DensityData.args``
#: (``lconst`` as a one-element array)
_HEADER = 4 + 17


@numba.cfunc(_LOGP_SIG, cache=True, nopython=True)
def _logp_cfunc(dim, x_, out_, logp_, user_data):
    h = numba.carray(user_data, (_HEADER,), dtype=np.int64)
    n, p, k, nt = h[0], h[1], h[2], h[3]
    f8, i8 = np.float64, np.int64
    lp, g = density.logp_grad(
        numba.carray(x_, (dim,)),
        numba.carray(_pointer(h[4]), (p, n), dtype=f8),
        numba.carray(_pointer(h[5]), (n,), dtype=f8),
        numba.carray(_pointer(h[6]), (n,), dtype=f8),
        numba.carray(_pointer(h[7]), (n,), dtype=f8),
        numba.carray(_pointer(h[8]), (k, n), dtype=f8),
        numba.carray(_pointer(h[9]), (k,), dtype=np.bool_),
        numba.carray(_pointer(h[10]), (k, n), dtype=np.uint32),
        numba.carray(_pointer(h[11]), (13,), dtype=i8),
        numba.carray(_pointer(h[12]), (p,), dtype=i8),
        numba.carray(_pointer(h[13]), (p, 3), dtype=f8),
        numba.carray(_pointer(h[14]), (k,), dtype=i8),
        numba.carray(_pointer(h[15]), (k, 3), dtype=f8),
        numba.carray(_pointer(h[16]), (k,), dtype=i8),
        numba.carray(_pointer(h[17]), (nt, 6), dtype=i8),
        numba.carray(_pointer(h[18]), (nt, 2), dtype=f8),
        numba.carray(_pointer(h[19]), (3,), dtype=f8),
        numba.carray(_pointer(h[20]), (1,), dtype=f8)[0],
    )
    logp_[0] = lp
    out = numba.carray(out_, (dim,))
    for i in range(dim):
        out[i] = g[i]
    if not np.isfinite(lp):
        return 4
    for i in range(dim):
        if not np.isfinite(g[i]):
            return 3
    return 0


def callback_model(dd: DensityData, design):
    """A nutpie model whose density is :func:`_logp_cfunc` and whose draws are the raw
    unconstrained vectors, each chain started in :func:`~.callbacks.start_box`."""
    arrays = []
    for a in dd.args[:-1]:
        arrays.append(np.ascontiguousarray(a))
    arrays.append(np.array([dd.args[-1]], dtype=np.float64))
    meta = dd.args[7]
    header = np.zeros(_HEADER, dtype=np.int64)
    header[:4] = meta[:4]
    for i, a in enumerate(arrays):
        header[4 + i] = a.ctypes.data

    keep_alive = {f"array{i}": a for i, a in enumerate(arrays)}
    return raw_model(dd.ndim, _logp_cfunc, header, keep_alive, start_box(design, dd.ndim))


def named_posterior(raw, dd: DensityData, model):
    """The posterior Dataset of the PyMC model's variables from the raw draws (a
    DataArray (chain, draw, ndim))."""
    from .nutpie_driver import named_posterior as dataset

    return dataset(raw, dd.expand(np.asarray(raw.values), model), dd.dims, dd.coords)


def log_likelihood_group(model, posterior, obs_dim: str):
    """``log_likelihood`` Dataset from the named posterior."""
    import xarray as xr

    nc, nd = posterior.sizes["chain"], posterior.sizes["draw"]
    flat = {k: v.values.reshape(nc * nd, *v.shape[2:]) for k, v in posterior.data_vars.items()}
    ll = pointwise_loglik(model, flat, nc * nd)
    name = model.design.spec.response.name
    return xr.Dataset(
        {name: (("chain", "draw", obs_dim), ll.reshape(nc, nd, -1))},
        coords={"chain": posterior.chain.values, "draw": posterior.draw.values},
    )


def prepare(model, parameterization: str):
    """(DensityData, nutpie model) for ``model``."""
    dd = density_data(model, parameterization)
    return dd, callback_model(dd, model.design)
