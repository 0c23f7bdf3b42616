"""Side-by-side estimates of several fits: a join of their result tables.

``compare`` reads only the result schema (:mod:`bayesglmm.result`), never the method name:
one column per fit, one row per parameter, rows ordered fixed effects, variances,
correlations, dispersion, log-likelihood. Columns are labelled uniquely, and a fit whose
priors differ from the other Bayesian fits', or whose estimates are marginal
(population-averaged) rather than conditional on the random effects, is marked so that
unlike numbers are not read as like.

``compare(model, methods=[...])`` first fits the model by each method
(:mod:`bayesglmm.comparison`) and returns a :class:`~bayesglmm.comparison.Comparison`,
whose ``table`` is this join.
"""

from __future__ import annotations

from ..errors import BayesGLMMError, OptionError
from ..results.tables import MARGINAL, PRIORS_DIFFER, join_fits, unique_labels

#: ``methods="all"``: every registered method
ALL = "all"

__all__ = ["compare", "unique_labels", "MARGINAL", "PRIORS_DIFFER", "ALL"]


def compare(
    results,
    methods=None,
    *,
    random_seed: int | None = None,
    progressbar: bool | None = None,
    references=None,
    allow_different_models: bool = False,
):
    """Side-by-side estimates of several fits, or of one model fitted by several methods.

    ``compare({label: fit, ...})`` joins finished fits into one table.
    ``compare(model, methods=[...])`` fits the model by each method and returns a
    :class:`~bayesglmm.comparison.Comparison`: the tidy table (``.tidy``), this wide table
    (``.table``), the fits (``.fits``), one row per method (``.overview``) and a forest plot
    with the reference values (``.plot()``).

    Parameters
    ----------
    results : dict of label -> FitResult, list of FitResult, or GLMM
        A list is labelled by method, with ``" (2)"`` ... added to repeated methods.
    methods : "all", str, list or dict, optional
        With a model only (default ``"all"``): method names, ``(name, {options})`` pairs, or
        ``{label: name or (name, {options})}``. Every name and option is checked before
        anything fits. A method that does not apply to the design (GEE or quadrature on
        crossed factors, ``lmm`` on a binomial model) is kept as a note with its reason,
        unless it is the only method asked for.
    random_seed, progressbar : optional
        With a model: given to every method that takes them. A bar runs across the methods.
    references : optional
        With a model: values to draw beside the fits. None: those of the spec the model was
        built from (``models/*.toml``), if any; False: none; or a spec, a list of
        :class:`~bayesglmm.specs.Reference`, or ``{label: {parameter: value}}``.
    allow_different_models : bool
        With finished fits: put fits of different models or data side by side, each column
        marked ``"[model k]"`` (``table.attrs["notes"]`` names each model). By default such
        fits are refused, naming what differs (formula, family/link, response, number of
        observations or data).

    Returns
    -------
    pandas.DataFrame or Comparison
        For fits: one column per fit and one row per parameter (fixed effects, ``var(...)``,
        ``cor(...)``, dispersion, ``logLik``); NaN where a fit lacks the parameter. A column
        whose fit used other priors than the other Bayesian fits, estimates marginal
        effects or did not converge has its label marked ``"label [priors differ]"`` /
        ``"label [marginal]"`` / ``"label [not converged]"``;
        ``table.attrs["notes"]`` says why. For a model: a ``Comparison``.

    Examples
    --------
    >>> from bayesglmm.specs import load_spec
    >>> model = load_spec("salamander").build()                       # doctest: +SKIP
    >>> cmp = bg.compare(model, ["laplace", "pql", ("nuts", {"draws": 500})],
    ...                  random_seed=1)                                # doctest: +SKIP
    >>> cmp.tidy; cmp.plot("forest.png")                              # doctest: +SKIP
    """
    from ..glmm import GLMM

    _check_inputs(results)
    if not isinstance(allow_different_models, bool):
        raise OptionError(
            f"compare: allow_different_models must be True or False, got {allow_different_models!r}"
        )
    if isinstance(results, GLMM):
        return _compare_methods(
            results, ALL if methods is None else methods, random_seed, progressbar, references
        )
    given = {"methods": methods, "random_seed": random_seed, "progressbar": progressbar}
    given["references"] = references
    extra = [k for k, v in given.items() if v is not None]
    if extra:
        raise BayesGLMMError(
            f"compare: {extra[0]}= applies when comparing a model (compare(model, "
            f"methods=[...])), not finished fits; got a {type(results).__name__}"
        )
    return join_fits(results, allow_different_models=allow_different_models)


def _compare_methods(model, methods, random_seed, progressbar, references):
    from .comparison import fit_plan, plan_methods, references_of

    plan = plan_methods(methods, random_seed=random_seed, progressbar=progressbar)
    refs = references_of(model, references)  # checked before anything fits, too
    return fit_plan(model, plan, refs, progressbar=progressbar)


def _check_inputs(results) -> None:
    """Every fit handed to compare is a FitResult; the error names the one that is not."""
    from ..results.result import FitResult

    if isinstance(results, dict):
        items = [(f"results[{k!r}]", v) for k, v in results.items()]
    elif isinstance(results, list | tuple):
        items = [(f"results[{i}]", v) for i, v in enumerate(results)]
    else:
        return
    for where, r in items:
        if not isinstance(r, FitResult):
            hint = " (a model: compare(model, methods=[...]) fits it)" if _is_model(r) else ""
            raise OptionError(
                f"compare: {where} is a {type(r).__name__} ({_short(r)}), not a FitResult "
                f"from GLMM.fit or FitResult.load{hint}"
            )


def _is_model(obj) -> bool:
    from ..glmm import GLMM

    return isinstance(obj, GLMM)


def _short(obj) -> str:
    text = repr(obj)
    return text if len(text) <= 40 else text[:37] + "..."
