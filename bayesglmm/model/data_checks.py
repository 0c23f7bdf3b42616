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
