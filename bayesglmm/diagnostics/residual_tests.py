"""Tests on simulated quantile residuals (the tests of R's DHARMa), as a tidy table.

- ``uniformity``: Kolmogorov-Smirnov test of the residuals against Uniform(0, 1).
- ``dispersion``: the variance of the observed responses around the simulated means over
  the mean of the same variance of each simulated data set (DHARMa's ``testDispersion``);
  p-value from the simulated distribution, two-sided for simulations with new random
  effects and one-sided (overdispersion) for simulations conditional on the predicted
  effects: those absorb part of the observed variation (shrinkage), so conditional
  simulations make a correct model look underdispersed.
- ``zero_inflation``: the observed number of zeros over its simulated mean; two-sided
  p-value from the simulated distribution (count responses only).
- ``outliers``: residuals at exactly 0 or 1 (responses outside every simulation), against
  the rate ``2 / (S + 1)`` of a continuous response by an exact binomial test.
- ``dispersion[<factor>]``, one row per grouping factor: for each level ``l`` of the factor
  the sum of squares ``D_l = sum_{i in l} (y_i - ybar_i)^2`` around the simulated means
  ``ybar_i``, against the same sum of each simulated data set, gives a one-sided
  (overdispersion) p-value ``p_l = (1 + #{s : D_sl >= D_l}) / (S + 1)``. The row's
  statistic is ``min_l p_l`` and its p-value the share of simulated data sets whose own
  minimum (each ``D_s`` ranked among the simulations, ``#{s' : D_s'l >= D_sl} / S``) is at
  most as small: a max-type test whose null, taken from the joint simulations, accounts for
  the number of levels and their dependence. The note gives the number of levels with
  ``p_l < 0.05`` and its exact binomial p-value against ``Binomial(L, 0.05)`` (which
  treats the levels as independent). The per-level table is
  :meth:`Residuals.group_dispersion`. Conservative for conditional simulations, as above.
  With new effects (``conditional=False``) each level's sum holds its own effect, drawn in
  the simulations at the estimated variance, and the test is liberal: sizes 0.07 to 0.10
  at 0.05 in ``benchmarks/bench_residual_calibration.py`` (one factor; 0.02 to 0.06 crossed),
  against 0.02 to 0.05 with conditional simulations.
- ``re_normality[<term>]`` (``[<term>:<column>]`` for terms with several columns):
  Shapiro-Wilk test of the predicted effects standardized by their predictive standard
  deviation ``sqrt(sigma^2 - v_l)`` (``sigma^2`` the fitted variance, ``v_l`` the level's
  conditional variance; ``sigma`` alone where the fit reports no conditional variances).
  The predictions are shrunk towards zero by an amount that depends on each level's data,
  so they are not the effects themselves: the test has little power (a skewed or heavy-tailed
  effect distribution is pulled towards normal by the shrinkage) and is conservative; a
  small p-value is informative, a large one is not evidence of normality.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse, stats

from ..errors import OptionError

COLUMNS = ["test", "statistic", "p_value", "note"]


def _two_sided(observed: float, simulated: np.ndarray) -> float:
    """DHARMa's two-sided simulation p-value, ``2 min(P(T <= t), P(T >= t))`` capped at 1."""
    lower = float(np.mean(simulated <= observed))
    upper = float(np.mean(simulated >= observed))
    return min(1.0, 2.0 * min(lower, upper))


def residual_tests(res, group=None) -> pd.DataFrame:
    """The test table of a :class:`~bayesglmm.diagnostics.Residuals` (see the module).

    Parameters
    ----------
    res : Residuals
        Residuals of ``kind="quantile"``; any other kind gives one row saying so.
    group : str, list of str or None
        Grouping factors given a per-group dispersion row (None: every factor).

    Returns
    -------
    pandas.DataFrame
        Columns ``test, statistic, p_value, note``.
    """
    factors = _factors(res, group)
    if res.kind != "quantile" or res.simulated is None:
        return pd.DataFrame(
            [
                {
                    "test": "all",
                    "statistic": np.nan,
                    "p_value": np.nan,
                    "note": f'the tests need kind="quantile" residuals, not {res.kind!r}',
                }
            ],
            columns=COLUMNS,
        )
    sims = res.simulated
    y = res.observed
    S = sims.shape[0]
    rows = [
        _uniformity(res.values),
        _dispersion(y, sims, res.conditional),
        _zeros(y, sims, res.discrete),
    ]
    rows.append(_outliers(res.values, S, res.discrete))
    for g in factors:
        rows.append(_group_row(res, g))
    for pred in res.random_effects.values():
        rows.extend(_normality_rows(pred))
    return pd.DataFrame(rows, columns=COLUMNS)


def _factors(res, group) -> list[str]:
    known = list(res.groups)
    if group is None:
        return known
    names = [group] if isinstance(group, str) else group
    if not isinstance(names, list | tuple) or not all(isinstance(g, str) for g in names):
        raise OptionError(f"group must be a grouping factor name or a list of them, got {group!r}")
    unknown = [g for g in names if g not in known]
    if unknown:
        raise OptionError(f"group: {unknown} are not grouping factors of the model ({known})")
    return list(names)


def _level_sums(res, g: str):
    """Per level of ``g``: labels, rows, observed and simulated sums of squares ``(S, L)``."""
    index, labels = pd.factorize(res.groups[g])
    sims = res.simulated
    center = sims.mean(axis=0)
    L = labels.size
    observed = np.bincount(index, weights=(res.observed - center) ** 2, minlength=L)
    member = sparse.csr_matrix(
        (np.ones(index.size), (index, np.arange(index.size))), (L, index.size)
    )
    simulated = np.asarray((member @ ((sims - center[None, :]) ** 2).T).T)  # (S, L) level sums
    return labels, np.bincount(index, minlength=L), observed, simulated


def group_dispersion_table(res, group: str) -> pd.DataFrame:
    """Per level of ``group``: ``level, n, statistic, p_value`` (see the module docstring)."""
    if res.kind != "quantile" or res.simulated is None:
        raise OptionError(f'group dispersion needs kind="quantile" residuals, not {res.kind!r}')
    (g,) = _factors(res, group) if isinstance(group, str) else _factors(res, [group])
    labels, counts, observed, simulated = _level_sums(res, g)
    mean = simulated.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(mean > 0, observed / mean, np.nan)
    S = simulated.shape[0]
    p = (1.0 + (simulated >= observed[None, :]).sum(axis=0)) / (S + 1.0)
    return pd.DataFrame({"level": labels, "n": counts, "statistic": ratio, "p_value": p})


def _group_row(res, g: str) -> dict:
    labels, _, observed, simulated = _level_sums(res, g)
    S, L = simulated.shape
    p_obs = (1.0 + (simulated >= observed[None, :]).sum(axis=0)) / (S + 1.0)
    # each simulation's own per-level p-values: the share of simulations at least as large
    order = np.sort(simulated, axis=0)
    at_least = S - np.stack(
        [np.searchsorted(order[:, j], simulated[:, j], side="left") for j in range(L)], axis=1
    )
    min_sim = (at_least / S).min(axis=1)
    stat = float(p_obs.min())
    p = float(np.mean(min_sim <= stat))
    k = int(np.sum(p_obs < 0.05))
    binom = float(stats.binomtest(k, L, 0.05, alternative="greater").pvalue)
    note = (
        f"min over {L} levels of the per-level overdispersion p-value, null from the "
        f"simulations; {k} of {L} levels p < 0.05 (binomial p = {binom:.3g}); "
        "per-level table: res.group_dispersion"
    )
    if res.conditional:
        note += f"({g!r}); conservative: conditional simulations (shrinkage)"
    else:
        note += (
            f"({g!r}); liberal with new effects (the level sums carry effects drawn at the "
            "estimated variance): prefer conditional=True"
        )
    return {"test": f"dispersion[{g}]", "statistic": stat, "p_value": p, "note": note}


def _normality_rows(pred) -> list[dict]:
    rows = []
    cols = list(pred.modes.columns)
    for j, col in enumerate(cols):
        name = pred.term if len(cols) == 1 else f"{pred.term}:{col}"
        b = pred.modes[col].to_numpy(float)
        var = float(pred.covariance[j, j])
        if pred.conditional_variance is not None:
            v = pred.conditional_variance[col].to_numpy(float)
            scale = np.sqrt(np.clip(var - v, 1e-12 * max(var, 1e-300), None))
            how = "sqrt(var - conditional variance)"
        else:
            scale = np.full(b.shape, np.sqrt(var))
            how = "the fitted sd (no conditional variances)"
        z = b / scale
        ok = np.isfinite(z)
        if ok.sum() < 3 or not var > 0 or np.ptp(z[ok]) == 0:
            rows.append(
                {
                    "test": f"re_normality[{name}]",
                    "statistic": np.nan,
                    "p_value": np.nan,
                    "note": "fewer than 3 distinct predicted effects (or a zero variance)",
                }
            )
            continue
        sw = stats.shapiro(z[ok])
        rows.append(
            {
                "test": f"re_normality[{name}]",
                "statistic": float(sw.statistic),
                "p_value": float(sw.pvalue),
                "note": f"Shapiro-Wilk on the {int(ok.sum())} predicted effects / {how}; "
                "shrinkage makes this test weak and conservative",
            }
        )
    return rows


def _uniformity(values: np.ndarray) -> dict:
    ks = stats.kstest(values, "uniform")
    return {
        "test": "uniformity",
        "statistic": float(ks.statistic),
        "p_value": float(ks.pvalue),
        "note": "Kolmogorov-Smirnov against Uniform(0, 1)",
    }


def _dispersion(y: np.ndarray, sims: np.ndarray, conditional: bool) -> dict:
    center = sims.mean(axis=0)
    observed = float(np.var(y - center, ddof=1))
    simulated = np.var(sims - center[None, :], axis=1, ddof=1)
    ratio = observed / float(simulated.mean()) if simulated.mean() > 0 else np.nan
    note = "observed / simulated variance around the simulated means (> 1: overdispersed)"
    if conditional:
        p = float(np.mean(simulated >= observed))
        note += "; one-sided: conditional simulations understate the variance (shrinkage)"
    else:
        p = _two_sided(observed, simulated)
    return {"test": "dispersion", "statistic": ratio, "p_value": p, "note": note}


def _zeros(y: np.ndarray, sims: np.ndarray, discrete: bool) -> dict:
    if not discrete:
        return {
            "test": "zero_inflation",
            "statistic": np.nan,
            "p_value": np.nan,
            "note": "not a count response",
        }
    observed = float(np.sum(y == 0))
    simulated = (sims == 0).sum(axis=1).astype(float)
    mean = float(simulated.mean())
    return {
        "test": "zero_inflation",
        "statistic": observed / mean if mean > 0 else np.nan,
        "p_value": _two_sided(observed, simulated),
        "note": "observed / simulated number of zeros (> 1: more zeros than the model)",
    }


def _outliers(values: np.ndarray, n_sim: int, discrete: bool) -> dict:
    k = int(np.sum((values == 0.0) | (values == 1.0)))
    n = values.shape[0]
    rate = 2.0 / (n_sim + 1)
    test = stats.binomtest(k, n, rate)
    note = f"{k} of {n} outside the simulation envelope; expected rate 2/(n_sim+1)"
    if discrete:
        note += " (conservative for counts: ties lower the rate)"
    return {
        "test": "outliers",
        "statistic": k / n / rate,
        "p_value": float(test.pvalue),
        "note": note,
    }
