"""Leave-one-female-out on salamander: integrated PSIS against exact refits, every level.

Run: ``nice -n 10 python benchmarks/bench_group_loo.py [--quick] [--out FILE]``.

The model ``Mate ~ 0 + Cross + (1|Female) + (1|Male)`` (Bernoulli logit, 360 matings,
60 females crossed with 60 males), fitted by NUTS (4 chains x 1000 draws after 1000
tuning steps, default priors, ``random_seed=2026``). For each of the 60 females:

- ``elpd_int``: PSIS over the draws of the female's *integrated* log-likelihood (her
  random intercept integrated out over ``N(0, sigma_F^2)`` by 25-node adaptive
  Gauss-Hermite quadrature, the males' effects at their draws), ``k_int`` its Pareto k,
  ``se_int`` its Monte Carlo standard error (:func:`bayesglmm.inference.group_loo.psis_mcse`);
- ``elpd_cond``, ``k_cond``: PSIS on the *conditional* log-likelihood (given the draws of
  her own effect), summed over her six rows;
- ``elpd_exact``: refit without her six rows by NUTS with the same options and priors,
  ``log mean`` over the refit's draws of the same integrated likelihood, ``se_exact`` its
  Monte Carlo standard error (:func:`bayesglmm.inference.group_loo.group_refit_elpd`; one
  task per female on :func:`bayesglmm.study.run_study`, in this process);
- ``z = (elpd_int - elpd_exact) / sqrt(se_int^2 + se_exact^2)``: about standard normal
  when the integrated PSIS estimate is right to Monte Carlo error.

Prints one row per female and the totals; ``--out`` also writes them to a file
(``benchmarks/results/group_loo.txt``). ``--quick``: 2 chains x 500 draws and 10 females.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd

FORMULA = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import arviz as az
    import xarray as xr

    import bayesglmm as bg
    from bayesglmm import datasets
    from bayesglmm.inference.group_loo import (
        group_refit_elpd,
        integrated_group_loglik,
        psis_mcse,
    )

    warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
    draws = (
        {"draws": 500, "tune": 500, "chains": 2}
        if args.quick
        else {"draws": 1000, "tune": 1000, "chains": 4}
    )
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    data = datasets.load("salamander", download=False)
    model = bg.GLMM(FORMULA, data, family="binomial")
    t0 = time.perf_counter()
    fit = model.fit(cores=1, progressbar=False, random_seed=2026, **draws)
    t_fit = time.perf_counter() - t0

    t0 = time.perf_counter()
    matrix = integrated_group_loglik(fit, "Female")
    t_int = time.perf_counter() - t0
    idata = az.InferenceData(
        posterior=fit.idata.posterior, log_likelihood=xr.Dataset({"Mate": matrix})
    )
    integ = az.loo(idata, pointwise=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cond = bg.loo(fit, group="Female", pointwise=True, integrate=False, refit=False)
    levels = [str(v) for v in matrix.coords["Female"].values]
    if args.quick:
        levels = levels[:10]

    t0 = time.perf_counter()
    exact = group_refit_elpd(fit, "Female", levels, random_seed=7, max_workers=1)
    t_refit = time.perf_counter() - t0

    rows = []
    for lv in levels:
        e = exact.loc[lv]
        se_int = psis_mcse(matrix.sel(Female=lv).values)
        elpd_int = float(integ.loo_i.sel(Female=lv))
        rows.append(
            {
                "female": lv,
                "elpd_exact": e["elpd"],
                "se_exact": e["mcse"],
                "elpd_int": elpd_int,
                "se_int": se_int,
                "k_int": float(integ.pareto_k.sel(Female=lv)),
                "diff_int": elpd_int - e["elpd"],
                "z": (elpd_int - e["elpd"]) / np.hypot(se_int, e["mcse"]),
                "elpd_cond": float(cond.loo_i.sel(Female=lv)),
                "k_cond": float(cond.pareto_k.sel(Female=lv)),
                "diff_cond": float(cond.loo_i.sel(Female=lv)) - e["elpd"],
                "rhat_refit": e["max_rhat"],
            }
        )
    table = pd.DataFrame(rows).set_index("female")

    say(f"# bench_group_loo.py{' --quick' if args.quick else ''}")
    say(f"# {FORMULA}, binomial, {len(data)} rows; NUTS {draws}, random_seed=2026")
    say(
        f"# python {platform.python_version()}, arviz {az.__version__}, bayesglmm "
        f"{getattr(bg, '__version__', '?')}, {platform.machine()}"
    )
    n_draws = matrix.shape[0] * matrix.shape[1]
    say(
        f"# seconds: fit {t_fit:.1f}, integrated log-likelihood (60 levels x {n_draws} draws, "
        f"25 nodes) {t_int:.1f}, {len(levels)} exact refits {t_refit:.1f}"
    )
    say()
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        say(table.round(3).to_string())
    say()
    n = len(table)
    sub_int = table["elpd_int"].sum()
    sub_exact = table["elpd_exact"].sum()
    sub_cond = table["elpd_cond"].sum()
    se_sum = float(np.sqrt((table["se_int"] ** 2 + table["se_exact"] ** 2).sum()))
    say(f"levels: {n}")
    say(
        f"sum elpd over these levels: exact {sub_exact:.2f}, integrated PSIS {sub_int:.2f} "
        f"(difference {sub_int - sub_exact:+.2f}, Monte Carlo SE {se_sum:.2f}), "
        f"conditional PSIS {sub_cond:.2f} (difference {sub_cond - sub_exact:+.2f})"
    )
    say(
        f"integrated: mean |diff| {table['diff_int'].abs().mean():.3f}, max |diff| "
        f"{table['diff_int'].abs().max():.3f}, sd of z {table['z'].std():.2f}, mean z "
        f"{table['z'].mean():+.2f}, |z| > 3: {int((table['z'].abs() > 3).sum())}"
    )
    say(
        f"conditional: mean |diff| {table['diff_cond'].abs().mean():.3f}, max |diff| "
        f"{table['diff_cond'].abs().max():.3f}"
    )
    for name in ("k_int", "k_cond"):
        k = table[name]
        say(
            f"{name}: max {k.max():.2f}, > 0.7: {int((k > 0.7).sum())} of {n}, "
            f"> 0.5: {int((k > 0.5).sum())} of {n}"
        )
    hi = table[table["k_int"] > 0.7]
    lo = table[table["k_int"] <= 0.7]
    if len(hi):
        say(
            f"integrated, k > 0.7: mean |diff| {hi['diff_int'].abs().mean():.3f} "
            f"(k <= 0.7: {lo['diff_int'].abs().mean():.3f})"
        )
    say(
        f"whole-model elpd: integrated PSIS {integ['elpd_loo']:.2f} (se {integ['se']:.2f}), "
        f"conditional PSIS {cond['elpd_loo']:.2f}"
        + (f", exact (all 60 refits) {sub_exact:.2f}" if n == 60 else "")
    )
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
