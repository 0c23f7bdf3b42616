"""Checks of the data and formula a design is built from, made before formulae sees them.

formulae reports duplicate column names and text inside a column of numbers alike as
"Variable is of an unrecognized type", and an unknown function only by its name; these
checks name the column, row, value or term at fault.
"""

from __future__ import annotations

import ast

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError


def check_functions(expr: str, data: pd.DataFrame, known: list[str]) -> None:
    """Raise a :class:`FormulaError` naming a function ``expr`` calls that is not in
    ``known`` (nor a data column), with the term it sits in and the known functions."""
    text = expr.replace(":", "*").replace("|", "+").strip()  # same offsets as expr.strip()
    try:
        tree = ast.parse(text or "1", mode="eval")
    except SyntaxError:
        return  # _names_in reports it
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        name = node.func.id
        if name in known or name in data.columns:
            continue
        one_line = node.lineno == node.end_lineno == 1
        term = expr.strip()[node.col_offset : node.end_col_offset] if one_line else name
        raise FormulaError(
            f"unknown function {name!r} in term {term!r}; a formula can call "
            f"{', '.join(known)} and np.<function>"
        )


def check_used_columns(data: pd.DataFrame, used: list[str]) -> None:
    """Duplicate column names, and text inside a column of numbers, named before formulae
    (which calls both "an unrecognized type")."""
    dup = data.columns[data.columns.duplicated()]
    for name in used:
        if name in dup:
            n = int((data.columns == name).sum())
            raise DataError(
                f"the data have {n} columns named {name!r}; rename or drop the duplicates "
                "(a model column must have one name)"
            )
    for name in used:
        col = data[name]
        if col.dtype != object or not pd.api.types.infer_dtype(col, skipna=True).startswith(
            "mixed"
        ):
            continue
        values = col.to_numpy()
        is_num = np.array(
            [isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in values]
        )
        is_text = np.array([isinstance(v, str) for v in values])
        if is_num.any() and is_text.any():
            i = int(np.flatnonzero(is_text)[0])
            raise DataError(
                f"column {name!r} mixes numbers and text: row {data.index[i]!r} holds "
                f"{values[i]!r} (and {int(is_text.sum())} text value(s) in all); convert it "
                f"with pd.to_numeric(data[{name!r}]) or make it a factor with .astype(str)"
            )


def _rows(mask: np.ndarray, labels: pd.Index) -> str:
    rows = labels[np.flatnonzero(mask)]
    return ", ".join(map(repr, rows[:5])) + (" ..." if len(rows) > 5 else "")


def check_weights(weights, data: pd.DataFrame) -> tuple[np.ndarray | None, str | None]:
    """The prior weights ``GLMM(..., weights=)`` on the rows of ``data``, checked.

    Parameters
    ----------
    weights : str, array-like or None
        A column of ``data`` or one value per row of ``data``.
    data : pandas.DataFrame

    Returns
    -------
    (ndarray or None, str or None)
        The weights as float64 (zeros kept; :func:`bayesglmm.model.design.build_design`
        drops their rows) and their name for reports (``"<array>"`` for an array).

    Raises
    ------
    DataError
        An unknown column, a length other than the rows', a value that is not a number,
        or negative, NaN or infinite weights (naming the first rows), or all weights zero.
    """
    if weights is None:
        return None, None
    if isinstance(weights, str):
        if weights not in data.columns:
            close = [c for c in data.columns if str(c).lower() == weights.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(
                f"unknown weights column {weights!r}{hint}; the data have columns "
                f"{', '.join(map(str, data.columns))}"
            )
        name, raw = weights, data[weights].to_numpy()
    else:
        name, raw = "<array>", np.asarray(weights)
        if raw.ndim != 1 or raw.shape[0] != len(data):
            raise DataError(
                f"weights must be a column name or one value per data row ({len(data)}); "
                f"got an array of shape {raw.shape}"
            )
    try:
        w = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"weights {name!r} are not numeric (dtype {raw.dtype})") from None
    for mask, what in (
        (np.isnan(w), "NaN"),
        (np.isinf(w), "infinite"),
        (w < 0, "negative"),
    ):
        if mask.any():
            raise DataError(
                f"weights {name!r} are {what} at {int(mask.sum())} row(s) "
                f"({_rows(mask, data.index)}); prior weights must be finite and >= 0"
            )
    if not np.any(w > 0):
        raise DataError(f"weights {name!r} are all zero: no row is left to fit")
    return w, name
