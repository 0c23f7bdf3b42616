"""From a :class:`~bayesglmm.spec.Spec` and a DataFrame to model arrays.

The :class:`Design` holds everything an estimator needs: the response, binomial trials,
offset, a dense fixed-effect matrix ``X`` and one sparse block of ``Z`` per random-effect
term, with level names. Nothing here imports PyMC or any estimator.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp

from .. import _warn
from ..errors import DataError, FormulaError, MethodError
from . import degenerate, factors
from .data_checks import check_functions, check_used_columns, check_weights
from .families import Family, get_family
from .spec import RandomTermSpec, Spec

#: Functions usable inside formulas besides formulae's own (C, I, scale, center, ...).
NAMESPACE: dict = {
    "np": np,
    "log": np.log,
    "log1p": np.log1p,
    "log2": np.log2,
    "log10": np.log10,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
}
_FORMULA_FUNCTIONS = {
    "C",
    "I",
    "scale",
    "center",
    "standardize",
    "offset",
    "cbind",
    "Q",
    "poly",
    *factors.NAMESPACE,
    *factors.CONTRAST_NAMES,
}


@dataclass
class RandomTerm:
    """One random-effect term with its grouping factor, on the rows of the design.

    Attributes
    ----------
    spec : RandomTermSpec
    group : str
        Grouping factor, e.g. ``"Female"`` or ``"a:b"``.
    columns : list of str
        Names of the term's columns (``"Intercept"``, ``"x"``).
    levels : list of str
        Levels of the grouping factor, in the order of ``Z``'s columns.
    index : ndarray of int, shape (n,)
        Level of each row.
    X : ndarray, shape (n, k)
        The term's own model matrix (ones for a random intercept).
    """

    spec: RandomTermSpec
    group: str
    columns: list[str]
    levels: list[str]
    index: np.ndarray
    X: np.ndarray
    #: formulae's design of the term's own columns (None for ``1``), for new data
    matrix_design: object = field(default=None, repr=False)
    #: for ``relmat={group: K}``: the lower triangular ``L`` (sparse, levels x levels) with
    #: ``L L' = K``; the effects are ``b = sigma L u``
    relmat: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def structure(self) -> str | None:
        """``"ar1"`` for ``ar1(time + 0 | g)``, ``"relmat"`` for a known relationship
        matrix, None for an unstructured term."""
        if self.relmat is not None:
            return "relmat"
        return getattr(self.spec, "structure", None)

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    @property
    def correlated(self) -> bool:
        return self.spec.correlated and self.n_columns > 1 and self.structure is None

    @property
    def is_intercept_only(self) -> bool:
        return self.columns == ["Intercept"]

    @property
    def name(self) -> str:
        """Term name as in bambi: ``"1|Female"``, ``"x|g"``, ``"1+x|g"``."""
        if self.structure == "ar1":
            return f"ar1({self.spec.expr})|{self.group}"
        cols = "+".join("1" if c == "Intercept" else c for c in self.columns)
        return f"{cols}|{self.group}"

    @property
    def component_names(self) -> list[str]:
        """Names of the term's variances in results: ``"Female"`` or ``"g|x"``; ``"g|ar1"``
        for the one variance of an AR(1) term (its ``rho`` is the correlation of the first
        two time levels, ``cor(g|time[t0],time[t1])``)."""
        if self.structure == "ar1":
            return [f"{self.group}|ar1"]
        if self.is_intercept_only:
            return [self.group]
        return [f"{self.group}|{c}" for c in self.columns]

    @property
    def Z(self) -> sp.csc_matrix:
        """Sparse block of Z, shape (n, n_levels * n_columns), level-major as in lme4."""
        n, k = self.X.shape
        rows = np.repeat(np.arange(n), k)
        cols = (self.index[:, None] * k + np.arange(k)[None, :]).ravel()
        return sp.csc_matrix((self.X.ravel(), (rows, cols)), shape=(n, self.n_levels * k))


@dataclass
class Design:
    """Arrays of a GLMM built from a spec and a data frame.

    Attributes
    ----------
    y : ndarray (n,)
        Response: 0/1, success counts, counts or real values.
    trials : ndarray (n,) or None
        Binomial trials (ones for a 0/1 response); None for other families.
    offset : ndarray (n,)
    X : ndarray (n, p)
    fixed_names : list of str
        Column names of X such as ``"Cross[RR]"``.
    fixed_terms : dict of str to slice
        Columns of X belonging to each formula term (``"Cross"``, ``"Intercept"``).
    random : list of RandomTerm
    row_labels : Index
        Labels of the data rows used (after any dropping of missing values).
    response_levels : dict or None
        For a binomial response given as two levels (strings, a Categorical, booleans),
        ``{"failure": level, "success": level}`` (R's rule: the second level is success);
        None for a numeric response.
    weights : ndarray (n,) or None
        Prior weights ``w_i > 0`` (float64, on the design's rows after dropped rows):
        row ``i``'s density is ``exp{(y theta - b(theta)) / (phi / w_i) + c}``
        (:meth:`~bayesglmm.model.families.Family.weighted`); None when none were given.
    weights_name : str or None
        The weights' column name (``"<array>"`` for an array), for reports.
    """

    spec: Spec
    family: Family
    y: np.ndarray
    trials: np.ndarray | None
    offset: np.ndarray
    X: np.ndarray
    fixed_names: list[str]
    fixed_terms: dict[str, slice]
    random: list[RandomTerm]
    row_labels: pd.Index
    dropped_rows: list = field(default_factory=list)
    fixed_design: object = field(default=None, repr=False)
    response_levels: dict | None = None
    weights: np.ndarray | None = None
    weights_name: str | None = None

    @property
    def n(self) -> int:
        return self.y.shape[0]

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def q(self) -> int:
        return sum(t.n_levels * t.n_columns for t in self.random)

    @property
    def is_bernoulli(self) -> bool:
        return self.family.has_trials and self.spec.response.kind == "column"

    @property
    def Z(self) -> sp.csc_matrix:
        """All random-effect columns, sparse, shape (n, q)."""
        if not self.random:
            return sp.csc_matrix((self.n, 0))
        return sp.hstack([t.Z for t in self.random], format="csc")

    @property
    def component_names(self) -> list[str]:
        return [c for t in self.random for c in t.component_names]

    def fixed_coords(self, term: str) -> list[str]:
        """Coordinate labels of a multi-column fixed term, as bambi names them: the levels
        (``"RR"`` for ``"Cross[RR]"``) when every column is ``term[level]``, else the
        column names."""
        names = self.fixed_names[self.fixed_terms[term]]
        prefix = f"{term}["
        if all(n.startswith(prefix) and n.endswith("]") for n in names):
            stripped = [n[len(prefix) : -1] for n in names]
            if len(set(stripped)) == len(stripped):
                return stripped
        return list(names)

    @property
    def structured_terms(self) -> list[RandomTerm]:
        """Terms with a structured covariance (AR(1), known relationship matrix)."""
        return [t for t in self.random if t.structure is not None]

    @property
    def groups(self) -> dict[str, RandomTerm]:
        return {t.group: t for t in self.random}

    @property
    def grouping(self) -> dict:
        """How the grouping factors relate.

        ``kind`` is ``"none"``, ``"single"``, ``"nested"`` (two factors, each level of
        ``inner`` inside one level of ``outer``, which has fewer levels), ``"crossed"``
        (two, not nested) or ``"multiple"`` (three or more); ``groups`` lists the factors
        in formula order and ``dims`` the random effects per level of each.
        """
        groups = list(dict.fromkeys(t.group for t in self.random))
        dims = {g: sum(t.n_columns for t in self.random if t.group == g) for g in groups}
        out = {"kind": "multiple", "groups": groups, "dims": dims}
        if len(groups) < 2:
            return {**out, "kind": ("none", "single")[len(groups)]}
        if len(groups) > 2:
            return out
        index = {g: next(t.index for t in self.random if t.group == g) for g in groups}
        for outer, inner in (groups, groups[::-1]):
            pairs = np.unique(np.column_stack([index[inner], index[outer]]), axis=0)
            if np.unique(pairs[:, 0]).size == pairs.shape[0]:  # each inner level: one outer
                if np.unique(index[inner]).size > np.unique(index[outer]).size:
                    return {**out, "kind": "nested", "outer": outer, "inner": inner}
        return {**out, "kind": "crossed"}


# --------------------------------------------------------------------------------------
# helpers


def _names_in(expr: str) -> set[str]:
    """Data names used by a formula expression (function and module names excluded)."""
    text = expr.replace(":", "*").replace("|", "+")
    try:
        tree = ast.parse(text.strip() or "1", mode="eval")
    except SyntaxError as err:
        raise FormulaError(f"cannot read the formula expression {expr!r}: {err.msg}") from None
    called, attr_bases, names = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called.add(node.func.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            attr_bases.add(node.value.id)
        if isinstance(node, ast.Name):
            names.add(node.id)
    return names - called - attr_bases


def _known_functions() -> list[str]:
    from formulae.transforms import TRANSFORMS

    names = {*NAMESPACE, *_FORMULA_FUNCTIONS, *TRANSFORMS} - {"np"}
    return sorted(n for n in names if not n.startswith("_") and not n.endswith("_"))


def _check_columns(expr: str, data: pd.DataFrame, where: str) -> list[str]:
    check_functions(expr, data, _known_functions())
    used = []
    for name in sorted(_names_in(expr)):
        if name in data.columns:
            used.append(name)
        elif name not in NAMESPACE and name not in _FORMULA_FUNCTIONS:
            close = [c for c in data.columns if str(c).lower() == name.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise FormulaError(
                f"unknown column {name!r} in {where} {expr!r}{hint}; "
                f"the data have columns {', '.join(map(str, data.columns))}"
            )
    return used


def _evaluate(expr: str, data: pd.DataFrame) -> np.ndarray:
    """Evaluate a response, cbind or offset expression over the data's columns."""
    if expr in data.columns:
        return data[expr].to_numpy()
    env = dict(NAMESPACE)
    env.update({c: data[c].to_numpy() for c in data.columns if isinstance(c, str)})
    try:
        value = eval(compile(expr, "<formula>", "eval"), {"__builtins__": {}}, env)  # noqa: S307
    except Exception as err:  # the user's expression failed: say which
        raise FormulaError(f"cannot evaluate {expr!r}: {err}") from None
    return np.broadcast_to(np.asarray(value), (len(data),)).copy()


def _positions(mask: np.ndarray, labels: pd.Index) -> str:
    rows = labels[np.flatnonzero(mask)]
    shown = ", ".join(map(str, rows[:8])) + (" ..." if len(rows) > 8 else "")
    return shown


def _response(spec: Spec, family: Family, data: pd.DataFrame):
    """(y, trials, levels): levels as in :attr:`Design.response_levels`."""
    r = spec.response
    raw = _evaluate(r.expr, data)
    if r.kind == "cbind":
        if not family.has_trials:
            raise DataError(f"cbind(...) is a binomial response; the family is {family.name}")
        succ = _as_float(raw, r.expr, data.index)
        fail = _as_float(_evaluate(r.failures_expr, data), r.failures_expr, data.index)
        if np.any(fail < 0):
            raise DataError(
                f"failures {r.failures_expr!r} are negative at rows "
                f"{_positions(fail < 0, data.index)} (more successes than trials?)"
            )
        return succ, succ + fail, None
    if family.has_trials:
        if r.expr in data.columns and isinstance(data[r.expr].dtype, pd.CategoricalDtype):
            raw = data[r.expr].array  # keep the category order: it says which is success
        y, levels = _binary(raw, r.expr, data.index)
        return y, np.ones_like(y), levels
    return _as_float(raw, r.expr, data.index), None, None


def _as_float(values, name: str, labels: pd.Index) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        return arr.astype(float)
    if arr.dtype.kind not in "iuf":
        try:
            return arr.astype(float)
        except (TypeError, ValueError):
            raise DataError(
                f"response {name!r} is not numeric (dtype {arr.dtype}); "
                f"first value {arr[0]!r} at row {labels[0]}"
            ) from None
    return arr.astype(float)


def _binary(values, name: str, labels: pd.Index) -> tuple[np.ndarray, dict | None]:
    try:
        coded = factors.binary_levels(values, name)  # R: first level failure, second success
    except ValueError as err:
        raise DataError(str(err)) from None
    if coded is not None:
        return coded
    return _as_float(values, name, labels), None


def _group_factor(group: str, data: pd.DataFrame, term: str) -> tuple[np.ndarray, list[str]]:
    cols = group.split(":")
    for c in cols:
        if c not in data.columns:
            raise FormulaError(
                f"unknown grouping column {c!r} in term {term}; "
                f"the data have columns {', '.join(map(str, data.columns))}"
            )
    codes, labels = [], []
    for c in cols:
        cat = pd.Categorical(data[c])  # any dtype: integers become levels
        codes.append(cat.codes)
        labels.append(np.asarray(cat.categories.astype(str)))
    if len(cols) == 1:
        idx = codes[0]
        used = np.unique(idx)
        remap = np.full(len(labels[0]), -1)
        remap[used] = np.arange(used.size)
        return remap[idx], [str(labels[0][u]) for u in used]
    stacked = np.stack(codes, axis=1)
    uniq, inv = np.unique(stacked, axis=0, return_inverse=True)
    names = [":".join(labels[j][u[j]] for j in range(len(cols))) for u in uniq]
    return inv.ravel(), names


def _formulae_matrix(rhs: str, data: pd.DataFrame, where: str):
    import formulae

    try:
        dm = formulae.design_matrices(
            factors.rewrite(rhs),
            data,
            na_action="error",
            extra_namespace={**NAMESPACE, **factors.NAMESPACE},
        )
    except Exception as err:
        raise FormulaError(f"cannot build the {where} from {rhs!r}: {err}") from None
    return dm.common


def _model_matrix(rhs: str, data: pd.DataFrame, where: str):
    """(X, column names, term slices, formulae's design) of a formula right-hand side.

    Terms come in R's order (by degree: intercept, main effects, interactions), and names
    as the user wrote them. ``data`` should have passed through ``factors.factor_frame``.
    """
    common = _formulae_matrix(rhs, data, where)
    if common is None:  # no columns at all, e.g. y ~ 0 + (1|g)
        return np.zeros((len(data), 0)), [], {}, None
    X, names, slices = ordered_columns(common)
    return X, names, slices, common


def ordered_columns(common) -> tuple[np.ndarray, list[str], dict[str, slice]]:
    """(X, names, term slices) of a formulae matrix with terms in R's order; also for the
    matrix that ``common.evaluate_new_data(...)`` returns on new data."""
    X = np.asarray(common.design_matrix, dtype=float)
    terms = sorted(common.terms, key=lambda t: factors.term_degree(common.terms[t]))
    blocks, names, slices, start = [], [], {}, 0
    for term in terms:
        sl = common.slices[term]
        blocks.append(X[:, sl])
        names.extend(factors.restore(n) for n in _term_labels(term, common.terms[term]))
        width = sl.stop - sl.start
        slices[factors.restore(term)] = slice(start, start + width)
        start += width
    X = np.hstack(blocks) if blocks else X
    return X, names, slices


#: a design column with values beyond this overflows X'WX and the fit's arithmetic
HUGE = 1e100


def _check_rank(X: np.ndarray, names: list[str], labels: pd.Index) -> None:
    if X.shape[1] == 0:
        return
    if not np.all(np.isfinite(X)):
        bad = [j for j in range(X.shape[1]) if not np.all(np.isfinite(X[:, j]))]
        i = int(np.flatnonzero(~np.isfinite(X[:, bad[0]]))[0])
        raise DataError(
            f"fixed-effect columns {[names[j] for j in bad]} have infinite or NaN values "
            f"(first: {names[bad[0]]!r} is {X[i, bad[0]]} at row {labels[i]!r})"
        )
    top = np.abs(X).max(axis=0)
    for j in np.flatnonzero(top > HUGE):
        raise DataError(
            f"fixed-effect column {names[j]!r} has values up to {top[j]:.3g}: rescale it "
            f"(values beyond {HUGE:.0e} overflow the fit's arithmetic)"
        )
    has_intercept = "Intercept" in names
    for j, name in enumerate(names):
        if name != "Intercept" and np.ptp(X[:, j]) == 0 and (has_intercept or X.shape[1] > 1):
            raise DataError(
                f"fixed-effect column {name!r} is constant (all {X[0, j]:g}); "
                "drop it from the formula"
            )
    scale = np.sqrt((X**2).sum(axis=0))
    scale[scale == 0] = 1.0
    _, r, piv = scipy.linalg.qr(X / scale, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    tol = diag.max() * max(X.shape) * np.finfo(float).eps * 10
    rank = int((diag > tol).sum())
    if rank < X.shape[1]:
        aliased = [names[j] for j in sorted(piv[rank:])]
        raise DataError(
            f"the fixed-effect design is rank deficient (rank {rank} of {X.shape[1]} columns): "
            f"{aliased} are linear combinations of the other columns"
        )


def _random_term(t: RandomTermSpec, data: pd.DataFrame, relmat=None) -> RandomTerm:
    index, levels = _group_factor(t.group, data, t.label)
    L = None
    if relmat is not None:
        from .relmat import relmat_factor

        if t.expr.strip() != "1":
            raise DataError(
                f"relmat[{t.group!r}] applies to a random intercept (1|{t.group}); "
                f"the term {t.label} has other columns"
            )
        all_levels, L = relmat_factor(relmat, t.group, levels)
        pos = {lv: i for i, lv in enumerate(all_levels)}
        index = np.array([pos[levels[i]] for i in index], dtype=np.int64)
        levels = all_levels
    if len(levels) < 2:
        raise DataError(
            f"grouping factor {t.group!r} in term {t.label} has only one level "
            f"({levels[0]!r}); a random effect needs at least two groups"
        )
    common = None
    if t.expr.strip() == "1":
        Xt, cols = np.ones((len(data), 1)), ["Intercept"]
    else:
        if getattr(t, "structure", None) == "ar1":
            _check_ar1(t, data)
        Xt, cols, _, common = _model_matrix(t.expr, data, f"random-effect term {t.label}")
        if Xt.shape[1] == 0:
            raise FormulaError(f"random-effect term {t.label} has no columns")
    return RandomTerm(t, t.group, cols, levels, index.astype(np.int64), Xt, common, relmat=L)


def _check_ar1(t: RandomTermSpec, data: pd.DataFrame) -> None:
    """``ar1(time + 0 | g)``: one factor, no intercept (glmmTMB's requirements)."""
    pieces = [p.strip() for _, p in _split_terms(t.expr)]
    names = [p for p in pieces if p not in ("0", "-1", "")]
    if "0" not in pieces and "-1" not in t.expr.replace(" ", ""):
        raise FormulaError(
            f"{t.label}: write the time factor without an intercept, "
            f"ar1({names[0] if names else 'time'} + 0 | {t.group})"
        )
    if len(names) != 1 or names[0] not in data.columns:
        raise FormulaError(
            f"{t.label}: an AR(1) term takes one factor column (the ordered times), "
            f"as ar1(time + 0 | {t.group})"
        )
    col = data[names[0]]
    if col.nunique() < 2:
        raise DataError(f"{t.label}: {names[0]!r} has fewer than two levels (times)")
    if not (isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(col)):
        raise DataError(
            f"{t.label}: {names[0]!r} must be a factor (a pandas Categorical, its categories "
            f"in time order, or strings), as glmmTMB requires; it has dtype {col.dtype}"
        )


def _split_terms(expr: str):
    from .formula import _split_top

    return _split_top(expr, "+-")


def _term_labels(name: str, term) -> list[str]:
    labs = getattr(term, "labels", None)
    return list(labs) if labs else [name]


def build_design(
    spec: Spec,
    data: pd.DataFrame,
    dropna: bool = False,
    check: bool = True,
    relmat: dict | None = None,
    weights=None,
) -> Design:
    """Build the :class:`Design` of ``spec`` on ``data``.

    Parameters
    ----------
    spec : Spec
    data : pandas.DataFrame
    dropna : bool
        Rows with missing values in the columns the model uses raise a :class:`DataError`
        unless this is True, in which case they are dropped (and listed in
        ``Design.dropped_rows``), as lme4 does with ``na.action = na.omit``.
    check : bool
        Warn about variance components the data cannot identify
        (:func:`bayesglmm.model.degenerate.warn_identifiability`); False for a design whose
        response is a placeholder (simulation).
    relmat : dict, optional
        Known relationship matrices by grouping factor, ``{"animal": K}``: the effects of
        ``(1|animal)`` are ``N(0, sigma^2 K)`` (:func:`bayesglmm.model.relmat.relmat_factor`).
    weights : str or array-like, optional
        Prior weights (:attr:`Design.weights`): a column of ``data`` or one value per row,
        checked by :func:`bayesglmm.model.data_checks.check_weights`. Rows of weight zero
        are dropped with a warning (they add nothing to the likelihood), as R's ``lm`` and
        ``glm`` do.
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise DataError("data has no rows")
    family = get_family(spec.family, spec.link)

    used: list[str] = []
    r = spec.response
    used += _check_columns(r.expr, data, "the response")
    if r.failures_expr:
        used += _check_columns(r.failures_expr, data, "the response")
    used += _check_columns(spec.fixed, data, "the fixed-effect formula")
    for off in spec.offsets:
        used += _check_columns(off, data, "offset")
    for t in spec.random:
        used += _check_columns(t.expr, data, f"random-effect term {t.label}")
        used += _check_columns(t.group, data, f"random-effect term {t.label}")
    used = list(dict.fromkeys(used))
    check_used_columns(data, used)
    w, weights_name = check_weights(weights, data)

    dropped: list = []
    missing = data[used].isna()
    if missing.to_numpy().any():
        counts = missing.sum()
        counts = counts[counts > 0]
        rows = missing.any(axis=1)
        detail = "; ".join(
            f"{c!r}: {n} (rows {_positions(missing[c].to_numpy(), data.index)})"
            for c, n in counts.items()
        )
        if not dropna:
            raise DataError(
                f"{int(rows.sum())} row(s) have missing values in the model's columns: "
                f"{detail}. Pass dropna=True to drop them."
            )
        dropped = list(data.index[rows.to_numpy()])
        _warn.warn(f"dropped {len(dropped)} row(s) with missing values: {detail}")
        data = data.loc[~rows.to_numpy()]
        if w is not None:
            w = w[~rows.to_numpy()]
        if len(data) == 0:
            raise DataError("no rows are left after dropping missing values")
    if w is not None and np.any(w == 0):
        zero = w == 0
        if zero.all():
            raise DataError(f"weights {weights_name!r} are zero on every row left to fit")
        dropped += list(data.index[zero])
        _warn.warn(
            f"dropped {int(zero.sum())} row(s) with zero weights {weights_name!r} "
            f"(rows {_positions(zero, data.index)}), as lm/glm do"
        )
        data, w = data.loc[~zero], w[~zero]

    data = factors.factor_frame(data)  # Categorical levels in category order, as in R
    y, trials, response_levels = _response(spec, family, data)
    family.check_support(y, trials if r.kind == "cbind" else None, r.expr, labels=data.index)
    if response_levels is not None:
        _warn.warn(factors.success_message(r.expr, response_levels))

    X, names, fixed_terms, common = _model_matrix(spec.fixed, data, "fixed-effect design")
    _check_rank(X, names, data.index)

    offset = np.zeros(len(data))
    for off in spec.offsets:
        val = _as_float(_evaluate(off, data), f"offset({off})", data.index)
        if not np.all(np.isfinite(val)):
            raise DataError(
                f"offset({off}) is not finite at rows {_positions(~np.isfinite(val), data.index)}"
            )
        offset = offset + val

    relmat = dict(relmat or {})
    intercept_groups = {t.group for t in spec.random}
    unknown = [g for g in relmat if g not in intercept_groups]
    if unknown:
        raise DataError(
            f"relmat names {unknown}, which are not grouping factors of the formula "
            f"({sorted(intercept_groups)})"
        )
    random = [_random_term(t, data, relmat.get(t.group)) for t in spec.random]
    names_seen: dict[str, str] = {}
    for t in random:
        for c in t.component_names:
            if c in names_seen:
                raise FormulaError(
                    f"variance component {c!r} is defined twice ({names_seen[c]} and "
                    f"{t.spec.label}); merge the terms"
                )
            names_seen[c] = t.spec.label
        if (
            family.dispersion_is_residual
            and t.structure is None
            and t.n_levels * t.n_columns >= len(data)
        ):
            raise DataError(
                f"grouping factor {t.group!r} has {t.n_levels} levels for {len(data)} rows: "
                "a Gaussian model cannot separate it from the residual"
            )

    design = Design(
        spec=spec,
        family=family,
        y=y,
        trials=trials,
        offset=offset,
        X=X,
        fixed_names=names,
        fixed_terms=fixed_terms,
        random=random,
        row_labels=data.index,
        dropped_rows=dropped,
        fixed_design=common,
        response_levels=response_levels,
        weights=w,
        weights_name=weights_name,
    )
    if check:
        degenerate.warn_identifiability(design)
    return design


def refuse_extensions(design, what: str) -> None:
    """Refuse a model with prior weights or structured random effects in ``what``.

    The model's own fit takes them (the methods whose records say so), but ``what`` (a
    test, a diagnostic, a prediction or a study) rebuilds, simulates or integrates the model
    by code that does not carry them yet, and would answer for another model; it raises a
    one-line :class:`~bayesglmm.errors.MethodError` instead.
    """
    found = []
    if getattr(design, "weights", None) is not None:
        found.append(f"prior weights (weights={design.weights_name})")
    structured = [t.spec.label for t in design.random if getattr(t, "structure", None)]
    if structured:
        found.append(f"structured random effects ({', '.join(structured)})")
    if found:
        raise MethodError(f"{what} does not take {' or '.join(found)} yet")


def same_response(a, b) -> bool:
    """Whether designs ``a`` and ``b`` model the same response rows (responses and trials
    equal): fits to compare by likelihood must."""
    if a.n != b.n or not np.array_equal(a.y, b.y):
        return False
    if a.trials is None and b.trials is None:
        return True
    return a.trials is not None and b.trials is not None and np.array_equal(a.trials, b.trials)
