"""What runs on a study's workers: the task wrapper and each worker's own PyTensor cache.

PyTensor's compile cache is not safe for concurrent writers (PyMC's tracker, GitHub #7819), so every
worker process gets its own ``base_compiledir`` before PyTensor is imported there: a
*slot* directory ``<root>/<host>-<n>`` that the process holds with an exclusive
``flock`` for its lifetime. Slots are reused by later workers and later studies (a warm
cache), but never by two live processes at once. The root is ``$BAYESGLMM_STUDY_COMPILEDIR``
or ``<tempdir>/bayesglmm-compiledir-<user>``. The local pool sets this in its initializer,
a Dask cluster in a worker plugin (:mod:`bayesglmm.study._dask`) that every worker runs when
it starts (also a worker restarted after a crash). PyTensor reads ``base_compiledir`` once,
on import: a worker that imported it before (e.g. a Dask worker reused from earlier work)
keeps its directory, and :func:`compile_dir_report` says so.
"""

from __future__ import annotations

import atexit
import getpass
import os
import socket
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

#: environment variable naming the root of the per-worker compile directories
ROOT_ENV = "BAYESGLMM_STUDY_COMPILEDIR"
_SLOT_LOCK = None  # the open lock file of this process's slot (held until exit)
_SLOT_DIR: str | None = None


def compile_root() -> Path:
    root = os.environ.get(ROOT_ENV)
    if root:
        return Path(root)
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"bayesglmm-compiledir-{user}"


def claim_compiledir(root: str | os.PathLike | None = None) -> str:
    """Give this process its own PyTensor ``base_compiledir`` (before PyTensor's import).

    Returns the directory. Appends ``base_compiledir=...`` to ``PYTENSOR_FLAGS`` (later
    entries win there), keeping the flags already set (the user's own).
    """
    global _SLOT_LOCK, _SLOT_DIR
    if _SLOT_DIR is not None:
        return _SLOT_DIR
    root = Path(root) if root is not None else compile_root()
    _SLOT_LOCK, slot = claim_slot(root)
    if _SLOT_LOCK is not None:
        atexit.register(_SLOT_LOCK.close)  # held for the life of the process
    slot.mkdir(exist_ok=True)
    _SLOT_DIR = str(slot)
    if "pytensor" not in sys.modules:
        flags = os.environ.get("PYTENSOR_FLAGS", "")
        os.environ["PYTENSOR_FLAGS"] = f"{flags},base_compiledir={slot}".lstrip(",")
    else:
        warnings.warn(shared_cache_message([os.getpid()]), RuntimeWarning, stacklevel=2)
    return _SLOT_DIR


def shared_cache_message(workers) -> str:
    return (
        f"worker(s) {', '.join(map(str, workers))} imported PyTensor before bayesglmm.study "
        "could give them their own compile directory, so they share one (unsafe for "
        "concurrent compiles, PyMC GitHub #7819): import pymc inside the task function (not at "
        "the top of the script that starts the study), or restart the Dask workers"
    )


def claim_slot(root: Path):
    """The first free slot directory ``<root>/<host>-<n>`` and its held lock file."""
    root.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0] or "host"
    try:
        import fcntl
    except ImportError:  # no flock: a directory per process (cold cache, still private)
        return None, root / f"{host}-pid{os.getpid()}"
    for n in range(10_000):
        fh = open(root / f"{host}-{n}.lock", "a+")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        return fh, root / f"{host}-{n}"
    return None, root / f"{host}-pid{os.getpid()}"  # pragma: no cover - 10,000 live workers


def compile_dir_report() -> dict:
    """This process's compile directory: claimed, in use by PyTensor, and whether they agree."""
    used = None
    if "pytensor" in sys.modules:
        used = str(sys.modules["pytensor"].config.base_compiledir)
    return {"pid": os.getpid(), "claimed": _SLOT_DIR, "pytensor": used}


def init_local_worker(root: str, blas_threads: int | None) -> None:
    """Initializer of the local process pool: compile directory, then BLAS threads."""
    claim_compiledir(root)
    if blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(blas_threads)  # kept for the life of the worker


def execute(key: str, fn, kwargs: dict, seed: int, where: str) -> dict:
    """Run one task on a worker; a raised error becomes a ``"failed"`` record."""
    start = time.perf_counter()
    worker = _worker_name(where)
    try:
        value = fn(**kwargs, seed=seed)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - recorded, retried on resume
        rec = failed_record(key, seed, err, where)
        rec["seconds"], rec["traceback"] = time.perf_counter() - start, traceback.format_exc()
        return rec
    return {
        "key": key,
        "status": "done",
        "seconds": time.perf_counter() - start,
        "worker": worker,
        "error": None,
        "seed": seed,
        "value": value,
    }


def execute_batch(items: list, where: str) -> list[dict]:
    """:func:`execute` of several tasks ``(key, fn, kwargs, seed)`` in turn, on one worker,
    for one submission: a record per task, as if each had been sent alone."""
    return [execute(key, fn, kwargs, seed, where) for key, fn, kwargs, seed in items]


def _worker_name(where: str) -> str:
    if where == "dask":
        try:
            from distributed import get_worker

            return str(get_worker().address)
        except Exception:  # noqa: BLE001
            pass
    return f"{socket.gethostname().split('.')[0]}:{os.getpid()}"


def execute_pickled(key: str, payload: bytes, seed: int, where: str) -> bytes:
    """:func:`execute` of ``(fn, kwargs)`` sent as cloudpickle bytes (functions defined in
    a notebook or a script's ``__main__``, lambdas and closures travel by value, as on Dask).

    Returns the record pickled here, so that a value that cannot be pickled fails its own
    task with the pickling error instead of reaching the pool's machinery."""
    import pickle

    try:
        fn, kwargs = pickle.loads(payload)
    except Exception as err:  # noqa: BLE001
        rec = failed_record(key, seed, err, where)
        rec["error"] = f"could not load the task on its worker: {rec['error']}"
    else:
        rec = execute(key, fn, kwargs, seed, where)
    try:
        return pickle.dumps(rec, protocol=4)
    except Exception as err:  # noqa: BLE001 - e.g. a value holding a lock or a generator
        bad = failed_record(key, seed, err, where)
        bad["error"] = f"the task's value cannot be pickled (sent back or stored): {bad['error']}"
        bad["seconds"] = rec.get("seconds", float("nan"))
        try:
            return pickle.dumps(bad, protocol=4)
        except Exception:  # noqa: BLE001 - the exception itself does not pickle
            bad["exception"] = None
            return pickle.dumps(bad, protocol=4)


def failed_record(key: str, seed: int, err: BaseException, where: str) -> dict:
    """The record of a task that raised ``err`` (or whose worker was lost)."""
    text = "".join(traceback.format_exception_only(type(err), err)).strip()
    return {
        "key": key,
        "status": "failed",
        "seconds": float("nan"),
        "worker": _worker_name(where) if where != "driver" else None,
        "error": text,
        "traceback": None,
        "seed": seed,
        "value": None,
        "exception": _picklable(err),  # not stored (the store keeps the text)
    }


def _picklable(err: BaseException) -> BaseException | None:
    import pickle

    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001
        return None
    return err
