"""Running a study's tasks on a ``dask.distributed`` cluster (imported only when used)."""

from __future__ import annotations

import os
import socket
import warnings

from distributed import as_completed
from distributed.diagnostics.plugin import WorkerPlugin

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


def run_dask(client, pending, seeds: dict, root: str):
    """Yield one record per task as it finishes on the cluster (a lost task: failed)."""
    client.register_plugin(CompiledirPlugin(root), name=PLUGIN_NAME)
    shared = [
        addr
        for addr, rep in client.run(compile_dir_report).items()
        if rep["pytensor"] is not None and rep["pytensor"] != rep["claimed"]
    ]
    if shared:
        warnings.warn(shared_cache_message(shared), RuntimeWarning, stacklevel=4)
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
