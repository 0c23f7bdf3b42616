"""Design bias of the model-assisted EBP (Jiang & Lahiri 2006) against the plain EBP under
informative sampling and a failed model.

A fixed finite population of 20 areas of 1000 units: ``x ~ N(0, 1)``, a binary ``y`` with
``P(y = 1) = expit(a_i - 1 + 1.5 x^2)`` (quadratic in ``x``, area effects from a skewed
law), so the fitted logistic model ``y ~ x + (1|area)`` fails. In each area ``n`` units are
drawn with replacement with probability proportional to ``1 + 3 y`` (informative: the
successes are over-sampled); the survey weight of a draw is ``1 / (n p_ij)``. Per
repeated sample: the fit (Laplace), the plain EBP of each area's mean (``ebp(by="level")``,
``quantity="mean"``), the MEBP (:func:`~bayesglmm.frequentist.ebp.design_consistent.mebp`)
and the direct Hajek estimator, against the population area mean. Printed per area
sample size: the design bias averaged over areas (signed) and its root mean square over
areas, the MSE averaged over areas, each with its Monte Carlo standard error over the
repeated samples, and the MEBP's MSPE estimate and interval coverage.
Run: nice -n 10 python benchmarks/bench_mebp.py [n_rep]  (writes results/mebp.txt)
"""

from __future__ import annotations

import pathlib
import sys
import time
import warnings

import numpy as np
import pandas as pd
from scipy import special

import bayesglmm as bg
from bayesglmm.frequentist.ebp import ebp
from bayesglmm.frequentist.ebp.design_consistent import mebp

AREAS, SIZE = 20, 1000


def population(seed: int = 7):
    rng = np.random.default_rng(seed)
    area = np.repeat(np.arange(AREAS), SIZE)
    x = rng.normal(size=area.size)
    a = rng.gamma(2.0, 0.5, AREAS) - 1.0  # skewed area effects
    y = rng.binomial(1, special.expit(a[area] - 1.0 + 1.5 * x**2))
    return pd.DataFrame({"area": area, "x": x, "y": y})


def draw(pop: pd.DataFrame, n: int, rng) -> pd.DataFrame:
    """``n`` draws per area with replacement, probability proportional to ``1 + 3 y``."""
    parts = []
    for _, block in pop.groupby("area", sort=True):
        size = 1.0 + 3.0 * block["y"].to_numpy()
        p = size / size.sum()
        pick = rng.choice(len(block), size=n, replace=True, p=p)
        s = block.iloc[pick].copy()
        s["w"] = 1.0 / (n * p[pick])
        parts.append(s)
    out = pd.concat(parts, ignore_index=True)
    out["area"] = out["area"].map(lambda a: f"a{a:02d}")
    return out


def one(pop, truth, n, rng):
    sample = draw(pop, n, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bg.GLMM("y ~ x + (1|area)", sample, family="binomial").fit(method="laplace")
    plain = ebp(fit, by="level", mspe="g1g2")
    plain = plain[plain["quantity"] == "mean"].set_index("level")["estimate"]
    m = mebp(fit, "w").set_index("level")
    idx = m.index
    t = truth.reindex(idx).to_numpy()
    covered = (m["lower"] <= t) & (t <= m["upper"])
    return {
        "ebp": plain.reindex(idx).to_numpy() - t,
        "mebp": m["estimate"].to_numpy() - t,
        "direct": m["direct"].to_numpy() - t,
        "mspe": m["mspe"].to_numpy(),
        "cover": covered.to_numpy(float),
    }


def main(n_rep: int = 200) -> str:
    pop = population()
    truth = pop.groupby("area")["y"].mean()
    truth.index = [f"a{a:02d}" for a in truth.index]
    lines = [
        f"population: {AREAS} areas x {SIZE} units, P(y=1) = expit(a_i - 1 + 1.5 x^2); fitted "
        "y ~ x + (1|area) (logistic, Laplace)",
        "sampling: n per area with replacement, prob. proportional to 1 + 3y (informative); "
        f"{n_rep} repeated samples per n",
        "bias = mean over areas of the design bias E_p(est) - Ybar_i; rms bias = sqrt(mean over "
        "areas of bias_i^2); mse = mean over areas of E_p(est - Ybar_i)^2; (MC se)",
        "",
        f"{'n':>4} {'estimator':>8} {'bias':>17} {'rms bias':>17} {'mse':>19}",
    ]
    for n in (5, 20, 80, 320):
        rng = np.random.default_rng(1000 + n)
        t0 = time.time()
        reps = [one(pop, truth, n, rng) for _ in range(n_rep)]
        sec = (time.time() - t0) / n_rep
        for name in ("ebp", "mebp", "direct"):
            e = np.array([r[name] for r in reps])  # reps x areas
            bias_i = e.mean(0)
            bias, bias_se = bias_i.mean(), e.mean(1).std(ddof=1) / np.sqrt(n_rep)
            # rms bias: its MC se by the delta method from the per-area bias se's
            se_i = e.std(0, ddof=1) / np.sqrt(n_rep)
            rms = np.sqrt((bias_i**2).mean())
            rms_se = np.sqrt(((bias_i * se_i) ** 2).sum()) / (AREAS * max(rms, 1e-12))
            sq = (e**2).mean(1)
            mse, mse_se = sq.mean(), sq.std(ddof=1) / np.sqrt(n_rep)
            lines.append(
                f"{n:>4} {name:>8} {bias:+9.4f} ({bias_se:.4f}) {rms:8.4f} ({rms_se:.4f}) "
                f"{mse:9.5f} ({mse_se:.5f})"
            )
        mspe = np.array([r["mspe"] for r in reps]).mean()
        cover = np.array([r["cover"] for r in reps]).mean()
        lines.append(
            f"{n:>4} mebp: mean MSPE estimate {mspe:.5f}, 95% interval coverage {cover:.3f}; "
            f"{sec:.2f} s per sample"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    text = main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
    print(text)
    out = pathlib.Path(__file__).parent / "results" / "mebp.txt"
    out.write_text(text + "\n")
