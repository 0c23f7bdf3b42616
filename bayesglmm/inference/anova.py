"""Likelihood-ratio comparison of nested likelihood fits, as R's ``anova``.

:func:`anova` takes two or more fits of the same data by the same likelihood method, ordered
from the smallest model to the largest, checks that each is nested in the next and gives one
row per fit with ``npar``, ``AIC``, ``BIC``, ``logLik`` and ``deviance``; from the second row
on, the likelihood-ratio statistic against the previous row (``statistic``, R's ``Chisq``),
its ``df`` and ``p_value``. Where the step adds exactly one variance component (one random
intercept, or one column of a correlated term) the p-value is from the boundary mixture of
:mod:`.variance_tests` (``0.5 chi2(0) + 0.5 chi2(1)``, Self & Liang 1987; Stram & Lee 1994
for a column of a correlated term); otherwise it is ``chi2(df)``. The ``null`` column names
the distribution used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import MethodError
from .variance_tests import check_likelihood_fit, one_column


def _terms(fit) -> dict[str, set[str]]:
    """Grouping factor -> columns, per random term (a list per group when several)."""
    out: dict[str, list[set[str]]] = {}
    for t in fit.model.design.random:
        out.setdefault(t.group, []).append(set(t.columns))
    return out


def _nested_terms(small, big) -> list[str]:
    """Random terms of ``small`` that no term of ``big`` on the same group contains."""
    big_terms = _terms(big)
    missing = []
    for t in small.model.design.random:
        if not any(set(t.columns) <= cols for cols in big_terms.get(t.group, [])):
            missing.append(t.spec.label)
    return missing


def _one_component(small, big) -> int | None:
    """``q`` when ``big`` is ``small`` plus one variance component: one more random
    intercept (``q = 1``) or one more column of a correlated term of dimension ``q``;
    else None."""
    if list(small.model.design.fixed_names) != list(big.model.design.fixed_names):
        return None
    s = sorted((t.group, tuple(sorted(t.columns))) for t in small.model.design.random)
    b = sorted((t.group, tuple(sorted(t.columns))) for t in big.model.design.random)
    extra = [x for x in b if x not in s]
    gone = [x for x in s if x not in b]
    if len(extra) != 1 or len(gone) > 1:
        return None
    group, cols = extra[0]
    if not gone:
        return 1 if len(cols) == 1 else None
    g_group, g_cols = gone[0]
    if g_group == group and set(g_cols) < set(cols) and len(cols) - len(g_cols) == 1:
        term = next(t for t in big.model.design.random if t.group == group)
        return len(cols) if term.correlated else 1
    return None


def _check(fits) -> None:
    for i, fit in enumerate(fits):
        check_likelihood_fit(fit, f"fit {i + 1}")
    methods = {f.method for f in fits}
    if len(methods) > 1:
        raise MethodError(
            f"anova compares fits by one method; got {', '.join(f.method for f in fits)}"
        )
    first = fits[0].model.design
    for i, fit in enumerate(fits[1:], start=2):
        d = fit.model.design
        same = d.n == first.n and np.array_equal(d.y, first.y)
        if same and (d.trials is not None or first.trials is not None):
            same = d.trials is not None and first.trials is not None
            same = same and np.array_equal(d.trials, first.trials)
        if not same:
            raise MethodError(
                f"fit {i} ({fit.formula!r}, n = {d.n}) and fit 1 ({fits[0].formula!r}, "
                f"n = {first.n}) are not fitted to the same response: anova needs the same data"
            )
    for i in range(1, len(fits)):
        small, big = fits[i - 1], fits[i]
        extra = [n for n in small.model.design.fixed_names if n not in big.model.design.fixed_names]
        terms = _nested_terms(small, big)
        if extra or terms:
            raise MethodError(
                f"fit {i} ({small.formula!r}) is not nested in fit {i + 1} ({big.formula!r}): "
                f"fixed effects {extra} and random terms {terms} of fit {i} are not in fit "
                f"{i + 1}; order the fits from the smallest model to the largest"
            )
        if small.method == "lmm" and small.info["options"].get("reml", True):
            if list(small.model.design.fixed_names) != list(big.model.design.fixed_names):
                raise MethodError(
                    f"fits {i} and {i + 1} differ in their fixed effects and are REML fits, "
                    "whose criteria are not comparable: refit with reml=False"
                )


def anova(*fits) -> pd.DataFrame:
    """Likelihood-ratio tests between nested likelihood fits, as R's ``anova``.

    Parameters
    ----------
    *fits : FitResult
        Two or more fits of the same data by the same likelihood method (``laplace``,
        ``agq``, ``lmm``, ...), from the smallest model to the largest, each nested in the
        next (its fixed-effect names and random terms among the next one's).

    Returns
    -------
    pandas.DataFrame
        One row per fit (indexed by formula) with ``npar``, ``AIC``, ``BIC``, ``logLik``,
        ``deviance``; from the second row on ``statistic`` (``2 (l_i - l_{i-1})``), ``df``,
        ``p_value`` and ``null`` (the distribution of the p-value: the 50:50 boundary mixture
        when the step adds one variance component, else ``chi2(df)``).

    Raises
    ------
    MethodError
        For fewer than two fits, Bayesian fits (use :func:`bayesglmm.loo`), fits without a
        log-likelihood, fits by different methods or of different data, and fits that are
        not nested (naming the fixed effects and random terms at fault).
    """
    if len(fits) < 2:
        raise MethodError(f"anova compares two or more fits, got {len(fits)}")
    _check(fits)
    rows = []
    for i, fit in enumerate(fits):
        row = {
            "npar": int(fit.n_params),
            "AIC": fit.aic,
            "BIC": fit.bic,
            "logLik": fit.loglik,
            "deviance": -2.0 * fit.loglik,
            "statistic": np.nan,
            "df": np.nan,
            "p_value": np.nan,
            "null": "",
        }
        if i:
            prev = fits[i - 1]
            stat = max(2.0 * (fit.loglik - prev.loglik), 0.0)
            df = int(fit.n_params - prev.n_params)
            q = _one_component(prev, fit)
            if q is not None:
                null = one_column(q)
                row.update(p_value=null.sf(stat), null=str(null))
            else:
                p = float(stats.chi2.sf(stat, df)) if df > 0 else np.nan
                row.update(p_value=p, null=f"chi2({df})")
            row.update(statistic=stat, df=df)
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index([f.formula for f in fits], name="model"))
