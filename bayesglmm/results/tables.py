"""The wide side-by-side table of finished fits: one column a fit, one row a parameter.

Reads only the result schema (:mod:`bayesglmm.result`), never the method name. Rows are
ordered fixed effects, variances, correlations, dispersion, log-likelihood; columns are
labelled uniquely, and a fit whose priors differ from the other Bayesian fits', or whose
estimates are marginal (population-averaged), is marked. Used by :func:`bayesglmm.compare`,
:class:`bayesglmm.comparison.Comparison`, the forest plot and the model specs.
"""

from __future__ import annotations

import pandas as pd

from ..errors import BayesGLMMError
from .result import DISPERSION_ROWS, FitResult

#: the marks a column label may carry, and what they mean (kept in ``table.attrs["notes"]``)
PRIORS_DIFFER = "priors differ"
MARGINAL = "marginal"


def _rank(key: str) -> int:
    """Fixed effects, then variances, correlations, dispersion and the log-likelihood."""
    if key == "logLik":
        return 4
    if key in DISPERSION_ROWS:
        return 3
    if key.startswith("cor("):
        return 2
    return 1 if key.startswith("var(") else 0


def unique_labels(results: list[FitResult]) -> list[str]:
    """Method names as labels; a repeated one gets ``" (2)"``, ``" (3)"`` ... ."""
    counts: dict[str, int] = {}
    labels = []
    for r in results:
        counts[r.method] = counts.get(r.method, 0) + 1
        labels.append(r.method if counts[r.method] == 1 else f"{r.method} ({counts[r.method]})")
    return labels


def _column(r: FitResult) -> pd.Series:
    parts = [r.fixed_effects, r.variance_components.rename(lambda k: f"var({k})")]
    parts.append(r.re_correlations.rename(lambda k: f"cor({k})"))
    parts.append(r.dispersion)
    if r.loglik is not None:
        parts.append(pd.Series({"logLik": r.loglik}))
    return pd.concat([p.astype(float) for p in parts if len(p)])


def _marks(labels: list[str], results: list[FitResult]) -> dict[str, list[str]]:
    """Which columns need a mark, and why."""
    notes: dict[str, list[str]] = {lab: [] for lab in labels}
    bayes = [(lab, r) for lab, r in zip(labels, results, strict=True) if r.kind == "bayesian"]
    if bayes:
        ref_label, ref = bayes[0]
        for lab, r in bayes:
            swap = r.info.get("prior_swap") or {}
            if swap:
                notes[lab].append(
                    f"{PRIORS_DIFFER}: {lab} replaced the model's priors ("
                    + "; ".join(f"{k}: {v}" for k, v in swap.items())
                    + ")"
                )
            elif lab != ref_label and r.info.get("priors") != ref.info.get("priors"):
                notes[lab].append(f"{PRIORS_DIFFER}: {lab}'s priors are not {ref_label}'s")
    conditional = any(r.kind != "marginal" for r in results)
    for lab, r in zip(labels, results, strict=True):
        if r.kind == "marginal" and conditional:
            notes[lab].append(
                f"{MARGINAL}: {lab} estimates population-averaged effects, not effects "
                "conditional on the random effects; they differ in scale"
            )
    return {lab: n for lab, n in notes.items() if n}


def join_fits(results) -> pd.DataFrame:
    if isinstance(results, dict):
        labels = [str(k) for k in results]
        fits = list(results.values())
    elif isinstance(results, list | tuple):
        fits = list(results)
        labels = unique_labels(fits)
    else:
        raise BayesGLMMError(
            "compare takes a dict label -> FitResult, a list of FitResult, or a GLMM with "
            f"methods=[...]; got a {type(results).__name__}"
        )
    if not fits:
        raise BayesGLMMError("compare needs at least one fit")
    for lab, r in zip(labels, fits, strict=True):
        if not isinstance(r, FitResult):
            raise BayesGLMMError(f"compare: {lab!r} is a {type(r).__name__}, not a FitResult")
    notes = _marks(labels, fits)
    shown = [
        f"{lab} [{', '.join(sorted({n.split(':')[0] for n in notes[lab]}))}]"
        if lab in notes
        else lab
        for lab in labels
    ]
    cols = {s: _column(r) for s, r in zip(shown, fits, strict=True)}
    seen = dict.fromkeys(key for col in cols.values() for key in col.index)
    order = sorted(seen, key=_rank)  # stable: first-seen order within a kind
    table = pd.DataFrame(cols).reindex(order)
    table.index.name = "parameter"
    pairs = zip(shown, labels, strict=True)
    table.attrs["notes"] = {s: notes[lab] for s, lab in pairs if lab in notes}
    return table
