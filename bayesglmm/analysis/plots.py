"""Diagnostic plots of Bayesian fits (ArviZ trace, rank and forest plots) written as PNG.

The plots show the model's hyper-parameters: fixed effects, random-effect standard
deviations and correlations, and the dispersion, not the (many) individual random effects.
Files are drawn with matplotlib's non-interactive Agg backend when no other backend has
been chosen, so they work on machines without a display.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ..errors import MethodError
from ..model.families import DISPERSION_NAMES

#: PNG resolution
DPI = 110


def hyper_var_names(result) -> list[str]:
    """Names in ``result.idata.posterior`` of the fixed effects, sds, correlations, dispersion."""
    post = result.idata.posterior
    names = []
    for name in post.data_vars:
        if name.endswith("_offset"):
            continue
        if "_sigma" in name or name.endswith("_corr") or name in DISPERSION_NAMES:
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
    from .._arviz import import_arviz

    az = import_arviz()

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


#: reference marks of the forest plot, one shape per reference
REFERENCE_MARKERS = ("D", "s", "^", "v", "P", "X", "*")
#: panels of the forest plot, by :func:`bayesglmm.fit_table._rank` of the parameter
PANELS = ("fixed effects", "variance components", "correlations", "dispersion")


def forest_plot(
    tidy,
    references=None,
    path=None,
    parameters=None,
    title: str | None = None,
    dpi: int | None = None,
    skipped=None,
):
    """Forest plot of several methods' estimates, side by side per parameter.

    One panel per kind of parameter (fixed effects, variance components, correlations,
    dispersion), each on its own scale. Per parameter, every method's estimate is a dot with
    its 95 % interval as a line (no line where the method gives none, e.g. Laplace
    variances); reference values are open black marks on the parameter's centre line. A
    method whose fit did not converge (``converged`` False in ``tidy``) is drawn with crosses
    and labelled ``"<method> [not converged]"`` in the legend.

    Parameters
    ----------
    tidy : pandas.DataFrame
        :attr:`bayesglmm.comparison.Comparison.tidy` (columns ``method``, ``parameter``,
        ``estimate``, ``lower``, ``upper``); rows without a parameter are ignored.
    references : dict of label -> pandas.Series, optional
        Values indexed like the parameters (``"Cross[RR]"``, ``"var(Female)"``).
    path : path, optional
        Write the figure there too.
    parameters : list of str, optional
        The parameters to draw, in the table's order (default: all).
    title : str, optional
    dpi : int, optional
        Resolution of the written file (default :data:`DPI`).
    skipped : dict of label -> str, optional
        Methods that did not apply, named under the plot.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    from ..results.tables import NOT_CONVERGED, _rank

    plt = _pyplot()
    t = tidy[tidy["parameter"].notna()]
    params = sorted(dict.fromkeys(t["parameter"]), key=_rank)
    if parameters is not None:
        unknown = [p for p in parameters if p not in params]
        if unknown:
            raise MethodError(
                f"parameters: {unknown[0]!r} is not in the comparison; it has {', '.join(params)}"
            )
        params = [p for p in params if p in set(parameters)]
    if not params:
        raise MethodError("nothing to plot: no method gave estimates")
    methods = list(dict.fromkeys(t["method"]))
    failed = set()
    if "converged" in t.columns:
        failed = set(t.loc[t["converged"].eq(False), "method"])
    refs = {k: v for k, v in (references or {}).items() if len(v)}
    ranks = sorted({_rank(p) for p in params})
    sizes = [sum(_rank(p) == r for p in params) for r in ranks]
    row_h = 0.16 * len(methods) + 0.25
    fig, axes = plt.subplots(
        len(ranks),
        1,
        figsize=(8.0, 0.9 + sum(sizes) * row_h + 0.45 * len(ranks)),
        gridspec_kw={"height_ratios": sizes},
        squeeze=False,
    )
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    offsets = np.linspace(0.36, -0.36, len(methods)) if len(methods) > 1 else np.zeros(1)
    handles: dict[str, object] = {}
    for ax, rank in zip(axes[:, 0], ranks, strict=True):
        ps = [p for p in params if _rank(p) == rank]
        for i, p in enumerate(ps):
            y0 = len(ps) - 1 - i
            rows = t[t["parameter"] == p].set_index("method")
            for j, m in enumerate(methods):
                if m not in rows.index:
                    continue
                r = rows.loc[m]
                y = y0 + offsets[j]
                colour = cmap(j % cmap.N)
                if np.isfinite(r["lower"]) and np.isfinite(r["upper"]):
                    ax.hlines(y, r["lower"], r["upper"], color=colour, lw=1.5)
                marker = "x" if m in failed else "o"
                (h,) = ax.plot(r["estimate"], y, marker, color=colour, ms=4.5, ls="none")
                handles.setdefault(f"{m} [{NOT_CONVERGED}]" if m in failed else m, h)
            for k, (lab, values) in enumerate(refs.items()):
                if p in values.index and np.isfinite(values[p]):
                    (h,) = ax.plot(
                        values[p],
                        y0,
                        REFERENCE_MARKERS[k % len(REFERENCE_MARKERS)],
                        color="black",
                        mfc="none",
                        ms=8,
                        mew=1.3,
                        ls="none",
                    )
                    handles.setdefault(lab, h)
            if i:
                ax.axhline(y0 + 0.5, color="0.85", lw=0.8)
        ax.set_yticks(range(len(ps)), ps[::-1])
        ax.set_ylim(-0.55, len(ps) - 0.45)
        ax.set_title(PANELS[rank], loc="left", fontsize=9)
        ax.grid(axis="x", color="0.9")
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="upper left",
        bbox_to_anchor=(1.0, 0.98),
        fontsize=8,
        frameon=False,
        title="estimate (95 % interval); reference" if refs else "estimate (95 % interval)",
        title_fontsize=8,
    )
    if title:
        fig.suptitle(title, fontsize=10)
    if skipped:
        fig.text(0.01, 0.0, "not applicable: " + ", ".join(skipped), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.03 if skipped else 0, 1, 1))
    if path is not None:
        fig.savefig(path, dpi=dpi or DPI, bbox_inches="tight")
    return fig
