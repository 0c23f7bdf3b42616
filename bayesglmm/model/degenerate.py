"""Data a GLMM cannot be estimated from, for every method.

- :func:`check_response`, run by :meth:`bayesglmm.GLMM.fit` before every likelihood,
  marginal or Monte Carlo method (as lme4's ``check.response.not.const``; a model built on a
  placeholder response, as a simulation template, is not refused; Bayesian fits take such
  data, their posterior being the prior's, checked for propriety), refuses a response with
  nothing to estimate: a Gaussian response that is the same in every row (its
  residual variance would be zero and the log-likelihood unbounded), a binomial response
  with no successes or no failures, a count response that is zero in every row.
- :func:`identifiability_problems` finds variance components the data cannot identify: a
  binomial response with at most one trial in most levels of a grouping factor. A random
  effect on a single 0/1 outcome cannot be told apart from the Bernoulli variance itself, so
  the likelihood is nearly flat in that variance and its estimate is arbitrary (one method
  gives 0.4, another 97). :func:`warn_identifiability` (run when the design is built)
  warns with the term and the reason.
"""

from __future__ import annotations

import numpy as np

from .. import _warn
from ..errors import DataError

#: a variance is not identified when more than this share of its levels has at most one
#: binomial trial
SINGLETON_SHARE = 0.5


def check_response(design) -> None:
    """Refuse a response from which nothing can be estimated.

    Raises
    ------
    DataError
        Naming the response column and why.
    """
    y = np.asarray(design.y, dtype=float)
    fam = design.family.name
    resp = design.spec.response.expr
    if fam == "gaussian":
        scale = max(1.0, float(np.max(np.abs(y))))
        if np.ptp(y) <= 1e-12 * scale:
            raise DataError(
                f"response {resp!r} is constant ({y[0]:g} in every row): a Gaussian model "
                "has nothing to estimate (the residual variance would be zero)"
            )
    elif fam == "binomial":
        if np.all(y == 0):
            raise DataError(f"response {resp!r} has no successes: nothing to estimate")
        if design.trials is not None and np.all(y == design.trials):
            raise DataError(f"response {resp!r} has no failures: nothing to estimate")
    elif fam in ("poisson", "negative_binomial") and np.all(y == 0):
        raise DataError(f"response {resp!r} is zero in every row: nothing to estimate")


def identifiability_problems(design) -> list[str]:
    """One message per variance component the data cannot identify (empty if none)."""
    if design.family.name != "binomial":
        return []
    trials = np.ones(design.n) if design.trials is None else np.asarray(design.trials, float)
    out = []
    for t in design.random:
        per_level = np.bincount(t.index, weights=trials, minlength=t.n_levels)
        few = int(np.sum(per_level <= 1))
        if t.n_levels and few > SINGLETON_SHARE * t.n_levels:
            names = ", ".join(repr(c) for c in t.component_names)
            out.append(
                f"the variance of random-effect term {t.spec.label} ({names}) is not "
                f"identified: {few} of {t.n_levels} levels of {t.group!r} have at most one "
                "binary observation, and a random effect on a single 0/1 outcome cannot be "
                "told apart from the binomial variance; its estimate is arbitrary (group the "
                "levels, or drop the term)"
            )
    return out


def warn_identifiability(design) -> None:
    """A :class:`UserWarning` per variance component the data cannot identify."""
    for message in identifiability_problems(design):
        _warn.warn(message, UserWarning)
