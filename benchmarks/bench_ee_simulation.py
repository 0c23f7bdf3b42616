"""Simulation study of Jiang's estimators (issue 10): bias of the first step shrinks with
the number of groups, and the second step lowers the MSE of the variance components.

Designs (mixed logistic, binary rows):

* ``jz``: Jiang & Zhang's (2001) kind of design as we recall it (the paper's text was not
  at hand): ``logit p_ij = mu + a_i``, ``mu = 0.2``, ``sd(a) = 1``, half the clusters of
  size 2 and half of size 6 (m = 50, 100, 200 clusters);
* ``one``: ``b0 + b1 x + a_i``, ``(b0, b1) = (-0.5, 0.8)``, sd 1, 5 rows a cluster (balanced);
* ``crossed``: ``+ a_i + c_j``, sds (1, 0.7), one row per cell of an m x m table.

Every replicate is one public ``fit(method="ee2")``: the first-step estimate is
``details["steps"][0]["theta"]``, the second-step one the fit's estimate; when the second
step has no root within 3 first-step SEs ee2 returns the first step and says so
(``root_found`` False, counted as "fell back"). With one factor u, U and V are exact
(Gauss-Hermite); crossed designs use ``--n-sim`` common-random-number draws (default 500).

    python benchmarks/bench_ee_simulation.py [--design jz one crossed] [--reps 200]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from bayesglmm import GLMM

SETTINGS = {
    "jz": {"sizes": [50, 100, 200], "sds": (1.0,)},
    "one": {"sizes": [25, 50, 100], "sds": (1.0,)},
    "crossed": {"sizes": [10, 20, 30], "sds": (1.0, 0.7)},
}


def simulate(design: str, m: int, rng) -> tuple[str, pd.DataFrame]:
    if design == "jz":
        a = np.repeat(np.arange(m), np.where(np.arange(m) < m // 2, 2, 6))
        eta = 0.2 + rng.normal(size=m)[a]
        df, formula = pd.DataFrame({"a": a}), "y ~ 1 + (1|a)"
    elif design == "one":
        a = np.repeat(np.arange(m), 5)
        x = rng.normal(size=a.size)
        eta = -0.5 + 0.8 * x + rng.normal(size=m)[a]
        df, formula = pd.DataFrame({"x": x, "a": a}), "y ~ x + (1|a)"
    else:
        a, b = (g.ravel() for g in np.meshgrid(np.arange(m), np.arange(m), indexing="ij"))
        x = rng.normal(size=a.size)
        eta = -0.5 + 0.8 * x + rng.normal(size=m)[a] + 0.7 * rng.normal(size=m)[b]
        df, formula = pd.DataFrame({"x": x, "a": a, "b": b}), "y ~ x + (1|a) + (1|b)"
    df["y"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return formula, df


def one_replicate(design: str, m: int, seed: int, n_sim: int) -> np.ndarray:
    """Standard deviations (ee, then ee2) of one simulated data set, and 1 if ee2 fell
    back to the first step."""
    formula, df = simulate(design, m, np.random.default_rng(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # counted below, never silent in the result
        fit = GLMM(formula, df).fit(method="ee2", random_seed=seed, n_sim=n_sim)
    steps = fit.info["details"]["steps"]
    R = len(SETTINGS[design]["sds"])
    sd1 = np.array(steps[0]["theta"][-R:])
    sd2 = np.sqrt(fit.variance_components.to_numpy()[-R:])
    fell_back = not steps[1]["root_found"]
    said = any("first-step" in s for s in fit.convergence["messages"])
    assert fell_back == said, "a fallback must be reported in convergence messages"
    return np.r_[sd1, sd2, float(fell_back)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--design", choices=list(SETTINGS), nargs="+", default=list(SETTINGS))
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--n-sim", type=int, default=500)
    args = ap.parse_args()
    rows = []
    for design in args.design:
        sds = np.array(SETTINGS[design]["sds"])
        R = sds.size
        for m in SETTINGS[design]["sizes"]:
            t0 = time.process_time()
            est = np.array(
                [one_replicate(design, m, 1000 * m + r, args.n_sim) for r in range(args.reps)]
            )
            cpu = time.process_time() - t0
            for k in range(R):
                s1, s2 = est[:, k], est[:, R + k]
                v1, v2, tv = s1**2, s2**2, sds[k] ** 2
                mse1, mse2 = np.mean((v1 - tv) ** 2), np.mean((v2 - tv) ** 2)
                rows.append(
                    {
                        "design": design,
                        "groups": m,
                        "variance": f"var{k + 1}={tv:.2f}",
                        "bias ee": v1.mean() - tv,
                        "bias ee2": v2.mean() - tv,
                        "mse ee": mse1,
                        "mse ee2": mse2,
                        "mse red %": 100 * (1 - mse2 / mse1),
                        "sd mse red %": 100
                        * (1 - np.mean((s2 - sds[k]) ** 2) / np.mean((s1 - sds[k]) ** 2)),
                        "fell back": int(est[:, -1].sum()),
                        "cpu s": cpu,
                    }
                )
            print(pd.DataFrame(rows).tail(R).to_string(index=False, float_format="%.4f"))
            print(flush=True)
    print(f"{args.reps} replicates per size; crossed: {args.n_sim} CRN draws")
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
