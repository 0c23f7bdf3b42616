"""Posterior draws of the reported parameters, by result name (see
:mod:`bayesglmm.results.draws`, where they are computed: predictions read them too, and the
result layer imports no engine)."""

from __future__ import annotations

from ..results.draws import derived_draws, variable_draws

__all__ = ["derived_draws", "variable_draws"]
