"""Studies that fail early and alone: true values checked before anything runs, a summary
that says when every fit of a method failed, a local pool on which only the task that kills
its worker fails, scripts without a main guard, Dask clusters without workers or scheduler,
and store files that follow the umask and can be read where they cannot be written."""

from __future__ import annotations

import contextlib
import os
import pickle
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.analysis.study import Task, run_study
from bayesglmm.analysis.study.simulation import fit_replicate as _fit_replicate
from bayesglmm.analysis.study.simulation import parametric_bootstrap, simulation_study
from bayesglmm.analysis.study.workers import ROOT_ENV
from bayesglmm.errors import OptionError

FORMULA = "y ~ x + (1|g)"
TRUTH = {"fixed_effects": {"Intercept": 0.2, "x": 0.5}, "variance_components": {"g": 0.5}}


def _model() -> bg.GLMM:
    data = pd.DataFrame({"g": np.repeat(np.arange(8), 5).astype(str), "x": np.linspace(-1, 1, 40)})
    return bg.GLMM(FORMULA, bg.simulate(FORMULA, data, **TRUTH, random_seed=5))


# ------------------------------------------------------------------------------------------
# task functions (module level: the pool's workers import them)


def draw(i: int, seed: int) -> float:
    return float(np.random.default_rng(seed).normal()) + i


def die_hard(i: int, seed: int) -> float:
    """Kills its own process when ``i == 3`` (as a segfault or ``os._exit`` would)."""
    if i == 3:
        os._exit(7)
    time.sleep(0.05)
    return float(i)


def exits(i: int, seed: int) -> int:
    if i == 1:
        sys.exit(3)
    return i


def unpicklable(i: int, seed: int):
    if i == 1:
        return threading.Lock()
    return i


class _NoLoad:
    """Pickles, but cannot be unpickled."""

    def __reduce__(self):
        return (_refuse, ())


def _refuse():
    raise RuntimeError("this value cannot be loaded")


def unloadable(i: int, seed: int):
    return _NoLoad() if i == 1 else i


# ------------------------------------------------------------------------------------------
# 1. true values and the summary


@pytest.mark.parametrize(
    ("truth", "message"),
    [
        (
            {"fixed_effects": {"Intercept": 0.2, "z": 0.5}, "variance_components": {"g": 0.5}},
            r"fixed_effects: unknown name\(s\) 'z'.*fixed_effects: Intercept, x; "
            r"variance_components: g",
        ),
        (
            {"fixed_effects": {"Intercept": 0.2}, "variance_components": {"g": 0.5}},
            r"fixed_effects: no true value for 'x'",
        ),
        (
            {"fixed_effects": {"Intercept": 0.2, "x": 0.5}, "variance_components": {"h": 0.5}},
            r"variance_components: unknown name\(s\) 'h'.*variance_components: g",
        ),
        (
            {"fixed_effects": {"Intercept": 0.2, "x": 0.5}},
            r"variance_components: no true value for 'g'",
        ),
        (
            {**TRUTH, "correlations": {"g|Intercept,x": 0.3}},
            r"correlations: unknown name\(s\) 'g\|Intercept,x'",
        ),
        (
            {"fixed_effects": {"Intercept": 0.2, "x": "a"}, "variance_components": {"g": 0.5}},
            r"fixed_effects\['x'\] must be a finite number",
        ),
        (
            {"fixed_effects": {"Intercept": 0.2, "x": 0.5}, "variance_components": {"g": -1}},
            r"variance_components\['g'\] must be >= 0",
        ),
        ({**TRUTH, "dispersion": 2.0}, r"dispersion: the binomial family has no dispersion"),
        (
            {"fixed_effects": [0.2, 0.5, 1.0], "variance_components": {"g": 0.5}},
            r"fixed_effects: expected 2 values \(for Intercept, x\), got 3",
        ),
    ],
)
def test_true_values_are_checked_against_the_model_before_anything_runs(tmp_path, truth, message):
    store = tmp_path / "store"
    with pytest.raises(OptionError, match=message) as err:
        simulation_study(_model(), "laplace", 200, **truth, store=store, random_seed=1)
    assert "\n" not in str(err.value)
    assert not store.exists()  # refused before the study started


def test_the_readme_call_on_the_salamander_model_is_refused_naming_its_parameters():
    model = bg.specs.load_spec("salamander").build()
    with pytest.raises(OptionError) as err:
        simulation_study(
            model,
            ["laplace", "pql"],
            n_rep=200,
            fixed_effects={"Intercept": -0.5, "x": 1.0},
            variance_components={"g": 1.0},
            random_seed=1,
        )
    msg = str(err.value)
    assert "'Intercept', 'x'" in msg and "Cross[RR]" in msg and "Female, Male" in msg


def test_a_gaussian_model_needs_its_true_sigma():
    data = _model().data.assign(y=np.linspace(0, 1, 40))
    model = bg.GLMM(FORMULA, data, family="gaussian")
    with pytest.raises(OptionError, match=r"dispersion: the gaussian family needs a true sigma"):
        simulation_study(model, "lmm", 2, **TRUTH)


def fail_pql(model_args, truth, methods, seed, simulate_args=None):
    """fit_replicate, with pql always raising (a method none of whose fits succeed)."""
    out = _fit_replicate(model_args, truth, {"laplace": methods["laplace"]}, seed, simulate_args)
    bad = pd.DataFrame({"method": ["pql"], "parameter": [None], "error": ["ValueError('no')"]})
    return pd.concat([out, bad], ignore_index=True)


def fail_all(model_args, truth, methods, seed, simulate_args=None):
    raise ValueError("the simulation failed")


@pytest.mark.parametrize(
    ("replicate", "expected"),
    [
        (fail_pql, {"pql": "all 2 fits failed (first: ValueError('no'))"}),
        (
            fail_all,
            {
                m: "all 2 fits failed (first: the replication failed: ValueError: the "
                "simulation failed)"
                for m in ("laplace", "pql")
            },
        ),
    ],
)
def test_the_summary_says_when_every_fit_of_a_method_failed(monkeypatch, replicate, expected):
    from bayesglmm.analysis.study import simulation

    monkeypatch.setattr(simulation, "fit_replicate", replicate)
    with pytest.warns(RuntimeWarning) if replicate is fail_all else _nothing():
        sim = simulation_study(
            _model(), ["laplace", "pql"], 2, **TRUTH, max_workers=1, random_seed=1,
            progressbar=False,
        )  # fmt: skip
    notes = sim.summary.set_index("method")["note"]
    for method, note in expected.items():
        assert notes[method] == note
        assert sim.summary.loc[sim.summary["method"] == method, "n"].tolist() == [0]
    assert {"lower", "upper", "covered"} <= set(sim.estimates.columns)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_bootstrap_all_of_whose_refits_fail_says_so(monkeypatch):
    from bayesglmm.analysis.study import simulation

    data = bg.simulate(FORMULA, _model().data, **TRUTH, random_seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a boundary fit: not what is tested
        fit = bg.GLMM(FORMULA, data).fit("laplace")
    monkeypatch.setattr(simulation, "fit_replicate", fail_all)
    with pytest.warns(RuntimeWarning, match=r"2 of 2 study tasks failed") as rec:
        boot = parametric_bootstrap(fit, 2, max_workers=1, random_seed=1, progressbar=False)
    assert rec[0].filename == __file__  # the warning points at the caller's line
    assert boot.summary["n"].tolist() == [0]
    assert boot.summary["note"].iloc[0].startswith("all 2 refits failed (first: the replication")


# ------------------------------------------------------------------------------------------
# 2. local pool: only the bad task fails, with its reason


def test_a_task_that_kills_its_worker_fails_alone(tmp_path, monkeypatch):
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "compiledirs"))
    tasks = [Task(f"i={i}", die_hard, {"i": i}) for i in range(8)]
    with pytest.warns(RuntimeWarning) as rec:
        res = run_study(
            tasks, store=tmp_path / "s", max_workers=2, random_seed=1, progressbar=False
        )
    assert res.failed == ["i=3"]
    err = res.table.set_index("key").loc["i=3", "error"]
    assert "its worker process died (exit code 7" in err and "BrokenProcessPool" in err
    assert res.results == {f"i={i}": float(i) for i in range(8) if i != 3}
    assert any("1 of 8 study tasks failed (first: 'i=3'" in str(w.message) for w in rec)


def test_workers_that_cannot_start_fail_the_study_after_a_few_tries(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")  # the compile root is a file: every worker dies
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "file" / "dirs"))
    tasks = [Task(f"i={i}", draw, {"i": i}) for i in range(12)]
    start = time.perf_counter()
    with pytest.warns(RuntimeWarning) as rec:
        res = run_study(tasks, max_workers=2, random_seed=1, progressbar=False)
    assert time.perf_counter() - start < 60
    assert any("12 of 12 study tasks failed" in str(w.message) for w in rec)
    errors = res.table.set_index("key")["error"]
    assert errors.str.contains("died before finishing any task").sum() >= 12 - 2 * 2 - 3
    assert errors.str.contains("worker process died|died before finishing").all()


def test_sys_exit_in_a_task_fails_that_task_only(tmp_path, monkeypatch):
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "compiledirs"))
    tasks = [Task(f"i={i}", exits, {"i": i}) for i in range(3)]
    for workers in (1, 2):
        with pytest.warns(RuntimeWarning, match=r"1 of 3 study tasks failed"):
            res = run_study(tasks, max_workers=workers, random_seed=1, progressbar=False)
        assert res.failed == ["i=1"]
        assert res.table.set_index("key").loc["i=1", "error"] == "SystemExit: 3"
        assert res.results == {"i=0": 0, "i=2": 2}


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (unpicklable, r"cannot pickle '_thread.lock' object"),
        (unloadable, r"this value cannot be loaded"),
    ],
)
def test_a_value_that_cannot_be_stored_fails_its_task_with_the_reason(
    tmp_path, monkeypatch, fn, message
):
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "compiledirs"))
    tasks = [Task(f"i={i}", fn, {"i": i}) for i in range(3)]
    # in this process a value that pickles is stored whole; on a pool it must travel back
    for workers in (1, 2) if fn is unpicklable else (2,):
        store = tmp_path / f"s{workers}"
        with pytest.warns(RuntimeWarning, match=r"1 of 3 study tasks failed"):
            res = run_study(tasks, store=store, max_workers=workers, random_seed=1,
                            progressbar=False)  # fmt: skip
        assert res.failed == ["i=1"] and res.results == {"i=0": 0, "i=2": 2}
        err = res.table.set_index("key").loc["i=1", "error"]
        assert pytest.importorskip("re").search(message, err), err
        # the failure is in the store too, and retried on resume
        recs = [pickle.loads(p.read_bytes()) for p in (store / "tasks").glob("*.pkl")]
        assert {r["key"]: r["status"] for r in recs} == {
            "i=0": "done", "i=1": "failed", "i=2": "done",
        }  # fmt: skip


# ------------------------------------------------------------------------------------------
# 3. a script without a main guard


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from bayesglmm.analysis.study import Task, run_study
from test_study_failures import draw

{body}
"""


@pytest.mark.parametrize("guarded", [False, True])
def test_a_script_without_a_main_guard_is_refused_at_once(tmp_path, guarded):
    call = "res = run_study([Task(f'i={i}', draw, {'i': i}) for i in range(2)], max_workers=2, " \
        "random_seed=1, progressbar=False)\nprint('DONE', sorted(res.results))"  # fmt: skip
    body = f'if __name__ == "__main__":\n{textwrap.indent(call, "    ")}' if guarded else call
    script = tmp_path / "study.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), body=body))
    env = {**os.environ, ROOT_ENV: str(tmp_path / "compiledirs")}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    seconds = time.perf_counter() - start
    if guarded:
        assert out.returncode == 0, out.stderr
        assert "DONE ['i=0', 'i=1']" in out.stdout
    else:
        assert out.returncode == 1
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith("bayesglmm.errors.OptionError: ")
        assert f"{script}, line 7" in last and 'if __name__ == "__main__":' in last
        assert seconds < 30  # at once, not after the pool's workers time out


# ------------------------------------------------------------------------------------------
# 4. Dask: no workers, no scheduler


def test_a_dask_cluster_without_workers_is_refused_after_worker_timeout():
    from distributed import Client, LocalCluster

    from bayesglmm.analysis.study import ClusterError

    with (
        LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        start = time.perf_counter()
        with pytest.raises(ClusterError, match=r"has no worker after waiting 0.5 s") as err:
            run_study([Task("a", draw, {"i": 1})], client=client, random_seed=1,
                      progressbar=False, worker_timeout=0.5)  # fmt: skip
        assert time.perf_counter() - start < 10
        assert cluster.scheduler_address in str(err.value) and "worker_timeout" in str(err.value)
        with pytest.raises(OptionError, match=r"worker_timeout must be a positive number"):
            run_study([Task("a", draw, {"i": 1})], client=client, worker_timeout=-1)


def test_a_lost_dask_scheduler_is_named_by_its_address(tmp_path):
    from distributed import Client

    from bayesglmm.analysis.study import ClusterError

    file = tmp_path / "scheduler.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--scheduler-file", str(file),
         "--port", "0", "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while not file.exists() and time.time() < deadline:
            time.sleep(0.1)
        client = Client(scheduler_file=str(file), timeout=2)
        try:
            address = client.scheduler.address
            proc.kill()
            proc.wait()
            with pytest.raises(ClusterError) as err:
                run_study([Task("a", draw, {"i": 1})], client=client, random_seed=1,
                          progressbar=False)  # fmt: skip
            assert f"the Dask scheduler at {address} is not reachable" in str(err.value)
        finally:
            # closing a client whose scheduler was killed can itself fail inside distributed
            # ("Cannot change state of expiring Timeout"): that is the cleanup, not the test
            with contextlib.suppress(Exception):
                client.close(timeout=2)
    finally:
        proc.kill()


# ------------------------------------------------------------------------------------------
# 5. store files: the umask, and reading where nothing can be written


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_store_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        data = bg.simulate(FORMULA, _model().data, **TRUTH, random_seed=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = bg.GLMM(FORMULA, data).fit("laplace")
        tasks = [Task("a", draw, {"i": 1}), Task("fit", _return, {"value": fit})]
        run_study(tasks, store=tmp_path / "s", max_workers=1, random_seed=1, progressbar=False)
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "s").rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".json", ".pkl", ".zip"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p.name


def _return(value, seed):
    return value


def test_a_finished_store_is_read_where_it_cannot_be_written(tmp_path, monkeypatch):
    from bayesglmm.analysis.study import store as store_module

    tasks = [Task(f"i={i}", draw, {"i": i}) for i in range(3)]
    path = tmp_path / "s"
    first = run_study(tasks, store=path, max_workers=1, random_seed=4, progressbar=False)

    def no_write(file, mode="r", *args, **kwargs):  # a read-only file system (root ignores
        if any(c in mode for c in "wax+"):  # chmod, so it is simulated)
            raise PermissionError(30, "Read-only file system", str(file))
        return open(file, mode, *args, **kwargs)

    def no_temp(*args, **kwargs):
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(store_module, "open", no_write, raising=False)
    monkeypatch.setattr(store_module.tempfile, "mkstemp", no_temp)
    again = run_study(tasks, store=path, max_workers=1, random_seed=4, progressbar=False)
    assert again.results == first.results and again.table["resumed"].all()
    with pytest.raises(OptionError) as err:
        run_study([*tasks, Task("new", draw, {"i": 9})], store=path, max_workers=1,
                  progressbar=False)  # fmt: skip
    msg = str(err.value)
    assert str(path) in msg and "'new'" in msg and "Read-only file system" in msg


# ------------------------------------------------------------------------------------------
# 6. PyMC's NUTS with several chains inside a Dask worker (a daemonic process)


def pymc_nuts_draws(data, seed: int):
    import multiprocessing

    fit = bg.GLMM(FORMULA, data).fit(
        "nuts", nuts_sampler="pymc", chains=2, draws=30, tune=30, random_seed=seed,
        progressbar=False,
    )  # fmt: skip
    post = fit.idata.posterior
    return multiprocessing.current_process().daemon, {v: post[v].values for v in post.data_vars}


def test_pymc_nuts_with_several_chains_runs_on_a_dask_worker_with_the_same_draws():
    pytest.importorskip("pymc")
    from distributed import Client, LocalCluster

    data = bg.simulate(FORMULA, _model().data, **TRUTH, random_seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: R-hat and ESS warnings
        daemon, here = pymc_nuts_draws(data, 11)
    assert not daemon
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        daemon, there = client.submit(pymc_nuts_draws, data, 11).result()
    assert daemon  # the worker is daemonic: PyMC may not start chain processes there
    assert here.keys() == there.keys()
    for v in here:
        assert here[v].shape[0] == 2
        np.testing.assert_array_equal(here[v], there[v])


@pytest.mark.parametrize(
    ("source", "line", "guarded"),
    [
        ("run()\n", 1, False),
        ("def main():\n    run()\n\n\nmain()\n", 5, False),
        ('if __name__ == "__main__":\n    run()\n', 2, True),
        ('if __name__ == "__main__" and len(sys.argv) > 1:\n    run()\n', 2, True),
        (
            'try:\n    if "__main__" == __name__:\n        run()\nexcept KeyError:\n    pass\n',
            3,
            True,
        ),
        ('if __name__ == "__main__":\n    pass\nrun()\n', 3, False),
    ],
)
def test_the_main_guard_is_found_around_the_line_that_starts_the_study(source, line, guarded):
    import ast

    from bayesglmm.analysis.study.pool import _guarded

    assert _guarded(ast.parse(source).body, line) is guarded


def test_a_store_in_use_by_another_run_is_read_but_not_run(tmp_path):
    import fcntl

    tasks = [Task(f"i={i}", draw, {"i": i}) for i in range(2)]
    path = tmp_path / "s"
    first = run_study(tasks, store=path, max_workers=1, random_seed=4, progressbar=False)
    with open(path / ".lock", "a+") as fh:  # another run holds the store
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        again = run_study(tasks, store=path, max_workers=1, random_seed=4, progressbar=False)
        assert again.results == first.results
        with pytest.raises(OptionError, match=r"in use by another running study.*'i=2'"):
            run_study([*tasks, Task("i=2", draw, {"i": 2})], store=path, max_workers=1,
                      progressbar=False)  # fmt: skip
