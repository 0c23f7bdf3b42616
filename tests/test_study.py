"""The study runner (bayesglmm.study): derived seeds, the result store, resuming, failures,
argument checks, per-worker PyTensor compile directories, and the studies built on it.

The Dask cluster and the killed-and-restarted study are in test_study_dask.py.
Most tests here run in-process (``max_workers=1``); one starts a two-process local pool.
"""

from __future__ import annotations

import os
import pickle
import signal
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.analysis.study import Task, derive_seed, run_study
from bayesglmm.analysis.study.simulation import parametric_bootstrap, simulation_study
from bayesglmm.analysis.study.workers import ROOT_ENV
from bayesglmm.errors import OptionError

FORMULA = "y ~ x + (1|g)"
TRUTH = {"fixed_effects": {"Intercept": 0.2, "x": 0.5}, "variance_components": {"g": 0.5}}


def _design() -> pd.DataFrame:
    return pd.DataFrame(
        {"g": np.repeat(np.arange(8), 5).astype(str), "x": np.linspace(-1, 1, 40), "y": 0}
    )


# ------------------------------------------------------------------------------------------
# task functions (module level: the pool's workers import them)


def seeded_draw(scale: float, seed: int, die_flag: str = "") -> dict:
    """A draw from the task's own stream, and where it ran; the process dies (SIGKILL)
    instead if the file ``die_flag`` exists (which it removes first: once)."""
    if die_flag and os.path.exists(die_flag):
        os.unlink(die_flag)
        os.kill(os.getpid(), signal.SIGKILL)
    value = scale * np.random.default_rng(seed).normal()
    from bayesglmm.analysis.study import workers

    compiledir = None
    if workers._SLOT_DIR is not None:  # a pool worker: the compile directory it was given
        flags = os.environ["PYTENSOR_FLAGS"].split(",")
        compiledir = [f.split("=", 1)[1] for f in flags if f.startswith("base_compiledir=")][-1]
        if scale == 1.0:  # and PyTensor, imported in the task, uses it (one worker: ~3 s)
            import pytensor

            assert str(pytensor.config.base_compiledir) == compiledir == workers._SLOT_DIR
    return {"seed": seed, "value": value, "pid": os.getpid(), "compiledir": compiledir}


def counted(name: str, log: str, fail_flag: str, seed: int) -> str:
    """Appends ``name`` to the file ``log``; raises while the file ``fail_flag`` exists."""
    with open(log, "a") as fh:
        fh.write(name + "\n")
    if name == "b" and os.path.exists(fail_flag):
        raise ValueError(f"task {name} failed on purpose")
    return f"{name}:{seed}"


def laplace_fit(seed: int) -> bg.FitResult:
    data = bg.simulate(FORMULA, _design(), **TRUTH, random_seed=seed)
    return bg.GLMM(FORMULA, data).fit("laplace")


def _calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


# ------------------------------------------------------------------------------------------
# seeds


def test_derived_seed_is_a_seed_sequence_of_the_seed_and_the_key_digest():
    import hashlib

    words = np.frombuffer(hashlib.sha256(b"rep=3").digest(), dtype="<u4").tolist()
    expected = np.random.SeedSequence([7, *words]).generate_state(2, np.uint64)[0] >> 1
    assert derive_seed(7, "rep=3") == int(expected)
    assert derive_seed(7, "rep=3") != derive_seed(8, "rep=3") != derive_seed(7, "rep=4")
    assert 0 <= derive_seed(2**100, "x") < 2**63


def test_results_repeat_whatever_the_workers_and_order(tmp_path, monkeypatch):
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "compiledirs"))
    die = tmp_path / "die"
    tasks = [
        Task(f"s={s}", seeded_draw, {"scale": float(s), "die_flag": str(die) if s == 5 else ""})
        for s in range(1, 9)
    ]
    serial = run_study(tasks[::-1], max_workers=1, random_seed=11, progressbar=False)
    die.touch()  # task s=5 kills its worker process once: the pool restarts for the rest
    with pytest.warns(RuntimeWarning, match=r"a worker process of the study died"):
        pool = run_study(tasks, max_workers=2, random_seed=11, progressbar=False)
    assert not die.exists() and pool.table["status"].eq("done").all()
    threads = run_study(tasks, client=ThreadPoolExecutor(3), random_seed=11, progressbar=False)
    assert list(pool.results) == [t.key for t in tasks]  # task order, not completion order
    for key in pool.results:
        for other in (serial, threads):
            assert other.results[key]["value"] == pool.results[key]["value"]
            assert other.results[key]["seed"] == pool.results[key]["seed"] == derive_seed(11, key)
    # the pool ran in two other processes, each with its own PyTensor compile directory
    pids = {r["pid"] for r in pool.results.values()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 4  # two pools of two
    dirs = {r["pid"]: r["compiledir"] for r in pool.results.values()}
    assert all(d.startswith(str(tmp_path / "compiledirs")) for d in dirs.values())
    # (that two live workers never share one: test_compile_slots_are_exclusive and, on
    # Dask, test_study_dask.py)
    assert serial.results["s=1"]["compiledir"] is None  # in-process: PyTensor's own
    assert pool.table["worker"].str.endswith(tuple(str(p) for p in pids)).all()
    other = run_study(tasks, max_workers=1, random_seed=12, progressbar=False)
    assert other.results["s=2"]["value"] != pool.results["s=2"]["value"]


def _live_pool():
    from bayesglmm.analysis.study import pool

    (entry,) = pool._POOLS.values()  # one set of idle workers at a time
    return entry.pool


def test_the_pool_is_reused_across_studies_and_replaced_once_broken(tmp_path, monkeypatch):
    from bayesglmm.analysis.study.pool import pool_pids

    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "compiledirs"))
    tasks = [Task(f"s={s}", seeded_draw, {"scale": s + 0.5}) for s in range(6)]
    serial = run_study(tasks, max_workers=1, random_seed=3, progressbar=False)
    first = run_study(tasks, max_workers=2, random_seed=3, progressbar=False)
    workers = pool_pids(2)
    assert len(workers) in (1, 2) and os.getpid() not in workers
    second = run_study(tasks, max_workers=2, random_seed=3, progressbar=False)
    # the second study ran on the first one's processes: no new process was started
    assert pool_pids(2) == workers
    assert {r["pid"] for r in second.results.values()} <= set(workers)
    for key, rec in serial.results.items():  # bitwise the same values, in-process or not
        assert first.results[key]["value"] == second.results[key]["value"] == rec["value"]
    # a worker killed between studies breaks the pool: the next study starts a new one
    pool = _live_pool()
    os.kill(workers[0], signal.SIGKILL)
    for _ in range(200):  # the pool notices the death within milliseconds
        if pool._broken:
            break
        time.sleep(0.05)
    assert pool._broken
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken pool is replaced, not run on
        third = run_study(tasks, max_workers=2, random_seed=3, progressbar=False)
    assert _live_pool() is not pool and not set(pool_pids(2)) & set(workers)
    assert {r["pid"] for r in third.results.values()} <= set(pool_pids(2))
    for key, rec in serial.results.items():
        assert (third.results[key]["value"], third.results[key]["seed"]) == (
            rec["value"],
            rec["seed"],
        )
    # a study interrupted with tasks in flight does not leave them on the pool: it goes
    from bayesglmm.analysis.study.pool import acquire_pool, release_pool, run_pool

    live = _live_pool()
    running = run_pool(tasks, {t.key: derive_seed(3, t.key) for t in tasks}, 2)
    assert next(running)["status"] == "done"
    running.close()
    assert not pool_pids() and live._shutdown_thread
    # a pool of another size replaces an idle one (one set of idle workers at a time)
    two = acquire_pool(2, 1)
    release_pool(two)
    three = acquire_pool(3, 1)
    release_pool(three)
    assert _live_pool() is three and two._shutdown_thread and not three._shutdown_thread


def test_compile_slots_are_exclusive_while_held_and_reused_after(tmp_path):
    from bayesglmm.analysis.study.workers import claim_slot

    first, second = claim_slot(tmp_path), claim_slot(tmp_path)  # two open locks: two slots
    assert first[1] != second[1] and first[1].parent == second[1].parent == tmp_path
    first[0].close()  # its process exited
    third = claim_slot(tmp_path)
    assert third[1] == first[1]  # a warm cache for the next worker
    second[0].close()
    third[0].close()


# ------------------------------------------------------------------------------------------
# store, resume, failures


def test_resume_skips_finished_tasks_and_retries_failed_ones(tmp_path):
    log, flag, store = tmp_path / "log", tmp_path / "fail", tmp_path / "store"
    flag.touch()
    tasks = [Task(k, counted, {"name": k, "log": str(log), "fail_flag": str(flag)}) for k in "abc"]
    with pytest.warns(RuntimeWarning, match=r"1 of 3 study tasks failed \(first: 'b': ValueError"):
        first = run_study(tasks, store=store, max_workers=1, random_seed=3, progressbar=False)
    assert first.failed == ["b"] and list(first.results) == ["a", "c"]
    row = first.table.set_index("key").loc["b"]
    assert row["status"] == "failed" and "failed on purpose" in row["error"]
    assert "ValueError" in first.tracebacks["b"]
    assert _calls(log) == ["a", "b", "c"]

    flag.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = run_study(tasks, store=store, max_workers=1, random_seed=3, progressbar=False)
    assert _calls(log) == ["a", "b", "c", "b"]  # only the failed task ran again
    assert second.results == {k: f"{k}:{derive_seed(3, k)}" for k in "abc"}
    assert second.table["resumed"].tolist() == [True, False, True]
    assert second.table["status"].eq("done").all()
    records = sorted((store / "tasks").glob("*.pkl"))
    assert len(records) == 3  # one record per key, never duplicated

    # random_seed=None resumes with the store's seed; nothing runs again
    third = run_study(tasks, store=store, max_workers=1, progressbar=False)
    assert third.random_seed == 3 and third.results == second.results
    assert _calls(log) == ["a", "b", "c", "b"]


def test_a_store_of_another_study_is_refused(tmp_path):
    log, flag, store = tmp_path / "log", tmp_path / "nofail", tmp_path / "store"
    tasks = [Task(k, counted, {"name": k, "log": str(log), "fail_flag": str(flag)}) for k in "ab"]
    run_study(tasks, store=store, max_workers=1, random_seed=3, progressbar=False)
    with pytest.raises(OptionError, match=r"made with random_seed=3, not 4"):
        run_study(tasks, store=store, max_workers=1, random_seed=4)
    changed = [Task("a", counted, {"name": "a", "log": str(log), "fail_flag": "elsewhere"})]
    with pytest.raises(OptionError, match=r"holds task 'a' with another definition"):
        run_study(changed, store=store, max_workers=1, random_seed=3)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OptionError, match=r"non-empty directory without a study manifest"):
        run_study(tasks, store=tmp_path / "other", max_workers=1, random_seed=3)
    assert _calls(log) == ["a", "b"]  # nothing ran in the refused studies
    # new tasks may join a study: the finished ones are kept
    more = tasks + [Task("c", counted, {"name": "c", "log": str(log), "fail_flag": str(flag)})]
    res = run_study(more, store=store, max_workers=1, random_seed=3, progressbar=False)
    assert list(res.results) == ["a", "b", "c"] and _calls(log) == ["a", "b", "c"]


def test_task_fingerprints_are_the_same_in_every_process():
    """A rerun in a new process must recognize its tasks: sets (whose order Python
    randomizes per process) and a GLMM in the kwargs (as the sensitivity refits pass)."""
    import subprocess
    import sys

    code = (
        "import numpy as np, pandas as pd, bayesglmm as bg\n"
        "from bayesglmm import priors as P\n"
        "from bayesglmm.study import Task\n"
        "from bayesglmm.study.tasks import fingerprint\n"
        "d = pd.DataFrame({'g': np.repeat(np.arange(8), 5).astype(str),"
        " 'x': np.linspace(-1, 1, 40), 'y': 0})\n"
        "m = bg.GLMM('y ~ x + (1|g)', d, priors={'x': P.Normal(0, 2), 'g': P.HalfNormal(2.0)})\n"
        "print(fingerprint(Task('a', print, {'model': m, 'tags': {'u', 'v', 'w', 'x'}})))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    digests = {
        subprocess.run(
            [sys.executable, "-c", code], env={**env, "PYTHONHASHSEED": str(h)},
            capture_output=True, text=True, check=True, timeout=300,
        ).stdout.strip()
        for h in (1, 2)
    }  # fmt: skip
    assert len(digests) == 1 and len(digests.pop()) == 32


def test_fit_results_are_stored_with_result_io(tmp_path):
    store = tmp_path / "store"
    tasks = [Task(f"fit{i}", laplace_fit, {}) for i in range(2)]
    first = run_study(tasks, store=store, max_workers=1, random_seed=5, progressbar=False)
    assert len(list((store / "tasks").glob("*.fit.zip"))) == 2
    again = run_study(tasks, store=store, max_workers=1, random_seed=5, progressbar=False)
    assert again.table["resumed"].all()
    for key, fit in first.results.items():
        loaded = again.results[key]
        assert isinstance(loaded, bg.FitResult)
        pd.testing.assert_frame_equal(loaded.table, fit.table)


# ------------------------------------------------------------------------------------------
# arguments


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tasks": "abc"}, r"tasks must be a list of Task"),
        ({"tasks": [("a", print, {})]}, r"tasks\[0\] must be a Task"),
        ({"tasks": [Task("", counted, {})]}, r"tasks\[0\]\.key must be a non-empty string"),
        ({"tasks": [Task("a", 3, {})]}, r"fn must be callable"),
        ({"tasks": [Task("a", counted, {"seed": 1})]}, r"kwargs must not contain 'seed'"),
        ({"random_seed": -1}, r"random_seed must be an integer >= 0"),
        ({"max_workers": 0}, r"max_workers must be a positive integer"),
        ({"progressbar": "yes"}, r"progressbar must be True or False"),
        ({"client": "tcp://127.0.0.1:8786"}, r"client must be a dask\.distributed\.Client"),
        (
            {"client": ThreadPoolExecutor(1), "max_workers": 2},
            r"max_workers sizes the local process pool",
        ),
        ({"store": 3}, r"store must be a directory path"),
        ({"batch_size": 0}, r"batch_size must be a positive integer"),
        ({"batch_size": 4}, r"batch_size groups tasks per submission to a Dask client"),
    ],
)
def test_bad_arguments_are_refused_in_one_line_before_anything_runs(tmp_path, change, message):
    log = tmp_path / "log"
    args = {
        "tasks": [Task(k, counted, {"name": k, "log": str(log), "fail_flag": ""}) for k in "ab"],
        "random_seed": 1,
    }
    args.update(change)
    with pytest.raises(OptionError, match=message) as err:
        run_study(**args)
    assert "\n" not in str(err.value)
    assert not log.exists()


def test_duplicate_keys_are_named(tmp_path):
    tasks = [Task(k, counted, {"name": k, "log": "", "fail_flag": ""}) for k in ("a", "b", "a")]
    with pytest.raises(OptionError, match=r"duplicate task key 'a' \(tasks\[0\] and tasks\[2\]\)"):
        run_study(tasks, random_seed=1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OptionError, match=r"exists and is not a directory"):
        run_study(tasks[:2], store=tmp_path / "file", random_seed=1)


# ------------------------------------------------------------------------------------------
# studies built on the runner


def test_simulation_study_tabulates_bias_mse_and_coverage(tmp_path):
    model = bg.GLMM(FORMULA, _design())
    sim = simulation_study(
        model, ["laplace", "pql"], 4, **TRUTH, max_workers=1, random_seed=2, progressbar=False
    )
    est = sim.estimates
    assert len(est) == 4 * 2 * 3 and set(est["method"]) == {"laplace", "pql"}
    # both methods fit the same simulated data: the same data seed per replication
    rep0 = sim.study.table.set_index("key").loc["rep=0", "seed"]
    data0 = bg.simulate(
        FORMULA,
        _design(),
        **TRUTH,
        random_seed=int(
            np.random.SeedSequence(int(rep0)).spawn(3)[0].generate_state(1, np.uint64)[0]
            >> np.uint64(1)
        ),
    )
    refit = bg.GLMM(FORMULA, data0).fit("laplace")
    got = est[(est["rep"] == 0) & (est["method"] == "laplace")].set_index("parameter")
    np.testing.assert_allclose(got["estimate"], refit.table["estimate"], rtol=1e-10)
    s = sim.summary.set_index(["method", "parameter"])
    g = est[(est["method"] == "pql") & (est["parameter"] == "x")]
    assert s.loc[("pql", "x"), "truth"] == 0.5
    assert s.loc[("pql", "x"), "bias"] == pytest.approx((g["estimate"] - 0.5).mean())
    assert s.loc[("pql", "x"), "mse"] == pytest.approx(((g["estimate"] - 0.5) ** 2).mean())
    covered = ((g["lower"] <= 0.5) & (0.5 <= g["upper"])).mean()
    assert s.loc[("pql", "x"), "coverage"] == pytest.approx(covered)
    assert s.loc[("laplace", "var(g)"), "truth"] == 0.5
    with pytest.raises(OptionError, match=r"methods: unknown method 'laplase'"):
        simulation_study(model, ["laplase"], 2, **TRUTH)
    with pytest.raises(OptionError, match=r"unknown option 'draws' for method 'laplace'"):
        simulation_study(model, "laplace", 2, **TRUTH, fit_options={"laplace": {"draws": 5}})
    with pytest.raises(OptionError, match=r"fixed_effects \(the true values\) must be given"):
        simulation_study(model, "laplace", 2)


def test_parametric_bootstrap_refits_simulations_from_the_estimates():
    data = bg.simulate(FORMULA, _design(), **TRUTH, random_seed=6)
    fit = bg.GLMM(FORMULA, data).fit("laplace")
    boot = parametric_bootstrap(fit, 3, max_workers=1, random_seed=1, progressbar=False)
    s = boot.summary.set_index("parameter")
    assert list(s.index) == list(fit.table.index)
    np.testing.assert_allclose(s["estimate"], fit.table["estimate"])
    assert (s["n"] == 3).all() and (s["lower"] <= s["upper"]).all()
    assert pickle.loads(pickle.dumps(boot.study.results))  # stored values are picklable


def _sbc_simulate(rng):
    theta = rng.normal()
    return np.array([theta]), rng.normal(theta, 1.0, size=5)


def _sbc_sample(data, truth, rng):
    post_sd = 1 / np.sqrt(1 + len(data))  # N(0, 1) prior, N(theta, 1) data: conjugate
    return rng.normal(data.sum() * post_sd**2, post_sd, size=(19, 1))


def test_sbc_replications_run_on_the_runner_with_the_same_ranks():
    from bayesglmm.analysis.sbc import run_sbc

    here = run_sbc(_sbc_simulate, _sbc_sample, 40, ["theta"], 9, 19, bins=5, progressbar=False)
    with ThreadPoolExecutor(2) as pool:
        there = run_sbc(
            _sbc_simulate, _sbc_sample, 40, ["theta"], 9, 19, bins=5, progressbar=False,
            client=pool, max_workers=None,
        )  # fmt: skip
    np.testing.assert_array_equal(here.ranks, there.ranks)
    # the stream of replication r is default_rng([seed, r]), as before the runner
    rng = np.random.default_rng([9, 3])
    truth, data = _sbc_simulate(rng)
    draws = _sbc_sample(data, truth, rng)
    less = int((draws < truth).sum())
    assert here.ranks[3, 0] == less + rng.integers(0, 1)


# ------------------------------------------------------------------------------------------
# Dask: tasks in batches


def _lost_with_s2(items, where):
    """A batch holding task ``s=2`` is lost (as with a killed worker)."""
    if any(item[0] == "s=2" for item in items):
        raise RuntimeError("the batch's worker was lost")
    from bayesglmm.analysis.study.workers import execute_batch

    return execute_batch(items, where)


def test_dask_batches_give_the_same_records_as_single_tasks(tmp_path, monkeypatch):
    from distributed import Client, LocalCluster

    from bayesglmm.analysis.study import _dask

    log, flag = tmp_path / "log", tmp_path / "fail"
    flag.touch()  # task "b" raises
    tasks = [Task(f"s={s}", seeded_draw, {"scale": s + 0.5}) for s in range(11)]
    tasks.insert(4, Task("b", counted, {"name": "b", "log": str(log), "fail_flag": str(flag)}))
    with pytest.warns(RuntimeWarning, match=r"1 of 12 study tasks failed"):
        serial = run_study(tasks, max_workers=1, random_seed=5, progressbar=False)
    submitted = []
    real_submit = Client.submit

    def counting_submit(self, fn, *args, **kwargs):
        submitted.append(fn.__name__)
        return real_submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(Client, "submit", counting_submit)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                     dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        runs = {}
        for size in (1, 5, None, "lost"):
            submitted.clear()
            if size == "lost":
                monkeypatch.setattr(_dask, "execute_batch", _lost_with_s2)
            with pytest.warns(RuntimeWarning, match=r"1 of 12 study tasks failed"):
                runs[size] = run_study(
                    tasks, client=client, random_seed=5, progressbar=False,
                    batch_size=5 if size == "lost" else size, store=tmp_path / f"store-{size}",
                )  # fmt: skip
            runs[size].submitted = list(submitted)
    assert runs[1].submitted == ["execute"] * 12
    assert runs[5].submitted == ["execute_batch"] * 3  # 5 + 5 + 2 tasks
    # automatic: 2 * 2 tasks alone, then 8 remaining in batches of 8 // (4 * 2) = 1 task
    assert runs[None].submitted == ["execute"] * 12
    # the lost batch of 5 (s=0..s=3 and b) is sent again one task at a time
    assert runs["lost"].submitted == ["_lost_with_s2"] * 3 + ["execute"] * 5
    for size, res in runs.items():
        assert res.failed == ["b"], size
        assert list(res.results) == list(serial.results)
        for key, rec in serial.results.items():
            assert (res.results[key]["value"], res.results[key]["seed"]) == (
                rec["value"],
                rec["seed"],
            )
        table = res.table.drop(columns=["seconds", "worker", "error"])
        pd.testing.assert_frame_equal(
            table, serial.table.drop(columns=["seconds", "worker", "error"])
        )
        # each task has its own record in the store, batch or not
        assert len(list((tmp_path / f"store-{size}" / "tasks").glob("*.pkl"))) == 12


def test_automatic_batches_hold_about_a_second_of_work_and_balance_the_workers():
    from bayesglmm.analysis.study._dask import auto_batch_size

    assert auto_batch_size([0.1, 0.1, 0.09, 5.0], 1000, 2) == 10  # median 0.1 s
    assert auto_batch_size([0.1] * 4, 40, 2) == 5  # 40 // (4 * 2): the workers balance
    assert auto_batch_size([2.0, 3.0], 1000, 2) == 1  # long tasks go alone
    assert auto_batch_size([float("nan")], 1000, 2) == 1  # nothing finished: alone
    assert auto_batch_size([1e-6] * 4, 7, 2) == 1
