"""The wide side-by-side table of finished fits: one column a fit, one row a parameter.

Reads only the result schema (:mod:`bayesglmm.result`), never the method name. Rows are
ordered fixed effects, variances, correlations, dispersion, log-likelihood; columns are
labelled uniquely, and a fit whose priors differ from the other Bayesian fits', or whose
estimates are marginal (population-averaged), is marked. Used by :func:`bayesglmm.compare`,
:class:`bayesglmm.comparison.Comparison`, the forest plot and the model specs.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ..errors import BayesGLMMError
from .result import DISPERSION_ROWS, FitResult

#: the marks a column label may carry, and what they mean (kept in ``table.attrs["notes"]``)
PRIORS_DIFFER = "priors differ"
MARGINAL = "marginal"
NOT_CONVERGED = "not converged"
#: ``"model 2"``: the fit is of another model or data set (``allow_different_models=True``)
MODEL = "model"


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


def _data_fingerprint(r: FitResult) -> str | None:
    """A hash of the response and design arrays the fit used (None without its model)."""
    design = getattr(getattr(r, "model", None), "design", None)
    if design is None:
        return None
    h = hashlib.sha256()
    for arr in (design.y, design.X, design.trials, design.offset):
        if arr is not None:
            h.update(np.ascontiguousarray(np.asarray(arr, dtype=float)).tobytes())
    for t in design.random:
        h.update(np.ascontiguousarray(t.index).tobytes())
    return h.hexdigest()


def model_identity(r: FitResult) -> dict:
    """What makes two fits estimates of the same model on the same data."""
    return {
        "formula": "".join(str(r.formula).split()),
        "family/link": f"{r.family}/{r.link}",
        "response": r.info.get("response"),
        "number of observations": int(r.nobs),
        "data": _data_fingerprint(r),
    }


def _describe(r: FitResult) -> str:
    return f"{r.formula} ({r.family}/{r.link}, {r.nobs} observations)"


def _differences(a: dict, b: dict) -> list[str]:
    """Keys of two identities that differ (the data only when both fits know it)."""
    return [k for k in a if a[k] != b[k] and not (k == "data" and (a[k] is None or b[k] is None))]


def model_numbers(
    labels: list[str], results: list[FitResult], allow_different_models: bool = False
) -> dict[str, int]:
    """Number the distinct models among the fits (1, 2, ...), or refuse a mixture.

    Raises
    ------
    BayesGLMMError
        Two fits differ in formula, family/link, response, number of observations or data
        (when both carry their model), naming the fits and what differs, unless
        ``allow_different_models``.
    """
    idents = [model_identity(r) for r in results]
    numbers: dict[str, int] = {}
    firsts: list[tuple[str, dict]] = []
    for lab, ident in zip(labels, idents, strict=True):
        same = [k for k, (_, first) in enumerate(firsts) if not _differences(first, ident)]
        if same:
            numbers[lab] = same[0] + 1
            continue
        if firsts and not allow_different_models:
            first_lab, first = firsts[0]
            shown = "; ".join(
                "data: the response or design values differ"
                if key == "data"
                else f"{key}: {first[key]!r} vs {ident[key]!r}"
                for key in _differences(first, ident)
            )
            raise BayesGLMMError(
                f"compare: fits {first_lab!r} and {lab!r} are not of the same model and "
                f"data ({shown}); pass allow_different_models=True to put them side by "
                "side with the columns labelled by model"
            )
        firsts.append((lab, ident))
        numbers[lab] = len(firsts)
    return numbers


def _marks(
    labels: list[str], results: list[FitResult], allow_different_models: bool = False
) -> dict[str, list[str]]:
    """Which columns need a mark, and why."""
    notes: dict[str, list[str]] = {lab: [] for lab in labels}
    numbers = model_numbers(labels, results, allow_different_models)
    if len(set(numbers.values())) > 1:
        for lab, r in zip(labels, results, strict=True):
            notes[lab].append(f"{MODEL} {numbers[lab]}: {lab} is a fit of {_describe(r)}")
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
    for lab, r in zip(labels, results, strict=True):
        if not r.converged:
            msgs = (r.convergence or {}).get("messages") or []
            first = " ".join(str(msgs[0]).split()) if msgs else ""
            notes[lab].append(
                f"{NOT_CONVERGED}: {lab} did not converge" + (f" ({first})" if first else "")
            )
    return {lab: n for lab, n in notes.items() if n}


def join_fits(results, allow_different_models: bool = False) -> pd.DataFrame:
    """The wide table of :func:`bayesglmm.compare` (see there)."""
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
    notes = _marks(labels, fits, allow_different_models)
    shown = [
        f"{lab} [{', '.join(sorted(dict.fromkeys(n.split(':')[0] for n in notes[lab])))}]"
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
