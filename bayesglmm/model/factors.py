"""Factors as R treats them: level order, reference levels, term order, binary responses.

R's rules, which this module reproduces on top of the formula library (formulae):

- The levels of a factor are its categories in order: for a pandas ``Categorical`` (ordered
  or not) its categories, for strings the sorted distinct values, for numbers the sorted
  values. Levels absent from the data are dropped, as ``lme4`` does
  (``model.frame(..., drop.unused.levels = TRUE)``). The first level is the reference of
  the treatment contrasts. (R gives *ordered* factors polynomial contrasts; here every
  factor gets treatment contrasts, so an ordered factor is read like an unordered one.)
- ``relevel(x, "ref")`` names the reference in the formula, ``factor(x, levels=c(...))``
  or ``C(x, levels=[...])`` the whole order; formulae's own ``C(x, Treatment("ref"))``
  works too.
- Fixed-effect columns come in R's term order: the intercept, then main effects, then
  two-way interactions, and so on, each group in formula order.
- For a binomial response with two levels, the first level counts as failure and the
  second as success.
"""

from __future__ import annotations

import contextlib
import contextvars
import re

import numpy as np
import pandas as pd

from ..errors import FormulaError

# Names of the helpers the formula text is rewritten to use. formulae's scanner does not
# accept names with a leading underscore, hence the trailing one.
_CAT = "bgcat_"
_LIST = "bglist_"


#: True while a fitted design is evaluated on new data (see :func:`new_data`)
_NEW_DATA = contextvars.ContextVar("bayesglmm_factors_new_data", default=False)


@contextlib.contextmanager
def new_data():
    """Evaluate formulas on new data: Categoricals keep all their (training) categories.

    On the training data unused levels are dropped, as lme4 does; new data for prediction
    carry the training levels as categories (:func:`bayesglmm.predict` sets them), and a
    level such as ``relevel``'s reference may be absent from the new rows.
    """
    token = _NEW_DATA.set(True)
    try:
        yield
    finally:
        _NEW_DATA.reset(token)


def _values(x) -> pd.Categorical:
    """Any column-like value as a Categorical whose categories are the levels in R's order:
    a Categorical keeps its category order, anything else is sorted; unused levels dropped
    (kept while evaluating new data, see :func:`new_data`)."""
    if isinstance(x, pd.Series):
        x = x.array
    if isinstance(x, pd.Categorical):
        return x if _NEW_DATA.get() else x.remove_unused_categories()
    return pd.Categorical(np.asarray(x))


def _ordered(cat: pd.Categorical, levels) -> pd.Categorical:
    return pd.Categorical(cat, categories=list(levels), ordered=True)


def relevel(x, ref):
    """R's ``relevel(x, ref)``: the factor ``x`` with ``ref`` as its first (reference) level.

    The other levels keep their order. Usable in formulas:
    ``y ~ relevel(trt, "placebo") + (1 | ID)``.
    """
    cat = _values(x)
    levels = list(cat.categories)
    match = [lv for lv in levels if lv == ref]
    if not match:  # R's levels are strings: relevel(h, "3") for an integer column
        match = [lv for lv in levels if str(lv) == str(ref)]
    if len(match) != 1:
        raise FormulaError(
            f"relevel(): reference level {ref!r} is not a level of the factor; "
            f"its levels are {[str(v) for v in levels]}"
        )
    ref = match[0]
    return _ordered(cat, [ref] + [lv for lv in levels if lv != ref])


def factor(x, levels=None):
    """R's ``factor(x, levels = c(...))``: ``x`` with its levels in the given order.

    Values of ``x`` that are not among ``levels`` are an error (R would make them missing).
    Levels not present in the data are dropped, as lme4 does.
    """
    cat = _values(x)
    if levels is None:
        return _ordered(cat, cat.categories)
    levels = list(levels) if isinstance(levels, list | tuple) else [levels]
    present = list(cat.categories)
    by_str = {str(v): v for v in present}
    resolved = []
    for lv in levels:
        if lv in present:
            resolved.append(lv)
        elif str(lv) in by_str:
            resolved.append(by_str[str(lv)])
    missing = [str(v) for v in present if v not in resolved]
    if missing:
        raise FormulaError(
            f"factor(): values {missing} of the factor are not among levels {levels}"
        )
    return _ordered(cat, list(dict.fromkeys(resolved)))


def c(*values) -> list:
    """R's ``c(...)``, for ``levels=c("a", "b")`` inside a formula."""
    return list(values)


def _box(x):
    """Hand ``C(...)`` the levels of ``x`` in R's order (formulae would sort them)."""
    from formulae.transforms import CategoricalBox

    if isinstance(x, CategoricalBox):
        return x
    cat = _values(x)
    return CategoricalBox(np.asarray(cat), None, list(cat.categories))


#: Functions that :func:`bayesglmm.design.build_design` adds to formulae's namespace.
NAMESPACE = {"relevel": relevel, "factor": factor, "c": c, _CAT: _box, _LIST: c}
#: Names a formula may use without their being data columns (formulae's contrasts).
CONTRAST_NAMES = {"Treatment", "Sum"}


def factor_frame(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with every Categorical column made ordered on its used categories.

    formulae sorts the values of an unordered Categorical and ignores its category order;
    for an ordered one it keeps the order. Contrasts stay treatment contrasts.
    """
    names = [n for n, col in data.items() if isinstance(col.dtype, pd.CategoricalDtype)]
    if not names:
        return data
    data = data.copy()
    for name in names:
        cat = _values(data[name])
        data[name] = pd.Series(_ordered(cat, cat.categories), index=data.index)
    return data


# --------------------------------------------------------------------------------------
# formula text: rewrite for formulae, and map its labels back


def _scan(text: str):
    """Yield (position, character, depth) for characters outside string literals."""
    depth, quote = 0, None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        yield i, ch, depth


def _close(text: str, open_pos: int) -> int:
    """Position of the ``)`` matching the ``(`` at ``open_pos``."""
    base = None
    for i, ch, depth in _scan(text):
        if i == open_pos:
            base = depth - 1
        elif base is not None and ch == ")" and depth == base:
            return i
    raise FormulaError(f"unbalanced '(' in {text!r}")


_C_CALL = re.compile(r"(?<![\w.])C\s*\(")


def rewrite(rhs: str) -> str:
    """The formula right-hand side as formulae should read it.

    ``[a, b]`` becomes a list call, ``^`` inside a call becomes ``**`` (R's ``I(x^2)``),
    and the first argument of every ``C(...)`` is wrapped so that ``C`` keeps the level
    order of a Categorical instead of sorting.
    """
    out = list(rhs)
    for i, ch, depth in _scan(rhs):
        if ch == "[":
            out[i] = f"{_LIST}("
        elif ch == "]":
            out[i] = ")"
        elif ch == "^" and depth > 0:
            out[i] = "**"
        elif ch == "^":
            raise FormulaError(
                "R's (a + b)^2 for all interactions up to order 2 is not supported; "
                "write a*b (or I(x^2) for a power)"
            )
    text = "".join(out)
    starts = [m.end() for m in _C_CALL.finditer(text)]
    in_string = _string_positions(text)
    for start in reversed([s for s in starts if s - 1 not in in_string]):
        end = _close(text, start - 1)
        first_end = end
        for i, ch, depth in _scan(text[start:end]):
            if ch == "," and depth == 0:
                first_end = start + i
                break
        text = f"{text[:start]}{_CAT}({text[start:first_end]}){text[first_end:]}"
    return text


def _string_positions(text: str) -> set[int]:
    outside = {i for i, _, _ in _scan(text)}
    return set(range(len(text))) - outside


def restore(label: str) -> str:
    """Undo :func:`rewrite` in a column or term name produced by formulae."""
    for name, left, right in ((_CAT, "", ""), (_LIST, "[", "]")):
        while True:
            pos = label.find(f"{name}(")
            if pos < 0:
                break
            open_pos = pos + len(name)
            end = _close(label, open_pos)
            label = f"{label[:pos]}{left}{label[open_pos + 1 : end]}{right}{label[end + 1 :]}"
    return label


def term_degree(term) -> int:
    """Number of factors in a formulae term: 0 for the intercept, 2 for ``a:b``."""
    return len(getattr(term, "components", ()) or ())


# --------------------------------------------------------------------------------------
# binary responses


def binary_levels(values, name: str):
    """Levels of a two-level factor response: ``(codes, {"failure": .., "success": ..})``.

    ``values`` is a Categorical, strings or booleans; numbers return None (0/1 already).
    R's rule: the first level is failure, the second success; the levels are sorted for
    strings, in category order for a Categorical, ``False``/``True`` for booleans. Raises
    ValueError listing the levels when there are not exactly two.
    """
    if isinstance(values, pd.Series):
        values = values.array
    if isinstance(values, pd.Categorical):
        cat = values.remove_unused_categories()
    else:
        arr = np.asarray(values)
        if arr.dtype.kind not in "OUSb":
            return None
        cat = pd.Categorical(arr)
    levels = list(cat.categories)
    if len(levels) != 2:
        raise ValueError(
            f"binary response {name!r} has {len(levels)} distinct values "
            f"({[_plain(v) for v in levels[:5]]}); a Bernoulli response needs 0/1 or two levels"
        )
    failure, success = (_plain(v) for v in levels)
    return cat.codes.astype(float), {"failure": failure, "success": success}


def success_message(name: str, levels: dict) -> str:
    """The one-line message saying which level of a factor response counts as success."""
    failure, success = levels["failure"], levels["success"]
    return (
        f"binomial response {name!r} has levels {failure!r} and {success!r}: "
        f"{success!r} counts as success, {failure!r} as failure (R's rule: the second "
        "level is success; set the categories of a pandas Categorical to choose)"
    )


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v
