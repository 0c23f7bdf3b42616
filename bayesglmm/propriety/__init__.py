"""Posterior propriety: is there a posterior at all under the chosen priors?

With improper priors (flat fixed effects, 1/sigma^2 or uniform priors on variance
components) a GLMM posterior may not exist, and a sampler will still produce
plausible-looking draws (Hobert & Casella 1996; Natarajan & McCulloch 1995; Natarajan &
Kass 2000). :func:`check_propriety` decides from the data and the priors, before sampling;
:func:`ensure_proper` runs it before every Bayesian fit; :func:`check_drift` looks at the
draws afterwards for the signature of an improper posterior.

Modules: :mod:`.cones` (separation by linear programming), :mod:`.fixed` (flat fixed
effects), :mod:`.variance` (variance components: tail argument), :mod:`.lmm` (Hobert &
Casella's linear-mixed-model conditions), :mod:`.report`, :mod:`.check` (the verdict),
:mod:`.drift` (empirical backup), :mod:`.separation` (separated data under proper priors:
a warning before every Bayesian fit). Each prior states its own tail exponents and moments
(:meth:`bayesglmm.model.priors.Prior.tails`); nothing here looks at a prior's class.
"""

from .check import PosteriorProprietyWarning, check_propriety, ensure_proper
from .drift import ImproperDriftWarning, check_drift
from .report import ProprietyEntry, ProprietyReport
from .separation import PriorDrivenWarning, check_separation

__all__ = [
    "check_propriety",
    "ensure_proper",
    "check_drift",
    "ProprietyReport",
    "ProprietyEntry",
    "PosteriorProprietyWarning",
    "ImproperDriftWarning",
    "PriorDrivenWarning",
    "check_separation",
]
