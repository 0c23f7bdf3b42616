"""Monte Carlo maximum likelihood on salamander: seconds to the stopping rule and Monte Carlo
size reached, per method and E-step, each in a cold process.

    python benchmarks/bench_mcem.py            # all rows; figures to results/mcem_estep.txt
    python benchmarks/bench_mcem.py mcem:importance:booth_hobert
    python benchmarks/bench_mcem.py mcem:gibbs:booth_hobert:2   # a row with random_seed=2
    python benchmarks/bench_mcem.py gibbs        # the Gibbs E-step over seeds 1..5
    python benchmarks/bench_mcem.py crossed      # the 10,000-row crossed data, MH MCEM

Measured 30 Nov 2026 on the shared 2-core machine (load 6-12), seconds to the stopping rule
/ cold-process total / final m: MH + Booth-Hobert 1.6 / 5.6 / 629; MH + ascent 10.8 / 17.7 /
3193; importance + Booth-Hobert 13.7 / 23.7 / 8362; importance + ascent 23.5 / 30.0 / 14277;
MCNR (MH) 30.3 / 42.1 / 26426; SML 18.0 / 25.6 / 10000 (biased: RW 0.08, var 1.95 / 1.63).
Crossed 10,000 rows, 2,000 effects, MH MCEM: 66 s to the rule (9 iterations, m = 472), 124 s
in all (Louis' information and the likelihood at the estimate take the rest).

The Gibbs E-step (``e_step="gibbs"``, Polya-Gamma block Gibbs) rows: see
results/mcem_estep.txt (all rows measured in one run, side by side). Its cold-process total
includes importing PyMC (the Polya-Gamma draws are the Gibbs steps' own function).

Peers (issue 9): NIMBLE's ascent-based MCEM 51 s to 262 s on salamander, R's ``glmm``
813 s; target for bayesglmm's MCEM: under 10 s from a cold process on 2 cores.
Rejection sampling is listed to show its refusal: with 120 crossed effects its acceptance
rate is about 1e-50.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROWS = [
    "mcem:importance:booth_hobert",
    "mcem:importance:ascent",
    "mcem:mh:booth_hobert",
    "mcem:mh:ascent",
    "mcem:rejection:booth_hobert",
    "mcem:gibbs:booth_hobert",
    "mcem:gibbs:ascent",
    "mcnr:importance:-",
    "mcnr:mh:-",
    "mcnr:gibbs:-",
    "sml:importance:-",
]
#: the Gibbs E-step over seeds (its agreement with Booth & Hobert is not one seed's luck)
GIBBS_SEEDS = [f"mcem:gibbs:booth_hobert:{s}" for s in range(1, 6)]
#: Booth & Hobert (1999), JRSS-B 61, MCEM: RR RW WR WW var(Female) var(Male)
#: (bayesglmm/data/models/salamander.toml)
BOOTH_HOBERT = [1.03, 0.32, -1.95, 0.99, 1.40, 1.25]
RESULTS = Path(__file__).parent / "results" / "mcem_estep.txt"

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import bayesglmm as bg
method, e_step, rule, seed = sys.argv[1:5]
if len(sys.argv) > 5:  # the 10,000-row crossed benchmark (benchmarks/crossed_data.py)
    sys.path.insert(0, sys.argv[5])
    from crossed_data import FORMULA, make_crossed

    model = bg.GLMM(FORMULA, make_crossed(), family="binomial")
else:
    data = bg.datasets.load("salamander")
    model = bg.GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", data, family="binomial")
kw = {"random_seed": int(seed), "progressbar": False}
if method != "sml":
    kw["e_step"] = e_step
if rule != "-":
    kw["mc_rule"] = rule
try:
    fit = model.fit(method=method, **kw)
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - t0}))
    sys.exit()
d = fit.convergence["details"]
out = {
    "cold_total": time.perf_counter() - t0,
    "to_stop": fit.timing["start"] + fit.timing["iterations"],
    "fit_total": fit.timing["total"],
    "iterations": fit.convergence["iterations"],
    "final_m": d.get("final_mc_size"),
    "final_ess": (d.get("history") or [{}])[-1].get("ess"),
    "converged": fit.converged,
    "estimates": [round(v, 3) for v in fit.table["estimate"].tolist()],
    "mcse_max": float(fit.table["mcse"].max()),
    "loglik": fit.loglik,
    "loglik_mcse": fit.info["details"]["loglik_mcse"],
}
print(json.dumps(out))
"""


def main(rows: list[str], crossed: bool = False, write: Path | None = None) -> None:
    lines = [
        f"{'method:e_step:rule[:seed]':32s} {'to stop':>8s} {'cold':>7s} {'iters':>5s} "
        f"{'final m':>8s} {'ess':>7s}  estimates (RR RW WR WW vF vM)  max |est - B&H|"
    ]
    print(lines[0], flush=True)
    for row in rows:
        method, e_step, rule, *seed = row.split(":")
        t0 = time.perf_counter()
        res = subprocess.run(
            [sys.executable, "-c", CHILD, method, e_step, rule, seed[0] if seed else "1"]
            + ([str(Path(__file__).parent)] if crossed else []),
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        try:
            out = json.loads(res.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            line = f"{row:32s} failed: {res.stderr.strip().splitlines()[-1:]}"
        else:
            if "error" in out:
                line = f"{row:32s} refused after {out['seconds']:.1f} s: {out['error'][:110]}"
            else:
                ess = out["final_ess"]
                gap = max(abs(a - b) for a, b in zip(out["estimates"], BOOTH_HOBERT, strict=False))
                line = (
                    f"{row:32s} {out['to_stop']:8.1f} {wall:7.1f} {out['iterations']:5d} "
                    f"{out['final_m']:8d} {ess if ess is not None else float('nan'):7.0f}  "
                    f"{out['estimates']}  {gap:.3f}  mcse<={out['mcse_max']:.3f} "
                    f"logLik {out['loglik']:.2f} ({out['loglik_mcse']:.2f})"
                )
        print(line, flush=True)
        lines.append(line)
    tail = f"published: Booth & Hobert {' '.join(map(str, BOOTH_HOBERT))}; NIMBLE ascent 51-262 s"
    print(tail)
    lines.append(tail)
    if write is not None:
        head = (
            "# benchmarks/bench_mcem.py: salamander, Mate ~ 0 + Cross + (1|Female) + (1|Male),\n"
            "# each row a cold process (nice -n 10, shared 2-core machine), random_seed=1 unless\n"
            "# the row names one. 'to stop': seconds from the start of the fit to the stopping\n"
            "# rule; 'cold': the whole process (imports, Louis information, likelihood); 'final\n"
            "# m': Monte Carlo size at the last iteration; 'ess': its effective size (Kish for\n"
            "# importance, chain-based for gibbs, m for independent draws).\n"
            f"# measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
        )
        write.write_text(head + "\n".join(lines) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["crossed"]:
        main(args[1:] or ["mcem:mh:booth_hobert"], crossed=True)
    elif args[:1] == ["gibbs"]:
        main(GIBBS_SEEDS)
    else:
        main(args or ROWS + GIBBS_SEEDS[1:], write=None if args else RESULTS)
