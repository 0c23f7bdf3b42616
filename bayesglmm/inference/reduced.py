"""The model without a random-effect term: term look-up, reduced fits, the test result.

Shared by the variance-component tests (:mod:`~bayesglmm.inference.variance_tests`,
:mod:`~bayesglmm.inference.score_test`) and the model comparisons built on them: finding a
term or a column of a correlated term (:func:`find_term`), the formula and model without it
(:func:`reduced_model_of`), its fit by the same method and options or, when no random
effect is left, the GLM by IRLS (:func:`glm_loglik`), and :class:`VarianceTest`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from ..errors import MethodError

#: result kinds with a maximized log-likelihood
LIKELIHOOD_KINDS = ("likelihood", "lmm")


def warn_negative(stat: float, fit, formula: str) -> None:
    """Warn that the full fit's log-likelihood is below the reduced one's."""

    warnings.warn(
        f"the {fit.method} fit of {fit.formula!r} has a lower log-likelihood than the reduced "
        f"model {formula!r} (2 (l1 - l0) = {stat:.4g}): the full fit did not reach its "
        "maximum; the statistic is set to 0",
        RuntimeWarning,
        stacklevel=3,
    )


@dataclass
class VarianceTest:
    """The result of :func:`test_variance`.

    Attributes
    ----------
    statistic : float
        ``2 (l1 - l0)`` (the REML criteria for ``rlrt``), tiny negatives clipped to 0.
    p_value : float
        From the method's null distribution.
    method : str
    null_distribution : str
        The null used, with its source.
    df : int
        Number of parameters removed (the naive chi-square's degrees of freedom).
    p_value_naive : float
        ``chi2(df)`` tail, shown for comparison only.
    term : str
    fits : dict
        ``"full"`` and ``"reduced"`` fits (the reduced one a :class:`GLMNullFit` when no
        random effect is left).
    mc_error : float or None
        Monte Carlo standard error of ``p_value`` (``rlrt``, ``bootstrap``), else None.
    notes : list of str
        What was done beyond the plain test (a refit by REML, failed bootstrap replicates,
        identity information used for the mixture weights, ...).
    details : dict
        Method-specific values: ``sample`` (simulated statistics of ``rlrt`` and
        ``bootstrap``), ``study`` (the bootstrap's StudyResult), ``information``.
    """

    statistic: float
    p_value: float
    method: str
    null_distribution: str
    df: int
    p_value_naive: float
    term: str = ""
    fits: dict = field(default_factory=dict, repr=False)
    mc_error: float | None = None
    notes: list = field(default_factory=list)
    details: dict = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        mc = "" if self.mc_error is None else f" (Monte Carlo s.e. {self.mc_error:.2g})"
        notes = "".join(f"; {n}" for n in self.notes)
        return (
            f"VarianceTest({self.method.upper()} of {self.term}: statistic = "
            f"{self.statistic:.6g}, df = {self.df}, p = {self.p_value:.4g}{mc} under "
            f"{self.null_distribution}; naive chi2({self.df}) p = {self.p_value_naive:.4g}"
            f"{notes})"
        )


@dataclass
class GLMNullFit:
    """The GLM (no random effects) fitted by IRLS: the reduced model of a test.

    ``dispersion`` is the Gaussian residual standard deviation (``sqrt(RSS / (n - p))`` for
    REML, ``sqrt(RSS / n)`` for ML) or the negative binomial ``alpha``; None otherwise.
    """

    formula: str
    beta: np.ndarray
    loglik: float
    n_params: int
    nobs: int
    criterion: str = "log-likelihood"
    dispersion: float | None = None


# --------------------------------------------------------------------------- formulas
def response_text(spec) -> str:
    """The left-hand side of ``spec``'s formula."""
    r = spec.response
    return f"cbind({r.expr}, {r.failures_expr})" if r.kind == "cbind" else r.expr


def formula_with(spec, random_terms) -> str:
    """``spec``'s formula with its random terms replaced by ``random_terms`` (specs)."""
    rhs = [spec.fixed] + [f"offset({o})" for o in spec.offsets]
    for t in random_terms:
        rhs.append(f"({t.expr} {'|' if t.correlated else '||'} {t.group})")
    return f"{response_text(spec)} ~ {' + '.join(rhs)}"


def _norm(text: str) -> str:
    return text.replace(" ", "").strip("()")


def find_term(design, term: str):
    """``(index of the random term, column or None)`` that ``term`` names: a term label
    (``"(1|herd)"``, ``"1|herd"``), a grouping factor with one term, or a component name
    (``"g|x"``) of a correlated term."""
    key = _norm(term)
    labels = []
    for i, t in enumerate(design.random):
        names = {_norm(t.spec.label), _norm(t.name), _norm(f"{t.spec.expr}|{t.group}")}
        labels.append(t.spec.label)
        if key in names:
            return i, None
    groups = [i for i, t in enumerate(design.random) if t.group == key]
    if len(groups) == 1:
        return groups[0], None
    if len(groups) > 1:
        which = ", ".join(design.random[i].spec.label for i in groups)
        raise MethodError(f"term {term!r} names several random terms ({which}); name one")
    for i, t in enumerate(design.random):
        if t.n_columns > 1 and key in [_norm(c) for c in t.component_names]:
            return i, key.split("|", 1)[1]
    raise MethodError(
        f"term {term!r} is not a random term of the model; its terms are {', '.join(labels)}"
    )


def _drop_column(t, column: str):
    """The spec of term ``t`` without ``column`` (an expression piece or the intercept)."""
    from ..model.formula import _has_intercept, _split_top
    from ..model.spec import RandomTermSpec

    pieces = [p.strip() for s, p in _split_top(t.spec.expr, "+-") if s != "-"]
    pieces = [p for p in pieces if p not in ("0", "1")]
    intercept = _has_intercept(t.spec.expr)
    if column == "Intercept" and intercept:
        expr = "0 + " + " + ".join(pieces)
    elif column in pieces and len(pieces) + intercept == t.n_columns:
        rest = [p for p in pieces if p != column]
        expr = " + ".join((["1"] if intercept else ["0"]) + rest)
    else:
        raise MethodError(
            f"cannot write term {t.spec.label} without its column {column!r} as a formula; "
            "fit the reduced model yourself and use bg.anova"
        )
    return RandomTermSpec(expr, t.group, t.spec.correlated)


# --------------------------------------------------------------------------- the GLM
def glm_loglik(model, method: str, options: dict) -> GLMNullFit:
    """The GLM of ``model`` (random terms ignored) fitted by IRLS, with its maximized
    log-likelihood (the REML criterion for an ``lmm`` fit with ``reml=True``)."""
    from ..frequentist.glm import fit_glm_design

    d = model.design
    fam = d.family
    n, p = d.X.shape
    if fam.name == "gaussian":
        beta = np.linalg.lstsq(d.X, d.y - d.offset, rcond=None)[0]
        rss = float(np.sum((d.y - d.offset - d.X @ beta) ** 2))
        if method == "lmm" and options.get("reml", True):
            ld = np.linalg.slogdet(d.X.T @ d.X)[1]
            ll = -0.5 * (ld + (n - p) * (1.0 + np.log(2.0 * np.pi * rss / (n - p))))
            sd = float(np.sqrt(rss / (n - p)))
            return GLMNullFit(model.formula, beta, float(ll), p + 1, n, "REML criterion", sd)
        ll = -0.5 * n * (1.0 + np.log(2.0 * np.pi * rss / n))
        sd = float(np.sqrt(rss / n))
        return GLMNullFit(model.formula, beta, float(ll), p + 1, n, dispersion=sd)

    def loglik(alpha: float = 1.0) -> tuple[float, np.ndarray]:
        g = fit_glm_design(d, dispersion=alpha, form="working")
        ll = fam.loglik(d.y, trials=d.trials, dispersion=alpha, eta=g.eta)
        return float(np.sum(ll)), g.beta

    if fam.has_dispersion:  # negative binomial: profile the shape
        res = optimize.minimize_scalar(
            lambda la: -loglik(float(np.exp(la)))[0], bounds=(-10, 15), method="bounded"
        )
        ll, beta = loglik(float(np.exp(res.x)))
        alpha = float(np.exp(res.x))
        return GLMNullFit(model.formula, beta, ll, p + 1, n, dispersion=alpha)
    ll, beta = loglik()
    return GLMNullFit(model.formula, beta, ll, p, n)


# --------------------------------------------------------------------------- the test
def check_likelihood_fit(fit, what: str = "fit") -> None:
    """MethodError unless ``fit`` is a likelihood fit with its model and log-likelihood."""
    if fit.kind == "bayesian":
        raise MethodError(
            f"{what} is a Bayesian fit ({fit.method}): likelihood-ratio tests need maximized "
            "likelihoods; compare Bayesian fits with bg.loo and bg.compare_models"
        )
    if fit.kind not in LIKELIHOOD_KINDS or fit.loglik is None:
        raise MethodError(
            f"{what} ({fit.method}, kind {fit.kind}) has no maximized log-likelihood; use "
            "laplace, agq or lmm"
        )
    if fit.model is None:
        raise MethodError(f"{what} has no model attached (a result read from a file?): refit")


def _default_term(design, method: str) -> str:
    labels = [t.spec.label for t in design.random]
    if len(labels) == 1:
        return labels[0]
    if not labels:
        raise MethodError("the model has no random-effect term to test")
    raise MethodError(
        f"test_variance(method={method!r}) needs term= when the model has several random "
        f"terms ({', '.join(labels)})"
    )


def fit_options_of(fit) -> dict:
    """The options of ``fit`` for refits (no start values)."""
    options = dict(fit.info.get("options") or {})
    if "start" in options:
        options["start"] = None
    return options


@dataclass
class Removal:
    """What a test removes: the random terms ``indices`` of the full design (``column`` of
    the one term, or the whole terms when None), the reduced model and its formula."""

    indices: list
    column: str | None
    label: str
    model: object
    formula: str

    def terms(self, design) -> list:
        return [design.random[i] for i in self.indices]


def reduced_model_of(fit, term) -> Removal:
    """The reduced model for removing ``term`` (a term, a column ``"g|x"``, or a list of
    whole terms of one variance each) from ``fit``'s model."""
    from ..glmm import GLMM

    model = fit.model
    d = model.design
    specs = [r.spec for r in d.random]
    if isinstance(term, list | tuple):
        if len(term) == 0:
            raise MethodError("term must name at least one random term")
        found = [find_term(d, x) for x in term]
        indices = [i for i, _ in found]
        bad = [x for x, (i, c) in zip(term, found, strict=True) if c is not None
               or d.random[i].n_columns > 1]  # fmt: skip
        if bad:
            raise MethodError(
                f"a list of terms must name whole terms of one variance each; {bad[0]!r} is "
                "not one: test it alone"
            )
        if len(set(indices)) != len(indices):
            raise MethodError(f"term lists a random term twice: {list(term)}")
        indices = sorted(indices)
        column = None
        label = " + ".join(d.random[i].spec.label for i in indices)
        specs = [sp for i, sp in enumerate(specs) if i not in indices]
    else:
        index, column = find_term(d, term)
        t = d.random[index]
        indices = [index]
        if column is None:
            specs.pop(index)
            label = t.spec.label
        else:
            specs[index] = _drop_column(t, column)
            label = f"{t.group}|{column}"
    formula = formula_with(d.spec, specs)
    reduced_model = GLMM(
        formula,
        model.data,
        family=d.spec.family,
        link=d.spec.link,
        dropna=bool(d.dropped_rows),
    )
    if reduced_model.design.n != d.n:
        raise MethodError(
            f"the reduced model {formula!r} has {reduced_model.design.n} rows, the fit "
            f"{d.n}: missing values in the grouping factor of {label}"
        )
    return Removal(indices, column, label, reduced_model, formula)


def fit_reduced(reduced_model, method: str, options: dict):
    """The reduced model fitted by ``method`` (the GLM by IRLS when no random effect is
    left)."""
    if reduced_model.design.random:
        return reduced_model.fit(method=method, **options)
    return glm_loglik(reduced_model, method, options)


def lr_statistic(full_loglik: float, reduced_loglik: float, fit=None, formula="") -> float:
    """``2 (l1 - l0)``; a clearly negative value warns (when ``fit`` is given) and is 0."""
    stat = 2.0 * (full_loglik - reduced_loglik)
    if fit is not None and stat < -1e-6 * max(1.0, abs(full_loglik)):
        warn_negative(stat, fit, formula)
    return max(float(stat), 0.0)
