"""Calibration of the residual tests and of Jiang's goodness-of-fit test: size under
correctly specified models, power under four departures, uniformity of the p-values.

Null scenarios (the fitted model is the simulated one), ``y ~ x + random intercepts``:

* ``binomial_1f`` / ``binomial_crossed``: ``cbind(y, 8 - y)``, 8 trials a row;
* ``bernoulli_1f`` / ``bernoulli_crossed``: binary rows;
* ``poisson_1f`` / ``poisson_crossed``.

One factor: 30 levels of 10 rows, ``eta = b0 + 0.4 x + a_g``, ``sd(a) = 0.7``. Crossed: a
15 x 15 table, one row a cell, ``+ a_i + c_j`` with sds 0.7 and 0.5. ``b0`` is -0.3 for the
binomial families and 0.5 for Poisson.

Power scenarios (one factor, Poisson and binomial with trials), fitted by the null model:

* ``olre``: an observation-level random effect of variance 0.5 (overdispersion);
* ``zeros``: 20 % structural zeros;
* ``t3``: level effects ``0.7 t_3 / sqrt(3)`` (heavy tails, same variance);
* ``missing``: a row-level covariate ``x2 ~ N(0, 1)`` with coefficient 0.7 left out.

Each data set is fitted by Laplace and tested by ``bg.residuals(...).tests()`` with
simulations conditional on the predicted effects and with new effects (``n_sim`` = 250), and
by ``gof_test`` (Jiang's weighting, asymptotic null; not for Bernoulli rows, whose two cells
the intercept fits). The null one-factor Poisson and binomial data are also fitted by GEE
(exchangeable) and their marginal quantile residuals tested: GEE's simulations have no
random effects, so tests that see the within-cluster correlation (dispersion, per-group
dispersion) are expected to reject; they are reported, not counted as calibrated. A
Bayesian fit (NUTS, 2 chains of 250 draws after 250 tuning) is tested from its posterior
predictive draws on ``--n-bayes`` null Poisson data sets and as many with the ``olre``
departure.

Every data set is one task of :func:`bayesglmm.study.run_study` (local process pool,
resumable with ``--store``). The output lists, per scenario, fit, simulation kind and test,
the rejection rate at 0.05 with its exact binomial 95 % interval (size: "ok" when 0.05 is in
the interval, "conservative" when the interval is below it, "LIBERAL" above) and the
Kolmogorov-Smirnov p-value of the replications' p-values against Uniform(0, 1) (p-values of
count tests are discrete and of conditional simulations conservative, so a small KS
p-value there says "not uniform", not "not valid").

    nice -n 10 python benchmarks/bench_residual_calibration.py --n-sets 500 --n-power 200 \\
        --n-bayes 100 --workers 2 [--store DIR] [--out benchmarks/results/residual_calibration.txt]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

NULL = [
    "binomial_1f",
    "binomial_crossed",
    "bernoulli_1f",
    "bernoulli_crossed",
    "poisson_1f",
    "poisson_crossed",
]
ALTERNATIVES = ["olre", "zeros", "t3", "missing"]
POWER_BASES = ["poisson_1f", "binomial_1f"]
N_SIM = 250


def simulate(scenario: str, rng: np.random.Generator) -> tuple[str, pd.DataFrame, str]:
    """Formula, data and family of one data set of ``scenario`` (``family_design[:alt]``)."""
    base, _, alt = scenario.partition(":")
    family, design = base.split("_")
    if design == "1f":
        g = np.repeat(np.arange(30), 10)
        a = rng.normal(0.0, 0.7, 30)
        if alt == "t3":
            a = 0.7 * rng.standard_t(3, 30) / np.sqrt(3.0)
        x = rng.normal(size=g.size)
        df = pd.DataFrame({"x": x, "g": [f"g{i}" for i in g]})
        eta = 0.4 * x + a[g]
        rhs = "x + (1|g)"
    else:
        i, j = (m.ravel() for m in np.meshgrid(np.arange(15), np.arange(15), indexing="ij"))
        x = rng.normal(size=i.size)
        df = pd.DataFrame({"x": x, "a": [f"a{k}" for k in i], "b": [f"b{k}" for k in j]})
        eta = 0.4 * x + rng.normal(0.0, 0.7, 15)[i] + rng.normal(0.0, 0.5, 15)[j]
        rhs = "x + (1|a) + (1|b)"
    eta = eta + (0.5 if family == "poisson" else -0.3)
    if alt == "olre":
        eta = eta + rng.normal(0.0, np.sqrt(0.5), eta.size)
    if alt == "missing":
        eta = eta + 0.7 * rng.normal(size=eta.size)
    if family == "poisson":
        y = rng.poisson(np.exp(eta))
    else:
        y = rng.binomial(8 if family == "binomial" else 1, 1.0 / (1.0 + np.exp(-eta)))
    if alt == "zeros":
        y[rng.uniform(size=y.size) < 0.2] = 0
    df["y"] = y
    if family == "binomial":
        return f"cbind(y, 8 - y) ~ {rhs}", df, "binomial"
    return f"y ~ {rhs}", df, family


def _rows(res, scenario, fit, sims, rep) -> list[dict]:
    table = res.tests()
    return [
        {"scenario": scenario, "fit": fit, "sims": sims, "rep": rep, "test": t, "p_value": p}
        for t, p in zip(table["test"], table["p_value"], strict=True)
    ]


def one_data_set(scenario: str, rep: int, bayes: bool, gee: bool, seed: int) -> list[dict]:
    """All p-values of one simulated data set (a study task)."""
    import bayesglmm as bg
    from bayesglmm.diagnostics.gof import gof_test

    ss = np.random.SeedSequence(seed).spawn(4)
    rng = np.random.default_rng(ss[0])
    formula, data, family = simulate(scenario, rng)
    rows: list[dict] = []
    seeds = [int(s.generate_state(1)[0]) for s in ss[1:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = bg.GLMM(formula, data, family=family)
        if bayes:
            fit = model.fit(
                method="nuts", draws=250, tune=250, chains=2, random_seed=seeds[0],
                progressbar=False,
            )  # fmt: skip
            for cond in (True, False):
                res = bg.residuals(fit, conditional=cond, random_seed=seeds[1])
                rows += _rows(res, scenario, "nuts", "conditional" if cond else "new", rep)
            return rows
        fit = model.fit(method="laplace")
        for cond in (True, False):
            res = bg.residuals(fit, conditional=cond, n_sim=N_SIM, random_seed=seeds[1])
            rows += _rows(res, scenario, "laplace", "conditional" if cond else "new", rep)
        if not scenario.startswith("bernoulli"):
            try:
                p = gof_test(fit, n_sim=1000, random_seed=seeds[2]).p_value
            except Exception:  # noqa: BLE001 - a degenerate case is counted as missing
                p = np.nan
            rows.append(
                {"scenario": scenario, "fit": "laplace", "sims": "marginal", "rep": rep,
                 "test": "gof_jiang", "p_value": p}
            )  # fmt: skip
        if gee:
            fit = model.fit(method="gee")
            res = bg.residuals(fit, n_sim=N_SIM, random_seed=seeds[1])
            rows += _rows(res, scenario, "gee", "marginal", rep)
    return rows


def summarize(frame: pd.DataFrame, null: bool) -> pd.DataFrame:
    out = []
    keys = ["scenario", "fit", "sims", "test"]
    for key, g in frame.groupby(keys, sort=False):
        p = g["p_value"].dropna().to_numpy(float)
        if p.size == 0:
            continue
        k = int(np.sum(p < 0.05))
        ci = stats.binomtest(k, p.size).proportion_ci(0.95, method="exact")
        row = dict(zip(keys, key, strict=True))
        row.update(n=p.size, reject=k / p.size, lo=ci.low, hi=ci.high)
        if null:
            row["size"] = (
                "ok"
                if ci.low <= 0.05 <= ci.high
                else ("conservative" if ci.high < 0.05 else "LIBERAL")
            )
            row["ks_p"] = float(stats.kstest(p, "uniform").pvalue)
        out.append(row)
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-sets", type=int, default=500, help="data sets per null scenario")
    ap.add_argument("--n-power", type=int, default=200, help="data sets per power scenario")
    ap.add_argument("--n-bayes", type=int, default=100, help="data sets per NUTS scenario")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--store", default=None, help="study store (resumable)")
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--out", default="benchmarks/results/residual_calibration.txt")
    args = ap.parse_args()

    from bayesglmm.analysis.study import Task, run_study

    plan = []  # (scenario, number of data sets, bayes, gee)
    plan += [(sc, args.n_sets, False, sc in ("poisson_1f", "binomial_1f")) for sc in NULL]
    plan += [(f"{b}:{a}", args.n_power, False, False) for b in POWER_BASES for a in ALTERNATIVES]
    plan += [(sc, args.n_bayes, True, False) for sc in ("poisson_1f", "poisson_1f:olre")]
    tasks = []
    for r in range(max(n for _, n, _, _ in plan)):  # rep-major: every scenario advances together
        for sc, n, bayes, gee in plan:
            if r < n:
                key = f"{'nuts:' if bayes else ''}{sc}/{r}"
                kw = dict(scenario=sc, rep=r, bayes=bayes, gee=gee)
                tasks.append(Task(key, one_data_set, kw))
    start = time.perf_counter()
    study = run_study(
        tasks, store=args.store, max_workers=args.workers, random_seed=args.seed, progressbar=False
    )
    seconds = time.perf_counter() - start
    rows = [row for t in tasks if t.key in study.results for row in study.results[t.key]]
    frame = pd.DataFrame(rows)
    is_null = ~frame["scenario"].str.contains(":")
    size = summarize(frame[is_null], null=True)
    power = summarize(frame[~is_null], null=False)
    lines = [
        "Calibration of bg.residuals(...).tests() and gof_test (Jiang 2001)",
        "command: nice -n 10 python benchmarks/bench_residual_calibration.py "
        f"--n-sets {args.n_sets} --n-power {args.n_power} --n-bayes {args.n_bayes} "
        f"--workers {args.workers} --seed {args.seed}",
        f"tasks: {len(tasks)} ({len(study.failed)} failed), wall time {seconds / 60:.1f} min, "
        f"n_sim = {N_SIM} per residual simulation",
        "",
        "SIZE at 0.05 under correctly specified models (95 % exact binomial interval; ks_p: "
        "KS test of the p-values against Uniform(0, 1)); fit=gee rows simulate the marginal "
        "model without random effects, so their dispersion tests are expected to reject",
    ]
    with pd.option_context(
        "display.width", 200, "display.max_rows", 1000, "display.max_columns", 20
    ):
        lines.append(size.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        lines += ["", "POWER at 0.05 (rejection rate)"]
        lines.append(power.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if study.failed:
        lines += ["", "failed tasks: " + ", ".join(study.failed[:20])]
        lines += [str(study.table.loc[study.table.status == "failed", "error"].iloc[0])]
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
