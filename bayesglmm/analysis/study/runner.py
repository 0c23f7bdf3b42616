"""``run_study``: run independent tasks on a process pool or a Dask cluster, resumably."""

from __future__ import annotations

import os
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..._warn import warn as warn_user
from ...errors import OptionError
from ...options import tqdm_progress
from .pool import run_pool
from .store import ResultStore
from .tasks import Task, check_arguments, check_tasks, derive_seed, fingerprint, is_dask_client
from .workers import compile_root, execute, failed_record

#: columns of :attr:`StudyResult.table`, in this order
TABLE_COLUMNS = ("key", "status", "seconds", "worker", "error", "seed", "resumed")


@dataclass
class StudyResult:
    """What :func:`run_study` returns.

    Attributes
    ----------
    results : dict
        Task key -> the value its function returned, in task order; finished tasks only.
    table : pandas.DataFrame
        One row per task, in task order: ``key``, ``status`` (``"done"`` or ``"failed"``),
        ``seconds``, ``worker``, ``error`` (the exception's text), ``seed`` (the derived
        seed the function got) and ``resumed`` (True when read back from the store).
    random_seed : int
        The study's seed (drawn afresh when None was given and no store held one).
    store : pathlib.Path or None
    """

    results: dict
    table: pd.DataFrame
    random_seed: int
    store: Path | None = None
    tracebacks: dict = field(default_factory=dict, repr=False)
    exceptions: dict = field(default_factory=dict, repr=False)

    @property
    def failed(self) -> list[str]:
        """Keys of the tasks that raised (rerun with the same store to retry them)."""
        return self.table.loc[self.table["status"] == "failed", "key"].tolist()

    def __repr__(self) -> str:
        n = len(self.table)
        done = int((self.table["status"] == "done").sum()) if n else 0
        return (
            f"StudyResult({done} of {n} tasks done, {len(self.failed)} failed, "
            f"random_seed={self.random_seed}, store={str(self.store) if self.store else None})"
        )


def run_study(
    tasks: list[Task],
    store=None,
    client=None,
    max_workers: int | None = None,
    random_seed: int | None = None,
    progressbar: bool | None = None,
    worker_timeout: float | None = 60.0,
    batch_size: int | None = None,
) -> StudyResult:
    """Run independent tasks, each with its own derived seed, and collect their values.

    Each task runs as ``task.fn(**task.kwargs, seed=s)`` where ``s`` =
    :func:`~bayesglmm.study.derive_seed` ``(random_seed, task.key)``: the study repeats
    exactly whatever the number of workers or the order in which tasks finish.

    Parameters
    ----------
    tasks : list of Task
        Keys must be unique (checked before anything runs).
    store : str or path, optional
        A directory. Each finished task is written there at once, atomically; a rerun with
        the same store skips the finished tasks and retries the failed ones. A store made
        with another ``random_seed``, or holding a task of the same key with another
        definition, is refused.
    client : dask.distributed.Client or concurrent.futures.Executor, optional
        Run on this cluster (``client.submit`` and ``as_completed``); default: a local
        process pool.
    max_workers : int, optional
        Processes of the local pool (default: the CPUs, at most one per task); 1 runs the
        tasks in this process, one after another. Not with ``client``. The pool is started
        by the first study that needs it and reused by the next ones in this process (its
        workers import the package once); ``pool.shutdown_pools()`` stops it (e.g. for the
        workers to see a module edited since: they keep the modules they imported).
    random_seed : int, optional
        The study's seed; None: the store's, or fresh entropy (``StudyResult.random_seed``).
    progressbar : bool, optional
        None: a bar once the study has run a second; False: none; True: always.
    worker_timeout : float or None
        Seconds to wait for a Dask cluster to have at least one worker before the study
        starts; then :class:`~bayesglmm.analysis.study.ClusterError` (None: wait forever).
        A scheduler that cannot be reached raises it at once.
    batch_size : int, optional
        With a Dask client: tasks sent to a worker in one submission, which saves the
        scheduler's cost per task (milliseconds) on short tasks. None: the first few tasks
        go alone and the rest in batches of about a second of work each by their median run
        time (one task per batch for tasks of a second or more), at least four batches per
        worker. Results, seeds, records and store files are the same whatever the batches;
        a finished task reaches the store when its batch returns.

    Returns
    -------
    StudyResult
        ``.results`` (key -> value, finished tasks, in task order) and ``.table``.

    Notes
    -----
    A task that raises (``sys.exit()`` included) is recorded as ``"failed"`` with its error
    text (and traceback in ``.tracebacks``) and does not stop the study; so is a task whose
    value cannot be pickled or stored, with the pickling error. On the local pool a task
    that kills its worker process fails alone: the tasks the broken pool held are run again
    one at a time (:mod:`bayesglmm.analysis.study.pool`). A store that cannot be written is
    read without running anything. Every
    worker process gets its own PyTensor compile directory (:mod:`bayesglmm.study.workers`).
    """
    return run_tasks(
        tasks,
        store,
        client,
        max_workers,
        random_seed,
        progressbar,
        worker_timeout=worker_timeout,
        batch_size=batch_size,
    )


def run_tasks(
    tasks,
    store,
    client,
    max_workers,
    random_seed,
    progressbar,
    desc="study",
    warn=True,
    worker_timeout=60.0,
    batch_size=None,
):
    """:func:`run_study` with the progress bar's label, and without the warning about
    failed tasks when ``warn`` is False (for callers in the package)."""
    tasks = check_tasks(tasks)
    args = check_arguments(
        store, client, max_workers, random_seed, progressbar, worker_timeout, batch_size
    )
    args["desc"] = desc
    random_seed = args["random_seed"]
    st = ResultStore(store) if store is not None else None
    # fingerprints pickle the kwargs: only a store needs them
    prints = {t.key: fingerprint(t) if st is not None else None for t in tasks}
    try:
        if st is not None:
            random_seed = st.open(random_seed, prints)
        elif random_seed is None:
            random_seed = int(np.random.SeedSequence().entropy)
        seeds = {t.key: derive_seed(random_seed, t.key) for t in tasks}
        records: dict[str, dict] = {}
        if st is not None:
            for t in tasks:
                rec = st.load(t.key, prints[t.key])
                if rec is not None and rec["status"] == "done":
                    records[t.key] = {**rec, "resumed": True}
        pending = [t for t in tasks if t.key not in records]
        if st is not None and st.read_only and pending:
            pending = _read_only(st, pending, prints, records)
        _run_pending(pending, seeds, prints, records, st, args, len(tasks))
    finally:
        if st is not None:
            st.close()
    return _collect(tasks, records, random_seed, st, warn)


def _read_only(st, pending, prints, records) -> list:
    """A store that cannot be written is read, not run: its failed tasks are reported as
    stored, and a task it does not hold is refused."""
    for t in pending:
        rec = st.load(t.key, prints[t.key])
        if rec is not None:
            records[t.key] = {**rec, "resumed": True}
    missing = [t.key for t in pending if t.key not in records]
    if missing:
        raise OptionError(
            f"store {str(st.path)!r} cannot be written ({st.read_only}) and has no result for "
            f"{len(missing)} task(s) (first: {missing[0]!r}): copy it to a writable directory "
            "to run them"
        )
    return []


def _run_pending(pending, seeds, prints, records, st, args, n_total) -> None:
    from tqdm.auto import tqdm

    if not pending:
        return
    bar = tqdm(
        total=n_total,
        initial=n_total - len(pending),
        desc=args["desc"],
        unit="task",
        **tqdm_progress(args["progressbar"]),
    )
    try:
        for rec in _execute(pending, seeds, args):
            rec["fingerprint"] = prints[rec["key"]]
            rec["resumed"] = False
            if st is not None:
                try:
                    st.save(rec)
                except Exception as err:  # noqa: BLE001 - e.g. an unpicklable value
                    rec = {
                        **failed_record(rec["key"], rec["seed"], err, "driver"),
                        "fingerprint": rec["fingerprint"],
                        "resumed": False,
                    }
                    rec["error"] = f"could not store the value: {rec['error']}"
                    try:  # the failure itself is stored (the task is retried on resume)
                        st.save(rec)
                    except Exception:  # noqa: BLE001, S110 - the store is unwritable: in memory
                        pass
            records[rec["key"]] = rec
            bar.update(1)
            if rec["status"] == "failed":
                bar.set_postfix(
                    failed=sum(r["status"] == "failed" for r in records.values()), refresh=False
                )
    finally:
        bar.close()


def _execute(pending, seeds, args):
    client, n = args["client"], args["max_workers"]
    if client is not None and is_dask_client(client):
        from ._dask import run_dask

        yield from run_dask(
            client,
            pending,
            seeds,
            str(compile_root()),
            args["worker_timeout"],
            args["batch_size"],
        )
    elif client is not None:
        yield from _run_executor(client, pending, seeds)
    else:
        n = n or min(os.cpu_count() or 1, len(pending))
        if n == 1:
            for t in pending:
                yield execute(t.key, t.fn, dict(t.kwargs), seeds[t.key], "local")
        else:
            yield from run_pool(pending, seeds, n)


def _run_executor(executor: Executor, pending, seeds):
    futures = {
        executor.submit(execute, t.key, t.fn, dict(t.kwargs), seeds[t.key], "local"): t.key
        for t in pending
    }
    try:
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as err:  # noqa: BLE001 - lost worker, unpicklable value, ...
                yield failed_record(futures[fut], seeds[futures[fut]], err, "driver")
    finally:
        for fut in futures:
            fut.cancel()


def _collect(tasks, records, random_seed, st, warn=True) -> StudyResult:
    rows, results, tracebacks, exceptions = [], {}, {}, {}
    for t in tasks:
        rec = records.get(t.key)
        if rec is None:  # interrupted before it ran
            rows.append({"key": t.key, "status": "pending"})
            continue
        rows.append({c: rec.get(c) for c in TABLE_COLUMNS})
        if rec["status"] == "done":
            results[t.key] = rec["value"]
        else:
            if rec.get("traceback"):
                tracebacks[t.key] = rec["traceback"]
            if rec.get("exception") is not None:
                exceptions[t.key] = rec["exception"]
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    table["seconds"] = table["seconds"].astype(float)
    out = StudyResult(
        results, table, int(random_seed), st.path if st else None, tracebacks, exceptions
    )
    if out.failed and warn:
        first = table.loc[table["status"] == "failed"].iloc[0]
        warn_user(
            f"{len(out.failed)} of {len(tasks)} study tasks failed (first: {first['key']!r}: "
            f"{first['error']}); see .table, rerun with the same store to retry them",
            RuntimeWarning,
        )
    return out
