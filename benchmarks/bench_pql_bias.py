"""Bias of PQL, Lin-Breslow corrected PQL, Kuk's corrected PQL and maximum likelihood.

Two designs, data simulated from known values and refitted on
:func:`bayesglmm.analysis.study.run_study` (one task per replicate, seeds derived from
``--seed``; every fit of a replicate sees the same data):

* ``salamander``: ``Mate ~ 0 + Cross + (1|Female) + (1|Male)`` on the salamander design
  (360 binary outcomes, 60 females and 60 males crossed), truth = the Laplace fit of the
  data (rounded); ML is ``laplace`` (quadrature does not apply to crossed factors);
* ``one_factor``: ``y ~ x + (1|g)``, 60 clusters of 4 binary outcomes, ``x ~ N(0, 1)``,
  intercept -0.5, slope 1, ``var(g) = 2``; ML is ``agq`` (25 nodes).

Methods: ``pql``, ``pql_lb`` (``bias_correction="lin-breslow"``), ML, and ``kuk`` (PQL
corrected by Kuk's iteration, ``--kuk-n-sim`` simulations per iteration, at most
``--kuk-max-iter`` iterations) on the first ``--n-rep-kuk`` replicates only (it refits PQL
``n_sim x iterations`` times per replicate). Bias is the mean of estimate - truth over the
replicates, with its Monte Carlo standard error sd / sqrt(n).

    nice -n 10 python benchmarks/bench_pql_bias.py --n-rep 200 --n-rep-kuk 20 \\
        --out benchmarks/results/pql_bias.txt
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

import bayesglmm as bg
from bayesglmm.analysis.study import Task, run_study
from bayesglmm.analysis.study.simulation import fit_replicate
from bayesglmm.analysis.study.summary import summarize, tidy_estimates

SALAMANDER = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
ONE_FACTOR = "y ~ x + (1|g)"


def designs() -> dict:
    sal = bg.datasets.load("salamander")
    rng = np.random.default_rng(2024)
    one = pd.DataFrame(
        {"g": np.repeat([f"g{i}" for i in range(60)], 4), "x": rng.normal(size=240)}
    ).assign(y=0)
    return {
        "salamander": {
            "formula": SALAMANDER,
            "data": sal,
            "truth": {
                "fixed_effects": {
                    "Cross[RR]": 1.0,
                    "Cross[RW]": 0.3,
                    "Cross[WR]": -1.9,
                    "Cross[WW]": 1.0,
                },
                "variance_components": {"Female": 1.17, "Male": 1.04},
            },
            "ml": ("laplace", {}),
        },
        "one_factor": {
            "formula": ONE_FACTOR,
            "data": one,
            "truth": {
                "fixed_effects": {"Intercept": -0.5, "x": 1.0},
                "variance_components": {"g": 2.0},
            },
            "ml": ("agq", {"n_quad": 25}),
        },
    }


def run_design(name, spec, methods, n_rep, args, part) -> pd.DataFrame:
    model_args = {
        "formula": spec["formula"],
        "data": spec["data"],
        "family": "binomial",
        "link": "logit",
        "priors": None,
    }
    tasks = [
        Task(
            f"rep={r}",
            fit_replicate,
            {"model_args": model_args, "truth": spec["truth"], "methods": methods},
        )
        for r in range(n_rep)
    ]
    store = None if args.store is None else f"{args.store}/{name}-{part}"
    study = run_study(
        tasks, store=store, max_workers=args.max_workers, random_seed=args.seed, progressbar=True
    )
    truth = {**spec["truth"]["fixed_effects"]}
    truth.update({f"var({k})": v for k, v in spec["truth"]["variance_components"].items()})
    est = tidy_estimates(study, pd.Series(truth, dtype=float), list(methods))
    return est


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-rep", type=int, default=200)
    ap.add_argument("--n-rep-kuk", type=int, default=20)
    ap.add_argument("--kuk-n-sim", type=int, default=20)
    ap.add_argument("--kuk-max-iter", type=int, default=4)
    ap.add_argument("--designs", nargs="*", default=["salamander", "one_factor"])
    ap.add_argument("--max-workers", type=int, default=None)
    ap.add_argument("--seed", type=int, default=20261208)
    ap.add_argument("--store", default=None, help="directory resuming the studies")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    lines = [
        "Bias of PQL, Lin-Breslow corrected PQL (pql_lb), Kuk-corrected PQL (kuk) and ML",
        f"replicates: {args.n_rep} (kuk: {args.n_rep_kuk}, n_sim={args.kuk_n_sim}, "
        f"max_iter={args.kuk_max_iter}); seed {args.seed}; bias_mcse = sd / sqrt(n)",
        "",
    ]
    cols = ["method", "parameter", "truth", "n", "n_failed", "mean", "bias", "bias_mcse", "rmse"]
    for name, spec in designs().items():
        if name not in args.designs:
            continue
        t0 = time.perf_counter()
        methods = {
            "pql": ("pql", {}),
            "pql_lb": ("pql", {"bias_correction": "lin-breslow"}),
            "ml": spec["ml"],
        }
        est = run_design(name, spec, methods, args.n_rep, args, "main")
        frames = [est]
        if args.n_rep_kuk > 0:
            kuk = {
                "kuk": (
                    "kuk",
                    {"n_sim": args.kuk_n_sim, "max_iter": args.kuk_max_iter, "max_workers": 1},
                )
            }
            frames.append(run_design(name, spec, kuk, args.n_rep_kuk, args, "kuk"))
        summary = pd.concat([summarize(f) for f in frames], ignore_index=True)
        ml_name = spec["ml"][0]
        summary["method"] = summary["method"].replace({"ml": f"ml ({ml_name})"})
        lines += [
            f"== {name}: {spec['formula']} ({time.perf_counter() - t0:.0f} s)",
            summary[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"),
            "",
        ]
        print("\n".join(lines[-3:]), flush=True)
    text = "\n".join(lines)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
