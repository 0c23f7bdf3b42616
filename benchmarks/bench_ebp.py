"""Salamander females' mating probabilities: empirical best predictors (Jiang & Lahiri
2001) at the Laplace estimates with their MSPE, beside the plug-in at the Laplace
conditional modes and the NUTS posterior means (issue 10).

zeta_i = expit(beta_RR + u_i): female i's probability of mating with a Rough Butt male of
average effect (Cross = RR, the Male effect left out). Run: python benchmarks/bench_ebp.py
"""

from __future__ import annotations

import time
import warnings

import pandas as pd

import bayesglmm as bg


def main(n_females: int = 12) -> pd.DataFrame:
    data = bg.datasets.load("salamander")
    model = bg.GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        laplace = model.fit(method="laplace")
        t0 = time.perf_counter()
        nuts = model.fit(method="nuts", draws=1000, chains=4, random_seed=1, progressbar=False)
        t_nuts = time.perf_counter() - t0
    rows = data.drop_duplicates("Female").assign(Cross="RR").head(n_females)
    t0 = time.perf_counter()
    e = bg.ebp(laplace, rows, re_form="~(1|Female)", n_draws=20000, random_seed=1)
    t_ebp = time.perf_counter() - t0
    post = nuts.predict(rows, re_form="~(1|Female)", interval="confidence")
    table = pd.DataFrame(
        {
            "Female": rows["Female"].to_numpy(),
            "EBP": e["estimate"].to_numpy(),
            "sqrt(MSPE)": (e["mspe"] ** 0.5).to_numpy(),
            "sqrt(g1)": (e["g1"] ** 0.5).to_numpy(),
            "mcse": e["mcse"].to_numpy(),
            "Laplace mode plug-in": e["conditional_mode"].to_numpy(),
            "NUTS mean": post["estimate"].to_numpy(),
            "NUTS sd": post["std_error"].to_numpy(),
        }
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(
        f"EBP: importance sampling, ESS {e.attrs['ess']:.0f} of 20000, {t_ebp:.1f} s; "
        f"NUTS {t_nuts:.1f} s"
    )
    return table


if __name__ == "__main__":
    main()
