"""The crossed scale series (issue 12): wall time and peak memory as rows and levels grow.

Bernoulli logit ``y ~ x + (1|a) + (1|b)`` (:func:`crossed_data.make_crossed`), levels growing
with rows (:data:`crossed_data.SCALE_SERIES`: 10,000 rows with 1,000 x 1,000 levels, 50,000
with 5,000 x 5,000, 200,000 with 20,000 x 20,000 and 1,000,000 with 50,000 x 50,000). Each
(method, size) runs in a fresh subprocess on the same CSV file; wall seconds are the fit's
own (data reading excluded), peak memory is the child's maximum resident set size
(``wait4``), and a child above ``--mem-cap`` GB or ``--timeout`` seconds is stopped and
reported as such. Run it under the team's lock, one configuration at a time::

    flock /work/team/heavy.lock python benchmarks/bench_scale.py \\
        [--sizes 10k,50k,200k,1m] [--methods laplace,laplace_direct,pql,gauss_seidel,glmmtmb,lme4]

Methods: ``laplace`` (``solver="auto"``: iterative above 1,000 levels), ``laplace_direct``
(the exact factor, for the agreement check), ``pql``, ``gauss_seidel`` (joint maximization
of beta and the effects with the variances held at the truth), ``glmmtmb`` and ``lme4``
(Rscript). Other engineers add theirs with ``--methods name=module:function``: ``function
(data: DataFrame, seed: int) -> dict`` (keys as :func:`_summary` returns; ``module`` importable
with ``benchmarks/`` on the path). Results go to ``benchmarks/results/scale.json`` (merged by
(method, rows)) and the table to ``benchmarks/results/scale.txt``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # the repository, when the package is not installed
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
)
from crossed_data import FORMULA, SCALE_SERIES, TRUTH, make_crossed  # noqa: E402

RESULTS = HERE / "results"
SIZES = {"10k": 10_000, "50k": 50_000, "200k": 200_000, "1m": 1_000_000}
DEFAULT_METHODS = "laplace,laplace_direct,pql,gauss_seidel,glmmtmb,lme4"
#: the direct path's dense Schur complement is quadratic in levels: not above this
DIRECT_MAX_ROWS = 50_000
R_CODE = {
    "glmmtmb": "library(glmmTMB); f <- glmmTMB(y ~ x + (1|a) + (1|b), data = d, "
    "family = binomial); fe <- fixef(f)$cond; vc <- c(VarCorr(f)$cond$a[1], "
    "VarCorr(f)$cond$b[1])",
    "lme4": "library(lme4); f <- glmer(y ~ x + (1|a) + (1|b), data = d, family = binomial); "
    "fe <- fixef(f); vc <- c(VarCorr(f)$a[1], VarCorr(f)$b[1])",
}


# ------------------------------------------------------------------------------ workers
def _summary(fit_seconds, fixed, variances, loglik=None, loglik_se=None, **extra) -> dict:
    out = {
        "seconds": fit_seconds,
        "cpu_seconds": extra.pop("cpu_seconds", None),
        "Intercept": float(fixed[0]),
        "x": float(fixed[1]),
        "var(a)": None if variances is None else float(variances[0]),
        "var(b)": None if variances is None else float(variances[1]),
        "loglik": None if loglik is None else float(loglik),
        "loglik_se": None if loglik_se is None else float(loglik_se),
    }
    out.update(extra)
    return out


def _glmm_fit(data, method, **kw):
    from bayesglmm import GLMM

    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = GLMM(FORMULA, data).fit(method, **kw)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    fe, vc = fit.fixed_effects, fit.variance_components
    det = fit.convergence["details"]
    return _summary(
        sec,
        [fe["Intercept"], fe["x"]],
        [vc["a"], vc["b"]],
        fit.loglik,
        fit.info["details"].get("loglik_se"),
        converged=bool(fit.convergence["converged"]),
        solver=(det.get("solver") or {}).get("name"),
        cpu_seconds=cpu,
    )


def run_laplace(data, seed):  # noqa: ARG001
    return _glmm_fit(data, "laplace")


def run_laplace_direct(data, seed):  # noqa: ARG001
    return _glmm_fit(data, "laplace", solver="direct")


def run_pql(data, seed):  # noqa: ARG001
    return _glmm_fit(data, "pql")


def run_gauss_seidel(data, seed):  # noqa: ARG001
    import numpy as np

    from bayesglmm.frequentist.moments.gauss_seidel import gauss_seidel

    t0, c0 = time.perf_counter(), time.process_time()
    ia = data["a"].astype("category").cat.codes.to_numpy()
    ib = data["b"].astype("category").cat.codes.to_numpy()
    X = np.column_stack([np.ones(len(data)), data["x"].to_numpy(float)])
    sds = [TRUTH["variance_components"][k] ** 0.5 for k in ("a", "b")]
    fit = gauss_seidel(data["y"].to_numpy(float), None, X, None, [ia, ib], sds, tol=1e-8)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    return _summary(
        sec, fit.beta, None, converged=bool(fit.converged), sweeps=fit.sweeps, cpu_seconds=cpu
    )


def run_r(csv: str, which: str, timeout: float) -> dict:
    code = (
        f'd <- read.csv("{csv}"); d$a <- factor(d$a); d$b <- factor(d$b); '
        f"st <- system.time({{ {R_CODE[which]} }}); t <- st[['elapsed']]; "
        "cpu <- st[['user.self']] + st[['sys.self']]; "
        "cat(sprintf('RESULT %.6f %.10f %.10f %.10f %.10f %.6f %.6f\\n', t, fe[1], fe[2], "
        "vc[1], vc[2], as.numeric(logLik(f)), cpu))"
    )
    return _child(["Rscript", "-e", code], timeout, parse_r=True)


WORKERS = {
    "laplace": run_laplace,
    "laplace_direct": run_laplace_direct,
    "pql": run_pql,
    "gauss_seidel": run_gauss_seidel,
}


def _worker(spec: str, csv: str, seed: int) -> None:
    """In the child: read the data, run one method, print one JSON line."""
    import pandas as pd

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    data = pd.read_csv(csv, dtype={"a": str, "b": str})
    if "=" in spec:
        name, target = spec.split("=", 1)
        mod, fn = target.split(":")
        func = getattr(importlib.import_module(mod), fn)
    else:
        func = WORKERS[spec]
    print("RESULT " + json.dumps(func(data, seed)), flush=True)


# ------------------------------------------------------------------------------ parent
def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _child(cmd, timeout: float, mem_cap_gb: float = 8.0, parse_r: bool = False) -> dict:
    """Run ``cmd``; return its result with ``wall_total`` and ``max_rss_mb`` (or why it failed)."""
    out_path = tempfile.mktemp(suffix=".out")
    t0 = time.perf_counter()
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    status, failure = None, None
    while True:
        pid, st, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status = st
            break
        if time.perf_counter() - t0 > timeout:
            failure = f"timeout after {timeout:.0f} s"
        elif _rss_mb(proc.pid) > mem_cap_gb * 1024:
            failure = f"stopped above {mem_cap_gb:g} GB"
        if failure:
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    text = Path(out_path).read_text()
    os.unlink(out_path)
    res = {"wall_total": wall, "max_rss_mb": usage.ru_maxrss / 1024}
    line = next((s for s in text.splitlines() if s.startswith("RESULT ")), None)
    if failure or line is None:
        res["failed"] = failure or f"exit status {status}: {text.strip()[-300:]}"
        return res
    if parse_r:
        t, b0, b1, va, vb, ll, cpu = (float(v) for v in line.split()[1:])
        res.update(_summary(t, [b0, b1], [va, vb], ll, cpu_seconds=cpu))
    else:
        res.update(json.loads(line[len("RESULT ") :]))
    return res


def _table(rows: list[dict]) -> str:
    head = (
        f"{'method':<16}{'rows':>10}{'levels':>16}{'fit s':>9}{'cpu s':>8}{'peak MB':>9}"
        f"{'Intercept':>11}{'x':>9}{'var(a)':>9}{'var(b)':>9}{'logLik':>14}{'+-se':>8}  note"
    )
    lines = [head, "-" * len(head)]

    def f(v, w, d):
        return f"{v:>{w}.{d}f}" if isinstance(v, int | float) else f"{'-':>{w}}"

    for r in sorted(rows, key=lambda r: (r["rows"], r["method"])):
        note = r.get("failed") or (r.get("solver") or "")
        if r.get("converged") is False:
            note += " (not converged)"
        lv = f"{r['levels']:,} x {r['levels']:,}"
        lines.append(
            f"{r['method']:<16}{r['rows']:>10,}{lv:>16}{f(r.get('seconds'), 9, 1)}"
            f"{f(r.get('cpu_seconds'), 8, 1)}{f(r.get('max_rss_mb'), 9, 0)}"
            f"{f(r.get('Intercept'), 11, 5)}{f(r.get('x'), 9, 5)}"
            f"{f(r.get('var(a)'), 9, 5)}{f(r.get('var(b)'), 9, 5)}{f(r.get('loglik'), 14, 3)}"
            f"{f(r.get('loglik_se'), 8, 4)}  {note}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10k,50k,200k,1m")
    ap.add_argument("--methods", default=DEFAULT_METHODS)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per configuration")
    ap.add_argument("--mem-cap", type=float, default=8.0, help="GB per configuration")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(RESULTS / "scale.json"))
    ap.add_argument("--worker", nargs=3, metavar=("METHOD", "CSV", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker[0], args.worker[1], int(args.worker[2]))
        return
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.exists() else []
    done = {(r["method"], r["rows"]): r for r in old}
    tmp = Path(tempfile.gettempdir()) / "bayesglmm_scale"
    tmp.mkdir(exist_ok=True)
    failed_methods: set[str] = set()
    for size in args.sizes.split(","):
        n = SIZES[size]
        levels = SCALE_SERIES[n]
        csv = tmp / f"crossed_{n}_{args.seed}.csv"
        if not csv.exists():
            make_crossed(n, levels, levels, seed=args.seed).to_csv(csv, index=False)
        for spec in args.methods.split(","):
            name = spec.split("=", 1)[0]
            if name in failed_methods:
                continue  # did not finish at a smaller size
            if name == "laplace_direct" and n > DIRECT_MAX_ROWS:
                continue
            print(f"{name} at {n:,} rows ...", flush=True)
            if name in R_CODE:
                res = run_r(str(csv), name, args.timeout)
            else:
                cmd = [sys.executable, __file__, "--worker", spec, str(csv), str(args.seed)]
                res = _child(cmd, args.timeout, args.mem_cap)
            res.update({"method": name, "rows": n, "levels": levels})
            if "failed" in res:
                failed_methods.add(name)
            print("  " + json.dumps(res), flush=True)
            # merge with what other runs wrote meanwhile
            if out.exists():
                done.update({(r["method"], r["rows"]): r for r in json.loads(out.read_text())})
            done[(name, n)] = res
            out.write_text(json.dumps(list(done.values()), indent=1))
    done.update({(r["method"], r["rows"]): r for r in json.loads(out.read_text())})
    table = _table(list(done.values()))
    print(table)
    (RESULTS / "scale.txt").write_text(table + "\n")


if __name__ == "__main__":
    main()
