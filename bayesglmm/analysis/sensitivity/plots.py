"""Plots of prior sensitivity: power-scaled posteriors, posteriors under alternative priors."""

from __future__ import annotations

import numpy as np


def _kde(x: np.ndarray, w: np.ndarray | None, grid: np.ndarray) -> np.ndarray:
    from scipy.stats import gaussian_kde

    x = np.asarray(x, dtype=float).ravel()
    if np.ptp(x) == 0:
        return np.zeros_like(grid)
    return gaussian_kde(x, weights=w)(grid)


def _axes(n: int, ax, width: float = 3.2, height: float = 2.4):
    import matplotlib.pyplot as plt

    if ax is not None:
        axes = np.atleast_1d(ax).ravel()
        return axes[0].figure, axes
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for a in axes.ravel()[n:]:
        a.set_visible(False)
    return fig, axes.ravel()


def plot_powerscale(ps, parameters=None, component="prior", alphas=None, ax=None):
    """One panel per parameter: the posterior (black) and its power-scaled versions (weighted
    kernel densities, one line per alpha, blue below 1 and red above); dashed where the
    Pareto k-hat says the weights are unreliable."""
    import matplotlib.pyplot as plt

    from .weights import khat_limit, psis

    names = list(parameters or ps.table.index)
    alphas = sorted(set(float(a) for a in (alphas or ps.scaled["alpha"].unique())) - {1.0})
    comp = ps._components[component]
    fig, axes = _axes(len(names), ax)
    limit = khat_limit(comp.size)
    cmap = plt.get_cmap("coolwarm")
    span = max(abs(np.log(alphas[0])), abs(np.log(alphas[-1])), 1e-9) if alphas else 1.0
    weights = {a: psis((a - 1.0) * comp) for a in alphas}
    for a_ax, name in zip(axes, names, strict=False):
        x = ps._draws[name].ravel()
        lo, hi = np.quantile(x, [0.001, 0.999])
        grid = np.linspace(lo, hi, 200)
        for a in alphas:
            w, khat = weights[a]
            colour = cmap(0.5 + 0.5 * np.log(a) / span)
            style = "-" if khat <= limit else "--"
            a_ax.plot(grid, _kde(x, w, grid), style, color=colour, lw=1, label=f"alpha={a:g}")
        a_ax.plot(grid, _kde(x, None, grid), color="black", lw=1.6, label="posterior")
        d = ps.table.loc[name, "diagnosis"] if name in ps.table.index else ""
        a_ax.set_title(f"{name}" + (f"\n{d}" if d and d != "none" else ""), fontsize=9)
        a_ax.set_yticks([])
    axes[0].legend(fontsize=7)
    fig.suptitle(f"power-scaling the {component}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_alternatives(draws: dict, parameters=None, ax=None):
    """One panel per parameter, one density per prior (``draws``: prior -> name -> array)."""
    import matplotlib.pyplot as plt

    priors = list(draws)
    names = list(parameters or next(iter(draws.values())))
    fig, axes = _axes(len(names), ax)
    colours = plt.get_cmap("tab10")
    for a_ax, name in zip(axes, names, strict=False):
        allx = np.concatenate([np.ravel(draws[p][name]) for p in priors])
        lo, hi = np.quantile(allx, [0.001, 0.999])
        grid = np.linspace(lo, hi, 200)
        for i, p in enumerate(priors):
            lw = 1.8 if i == 0 else 1.0
            a_ax.plot(grid, _kde(draws[p][name], None, grid), color=colours(i % 10), lw=lw, label=p)
        a_ax.set_title(name, fontsize=9)
        a_ax.set_yticks([])
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
