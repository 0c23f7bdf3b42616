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
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

COLUMNS = ["test", "statistic", "p_value", "note"]


def _two_sided(observed: float, simulated: np.ndarray) -> float:
    """DHARMa's two-sided simulation p-value, ``2 min(P(T <= t), P(T >= t))`` capped at 1."""
    lower = float(np.mean(simulated <= observed))
    upper = float(np.mean(simulated >= observed))
    return min(1.0, 2.0 * min(lower, upper))


def residual_tests(res) -> pd.DataFrame:
    """The test table of a :class:`~bayesglmm.diagnostics.Residuals` (see the module).

    Parameters
    ----------
    res : Residuals
        Residuals of ``kind="quantile"``; any other kind gives one row saying so.

    Returns
    -------
    pandas.DataFrame
        Columns ``test, statistic, p_value, note``.
    """
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
    return pd.DataFrame(rows, columns=COLUMNS)


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
