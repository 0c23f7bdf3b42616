"""Size of the fixed-effect F tests of a linear mixed model under the null.

Few groups (8, of 3 to 8 rows) and a factor that varies between groups: the Wald chi-square
(no df correction) rejects too often, Satterthwaite and Kenward-Roger denominator df
(``bg.anova(fit, ddf=...)``, lmerTest's numbers) bring the size back near 5 %. Prints the
rejection rate at 5 % with its Monte Carlo standard error per test, and the seconds per
table. Run: python benchmarks/bench_anova_ddf.py [n_rep]
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd

import bayesglmm as bg
from bayesglmm.inference.anova import anova


def design(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 9, size=8)
    g = np.repeat(np.arange(8), sizes)
    level = np.array(["a", "b", "c", "a", "b", "c", "a", "b"])[g]  # a between-group factor
    return pd.DataFrame({"y": 0.0, "f": level, "x": rng.normal(size=g.size), "g": g.astype(str)})


def main(n_rep: int = 300, seed: int = 2) -> pd.DataFrame:
    data = design()
    formula = "y ~ f + x + (1|g)"
    truth = {"Intercept": 1.0, "f[b]": 0.0, "f[c]": 0.0, "x": 0.5}
    rows = []
    seconds = {"satterthwaite": 0.0, "kenward-roger": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(n_rep):
            sim = bg.simulate(formula, data, truth, {"g": 1.0}, family="gaussian",
                              dispersion=1.0, random_seed=seed * 100_000 + r)  # fmt: skip
            fit = bg.GLMM(formula, sim, family="gaussian").fit(method="lmm")
            row = {"wald": anova(fit, test="wald").loc["f", "p_value"]}
            for ddf in seconds:
                t0 = time.perf_counter()
                row[ddf] = anova(fit, ddf=ddf).loc["f", "p_value"]
                seconds[ddf] += time.perf_counter() - t0
            rows.append(row)
    p = pd.DataFrame(rows)
    size = (p < 0.05).mean()
    out = pd.DataFrame(
        {
            "size_at_5pct": size,
            "mc_error": np.sqrt(size * (1 - size) / n_rep),
            "seconds_per_table": pd.Series({k: v / n_rep for k, v in seconds.items()}),
        }
    )
    print(f"{n_rep} data sets, {len(data)} rows, 8 groups; test of f (2 df), true value 0")
    print(out.to_string(float_format=lambda v: f"{v:.4f}"))
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
