"""Scale series of the collapsed Polya-Gamma Gibbs sampler (issue 12, "Gibbs at scale").

Data (the issue's design): Bernoulli logit ``y ~ x + (1|f) + (1|m)``, 10 rows per level of
``f``, ``n / 10`` levels of ``m`` drawn at random per row, binary ``x``; truth intercept
-0.5, slope 1, variances 0.5 and 0.5. Default priors (half-normal sds), the model NUTS fits.

Each size runs in a fresh subprocess (peak memory is that process's ``ru_maxrss``)::

    flock /work/team/heavy.lock python benchmarks/bench_gibbs_scale.py            # series
    flock /work/team/heavy.lock python benchmarks/bench_gibbs_scale.py --nuts 200000
    python benchmarks/bench_gibbs_scale.py --compare 200000    # means within MC error?
    python benchmarks/bench_gibbs_scale.py --one gibbs 10000     # one run, JSON on stdout

Reported: wall time of ``fit`` (build + sampling + result assembly), the sampling time
alone, peak resident memory (of the process, and of the largest forked chain worker), and
bulk ESS per second of sampling for the fixed effects and variances (the minimum over
them), also per row (ESS/s x rows: constant when the cost per scan is linear in rows and
mixing does not degrade). Results are appended as JSON lines to
``benchmarks/results/gibbs_scale.jsonl`` and printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, run from anywhere
RESULTS = Path(__file__).parent / "results" / "gibbs_scale.jsonl"
FORMULA = "y ~ x + (1|f) + (1|m)"
TRUTH = {"Intercept": -0.5, "x": 1.0}
VARIANCES = {"f": 0.5, "m": 0.5}
PARAMETERS = ["Intercept", "x", "var(f)", "var(m)"]
SIZES = [10_000, 50_000, 200_000, 1_000_000]


def make_data(n_rows: int, per_level: int = 10, seed: int = 20_261_130) -> pd.DataFrame:
    """The issue's crossed design: ``per_level`` rows per level of f, ``n_rows / per_level``
    levels of m at random."""
    from bayesglmm import simulate

    rng = np.random.default_rng(seed)
    n_levels = n_rows // per_level
    frame = pd.DataFrame(
        {
            "f": np.repeat(np.arange(n_levels), per_level)[:n_rows].astype(str),
            "m": rng.integers(0, n_levels, n_rows).astype(str),
            "x": rng.integers(0, 2, n_rows),
        }
    )
    return simulate(FORMULA, frame, TRUTH, VARIANCES, family="binomial", random_seed=seed + 1)


def run_one(method: str, n_rows: int, draws: int, tune: int, chains: int, per_level=10) -> dict:
    from bayesglmm import GLMM

    df = make_data(n_rows, per_level)
    model = GLMM(FORMULA, df, family="binomial")
    t0 = time.perf_counter()
    if method == "gibbs":
        res = model.fit(
            method="gibbs",
            scheme="collapsed",
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=1,
            log_likelihood=False,
            progressbar=False,
        )
    else:
        res = model.fit(
            method="nuts",
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=1,
            log_likelihood=False,
            progressbar=False,
        )
    wall = time.perf_counter() - t0
    sample = float(res.timing.get("sample", wall))
    table = res.table.loc[PARAMETERS]
    ess = table["ess_bulk"].astype(float)
    min_ess = float(ess.min())
    return {
        "method": method,
        "rows": n_rows,
        "levels": [model.design.random[0].n_levels, model.design.random[1].n_levels],
        "chains": chains,
        "draws": draws,
        "tune": tune,
        "wall_s": wall,
        "sample_s": sample,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # forked chain workers (collapsed Gibbs with cores > 1): the largest one's peak
        "peak_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "min_ess_bulk": min_ess,
        "worst": str(ess.idxmin()),
        "min_ess_per_s": min_ess / sample,
        "min_ess_per_s_x_rows": min_ess / sample * n_rows,
        "max_r_hat": float(table["r_hat"].max()),
        "mean": table["estimate"].to_dict(),
        "mcse": table["mcse"].to_dict(),
        "sd": table["std_error"].to_dict(),
        "processes": res.info["details"].get("processes"),
        "load_avg": os.getloadavg()[0],  # the machine is shared: context for the times
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def run_subprocess(method, n_rows, draws, tune, chains, per_level=10) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--one",
        method,
        str(n_rows),
        "--draws",
        str(draws),
        "--tune",
        str(tune),
        "--chains",
        str(chains),
        "--per-level",
        str(per_level),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rec = json.loads(out.strip().splitlines()[-1])
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps(rec) + "\n")
    return rec


def table(records: list[dict]) -> str:
    rows = [
        "| method | rows | levels f x m | wall s | sample s | peak MB | min ESS | "
        "min ESS/s | ESS/s x rows | worst |",
        "|---" * 10 + "|",
    ]
    for r in records:
        rows.append(
            f"| {r['method']} | {r['rows']:,} | {r['levels'][0]:,} x {r['levels'][1]:,} | "
            f"{r['wall_s']:.0f} | {r['sample_s']:.0f} | {r['peak_mb']:.0f} | "
            f"{r['min_ess_bulk']:.0f} | {r['min_ess_per_s']:.2f} | "
            f"{r['min_ess_per_s_x_rows']:.3g} | {r['worst']} |"
        )
    return "\n".join(rows)


#: |mean_gibbs - mean_nuts| < Z sqrt(mcse_g^2 + mcse_n^2): two-sided level 6.3e-5 per
#: parameter, 2.5e-4 over the four (Bonferroni), if the MCSEs are right
Z = 4.0


def compare(rows: int) -> str:
    """Posterior means of the latest Gibbs and NUTS records at ``rows``, within MC error?"""
    recs = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    last = {r["method"]: r for r in recs if r["rows"] == rows}
    g, n = last["gibbs"], last["nuts"]
    out = [f"rows {rows:,}: Gibbs vs NUTS, bound = {Z:g} x combined MCSE"]
    ok = True
    for p in PARAMETERS:
        diff = g["mean"][p] - n["mean"][p]
        bound = Z * float(np.hypot(g["mcse"][p], n["mcse"][p]))
        ok &= abs(diff) < bound
        out.append(
            f"  {p:10s} gibbs {g['mean'][p]:+.4f} nuts {n['mean'][p]:+.4f} "
            f"diff {diff:+.4f} bound {bound:.4f} {'ok' if abs(diff) < bound else 'DIFFERS'}"
        )
    out.append(
        f"  min ESS/s: gibbs {g['min_ess_per_s']:.2f} ({g['worst']}), "
        f"nuts {n['min_ess_per_s']:.2f} ({n['worst']}); all within MC error: {ok}"
    )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "ROWS"))
    ap.add_argument("--nuts", type=int, nargs="*", default=None, help="NUTS at these sizes")
    ap.add_argument("--sizes", type=int, nargs="*", default=SIZES)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=300)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--per-level", type=int, default=10, help="rows per level of f")
    ap.add_argument("--compare", type=int, default=None, help="Gibbs vs NUTS at ROWS")
    args = ap.parse_args()
    if args.compare:
        print(compare(args.compare))
        return
    if args.one:
        rec = run_one(
            args.one[0], int(args.one[1]), args.draws, args.tune, args.chains, args.per_level
        )
        print(json.dumps(rec))
        return
    records = []
    if args.nuts is not None:
        for n in args.nuts:
            records.append(
                run_subprocess("nuts", n, args.draws, args.tune, args.chains, args.per_level)
            )
            print(table(records[-1:]), flush=True)
    else:
        for n in args.sizes:
            records.append(
                run_subprocess("gibbs", n, args.draws, args.tune, args.chains, args.per_level)
            )
            print(table(records[-1:]), flush=True)
    print(table(records))


if __name__ == "__main__":
    main()
