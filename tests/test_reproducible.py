"""The same seed gives bitwise the same result: repeated fits in one process and fits in
fresh processes, for the compiled NUTS sampler (chains on nutpie's threads, default
``cores``), the Gibbs sampler, and every Monte Carlo and simulation-based likelihood method
(MCEM, MCNR, SML, Jiang's estimating equations on the crossed design)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import bayesglmm as bg
from bayesglmm.options import known_options

FORMULA = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"

#: per method: fit options and the number of fits in this process
CASES = {
    "nuts": (dict(draws=50, tune=50, chains=4), 5),
    "nuts_probit": (dict(draws=50, tune=50, chains=4, link="probit"), 3),
    "gibbs": (dict(draws=30, tune=30, chains=2), 2),
    "mcem": (dict(max_iter=5), 2),
    "mcnr": (dict(max_iter=5), 2),
    "sml": (dict(mc_size=500), 2),
    "ee": (dict(n_sim=200), 2),
    "ee2": (dict(n_sim=200), 2),
}


def _fit(case: str):
    kwargs = dict(CASES[case][0])
    link = kwargs.pop("link", None)
    method = "nuts" if case.startswith("nuts") else case
    model = bg.GLMM(FORMULA, bg.datasets.load("salamander"), link=link)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "progressbar" in known_options(method):
            kwargs["progressbar"] = False
        return model.fit(method=method, random_seed=1, **kwargs)


def _arrays(result) -> dict[str, np.ndarray]:
    """Every number of the result: the draws and sample statistics of a Bayesian fit, the
    table of estimates of any fit."""
    out = {f"table/{c}": result.table[c].to_numpy() for c in result.table.columns}
    if result.idata is not None:
        for group in ("posterior", "sample_stats"):
            if group in result.idata.groups():
                ds = result.idata[group]
                out.update({f"{group}/{k}": ds[k].values for k in ds.data_vars})
    return out


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def _assert_same(first: dict, other: dict, label: str) -> None:
    assert sorted(first) == sorted(other), label
    differ = [k for k in first if not np.array_equal(first[k], other[k], equal_nan=True)]
    assert not differ, f"{label}: differs in {differ[:5]}"


@pytest.mark.parametrize("case", list(CASES))
def test_same_seed_same_bytes_in_one_process_and_across_processes(case):
    first = _arrays(_fit(case))
    bayesian = case.startswith("nuts") or case == "gibbs"
    assert any(k.startswith("posterior/") for k in first) == bayesian
    for i in range(1, CASES[case][1]):
        _assert_same(first, _arrays(_fit(case)), f"{case}: fit {i + 1} in this process")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
        from test_reproducible import _arrays, _digest, _fit
        print(_digest(_arrays(_fit({case!r}))))
        """
    )
    for run in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        got = proc.stdout.strip().splitlines()[-1]
        assert got == _digest(first), f"{case}: fresh process {run + 1} differs"
