"""MSPE estimators of the empirical best predictor with few groups: relative bias and
coverage by simulation.

Scenarios (design fixed across replicates, response and random effects redrawn):

- ``gaussian``: the nested-error model ``y_ij = 1 + 0.5 x_ij + v_i + e_ij``, ``n_i = 5``,
  ``var(v) = 0.25``, ``var(e) = 1``, fitted by REML (``method="lmm"``); target: each area's
  mean ``mean_j(x_ij' beta) + v_i``;
- ``logit``: ``y_ij ~ Bernoulli(expit(-0.5 + 0.5 x_ij + v_i))``, ``n_i = 10``,
  ``var(v) = 1``, fitted by ``method="laplace"``; targets: each area's random effect
  ``v_i`` (link scale) and mean probability ``mean_j expit(x_ij' beta + v_i)``.

For ``m = 15`` and ``30`` areas: the true MSPE of each area's EBP is the mean of
``(zeta-hat - zeta)^2`` over the replicates; the relative bias of an estimator is the mean
over areas of ``(E mspe-hat_i - MSPE_i) / MSPE_i``; the coverage of the 95% intervals
``estimate +- 1.96 sqrt(mspe-hat)`` is pooled over areas and replicates. Monte Carlo errors:
resampling the replicates (200 times) for the relative bias, the spread of the per-replicate
coverage for coverage. The bootstrap estimator (``n_boot`` refits each) runs on the first
``--boot-reps`` replicates only (its relative bias uses the true MSPE from all replicates).

Run: ``nice -n 10 python benchmarks/bench_ebp_mspe.py --reps 400 --boot-reps 40 --n-boot 40``
(writes ``benchmarks/results/ebp_mspe.txt``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from bayesglmm.analysis.study import Task, run_study

SCENARIOS = {
    "gaussian": {
        "formula": "y ~ x + (1|g)",
        "family": "gaussian",
        "beta": {"Intercept": 1.0, "x": 0.5},
        "var": 0.25,
        "dispersion": 1.0,
        "n_i": 5,
        "method": "lmm",
        "type": "link",
        "quantities": ("mean",),
    },
    "logit": {
        "formula": "y ~ x + (1|g)",
        "family": "binomial",
        "beta": {"Intercept": -0.5, "x": 0.5},
        "var": 1.0,
        "dispersion": None,
        "n_i": 10,
        "method": "laplace",
        "type": "response",
        "quantities": ("random_effect", "mean"),
    },
}
ESTIMATORS = ("mspe_g1g2", "mspe_second_order", "mspe_bootstrap", "mspe_bootstrap_naive")
Z95 = 1.959963984540054


def design(m: int, n_i: int) -> pd.DataFrame:
    rng = np.random.default_rng(20261208 + m)
    return pd.DataFrame(
        {"g": np.repeat([f"a{i:03d}" for i in range(m)], n_i), "x": rng.normal(size=m * n_i)}
    )


def one_replicate(name: str, m: int, boot: bool, n_boot: int, seed: int) -> dict:
    from bayesglmm import GLMM
    from bayesglmm.analysis.study.ebp_bootstrap import ebp
    from bayesglmm.model.simulate import simulate

    sc = SCENARIOS[name]
    data = design(m, sc["n_i"])
    sim = simulate(
        sc["formula"],
        data,
        sc["beta"],
        {"g": sc["var"]},
        family=sc["family"],
        dispersion=sc["dispersion"],
        random_seed=seed,
    )
    v = next(iter(sim.attrs["truth"]["random_effects"].values()))["Intercept"]
    eta = sim["x"].to_numpy() * sc["beta"]["x"] + sc["beta"]["Intercept"]
    eta = eta + v.loc[sim["g"]].to_numpy()
    h = special.expit if sc["type"] == "response" else (lambda e: e)
    true_mean = pd.Series(h(eta)).groupby(sim["g"].to_numpy()).mean()
    model = GLMM(sc["formula"], sim, family=sc["family"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(method=sc["method"])
        kw = {"type": sc["type"], "model": model}
        if boot:
            out = ebp(fit, mspe="bootstrap", n_boot=n_boot, max_workers=1, random_seed=seed, **kw)
        else:
            out = ebp(fit, **kw)
    res = {}
    for q in sc["quantities"]:
        part = out[out["quantity"] == q].set_index("level")
        truth = (v if q == "random_effect" else true_mean).reindex(part.index).to_numpy()
        res[q] = {"truth": truth, "estimate": part["estimate"].to_numpy()}
        for e in ESTIMATORS:
            res[q][e] = part[e].to_numpy() if e in part else np.full(m, np.nan)
    return res


def summarize(reps: list[dict], quantity: str, n_boot_reps: int, rng) -> list[dict]:
    if not reps:
        return []
    truth = np.array([r[quantity]["truth"] for r in reps])
    est = np.array([r[quantity]["estimate"] for r in reps])
    err2 = (est - truth) ** 2
    R = len(reps)
    rows = []
    for e in ESTIMATORS:
        hat = np.array([r[quantity][e] for r in reps])
        use = np.isfinite(hat).all(1)
        if not use.any():
            continue

        def rel_bias(idx, hat=hat, use=use):
            true_mspe = err2[idx].mean(0)
            sub = idx[use[idx]]
            return float(np.mean(hat[sub].mean(0) / true_mspe - 1))

        idx = np.arange(R)
        rb = rel_bias(idx)
        rb_se = np.std([rel_bias(rng.integers(0, R, R)) for _ in range(200)], ddof=1)
        cover = (np.abs(est[use] - truth[use]) <= Z95 * np.sqrt(hat[use])).mean(1)
        rows.append(
            {
                "estimator": e.removeprefix("mspe_"),
                "replicates": int(use.sum()),
                "rel_bias": rb,
                "rel_bias_mcse": rb_se,
                "coverage": float(cover.mean()),
                "coverage_mcse": float(cover.std(ddof=1) / np.sqrt(len(cover))),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--boot-reps", type=int, default=40)
    ap.add_argument("--n-boot", type=int, default=40)
    ap.add_argument("--m", type=int, nargs="+", default=[15, 30])
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--store", default=None, help="a directory: resumable runs")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ebp_mspe.txt"))
    args = ap.parse_args()
    tasks = []
    for name in args.scenarios:
        for m in args.m:
            for r in range(args.reps):
                kw = {"name": name, "m": m, "boot": r < args.boot_reps, "n_boot": args.n_boot}
                tasks.append(Task(f"{name}/m={m}/r={r:05d}", one_replicate, kw))
    start = time.time()
    res = run_study(
        tasks,
        store=args.store,
        max_workers=args.workers,
        random_seed=args.seed,
        progressbar=False,
    )
    rng = np.random.default_rng(args.seed)
    lines = [
        "EBP MSPE estimators with few groups (benchmarks/bench_ebp_mspe.py)",
        f"reps={args.reps} (bootstrap on the first {args.boot_reps}, n_boot={args.n_boot}), "
        f"seed={args.seed}, failed tasks: {len(res.failed)}, {time.time() - start:.0f} s",
        "rel_bias: mean over areas of (E mspe_hat - true MSPE) / true MSPE; coverage of the "
        "95% interval estimate +- 1.96 sqrt(mspe_hat); +- Monte Carlo standard errors",
        "",
    ]
    for name in args.scenarios:
        for m in args.m:
            reps = [
                res.results[t.key]
                for t in tasks
                if t.key in res.results and t.key.startswith(f"{name}/m={m}/")
            ]
            for q in SCENARIOS[name]["quantities"]:
                lines.append(f"{name}, m={m}, target={q} ({len(reps)} replicates)")
                for row in summarize(reps, q, args.boot_reps, rng):
                    lines.append(
                        f"  {row['estimator']:<16} n={row['replicates']:>4}  rel_bias "
                        f"{100 * row['rel_bias']:+6.1f}% +- {100 * row['rel_bias_mcse']:4.1f}%  "
                        f"coverage {100 * row['coverage']:5.1f}% +- "
                        f"{100 * row['coverage_mcse']:4.1f}%"
                    )
                lines.append("")
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
