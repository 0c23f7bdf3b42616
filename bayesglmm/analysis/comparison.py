"""Fit one model by several methods and put the fits side by side: :class:`Comparison`.

``bayesglmm.compare(model, methods=[...])`` runs here. Its stages, each callable alone:

1. :func:`plan_methods` checks every method name and option (through
   :mod:`bayesglmm.methods` and :mod:`bayesglmm.options`) and returns the plan, or raises
   one :class:`~bayesglmm.errors.OptionError` / :class:`~bayesglmm.errors.MethodError`
   naming the method at fault, before anything fits;
2. :func:`run_plan` fits the methods in turn with a progress bar across them; a method that
   does not apply to the design (GEE or quadrature on crossed factors, ``lmm`` on a
   binomial model: :meth:`bayesglmm.methods.MethodRecord.applies`) is not fitted, and the
   record's reason is kept as that method's note instead of stopping the comparison
   (unless it was the only method asked for), as is a :class:`~bayesglmm.errors.MethodError`
   a fit raises for its data;
3. :class:`Comparison` holds the fits, the notes and the reference values, and gives the
   tidy table (one row per method and parameter), the wide table of
   :func:`bayesglmm.compare`, one row per method (:attr:`Comparison.overview`) and a forest
   plot (:meth:`Comparison.plot`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import BayesGLMMError, MethodError, OptionError
from ..results.result import DISPERSION_ROWS, FitResult

#: ``methods="all"``: every registered method
ALL = "all"
#: columns of :attr:`Comparison.tidy`, in this order
TIDY_COLUMNS = (
    "method",
    "parameter",
    "estimate",
    "std_error",
    "lower",
    "upper",
    "seconds",
    "kind",
    "converged",
    "note",
)


@dataclass(frozen=True)
class PlannedFit:
    """One fit of a comparison: its label, the registered method and checked options."""

    label: str
    method: str
    options: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# 1. the plan


def _entries(methods) -> list[tuple[str | None, object]]:
    """``methods`` as ``(label or None, item)`` pairs."""
    if isinstance(methods, str):
        if methods.lower() == ALL:
            from ..methods import available_methods

            return [(None, m) for m in available_methods()]
        return [(None, methods)]
    if isinstance(methods, Mapping):
        return [(str(k), v) for k, v in methods.items()]
    if isinstance(methods, list | tuple) and methods:
        return [(None, m) for m in methods]
    raise MethodError(
        "methods must be 'all', a method name, a list of names or (name, {options}) pairs, "
        f"or a dict label -> name, got {methods!r}"
    )


def _split(item, where: str) -> tuple[str, dict]:
    if isinstance(item, str):
        return item, {}
    if (
        isinstance(item, tuple | list)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], Mapping)
    ):
        return item[0], dict(item[1])
    raise MethodError(f"{where} must be a method name or (name, {{options}}), got {item!r}")


def plan_methods(methods, random_seed=None, progressbar=None) -> list[PlannedFit]:
    """Check the methods of a comparison and their options; nothing is fitted.

    Parameters
    ----------
    methods : "all", str, list or dict
        ``"all"`` (every registered method), one name, a list of names or
        ``(name, {options})`` pairs, or a dict ``{label: name or (name, {options})}``.
    random_seed, progressbar
        Shared options, given to every method that takes them (a method's own options win).

    Returns
    -------
    list of PlannedFit
        Labels are the method names (``"pql"``, ``"pql (2)"`` for a repeat) or the dict's.

    Raises
    ------
    MethodError
        An unknown method (naming the known ones) or a malformed entry.
    OptionError
        An unknown or bad option, naming the method and the option.
    """
    from ..methods import get_method
    from ..options import flag, known_options, resolve_options, seed

    seed("random_seed", random_seed)
    flag(none=True)("progressbar", progressbar)
    shared = {"random_seed": random_seed, "progressbar": progressbar}
    plan, counts = [], {}
    for i, (label, item) in enumerate(_entries(methods)):
        name, options = _split(item, f"methods[{i}]" if label is None else f"methods[{label!r}]")
        get_method(name)  # an unknown name: MethodError listing the known ones
        name = name.lower()
        known = known_options(name)
        given = {k: v for k, v in shared.items() if v is not None and k in known}
        given.update(options)
        try:
            resolved = resolve_options(name, given)
        except OptionError as err:
            raise OptionError(f"methods: {err}" if name in str(err) else f"{name}: {err}") from None
        if label is None:
            counts[name] = counts.get(name, 0) + 1
            label = name if counts[name] == 1 else f"{name} ({counts[name]})"
        plan.append(PlannedFit(label, name, resolved))
    labels = [p.label for p in plan]
    if len(set(labels)) != len(labels):
        raise MethodError(f"methods: labels must be unique, got {labels}")
    return plan


# ------------------------------------------------------------------------------------------
# 2. running it


def fit_plan(model, plan: list[PlannedFit], references, progressbar=None) -> Comparison:
    """Fit ``model`` by each planned method and assemble the :class:`Comparison`."""
    fits, skipped, seconds = run_plan(model, plan, progressbar=progressbar)
    return Comparison(fits, skipped, seconds, references, order=[p.label for p in plan])


def run_plan(model, plan: list[PlannedFit], progressbar=None):
    """Fit ``model`` by each planned method, in order.

    Returns
    -------
    fits : dict label -> FitResult
    skipped : dict label -> str
        Why a method did not apply (its own :class:`MethodError` message).
    seconds : dict label -> float
        Wall time of each attempt.
    """
    from tqdm.auto import tqdm

    from ..method_checks import check_planned
    from ..methods import get_record
    from ..options import tqdm_progress

    for p in plan:  # options that contradict each other, sizes beyond memory: before any fit
        if get_record(p.method).applies(model.design) is None:
            check_planned(get_record(p.method), model.design, p.options)
    fits, skipped, seconds = {}, {}, {}
    bar = tqdm(total=len(plan), desc="compare", unit="method", **tqdm_progress(progressbar))
    try:
        for p in plan:
            bar.set_postfix_str(p.label)
            start = time.perf_counter()
            reason = get_record(p.method).applies(model.design)
            try:
                if reason:  # the record says so: nothing is fitted
                    raise MethodError(reason)
                fits[p.label] = model.fit(method=p.method, **p.options)
            except OptionError:
                raise  # checked up front; one here is a bug, not a method that does not apply
            except MethodError as err:
                if len(plan) == 1:
                    raise
                skipped[p.label] = " ".join(str(err).split())
            seconds[p.label] = time.perf_counter() - start
            bar.update()
    finally:
        bar.close()
    return fits, skipped, seconds


# ------------------------------------------------------------------------------------------
# references


def references_of(model, references) -> dict[str, tuple[pd.Series, str]]:
    """Reference values to draw beside the fits: ``{label: (values, source)}``.

    ``references`` is None (those of the spec the model was built from, if any), False
    (none), a :class:`~bayesglmm.specs.ModelSpec` or spec name, a list of
    :class:`~bayesglmm.specs.Reference`, or a dict ``{label: {parameter: value}}`` with
    parameters named as in :func:`bayesglmm.compare` (``"Cross[RR]"``, ``"var(Female)"``).
    Every parameter is checked against the model.
    """
    from .specs import ModelSpec, Reference, load_spec, spec_of

    if references is None:
        spec = spec_of(model) if model is not None else None
        references = spec.references if spec is not None else ()
    elif references is False:
        references = ()
    elif isinstance(references, str):
        references = load_spec(references).references
    if isinstance(references, ModelSpec):
        references = references.references
    out: dict[str, tuple[pd.Series, str]] = {}
    if isinstance(references, Mapping):
        for label, values in references.items():
            if not isinstance(values, Mapping | pd.Series):
                raise BayesGLMMError(
                    f"references[{label!r}] must be a dict parameter -> value, got {values!r}"
                )
            try:
                s = pd.Series(dict(values), dtype=float, name=str(label))
            except (TypeError, ValueError):
                raise BayesGLMMError(
                    f"references[{label!r}] holds a value that is not a number"
                ) from None
            out[str(label)] = (s, "given")
    else:
        for ref in references:
            if not isinstance(ref, Reference):
                raise BayesGLMMError(
                    "references must be a spec, a list of specs.Reference or a dict "
                    f"label -> {{parameter: value}}, got an element {ref!r}"
                )
            out[ref.method] = (ref.as_series(), " ".join(ref.source.split()))
    if model is not None:
        d = model.design
        known = [str(n) for n in d.fixed_names] + [f"var({c})" for c in d.component_names]
        for label, (s, _) in out.items():
            extra = [
                k
                for k in s.index
                if k not in known
                and k != "logLik"
                and not k.startswith("cor(")
                and k not in DISPERSION_ROWS
            ]
            if extra:
                raise BayesGLMMError(
                    f"reference {label!r} names {extra[0]!r}, not a parameter of the model; "
                    f"its parameters: {', '.join(known)}"
                )
    return out


# ------------------------------------------------------------------------------------------
# 3. the result


class Comparison:
    """Fits of one model by several methods, side by side.

    Attributes
    ----------
    fits : dict of label -> FitResult
        The fits, in the order asked (``comparison["laplace"]`` is one of them).
    skipped : dict of label -> str
        Methods that do not apply to the design, with their own reason.
    seconds : dict of label -> float
        Wall time of each method.
    references : dict of label -> (pandas.Series, str)
        Reference values (published or from R) and their source.
    order : list of str
        Every label, fitted or skipped, in the order asked.
    """

    def __init__(self, fits, skipped=None, seconds=None, references=None, order=None):
        self.fits: dict[str, FitResult] = dict(fits)
        self.skipped: dict[str, str] = dict(skipped or {})
        self.seconds: dict[str, float] = {
            lab: float((seconds or {}).get(lab, r.elapsed)) for lab, r in self.fits.items()
        }
        self.seconds.update({lab: float((seconds or {}).get(lab, np.nan)) for lab in self.skipped})
        self.references = dict(references or {})
        self.order = list(order) if order is not None else [*self.fits, *self.skipped]

    @classmethod
    def from_fits(cls, results, references=False) -> Comparison:
        """A comparison of finished fits (``{label: FitResult}`` or a list)."""
        from ..results.tables import unique_labels

        if not isinstance(results, Mapping):
            results = dict(zip(unique_labels(list(results)), results, strict=True))
        return cls(results, references=references_of(None, references))

    def __getitem__(self, label: str) -> FitResult:
        if label not in self.fits:
            why = f" ({self.skipped[label]})" if label in self.skipped else ""
            raise KeyError(f"no fit labelled {label!r}{why}; fits: {', '.join(self.fits)}")
        return self.fits[label]

    # tables ------------------------------------------------------------------------------
    @property
    def table(self) -> pd.DataFrame:
        """The wide table of :func:`bayesglmm.compare`: one column per fit, marks included."""
        from ..results.tables import join_fits

        return join_fits(self.fits)

    def wide(self, references: bool = True) -> pd.DataFrame:
        """:attr:`table` with one more column per reference (its values where it has them)."""
        table = self.table
        if references and self.references:
            refs = [s.rename(lab) for lab, (s, _) in self.references.items()]
            notes = table.attrs.get("notes", {})
            table = pd.concat([table, *refs], axis=1).loc[table.index]
            table.attrs["notes"] = notes
        return table

    def _notes(self) -> dict[str, str]:
        """A note per fitted label: the compare marks, and non-convergence."""
        from ..results.tables import _marks

        labels = list(self.fits)
        marks = _marks(labels, list(self.fits.values()))
        return {lab: "; ".join(marks.get(lab, [])) for lab in self.fits}

    @property
    def tidy(self) -> pd.DataFrame:
        """One row per method and parameter (:data:`TIDY_COLUMNS`); a skipped method has one
        row with no parameter and its reason in ``note``. ``std_error`` is the posterior sd
        of Bayesian fits; ``lower``/``upper`` the 95 % interval of the method; ``converged``
        is False for a fit that did not converge (its ``note`` says so)."""
        notes = self._notes()
        rows = []
        for lab in self.order:
            if lab in self.skipped:
                rows.append(
                    {
                        "method": lab,
                        "parameter": None,
                        "seconds": self.seconds[lab],
                        "kind": None,
                        "converged": None,
                        "note": f"not applicable: {self.skipped[lab]}",
                    }
                )
                continue
            r = self.fits[lab]
            for param, row in r.table.iterrows():
                rows.append(
                    {
                        "method": lab,
                        "parameter": str(param),
                        **{c: float(row[c]) for c in ("estimate", "std_error", "lower", "upper")},
                        "seconds": self.seconds[lab],
                        "kind": r.kind,
                        "converged": bool(r.converged),
                        "note": notes[lab],
                    }
                )
        return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))

    @property
    def overview(self) -> pd.DataFrame:
        """One row per method: registered method, kind, seconds, converged, logLik, AIC, note."""
        notes = self._notes()
        rows = {}
        for lab in self.order:
            if lab in self.skipped:
                rows[lab] = {"seconds": self.seconds[lab], "note": self.skipped[lab]}
                continue
            r = self.fits[lab]
            rows[lab] = {
                "method": r.method,
                "kind": r.kind,
                "seconds": self.seconds[lab],
                "converged": r.converged,
                "logLik": r.loglik,
                "AIC": r.aic,
                "note": notes[lab],
            }
        cols = ["method", "kind", "seconds", "converged", "logLik", "AIC", "note"]
        table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=cols)
        table.index.name = "label"
        return table

    # plot --------------------------------------------------------------------------------
    def plot(self, path=None, parameters=None, title: str | None = None, dpi: int | None = None):
        """Forest plot: per parameter, every method's estimate and 95 % interval, reference
        values as marks; see :func:`bayesglmm.plots.forest_plot`.

        Parameters
        ----------
        path : path, optional
            Also write the figure there (PNG by the suffix).
        parameters : list of str, optional
            The rows to draw (default: all but the log-likelihood).
        title : str, optional

        Returns
        -------
        matplotlib.figure.Figure
        """
        from .plots import forest_plot

        refs = {lab: s for lab, (s, _) in self.references.items()}
        return forest_plot(
            self.tidy,
            refs,
            path=path,
            parameters=parameters,
            title=title,
            dpi=dpi,
            skipped=self.skipped,
        )

    # display -----------------------------------------------------------------------------
    def _footer(self) -> list[str]:
        marks = self.wide().attrs.get("notes", {})
        lines = [f"{lab}: {note}" for lab, notes in marks.items() for note in notes]
        lines += [f"{lab}: not applicable: {why}" for lab, why in self.skipped.items()]
        lines += [f"{lab}: {src}" for lab, (_, src) in self.references.items()]
        return lines

    def __repr__(self) -> str:
        with pd.option_context("display.width", 160, "display.max_columns", 30):
            text = self.wide().to_string(float_format=lambda v: f"{v:.3f}")
        secs = ", ".join(f"{lab} {s:.1f}" for lab, s in self.seconds.items() if lab in self.fits)
        return "\n".join([text, f"seconds: {secs}", *self._footer()])

    def _repr_html_(self) -> str:
        html = self.wide().to_html(float_format=lambda v: f"{v:.3f}", na_rep="")
        items = "".join(f"<li>{line}</li>" for line in self._footer())
        return html + (f"<ul>{items}</ul>" if items else "")
