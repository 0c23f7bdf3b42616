"""The user-facing :class:`GLMM`: holds a spec, its design and priors; fits by method name."""

from __future__ import annotations

import time

import pandas as pd

from ._warn import WarningsRecord
from .errors import DataError, MethodError
from .method_checks import check_fit
from .methods import MethodRecord, get_record
from .model.degenerate import check_response
from .model.design import Design, build_design
from .model.formula import parse_formula
from .model.prior_set import PriorSet, resolve_priors
from .options import flag, option_defaults, resolve_options
from .results.result import FitResult


class GLMM:
    """A generalized linear mixed model written as an lme4 formula.

    .. math::

        g(E[y_i \\mid b]) = x_i^\\top \\beta + z_i^\\top b + \\text{offset}_i,
        \\qquad b \\sim N(0, \\Sigma(\\theta))

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"Mate ~ 0 + Cross + (1|Female) + (1|Male)"``, with ``cbind(s, f)``
        for binomial counts, ``offset(...)``, nested ``(1|a/b)``, correlated ``(x|g)`` and
        uncorrelated ``(x||g)`` terms, and glmmTMB's ``ar1(time + 0 | g)`` (an AR(1) over
        the levels of the factor ``time`` within each level of ``g``).
    data : pandas.DataFrame
    family : str
        ``"binomial"`` (0/1 or ``cbind``), ``"poisson"``, ``"gaussian"`` or
        ``"negative_binomial"``.
    link : str, optional
        Defaults as in R: logit, log, identity, log.
    priors : dict, optional
        Priors by term, grouping factor or parameter name (see
        :func:`bayesglmm.prior_set.resolve_priors`); defaults are documented in
        :mod:`bayesglmm.priors`.
    dropna : bool
        Drop rows with missing values instead of raising an error.
    relmat : dict, optional
        Known relationship matrices by grouping factor, ``{"animal": K}``: the effects of
        ``(1|animal)`` are ``N(0, sigma^2 K)``, ``K`` a positive-definite DataFrame indexed
        by level labels (it may hold levels without data) or an array in the factor's level
        order (see :func:`bayesglmm.model.relmat.additive_relationship`). Taken by the
        methods whose record lists ``"relmat"`` in its ``structures``.
    weights : str or array-like, optional
        Prior weights ``w_i`` (a column name or one value per row of ``data``): row ``i``'s
        density is ``exp{(y theta - b(theta)) / (phi / w_i) + c}``, i.e. ``w_i`` times its
        log-likelihood for the binomial and Poisson (R's ``glm``/``glmer`` weights: whole
        numbers are frequency weights) and ``y_i ~ N(mu_i, sigma^2 / w_i)`` for the
        Gaussian (lme4's ``weights=``). Rows of weight zero are dropped with a warning.
        Taken by the methods whose record has ``weights=True``; the others refuse.

    Examples
    --------
    >>> from bayesglmm import GLMM, datasets
    >>> m = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", datasets.load("salamander"))
    >>> fit = m.fit(method="nuts", random_seed=1)        # doctest: +SKIP
    >>> fit.fixed_effects                                 # doctest: +SKIP
    """

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        family: str = "binomial",
        link: str | None = None,
        priors: dict | None = None,
        dropna: bool = False,
        relmat: dict | None = None,
        weights=None,
    ) -> None:
        dropna = flag()("dropna", dropna)
        if relmat is not None and not isinstance(relmat, dict):
            raise DataError(
                f"relmat must be a dict of grouping factor to matrix, got {type(relmat).__name__}"
            )
        self.spec = parse_formula(formula, family, link)
        self.relmat = relmat
        self.design: Design = build_design(
            self.spec, data, dropna=dropna, relmat=relmat, weights=weights
        )
        #: the prior weights as given (a column name or an array), None without
        self.weights = weights
        self.priors: PriorSet = resolve_priors(self.design, priors)
        self.data = data

    @property
    def formula(self) -> str:
        return self.spec.formula

    @property
    def family(self):
        return self.design.family

    def build_pymc(self, parameterization: str = "noncentered"):
        """The PyMC model, with coords named after the levels of each grouping factor."""
        from .bayes.builder import build_pymc_model

        return build_pymc_model(self.design, self.priors, parameterization=parameterization)

    def fit(self, method: str = "nuts", **options) -> FitResult:
        """Fit by ``method`` (see :func:`bayesglmm.methods.available_methods`).

        ``options`` use one vocabulary across methods (``max_iter``, ``progressbar``,
        ``random_seed``, ``threads``, ``start``; :mod:`bayesglmm.options`) and are checked
        before anything is built or sampled: an unknown option or a bad value raises
        :class:`~bayesglmm.errors.OptionError` naming it.
        ``bayesglmm.options.describe_options(method)`` lists a method's options.

        The one fit pipeline: the method's record (:mod:`bayesglmm.methods`), its options
        checked and completed with their defaults, the record's check that the method
        applies to this model (:class:`~bayesglmm.errors.MethodError` with the reason),
        its rules across options and the memory its sizes need
        (:func:`bayesglmm.method_checks.check_fit`), then the fitting function, timed,
        with every warning it raises recorded
        (:class:`bayesglmm._warn.WarningsRecord`: raised again to the caller unchanged, their
        texts in ``convergence["warnings"]``), whose estimates become the result
        (:func:`bayesglmm.results.assemble.assemble_result`) with ``timing["total"]`` and
        ``model`` set. A fitting function that hands the model to another method
        (:class:`~bayesglmm.results.assemble.Delegate`) is followed inside the same record.
        """
        from .results.assemble import Delegate, assemble_result

        record, resolved = self._method(method, options)
        start = time.perf_counter()
        with WarningsRecord() as raised:
            estimates = record.fit(self, **resolved)
            while isinstance(estimates, Delegate):
                record, resolved = self._method(estimates.method, estimates.options)
                estimates = record.fit(self, **resolved)
        total = time.perf_counter() - start
        return assemble_result(
            method=record.name,
            design=self.design,
            estimates=estimates,
            options=resolved,
            total=total,
            raised=raised.texts,
            model=self,
        )

    def _method(self, method: str, options: dict) -> tuple[MethodRecord, dict]:
        """The record of ``method`` and every option of it (``options`` checked, the rest
        at their defaults); MethodError if the method does not apply to this model."""
        record = get_record(method)
        given = resolve_options(record.name, options)
        if record.kind != "bayesian":
            # nothing to estimate (lme4's check.response.not.const): a Bayesian fit takes such
            # data, as brms does; its posterior is the prior's, and the propriety check refuses
            # it where the prior is improper
            check_response(self.design)
        reason = record.applies(self.design)
        if reason:
            raise MethodError(reason)
        resolved = {**option_defaults(record.name), **given}
        check_fit(record, self.design, given, resolved)  # rules across options; memory
        return record, resolved

    def __repr__(self) -> str:
        d = self.design
        terms = ", ".join(f"{t.name} ({t.n_levels} levels)" for t in d.random) or "none"
        return (
            f"GLMM({self.formula!r}, family={d.family.name}/{d.family.link.name}, "
            f"n={d.n}, fixed={d.p}, random: {terms})"
        )
