"""Typed method-specific parts of a result: the coefficient covariance and the details.

:class:`Covariance` is the covariance of the estimates behind the table's standard errors:
one matrix, named by its ``kind`` (``"model"``: the inverse information; ``"robust"`` and
``"bias_reduced"``: sandwich estimators; ``"posterior"``: the covariance of the draws),
over the parameters in ``names`` (the fixed effects first, or a covariance parameter before
them), with other estimates of it (GEE's) kept in ``others``.

A :class:`Details` subclass per kind of fit (:data:`DETAILS_TYPES`, by the kind's name)
holds what a reader of that kind may use (the report's title, the residual degrees of
freedom, a sampler's steps ...), typed; whatever else the method records goes to
``extra``. A result's details are always of its kind's class (:func:`details_of_kind`), so
a reader of a kind reads that class's fields. :meth:`Details.to_dict` is the
JSON form kept in ``FitResult.info["details"]`` (and so in saved files), from which
:func:`details_from_dict` and :meth:`Covariance.from_details` read them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

#: kinds of :class:`Covariance`
COVARIANCE_KINDS = ("model", "robust", "bias_reduced", "posterior")
#: keys of ``info["details"]`` that hold the covariance
COVARIANCE_KEYS = ("vcov", "vcov_names", "vcov_kind", "vcov_others")


@dataclass(frozen=True)
class Covariance:
    """A covariance matrix of estimates, with the names of its rows and its kind."""

    kind: str
    names: tuple[str, ...]
    matrix: np.ndarray
    others: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in COVARIANCE_KINDS:
            raise ValueError(f"covariance kind {self.kind!r} is not one of {COVARIANCE_KINDS}")
        m = np.asarray(self.matrix, dtype=float)
        if m.shape != (len(self.names), len(self.names)):
            raise ValueError(f"covariance of shape {m.shape} for {len(self.names)} names")
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        others = {k: np.asarray(v, dtype=float) for k, v in dict(self.others).items()}
        object.__setattr__(self, "others", others)

    def block(self, names) -> np.ndarray:
        """The sub-matrix of ``names`` (KeyError naming the missing ones)."""
        pos = {n: i for i, n in enumerate(self.names)}
        missing = [str(n) for n in names if str(n) not in pos]
        if missing:
            raise KeyError(f"the {self.kind} covariance does not cover {missing}")
        idx = [pos[str(n)] for n in names]
        return self.matrix[np.ix_(idx, idx)]

    def to_details(self) -> dict:
        """The ``info["details"]`` keys of this covariance (JSON)."""
        out = {"vcov": self.matrix.tolist(), "vcov_names": list(self.names)}
        out["vcov_kind"] = self.kind
        if self.others:
            out["vcov_others"] = {k: v.tolist() for k, v in self.others.items()}
        return out

    @classmethod
    def from_details(cls, details: dict) -> Covariance | None:
        """The covariance kept in ``info["details"]`` (None if there is none).

        Files written before ``vcov_kind`` existed hold a model-based matrix, or (GEE) a
        dict of matrices by kind with ``se_type`` naming the table's.
        """
        V = details.get("vcov")
        if V is None:
            return None
        names = details.get("vcov_names")
        if isinstance(V, dict):  # GEE, one matrix per kind
            kind = details.get("se_type", "robust")
            others = {k: v for k, v in V.items() if k != kind}
            return cls(kind, names, V[kind], others)
        kind = details.get("vcov_kind", "model")
        others = details.get("vcov_others") or {}
        if names is None:
            return None
        return cls(kind, names, V, others)


# ------------------------------------------------------------------------------------------
# details


@dataclass
class Details:
    """What every kind of fit may report: a title for its report, the residual degrees of
    freedom, quantiles of its Pearson residuals, the standard error of its log-likelihood
    where that is estimated rather than computed; ``extra`` holds the method's other
    diagnostics (JSON-serialisable)."""

    tag: ClassVar[str] = "details"

    title: str | None = None
    df_resid: int | None = None
    pearson_residuals: list | None = None
    #: standard error of an estimated log-likelihood (the iterative Laplace solver's
    #: stochastic log-determinant); None where the log-likelihood is computed
    loglik_se: float | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON form (``info["details"]``): the fields set, then ``extra``."""
        out = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "extra" and getattr(self, f.name) is not None
        }
        out.update(self.extra)
        out["details_type"] = self.tag
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Details:
        """Read :meth:`to_dict`'s form back (unknown keys go to ``extra``)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs: dict[str, Any] = {k: d[k] for k in known if k in d}
        skip = set(known) | set(COVARIANCE_KEYS) | {"details_type"}
        extra = {k: v for k, v in d.items() if k not in skip}
        return cls(**kwargs, extra=extra)


@dataclass
class LikelihoodDetails(Details):
    """Likelihood fits on a deviance function (Laplace, AGQ, MBP)."""

    tag: ClassVar[str] = "likelihood"

    label: str | None = None
    deviance: float | None = None
    n_quad: int | None = None


@dataclass
class LmmDetails(Details):
    """Linear mixed models (REML or ML)."""

    tag: ClassVar[str] = "lmm"

    reml: bool = False
    deviance: float | None = None


@dataclass
class QuasiDetails(Details):
    """Fits that maximize no likelihood (PQL, estimating equations)."""

    tag: ClassVar[str] = "quasi_likelihood"


@dataclass
class MonteCarloDetails(Details):
    """Monte Carlo likelihood fits (MCEM, MCNR, SML)."""

    tag: ClassVar[str] = "monte_carlo"

    #: Monte Carlo standard error of the log-likelihood estimate
    loglik_mcse: float | None = None


@dataclass
class MarginalDetails(Details):
    """Marginal (GEE) fits."""

    tag: ClassVar[str] = "marginal"

    se_type: str | None = None
    corstr: str | None = None
    working_correlation_text: str | None = None
    scale: float | None = None
    scale_fixed: bool = False
    cluster: str | None = None
    n_clusters: int | None = None
    cluster_sizes: dict | None = None
    QIC: float | None = None
    QICu: float | None = None


@dataclass
class SamplerDetails(Details):
    """Bayesian fits: ``sampler`` (what drew the posterior, e.g. ``"NUTS"`` or ``"gibbs"``),
    ``backend`` (the NUTS implementation), ``step_kinds`` (the update each variable got)."""

    tag: ClassVar[str] = "bayesian"

    sampler: str | None = None
    nuts_sampler: str | None = None
    step_kinds: dict | None = None
    scheme: str | None = None

    def describe(self) -> str:
        """One line: the sampler and, for step samplers, the kinds of step used."""
        if self.nuts_sampler is not None:
            where = {"compiled": "bayesglmm's compiled density, nutpie"}.get(
                self.nuts_sampler, self.nuts_sampler
            )
            return f"NUTS ({where})"
        name = self.sampler or "?"
        if self.step_kinds:
            return f"{name} ({', '.join(sorted(set(map(str, self.step_kinds.values()))))})"
        return f"{name} ({self.scheme})" if self.scheme else name


#: details type by tag (also the kind of fit of results saved without a tag)
DETAILS_TYPES: dict[str, type[Details]] = {
    c.tag: c
    for c in (
        Details,
        LikelihoodDetails,
        LmmDetails,
        QuasiDetails,
        MonteCarloDetails,
        MarginalDetails,
        SamplerDetails,
    )
}
#: report titles of results saved before the title was part of the details
_LEGACY_TITLES = {
    "laplace": "Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)",
    "agq": "Generalized linear mixed model fit by maximum likelihood (Adaptive Gauss-Hermite "
    "Quadrature, nAGQ = {n_quad})",
    "pql": "Generalized linear mixed model fit by penalized quasi-likelihood (PQL)",
    "mbp": "Generalized linear mixed model fit by maximum likelihood (maximization by parts, "
    "Adaptive Gauss-Hermite Quadrature, nAGQ = {n_quad})",
    "ee": "Generalized linear mixed model fit by the method of simulated moments (Jiang 1998)",
    "ee2": "Generalized linear mixed model fit by two-step estimating equations (Jiang & "
    "Zhang 2001)",
    "mcem": "Generalized linear mixed model fit by maximum likelihood (Monte Carlo EM)",
    "mcnr": "Generalized linear mixed model fit by maximum likelihood (Monte Carlo Newton-Raphson)",
    "sml": "Generalized linear mixed model fit by maximum likelihood (simulated maximum "
    "likelihood)",
}


def details_of_kind(details: Details, kind: str) -> Details:
    """``details`` as the details class of ``kind`` (:data:`DETAILS_TYPES`): itself if it
    is one, else read from its JSON form (fields the class lacks go to ``extra``)."""
    cls = DETAILS_TYPES.get(kind, Details)
    if isinstance(details, cls):
        return details
    d = details.to_dict()
    d.pop("details_type", None)
    return cls.from_dict(d)


def details_from_dict(d: dict, kind: str | None = None, method: str | None = None) -> Details:
    """The typed details of ``info["details"]``: by its ``details_type`` tag, or (results
    saved without one) by the kind of fit, with the report title of ``method``."""
    d = dict(d or {})
    tag = d.pop("details_type", None)
    cls = DETAILS_TYPES.get(tag or kind or "details", Details)
    out = cls.from_dict(d)
    if tag is None and out.title is None and method in _LEGACY_TITLES:
        out.title = _LEGACY_TITLES[method].format(n_quad=d.get("n_quad", "?"))
    if tag is None and isinstance(out, SamplerDetails) and out.sampler is None:
        out.sampler = "NUTS" if out.nuts_sampler is not None else method
    return out
