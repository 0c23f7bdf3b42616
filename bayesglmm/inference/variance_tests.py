"""Likelihood-ratio tests of variance components with the boundary-aware null.

:func:`test_variance` refits a likelihood fit (``laplace``, ``agq``, ``lmm``, ...) without one
random-effect term, or without one column of a correlated term, by the same method and
options, and compares the two maximized (approximate) log-likelihoods. When no random effect
is left, the reduced model is the GLM, fitted by IRLS (:mod:`bayesglmm.frequentist.glm`); its
log-likelihood is the family's at the estimate (for ``lmm`` with ``reml=True``, the REML
criterion of the linear model, as lme4 writes it).

The null distribution respects the boundary (a variance cannot be negative):

- one variance: ``0.5 chi2(0) + 0.5 chi2(1)`` (Self & Liang 1987, case 5);
- one column of a correlated term of dimension ``q`` (its variance and ``q - 1``
  covariances): ``0.5 chi2(q - 1) + 0.5 chi2(q)`` (Stram & Lee 1994);
- a whole correlated term of dimension ``q >= 2``: the chi-bar-square of the cone of
  positive semi-definite ``q x q`` matrices, ``sum_k w_k chi2(k (k + 1) / 2 + k (q - k))``
  with ``w_k`` the probability that a GOE matrix has ``k`` positive eigenvalues (Shapiro
  1988; Kuriki 1993), computed by simulation. This takes the information of the covariance
  parameters as the identity at the null, an approximation the result states.

The naive ``chi2(df)`` p-value is reported beside, as ``p_value_naive``, never as the test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from ..errors import MethodError

#: methods of test_variance that exist
METHODS = ("lrt",)
#: variance-component tests not built yet (Lin's score test, the exact RLRT, the bootstrap)
NOT_AVAILABLE = ("score", "rlrt", "bootstrap")
#: result kinds with a maximized log-likelihood
LIKELIHOOD_KINDS = ("likelihood", "lmm")


@dataclass(frozen=True)
class Mixture:
    """A mixture of chi-square distributions: ``sum w_k chi2(df_k)``."""

    weights: tuple[float, ...]
    dfs: tuple[int, ...]
    source: str

    def sf(self, x: float) -> float:
        """``P(T >= x)`` (``chi2(0)`` is a point mass at zero)."""
        total = 0.0
        for w, k in zip(self.weights, self.dfs, strict=True):
            total += w * ((1.0 if x <= 0 else 0.0) if k == 0 else float(stats.chi2.sf(x, k)))
        return min(total, 1.0)

    def __str__(self) -> str:
        parts = [f"{w:.4g} chi2({k})" for w, k in zip(self.weights, self.dfs, strict=True)]
        return " + ".join(parts) + f" ({self.source})"


def one_variance() -> Mixture:
    """``0.5 chi2(0) + 0.5 chi2(1)``: one variance on the boundary."""
    return Mixture((0.5, 0.5), (0, 1), "Self & Liang 1987")


def one_column(q: int) -> Mixture:
    """``0.5 chi2(q-1) + 0.5 chi2(q)``: a correlated term of dimension ``q`` against ``q-1``."""
    if q == 1:
        return one_variance()
    return Mixture((0.5, 0.5), (q - 1, q), "Stram & Lee 1994")


def psd_cone(q: int, n_sim: int = 200_000, seed: int = 20260101) -> Mixture:
    """Chi-bar-square of the cone of ``q x q`` positive semi-definite matrices.

    The weight of ``chi2(k (k + 1) / 2 + k (q - k))`` (the dimension of the cone's face at a
    rank-``k`` matrix) is the probability that a ``q x q`` GOE matrix has ``k`` positive
    eigenvalues, estimated from ``n_sim`` draws with a fixed seed.
    """
    if q == 1:
        return one_variance()
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n_sim, q, q))
    goe = (a + np.swapaxes(a, 1, 2)) / 2.0
    k = np.sum(np.linalg.eigvalsh(goe) > 0, axis=1)
    weights = np.bincount(k, minlength=q + 1) / n_sim
    dfs = tuple(j * (j + 1) // 2 + j * (q - j) for j in range(q + 1))
    return Mixture(
        tuple(float(w) for w in weights),
        dfs,
        "chi-bar-square of the PSD cone, identity information; Shapiro 1988, Kuriki 1993",
    )


def independent_variances(q: int) -> Mixture:
    """``sum_k C(q, k) 2^-q chi2(k)``: ``q`` uncorrelated variances on the boundary, taken as
    orthogonal in the information (Self & Liang 1987, case 8 with orthogonal components)."""
    from math import comb

    weights = tuple(comb(q, k) / 2.0**q for k in range(q + 1))
    return Mixture(weights, tuple(range(q + 1)), "Self & Liang 1987, orthogonal components")


def warn_negative(stat: float, fit, formula: str) -> None:
    """Warn that the full fit's log-likelihood is below the reduced one's."""
    import warnings

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
        ``2 (l1 - l0)``, tiny negatives clipped to 0.
    p_value : float
        From the boundary-aware null.
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
    """

    statistic: float
    p_value: float
    method: str
    null_distribution: str
    df: int
    p_value_naive: float
    term: str = ""
    fits: dict = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return (
            f"VarianceTest({self.method.upper()} of {self.term}: statistic = "
            f"{self.statistic:.6g}, df = {self.df}, p = {self.p_value:.4g} under "
            f"{self.null_distribution}; naive chi2({self.df}) p = {self.p_value_naive:.4g})"
        )


@dataclass
class GLMNullFit:
    """The GLM (no random effects) fitted by IRLS: the reduced model of a test."""

    formula: str
    beta: np.ndarray
    loglik: float
    n_params: int
    nobs: int
    criterion: str = "log-likelihood"


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
            return GLMNullFit(model.formula, beta, float(ll), p + 1, n, "REML criterion")
        ll = -0.5 * n * (1.0 + np.log(2.0 * np.pi * rss / n))
        return GLMNullFit(model.formula, beta, float(ll), p + 1, n)

    def loglik(alpha: float = 1.0) -> tuple[float, np.ndarray]:
        g = fit_glm_design(d, dispersion=alpha, form="working")
        ll = fam.loglik(d.y, trials=d.trials, dispersion=alpha, eta=g.eta)
        return float(np.sum(ll)), g.beta

    if fam.has_dispersion:  # negative binomial: profile the shape
        res = optimize.minimize_scalar(
            lambda la: -loglik(float(np.exp(la)))[0], bounds=(-10, 15), method="bounded"
        )
        ll, beta = loglik(float(np.exp(res.x)))
        return GLMNullFit(model.formula, beta, ll, p + 1, n)
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


def test_variance(fit, term: str, method: str = "lrt") -> VarianceTest:
    """Test whether the variance(s) of one random-effect term are zero.

    Parameters
    ----------
    fit : FitResult
        A likelihood fit (``laplace``, ``agq``, ``lmm``, ...) made by :meth:`GLMM.fit`.
    term : str
        The term to remove: its label (``"(1|herd)"``, ``"1|herd"``), its grouping factor
        when that has one term, or a component ``"g|x"`` of a correlated term (then only that
        column, its variance and covariances, is removed).
    method : {"lrt"}
        The likelihood-ratio test. ``"score"``, ``"rlrt"`` and ``"bootstrap"`` are not
        available yet.

    Returns
    -------
    VarianceTest
        Statistic, p-value under the boundary-aware null (module docstring) and the naive
        ``chi2`` p-value beside it.

    Raises
    ------
    MethodError
        For another method, a Bayesian or quasi-likelihood fit, or a term not in the model.
    """
    if method in NOT_AVAILABLE:
        raise MethodError(
            f"test_variance(method={method!r}) is not available yet; available: "
            f"{', '.join(METHODS)} (not yet: {', '.join(NOT_AVAILABLE)})"
        )
    if method not in METHODS:
        raise MethodError(f"test_variance method must be one of {METHODS}, got {method!r}")
    check_likelihood_fit(fit)
    from ..glmm import GLMM

    model = fit.model
    d = model.design
    index, column = find_term(d, term)
    t = d.random[index]
    specs = [r.spec for r in d.random]
    if column is None:
        specs.pop(index)
        q = t.n_columns
        if q == 1:
            null, df = one_variance(), 1
        elif t.correlated:
            null, df = psd_cone(q), q * (q + 1) // 2
        else:
            null, df = independent_variances(q), q
    else:
        specs[index] = _drop_column(t, column)
        null, df = one_column(t.n_columns), t.n_columns
    options = dict(fit.info.get("options") or {})
    if "start" in options:
        options["start"] = None
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
            f"{d.n}: missing values in the grouping factor of {t.spec.label}"
        )
    if specs:
        reduced = reduced_model.fit(method=fit.method, **options)
    else:
        reduced = glm_loglik(reduced_model, fit.method, options)
    stat = 2.0 * (fit.loglik - reduced.loglik)
    if stat < -1e-6 * max(1.0, abs(fit.loglik)):
        warn_negative(stat, fit, formula)
    stat = max(stat, 0.0)
    return VarianceTest(
        statistic=float(stat),
        p_value=null.sf(stat),
        method=method,
        null_distribution=str(null),
        df=int(df),
        p_value_naive=float(stats.chi2.sf(max(stat, 0.0), df)),
        term=t.spec.label if column is None else f"{t.group}|{column}",
        fits={"full": fit, "reduced": reduced},
    )
