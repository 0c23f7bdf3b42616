"""Running a study's tasks on a ``dask.distributed`` cluster (imported only when used)."""

from __future__ import annotations

import os
import socket

from distributed import as_completed
from distributed.diagnostics.plugin import WorkerPlugin

from ..._warn import warn
from .tasks import ClusterError
from .workers import (
    claim_compiledir,
    compile_dir_report,
    execute,
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


def run_dask(client, pending, seeds: dict, root: str, worker_timeout: float | None = 60.0):
    """Yield one record per task as it finishes on the cluster (a lost task: failed)."""
    _connect(client, root, worker_timeout)
    futures = {}
    for t in pending:
        fut = client.submit(execute, t.key, t.fn, dict(t.kwargs), seeds[t.key], "dask", pure=False)
        futures[fut.key] = (fut, t.key)
    try:
        for fut in as_completed([f for f, _ in futures.values()]):
            key = futures[fut.key][1]
            try:
                rec = fut.result()
            except Exception as err:  # noqa: BLE001 - e.g. KilledWorker: recorded, retried
                rec = failed_record(key, seeds[key], err, "driver")
            fut.release()
            yield rec
    finally:
        for fut, _ in futures.values():
            if not fut.done():
                fut.cancel()


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
