"""The compiled GLMM density as Numba C callbacks for nutpie.

nutpie calls a model's density tens of thousands of times per chain. Through Python
callables (``nutpie.compiled_pyfunc``) each call crosses Rust -> Python -> Numba and takes
the GIL; through C callbacks it does not. The callbacks here are module-level
``numba.cfunc``\\ s cached on disk, so a new process compiles nothing: the data reach them
through ``user_data``, a header of array addresses and sizes.

nutpie samples them through :mod:`bayesglmm.bayes.nutpie_driver`, which uses the classes
behind nutpie's C-callback models (``nutpie.compile_pymc.CompiledPyMCModel``), not its
documented entry point, hence the pinned nutpie minor version in ``pyproject.toml``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import kernel

#: header slots: 0 n, 1 p, 2 K, 3 T (terms), 4 family, 5 has dispersion, 6 has offset,
#: 7 bernoulli, 8..16 addresses of XT, reXT, re_ones, zidxT, offset, y, trials, beta_mu,
#: beta_sd, 17 sd_scale, 18 (dispersion scale, log-likelihood constant), 19 address and
#: 20 length of the column of each standardized effect (the
#: :func:`bayesglmm.bayes.kernel.columnar` layout)
_HEADER = 21

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
    XT = numba.carray(_pointer(h[8]), (p, n), dtype=f8)
    reXT = numba.carray(_pointer(h[9]), (k, n), dtype=f8)
    re_ones = numba.carray(_pointer(h[10]), (k,), dtype=np.bool_)
    zidxT = numba.carray(_pointer(h[11]), (k, n), dtype=np.uint32)
    offset = numba.carray(_pointer(h[12]), (n,), dtype=f8)
    y = numba.carray(_pointer(h[13]), (n,), dtype=f8)
    trials = numba.carray(_pointer(h[14]), (n,), dtype=f8)
    beta_mu = numba.carray(_pointer(h[15]), (p,), dtype=f8)
    beta_sd = numba.carray(_pointer(h[16]), (p,), dtype=f8)
    sd_scale = numba.carray(_pointer(h[17]), (k,), dtype=f8)
    scalars = numba.carray(_pointer(h[18]), (2,), dtype=f8)
    zcol = numba.carray(_pointer(h[19]), (h[20],), dtype=np.int32)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    lp, g = kernel.logp_grad_columns(
        x,
        XT,
        reXT,
        re_ones,
        zidxT,
        offset,
        h[6] == 1,
        y,
        trials,
        h[7] == 1,
        beta_mu,
        beta_sd,
        sd_scale,
        scalars[0],
        h[4],
        scalars[1],
        zcol,
    )
    logp_[0] = lp
    for i in range(dim):
        out[i] = g[i]
    if not np.isfinite(lp):
        return 4
    for i in range(dim):
        if not np.isfinite(g[i]):
            return 3
    return 0


#: nutpie's name for the unconstrained vector of each draw: the compiled paths store it as
#: it is and compute the model's variables from all draws at once afterwards (vectorized,
#: half the values per draw of storing them expanded)
RAW = "__x"


@numba.cfunc(_EXPAND_SIG, cache=True, nopython=True)
def raw_expand_cfunc(dim, n_expanded, x_, out_, user_data):
    """nutpie's expansion of a draw: the unconstrained vector itself."""
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (n_expanded,))
    for i in range(dim):
        out[i] = x[i]
    return 0


def callback_model(model, kd):
    """A nutpie model whose density is the cached C callback :func:`_logp_cfunc` and whose
    draws are the raw unconstrained vectors (:data:`RAW`; named by
    :meth:`bayesglmm.bayes.compiled.KernelData.expand`)."""
    d = model.design
    (
        XT,
        reXT,
        re_ones,
        zidxT,
        offset,
        has_offset,
        y,
        trials,
        bernoulli,
        beta_mu,
        beta_sd,
        sd_scale,
        disp,
        family,
        lconst,
        zcol,
    ) = kd.columns
    arrays = [
        np.ascontiguousarray(XT, dtype=np.float64),
        np.ascontiguousarray(reXT, dtype=np.float64),
        np.ascontiguousarray(re_ones, dtype=np.bool_),
        np.ascontiguousarray(zidxT, dtype=np.uint32),
        *(
            np.ascontiguousarray(a, dtype=np.float64)
            for a in (offset, y, trials, beta_mu, beta_sd, sd_scale)
        ),
    ]
    zcol = np.ascontiguousarray(zcol, dtype=np.int32)
    scalars = np.array([disp, lconst], dtype=np.float64)
    header = np.zeros(_HEADER, dtype=np.int64)
    header[:8] = [
        d.n,
        d.p,
        kd.K,
        len(d.random),
        family,
        int(family == kernel.GAUSSIAN_IDENTITY),
        int(has_offset),
        int(bernoulli),
    ]
    for i, a in enumerate(arrays):
        header[8 + i] = a.ctypes.data
    header[18] = scalars.ctypes.data
    header[19], header[20] = zcol.ctypes.data, zcol.shape[0]
    # the arrays must outlive sampling: the model object keeps them
    keep_alive = {f"array{i}": a for i, a in enumerate([*arrays, scalars, zcol])}

    return raw_model(kd.ndim, _logp_cfunc, header, keep_alive, start_box(d, kd.ndim))


#: above this many fixed-effect columns the chains start in (-1, 1): an IRLS iteration costs
#: n p^2 against n p per gradient, so the GLM would cost more than a few percent of a default
#: fit (100,000 rows and 100 columns: 3.6 s)
_GLM_START_MAX_COLUMNS = 500


def start_box(design, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre and half-width of the box each chain's initial point is drawn from, uniformly,
    on the unconstrained scale.

    Every coordinate starts in (-1, 1), as in Stan, except the fixed effects (the first
    ``p`` coordinates of both compiled densities): they start within two standard errors of
    the GLM fit without random effects (IRLS, the start of lme4's and glmmTMB's fits). On
    large data sets the posterior of an intercept is far narrower than (-1, 1): a chain
    started there spends its first warm-up iterations on trees hundreds of leapfrog steps
    deep. On the 10,000-row crossed benchmark this start took 10% fewer gradients over seeds
    1-5 (benchmarks/results/nuts_issue12.txt). Where the GLM does not converge, or its
    fitted probabilities reach 0 or 1 (separation), or there are more than
    :data:`_GLM_START_MAX_COLUMNS` fixed-effect columns, the fixed effects start in (-1, 1).
    """
    centre, half = np.zeros(ndim), np.ones(ndim)
    fit = _glm_estimate(design)
    if fit is not None:
        beta, se = fit
        centre[: beta.size], half[: beta.size] = beta, 2.0 * se
    return centre, half


def _glm_estimate(design) -> tuple[np.ndarray, np.ndarray] | None:
    """(estimate, standard errors) of the GLM without random effects, or None."""
    from ..frequentist import glm
    from ..frequentist.pql_working import ETA_SEPARATION

    if design.p == 0 or design.p > _GLM_START_MAX_COLUMNS:
        return None
    family = design.family
    try:
        with np.errstate(all="ignore"):
            fit = glm.fit_glm_design(design)
            lin = fit.eta - design.offset
            if not fit.converged or (family.has_trials and np.abs(lin).max() > ETA_SEPARATION):
                return None
            beta = np.linalg.lstsq(design.X, lin, rcond=None)[0]
            cov = glm.coefficient_covariance(
                family, design.X, fit, design.y, design.trials, design.offset
            )
    except np.linalg.LinAlgError:  # a start point only: fall back to (-1, 1)
        return None
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(se))):
        return None
    return beta, se


def raw_model(ndim: int, logp_cfunc, header: np.ndarray, keep_alive: dict, start=None):
    """A nutpie model of the C callback ``logp_cfunc`` reading ``header``, whose draws are
    the raw unconstrained vectors (:data:`RAW`). Each chain starts uniformly in the box
    ``start`` = (centre, half-width) (:func:`start_box`), by default (-1, 1)."""
    from .nutpie_driver import CallbackModel

    centre, half = start if start is not None else (np.zeros(ndim), np.ones(ndim))

    def initial_point(seed):
        return centre + half * np.random.default_rng(seed).uniform(-1.0, 1.0, ndim)

    return CallbackModel(
        n_dim=ndim,
        n_expanded=ndim,
        logp_func=logp_cfunc,
        expand_func=raw_expand_cfunc,
        user_data=header,
        names=[RAW],
        shapes=[(ndim,)],
        dims={RAW: (f"{RAW}_dim",)},
        coords={f"{RAW}_dim": np.arange(ndim)},
        initial_point=initial_point,
        keep_alive=keep_alive,
    )
