"""ESS per second of the Gibbs-style sampler against NUTS (issue 4).

Two models, the same priors for every sampler: ``--priors conjugate`` (default here, the
figures of issue 4) puts ``InverseGamma(1, 1)`` on each variance, the inverse-gamma update
of ``method="gibbs"``; ``--priors default`` keeps the package's ``HalfNormal(2.5)`` sds,
which ``method="gibbs"`` slice-samples (issue 8); ``Normal`` defaults on the fixed effects:

* ``salamander``: ``Mate ~ 0 + Cross + (1|Female) + (1|Male)``, Bernoulli logit, 360 rows,
  60 x 60 crossed levels; 4 chains;
* ``crossed``: ``y ~ x + (1|a) + (1|b)``, Bernoulli logit, 10,000 rows, 1,000 x 1,000
  crossed levels (:func:`crossed_data.make_crossed`); 2 chains.

Samplers: ``gibbs`` (``method="gibbs"``: Polya-Gamma joint draw of fixed and random effects,
block-sparse Cholesky for the crossed model, inverse-gamma variances), ``nuts`` (PyMC's NUTS,
noncentered) and ``nutpie`` (if installed). Chains run one after another on one core
(``cores=1``), so the figures are per core. The wall time is that of ``GLMM.fit`` (model
build, compilation, tuning and sampling; no log-likelihood), in a warm process (PyTensor's
compile cache filled by an untimed first fit). Reported per sampler: wall seconds, the
minimum bulk ESS over the fixed effects and over the variances, and those ESS per second.

Usage::

    python benchmarks/bench_gibbs.py                       # both models, all samplers
    python benchmarks/bench_gibbs.py --model salamander --draws 2000
    python benchmarks/bench_gibbs.py --model crossed --samplers gibbs,nutpie

Run on a quiet machine: the load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MODELS = {
    "salamander": {
        "formula": "Mate ~ 0 + Cross + (1|Female) + (1|Male)",
        "chains": 4,
        "draws": 1000,
        "tune": 1000,
        "gibbs_draws": 4000,
        "gibbs_tune": 500,
    },
    "crossed": {
        "formula": "y ~ x + (1|a) + (1|b)",
        "chains": 2,
        "draws": 1000,
        "tune": 1000,
        "gibbs_draws": 1000,
        "gibbs_tune": 200,
    },
}


def _data(name: str):
    if name == "salamander":
        from bayesglmm import datasets

        return datasets.load("salamander")
    from crossed_data import make_crossed

    return make_crossed()


def _model(name: str, data, prior_kind: str = "conjugate"):
    from bayesglmm import GLMM, priors

    spec = MODELS[name]
    if prior_kind == "default":  # HalfNormal(2.5) sds: Gibbs slice-samples them
        return GLMM(spec["formula"], data)
    groups = [t.group for t in GLMM(spec["formula"], data).design.random]
    return GLMM(spec["formula"], data, priors={g: priors.InverseGamma(1.0, 1.0) for g in groups})


def _fit(model, sampler: str, spec: dict, seed: int, draws: int | None):
    common = {
        "chains": spec["chains"],
        "cores": 1,
        "random_seed": seed,
        "progressbar": False,
        "log_likelihood": False,
    }
    if sampler == "gibbs":
        return model.fit(
            method="gibbs", draws=draws or spec["gibbs_draws"], tune=spec["gibbs_tune"], **common
        )
    backend = "pymc" if sampler == "nuts" else sampler
    return model.fit(
        method="nuts",
        nuts_sampler=backend,
        draws=draws or spec["draws"],
        tune=spec["tune"],
        **common,
    )


def run(
    name: str, samplers: list[str], seed: int, draws: int | None, prior_kind: str = "conjugate"
) -> list[dict]:
    data = _data(name)
    model = _model(name, data, prior_kind)
    spec = MODELS[name]
    rows = []
    for sampler in samplers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # untimed warm-up: fills PyTensor's compile cache, as in a second session
            _fit(model, sampler, {**spec, "chains": 1, "tune": 20, "gibbs_tune": 20}, seed, 20)
            t0, c0 = time.perf_counter(), time.process_time()
            fit = _fit(model, sampler, spec, seed, draws)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        table = fit.table
        fixed = table.loc[fit.fixed_effects.index, "ess_bulk"]
        var = table.loc[[f"var({c})" for c in fit.variance_components.index], "ess_bulk"]
        rows.append(
            {
                "model": name,
                "sampler": sampler,
                "priors": prior_kind,
                "draws": int(fit.idata.posterior.sizes["draw"]),
                "chains": spec["chains"],
                "wall_s": wall,
                "cpu_s": cpu,
                "ess_var_per_cpu_s": float(var.min()) / cpu,
                "sample_s": fit.timing["sample"],
                "ess_fixed": float(fixed.min()),
                "ess_var": float(var.min()),
                "ess_fixed_per_s": float(fixed.min()) / wall,
                "ess_var_per_s": float(var.min()) / wall,
                "max_r_hat": fit.convergence["details"]["max_r_hat"],
                "means": {k: round(float(v), 3) for k, v in table["estimate"].items()},
            }
        )
        print(_line(rows[-1]), flush=True)
    return rows


def _line(r: dict) -> str:
    return (
        f"{r['model']:<11} {r['sampler']:<7} {r['priors']:<9} {r['chains']}x{r['draws']:<5} "
        f"wall {r['wall_s']:7.1f}s  sample {r['sample_s']:7.1f}s  "
        f"min ESS fixed {r['ess_fixed']:7.0f} ({r['ess_fixed_per_s']:7.1f}/s)  "
        f"var {r['ess_var']:6.0f} ({r['ess_var_per_s']:6.1f}/s)  "
        f"R-hat {r['max_r_hat']:.3f}  "
        f"(cpu {r['cpu_s']:.1f}s: var {r['ess_var_per_cpu_s']:.1f}/cpu-s)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=[*MODELS, "all"], default="all")
    p.add_argument("--samplers", default="gibbs,nuts,nutpie")
    p.add_argument("--draws", type=int, default=None, help="override the draws per chain")
    p.add_argument("--seed", type=int, default=20_260_401)
    p.add_argument(
        "--priors",
        choices=["conjugate", "default"],
        default="conjugate",
        help="InverseGamma(1, 1) variances (conjugate) or the default HalfNormal sds",
    )
    args = p.parse_args()
    samplers = [
        s for s in args.samplers.split(",") if s != "nutpie" or importlib.util.find_spec("nutpie")
    ]
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; numpy {np.__version__}"
    )
    models = list(MODELS) if args.model == "all" else [args.model]
    rows = [r for m in models for r in run(m, samplers, args.seed, args.draws, args.priors)]
    print("\nposterior means (same priors):")
    for r in rows:
        print(f"  {r['model']:<11} {r['sampler']:<7} {r['means']}")


if __name__ == "__main__":
    main()
