"""Every method's table on the four bundled data sets (and one Gaussian model), as JSON.

A regression record for refactoring: fixed seeds, the Monte Carlo and Bayesian methods at
small sizes, one core. ``write`` stores the figures; ``check`` refits and reports every
number that moved by more than ``--tol`` (default 1e-10, relative to max(1, |value|)).

    python benchmarks/golden_results.py write benchmarks/results/golden.json
    python benchmarks/golden_results.py check benchmarks/results/golden.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings

import numpy as np

MODELS = {
    "salamander": ("salamander", "Mate ~ 0 + Cross + (1|Female) + (1|Male)", "binomial"),
    "cbpp": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1|herd)", "binomial"),
    "seeds": ("seeds", "cbind(germ, n - germ) ~ x1 * x2 + (1|plate)", "binomial"),
    "mouse_litters": ("mouse_litters", "cbind(dead, survived) ~ 1 + (1|litter)", "binomial"),
    "cbpp_gaussian": ("cbpp", "p ~ period + (1|herd)", "gaussian"),
}

SAMPLING = {"draws": 100, "tune": 100, "chains": 2, "cores": 1, "random_seed": 3}
OPTIONS = {
    "nuts": SAMPLING,
    "gibbs": {**SAMPLING},
    "lmm": {},
    "pql": {},
    "laplace": {},
    "agq": {},
    "mbp": {},
    "mcem": {"random_seed": 3, "mc_size": 50, "mc_max": 400, "max_iter": 15},
    "mcnr": {"random_seed": 3, "mc_size": 50, "mc_max": 400, "max_iter": 15},
    "sml": {"random_seed": 3, "mc_size": 200},
    "gee": {},
    "ee": {"random_seed": 3, "n_sim": 200},
    "ee2": {"random_seed": 3, "n_sim": 200},
}


def _num(v):
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def record_fit(fit) -> dict:
    table = fit.table
    return {
        "table": {
            row: {col: _num(table.loc[row, col]) for col in table.columns} for row in table.index
        },
        "loglik": _num(fit.loglik),
        "converged": bool(fit.converged),
        "iterations": fit.convergence.get("iterations"),
        "random_effects": {
            k: np.asarray(v.to_numpy(dtype=float)).ravel().tolist()
            for k, v in sorted(fit.random_effects.items())
        },
    }


def run_all(only=None) -> dict:
    import bayesglmm as bg

    out = {}
    for key, (ds, formula, family) in MODELS.items():
        data = bg.datasets.load(ds)
        if key == "cbpp_gaussian":
            data = data.assign(p=data["incidence"] / data["size"])
        model = bg.GLMM(formula, data, family=family)
        for method, opts in OPTIONS.items():
            if only and method not in only:
                continue
            name = f"{key}/{method}"
            if method in ("ee", "ee2") and len(model.design.random) == 1:
                # one factor: E(S) by quadrature, which takes no n_sim (refused if given)
                opts = {k: v for k, v in opts.items() if k != "n_sim"}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = (
                        model.fit(method=method, progressbar=False, **opts)
                        if method not in ("gee", "ee", "ee2")
                        else model.fit(method=method, **opts)
                    )
                out[name] = record_fit(fit)
            except Exception as err:  # a method that does not apply is part of the record
                out[name] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
            print(name, "error" if "error" in out[name] else "ok", file=sys.stderr, flush=True)
    return out


def _diff(a, b, path, tol, found):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                found.append(f"{path}/{k}: only in {'golden' if k in a else 'new'}")
            else:
                _diff(a[k], b[k], f"{path}/{k}", tol, found)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            found.append(f"{path}: length {len(a)} -> {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _diff(x, y, f"{path}[{i}]", tol, found)
    elif isinstance(a, float) and isinstance(b, float):
        if abs(a - b) > tol * max(1.0, abs(a)):
            found.append(f"{path}: {a!r} -> {b!r}")
    elif a != b:
        found.append(f"{path}: {a!r} -> {b!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("write", "check"))
    parser.add_argument("path")
    parser.add_argument("--tol", type=float, default=1e-10)
    parser.add_argument("--methods", nargs="*")
    args = parser.parse_args(argv)
    result = run_all(args.methods)
    if args.action == "write":
        with open(args.path, "w") as fh:
            json.dump(result, fh, indent=1, sort_keys=True)
        return 0
    with open(args.path) as fh:
        golden = json.load(fh)
    if args.methods:
        golden = {k: v for k, v in golden.items() if k.split("/")[1] in args.methods}
    found: list[str] = []
    _diff(golden, result, "", args.tol, found)
    print("\n".join(found) if found else f"all {len(result)} fits equal to {args.tol:g}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
