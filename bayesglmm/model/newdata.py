"""A fitted :class:`~bayesglmm.design.Design` evaluated on new rows, for prediction.

The new rows get the fit's encoding: the training factor levels and reference levels,
formulae's stateful transforms (``scale(x)`` centres and scales with the training mean and
standard deviation), the fit's column order. Grouping factors are matched to the training
levels by their labels; a level the fit has not seen gets a negative index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from . import factors
from .design import Design, RandomTerm, _as_float, _evaluate, _names_in, ordered_columns


@dataclass
class NewRows:
    """Model arrays on the rows to predict.

    Attributes
    ----------
    labels : Index
        Row labels (the new data's, or the fit's rows).
    X : ndarray (n, p)
    offset : ndarray (n,)
    terms : list of RandomTerm
        The random-effect terms included (``re_form``), in the design's order.
    index : list of ndarray of int
        Level of each row per included term; a level the fit has not seen is coded
        ``-1 - j`` for the j-th entry of ``new_levels[group]``.
    Xz : list of ndarray (n, k)
        Each included term's own columns on the rows.
    new_levels : dict of str to list of str
        Per grouping factor, the labels of levels the fit has not seen.
    trials : ndarray (n,) or None
        Binomial trials on the rows when they can be read (None when not needed/available).
    """

    labels: pd.Index
    X: np.ndarray
    offset: np.ndarray
    terms: list
    index: list
    Xz: list
    new_levels: dict
    trials: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.X.shape[0]


def training_rows(design: Design, terms: list[RandomTerm]) -> NewRows:
    """:class:`NewRows` of the fit's own rows (``newdata=None``)."""
    return NewRows(
        labels=design.row_labels,
        X=design.X,
        offset=design.offset,
        terms=list(terms),
        index=[t.index for t in terms],
        Xz=[t.X for t in terms],
        new_levels={},
        trials=design.trials,
    )


def _training_frame(design: Design, data: pd.DataFrame) -> pd.DataFrame:
    return factors.factor_frame(data.loc[design.row_labels])


def _align(train: pd.Series, new: pd.Series, name: str) -> pd.Series:
    """``new`` with the dtype and levels of the training column ``train``."""
    if isinstance(train.dtype, pd.CategoricalDtype):
        cats = list(train.cat.categories)
        by_str = {str(c): c for c in cats}
        values = [v if v in cats else by_str.get(str(v), _UNKNOWN) for v in new]
        unknown = sorted({str(v) for v, m in zip(new, values, strict=True) if m is _UNKNOWN})
        if unknown:
            raise DataError(
                f"newdata column {name!r} has levels {unknown} that the fit has not seen "
                f"(its levels are {[str(c) for c in cats]})"
            )
        return pd.Series(
            pd.Categorical(values, categories=cats, ordered=True), index=new.index, name=name
        )
    kind = np.asarray(train).dtype.kind
    if kind in "OUST":
        seen = {str(v) for v in train}
        strings = new.astype(str)
        unknown = sorted(set(strings) - seen)
        if unknown:
            raise DataError(
                f"newdata column {name!r} has levels {unknown} that the fit has not seen "
                f"(its levels are {sorted(seen)})"
            )
        # as a Categorical of all training levels, so relevel()'s reference need not occur
        cats = sorted(seen)
        return pd.Series(
            pd.Categorical(strings, categories=cats, ordered=True), index=new.index, name=name
        )
    if kind == "b":
        return new.astype(bool)
    try:
        return new.astype(float)
    except (TypeError, ValueError):
        raise DataError(
            f"newdata column {name!r} is not numeric (dtype {new.dtype}) but the fit's is"
        ) from None


_UNKNOWN = object()


def _level_labels(train: pd.Series, new: pd.Series) -> np.ndarray:
    """Labels of ``new`` as the design labels the training levels (``str`` of the values)."""
    cats = pd.Categorical(train).categories
    try:
        conv = pd.Index(new).astype(cats.dtype)
        if cats.dtype.kind in "iu" and not np.array_equal(np.asarray(conv, float), new):
            conv = pd.Index(new)  # 1.5 is not the integer level 1
    except (TypeError, ValueError):
        conv = pd.Index(new)
    return np.asarray(conv.astype(str))


def _group_index(term: RandomTerm, train: pd.DataFrame, new: pd.DataFrame):
    cols = term.group.split(":")
    parts = [_level_labels(train[c], new[c]) for c in cols]
    labels = (
        parts[0] if len(parts) == 1 else np.array([":".join(v) for v in zip(*parts, strict=True)])
    )
    lookup = {lv: i for i, lv in enumerate(term.levels)}
    unseen = list(dict.fromkeys(lv for lv in labels.tolist() if lv not in lookup))
    lookup.update({lv: -1 - j for j, lv in enumerate(unseen)})
    return np.array([lookup[lv] for lv in labels.tolist()], dtype=np.int64), unseen


def _evaluate_matrix(common, frame: pd.DataFrame, names: list[str], where: str) -> np.ndarray:
    if common is None:
        return np.zeros((len(frame), 0))
    with factors.new_data():
        try:
            new = common.evaluate_new_data(frame)
        except Exception as err:  # formulae's message names the column
            raise DataError(f"cannot evaluate the {where} on newdata: {err}") from None
    X, got, _ = ordered_columns(new)
    if list(got) != list(names):
        raise DataError(f"the {where} on newdata has columns {got}, the fit's are {names}")
    return X


def new_rows(
    design: Design,
    data: pd.DataFrame,
    newdata: pd.DataFrame,
    terms: list[RandomTerm],
) -> NewRows:
    """Evaluate ``design`` (fitted on ``data``) on ``newdata`` for the ``terms`` included.

    Raises
    ------
    DataError, FormulaError
        A column the prediction needs is missing or has missing values, or a fixed-effect
        factor has a level the fit has not seen (naming the column and levels).
    """
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    if len(newdata) == 0:
        raise DataError("newdata has no rows")
    spec = design.spec
    exprs = [spec.fixed, *spec.offsets, *(t.spec.expr for t in terms)]
    value_cols = sorted({c for e in exprs for c in _names_in(e) if c in data.columns})
    group_cols = sorted({c for t in terms for c in t.group.split(":")})
    missing = [c for c in value_cols + group_cols if c not in newdata.columns]
    if missing:
        raise FormulaError(
            f"newdata lacks column(s) {missing} that the prediction needs; "
            f"it has {', '.join(map(str, newdata.columns))}"
        )
    used = list(dict.fromkeys(value_cols + group_cols))
    na = newdata[used].isna().any()
    if na.any():
        raise DataError(f"newdata has missing values in column(s) {list(na[na].index)}")
    train = _training_frame(design, data)
    frame = newdata.copy()
    for c in value_cols:
        frame[c] = _align(train[c], newdata[c], c)

    X = _evaluate_matrix(design.fixed_design, frame, design.fixed_names, "fixed-effect design")
    offset = np.zeros(len(frame))
    for off in spec.offsets:
        offset = offset + _as_float(_evaluate(off, frame), f"offset({off})", frame.index)
    index, Xz, new_levels = [], [], {}
    for t in terms:
        idx, unseen = _group_index(t, train, newdata)
        if unseen:
            new_levels[t.group] = unseen
        index.append(idx)
        if t.matrix_design is None:
            Xz.append(np.ones((len(frame), 1)))
        else:
            Xz.append(_evaluate_matrix(t.matrix_design, frame, t.columns, f"term {t.spec.label}"))
    return NewRows(newdata.index, X, offset, list(terms), index, Xz, new_levels)


def new_trials(design: Design, newdata: pd.DataFrame | None) -> np.ndarray | None:
    """Binomial trials on the rows: ones for a 0/1 response, successes + failures for
    ``cbind`` (read from ``newdata``); None for other families."""
    if design.family.name != "binomial":
        return None
    if newdata is None:
        return design.trials
    r = design.spec.response
    if r.kind != "cbind":
        return np.ones(len(newdata))
    cols = sorted(_names_in(r.expr) | _names_in(r.failures_expr))
    missing = [c for c in cols if c not in newdata.columns]
    if missing:
        raise FormulaError(
            f"newdata lacks column(s) {missing}: simulating cbind({r.expr}, {r.failures_expr}) "
            "needs the number of trials on every row"
        )
    succ = _as_float(_evaluate(r.expr, newdata), r.expr, newdata.index)
    fail = _as_float(_evaluate(r.failures_expr, newdata), r.failures_expr, newdata.index)
    return succ + fail
