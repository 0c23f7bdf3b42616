"""Empirical backup: draws that wander off the way improper posteriors make them.

When the posterior is improper, its infinite mass sits at an edge of the parameter space:
a variance near 0 (a 1/sigma^2 prior: the density of :math:`\\log\\sigma^2` is flat down to
:math:`-\\infty`), a variance near infinity (too few groups with mixed responses for a
uniform prior on the sd), a coefficient at infinity (flat prior, separated data). A
sampler that finds that edge does not come back: :math:`\\log\\sigma^2` falls to -300 and
below, or a coefficient to 1e30. One that does not find it can look perfectly healthy,
which is why :func:`bayesglmm.check_propriety` runs first; this check catches the chains
that did find it, whatever the static verdict was.

Flags, per variance component (and Gaussian residual variance), on the pooled draws:

* collapse: more than ``EDGE_FRACTION`` of the draws below ``TINY`` times the response
  scale (``var(y)`` for Gaussian models, 1 on a link scale);
* explosion: more than ``EDGE_FRACTION`` above ``HUGE`` times the response scale;
* stuck: a chain whose median is below ``STUCK_LOW`` (or above ``STUCK_HIGH``) times the
  response scale, as a chain started near an improper edge stays there;
* trend: in every chain the median of :math:`\\log\\sigma^2` moves by more than
  ``TREND_NATS`` from the first to the last quarter of the draws, in the same direction.

and, for coefficients with a :class:`~bayesglmm.priors.Flat` prior in non-Gaussian
models, more than ``EDGE_FRACTION`` of draws whose contribution to the linear predictor
exceeds ``ETA_LIMIT`` on the link scale.
"""

from __future__ import annotations

import numpy as np

from .._warn import warn as warn_user

#: a variance below this multiple of the response scale is numerically zero (sd 1e-6)
TINY = 1e-12
#: a variance above this multiple of the response scale is numerically infinite (sd 1e6)
HUGE = 1e12
#: a chain with its median variance below this multiple of the response scale (sd 1e-3) is
#: stuck at 0: a proper posterior whose sd density at 0 is finite, c, puts about 1e-3 c
#: there (at most a few percent), not half of a chain
STUCK_LOW = 1e-6
#: a chain with its median variance above this multiple (sd 1e3) is stuck at infinity
STUCK_HIGH = 1e6
#: share of draws at an edge that is flagged. For a proper posterior with a half-normal
#: prior on the sd, P(var < 1e-12) is about 1e-6 times the posterior density of the sd at 0,
#: far below 5%
EDGE_FRACTION = 0.05
#: median log-variance shift (first to last quarter, every chain, same sign) that is
#: flagged: a factor of 1e4 in the variance. Well-mixed chains of a proper posterior move
#: their quarter medians by a few Monte Carlo standard errors of a log-variance, well below 1
TREND_NATS = float(np.log(1e4))
#: |x_j * beta_j| beyond this on a logit/log scale means probabilities within e^-100 of 0 or 1
ETA_LIMIT = 100.0
#: fewer draws per chain than this: the trend rule is not applied
MIN_DRAWS = 40


class ImproperDriftWarning(UserWarning):
    """Posterior draws drift to 0 or infinity, as draws from an improper posterior do."""


def _trend(logv: np.ndarray) -> float | None:
    """Common drift of the quarter medians across chains, or None."""
    chains, draws = logv.shape
    if draws < MIN_DRAWS:
        return None
    q = draws // 4
    shifts = np.array([np.median(c[-q:]) - np.median(c[:q]) for c in logv])
    if np.all(shifts > TREND_NATS) or np.all(shifts < -TREND_NATS):
        return float(np.median(shifts))
    return None


def _variance_draws(model, draws: dict) -> dict[str, np.ndarray]:
    out = {k: v for k, v in draws.items() if k.startswith("var(")}
    family = model.design.family
    if family.dispersion_is_residual and family.dispersion_name in draws:
        name = family.dispersion_name
        out[f"{name}^2"] = np.asarray(draws[name]) ** 2
    return out


def check_drift(model, idata, draws: dict, warn: bool = True) -> dict:
    """Warn when posterior draws drift to 0 or infinity, the signature of impropriety.

    Parameters
    ----------
    model : GLMM
    idata : arviz.InferenceData
        With a ``posterior`` group of shape (chain, draw, ...).
    draws : dict
        Draws (chain, draw) of the reported parameters by result name, as
        :func:`bayesglmm.bayes.draws.derived_draws` returns them; passed in (not
        computed here) so that this module does not import the posterior code that calls it.
    warn : bool
        Warn with an :class:`ImproperDriftWarning` for what is flagged.

    Returns
    -------
    dict
        ``{"flagged": {parameter: message}, "checked": [parameters]}`` (JSON-serialisable).
    """
    d = model.design
    scale = 1.0 if d.family.discrete else float(np.var(d.y))
    scale = scale if scale > 0 else 1.0
    flagged: dict[str, str] = {}
    checked: list[str] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, v in _variance_draws(model, draws).items():
            v = np.asarray(v, dtype=float)
            checked.append(name)
            tiny = float(np.mean(v < TINY * scale))
            huge = float(np.mean(v > HUGE * scale))
            logv = np.log(np.maximum(v, np.finfo(float).tiny))
            if tiny > EDGE_FRACTION:
                flagged[name] = (
                    f"{tiny:.0%} of draws below {TINY:g} x scale (median log "
                    f"variance {np.median(logv):.1f}): drifting to 0"
                )
            elif huge > EDGE_FRACTION:
                flagged[name] = f"{huge:.0%} of draws above {HUGE:g} x scale: drifting to infinity"
            elif (low := np.median(v, axis=1) < STUCK_LOW * scale).any():
                flagged[name] = (
                    f"{int(low.sum())} of {v.shape[0]} chain(s) stuck below "
                    f"{STUCK_LOW:g} x scale (median log variance "
                    f"{np.median(logv[low]):.1f}): drifting to 0"
                )
            elif (high := np.median(v, axis=1) > STUCK_HIGH * scale).any():
                flagged[name] = (
                    f"{int(high.sum())} of {v.shape[0]} chain(s) stuck above "
                    f"{STUCK_HIGH:g} x scale: drifting to infinity"
                )
            elif (shift := _trend(logv)) is not None:
                where = "0" if shift < 0 else "infinity"
                flagged[name] = (
                    f"log variance moves by {shift:+.1f} between the first and "
                    f"last quarter of every chain: drifting to {where}"
                )
    if d.family.discrete and "posterior" in idata.groups():
        post = idata.posterior
        for term, sl in d.fixed_terms.items():
            if not model.priors.fixed[term].flat or term not in post:
                continue
            beta = np.asarray(post[term].values, dtype=float)
            beta = beta.reshape(beta.shape[0], beta.shape[1], -1)
            reach = np.abs(d.X[:, sl]).max(axis=0)
            for j, col in enumerate(d.fixed_names[sl]):
                checked.append(col)
                share = float(np.mean(np.abs(beta[..., j]) * reach[j] > ETA_LIMIT))
                if share > EDGE_FRACTION:
                    flagged[col] = (
                        f"{share:.0%} of draws move the linear predictor by more "
                        f"than {ETA_LIMIT:g}: drifting to infinity"
                    )
    if flagged and warn:
        lines = "; ".join(f"{k}: {v}" for k, v in flagged.items())
        warn_user(
            f"posterior draws drift the way they do when the posterior is improper ({lines}). "
            "Do not use these draws; check bayesglmm.check_propriety(model) and use proper "
            "priors.",
            ImproperDriftWarning,
        )
    return {"flagged": flagged, "checked": checked}
