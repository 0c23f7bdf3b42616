"""Operations on prior sets: alternatives by key, scaled variance priors, power-scaled priors.

All plain data (:mod:`bayesglmm.priors`), no PyMC. Power-scaling a prior,
:math:`p(\\theta)^\\alpha` on the parameter's declared scale (the convention of
:mod:`bayesglmm.sensitivity.log_prior`), stays in its family for most priors:

=====================  ==================================================  =====================
prior                  power-scaled by ``alpha``                           proper when
=====================  ==================================================  =====================
Normal(mu, s)          Normal(mu, s / sqrt(alpha))                         always
HalfNormal(s)          HalfNormal(s / sqrt(alpha))                         always
Exponential(lam)       Exponential(alpha lam)                              always
Gamma(a, b)            Gamma(alpha (a - 1) + 1, alpha b)                   alpha (a - 1) + 1 > 0
InverseGamma(a, b)     InverseGamma(alpha (a + 1) - 1, alpha b)            alpha (a + 1) > 1
PowerVariance(a)       PowerVariance(alpha (a + 1) - 1)                    never (improper)
Jeffreys()             PowerVariance(alpha - 1)                            never (improper)
Flat(), HalfFlat()     unchanged (log density 0)                           never (improper)
StudentT(nu, .), Half  not a Student-t; tails ~ x^-(alpha (nu + 1))        alpha (nu + 1) > 1
Cauchy, HalfCauchy     as Student-t with nu = 1                            alpha > 1/2
=====================  ==================================================  =====================

Doubling the scale of a half-normal prior is power-scaling it by ``alpha = 1/4``.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from ...errors import PriorError
from ...model.priors import (
    Cauchy,
    Exponential,
    Flat,
    Gamma,
    HalfCauchy,
    HalfFlat,
    HalfNormal,
    HalfStudentT,
    InverseGamma,
    InverseWishart,
    Jeffreys,
    Normal,
    PowerVariance,
    Prior,
    StudentT,
)


def _mul(v, f):
    if isinstance(v, tuple | list):
        return tuple(float(x) * f for x in v)
    return float(v) * f


def powerscale_prior(prior: Prior, alpha: float) -> tuple[Prior | None, bool, str]:
    """``(power-scaled prior or None, proper, note)`` for ``p(theta)^alpha``."""
    a = float(alpha)
    if isinstance(prior, Normal | HalfNormal):
        return replace(prior, sigma=_mul(prior.sigma, 1.0 / np.sqrt(a))), True, ""
    if isinstance(prior, Exponential):
        return replace(prior, lam=prior.lam * a), True, ""
    if isinstance(prior, Gamma):
        shape = a * (prior.alpha - 1.0) + 1.0
        ok = shape > 0
        new = replace(prior, alpha=shape, beta=prior.beta * a) if ok else None
        return new, ok, "" if ok else f"Gamma shape {shape:.3g} <= 0: improper at 0"
    if isinstance(prior, InverseGamma):
        shape = a * (prior.alpha + 1.0) - 1.0
        ok = shape > 0
        new = InverseGamma(shape, prior.beta * a) if ok else None
        return new, ok, "" if ok else f"inverse-gamma shape {shape:.3g} <= 0: improper tail"
    if isinstance(prior, PowerVariance | Jeffreys):
        new_a = a * (prior.exponent + 1.0) - 1.0
        return PowerVariance(new_a), False, f"PowerVariance(a={new_a:.4g})"
    if isinstance(prior, Flat | HalfFlat):
        return prior, False, "flat: power-scaling leaves it unchanged"
    if isinstance(prior, StudentT | HalfStudentT | Cauchy | HalfCauchy):
        nu = getattr(prior, "nu", 1.0)
        ok = a * (nu + 1.0) > 1.0
        return None, ok, "" if ok else f"tails x^-{a * (nu + 1):.3g}: not integrable"
    return None, True, f"{prior.describe()}: no power-scaled form"


def scale_prior(prior: Prior, factor: float) -> Prior:
    """The prior of ``factor * sigma`` for a prior on a standard deviation ``sigma``
    (on a variance: of ``factor^2 * sigma^2``); scale-free priors come back unchanged."""
    f = float(factor)
    if isinstance(prior, HalfNormal | HalfStudentT):
        return replace(prior, sigma=_mul(prior.sigma, f))
    if isinstance(prior, HalfCauchy):
        return replace(prior, beta=prior.beta * f)
    if isinstance(prior, Exponential):
        return replace(prior, lam=prior.lam / f)
    if isinstance(prior, Gamma):
        return replace(prior, beta=prior.beta / (f if prior.scale == "sd" else f * f))
    if isinstance(prior, InverseGamma):
        return replace(prior, beta=prior.beta * f * f)
    if isinstance(prior, InverseWishart):
        return replace(prior, psi=_mul_matrix(prior.psi, f * f))
    return prior  # PowerVariance, Jeffreys, HalfFlat: no scale


def _mul_matrix(psi, f):
    arr = np.asarray(psi, dtype=float) * f
    return float(arr) if arr.ndim == 0 else tuple(map(tuple, arr.tolist()))


def scale_variance_priors(priors, factor: float):
    """A copy of the PriorSet with every variance-component prior scaled by ``factor``."""
    out = copy.deepcopy(priors)
    for term, ps in out.random_sd.items():
        out.random_sd[term] = [scale_prior(p, factor) for p in ps]
    for term, p in out.correlation.items():
        if isinstance(p, InverseWishart):
            out.correlation[term] = scale_prior(p, factor)
            out.random_sd[term] = [out.correlation[term] for _ in out.random_sd[term]]
    return out


def with_priors(model, priors):
    """A shallow copy of ``model`` with another PriorSet (design shared, not rebuilt)."""
    m = copy.copy(model)
    m.priors = priors
    return m


def alternative_priors(model, spec, name: str = "alternative"):
    """The PriorSet of an alternative: ``spec`` a PriorSet, or a dict of overrides by key
    (as ``GLMM(priors=...)``) applied to ``model.priors``; keys checked, errors name ``name``."""
    from ...model.prior_set import PriorSet, resolve_priors

    if isinstance(spec, PriorSet):
        return spec
    if not isinstance(spec, dict):
        raise PriorError(
            f"priors[{name!r}] must be a dict of priors by key (as GLMM(priors=...)) or a "
            f"PriorSet, got {type(spec).__name__}"
        )
    try:
        full = resolve_priors(model.design, spec)
    except PriorError as err:
        raise PriorError(f"priors[{name!r}]: {err}") from None
    dflt = resolve_priors(model.design, None)
    out = copy.deepcopy(model.priors)
    for slot in ("fixed", "correlation", "dispersion", "random_sd"):
        new, old, target = getattr(full, slot), getattr(dflt, slot), getattr(out, slot)
        for key, value in new.items():
            if value != old.get(key):
                target[key] = value
    out.user_keys = set(out.user_keys) | set(spec)
    return out


def powerscaled_set(priors, alpha: float, variables: set | None, names: dict):
    """Power-scale the priors whose log-prior variable is in ``variables`` (all if None).

    ``names`` maps a log-prior variable to ``(slot, key, index)`` in the PriorSet. Returns
    ``(PriorSet or None, prior proper, notes)``; None when a scaled prior has no named form.
    """
    out = copy.deepcopy(priors)
    proper, notes, expressible = True, [], True
    for var, (slot, key, j) in names.items():
        if variables is not None and var not in variables:
            continue
        target = getattr(out, slot)
        index = range(len(target[key])) if j == "all" else [j]
        for i in index:
            prior = target[key] if i is None else target[key][i]
            new, ok, note = powerscale_prior(prior, alpha)
            proper = proper and ok and not prior.improper
            if note and note not in notes:
                notes.append(f"{var}: {note}")
            if new is None:
                expressible = False
            elif i is None:
                target[key] = new
            else:
                target[key][i] = new
    return (out if expressible else None), proper, notes
