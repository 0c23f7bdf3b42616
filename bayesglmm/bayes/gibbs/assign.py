"""Choosing the Gibbs-style update of every variable of a centered GLMM.

Automatic choice (``steps=None``), always under the model's own priors:

* fixed and random effects of a binomial model with logit link: one joint
  :class:`~.polya_gamma.PolyaGammaStep`; with probit link: one joint
  :class:`~.albert_chib.AlbertChibStep` (fixed effects need Normal or Flat priors);
* otherwise each random term gets a :class:`~.metropolis.LevelMetropolisStep` (Karim &
  Zeger) and the fixed effects NUTS (or a :class:`~.metropolis.CoordinateMetropolisStep`
  when ``nuts_fallback=False``);
* a variance with an inverse-gamma prior: :class:`~.conjugate.InverseGammaStep`; a
  covariance with an inverse-Wishart prior: :class:`~.conjugate.InverseWishartStep`;
* a standard deviation or variance with any other prior (half-normal, the default;
  half-Student-t, half-Cauchy, exponential, gamma, improper ones):
  :class:`~.slice.SliceScaleStep`, a slice update of its log given its random effects;
* every inverse-gamma or slice-updated scale is followed by a :class:`~.scale.ScaleMoveStep`
  that rescales it together with its random term (it then mixes about twice as fast);
* anything else (the LKJ Cholesky factor of correlated terms, which has no conjugate
  update; dispersion parameters): NUTS within the compound step, or coordinate-wise
  Metropolis when ``nuts_fallback=False``.

:func:`conjugate_priors` replaces the default priors of variance components (never the
user's) by conjugate ones; ``method="gibbs"`` does so only with ``conjugate_priors=True``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ...errors import MethodError
from ...model.prior_set import PriorSet, response_scale
from ...model.priors import InverseGamma, InverseWishart

#: step kinds a user can request per variable in ``steps=``
STEP_KINDS = (
    "polya_gamma",
    "albert_chib",
    "inverse_gamma",
    "inverse_wishart",
    "slice",
    "metropolis",
    "nuts",
)
_JOINT = {"logit": "polya_gamma", "probit": "albert_chib"}


def default_variance_prior(design) -> InverseGamma:
    """``InverseGamma(1, s^2)`` with ``s`` the response scale of the default priors.

    Shape 1 gives a heavy right tail (no prior mean) while keeping the density at zero
    variance finite; its median is ``1.44 s^2``. The inverse-Wishart default has the same
    marginal prior for each variance.
    """
    return InverseGamma(1.0, response_scale(design) ** 2)


def default_covariance_prior(design) -> InverseWishart:
    """``InverseWishart(nu=k+1, psi=2 s^2 I)``: uniform marginal correlations and
    ``InverseGamma(1, s^2)`` marginal variances."""
    return InverseWishart(None, 2.0 * response_scale(design) ** 2)


def _user_set(priors: PriorSet, term, j: int | None) -> bool:
    keys = {term.group, term.name}
    keys |= set(term.component_names) if j is None else {term.component_names[j]}
    return bool(keys & priors.user_keys)


def conjugate_priors(design, priors: PriorSet) -> tuple[PriorSet, dict[str, str]]:
    """The prior set for Gibbs sampling and what was replaced.

    Default (not user-chosen) priors of variance components become
    :func:`default_variance_prior` (one column) or :func:`default_covariance_prior`
    (correlated columns); returns the new set and ``{parameter: new prior}``.
    """
    ps = copy.deepcopy(priors)
    replaced = {}
    for t in design.random:
        if t.correlated:
            if not _user_set(ps, t, None):
                iw = default_covariance_prior(design)
                ps.correlation[t.name] = iw
                ps.random_sd[t.name] = [iw for _ in t.columns]
                replaced[t.name] = iw.describe()
            continue
        for j, c in enumerate(t.component_names):
            if not _user_set(ps, t, j):
                ps.random_sd[t.name][j] = default_variance_prior(design)
                replaced[c] = ps.random_sd[t.name][j].describe()
    return ps, replaced


@dataclass
class StepPlan:
    """Which update each free variable gets, and why where it is not a Gibbs update."""

    kinds: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: variances that also get a :class:`~.scale.ScaleMoveStep` (with their random term)
    scale_moves: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[str]:
        return [v for v, k in self.kinds.items() if k == kind]


def _variance_priors(design, priors: PriorSet) -> dict[str, object]:
    """Names the builder gives to variances and covariances -> their prior."""
    out = {}
    for t in design.random:
        sds = priors.random_sd[t.name]
        if t.correlated:
            out[f"{t.name}_chol"] = priors.correlation[t.name]
        elif t.n_columns == 1:
            out[f"{t.name}_var"] = sds[0]
        else:
            out.update({f"{t.name}_var[{c}]": p for c, p in zip(t.columns, sds, strict=True)})
    return out


def _scale_terms(design) -> dict[str, object]:
    """Names of the standard deviations and variances of uncorrelated terms -> their term."""
    out = {}
    for t in design.random:
        if t.correlated:
            continue
        suffixes = [""] if t.n_columns == 1 else [f"[{c}]" for c in t.columns]
        for what in ("sigma", "var"):
            out.update({f"{t.name}_{what}{s}": t for s in suffixes})
    return out


def _why_not(kind: str, name: str, rv, design, priors: PriorSet) -> str | None:
    """None if ``kind`` applies to variable ``name``, else the reason it does not."""
    fam, link = design.family.name, design.family.link.name
    effects = list(design.fixed_terms) + [t.name for t in design.random]
    if kind in ("polya_gamma", "albert_chib"):
        want = "logit" if kind == "polya_gamma" else "probit"
        if name not in effects:
            return f"{name!r} is not a fixed or random effect ({', '.join(effects)})"
        if fam != "binomial" or link != want:
            return f"{kind} needs a binomial response with {want} link; the model is {fam}/{link}"
        if name in priors.fixed and priors.fixed[name].as_normal() is None:
            return (
                f"{name!r} has a {priors.fixed[name].describe()} prior; the joint Gaussian "
                "update needs a Normal (or Flat) prior"
            )
        return None
    variances = _variance_priors(design, priors)
    conjugate = variances[name].conjugate_step if name in variances else None
    if kind == "inverse_gamma":
        if conjugate == "inverse_gamma":
            return None
        if name.endswith("_chol") or "_sigma" in name or name in variances:
            return (
                f"{name!r} has a {type(rv.owner.op).__name__.removesuffix('RV')} prior; the "
                "inverse-gamma update needs an InverseGamma prior on the variance, e.g. "
                "priors={'<group>': bayesglmm.priors.InverseGamma(1, 1)}"
            )
        return f"{name!r} is not the variance of a random-effect term"
    if kind == "inverse_wishart":
        if conjugate == "inverse_wishart":
            return None
        if name.endswith("_chol"):
            return (
                f"{name!r} has an LKJ prior on the correlations, which has no conjugate "
                "update; use priors={'<group>': bayesglmm.priors.InverseWishart()}"
            )
        return f"{name!r} is not the covariance of a correlated random-effect term"
    if kind == "slice":
        if name in _scale_terms(design):
            return None
        return (
            f"{name!r} is not the standard deviation or variance of an uncorrelated "
            "random-effect term"
        )
    if kind == "metropolis" and rv.type.dtype.startswith("int"):
        return f"{name!r} is discrete"
    return None


def plan_steps(
    design,
    priors: PriorSet,
    model,
    steps: dict | None = None,
    nuts_fallback: bool = True,
    scale_moves: bool = True,
) -> StepPlan:
    """Assign an update to every free variable of the centered ``model``.

    Parameters
    ----------
    design, priors
        The design and the (conjugate-substituted) priors the model was built from.
    model : pymc.Model
    steps : dict, optional
        ``{variable: kind}`` with kinds from :data:`STEP_KINDS`; a kind that does not apply
        to its variable raises a :class:`MethodError` saying why.
    nuts_fallback : bool
        Variables without a Gibbs update get NUTS; if False, coordinate-wise Metropolis.
    scale_moves : bool
        Add a joint rescaling move (:class:`~.scale.ScaleMoveStep`) for every scale updated
        by the inverse-gamma or slice step.
    """
    free = {rv.name: rv for rv in model.free_RVs}
    plan = StepPlan()
    for name, kind in (steps or {}).items():
        if name not in free:
            raise MethodError(
                f"steps: {name!r} is not a free variable of the model; "
                f"the free variables are {', '.join(free)}"
            )
        if kind not in STEP_KINDS:
            raise MethodError(f"steps[{name!r}] = {kind!r}: choose one of {STEP_KINDS}")
        reason = _why_not(kind, name, free[name], design, priors)
        if reason is not None:
            raise MethodError(f"steps[{name!r}] = {kind!r} does not apply: {reason}")
        plan.kinds[name] = kind
    fallback = "nuts" if nuts_fallback else "metropolis"
    joint = _JOINT.get(design.family.link.name) if design.family.name == "binomial" else None
    random_terms = {t.name for t in design.random}
    for name, rv in free.items():
        if name in plan.kinds:
            continue
        tried = []
        if name in random_terms or name in design.fixed_terms:
            tried = [joint] if joint else []
            tried.append("metropolis" if name in random_terms else fallback)
        elif name in _scale_terms(design):
            tried = ["inverse_gamma", "slice"]
        else:
            tried = ["inverse_wishart" if name.endswith("_chol") else "inverse_gamma", fallback]
        for kind in tried:
            reason = _why_not(kind, name, rv, design, priors)
            if reason is None:
                plan.kinds[name] = kind
                break
            if tried[-1] != "slice":  # slice is exact for any scale prior: nothing to note
                plan.notes.append(f"{name}: no {kind} update ({reason}); using {tried[-1]}")
    if scale_moves:
        plan.scale_moves = [
            v
            for v in plan.of("inverse_gamma") + plan.of("slice")
            if type(model.rvs_to_transforms.get(free[v])).__name__ == "LogTransform"
        ]
    return plan


def build_steps(plan: StepPlan, design, model) -> list:
    """Instantiate the step methods of a plan inside ``model`` (NUTS is left to PyMC)."""
    from .albert_chib import AlbertChibStep
    from .conjugate import InverseGammaStep, InverseWishartStep
    from .metropolis import CoordinateMetropolisStep, LevelMetropolisStep
    from .polya_gamma import PolyaGammaStep
    from .scale import ScaleMoveStep
    from .slice import SliceScaleStep

    ip = model.initial_point()
    random_terms = {t.name for t in design.random}
    steps = []
    with model:
        for kind, cls in (("polya_gamma", PolyaGammaStep), ("albert_chib", AlbertChibStep)):
            if plan.of(kind):
                steps.append(
                    cls([model[v] for v in plan.of(kind)], design=design, initial_point=ip)
                )
        coordinate = []
        for v in plan.of("metropolis"):
            if v in random_terms:
                steps.append(LevelMetropolisStep(model[v], design=design, initial_point=ip))
            else:
                coordinate.append(model[v])
        if coordinate:
            steps.append(CoordinateMetropolisStep(coordinate, initial_point=ip))
        steps += [InverseGammaStep(model[v], initial_point=ip) for v in plan.of("inverse_gamma")]
        steps += [
            InverseWishartStep(model[v], initial_point=ip) for v in plan.of("inverse_wishart")
        ]
        steps += [SliceScaleStep(model[v], initial_point=ip) for v in plan.of("slice")]
        steps += [ScaleMoveStep(model[v], initial_point=ip) for v in plan.scale_moves]
    return steps
