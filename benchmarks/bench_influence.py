"""One-step case deletion against exact refits, by level of a grouping factor.

For each design, every level is left out in turn: the one-step estimate (one Newton step
from the full-data estimate on the case-deleted objective, with the deleted-data Hessian,
and the classical variant with the full-data Hessian) beside the exact refit by the same
method. Printed per design: the correlation of the one-step and exact changes over all
levels and parameters, the largest error relative to the level's own change
(``max_j |one - exact|_inf / |exact|_inf``), the largest absolute error, and the seconds of
the one-step (all levels) and of the refits (all levels, one process).

Designs: cbpp (binomial, 15 herds; Laplace, PQL), a simulated Poisson model with 40 groups
(Laplace, objective split by level), a simulated crossed binomial design (Laplace over the
data without each level: the deviance does not split by level), and a simulated Gaussian
LMM (REML). Run: ``nice -n 10 python benchmarks/bench_influence.py``; the figures are in
``benchmarks/results/influence.txt``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

import bayesglmm as bg
from bayesglmm.diagnostics.influence import influence


def poisson_40(seed: int = 11) -> bg.GLMM:
    rng = np.random.default_rng(seed)
    J, nj = 40, 12
    g = np.repeat(np.arange(J), nj)
    x = rng.normal(size=J * nj)
    t = rng.integers(0, 2, size=J * nj)
    eta = 0.5 + 0.3 * x - 0.4 * t + 0.6 * rng.normal(size=J)[g]
    y = rng.poisson(np.exp(eta))
    df = pd.DataFrame({"y": y, "x": x, "t": t, "g": [f"g{k:02d}" for k in g]})
    return bg.GLMM("y ~ x + t + (1|g)", df, family="poisson")


def crossed(seed: int = 12) -> bg.GLMM:
    rng = np.random.default_rng(seed)
    A, B, reps = 25, 20, 2
    a = np.repeat(np.arange(A), B * reps)
    b = np.tile(np.repeat(np.arange(B), reps), A)
    keep = rng.random(a.size) < 0.8  # unbalanced
    a, b = a[keep], b[keep]
    x = rng.normal(size=a.size)
    eta = -0.3 + 0.5 * x + 0.7 * rng.normal(size=A)[a] + 0.5 * rng.normal(size=B)[b]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    df = pd.DataFrame(
        {"y": y, "x": x, "a": [f"a{k:02d}" for k in a], "b": [f"b{k:02d}" for k in b]}
    )
    return bg.GLMM("y ~ x + (1|a) + (1|b)", df, family="binomial")


def gaussian(seed: int = 13) -> bg.GLMM:
    rng = np.random.default_rng(seed)
    J, nj = 30, 8
    g = np.repeat(np.arange(J), nj)
    x = rng.normal(size=J * nj)
    y = 1.0 + 0.5 * x + 0.8 * rng.normal(size=J)[g] + rng.normal(size=J * nj)
    df = pd.DataFrame({"y": y, "x": x, "g": [f"s{k:02d}" for k in g]})
    return bg.GLMM("y ~ x + (1|g)", df, family="gaussian")


def compare(one: pd.DataFrame, exact: pd.DataFrame) -> dict:
    err = (one - exact).abs()
    size = exact.abs().max(axis=1)
    return {
        "corr": float(np.corrcoef(one.to_numpy().ravel(), exact.to_numpy().ravel())[0, 1]),
        "max_rel": float((err.max(axis=1) / size).max()),
        "max_abs": float(err.to_numpy().max()),
    }


def run(name: str, model: bg.GLMM, method: str, group: str, **fit_options) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(method, **fit_options)
        t0 = time.perf_counter()
        res = influence(fit, group, method="both", levels="all", max_workers=1, hessian="deleted")
        t_both = time.perf_counter() - t0
        t0 = time.perf_counter()
        classic = influence(fit, group, hessian="full")
        newton = influence(fit, group, hessian="deleted")
        t_classic = time.perf_counter() - t0
    exact = res.deltas("exact")
    interior = ~res.levels["singular"].to_numpy(bool)
    rows = []
    d_exact = res.cooks_distance_exact.to_numpy()
    for label, inf, secs in (
        ("deleted H", newton, newton.details["seconds_one_step"]),
        ("full H", classic, t_classic),
    ):
        one = inf.deltas("one_step")
        c = compare(one, exact)
        d = inf.cooks_distance.to_numpy()
        ci = compare(one[interior], exact[interior]) if not interior.all() else c
        rows.append(
            {
                "design": name,
                "method": method,
                "levels": len(res.levels),
                "path": res.details["path"],
                "hessian": label,
                "corr": c["corr"],
                "max_rel": c["max_rel"],
                "max_abs": c["max_abs"],
                "corr_interior": ci["corr"],
                "singular_refits": int((~interior).sum()),
                "D_corr": float(np.corrcoef(d, d_exact)[0, 1]),
                "D_err/max": float(np.max(np.abs(d - d_exact) / d_exact.max())),
                "s_one_step": secs,
                "s_exact": res.details["seconds_exact"],
                "flagged": " ".join(inf.flagged),
                "flagged_exact": " ".join(
                    res.levels.index[res.levels["cooks_distance_exact"] > res.threshold]
                ),
            }
        )
    print(f"{name} / {method}: {t_both:.1f} s for both", flush=True)
    return rows


def main() -> pd.DataFrame:
    cbpp = bg.GLMM(
        "cbind(incidence, size - incidence) ~ period + (1|herd)", bg.datasets.load("cbpp")
    )
    rows = []
    rows += run("cbpp", cbpp, "laplace", "herd")
    rows += run("cbpp", cbpp, "pql", "herd")
    rows += run("poisson J=40", poisson_40(), "laplace", "g")
    rows += run("crossed 25x20", crossed(), "laplace", "a")
    rows += run("gaussian J=30", gaussian(), "lmm", "g")
    return pd.DataFrame(rows)


if __name__ == "__main__":
    table = main()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
