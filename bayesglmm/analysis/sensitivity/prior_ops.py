"""Operations on prior sets: alternatives by key, scaled variance priors, power-scaled priors.

All plain data (:mod:`bayesglmm.model.priors`), no PyMC. Each prior power-scales
(:meth:`~bayesglmm.model.priors.Prior.powerscaled`, :math:`p(\\theta)^\\alpha` on the
parameter's declared scale, the convention of :mod:`bayesglmm.bayes.log_prior`) and rescales
(:meth:`~bayesglmm.model.priors.Prior.rescaled`) itself; this module applies that to the
priors of a model.
"""

from __future__ import annotations

import copy

from ...errors import PriorError


def scale_variance_priors(priors, factor: float):
    """A copy of the PriorSet with every variance-component prior scaled by ``factor``."""
    out = copy.deepcopy(priors)
    for term, ps in out.random_sd.items():
        out.random_sd[term] = [p.rescaled(factor) for p in ps]
    for term, p in out.correlation.items():
        if p.scale == "covariance":  # it is also the term's sd prior
            out.correlation[term] = p.rescaled(factor)
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
            new, ok, note = prior.powerscaled(alpha)
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
