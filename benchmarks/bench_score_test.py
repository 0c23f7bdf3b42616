"""Size, power and cost of Lin's (1997) score test of variance components.

``bayesglmm.inference.score_test.score_test`` on data simulated under the null (every
variance zero) and, for power, with variance 0.5:

- one-factor binomial: ``y ~ x + (1|g)``, 30 clusters of 5 Bernoulli rows (small clusters:
  the scaled chi-square correction against the plain normal reference);
- one-factor Poisson: ``y ~ x + (1|g)``, 30 clusters of 5;
- crossed binomial: ``y ~ x + (1|a) + (1|b)``, 600 Bernoulli rows on 30 x 30 levels: the
  global test (GLM null) and ``(1|a)`` given ``(1|b)`` (Laplace null fit);
- Gaussian: ``y ~ x + (1|g)``, 30 clusters of 5, the score test beside the boundary LRT of
  the ``lmm`` (ML) fit (``test_variance``), size and power, and how often they agree;
- large crossed Bernoulli: 20,000 rows on 2,000 x 2,000 levels, size of the global and the
  conditional test, and the seconds of one score test against one LRT (the Laplace fit of
  the alternative, as ``test_variance`` needs it).

Rates are printed with 95 % Clopper-Pearson Monte Carlo intervals. Seeds come from
``derive_seed(SEED, "<scenario>/<rep>")``. Run::

    nice -n 10 python benchmarks/bench_score_test.py [--n-sets 1000] [--n-crossed-term 300]
        [--n-gauss 300] [--n-big 300] [--n-big-term 40] [--n-lrt 3]
        [--out benchmarks/results/score_test.txt]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats

import bayesglmm as bg
from bayesglmm.analysis.study.tasks import derive_seed
from bayesglmm.inference.score_test import score_test
from bayesglmm.inference.variance_tests import test_variance

SEED = 20261207
ALPHA = 0.05


def clopper(k: int, n: int) -> tuple[float, float]:
    lo = 0.0 if k == 0 else stats.beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k)
    return float(lo), float(hi)


def rate(p_values) -> str:
    p = np.asarray(p_values)
    k, n = int(np.sum(p < ALPHA)), p.size
    lo, hi = clopper(k, n)
    return f"{k / n:.3f} [{lo:.3f}, {hi:.3f}] ({k}/{n})"


def one_factor(seed: int, family: str, var: float = 0.0, n_groups=30, size=5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=g.size)
    eta = -0.3 + 0.5 * x + rng.normal(0.0, np.sqrt(var), n_groups)[g]
    if family == "binomial":
        y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    elif family == "poisson":
        y = rng.poisson(np.exp(eta))
    else:
        y = eta + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})


def crossed(seed: int, n_rows: int, n_a: int, n_b: int, var: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_a, n_rows)
    b = rng.integers(0, n_b, n_rows)
    x = rng.integers(0, 2, n_rows)
    eta = -0.5 + 1.0 * x
    if var > 0:
        eta = eta + rng.normal(0, np.sqrt(var), n_a)[a] + rng.normal(0, np.sqrt(var), n_b)[b]
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "x": x, "a": [f"a{j}" for j in a], "b": [f"b{j}" for j in b]})


def one_factor_study(out, family: str, n_sets: int) -> None:
    t0 = time.perf_counter()
    rows = {"size": [], "size_plain": [], "power": [], "power_plain": []}
    for rep in range(n_sets):
        for var, key in ((0.0, "size"), (0.5, "power")):
            data = one_factor(derive_seed(SEED, f"{family}/{var}/{rep}"), family, var)
            model = bg.GLMM("y ~ x + (1|g)", data, family=family)
            rows[key].append(score_test(model).p_value)
            if family == "binomial":
                rows[key + "_plain"].append(score_test(model, correction=False).p_value)
    out(f"\none-factor {family}: y ~ x + (1|g), 30 clusters of 5, {n_sets} data sets each")
    label = "scaled chi-square (default)" if family == "binomial" else "N(0, 1) (default)"
    out(f"  size  at {ALPHA}, {label}: {rate(rows['size'])}")
    out(f"  power at variance 0.5, {label}: {rate(rows['power'])}")
    if family == "binomial":
        out(f"  size  at {ALPHA}, N(0, 1) (correction=False): {rate(rows['size_plain'])}")
        out(f"  power at variance 0.5, N(0, 1): {rate(rows['power_plain'])}")
    out(f"  {time.perf_counter() - t0:.1f} s")


def crossed_study(out, n_sets: int, n_term: int) -> None:
    t0 = time.perf_counter()
    glob, cond, secs, cond_corr = [], [], [], []
    for rep in range(n_sets):
        data = crossed(derive_seed(SEED, f"crossed/{rep}"), 600, 30, 30)
        model = bg.GLMM("y ~ x + (1|a) + (1|b)", data, family="binomial")
        glob.append(score_test(model).p_value)
        if rep >= n_term:
            continue
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cond.append(score_test(model, "(1|a)").p_value)
            secs.append(time.perf_counter() - t1)
            cond_corr.append(score_test(model, "(1|a)", correction=True).p_value)
    out("\ncrossed binomial: y ~ x + (1|a) + (1|b), 600 rows, 30 x 30 levels")
    out(f"  size at {ALPHA}, global (both variances), scaled chi-square: {rate(glob)}")
    out(f"  size at {ALPHA}, (1|a) given (1|b) (Laplace null), N(0, 1): {rate(cond)}")
    out(f"  size at {ALPHA}, (1|a) given (1|b), scaled chi-square: {rate(cond_corr)}")
    out(f"  {np.mean(secs):.3f} s per conditional test; {time.perf_counter() - t0:.1f} s")


def gaussian_study(out, n_sets: int) -> None:
    t0 = time.perf_counter()
    res = {0.0: ([], []), 0.5: ([], [])}
    for rep in range(n_sets):
        for var in res:
            data = one_factor(derive_seed(SEED, f"gaussian/{var}/{rep}"), "gaussian", var)
            model = bg.GLMM("y ~ x + (1|g)", data, family="gaussian")
            res[var][0].append(score_test(model).p_value)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = model.fit(method="lmm", reml=False)
            res[var][1].append(test_variance(fit, "(1|g)").p_value)
    out(f"\nGaussian: y ~ x + (1|g), 30 clusters of 5, {n_sets} data sets each")
    for var, what in ((0.0, "size "), (0.5, "power at variance 0.5,")):
        sc, lr = (np.asarray(v) for v in res[var])
        agree = np.mean((sc < ALPHA) == (lr < ALPHA))
        rho = stats.spearmanr(sc, lr).statistic
        out(f"  {what} score: {rate(sc)}")
        out(f"  {what} LRT 0.5 chi2(0) + 0.5 chi2(1) (lmm, ML): {rate(lr)}")
        out(f"    decisions agree in {agree:.3f} of sets; Spearman(p_score, p_LRT) = {rho:.3f}")
    out(f"  {time.perf_counter() - t0:.1f} s")


def big_study(out, n_big: int, n_term: int, n_lrt: int) -> None:
    t0 = time.perf_counter()
    glob, cond, t_glob, t_cond, t_lrt, z_glob = [], [], [], [], [], []
    for rep in range(max(n_big, n_term)):
        data = crossed(derive_seed(SEED, f"big/{rep}"), 20_000, 2_000, 2_000)
        model = bg.GLMM("y ~ x + (1|a) + (1|b)", data, family="binomial")
        if rep < n_big:
            t1 = time.perf_counter()
            res = score_test(model)
            t_glob.append(time.perf_counter() - t1)
            glob.append(res.p_value)
            z_glob.append(res.statistic)
        if rep < n_term:
            t1 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cond.append(score_test(model, "(1|a)").p_value)
            t_cond.append(time.perf_counter() - t1)
        if rep < n_lrt:
            t1 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(method="laplace")
            t_lrt.append(time.perf_counter() - t1)
    alt_lrt, alt_score = [], []
    for rep in range(n_lrt):  # the alternative fit is dearer away from the null
        data = crossed(derive_seed(SEED, f"big-alt/{rep}"), 20_000, 2_000, 2_000, var=0.5)
        model = bg.GLMM("y ~ x + (1|a) + (1|b)", data, family="binomial")
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(method="laplace")
        alt_lrt.append(time.perf_counter() - t1)
        t1 = time.perf_counter()
        p = score_test(model, "(1|a)").p_value
        alt_score.append(time.perf_counter() - t1)
        out(f"  variance 0.5 data set {rep}: score test of (1|a) p = {p:.3g}")
    out("\nlarge crossed Bernoulli: y ~ x + (1|a) + (1|b), 20,000 rows, 2,000 x 2,000 levels")
    out(f"  size at {ALPHA}, global, scaled chi-square: {rate(glob)}")
    z = np.asarray(z_glob)
    out(
        f"  global z: mean {z.mean():.3f} (MC se {z.std() / np.sqrt(z.size):.3f}), "
        f"sd {z.std():.3f} (N(0, 1) under the null)"
    )
    out(f"  size at {ALPHA}, (1|a) given (1|b), N(0, 1): {rate(cond)}")
    out(f"  seconds per global score test (GLM null): {np.mean(t_glob):.2f}")
    out(f"  seconds per conditional score test (Laplace null): {np.mean(t_cond):.2f}")
    out(f"  seconds per Laplace fit of the alternative (one LRT), null data: {np.mean(t_lrt):.2f}")
    if alt_lrt:
        out(
            f"  variance-0.5 data: Laplace fit of the alternative {np.mean(alt_lrt):.2f} s, "
            f"conditional score test {np.mean(alt_score):.2f} s"
        )
    out(f"  {time.perf_counter() - t0:.1f} s")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-sets", type=int, default=1000, help="null data sets per small study")
    ap.add_argument("--n-crossed-term", type=int, default=300, help="30 x 30, (1|a) test")
    ap.add_argument("--n-gauss", type=int, default=300, help="Gaussian sets (score and LRT)")
    ap.add_argument("--n-big", type=int, default=300, help="large crossed sets, global test")
    ap.add_argument("--n-big-term", type=int, default=40, help="large crossed, (1|a) test")
    ap.add_argument("--n-lrt", type=int, default=3, help="large crossed Laplace fits timed")
    ap.add_argument("--out", default=None, help="also write the output to this file")
    args = ap.parse_args(argv)
    lines = []

    def out(text: str) -> None:
        print(text, flush=True)
        lines.append(text)
        if args.out:
            with open(args.out, "w") as fh:
                fh.write("\n".join(lines) + "\n")

    out(f"Lin's score test of variance components; alpha = {ALPHA}; seed {SEED}")
    out(f"command-line: {vars(args)}")
    one_factor_study(out, "binomial", args.n_sets)
    one_factor_study(out, "poisson", args.n_sets)
    crossed_study(out, args.n_sets, args.n_crossed_term)
    gaussian_study(out, args.n_gauss)
    big_study(out, args.n_big, args.n_big_term, args.n_lrt)


if __name__ == "__main__":
    main()
