"""Diagnostic plots of Bayesian fits (ArviZ trace, rank and forest plots) written as PNG.

The plots show the model's hyper-parameters: fixed effects, random-effect standard
deviations and correlations, and the dispersion, not the (many) individual random effects.
Files are drawn with matplotlib's non-interactive Agg backend when no other backend has
been chosen, so they work on machines without a display.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .errors import MethodError

#: PNG resolution
DPI = 110


def hyper_var_names(result) -> list[str]:
    """Names in ``result.idata.posterior`` of the fixed effects, sds, correlations, dispersion."""
    post = result.idata.posterior
    names = []
    for name in post.data_vars:
        if name.endswith("_offset"):
            continue
        if "_sigma" in name or name.endswith("_corr") or name in ("sigma", "alpha"):
            names.append(name)
        elif "|" not in name and not name.endswith(("_var", "_chol")):
            names.append(name)
    return names


def _pyplot():
    import matplotlib

    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(result, out_dir: str | Path, prefix: str = "") -> dict[str, Path]:
    """Write ``trace.png``, ``rank.png`` and ``forest.png`` of a Bayesian fit.

    Parameters
    ----------
    result : FitResult
        A fit with draws (``result.idata`` not None).
    out_dir : path
        Created if needed.
    prefix : str
        Put before each file name (``"salamander_"`` gives ``salamander_trace.png``).

    Returns
    -------
    dict
        ``{"trace": path, "rank": path, "forest": path}``.
    """
    if getattr(result, "idata", None) is None:
        raise MethodError(
            f"a {result.method!r} fit has no draws to plot (plots are for sampling methods)"
        )
    import arviz as az

    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    var_names = hyper_var_names(result)
    idata = result.idata
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drawers = {
            "trace": lambda: az.plot_trace(idata, var_names=var_names, compact=True),
            "rank": lambda: az.plot_rank(idata, var_names=var_names),
            "forest": lambda: az.plot_forest(
                idata, var_names=var_names, combined=True, hdi_prob=0.95, r_hat=True, ess=True
            ),
        }
        for kind, draw in drawers.items():
            axes = draw()
            fig = _figure_of(axes)
            fig.suptitle(f"{result.formula}  ({result.method}, {kind})", fontsize=10)
            fig.tight_layout()
            paths[kind] = out / f"{prefix}{kind}.png"
            fig.savefig(paths[kind], dpi=DPI)
            plt.close(fig)
    return paths


def _figure_of(axes):
    import numpy as np

    first = np.asarray(axes, dtype=object).ravel()[0]
    return first.get_figure()
