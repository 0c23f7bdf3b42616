"""Separation under proper priors: the posterior exists, but the data say nothing.

With flat priors, (quasi-)complete separation makes the posterior improper, and
:func:`~bayesglmm.propriety.check_propriety` refuses to sample. With proper priors (the
defaults) the posterior exists, but along the separating direction the likelihood is
non-decreasing and tends to its supremum: the coefficients that direction moves are bounded
by their priors alone, so their posterior is the prior's tail, not something learned from
the data (Gelman, Jakulin, Pittau & Su 2008 chose their default prior for exactly this
case). :func:`check_separation` runs the same linear program as the flat-prior check
(:mod:`~bayesglmm.propriety.cones`) on all fixed-effect columns, before every Bayesian fit,
and warns with :class:`PriorDrivenWarning`, naming the columns, when the data are
separated. For binomial responses that is complete or quasi-complete separation (Albert &
Anderson 1984); for counts (log link) the zero-count analogue of
:mod:`~bayesglmm.propriety.fixed`.
"""

from __future__ import annotations

import numpy as np

from .cones import recession_cone
from .fixed import describe_direction, row_signs


class PriorDrivenWarning(UserWarning):
    """Separated data: the posterior of some coefficients is driven by their prior."""


def check_separation(design) -> dict | None:
    """Separation in the fixed-effect columns of a design, or None.

    Parameters
    ----------
    design : Design

    Returns
    -------
    dict or None
        ``{"kind", "columns", "terms", "direction", "rows"}`` when a direction ``d != 0``
        exists along which no row's likelihood decreases (``columns``: the columns of X it
        moves; ``terms``: their formula terms); None when there is none, or for families
        where every row's likelihood tends to zero both ways (Gaussian) or that are not
        covered.
    """
    signs = row_signs(design)
    if signs is None or not design.family.discrete or design.X.shape[1] == 0:
        return None
    if not np.any(np.isin(signs, (-1, 1))):
        return None
    cols = np.arange(design.X.shape[1])
    cone = recession_cone(design.X, signs)
    if cone.trivial:
        return None
    direction = describe_direction(design, cols, cone.direction)
    terms = [
        term
        for term, sl in design.fixed_terms.items()
        if any(name in direction for name in design.fixed_names[sl])
    ]
    # rows the direction moves (all rows, duplicates included: the cone's own list holds
    # one row per distinct (x, sign) pair)
    eta = np.asarray(design.X @ cone.direction).ravel()
    moved = (np.abs(eta) > 1e-9 * max(1.0, float(np.abs(eta).max()))) & (signs != 2)
    if design.family.has_trials:
        kind = "complete" if moved.sum() == int((signs != 2).sum()) else "quasi-complete"
    else:
        kind = "zero-count"
    rows = [design.row_labels[i] for i in np.flatnonzero(moved)]
    return {
        "kind": kind,
        "columns": list(direction),
        "terms": terms,
        "direction": direction,
        "rows": [r.item() if hasattr(r, "item") else r for r in rows],
    }


def separation_message(found: dict, priors=None) -> str:
    """One message naming the separated columns and the priors that bound them."""
    shown = ", ".join(f"{v:+.3g}*{k}" for k, v in found["direction"].items())
    prior_text = ""
    if priors is not None:
        described = [f"{t} ~ {priors.fixed[t].describe()}" for t in found["terms"]]
        prior_text = f" ({'; '.join(described)})"
    what = (
        "complete or quasi-complete separation"
        if found["kind"] != "zero-count"
        else "a zero-count direction"
    )
    return (
        f"{what} ({found['kind']}) in the fixed effects along d = ({shown}), moving "
        f"{len(found['rows'])} row(s): the likelihood never decreases along d, so the "
        f"posterior of {', '.join(found['columns'])} is driven by its prior{prior_text}, not "
        "by the data; report it as such, or change the model (merge levels, drop the column)"
    )
