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
    """Labels of ``new`` as the design labels the training levels (``str`` of the values).

    Levels are matched by value, as :func:`bayesglmm.model.factors.factor` matches them:
    ``0.0`` and ``np.int64(0)`` are the integer level ``0``, the string ``"0"`` is the level
    labelled ``"0"``; a value matching no level keeps its own label (an unseen level).
    """
    cats = pd.Categorical(train).categories
    by_str = {str(c): str(c) for c in cats}
    by_num = {}
    if cats.dtype.kind in "iufb":
        by_num = {float(c): str(c) for c in cats}
    out = []
    for v in new.tolist():
        label = None
        if by_num and isinstance(v, int | float | np.number) and not isinstance(v, bool):
            label = by_num.get(float(v))
        if label is None:
            label = by_str.get(str(v), str(v))
        out.append(label)
    return np.asarray(out, dtype=object).astype(str)


def _row(label) -> str:
    """A row label as the user wrote it (``8``, ``'b'``), not as a NumPy scalar."""
    return repr(label.item() if isinstance(label, np.generic) else label)


def _check_finite(frame: pd.DataFrame, columns: list[str]) -> None:
    """Refuse missing or infinite values in the ``columns`` of newdata (first row named)."""
    for c in columns:
        col = frame[c]
        bad = np.asarray(col.isna())
        what = "a missing value"
        if not bad.any() and np.asarray(col).dtype.kind in "iufc":
            bad = ~np.isfinite(np.asarray(col, dtype=float))
            what = "an infinite value"
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"newdata column {c!r} has {what} ({col.iloc[i]}) in row "
                f"{_row(frame.index[i])} (position {i}); predictions need finite values"
            )


def _check_rows(values: np.ndarray, names: list[str], labels: pd.Index, where: str) -> None:
    """Refuse non-finite entries of an evaluated design (e.g. ``log(x)`` at ``x = 0``)."""
    values = values.reshape(len(labels), -1)
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise DataError(
            f"the {where} on newdata is not finite in column {names[j]!r} at row "
            f"{_row(labels[i])} (position {i}): value {values[i, j]}"
        )


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
    # log(0) and the like: refused with the column named (_check_rows), not a RuntimeWarning
    with factors.new_data(), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
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
        cols = list(na[na].index)
        first = newdata.index[np.flatnonzero(np.asarray(newdata[cols].isna().any(axis=1)))[0]]
        raise DataError(
            f"newdata has missing values in column(s) {cols} (first in row {_row(first)})"
        )
    _check_finite(newdata, used)
    train = _training_frame(design, data)
    frame = newdata.copy()
    for c in value_cols:
        frame[c] = _align(train[c], newdata[c], c)

    X = _evaluate_matrix(design.fixed_design, frame, design.fixed_names, "fixed-effect design")
    _check_rows(X, list(design.fixed_names), frame.index, "fixed-effect design")
    offset = np.zeros(len(frame))
    for off in spec.offsets:
        offset = offset + _as_float(_evaluate(off, frame), f"offset({off})", frame.index)
        _check_rows(offset, [f"offset({off})"], frame.index, "offset")
    index, Xz, new_levels = [], [], {}
    for t in terms:
        idx, unseen = _group_index(t, train, newdata)
        if unseen:
            new_levels[t.group] = unseen
        index.append(idx)
        if t.matrix_design is None:
            Xz.append(np.ones((len(frame), 1)))
        else:
            Z = _evaluate_matrix(t.matrix_design, frame, t.columns, f"term {t.spec.label}")
            _check_rows(Z, list(t.columns), frame.index, f"term {t.spec.label}")
            Xz.append(Z)
    return NewRows(newdata.index, X, offset, list(terms), index, Xz, new_levels)


def new_trials(design: Design, newdata: pd.DataFrame | None) -> np.ndarray | None:
    """Binomial trials on the rows: ones for a 0/1 response, successes + failures for
    ``cbind`` (read from ``newdata``); None for other families."""
    if not design.family.has_trials:
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
