"""Data, parameter layout and named draws of the general compiled density
(:mod:`bayesglmm.bayes.density`).

:func:`density_data` turns a model into the arrays of :func:`bayesglmm.bayes.density.logp_grad`;
:meth:`DensityData.expand` turns unconstrained draws (any leading shape) into the variables
of the PyMC model of :mod:`bayesglmm.bayes.builder` (same names, dims and coords), and
:meth:`DensityData.value_point` into PyMC's value variables (for the tests that compare the
two densities).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model.families import unsupported_reason as family_reason
from . import density as dens
from . import family_kernels as fk


def unsupported_reason(model, parameterization: str = "noncentered") -> str | None:
    """Why the general compiled density cannot represent this model (None when it can)."""
    d, ps = model.design, model.priors
    reason = family_reason(d.family, fk.ROW_FAMILIES, "the general compiled density")
    if reason is not None:
        return reason
    if parameterization not in ("noncentered", "centered"):
        return f"parameterization {parameterization!r}"
    for term, prior in ps.fixed.items():
        if prior.compiled_code not in dens.COEFFICIENT_PRIORS:
            return f"prior {prior.describe()} on {term!r}"
    for t in d.random:
        if t.correlated:
            corr = ps.correlation[t.name]
            if corr.compiled_code not in dens.CORRELATION_PRIORS:
                return f"prior {corr.describe()} on correlated term {t.name}"
            sds = ps.random_sd[t.name]
            if any(p.compiled_code != sds[0].compiled_code or p.scale != "sd" for p in sds):
                return f"mixed or variance-scale sd priors on correlated term {t.name}"
        for prior in ps.random_sd[t.name]:
            if not _positive(prior, ("sd", "variance")):
                return f"prior {prior.describe()} on {t.name}"
    for name, prior in ps.dispersion.items():
        if not _positive(prior, ("sd", "value", "variance")):
            return f"prior {prior.describe()} on {name!r}"
    return None


def _positive(prior, scales: tuple[str, ...]) -> bool:
    """The density has the prior of a positive parameter on one of these scales."""
    return prior.compiled_code in dens.POSITIVE_PRIORS and prior.scale in scales


def _params(prior, width: int) -> np.ndarray:
    """(width, 3) parameters of a prior, columns in ``params()`` order, broadcast."""
    out = np.zeros((width, 3))
    for j, v in enumerate(prior.params().values()):
        out[:, j] = np.broadcast_to(np.asarray(v, dtype=float), (width,))
    return out


@dataclass
class DensityData:
    """Arrays of :func:`bayesglmm.bayes.density.logp_grad` and the parameter layout."""

    args: tuple
    ndim: int
    p: int
    centered: bool
    hyper: list  # per term: (start in x, size)
    effects: list  # per term: (start in x, size)
    disp: tuple | None  # (name, position in x, on variance)
    coords: dict = field(default_factory=dict)
    dims: dict = field(default_factory=dict)

    def expand(self, x: np.ndarray, model) -> dict:
        """The PyMC model's variables from unconstrained draws ``x`` (..., ndim)."""
        d, ps = model.design, model.priors
        lead = x.shape[:-1]
        out = {}
        for term, sl in d.fixed_terms.items():
            out[term] = x[..., sl] if sl.stop - sl.start > 1 else x[..., sl.start]
        for t, (h0, hn), (e0, en) in zip(d.random, self.hyper, self.effects, strict=True):
            k, L = t.n_columns, t.n_levels
            z = x[..., e0 : e0 + en].reshape(*lead, L, k)
            if t.correlated:
                packed = x[..., h0 : h0 + hn].copy()
                rows, cols = np.tril_indices(k)
                diag = rows == cols
                packed[..., diag] = np.exp(packed[..., diag])
                chol = np.zeros((*lead, k, k))
                chol[..., rows, cols] = packed
                sds = np.sqrt(np.sum(chol**2, axis=-1))
                out[f"{t.name}_chol"] = packed
                out[f"{t.name}_sigma"] = sds
                out[f"{t.name}_corr"] = (chol @ np.swapaxes(chol, -1, -2)) / (
                    sds[..., :, None] * sds[..., None, :]
                )
                b = z if self.centered else np.einsum("...ij,...lj->...li", chol, z)
            else:
                sd = np.empty((*lead, k))
                for j, prior in enumerate(ps.random_sd[t.name]):
                    suffix = "" if k == 1 else f"[{t.columns[j]}]"
                    val = np.exp(x[..., h0 + j])
                    if prior.scale == "variance":
                        out[f"{t.name}_var{suffix}"] = val
                        val = np.sqrt(val)
                    out[f"{t.name}_sigma{suffix}"] = val
                    sd[..., j] = val
                b = z if self.centered else z * sd[..., None, :]
            if not self.centered:
                out[f"{t.name}_offset"] = z[..., 0] if k == 1 else z
            out[t.name] = b[..., 0] if k == 1 else b
        if self.disp is not None:
            name, pos, on_var = self.disp
            val = np.exp(x[..., pos])
            if on_var:
                out[f"{name}_var"] = val
                val = np.sqrt(val)
            out[name] = val
        return out

    def value_point(self, x: np.ndarray, model) -> dict:
        """PyMC's value variables (unconstrained) at the vector ``x`` (or gradient split
        the same way)."""
        d, ps = model.design, model.priors
        out = {}
        for term, sl in d.fixed_terms.items():
            out[term] = x[sl] if sl.stop - sl.start > 1 else np.asarray(x[sl.start])
        for t, (h0, hn), (e0, en) in zip(d.random, self.hyper, self.effects, strict=True):
            k, L = t.n_columns, t.n_levels
            if t.correlated:
                out[f"{t.name}_chol_cholesky-cov-packed__"] = x[h0 : h0 + hn]
            else:
                for j, prior in enumerate(ps.random_sd[t.name]):
                    suffix = "" if k == 1 else f"[{t.columns[j]}]"
                    kind = "var" if prior.scale == "variance" else "sigma"
                    out[f"{t.name}_{kind}{suffix}_log__"] = np.asarray(x[h0 + j])
            z = x[e0 : e0 + en]
            name = t.name if self.centered else f"{t.name}_offset"
            out[name] = z if k == 1 else z.reshape(L, k)
        if self.disp is not None:
            name, pos, on_var = self.disp
            out[f"{name}_var_log__" if on_var else f"{name}_log__"] = np.asarray(x[pos])
        return out


def density_data(model, parameterization: str = "noncentered") -> DensityData:
    """The arrays of the general compiled density for ``model``."""
    d, ps = model.design, model.priors
    n, p = d.n, d.p
    family = fk.FAMILY_CODES[d.family.name]
    link = fk.LINK_CODES[d.family.link.name]
    K = sum(t.n_columns for t in d.random)
    reXT = np.zeros((K, n))
    zidxT = np.zeros((K, n), dtype=np.uint32)
    scode = np.zeros(K, dtype=np.int64)
    spar = np.zeros((K, 3))
    sscale = np.zeros(K, dtype=np.int64)
    terms = np.zeros((len(d.random), 6), dtype=np.int64)
    tpar = np.zeros((len(d.random), 2))
    hyper, effects = [], []
    pos, c, boff = p, 0, 0
    for ti, t in enumerate(d.random):
        k = t.n_columns
        size = k * (k + 1) // 2 if t.correlated else k
        hyper.append((pos, size))
        terms[ti] = [k, t.n_levels, boff, int(t.correlated), pos, c]
        if t.correlated:
            lkj = ps.correlation[t.name]
            # PyMC's LKJ constant (the negated normalizer) keeps this density equal to PyMC's
            tpar[ti] = [float(lkj.params()["eta"]), -lkj.log_normalizer(k)]
        for j, prior in enumerate(ps.random_sd[t.name]):
            reXT[c] = t.X[:, j]
            zidxT[c] = boff + t.index * k + j
            scode[c] = prior.compiled_code
            spar[c] = _params(prior, 1)[0]
            sscale[c] = int(prior.scale == "variance")
            c += 1
        pos += size
        boff += t.n_levels * k
    for (_, _), t in zip(hyper, d.random, strict=True):
        effects.append((pos, t.n_levels * t.n_columns))
        pos += t.n_levels * t.n_columns
    disp = None
    dcode, don_var, dpar = -1, 0, np.zeros(3)
    if ps.dispersion:
        ((name, prior),) = ps.dispersion.items()
        dcode, don_var = prior.compiled_code, int(prior.scale == "variance")
        dpar = _params(prior, 1)[0]
        disp = (name, pos, bool(don_var))
        pos += 1
    bcode = np.zeros(p, dtype=np.int64)
    bpar = np.zeros((p, 3))
    for term, sl in d.fixed_terms.items():
        prior = ps.fixed[term]
        bcode[sl] = prior.compiled_code
        bpar[sl] = _params(prior, sl.stop - sl.start)
    trials = d.trials.astype(float) if d.trials is not None else np.ones(n)
    y = d.y.astype(float)
    lconst = float(np.sum(d.family.log_constant(y, trials)))
    centered = parameterization == "centered"
    meta = np.array(
        [n, p, K, len(d.random), boff, family, link, int(centered), int(d.is_bernoulli),
         int(np.any(d.offset != 0)), dcode, don_var, disp[1] if disp else -1],
        dtype=np.int64,
    )  # fmt: skip
    args = (
        np.ascontiguousarray(d.X.T, dtype=float),
        np.ascontiguousarray(d.offset, dtype=float),
        y,
        trials,
        reXT,
        np.all(reXT == 1.0, axis=1),
        zidxT,
        meta,
        bcode,
        bpar,
        scode,
        spar,
        sscale,
        terms,
        tpar,
        dpar,
        lconst,
    )
    dd = DensityData(args, pos, p, centered, hyper, effects, disp)
    _set_dims(dd, model)
    return dd


def _set_dims(dd: DensityData, model) -> None:
    d = model.design
    for term, sl in d.fixed_terms.items():
        if sl.stop - sl.start > 1:
            dd.coords[f"{term}_dim"] = list(d.fixed_coords(term))
            dd.dims[term] = (f"{term}_dim",)
    for t in d.random:
        dd.coords[t.group] = list(t.levels)
        if t.n_columns == 1:
            dims = (t.group,)
        else:
            coef = f"{t.name}_coef"
            dd.coords[coef] = dd.coords[f"{coef}_"] = list(t.columns)
            dims = (t.group, coef)
            if t.correlated:
                k = t.n_columns
                dd.coords[f"{t.name}_chol_dim_0"] = list(range(k * (k + 1) // 2))
                dd.dims[f"{t.name}_chol"] = (f"{t.name}_chol_dim_0",)
                dd.dims[f"{t.name}_sigma"] = (coef,)
                dd.dims[f"{t.name}_corr"] = (coef, f"{coef}_")
        dd.dims[t.name] = dd.dims[f"{t.name}_offset"] = dims


def pointwise_loglik(model, posterior: dict, draws: int) -> np.ndarray:
    """Log-likelihood of each row at each of ``draws`` draws, shape (draws, n), from the
    expanded variables (flattened over chains)."""
    d = model.design
    out = np.empty((draws, d.n))
    disp_name = d.family.dispersion_name
    for s in range(draws):
        eta = d.offset.astype(float).copy()
        for term, sl in d.fixed_terms.items():
            eta += d.X[:, sl] @ np.atleast_1d(posterior[term][s])
        for t in d.random:
            b = posterior[t.name][s].reshape(t.n_levels, t.n_columns)
            eta += (t.X * b[t.index]).sum(axis=1)
        disp = float(posterior[disp_name][s]) if disp_name in posterior else None
        out[s] = d.family.loglik(d.y, trials=d.trials, dispersion=disp, eta=eta)
    return out
