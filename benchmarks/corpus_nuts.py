"""NUTS on the robustness corpus (issue 13): divergences with default settings.

Fits each corpus model (``tests/data/corpus``, see its README) by NUTS with the package's
defaults (4 chains x 1000 draws, 1000 tuning steps, non-centred parameterization, default
priors), counts divergent transitions, and refits the models that diverged with the
centred parameterization to see whether it is the better default for them. Prints one line
per fit: example, parameterization, divergences, max R-hat, min bulk ESS, seconds.

Usage::

    python benchmarks/corpus_nuts.py                      # every model (slow)
    python benchmarks/corpus_nuts.py cbpp epil_olre       # some
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "frequentist"))
import test_corpus as corpus  # noqa: E402

import bayesglmm as bg  # noqa: E402


def run(name: str, parameterization: str, seed: int = 1) -> dict:
    model = corpus.reference()["models"][name]
    d = corpus.load(model["data"])
    glmm = bg.GLMM(model["formula"], d, family=model["family"], link=model["link"])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = glmm.fit(
            method="nuts", random_seed=seed, parameterization=parameterization, progressbar=False
        )
    secs = time.perf_counter() - t0
    div = int(np.asarray(r.idata.sample_stats["diverging"]).sum())
    summ = az.summary(r.idata, kind="diagnostics")
    return {
        "example": name,
        "parameterization": parameterization,
        "divergences": div,
        "max_rhat": float(summ["r_hat"].max()),
        "min_ess_bulk": float(summ["ess_bulk"].min()),
        "seconds": secs,
    }


def main(names: list[str]) -> None:
    names = names or list(corpus.reference()["models"])
    for name in names:
        rows = [run(name, "noncentered")]
        if rows[0]["divergences"]:
            rows.append(run(name, "centered"))
        for row in rows:
            print("\t".join(str(v) for v in row.values()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
