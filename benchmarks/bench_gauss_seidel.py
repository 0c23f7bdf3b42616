"""Nonlinear Gauss-Seidel joint maximization (Jiang 2000) on a large crossed logit model.

logit P(y_k = 1 | u, v) = b0 + b1 x_k + u_i(k) + v_j(k), 200,000 rows, 20,000 x 20,000
levels, sd(u) = 1, sd(v) = 0.8. Prints wall seconds, sweeps and peak memory (tracemalloc:
NumPy allocations during the fit), beside the bytes of the data themselves.

    python benchmarks/bench_gauss_seidel.py [--rows N] [--levels L]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from bayesglmm.frequentist.moments.gauss_seidel import gauss_seidel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--levels", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    n, L = args.rows, args.levels
    ui = rng.integers(0, L, n)
    vj = rng.integers(0, L, n)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    eta = -0.5 + 0.8 * x + rng.normal(size=L)[ui] + 0.8 * rng.normal(size=L)[vj]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float)
    data_bytes = y.nbytes + X.nbytes + ui.nbytes + vj.nbytes
    tracemalloc.start()
    t0 = time.perf_counter()
    fit = gauss_seidel(y, None, X, None, [ui, vj], [1.0, 0.8], tol=1e-8)
    sec = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"rows {n:,}, levels {L:,} x {L:,}")
    print(f"seconds {sec:.2f}  sweeps {fit.sweeps}  converged {fit.converged}")
    print(f"peak memory {peak / 2**20:.1f} MiB (data {data_bytes / 2**20:.1f} MiB)")
    print(f"beta {np.round(fit.beta, 4)}  objective {fit.objective:.2f}")


if __name__ == "__main__":
    main()
