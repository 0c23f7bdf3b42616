"""Studies at scale: many short Laplace fits on a two-worker Dask cluster and on the local
process pool, against the CPU time the fits themselves take.

Each task simulates a Poisson GLMM ``y ~ x + (1|g)`` on 100 rows (10 groups of 10) from its
own seed and fits it by Laplace (about 0.1 s of CPU). The figures:

* Dask (a ``LocalCluster`` of two single-threaded worker processes, started and warmed up
  before timing): wall time of ``run_study`` over the tasks, their summed CPU time (each
  task's own thread CPU) and the ratio wall / (CPU / 2) (1 = no overhead and two busy
  workers), the per-task overhead ``(2 wall - CPU) / n``, and the same with the tasks'
  own wall seconds in place of CPU (which leaves out the machine's other load), one task
  per submission (``batch_size=1``) and in automatic batches (``batch_size=None``).
* The local pool: a first ``run_study`` with ``max_workers=2`` that starts the pool (cold),
  a second one in the same process that reuses it, and the tasks one after another in this
  process (``max_workers=1``); and a four-task study cold and warm (the start-up cost).
* That every run gives bitwise the same estimates.

The load of the machine (``uptime``) is printed before and after each part: other work on
the machine slows the tasks (their wall seconds exceed their CPU seconds), which the
ratios against the tasks' own seconds leave out.

    python benchmarks/bench_study_scale.py [--n 1000] [--parts dask,pool]

Writes ``benchmarks/results/study_scale.txt``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayesglmm.analysis.study import Task, run_study
from bayesglmm.analysis.study.pool import pool_pids, shutdown_pools

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 2026
FORMULA = "y ~ x + (1|g)"


def design() -> pd.DataFrame:
    return pd.DataFrame(
        {"g": np.repeat(np.arange(10), 10).astype(str), "x": np.linspace(-1, 1, 100), "y": 0}
    )


def fit_one(design: pd.DataFrame, seed: int) -> dict:
    """Simulate and fit by Laplace; the estimates and this thread's CPU seconds."""
    import warnings

    import bayesglmm as bg

    start = time.thread_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = bg.simulate(
            FORMULA, design, fixed_effects={"Intercept": 0.5, "x": 0.3},
            variance_components={"g": 0.5}, family="poisson", random_seed=seed,
        )  # fmt: skip
        fit = bg.GLMM(FORMULA, data, family="poisson").fit("laplace")
    return {"cpu": time.thread_time() - start, "estimate": fit.table["estimate"].to_numpy()}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)


def timed(tasks, **where):
    start = time.perf_counter()
    res = run_study(tasks, random_seed=SEED, progressbar=False, **where)
    wall = time.perf_counter() - start
    assert not res.failed, res.table.loc[res.table["status"] == "failed", "error"].iloc[0]
    return res, wall


def figures(label: str, res, wall: float, workers: int) -> dict:
    n = len(res.table)
    cpu = sum(v["cpu"] for v in res.results.values())
    seconds = float(res.table["seconds"].sum())
    return {
        "run": label,
        "tasks": n,
        "wall_s": wall,
        "task_cpu_s": cpu,
        "task_wall_s": seconds,
        "wall/(cpu/w)": wall / (cpu / workers),
        "overhead_ms": (workers * wall - cpu) / n * 1e3,
        "wall/(taskwall/w)": wall / (seconds / workers),
        "overhead_vs_taskwall_ms": (workers * wall - seconds) / n * 1e3,
    }


def estimates(res) -> np.ndarray:
    return np.stack([v["estimate"] for v in res.results.values()])


def run_dask(tasks, out: Report, rows: list, ests: dict) -> None:
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        warm = tasks[:4]
        run_study(warm, client=client, random_seed=SEED + 1, progressbar=False)
        out(f"dask: cluster start and warm-up (4 tasks): {time.perf_counter() - start:.1f} s")
        for size in (1, None):
            out(f"  {uptime()}")
            res, wall = timed(tasks, client=client, batch_size=size)
            label = f"dask batch_size={size}"
            rows.append(figures(label, res, wall, 2))
            ests[label] = estimates(res)
            out(f"  {label}: wall {wall:.1f} s")
    out(f"  {uptime()}")


def run_pool(tasks, out: Report, rows: list, ests: dict) -> None:
    shutdown_pools()  # a cold start
    small = tasks[:4]
    out(f"  {uptime()}")
    for label in ("cold", "warm"):
        _, wall = timed(small, max_workers=2)
        out(f"pool: a 4-task study, {label}: {wall:.2f} s")
    shutdown_pools()
    first_pids = None
    for label in ("pool max_workers=2, first call (cold)", "pool max_workers=2, second call"):
        out(f"  {uptime()}")
        res, wall = timed(tasks, max_workers=2)
        pids = pool_pids(2)
        first_pids = first_pids or pids
        rows.append(figures(label, res, wall, 2))
        ests[label] = estimates(res)
        out(f"  {label}: wall {wall:.1f} s, worker pids {pids} (first call: {first_pids})")
    fit_one(design(), 0)  # this process's imports and first compiles: not timed
    out(f"  {uptime()}")
    res, wall = timed(tasks, max_workers=1)
    rows.append(figures("in-process max_workers=1", res, wall, 1))
    ests["in-process max_workers=1"] = estimates(res)
    out(f"  in-process: wall {wall:.1f} s")
    out(f"  {uptime()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--parts", default="dask,pool")
    parser.add_argument("--out", default=str(RESULTS / "study_scale.txt"))
    args = parser.parse_args()
    out = Report()
    out(f"bench_study_scale.py --n {args.n} --parts {args.parts}  ({time.strftime('%F %T')})")
    out(f"CPUs: {os.cpu_count()}; at start: {uptime()}")
    out(f"task: simulate + Laplace fit, Poisson {FORMULA}, 100 rows, 10 groups")
    d = design()
    tasks = [Task(f"rep={i}", fit_one, {"design": d}) for i in range(args.n)]
    rows: list[dict] = []
    ests: dict[str, np.ndarray] = {}
    parts = args.parts.split(",")
    if "dask" in parts:
        run_dask(tasks, out, rows, ests)
    if "pool" in parts:
        run_pool(tasks, out, rows, ests)
    table = pd.DataFrame(rows).set_index("run")
    out()
    out(table.to_string(float_format=lambda x: f"{x:.3f}"))
    out()
    first = next(iter(ests.values()))
    same = all(np.array_equal(first, e) for e in ests.values())
    out(f"estimates bitwise equal across all {len(ests)} runs: {same}")
    Path(args.out).write_text("\n".join(out.lines) + "\n")


if __name__ == "__main__":
    main()
