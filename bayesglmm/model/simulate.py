"""Simulate responses from a GLMM with given parameters on a given design."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from .design import build_design
from .families import get_family
from .formula import parse_formula


def _as_vector(values, names: list[str], what: str) -> np.ndarray:
    if isinstance(values, Mapping | pd.Series):
        values = dict(values)
        missing = [n for n in names if n not in values]
        extra = [k for k in values if k not in names]
        if missing or extra:
            raise DataError(f"{what}: missing {missing}, unknown {extra}; expected keys {names}")
        return np.array([float(values[n]) for n in names])
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.shape != (len(names),):
        raise DataError(f"{what}: expected {len(names)} values for {names}, got {arr.shape}")
    return arr


def simulate(
    formula: str,
    data: pd.DataFrame,
    fixed_effects,
    variance_components=None,
    correlations: Mapping | None = None,
    family: str = "binomial",
    link: str | None = None,
    dispersion: float | None = None,
    trials=None,
    random_seed: int | None = None,
    relmat: Mapping | None = None,
) -> pd.DataFrame:
    """Draw a response from a GLMM on the design given by ``formula`` and ``data``.

    Parameters
    ----------
    formula : str
        Any formula :class:`~bayesglmm.GLMM` accepts. The response column(s) need not exist
        in ``data``; they are (re)written.
    data : DataFrame
        Predictors and grouping factors.
    fixed_effects : dict or array
        By fixed-effect column name (``"Cross[RR]"``, ``"Intercept"``, ``"x"``).
    variance_components : dict
        Variances by component name (``"Female"``, ``"g|x"``).
    correlations : dict, optional
        Correlations within correlated terms, by ``"group|a,b"``; zero when absent. For an
        AR(1) term ``ar1(time + 0 | g)`` its ``rho``, by the name of the correlation of
        the first two time levels (``"g|time[t0],time[t1]"``, or ``"g|ar1"``): the effects of
        a level of ``g`` are ``N(0, var R)``, ``R_st = rho^|s-t|``.
    family, link : str
    dispersion : float
        Gaussian residual sd, negative-binomial shape alpha or beta-binomial precision phi.
    trials : int, array or column name
        Binomial trials for ``cbind`` responses (defaults to the current successes +
        failures if those columns exist).
    random_seed : int
    relmat : dict, optional
        Relationship matrices by grouping factor, as :class:`~bayesglmm.GLMM` takes them:
        the effects of ``(1|animal)`` are drawn from ``N(0, var K)``.

    Returns
    -------
    DataFrame
        A copy of ``data`` with the simulated response; ``.attrs["truth"]`` holds the
        parameters and the drawn random effects.
    """
    rng = np.random.default_rng(random_seed)
    spec = parse_formula(formula, family, link)
    fam = get_family(family, link)
    df = data.copy()
    resp = spec.response
    n = len(df)
    if resp.kind == "cbind":
        if resp.expr not in df.columns and not resp.expr.isidentifier():
            raise FormulaError(f"cannot simulate into the expression {resp.expr!r}")
        if trials is None:
            if resp.expr in df.columns:
                succ = df[resp.expr].to_numpy(dtype=float)
                fail = pd.eval(
                    resp.failures_expr,
                    local_dict={c: df[c] for c in df.columns if isinstance(c, str)},
                )
                n_trials = succ + np.asarray(fail, dtype=float)
            else:
                raise DataError("simulating a cbind(...) response needs trials=")
        elif isinstance(trials, str):
            n_trials = df[trials].to_numpy(dtype=float)
        else:
            n_trials = np.broadcast_to(np.asarray(trials, dtype=float), (n,)).copy()
        df[resp.expr] = 0
        if resp.failures_expr.isidentifier():
            df[resp.failures_expr] = n_trials.astype(np.int64)
    else:
        if not resp.expr.isidentifier():
            raise FormulaError(f"cannot simulate into the expression {resp.expr!r}")
        df[resp.expr] = 0
        n_trials = np.ones(n)
    # the response is a placeholder
    design = build_design(spec, df, check=False, relmat=dict(relmat or {}))

    beta = _as_vector(fixed_effects, design.fixed_names, "fixed_effects")
    eta = design.X @ beta + design.offset
    variance_components = dict(variance_components or {})
    correlations = dict(correlations or {})
    truth_b = {}
    for t in design.random:
        var = _as_vector(
            {k: variance_components[k] for k in t.component_names if k in variance_components},
            t.component_names,
            f"variance_components of {t.spec.label}",
        )
        sd = np.sqrt(var)
        corr = np.eye(t.n_columns)
        for a in range(t.n_columns if t.structure is None else 0):
            for b in range(a + 1, t.n_columns):
                key = f"{t.group}|{t.columns[a]},{t.columns[b]}"
                corr[a, b] = corr[b, a] = correlations.pop(key, 0.0)
        cov = corr * np.outer(sd, sd)
        if t.structure == "ar1":
            key = f"{t.group}|{t.columns[0]},{t.columns[1]}"
            rho = float(correlations.pop(key, correlations.pop(t.component_names[0], 0.0)))
            if not -1.0 < rho < 1.0:
                raise DataError(f"correlations[{key!r}] (AR(1) rho) = {rho} is not in (-1, 1)")
            lag = np.abs(np.subtract.outer(np.arange(t.n_columns), np.arange(t.n_columns)))
            cov = sd[0] ** 2 * rho**lag
        if t.structure == "relmat":
            b = sd[0] * (t.relmat @ rng.normal(size=t.n_levels))[:, None]
        elif t.n_columns == 1:  # also handles a variance of exactly zero
            b = rng.normal(0.0, sd[0], size=(t.n_levels, 1))
        else:
            b = rng.multivariate_normal(np.zeros(t.n_columns), cov, size=t.n_levels, method="eigh")
        truth_b[t.name] = pd.DataFrame(b, index=t.levels, columns=t.columns)
        eta = eta + (t.X * b[t.index]).sum(axis=1)
    if correlations:
        raise DataError(f"correlations given for unknown pairs: {list(correlations)}")

    y = fam.simulate(fam.link.linkinv(eta), rng, n_trials, dispersion)
    df[resp.expr] = y
    if resp.kind == "cbind" and resp.failures_expr.isidentifier():
        df[resp.failures_expr] = (n_trials - y).astype(np.int64)
    df.attrs["truth"] = {
        "fixed_effects": dict(zip(design.fixed_names, beta.tolist(), strict=True)),
        "variance_components": variance_components,
        "random_effects": truth_b,
        "dispersion": dispersion,
    }
    return df
