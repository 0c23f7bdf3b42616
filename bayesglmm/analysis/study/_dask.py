"""Running a study's tasks on a ``dask.distributed`` cluster (imported only when used)."""

from __future__ import annotations

import os
import socket
import statistics

from distributed import as_completed
from distributed.diagnostics.plugin import WorkerPlugin

from ..._warn import warn
from .tasks import ClusterError
from .workers import (
    claim_compiledir,
    compile_dir_report,
    execute,
    execute_batch,
    failed_record,
    shared_cache_message,
)

PLUGIN_NAME = "bayesglmm-study-compiledir"


class CompiledirPlugin(WorkerPlugin):
    """Gives every worker its own PyTensor compile directory as it starts (also a worker
    that the nanny restarts after a crash: the scheduler hands it the plugins again).

    A worker running in the process that registers the plugin (a cluster with
    ``processes=False``) is left alone: that process is the user's, and its environment
    and compile directory stay theirs."""

    idempotent = True

    def __init__(self, root: str) -> None:
        self.root = root
        self.driver = (socket.gethostname(), os.getpid())

    def setup(self, worker) -> None:
        if (socket.gethostname(), os.getpid()) != self.driver:
            claim_compiledir(self.root)


#: automatic batches: aim at this many seconds of work per submission
BATCH_SECONDS = 1.0
#: automatic batches: at least this many submissions per worker of the remaining tasks
BATCHES_PER_WORKER = 4


def run_dask(
    client,
    pending,
    seeds: dict,
    root: str,
    worker_timeout: float | None = 60.0,
    batch_size: int | None = None,
):
    """Yield one record per task as it finishes on the cluster (a lost task: failed).

    ``batch_size`` tasks go to the cluster in one submission (:func:`execute_batch`), which
    saves the scheduler's per-task cost on short tasks; None sizes the batches from the
    first tasks' run times (:func:`auto_batch_size`). A batch yields the same records as
    its tasks sent alone (each with its own seed); a batch whose submission fails (e.g. its
    worker was lost) is sent again one task per submission, so that a task fails alone.
    """
    _connect(client, root, worker_timeout)
    n_workers = max(1, sum(client.nthreads().values()))  # tasks the cluster runs at once
    todo = list(pending)
    ac = as_completed()
    futures: dict[str, tuple] = {}  # future key -> (future, its tasks)

    def submit(batch) -> None:
        if len(batch) == 1:
            t = batch[0]
            fut = client.submit(
                execute, t.key, t.fn, dict(t.kwargs), seeds[t.key], "dask", pure=False
            )
        else:
            items = [(t.key, t.fn, dict(t.kwargs), seeds[t.key]) for t in batch]
            fut = client.submit(execute_batch, items, "dask", pure=False)
        futures[fut.key] = (fut, batch)
        ac.add(fut)

    if batch_size is None:  # probe: a few tasks alone, then size the batches from them
        probe, todo = todo[: 2 * n_workers], todo[2 * n_workers :]
    else:
        probe = []
    for t in probe:
        submit([t])
    seconds: list[float] = []
    try:
        if batch_size is not None:
            _submit_batches(submit, todo, batch_size)
            todo = []
        for fut in ac:
            batch = futures.pop(fut.key)[1]
            try:
                out = fut.result()
            except Exception as err:  # noqa: BLE001 - e.g. KilledWorker: recorded, retried
                out = err
            fut.release()
            if isinstance(out, Exception) and len(batch) > 1:
                for t in batch:  # each task again alone: only the culprit fails
                    submit([t])
                continue
            if isinstance(out, Exception):
                out = failed_record(batch[0].key, seeds[batch[0].key], out, "driver")
            recs = out if isinstance(out, list) else [out]
            for rec in recs:
                if rec.get("status") == "done":
                    seconds.append(rec["seconds"])
                yield rec
            if todo and (len(seconds) >= n_workers or not futures):
                size = auto_batch_size(seconds, len(todo), n_workers)
                _submit_batches(submit, todo, size)
                todo = []
    finally:
        for fut, _ in futures.values():
            if not fut.done():
                fut.cancel()


def _submit_batches(submit, todo, size: int) -> None:
    for i in range(0, len(todo), size):
        submit(todo[i : i + size])


def auto_batch_size(seconds, n_remaining: int, n_workers: int) -> int:
    """Tasks per submission: about :data:`BATCH_SECONDS` of work by the median run time of
    the tasks done so far, with at least :data:`BATCHES_PER_WORKER` submissions per worker
    of the remaining tasks (so that the last ones do not wait on one busy worker)."""
    finite = [s for s in seconds if s == s and s > 0]
    if not finite:
        return 1
    by_time = int(BATCH_SECONDS / statistics.median(finite))
    by_balance = n_remaining // (BATCHES_PER_WORKER * n_workers)
    return max(1, min(by_time, by_balance))


def _connect(client, root: str, worker_timeout: float | None) -> None:
    """Register the compile-directory plugin and wait for a worker, or one
    :class:`ClusterError` saying what is wrong with the cluster."""
    address = scheduler_address(client)
    unreachable = (
        f"the Dask scheduler at {address} is not reachable (the client is {client.status}): "
        "start it again, or connect a new Client"
    )
    if client.status in ("closing", "closed") or getattr(client, "scheduler", None) is None:
        raise ClusterError(unreachable)
    try:
        client.register_plugin(CompiledirPlugin(root), name=PLUGIN_NAME)
    except (OSError, AttributeError) as err:  # CommClosedError, a timeout, a closed client
        raise ClusterError(f"{unreachable}; {type(err).__name__}: {err}") from None
    try:
        client.wait_for_workers(1, timeout=worker_timeout)
    except TimeoutError:
        raise ClusterError(
            f"the Dask cluster at {address} has no worker after waiting {worker_timeout:g} s "
            "(worker_timeout): start workers for it, or pass a larger worker_timeout"
        ) from None
    except (OSError, AttributeError) as err:
        raise ClusterError(f"{unreachable}; {type(err).__name__}: {err}") from None
    shared = [
        addr
        for addr, rep in client.run(compile_dir_report).items()
        if rep["pytensor"] is not None and rep["pytensor"] != rep["claimed"]
    ]
    if shared:
        warn(shared_cache_message(shared), RuntimeWarning)


def scheduler_address(client) -> str:
    """The scheduler's address as the client knows it (also once the connection is lost)."""
    for get in (
        lambda: client.scheduler.address,
        lambda: client.cluster.scheduler_address,
        lambda: client._start_arg,
    ):
        try:
            addr = get()
        except Exception:  # noqa: BLE001 - closed client, no cluster object
            continue
        if isinstance(addr, str) and addr:
            return addr
    return "(unknown address)"
