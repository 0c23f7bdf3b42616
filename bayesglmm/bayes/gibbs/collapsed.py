"""``fit(method="gibbs", scheme="collapsed")``: the crossed-design sampler of
:mod:`~bayesglmm.bayes.gibbs.crossed` run as a plain NumPy loop, its draws turned into
InferenceData with the variable names and coords of the PyMC model (``"Intercept"``,
``"1|f"`` over the levels of ``f``, ``"1|f_sigma"``, ``"1|f_var"`` for a prior on the
variance), then assembled by :func:`~bayesglmm.bayes.posterior.posterior_estimates` like
every Bayesian fit. The model's own priors are sampled; nothing is swapped.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ...errors import MethodError, OptionError
from .. import family_kernels as fk
from .chains import default_cores, run_chains
from .crossed import CrossedData, initial_state

#: ``scheme="auto"`` takes the collapsed sampler for crossed (two or more factors) logit
#: designs with at least this many rows (below it the PyMC steps are quick enough and
#: cover more models)
AUTO_MIN_ROWS = 10_000
#: the (family, link) pairs the sampler takes (its Polya-Gamma steps are logistic)
FAMILIES = frozenset({("binomial", "logit")})


def why_not_collapsed(design, priors) -> str | None:
    """None if the collapsed sampler applies to the model, else the reason it does not."""
    fam, link = design.family.name, design.family.link.name
    if (fam, link) not in FAMILIES:
        return f"it needs a binomial response with logit link; the model is {fam}/{link}"
    if not design.random:
        return "the model has no random-effect terms"
    for t in design.random:
        if t.n_columns != 1:
            return f"term {t.name!r} has {t.n_columns} columns; it handles one-column terms"
        prior = priors.random_sd[t.name][0]
        if prior.point_mass or prior.scale not in ("sd", "variance"):
            return f"term {t.name!r} has a {prior.describe()} prior on its scale"
    for term, prior in priors.fixed.items():
        if prior.as_normal() is None:
            return f"fixed term {term!r} has a {prior.describe()} prior; it needs Normal or Flat"
    return None


def choose_scheme(design, priors, scheme: str) -> str:
    """``"collapsed"`` or ``"steps"``; an explicit ``"collapsed"`` that does not apply raises."""
    reason = why_not_collapsed(design, priors)
    if scheme == "collapsed":
        if reason is not None:
            raise MethodError(f"scheme='collapsed' does not apply: {reason}")
        return scheme
    if scheme == "steps":
        return scheme
    crossed = len({t.group for t in design.random}) >= 2
    return "collapsed" if reason is None and crossed and design.n >= AUTO_MIN_ROWS else "steps"


def scale_logp(prior, closed_form: bool = True):
    """``u -> log p(x) + log x`` at ``x = exp(u)`` (up to a constant): the prior of a scale
    on the log of its own variable (sd or variance), Jacobian included. Closed forms for
    the usual priors (the prior's ``scalar_log_kernel``), else the prior's PyMC distribution
    compiled once."""
    form = prior.scalar_log_kernel() if closed_form else None
    if form is not None:

        def logp(u: float) -> float:
            x = math.exp(u)
            return form(x, u) + u

        return logp
    import pymc as pm
    import pytensor
    from pymc.logprob.transforms import LogTransform

    from ..prior_dists import build_prior

    with pm.Model() as m:
        rv = build_prior(prior, "x")
    if not isinstance(m.rvs_to_transforms.get(rv), LogTransform):
        raise MethodError(f"scheme='collapsed': {prior.describe()} is not a positive scale prior")
    value = m.rvs_to_values[rv]
    fn = pytensor.function([value], m.logp(jacobian=True), on_unused_input="ignore")
    fn.trust_input = True

    def logp(u: float) -> float:
        return float(fn(np.asarray(u, dtype=value.type.dtype)))

    return logp


def _trials(design) -> np.ndarray:
    trials = design.trials if design.trials is not None else np.ones(design.n)
    return np.asarray(trials, dtype=float)


def crossed_data(design, priors) -> CrossedData:
    """The sampler's arrays; with prior weights ``y`` and ``trials`` are ``w y`` and
    ``w n`` (the Polya-Gamma augmentation of ``w_i l_i``)."""
    p = design.p
    mean, prec = np.zeros(p), np.zeros(p)
    for term, sl in design.fixed_terms.items():
        mu, sd = priors.fixed[term].as_normal()  # a flat prior: sd = inf, precision 0
        mean[sl] = mu
        prec[sl] = 1.0 / np.asarray(sd, dtype=float) ** 2
    z, logps, powers = [], [], []
    for t in design.random:
        x = np.asarray(t.X[:, 0], dtype=float)
        z.append(None if np.all(x == 1.0) else x)
        prior = priors.random_sd[t.name][0]
        logps.append(scale_logp(prior))
        powers.append(0.5 if prior.scale == "variance" else 1.0)
    y, trials = np.asarray(design.y, dtype=float), _trials(design)
    if design.weights is not None:
        # prior weights w: w_i l_i is the logit likelihood of w_i y_i successes in w_i n_i
        # trials (up to a constant), so the Polya-Gamma draws are PG(w_i n_i, eta_i), valid
        # for real w_i n_i > 0
        y, trials = design.weights * y, design.weights * trials
    return CrossedData(
        X=np.asarray(design.X, dtype=float),
        y=y,
        trials=trials,
        offset=np.asarray(design.offset, dtype=float),
        index=[np.asarray(t.index, dtype=np.intp) for t in design.random],
        z=z,
        n_levels=[t.n_levels for t in design.random],
        prior_mean=mean,
        prior_prec=prec,
        scale_logp=logps,
        scale_power=powers,
    )


def _scale_name(t, prior) -> str:
    return f"{t.name}_var" if prior.scale == "variance" else f"{t.name}_sigma"


def _start_state(design, priors, data, start: dict | None):
    """Zeros for the effects, 1 for every scale, overridden by ``start`` (by variable name)."""
    beta = np.zeros(design.p)
    b = [np.zeros(t.n_levels) for t in design.random]
    u = np.zeros(len(design.random))
    known = {}
    for term, sl in design.fixed_terms.items():
        known[term] = ("beta", sl)
    for k, t in enumerate(design.random):
        known[t.name] = ("b", k)
        known[_scale_name(t, priors.random_sd[t.name][0])] = ("u", k)
    for key, value in (start or {}).items():
        if key not in known:
            raise OptionError(
                f"start[{key!r}] is not a variable of the collapsed sampler; "
                f"known: {', '.join(known)}"
            )
        what, where = known[key]
        arr = np.asarray(value, dtype=float)
        if what == "beta":
            beta[where] = arr
        elif what == "b":
            b[where] = np.broadcast_to(arr, b[where].shape).copy()
        else:
            if not float(arr) > 0:
                raise OptionError(f"start[{key!r}] must be positive, got {value!r}")
            u[where] = math.log(float(arr))
    return initial_state(data, beta, b, u)


def run_collapsed(
    model,
    priors,
    draws: int,
    tune: int,
    chains: int,
    random_seed,
    progressbar,
    start=None,
    log_likelihood: bool = True,
    cores: int | None = None,
):
    """Sample the chains (in ``cores`` forked processes); returns (InferenceData, timing,
    details)."""
    from ..._arviz import import_arviz

    az = import_arviz()
    import xarray as xr

    design = model.design
    t0 = time.perf_counter()
    data = crossed_data(design, priors)
    starts = start if isinstance(start, list) else [start] * chains
    if len(starts) != chains:
        raise OptionError(f"start: {len(starts)} dicts given for {chains} chains")
    states = [_start_state(design, priors, data, s) for s in starts]
    loglik = None
    if log_likelihood:
        fam = design.family
        kind = fk.CANONICAL[(fam.name, fam.link.name)]
        y, n, w = data.y, data.trials, design.weights
        if w is not None:  # the pointwise log-likelihood is the weighted one, w_i l_i
            y, n = np.asarray(design.y, dtype=float), _trials(design)
        const = fam.log_constant(y, n)

        def loglik(eta):
            ll = fk.canonical_loglik(kind, eta, y, n, const)
            return ll if w is None else fam.weighted(ll, w)

    seeds = np.random.SeedSequence(random_seed).spawn(chains)
    cores = default_cores(chains) if cores is None else cores
    t1 = time.perf_counter()
    label = f"Gibbs (collapsed): {chains} chains x {tune}+{draws}"
    out = run_chains(data, states, seeds, draws, tune, loglik, cores, progressbar, label)
    t2 = time.perf_counter()
    beta = np.stack([o.beta for o in out])
    u = np.stack([o.u for o in out])
    b = [np.stack([o.b[k] for o in out]) for k in range(len(design.random))]
    ll = np.stack([o.loglik for o in out]) if log_likelihood else None
    evals = np.stack([o.evals for o in out])
    widths = [o.widths for o in out]
    posterior, coords, dims = {}, {}, {}
    for term, sl in design.fixed_terms.items():
        names = design.fixed_names[sl]
        if len(names) == 1:
            posterior[term] = beta[:, :, sl.start]
        else:
            dim = f"{term}_dim"
            coords[dim] = design.fixed_coords(term)
            posterior[term], dims[term] = beta[:, :, sl], [dim]
    for k, t in enumerate(design.random):
        coords[t.group] = list(t.levels)
        posterior[t.name], dims[t.name] = b[k], [t.group]
        prior = priors.random_sd[t.name][0]
        x = np.exp(u[:, :, k])
        if prior.scale == "variance":
            posterior[f"{t.name}_var"] = x
            posterior[f"{t.name}_sigma"] = np.sqrt(x)
        else:
            posterior[f"{t.name}_sigma"] = x
    idata = az.from_dict(
        posterior=posterior,
        sample_stats={"slice_evals": evals},
        coords=coords,
        dims=dims,
    )
    name = design.spec.response.name
    obs_dim = f"{name}_dim_0"
    groups = {"observed_data": xr.Dataset({name: ((obs_dim,), design.y)})}
    if ll is not None:
        groups["log_likelihood"] = xr.Dataset(
            {name: (("chain", "draw", obs_dim), ll)},
            coords={"chain": idata.posterior.chain.values, "draw": idata.posterior.draw.values},
        )
    idata.add_groups(groups)
    timing = {"build": t1 - t0, "sample": t2 - t1}
    details = {
        "slice_widths": widths,
        "scan": "omega, (beta, b_k) per factor, scale + move",
        "processes": min(cores, chains),
    }
    return idata, timing, details
