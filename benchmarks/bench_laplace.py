"""Speed and memory of the Laplace fit (method="laplace"), beside the peers.

Run: ``python benchmarks/bench_laplace.py [--quick]``. Prints

1. the crossed logistic model ``y ~ x + (1|a) + (1|b)`` on 10,000 Bernoulli rows with
   1,000 x 1,000 levels (:func:`crossed_data.make_crossed`), wall and CPU time of
   ``GLMM(...).fit("laplace")`` (design included), and the estimates beside glmmTMB's on
   exactly the same rows;
2. salamander, in-process (median of repeated fits after one warm-up fit);
3. peak memory (``tracemalloc``: Python and NumPy allocations during design + fit) at
   10,000 and 100,000 rows (1,000 x 1,000 levels), and at 100,000 rows with 2,000 x 2,000
   levels, to show how it grows with rows and with levels.

Peers measured on this kind of machine, same crossed data (issue 3): lme4 ``glmer`` 139 s,
glmmTMB 32 s, mixedlm 95 s; salamander ``glmer`` 0.31 s.

glmmTMB reference (R 4.2.2, glmmTMB 1.1.5, Debian package r-cran-glmmtmb), on
``python benchmarks/crossed_data.py crossed_10000.csv``::

    d <- read.csv("crossed_10000.csv"); d$a <- factor(d$a); d$b <- factor(d$b)
    f <- glmmTMB(y ~ x + (1|a) + (1|b), data = d, family = binomial)
    fixef(f)$cond        # -0.4103663240  0.9491847978
    VarCorr(f)           # a 0.4366258148, b 0.3603354638 (variances)
    logLik(f)            # -6533.15176278
    # system.time: 18.0 s user, 25.4 s elapsed (OPENBLAS_NUM_THREADS=1, shared machine)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crossed_data import FORMULA, make_crossed  # noqa: E402

from bayesglmm import GLMM, datasets  # noqa: E402

GLMMTMB = {
    "Intercept": -0.4103663240,
    "x": 0.9491847978,
    "var(a)": 0.4366258148,
    "var(b)": 0.3603354638,
    "logLik": -6533.15176278,
}
PEERS_CROSSED = {"lme4 glmer": 139.0, "glmmTMB": 32.0, "mixedlm": 95.0}
PEER_SALAMANDER = 0.31


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def crossed_speed(repeats: int) -> None:
    data = make_crossed()
    walls, cpus = [], []
    fit = None
    for _ in range(repeats):
        fit, wall, cpu = _timed(lambda: GLMM(FORMULA, data).fit("laplace"))
        walls.append(wall)
        cpus.append(cpu)
    print("crossed logistic, 10,000 rows, 1,000 x 1,000 levels")
    print(
        f"  Laplace: wall {min(walls):.2f} s (min of {repeats}; median "
        f"{statistics.median(walls):.2f} s), CPU {min(cpus):.2f} s; target < 3 s"
    )
    for name, sec in PEERS_CROSSED.items():
        print(f"  {name:<12} {sec:6.1f} s   ({sec / min(walls):.0f}x slower)")
    c = fit.convergence
    print(
        f"  optimizer: {c['iterations']} quasi-Newton iterations, {c['evaluations']} "
        f"deviance evaluations, {c['pirls_iterations']} PIRLS iterations"
    )
    ours = {
        "Intercept": fit.fixed_effects["Intercept"],
        "x": fit.fixed_effects["x"],
        "var(a)": fit.variance_components["a"],
        "var(b)": fit.variance_components["b"],
        "logLik": fit.loglik,
    }
    print(f"  {'':<10}{'bayesglmm':>14}{'glmmTMB':>14}{'difference':>12}")
    for k, v in ours.items():
        print(f"  {k:<10}{v:>14.7f}{GLMMTMB[k]:>14.7f}{v - GLMMTMB[k]:>12.2e}")
    worst = max(abs(ours[k] - GLMMTMB[k]) for k in ours)
    print(f"  largest difference {worst:.1e} (target 1e-3)")


def salamander_speed(repeats: int) -> None:
    sal = datasets.load("salamander")
    model = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", sal)
    model.fit("laplace")  # warm-up: imports, caches
    walls = [_timed(lambda: model.fit("laplace"))[1] for _ in range(repeats)]
    with_design = [
        _timed(lambda: GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", sal).fit("laplace"))[1]
        for _ in range(repeats)
    ]
    print("salamander, in-process")
    print(
        f"  Laplace fit: median {statistics.median(walls) * 1e3:.0f} ms over {repeats} "
        f"(with the formula/design step: {statistics.median(with_design) * 1e3:.0f} ms); "
        f"lme4 {PEER_SALAMANDER * 1e3:.0f} ms; target < 300 ms"
    )


def peak_memory(n_rows: int, n_levels: int) -> tuple[float, float]:
    data = make_crossed(n_rows, n_levels, n_levels, seed=7)
    tracemalloc.start()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GLMM(FORMULA, data).fit("laplace")
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6, wall


def memory() -> None:
    print("peak memory of design + Laplace fit (tracemalloc)")
    print(f"  {'rows':>8} {'levels':>13} {'peak MB':>9} {'MB per 1k rows':>15} {'wall s':>7}")
    for n_rows, n_levels in [(10_000, 1_000), (100_000, 1_000), (100_000, 2_000)]:
        peak, wall = peak_memory(n_rows, n_levels)
        print(
            f"  {n_rows:>8} {f'{n_levels} x {n_levels}':>13} {peak:>9.1f} "
            f"{peak / n_rows * 1e3:>15.2f} {wall:>7.1f}"
        )
    print("  (the dense Schur complement of the second factor, and its inverse for the")
    print("   gradient, take 8 * levels^2 bytes each: 8 MB at 1,000 levels, 32 MB at 2,000)")


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    os.environ.setdefault(
        "BAYESGLMM_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    crossed_speed(1 if quick else 3)
    print()
    salamander_speed(5 if quick else 20)
    print()
    if not quick:
        memory()
