"""The iteration history of a Monte Carlo fit, as a table and as a plot."""

from __future__ import annotations

import pandas as pd


def history(result) -> pd.DataFrame:
    """One row per iteration: Monte Carlo size ``m``, effective size ``ess``, the change
    and its Monte Carlo error, and the estimates (``convergence["details"]["history"]``).

    Parameters
    ----------
    result : FitResult
        A fit by ``method="mcem"``, ``"mcnr"`` or ``"sml"``.
    """
    rows = result.convergence.get("details", {}).get("history")
    if rows is None:
        raise ValueError(f"the {result.method!r} fit has no Monte Carlo iteration history")
    return pd.DataFrame(rows).set_index("iteration")


def plot_history(result, parameters=None, axes=None):
    """Estimates and Monte Carlo size by iteration (matplotlib); returns the axes."""
    import matplotlib.pyplot as plt

    h = history(result)
    params = (
        list(parameters)
        if parameters is not None
        else [c for c in result.table.index if c in h.columns]
    )
    if axes is None:
        _, axes = plt.subplots(2, 1, sharex=True, figsize=(7, 5))
    h[params].plot(ax=axes[0])
    axes[0].set_ylabel("estimate")
    if "m" in h:
        h["m"].plot(ax=axes[1], logy=True)
        axes[1].set_ylabel("Monte Carlo size")
    axes[-1].set_xlabel("iteration")
    return axes
