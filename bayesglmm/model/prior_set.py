"""Resolve user priors against a design: defaults filled in, every key checked."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import PriorError
from .design import Design
from .priors import (
    LKJ,
    HalfNormal,
    InverseWishart,
    Normal,
    Prior,
    as_prior,
    default_fixed_prior,
)


@dataclass
class PriorSet:
    """The priors of every parameter of a model.

    Attributes
    ----------
    fixed : dict of str to Prior
        One prior per fixed-effect formula term (``"Intercept"``, ``"Cross"``); a default
        Normal carries one ``sigma`` per column.
    random_sd : dict of str to list of Prior
        Per random term name (``"1|Female"``), one prior per column on its sd (or variance).
    correlation : dict of str to LKJ or InverseWishart
        Per correlated random term name. An :class:`InverseWishart` is a prior on the whole
        covariance; the term's entries in ``random_sd`` then hold the same object.
    dispersion : dict of str to Prior
        ``"sigma"`` for Gaussian models, ``"alpha"`` for negative-binomial ones.
    user_keys : set of str
        Keys the user set (the rest are defaults).
    """

    fixed: dict[str, Prior] = field(default_factory=dict)
    random_sd: dict[str, list[Prior]] = field(default_factory=dict)
    correlation: dict[str, LKJ | InverseWishart] = field(default_factory=dict)
    dispersion: dict[str, Prior] = field(default_factory=dict)
    user_keys: set = field(default_factory=set)

    def all(self) -> list[tuple[str, Prior]]:
        out = [(k, p) for k, p in self.fixed.items()]
        for k, ps in self.random_sd.items():
            out += [(f"{k}[{j}]" if len(ps) > 1 else k, p) for j, p in enumerate(ps)]
        out += list(self.correlation.items()) + list(self.dispersion.items())
        return out

    def table(self) -> pd.DataFrame:
        """Parameter, prior and whether it is the default."""
        rows = [(k, p.describe(), p.scale) for k, p in self.all()]
        return pd.DataFrame(rows, columns=["parameter", "prior", "on"]).set_index("parameter")

    @property
    def improper(self) -> list[tuple[str, Prior]]:
        return [(k, p) for k, p in self.all() if p.improper]


def response_scale(design: Design) -> float:
    """``s`` in the default priors: sd(y) for a continuous response (Gaussian), 1 for counts."""
    if not design.family.discrete:
        sd = float(np.std(design.y))
        return sd if sd > 0 else 1.0
    return 1.0


def resolve_priors(design: Design, priors: dict | None = None) -> PriorSet:
    """Fill in default priors and apply the user's, by key.

    Keys: a fixed-effect term (``"Intercept"``, ``"Cross"``, ``"x:z"``), a grouping factor
    (``"Female"``: all sd priors of its terms, or an :class:`LKJ` for its correlations), a
    random term (``"1|Female"``, ``"1+x|g"``), a variance component (``"g|x"``), ``"sigma"``
    (Gaussian) or ``"alpha"`` (negative binomial).
    """
    priors = dict(priors or {})
    s = response_scale(design)
    ps = PriorSet()
    for term, sl in design.fixed_terms.items():
        cols = design.X[:, sl]
        names = design.fixed_names[sl]
        sig = [default_fixed_prior(cols[:, j], names[j], s)[1] for j in range(cols.shape[1])]
        ps.fixed[term] = Normal(0.0, sig[0] if len(sig) == 1 else tuple(sig))
    for t in design.random:
        ps.random_sd[t.name] = [HalfNormal(2.5 * s) for _ in range(_n_sds(t))]
        if t.correlated:
            ps.correlation[t.name] = LKJ(eta=1.0)
    dispersion = design.family.default_dispersion_prior(s)
    if dispersion is not None:
        ps.dispersion[design.family.dispersion_name] = dispersion

    groups: dict[str, list] = {}
    components: dict[str, tuple] = {}
    for t in design.random:
        groups.setdefault(t.group, []).append(t)
        for j, c in enumerate(t.component_names):
            components[c] = (t, j)

    for key, value in priors.items():
        if key in ps.fixed:
            prior = as_prior(value, key)
            _check_kind(prior, key, ("value",))
            ps.fixed[key] = prior
        elif key in ps.dispersion:
            prior = as_prior(value, key)
            _check_kind(prior, key, ("sd", "value", "variance") if key == "sigma" else ("value",))
            ps.dispersion[key] = prior
        elif _on_matrix(value) and (key in groups or key in ps.random_sd):
            terms = groups.get(key) or [t for t in design.random if t.name == key]
            corr = [t for t in terms if t.correlated]
            if not corr:
                raise PriorError(
                    f"{type(value).__name__} prior for {key!r}: that term has no correlations"
                )
            for t in corr:
                ps.correlation[t.name] = value
                sds = value.sd_priors(t.n_columns)  # an inverse Wishart checks psi here
                if sds is not None:
                    ps.random_sd[t.name] = sds
        elif key in groups or key in ps.random_sd:
            prior = as_prior(value, key)
            _check_kind(prior, key, ("sd", "variance"))
            terms = groups.get(key) or [t for t in design.random if t.name == key]
            for t in terms:
                ps.random_sd[t.name] = [prior for _ in range(_n_sds(t))]
        elif key in components:
            prior = as_prior(value, key)
            _check_kind(prior, key, ("sd", "variance"))
            t, j = components[key]
            ps.random_sd[t.name][j] = prior
        else:
            valid = (
                list(ps.fixed)
                + list(groups)
                + list(ps.random_sd)
                + [c for c in components if c not in groups]
                + list(ps.dispersion)
            )
            hint = ""
            if key in design.fixed_names:
                term = next(
                    k for k, sl in design.fixed_terms.items() if key in design.fixed_names[sl]
                )
                hint = f" (priors are set per term: use {term!r})"
            raise PriorError(
                f"prior given for {key!r}, which is not a parameter of this model{hint}; "
                f"valid keys: {', '.join(dict.fromkeys(valid))}"
            )
        ps.user_keys.add(key)
    return ps


def _on_matrix(value) -> bool:
    """A prior on the correlations or the covariance of a correlated term."""
    return isinstance(value, Prior) and value.scale in ("correlation", "covariance")


def _check_kind(prior: Prior, key: str, allowed: tuple[str, ...]) -> None:
    if prior.point_mass:
        return
    if prior.scale not in allowed:
        what = {
            "value": "a coefficient",
            "sd": "a standard deviation",
            "variance": "a variance",
            "correlation": "a correlation matrix",
            "covariance": "a covariance matrix",
        }
        raise PriorError(
            f"{prior.describe()} is a prior on {what.get(prior.scale, prior.scale)} and cannot "
            f"be used for {key!r}, which needs a prior on "
            f"{' or '.join(what.get(a, a) for a in allowed)}"
        )


def _n_sds(term) -> int:
    """Standard deviations of a term: one per column, one for an AR(1) term (its ``sigma``;
    its ``rho`` has the flat ``Uniform(-1, 1)`` prior of the PyMC builder)."""
    return 1 if getattr(term, "structure", None) == "ar1" else term.n_columns
