"""The crossed logistic benchmark data set: ``y ~ x + (1|a) + (1|b)``.

Each of ``n_rows`` Bernoulli rows draws its level of ``a`` (``n_a`` levels) and of ``b``
(``n_b`` levels) independently and uniformly, and a binary covariate ``x ~ Bernoulli(0.5)``;
the truth is intercept -0.5, slope 1.0, and variances 0.5 for ``a`` and ``b``:

.. math::

    \\operatorname{logit} P(y_i = 1) = -0.5 + 1.0\\, x_i + a_{a[i]} + b_{b[i]}, \\qquad
    a_j, b_k \\sim N(0, 0.5).

Levels are labelled ``a0001``..., so every level that occurs is kept; with 10,000 rows and
1,000 levels each, a level has 10 rows on average (a few levels may not occur). The response
is drawn by :func:`bayesglmm.simulate` with ``random_seed=seed``, so the data are a pure
function of the four arguments. ``python benchmarks/crossed_data.py out.csv`` writes the
default data set (for fitting the same rows in R).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from bayesglmm import simulate

TRUTH = {
    "fixed_effects": {"Intercept": -0.5, "x": 1.0},
    "variance_components": {"a": 0.5, "b": 0.5},
}
FORMULA = "y ~ x + (1|a) + (1|b)"
#: the scale series of issue 12: rows -> levels of each factor
SCALE_SERIES = {10_000: 1_000, 50_000: 5_000, 200_000: 20_000, 1_000_000: 50_000}


def make_crossed(
    n_rows: int = 10_000, n_a: int = 1_000, n_b: int = 1_000, seed: int = 20240601
) -> pd.DataFrame:
    """Simulate the crossed logistic benchmark data (see the module docstring)."""
    rng = np.random.default_rng(seed)
    width_a, width_b = len(str(n_a)), len(str(n_b))
    frame = pd.DataFrame(
        {
            "a": [f"a{j:0{width_a}d}" for j in rng.integers(0, n_a, n_rows)],
            "b": [f"b{j:0{width_b}d}" for j in rng.integers(0, n_b, n_rows)],
            "x": rng.integers(0, 2, n_rows),
        }
    )
    return simulate(
        FORMULA,
        frame,
        TRUTH["fixed_effects"],
        TRUTH["variance_components"],
        family="binomial",
        random_seed=seed + 1,
    )


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "crossed_10000.csv"
    make_crossed().to_csv(out, index=False)
    print(f"wrote {out}")
