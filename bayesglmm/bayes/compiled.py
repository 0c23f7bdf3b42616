"""NUTS (nutpie's sampler) on the precompiled GLMM density of :mod:`bayesglmm.bayes.kernel`.

Same model, same priors, same variable names and coords as the PyMC model of
:mod:`bayesglmm.bayes.builder`, so the draws feed the same result assembly; what changes is
that no PyTensor graph is compiled in the user's process. Two densities: the specialised
kernel (:mod:`bayesglmm.bayes.kernel`, the commonest models, fastest) and the general one
(:mod:`bayesglmm.bayes.density`: every family, link, prior and term it covers, see
:func:`bayesglmm.bayes.density_layout.unsupported_reason`).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import MethodError
from ..model.families import unsupported_reason as family_reason
from . import kernel

#: why a design with prior weights has no compiled density (both densities sum unweighted
#: rows; the PyMC model of :mod:`bayesglmm.bayes.builder` takes the weights)
WEIGHTS_REASON = "prior weights (the compiled densities have no weighted likelihood)"


def unsupported_reason(model, parameterization: str = "noncentered") -> str | None:
    """Why no compiled density can represent this model (None when one can).

    The specialised kernel (:mod:`bayesglmm.bayes.kernel`) takes the most common models;
    the general density (:mod:`bayesglmm.bayes.density`) the rest of what it covers.
    Neither has a weighted likelihood: a design with prior weights gets
    :data:`WEIGHTS_REASON` (:func:`~bayesglmm.bayes.nuts.fit_nuts` then samples the PyMC
    model, which takes them).
    """
    if getattr(model.design, "weights", None) is not None:
        return WEIGHTS_REASON
    if specialised_reason(model, parameterization) is None:
        return None
    from .density_layout import unsupported_reason as general_reason

    return general_reason(model, parameterization)


def specialised_reason(model, parameterization: str = "noncentered") -> str | None:
    """Why the specialised kernel cannot represent this model (None when it can)."""
    d, ps = model.design, model.priors
    reason = family_reason(d.family, kernel.FAMILIES, "the compiled kernel")
    if reason is not None:
        return reason
    if parameterization != "noncentered":
        return "the centered parameterization"
    for term, prior in ps.fixed.items():
        normal = prior.as_normal()
        if normal is None or not np.all(np.isfinite(normal[1])):
            return f"prior {prior.describe()} on {term!r} (compiled: Normal)"
    for t in d.random:
        if t.correlated:
            return f"correlated term {t.name}"
        for prior in ps.random_sd[t.name]:
            if prior.as_half_normal() is None or prior.scale != "sd":
                return f"prior {prior.describe()} on {t.name} (compiled: HalfNormal sd)"
    for name, prior in ps.dispersion.items():
        if prior.as_half_normal() is None or prior.scale != "sd":
            return f"prior {prior.describe()} on {name!r} (compiled: HalfNormal)"
    return None


@dataclass
class KernelData:
    """Arrays of the compiled density and the map from its vector to named variables."""

    args: tuple
    family: int
    p: int
    K: int
    q: int
    ndim: int
    names: list
    shapes: list
    dims: dict
    coords: dict

    @cached_property
    def columns(self) -> tuple:
        """``args`` in the layout of :func:`~.kernel.logp_grad_columns`
        (:func:`~.kernel.columnar`), built once for the sampler and the log-likelihood."""
        return kernel.columnar(self.args)

    def expand(self, x: np.ndarray, design) -> dict:
        """Named variables (as in the PyMC model) from unconstrained vectors ``x``
        (..., ndim): one draw or all of them at once."""
        x = np.asarray(x)
        lead = x.shape[:-1]
        out = {}
        p, K = self.p, self.K
        for term, sl in design.fixed_terms.items():
            out[term] = np.array(x[..., sl] if sl.stop - sl.start > 1 else x[..., sl.start])
        sd = np.exp(x[..., p : p + K])
        c, z0 = 0, p + K
        for t in design.random:
            k, L = t.n_columns, t.n_levels
            z = x[..., z0 : z0 + L * k].reshape(*lead, L, k)
            s = sd[..., c : c + k]
            if k == 1:
                out[f"{t.name}_sigma"] = np.array(s[..., 0])
                out[f"{t.name}_offset"] = z[..., 0].copy()
                out[t.name] = z[..., 0] * s
            else:
                for j, col in enumerate(t.columns):
                    out[f"{t.name}_sigma[{col}]"] = np.array(s[..., j])
                out[f"{t.name}_offset"] = z.copy()
                out[t.name] = z * s[..., None, :]
            c += k
            z0 += L * k
        if self.family == kernel.GAUSSIAN_IDENTITY:
            out["sigma"] = np.exp(x[..., z0])
        return out


def kernel_data(model) -> KernelData:
    d, ps = model.design, model.priors
    family = kernel.FAMILIES[(d.family.name, d.family.link.name)]
    n = d.n
    K = sum(t.n_columns for t in d.random)
    re_x = np.zeros((n, K))
    re_zidx = np.zeros((n, K), dtype=np.int64)
    sd_scale = np.zeros(K)
    c, zoff = 0, 0
    for t in d.random:
        for j in range(t.n_columns):
            re_x[:, c] = t.X[:, j]
            re_zidx[:, c] = zoff + t.index * t.n_columns + j
            sd_scale[c] = ps.random_sd[t.name][j].as_half_normal()
            c += 1
        zoff += t.n_levels * t.n_columns
    beta_mu = np.zeros(d.p)
    beta_sd = np.ones(d.p)
    for term, sl in d.fixed_terms.items():
        beta_mu[sl], beta_sd[sl] = ps.fixed[term].as_normal()
    trials = d.trials if d.trials is not None else np.ones(n)
    disp_scale = ps.dispersion["sigma"].as_half_normal() if "sigma" in ps.dispersion else 1.0
    lconst = kernel.response_constant(d.y, trials, family)
    args = (
        np.ascontiguousarray(d.X, dtype=float),
        d.offset.astype(float),
        d.y.astype(float),
        trials.astype(float),
        re_x,
        re_zidx,
        beta_mu,
        beta_sd,
        sd_scale,
        float(disp_scale),
        family,
        lconst,
    )
    ndim = d.p + K + zoff + (1 if family == kernel.GAUSSIAN_IDENTITY else 0)
    kd = KernelData(args, family, d.p, K, zoff, ndim, [], [], {}, {})
    example = kd.expand(np.zeros(ndim), d)
    kd.names = list(example)
    kd.shapes = [np.shape(v) for v in example.values()]
    for term, sl in d.fixed_terms.items():
        if sl.stop - sl.start > 1:
            kd.coords[f"{term}_dim"] = d.fixed_coords(term)
            kd.dims[term] = (f"{term}_dim",)
    for t in d.random:
        kd.coords[t.group] = list(t.levels)
        if t.n_columns == 1:
            kd.dims[t.name] = kd.dims[f"{t.name}_offset"] = (t.group,)
        else:
            kd.coords[f"{t.name}_coef"] = list(t.columns)
            kd.dims[t.name] = kd.dims[f"{t.name}_offset"] = (t.group, f"{t.name}_coef")
    return kd


#: nutpie settings bayesglmm changes on the compiled path (``sampler_kwargs`` overrides them):
#: the diagonal mass matrix is adapted from the variances of the warm-up draws, Stan's and
#: PyMC's estimate, rather than nutpie's default gradient-based one. On the robustness corpus
#: (benchmarks/corpus_nuts.py, 25 models, 1000 tuning steps) the median over models of the
#: smallest bulk ESS rose from about 490 to 790, and on the 10,000-row crossed model from 493-583
#: to 670-729 (seeds 1-3); see benchmarks/results/nuts_mass_matrix.txt.
NUTPIE_DEFAULTS = {"use_grad_based_mass_matrix": False}


def sample_compiled(
    model,
    draws: int,
    tune: int,
    chains: int,
    cores: int,
    random_seed: int | None,
    progressbar: bool,
    target_accept: float,
    log_likelihood: bool,
    callback: str = "c",
    parameterization: str = "noncentered",
    **nutpie_kwargs,
):
    """Draws as ArviZ InferenceData (posterior, sample_stats, observed_data, log_likelihood).

    ``callback``: ``"c"`` (default) hands nutpie the density as cached C callbacks (no GIL,
    no Python per call), ``"python"`` as Python callables (same kernel; kept for checks).
    """
    if getattr(model.design, "weights", None) is not None:
        raise MethodError(f"the compiled NUTS path does not cover {WEIGHTS_REASON}")
    nutpie_kwargs = {**NUTPIE_DEFAULTS, **nutpie_kwargs}
    if specialised_reason(model, parameterization) is not None:
        return _sample_general(
            model, draws, tune, chains, cores, random_seed, progressbar, target_accept,
            log_likelihood, parameterization, nutpie_kwargs,
        )  # fmt: skip
    from . import nutpie_driver
    from .callbacks import RAW, callback_model, start_box

    design = model.design
    kd = kernel_data(model)
    args, logp_grad = kd.columns, kernel.logp_grad_columns

    def make_logp():
        def logp(x, **_):
            return logp_grad(x, *args)

        return logp

    def make_expand(seed1, seed2, chain):
        def expand(x, **_):
            return {RAW: x.copy()}

        return expand

    if callback == "c":
        compiled = callback_model(model, kd)
    else:
        from nutpie.compiled_pyfunc import from_pyfunc

        centre, half = start_box(design, kd.ndim)

        def init(seed):
            return centre + half * np.random.default_rng(seed).uniform(-1.0, 1.0, kd.ndim)

        compiled = from_pyfunc(
            kd.ndim,
            make_logp,
            make_expand,
            [np.dtype("float64")],
            [(kd.ndim,)],
            [RAW],
            coords={f"{RAW}_dim": np.arange(kd.ndim)},
            dims={RAW: (f"{RAW}_dim",)},
            make_initial_point_fn=init,
        )
    idata = _run_nutpie(
        compiled, draws, tune, chains, cores, random_seed, progressbar, target_accept,
        nutpie_kwargs,
    )  # fmt: skip
    raw = idata.posterior[RAW]
    posterior = nutpie_driver.named_posterior(
        raw, kd.expand(raw.values, design), kd.dims, kd.coords
    )
    del idata.posterior
    idata.add_groups({"posterior": posterior})
    _add_data_groups(idata, model, kd, log_likelihood)
    return idata


def _run_nutpie(compiled, draws, tune, chains, cores, random_seed, progressbar, target_accept,
                nutpie_kwargs):  # fmt: skip
    from . import nutpie_driver

    seed = int(np.random.SeedSequence(random_seed).generate_state(1)[0])
    # nutpie draws its bar only on a terminal: in a pipe, progress lines of our own
    in_pipe = bool(progressbar) and not _is_terminal(sys.stderr)
    label = f"NUTS (compiled, nutpie): {chains} chains x {tune}+{draws} iterations"
    with _pipe_progress(label) if in_pipe else contextlib.nullcontext():
        return nutpie_driver.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            seed=seed,
            progressbar=bool(progressbar) and not in_pipe,
            target_accept=target_accept,
            save_warmup=False,
            **nutpie_kwargs,
        )


def _sample_general(model, draws, tune, chains, cores, random_seed, progressbar, target_accept,
                    log_likelihood, parameterization, nutpie_kwargs):  # fmt: skip
    """nutpie on the general density (:mod:`bayesglmm.bayes.density`)."""
    import xarray as xr

    from . import density_sampler
    from .callbacks import RAW

    dd, compiled = density_sampler.prepare(model, parameterization)
    idata = _run_nutpie(
        compiled, draws, tune, chains, cores, random_seed, progressbar, target_accept,
        nutpie_kwargs,
    )  # fmt: skip
    posterior = density_sampler.named_posterior(idata.posterior[RAW], dd, model)
    d = model.design
    name = d.spec.response.name
    obs_dim = f"{name}_dim_0"
    groups = {"observed_data": xr.Dataset({name: ((obs_dim,), d.y)})}
    if log_likelihood:
        groups["log_likelihood"] = density_sampler.log_likelihood_group(model, posterior, obs_dim)
    del idata.posterior
    idata.add_groups({"posterior": posterior, **groups})
    return idata


#: in a pipe, a progress line every this many seconds (the first after PROGRESS_DELAY)
PIPE_EVERY = 10.0


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _pipe_progress(label: str):
    """Lines on stderr while the block runs: once it has run
    :data:`~bayesglmm.options.PROGRESS_DELAY` seconds, then every :data:`PIPE_EVERY`, and
    when it ends (nothing at all for a block shorter than the delay)."""
    from ..options import PROGRESS_DELAY

    done = threading.Event()
    said = []
    t0 = time.perf_counter()

    def report():
        wait = PROGRESS_DELAY
        while not done.wait(wait):
            print(
                f"{label}: running, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True
            )
            said.append(True)
            wait = PIPE_EVERY

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        if said:
            print(f"{label}: done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


def _add_data_groups(idata, model, kd: KernelData, log_likelihood: bool) -> None:
    import xarray as xr

    d = model.design
    name = d.spec.response.name
    obs_dim = f"{name}_dim_0"
    observed = xr.Dataset({name: ((obs_dim,), d.y)})
    groups = {"observed_data": observed}
    if log_likelihood:
        post = idata.posterior
        nc, nd = post.sizes["chain"], post.sizes["draw"]
        beta = np.zeros((nc * nd, d.p))
        for term, sl in d.fixed_terms.items():
            beta[:, sl] = post[term].values.reshape(nc * nd, -1)
        effects = (
            np.concatenate([post[t.name].values.reshape(nc * nd, -1) for t in d.random], axis=1)
            if d.random
            else np.zeros((nc * nd, 0))
        )
        sigma = post["sigma"].values.reshape(-1) if "sigma" in post else np.ones(nc * nd)
        XT, reXT, re_ones, zidxT, offset, _, y, trials, *_ = kd.columns
        ll = kernel.pointwise_loglik(
            beta,
            effects,
            sigma,
            XT,
            reXT,
            re_ones,
            zidxT,
            offset,
            y,
            trials,
            kernel.row_constants(y, trials, kd.family),
            kd.family,
        )
        groups["log_likelihood"] = xr.Dataset(
            {name: (("chain", "draw", obs_dim), ll.reshape(nc, nd, d.n))},
            coords={"chain": post.chain.values, "draw": post.draw.values},
        )
    idata.add_groups(groups)
