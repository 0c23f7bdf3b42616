"""Decide whether a GLMM's posterior is proper: :func:`check_propriety`, :func:`ensure_proper`.

The verdict is assembled from the conditions of the other modules:

* every prior proper: proper (the marginal density of the data is finite);
* any *necessary* condition failing: improper;
* otherwise proper only when a *sufficient* argument covers the whole model: Gaussian
  models (:mod:`~bayesglmm.propriety.lmm`), flat fixed effects in binomial and Poisson
  models with light enough proper priors elsewhere (:mod:`~bayesglmm.propriety.fixed`),
  improper priors on random intercepts of binomial and Poisson models with proper fixed
  effects (:mod:`~bayesglmm.propriety.variance`);
* anything else: undecided (``None``), with a warning, never a guessed "proper".
"""

from __future__ import annotations

import math

from .._warn import warn
from ..errors import ImproperPosteriorError, PriorError
from .fixed import BINOMIAL_LINKS, check_fixed, flat_columns, row_signs
from .lmm import check_lmm
from .report import ProprietyEntry, ProprietyReport
from .variance import at_zero_entries, components, discrete_sufficient, tail_entries

REF_PROPER = "proper prior: the marginal density of the data is finite (Fubini)"


class PosteriorProprietyWarning(UserWarning):
    """The propriety check could not decide, or an improper posterior is being sampled."""


def _validate(model) -> None:
    """Improper priors the PyMC model cannot represent: refuse before any compilation."""
    priors = model.priors
    for key, prior in priors.all():
        name = None if prior.improper else prior.nonpositive_parameter()
        if name is not None:
            hint = (
                f"; the limit {name} -> 0 is an improper prior: for p(sigma^2) ~ "
                "1/sigma^2 use Jeffreys(), for (sigma^2)^-(a+1) PowerVariance(a)"
                if name in ("alpha", "beta")
                else ""
            )
            raise PriorError(f"{prior.describe()} on {key!r}: {name} must be positive{hint}")
    for key, prior in priors.dispersion.items():
        if prior.improper and prior.support == "real":
            raise PriorError(
                f"{prior.describe()} on {key!r}, which must be positive: use HalfFlat() "
                "(uniform on the standard deviation) or Jeffreys() (1/variance) instead"
            )
    for t in model.design.random:
        if not t.correlated:
            continue
        sds = list(priors.random_sd[t.name])
        corr = priors.correlation.get(t.name)
        implied = corr.sd_priors(t.n_columns) if corr is not None else None
        if implied:
            sds.append(implied[0])
        bad = [p.describe() for p in sds if p.improper]
        if bad:
            raise PriorError(
                f"correlated term {t.name}: improper priors {bad} on its standard deviations "
                "are not supported (the LKJ prior needs a proper sd distribution); use a "
                "proper prior or split the term with '||'"
            )


def _summary(entries: list[ProprietyEntry], decided: bool, notes: list[str]):
    failed = [
        e for e in entries if e.met is False and e.kind in ("necessary", "necessary and sufficient")
    ]
    if failed:
        e = failed[0]
        reason = f"{e.parameter} ~ {e.prior}: fails '{e.condition}'"
        if e.detail:
            reason += f" ({e.detail})"
        return False, reason
    if decided and not any(e.met is None for e in entries):
        return True, "every condition for a proper posterior holds"
    unmet = [
        f"{e.parameter}: {e.detail or e.condition}"
        for e in entries
        if e.met is not True and e.kind in ("sufficient", "assumption")
    ]
    why = "; ".join(notes + unmet) or "no sufficient condition covers this combination"
    return None, f"not decided: {why}"


def check_propriety(model) -> ProprietyReport:
    """Check whether the posterior of a GLMM under its priors is proper.

    Parameters
    ----------
    model : GLMM
        Uses ``model.design`` and ``model.priors``.

    Returns
    -------
    ProprietyReport
        ``proper`` is True (proved proper), False (proved improper) or None (not decided),
        with one entry per condition applied.

    Raises
    ------
    PriorError
        For improper priors the model cannot represent (``Flat()`` on a positive parameter,
        improper standard deviations inside an LKJ-correlated term).

    Examples
    --------
    >>> import pandas as pd
    >>> from bayesglmm import GLMM, check_propriety, priors
    >>> df = pd.DataFrame({"y": [0, 0, 1, 1], "x": [-2.0, -1.0, 1.0, 2.0]})
    >>> m = GLMM("y ~ x", df, priors={"Intercept": priors.Flat(), "x": priors.Flat()})
    >>> check_propriety(m).proper
    False
    """
    _validate(model)
    design, priors = model.design, model.priors
    base = {
        "formula": design.spec.formula,
        "family": f"{design.family.name}/{design.family.link.name}",
    }
    if not priors.improper:
        entry = ProprietyEntry(
            "all", "proper priors", "every prior is proper", True, "sufficient", REF_PROPER
        )
        return ProprietyReport(True, "all priors are proper", [entry], **base)

    signs = row_signs(design)
    comps = components(design, priors)
    flat = flat_columns(design, priors)
    fam, link = design.family.name, design.family.link.name
    entries, separation, cone = check_fixed(design, priors, signs)
    notes: list[str] = []
    decided = False
    if fam == "gaussian" and link == "identity":
        more, decided, notes = check_lmm(design, priors, flat, comps)
        entries += more
    else:
        entries += at_zero_entries(comps)
        decided, more, notes = _discrete(design, priors, comps, flat, signs, cone)
        entries += more
    proper, reason = _summary(entries, decided, notes)
    return ProprietyReport(proper, reason, entries, separation=separation, notes=notes, **base)


def _discrete(design, priors, comps, flat, signs, cone):
    """Binomial, Poisson and negative-binomial models: (decided, entries, notes)."""
    fam, link = design.family.name, design.family.link.name
    notes: list[str] = []
    if signs is None:
        return False, [], [f"no propriety result implemented for the {fam}/{link} likelihood"]
    if cone is not None and not cone.trivial:
        return False, [], notes  # separated: improper whatever else holds
    entries, notes = tail_entries(design, design.X[:, flat], comps, signs)
    improper_var = [c for c in comps if c.tails.improper]
    if any(p.improper for p in priors.dispersion.values()):
        notes.append("improper prior on the dispersion parameter: not covered")
        return False, entries, notes
    if not ((fam == "binomial" and link in BINOMIAL_LINKS) or (fam == "poisson" and link == "log")):
        notes.append(f"{fam}/{link}: only necessary conditions are implemented")
        return False, entries, notes
    if flat.size and improper_var:
        notes.append(
            "flat fixed effects together with improper variance priors in a "
            "non-Gaussian model: only necessary conditions are implemented"
        )
        return False, entries, notes
    if flat.size:
        ok, entry = _moments_for_flat(priors, comps, int(flat.size))
        if ok is None:
            notes.append("the moments of a proper prior are unknown")
        elif not ok:
            notes.append(
                "heavy-tailed proper priors next to flat fixed effects: the "
                "posterior can be improper even without separation"
            )
        return bool(ok), entries + [entry], notes
    suff, decided, more = discrete_sufficient(design, priors, comps)
    return decided, entries + suff, notes + more


def _moments_for_flat(priors, comps, p_F: int):
    """Sufficient: the proper priors have finite moments of order p_F (fixed.py docstring)."""
    orders = {term: prior.tails().moments for term, prior in priors.fixed.items() if not prior.flat}
    orders.update({c.parameter: c.tails.moments for c in comps})
    unknown = [k for k, o in orders.items() if math.isnan(o)]
    short = [k for k, o in orders.items() if not math.isnan(o) and o <= p_F]
    ok = None if unknown else not short
    detail = (
        ("all of them do" if orders else "there are none")
        if ok
        else (f"moments of order {p_F} are infinite or unknown for {', '.join(short + unknown)}")
    )
    entry = ProprietyEntry(
        "other parameters",
        "proper priors",
        f"with no separation, proper priors on the other parameters with finite moments of "
        f"order p_F = {p_F} (the number of flat coefficients)",
        ok,
        "sufficient",
        "bound derived in bayesglmm.propriety.fixed",
        detail,
    )
    return ok, entry


def ensure_proper(model, allow_improper: bool = False) -> dict:
    """Run :func:`check_propriety` before a fit; refuse improper posteriors.

    Parameters
    ----------
    model : GLMM
    allow_improper : bool
        Sample anyway (for teaching and demonstrations); a warning is still issued.

    Returns
    -------
    dict
        The report as a JSON-serialisable dict (kept in ``FitResult.info["details"]["propriety"]``).

    Raises
    ------
    ImproperPosteriorError
        When the posterior is improper and ``allow_improper`` is False.

    Warns
    -----
    PosteriorProprietyWarning
        When the check cannot decide, or when an improper posterior is sampled.
    """
    report = check_propriety(model)
    if report.proper is False:
        if not allow_improper:
            raise ImproperPosteriorError(
                f"the posterior is improper, so no sampler can approximate it: "
                f"{report.reason}. Use proper priors (the defaults are), or pass "
                f"allow_improper=True to sample anyway for a demonstration; "
                f"bayesglmm.check_propriety(model) prints the full report."
            )
        warn(
            f"sampling an improper posterior (allow_improper=True): {report.reason}. The "
            "draws approximate no distribution, however well-behaved the traces look.",
            PosteriorProprietyWarning,
        )
    elif report.proper is None:
        warn(
            f"could not decide whether the posterior is proper ({report.reason}); "
            "check the traces for variances drifting to 0 or infinity, or use proper priors",
            PosteriorProprietyWarning,
        )
    return report.to_dict()
