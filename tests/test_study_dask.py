"""The study runner on a Dask cluster, killed halfway and restarted.

"A study of 40 fits on a dask.distributed.LocalCluster that is killed halfway (the process
or a worker) and restarted finishes with all 40 results, no duplicates, and results
identical to a run on a process pool with the same seeds." Here both happen: the study
runs in a subprocess that is killed (its whole process group: driver, scheduler, workers)
once 20 results are in the store; the rerun, on a new LocalCluster, loses one worker
(SIGKILL) midway. The 40 fits are Laplace fits of a small simulated logistic GLMM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bayesglmm as bg
from bayesglmm import priors as P
from bayesglmm.analysis.study.simulation import simulation_study

N_FITS = 40
SEED = 2026
FORMULA = "y ~ x + (1|g)"
TRUTH = {"fixed_effects": {"Intercept": 0.2, "x": 0.5}, "variance_components": {"g": 0.5}}
#: seconds to wait for the study to reach a given number of stored results (a hang, not a
#: slow machine: 40 fits take ~10 s on 2 cores)
WAIT = 300


def _model() -> bg.GLMM:
    data = pd.DataFrame(
        {"g": np.repeat(np.arange(8), 5).astype(str), "x": np.linspace(-1, 1, 40), "y": 0}
    )
    # user priors make the study's definition hold a set (PriorSet.user_keys), whose order
    # differs between processes: the store's fingerprints must not
    return bg.GLMM(FORMULA, data, priors={"x": P.Normal(0, 2), "g": P.HalfNormal(2.0)})


def run_on_cluster(store: str, kill_worker_at: int | None = None):
    """The study on a fresh two-worker LocalCluster; optionally SIGKILL one worker once
    ``kill_worker_at`` results are stored. Returns the study and the count at the kill."""
    from distributed import Client, LocalCluster

    killed = {}
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        if kill_worker_at is not None:
            pid = next(iter(client.run(os.getpid).values()))

            def kill():
                killed["at"] = _wait_for(store, kill_worker_at)
                os.kill(pid, signal.SIGKILL)

            watcher = threading.Thread(target=kill, daemon=True)
            watcher.start()
        study = simulation_study(
            _model(), "laplace", N_FITS, **TRUTH, store=store, client=client,
            random_seed=SEED, progressbar=False,
        )  # fmt: skip
        claimed = client.run(_claimed)
        # PyTensor, imported here on one worker (~3 s), compiles in the directory it claimed
        first = sorted(claimed)[0]
        used = client.run(_pytensor_compiledir, workers=[first])[first]
    return study, killed.get("at"), (claimed, claimed[first], used)


def _claimed() -> str:
    from bayesglmm.analysis.study import workers

    return workers._SLOT_DIR


def _pytensor_compiledir() -> str:
    import pytensor

    return str(pytensor.config.base_compiledir)


def _stored(store) -> int:
    return len(list((Path(store) / "tasks").glob("*.pkl")))


def _wait_for(store, n: int) -> int:
    deadline = time.monotonic() + WAIT
    while (count := _stored(store)) < n:
        assert time.monotonic() < deadline, f"only {count} of {n} results after {WAIT} s"
        time.sleep(0.02)
    return count


def test_killed_study_on_a_local_cluster_resumes_to_the_process_pool_results(tmp_path, monkeypatch):
    root = tmp_path / "compiledirs"
    monkeypatch.setenv("BAYESGLMM_STUDY_COMPILEDIR", str(root))
    store = tmp_path / "store"
    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_study_dask import run_on_cluster\n"
        f"run_on_cluster({str(store)!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        at_kill = _wait_for(store, N_FITS // 2)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, scheduler and workers at once
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert at_kill < N_FITS, "the study finished before it was killed: nothing was tested"
    n_before = _stored(store)
    assert N_FITS // 2 <= n_before < N_FITS

    study, at_worker_kill, compiledirs = run_on_cluster(str(store), n_before + 3)
    assert at_worker_kill is not None and at_worker_kill < N_FITS

    table = study.study.table
    assert len(table) == N_FITS and table["status"].eq("done").all()
    assert table["resumed"].sum() == n_before  # finished work was not redone
    assert table["key"].is_unique and _stored(store) == N_FITS  # no duplicates
    assert not list((store / "tasks").glob(".tmp-*"))

    pool = simulation_study(
        _model(), "laplace", N_FITS, **TRUTH, max_workers=2, random_seed=SEED, progressbar=False
    )
    cols = ["rep", "method", "parameter", "truth", "estimate", "std_error", "lower", "upper"]
    pd.testing.assert_frame_equal(study.estimates[cols], pool.estimates[cols], check_exact=True)
    pd.testing.assert_frame_equal(study.summary, pool.summary, check_exact=True)

    # every live Dask worker (the restarted one too) has its own compile directory
    claimed, first, used = compiledirs
    assert len(claimed) == 2 and len(set(claimed.values())) == 2
    assert all(Path(c).parent == root for c in claimed.values())
    assert used == first
