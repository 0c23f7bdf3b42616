"""NUTS on the robustness corpus (issue 13): divergences with default settings.

Fits each corpus model (``tests/data/corpus``, see its README) by NUTS with the package's
defaults (4 chains x 1000 draws, 1000 tuning steps, non-centred parameterization, default
priors), counts divergent transitions, and refits the models that diverged with the
centred parameterization to see whether it is the better default for them. Prints one line
per fit: example, parameterization, divergences, max R-hat, min bulk ESS, seconds, and the
NUTS backend that ran (``compiled``: nutpie on bayesglmm's density; ``pymc``, ...).

Two models from outside the corpus can be named too: ``salamander`` (the salamander mating
data, ``Mate ~ 0 + Cross + (1|Female) + (1|Male)``, Bernoulli logit, 4 chains) and
``crossed`` (:func:`crossed_data.make_crossed`, ``y ~ x + (1|a) + (1|b)``, Bernoulli logit,
10,000 rows, 2 chains), as in ``bench_nuts.py``; ``corpus`` names every corpus model.

``--tune N`` passes ``tune=N`` (default: not passed, the package default) and ``--seeds
1,2,3`` fits each model once per seed (default 1); the centred refit then runs only with
``--refit-centered``. With neither option the behaviour is the original one. Min bulk ESS and
max R-hat are over every posterior variable (random effects included); ``min_ess_fixvc`` is
the minimum over the fixed effects and variance components only (``bench_nuts.py``'s figure).

Usage::

    python benchmarks/corpus_nuts.py                      # every corpus model (slow)
    python benchmarks/corpus_nuts.py cbpp epil_olre       # some
    python benchmarks/corpus_nuts.py --tune 300 --seeds 1,2 corpus salamander crossed
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "tests" / "frequentist"))
sys.path.insert(0, str(HERE))
import test_corpus as corpus  # noqa: E402

import bayesglmm as bg  # noqa: E402

#: models outside the corpus: name -> (formula, family, link, chains)
EXTRAS = {
    "salamander": ("Mate ~ 0 + Cross + (1|Female) + (1|Male)", "binomial", "logit", 4),
    "crossed": ("y ~ x + (1|a) + (1|b)", "binomial", "logit", 2),
}
COLUMNS = [
    "example",
    "parameterization",
    "divergences",
    "max_rhat",
    "min_ess_bulk",
    "seconds",
    "backend",
    "tune",
    "seed",
    "min_ess_fixvc",
]


def _model(name: str) -> tuple[bg.GLMM, dict]:
    if name in EXTRAS:
        formula, family, link, chains = EXTRAS[name]
        if name == "salamander":
            d = bg.datasets.load("salamander")
        else:
            from crossed_data import make_crossed

            d = make_crossed()
        return bg.GLMM(formula, d, family=family, link=link), {"chains": chains}
    model = corpus.reference()["models"][name]
    d = corpus.load(model["data"])
    return bg.GLMM(model["formula"], d, family=model["family"], link=model["link"]), {}


def run(
    name: str,
    parameterization: str,
    seed: int = 1,
    tune: int | None = None,
    sampler_kwargs: dict | None = None,
) -> dict:
    glmm, kwargs = _model(name)
    if tune is not None:
        kwargs["tune"] = tune
    if sampler_kwargs:
        kwargs["sampler_kwargs"] = sampler_kwargs
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = glmm.fit(
            method="nuts",
            random_seed=seed,
            parameterization=parameterization,
            progressbar=False,
            **kwargs,
        )
    secs = time.perf_counter() - t0
    div = int(np.asarray(r.idata.sample_stats["diverging"]).sum())
    summ = az.summary(r.idata, kind="diagnostics", round_to="none")
    rows = list(r.fixed_effects.index) + [f"var({c})" for c in r.variance_components.index]
    details = r.info.get("details", {})
    return {
        "example": name,
        "parameterization": parameterization,
        "divergences": div,
        "max_rhat": round(float(summ["r_hat"].max()), 4),
        "min_ess_bulk": round(float(summ["ess_bulk"].min()), 1),
        "seconds": round(secs, 2),
        "backend": details.get("nuts_sampler"),
        "tune": r.info.get("options", {}).get("tune"),
        "seed": seed,
        "min_ess_fixvc": round(float(r.table.loc[rows, "ess_bulk"].min()), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="corpus models, salamander, crossed, corpus")
    parser.add_argument("--tune", type=int, default=None, help="tuning steps (default: package's)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 1)")
    parser.add_argument(
        "--sampler-kwargs",
        default=None,
        help="JSON object passed as sampler_kwargs, e.g. '{\"use_grad_based_mass_matrix\": false}'",
    )
    parser.add_argument(
        "--refit-centered",
        action="store_true",
        help="refit diverging models centred (the default when --tune/--seeds are absent)",
    )
    args = parser.parse_args(argv)
    every = list(corpus.reference()["models"])
    names = []
    for name in args.names or ["corpus"]:
        names.extend(every if name == "corpus" else [name])
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [1]
    skw = json.loads(args.sampler_kwargs) if args.sampler_kwargs else None
    refit = args.refit_centered or (args.tune is None and args.seeds is None)
    print("\t".join(COLUMNS), flush=True)
    for name in names:
        for seed in seeds:
            rows = [run(name, "noncentered", seed, args.tune, skw)]
            if refit and rows[0]["divergences"]:
                rows.append(run(name, "centered", seed, args.tune, skw))
            for row in rows:
                print("\t".join(str(row[c]) for c in COLUMNS), flush=True)


if __name__ == "__main__":
    main()
