"""NUTS benchmarks of issue 2: wall time from a cold process and bulk ESS per wall-second.

Two models, each fitted in a fresh ``python -c`` subprocess per run, timed from before
``import bayesglmm`` (or ``import bambi``) to the returned result:

* ``salamander``: ``Mate ~ 0 + Cross + (1|Female) + (1|Male)``, Bernoulli logit, 360 rows,
  4 chains x 1000 draws (1000 tuning steps), the package's default priors;
* ``crossed``: ``y ~ x + (1|a) + (1|b)``, Bernoulli logit, 10,000 rows, 1,000 x 1,000 crossed
  levels (:func:`crossed_data.make_crossed`, written once to a CSV file that every run
  reads), 2 chains x 1000 draws (1000 tuning steps).

For every sampler two kinds of run are reported: ``first``, the first run ever on the
machine, with empty PyTensor, Numba and Python bytecode caches (fresh folders given through
``PYTENSOR_FLAGS=base_compiledir=...``, ``NUMBA_CACHE_DIR`` and ``PYTHONPYCACHEPREFIX``), and
``warm``, later runs that find those caches filled. Both are cold *processes*. The figure of
merit is the minimum bulk ESS over the fixed effects and the variance components divided by
the wall time.

bambi 0.17 runs in the same benchmark when an interpreter that has it is given
(``--bambi-python``; bambi pins formulae < 0.7, so it lives in its own virtual
environment, see README.md), with its default priors. The peers' figures quoted in the issue
are printed beside the measurements, and the issue's target: at least twice the best peer's
ESS per wall-second.

Usage::

    python benchmarks/bench_nuts.py                      # both models, auto/pymc/nutpie
    python benchmarks/bench_nuts.py --model salamander --samplers auto --warm 3
    python benchmarks/bench_nuts.py --bambi-python /opt/bench/bambi/bin/python
    python benchmarks/bench_nuts.py --option log_likelihood=False --tag no-loglik

Run one benchmark at a time on a quiet machine: the load average before each run is
recorded beside its figures.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_JSON = HERE / "results" / "bench_nuts.json"

MODELS = {
    "salamander": {
        "formula": "Mate ~ 0 + Cross + (1|Female) + (1|Male)",
        "chains": 4,
        "groups": ["Female", "Male"],
        "bambi_fixed": ["Cross"],
    },
    "crossed": {
        "formula": "y ~ x + (1|a) + (1|b)",
        "chains": 2,
        "groups": ["a", "b"],
        "bambi_fixed": ["Intercept", "x"],
    },
    # the same data with the probit link: the general compiled density (issue 12)
    "crossed_probit": {
        "formula": "y ~ x + (1|a) + (1|b)",
        "link": "probit",
        "chains": 2,
        "groups": ["a", "b"],
        "bambi_fixed": ["Intercept", "x"],
    },
}

#: figures quoted in issue 2 (measured by the issue's author on this kind of machine):
#: (library, sampler, wall s, ESS per wall-second)
PEERS = {
    "salamander": [
        ("bambi 0.17 (issue)", "pymc", 18.2, 75.0),
        ("bambi 0.17 (issue)", "numpyro", 15.4, 90.0),
    ],
    "crossed": [
        ("peer (issue)", "pymc", 77.0, 6.7),
        ("peer (issue)", "nutpie", 35.0, 10.2),
        ("peer (issue)", "numpyro", 39.0, 19.6),
    ],
    "crossed_probit": [],
}
#: issue 2's target: this many times the best peer's ESS per wall-second
TARGET_FACTOR = 2.0
#: issue 12's target (crossed model): this many times bambi/numpyro measured in the same run
SAME_RUN_FACTOR = 5.0

_MARK = "@@BENCH@@"

BAYESGLMM_RUN = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import bayesglmm
    from bayesglmm import GLMM, datasets
    t_import = time.perf_counter() - t0
    cfg = json.loads(sys.argv[1])
    if cfg["model"] == "salamander":
        data = datasets.load("salamander")
    else:
        import pandas as pd
        data = pd.read_csv(cfg["csv"])
    model = GLMM(cfg["formula"], data, family="binomial", link=cfg["link"])
    fit = model.fit(method="nuts", draws=cfg["draws"], tune=cfg["tune"],
                    chains=cfg["chains"], random_seed=cfg["seed"],
                    nuts_sampler=cfg["sampler"], progressbar=False, **cfg["options"])
    wall = time.perf_counter() - t0
    rows = list(fit.fixed_effects.index) + [f"var({c})" for c in fit.variance_components.index]
    ess = fit.table.loc[rows, "ess_bulk"]
    out = {
        "wall": wall, "import": t_import, "timing": fit.timing,
        "min_ess_bulk": float(ess.min()), "ess_bulk": ess.to_dict(),
        "estimates": fit.table.loc[rows, "estimate"].to_dict(),
        "divergences": fit.convergence["details"].get("divergences"),
        "max_r_hat": fit.convergence["details"].get("max_r_hat"),
        "sampler_used": fit.info["details"].get("nuts_sampler"),
        "version": bayesglmm.__version__,
    }
    print("@@BENCH@@" + json.dumps(out))
    """
)

BAMBI_RUN = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import bambi as bmb
    t_import = time.perf_counter() - t0
    import pandas as pd
    cfg = json.loads(sys.argv[1])
    data = pd.read_csv(cfg["csv"])
    for g in cfg["groups"]:
        data[g] = data[g].astype(str)
    model = bmb.Model(cfg["formula"], data, family="bernoulli", link=cfg["link"] or "logit")
    idata = model.fit(draws=cfg["draws"], tune=cfg["tune"], chains=cfg["chains"],
                      random_seed=cfg["seed"], inference_method=cfg["sampler"],
                      progressbar=False, **cfg["options"])
    wall = time.perf_counter() - t0
    import arviz as az
    names = cfg["bambi_fixed"] + [f"1|{g}_sigma" for g in cfg["groups"]]
    ess = az.ess(idata, var_names=names, method="bulk")
    flat = {}
    for name in names:
        vals = ess[name].values.ravel()
        for i, v in enumerate(vals):
            flat[name if vals.size == 1 else f"{name}[{i}]"] = float(v)
    div = int(idata.sample_stats["diverging"].values.sum())
    rhat = float(az.rhat(idata, var_names=names).to_array().max())
    out = {"wall": wall, "import": t_import, "timing": {}, "min_ess_bulk": min(flat.values()),
           "ess_bulk": flat, "divergences": div, "max_r_hat": rhat,
           "sampler_used": cfg["sampler"], "version": bmb.__version__}
    print("@@BENCH@@" + json.dumps(out))
    """
)


def run_once(
    python: str, code: str, cfg: dict, cache_dir: Path, timeout: float, env_extra: dict
) -> dict:
    """One fit in a fresh interpreter; compile caches under ``cache_dir``."""
    env = dict(os.environ)
    env.update(env_extra)
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f]
    flags = [f for f in flags if not f.startswith(("base_compiledir", "compiledir"))]
    env["PYTENSOR_FLAGS"] = ",".join([*flags, f"base_compiledir={cache_dir / 'pytensor'}"])
    env["NUMBA_CACHE_DIR"] = str(cache_dir / "numba")
    # Python's bytecode cache too, for every module of both libraries (the machines of this
    # project set PYTHONDONTWRITEBYTECODE, so an editable install would otherwise recompile
    # the package's sources in every process, which no ordinary installation does)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache_dir / "pycache")
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, "-c", code, json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(ROOT),
    )
    outer = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        return {
            "error": f"exit {proc.returncode}: {tail}",
            "outer_wall": outer,
            "load": load,
            "cpu": cpu,
        }
    out = json.loads(lines[-1][len(_MARK) :])
    out["outer_wall"] = outer
    out["cpu"] = cpu
    out["load"] = load
    out["ess_per_s"] = out["min_ess_bulk"] / out["wall"]
    return out


def bench_config(args, model: str, library: str, sampler: str, python: str) -> list[dict]:
    spec = MODELS[model]
    cfg = {
        "model": model,
        "formula": spec["formula"],
        "link": spec.get("link"),
        "chains": spec["chains"],
        "draws": args.draws,
        "tune": args.tune,
        "seed": args.seed,
        "sampler": sampler,
        "options": args.options if library == "bayesglmm" else {},
        "groups": spec["groups"],
        "bambi_fixed": spec["bambi_fixed"],
        "csv": args.csv[model],
    }
    code = BAYESGLMM_RUN if library == "bayesglmm" else BAMBI_RUN
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_nuts_cache_") as tmp:
        kinds = (["first"] if not args.no_first else []) + ["warm"] * args.warm
        if args.no_first:  # still fill the cache once, untimed
            run_once(python, code, cfg, Path(tmp), args.timeout, {})
        for kind in kinds:
            res = run_once(python, code, cfg, Path(tmp), args.timeout, {})
            res.update(model=model, library=library, sampler=sampler, cache=kind, tag=args.tag)
            rows.append(res)
            _print_row(res)
    return rows


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _print_row(r: dict) -> None:
    name = f"{r['library']}/{r['sampler']}"
    if "error" in r:
        print(f"  {r['model']:<11} {name:<22} {r['cache']:<6} FAILED: {r['error']}", flush=True)
        return
    used = r.get("sampler_used")
    used = f" ({used})" if used and used != r["sampler"] else ""
    print(
        f"  {r['model']:<11} {(name + used):<22} {r['cache']:<6} wall {r['wall']:6.1f} s "
        f"(process {r['outer_wall']:5.1f}, import {r['import']:4.1f}, CPU {r['cpu']:5.1f})  "
        f"min bulk ESS "
        f"{r['min_ess_bulk']:6.0f}  ESS/s {r['ess_per_s']:6.1f}  div {r['divergences']}  "
        f"R-hat {_fmt(r.get('max_r_hat'), '.3f')}  load {r['load']:.1f}",
        flush=True,
    )


def summary(rows: list[dict], models: list[str]) -> str:
    out = []
    for model in models:
        peers = PEERS[model]
        best_peer = max((p[3] for p in peers), default=float("nan"))
        target = TARGET_FACTOR * best_peer
        out.append(
            f"\n{model}: target >= {TARGET_FACTOR:g} x best peer ({best_peer:g} ESS/s) = "
            f"{target:g} ESS per wall-second, cold process included"
        )
        out.append(
            f"  {'library/sampler':<28} {'cache':<6} {'wall s':>7} {'CPU s':>7} {'min ESS':>8} "
            f"{'ESS/s':>7} {'x best peer':>11} {'load':>5}"
        )
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            if r["model"] == model and "error" not in r:
                groups.setdefault((r["library"], r["sampler"], r["cache"]), []).append(r)
        for (lib, sampler, cache), rs in groups.items():
            wall = statistics.median(r["wall"] for r in rs)
            cpu = statistics.median(r["cpu"] for r in rs)
            load = statistics.median(r["load"] for r in rs)
            ess = statistics.median(r["min_ess_bulk"] for r in rs)
            eps = statistics.median(r["ess_per_s"] for r in rs)
            used = rs[0].get("sampler_used")
            label = f"{lib}/{sampler}" + (f" ({used})" if used and used != sampler else "")
            n = f" (median of {len(rs)})" if len(rs) > 1 else ""
            out.append(
                f"  {label:<28} {cache:<6} {wall:7.1f} {cpu:7.1f} {ess:8.0f} {eps:7.1f} "
                f"{eps / best_peer:10.2f}x {load:5.1f}{n}"
            )
        same = [r for r in rows if r["model"] == model and "error" not in r
                and r["library"] == "bambi" and r["sampler"] == "numpyro"]  # fmt: skip
        if same:
            ref = statistics.median(r["ess_per_s"] for r in same)
            out.append(
                f"  same run: bambi/numpyro {ref:.1f} ESS/s; issue 12's target "
                f"{SAME_RUN_FACTOR:g} x = {SAME_RUN_FACTOR * ref:.1f} ESS/s"
            )
            for (lib, sampler, cache), rs in groups.items():
                if lib == "bayesglmm":
                    eps = statistics.median(r["ess_per_s"] for r in rs)
                    out.append(f"    bayesglmm/{sampler} {cache}: {eps / ref:.2f} x bambi/numpyro")
        for lib, sampler, wall, eps in peers:
            out.append(
                f"  {lib + '/' + sampler:<28} {'-':<6} {wall:7.1f} {'-':>7} {'-':>8} {eps:7.1f} "
                f"{eps / best_peer:10.2f}x"
            )
    return "\n".join(out)


def _parse_options(items: list[str]) -> dict:
    opts = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            opts[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            opts[key] = value
    return opts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=[*MODELS, "all"], default="all")
    p.add_argument(
        "--samplers",
        default="auto,pymc,nutpie",
        help="bayesglmm nuts_sampler values, comma-separated (numpyro when installed)",
    )
    p.add_argument("--bambi-python", help="an interpreter with bambi 0.17 installed")
    p.add_argument("--bambi-samplers", default="pymc,numpyro")
    p.add_argument("--python", default=sys.executable, help="interpreter for bayesglmm runs")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--warm", type=int, default=1, help="warm-cache runs per configuration")
    p.add_argument("--no-first", action="store_true", help="skip the first-ever (empty cache) run")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra GLMM.fit option for bayesglmm runs, e.g. log_likelihood=False",
    )
    p.add_argument("--tag", default="", help="label stored with the rows")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--json", default=str(DEFAULT_JSON), help="file to append the results to")
    args = p.parse_args(argv)
    args.options = _parse_options(args.option)

    models = list(MODELS) if args.model == "all" else [args.model]
    args.csv = {}
    if "salamander" in models:
        from bayesglmm import datasets

        args.csv["salamander"] = str(datasets.path("salamander"))
    if "crossed" in models or "crossed_probit" in models:
        from crossed_data import make_crossed

        csv = str(Path(tempfile.mkdtemp(prefix="bench_nuts_")) / "crossed.csv")
        make_crossed().to_csv(csv, index=False)
        args.csv["crossed"] = args.csv["crossed_probit"] = csv

    print(
        f"bench_nuts: {platform.node()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; draws {args.draws}, tune {args.tune}, seed {args.seed}"
        + (f"; options {args.options}" if args.options else "")
    )
    rows: list[dict] = []
    for model in models:
        for sampler in [s for s in args.samplers.split(",") if s]:
            rows += bench_config(args, model, "bayesglmm", sampler, args.python)
        if args.bambi_python:
            for sampler in [s for s in args.bambi_samplers.split(",") if s]:
                rows += bench_config(args, model, "bambi", sampler, args.bambi_python)
    print(summary(rows, models))

    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.is_file() else []
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    old.append({"date": stamp, "argv": sys.argv[1:], "cpus": os.cpu_count(), "rows": rows})
    path.write_text(json.dumps(old, indent=1))
    print(f"\nresults appended to {path}")


if __name__ == "__main__":
    main()
