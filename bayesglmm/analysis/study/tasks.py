"""Tasks of a study, their derived seeds and the one-line checks of :func:`run_study`'s input."""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import pickle
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import BayesGLMMError, OptionError
from ...options import flag, integer, real, seed


class ClusterError(BayesGLMMError, ConnectionError):
    """The Dask cluster given to a study cannot run it: its scheduler is not reachable, or
    it has no worker within ``worker_timeout`` seconds."""


@dataclass(frozen=True)
class Task:
    """One independent unit of a study: ``fn(**kwargs, seed=<derived seed>)``.

    Parameters
    ----------
    key : str
        Names the task in the results, the table and the store; unique within a study.
    fn : callable
        A picklable function (defined at module level) run on a worker. It receives the
        keywords ``kwargs`` and ``seed``, an integer derived from the study's
        ``random_seed`` and ``key`` (:func:`derive_seed`), and returns a picklable value.
    kwargs : dict
        Keywords of ``fn`` (``seed`` excluded).
    """

    key: str
    fn: Callable
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def derive_seed(random_seed: int, key: str) -> int:
    """The seed of task ``key`` in a study seeded with ``random_seed``, in ``[0, 2**63)``.

    A :class:`numpy.random.SeedSequence` of ``random_seed`` and the SHA-256 digest of the
    key's UTF-8 bytes (stable across processes and machines, unlike Python's ``hash``):
    it depends on neither the order of the tasks nor the worker that runs them.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    state = np.random.SeedSequence([int(random_seed), *words]).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


def fingerprint(task: Task) -> str:
    """A digest of the task's definition (function name and keywords) for the store.

    The keywords are pickled with sets in sorted order, so that the digest is the same in
    every process (Python randomizes the order of a set of strings per process).
    """
    name = f"{getattr(task.fn, '__module__', '?')}.{getattr(task.fn, '__qualname__', task.fn)}"
    kwargs = dict(task.kwargs)
    try:
        body = _canonical_dumps(kwargs, pickle.Pickler)
    except Exception:  # noqa: BLE001 - e.g. lambdas in kwargs, which Dask pickles by value
        try:
            import cloudpickle

            body = _canonical_dumps(kwargs, cloudpickle.CloudPickler)
        except Exception:  # noqa: BLE001
            body = repr(sorted(kwargs.items(), key=lambda kv: kv[0])).encode()
    return hashlib.sha256(name.encode() + b"\0" + body).hexdigest()[:32]


class _CanonicalPickler(pickle._Pickler):
    """The pure-Python pickler (whose dispatch table can be extended) with sets sorted."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_set(self, obj):
        self.save_reduce(type(obj), (sorted(obj, key=repr),), obj=obj)

    def _save_module(self, obj):  # by name (a model's design holds its formula's modules)
        self.save_reduce(importlib.import_module, (obj.__name__,), obj=obj)

    dispatch[set] = _save_set
    dispatch[frozenset] = _save_set
    dispatch[types.ModuleType] = _save_module


def _canonical_dumps(obj, base) -> bytes:
    buf = io.BytesIO()
    (_CanonicalPickler if base is pickle.Pickler else base)(buf, protocol=4).dump(obj)
    return buf.getvalue()


def check_tasks(tasks) -> list[Task]:
    """The tasks as a list, or one :class:`OptionError` naming the first bad or repeated one."""
    if isinstance(tasks, str | bytes | Mapping) or not hasattr(tasks, "__iter__"):
        raise OptionError(f"tasks must be a list of Task, got {type(tasks).__name__}")
    tasks = list(tasks)
    seen: dict[str, int] = {}
    for i, t in enumerate(tasks):
        if not isinstance(t, Task):
            raise OptionError(f"tasks[{i}] must be a Task(key, fn, kwargs), got {type(t).__name__}")
        if not isinstance(t.key, str) or not t.key:
            raise OptionError(f"tasks[{i}].key must be a non-empty string, got {t.key!r}")
        if not callable(t.fn):
            raise OptionError(f"tasks[{i}] ({t.key!r}): fn must be callable, got {t.fn!r}")
        if not isinstance(t.kwargs, Mapping) or not all(isinstance(k, str) for k in t.kwargs):
            raise OptionError(f"tasks[{i}] ({t.key!r}): kwargs must be a dict with string keys")
        if "seed" in t.kwargs:
            raise OptionError(
                f"tasks[{i}] ({t.key!r}): kwargs must not contain 'seed' (run_study passes the "
                "seed derived from random_seed and the key)"
            )
        if t.key in seen:
            raise OptionError(f"duplicate task key {t.key!r} (tasks[{seen[t.key]}] and tasks[{i}])")
        seen[t.key] = i
    return tasks


def check_arguments(
    store, client, max_workers, random_seed, progressbar, worker_timeout=60.0, batch_size=None
) -> dict:
    """:func:`run_study`'s other arguments, normalized, or one :class:`OptionError`."""
    if store is not None and not isinstance(store, str | os.PathLike):
        raise OptionError(f"store must be a directory path or None, got {type(store).__name__}")
    if store is not None and os.path.exists(store) and not os.path.isdir(store):
        raise OptionError(f"store {os.fspath(store)!r} exists and is not a directory")
    if client is not None and not _is_client(client):
        raise OptionError(
            "client must be a dask.distributed.Client or a concurrent.futures.Executor, got "
            f"{type(client).__name__}"
        )
    max_workers = integer(1, none=True)("max_workers", max_workers)
    if client is not None and max_workers is not None:
        raise OptionError(
            "max_workers sizes the local process pool; with a client, the cluster's workers "
            "are used (leave max_workers=None)"
        )
    worker_timeout = real(0, none=True)("worker_timeout", worker_timeout)
    batch_size = integer(1, none=True)("batch_size", batch_size)
    if batch_size is not None and not (client is not None and is_dask_client(client)):
        raise OptionError(
            "batch_size groups tasks per submission to a Dask client; the local pool and an "
            "Executor take one task at a time (leave batch_size=None)"
        )
    return {
        "batch_size": batch_size,
        "worker_timeout": worker_timeout,
        "store": store,
        "client": client,
        "max_workers": max_workers,
        "random_seed": seed("random_seed", random_seed),
        "progressbar": flag(none=True)("progressbar", progressbar),
    }


def is_dask_client(client) -> bool:
    return type(client).__module__.startswith("distributed") and hasattr(client, "submit")


def _is_client(client) -> bool:
    from concurrent.futures import Executor

    return is_dask_client(client) or isinstance(client, Executor)
