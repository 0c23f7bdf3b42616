"""The local process pool of a study: only the task that kills its worker fails.

Tasks run on a spawn-started :class:`~concurrent.futures.ProcessPoolExecutor`. When a worker
process dies (``os._exit``, a segfault, the out-of-memory killer) the pool is broken and
every task it was running or holding is lost with it, without saying which one killed it.
Those tasks are then run again one at a time on a one-process pool: the one whose process
dies there is the culprit and is recorded as failed with the process's exit code; the
others finish normally, and the remaining tasks continue on a fresh pool.

A spawned worker imports the main script again. A script that starts a study without an
``if __name__ == "__main__":`` guard would start it again in every worker, which breaks the
pool; :func:`check_main_guard` finds this before any process starts.

The pool persists: the first study that needs it starts it, later studies in the same
process reuse its warm worker processes (each imported the package and set up its
compile directory and thread limits once, in the pool's initializer), and it is shut down
when the interpreter exits (:func:`shutdown_pools`). A pool is keyed by its number of
workers, start method, compile root and BLAS threads; a pool that broke (a worker died),
was shut down, or belongs to the parent of a forked process is replaced by a fresh one,
and an idle pool of another key is shut down when a new key is asked for (one set of idle
workers at a time).
"""

from __future__ import annotations

import ast
import atexit
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..._warn import warn
from ...errors import OptionError
from .workers import compile_root, execute_pickled, failed_record, init_local_worker

#: how the local pool starts its processes (the same on every platform)
START_METHOD = "spawn"
#: tasks that die alone, with no task finished on any worker, before the rest are failed
DEATHS_AT_START = 3
DIED_AT_START = (
    f"the study's worker processes died before finishing any task ({DEATHS_AT_START} tasks "
    "run alone each lost its process): the workers cannot start (see the log above)"
)


def run_pool(pending, seeds, n_workers: int):
    """Yield one record per task; a task whose worker process dies fails alone."""
    check_main_guard(START_METHOD)
    blas = max(1, (os.cpu_count() or 1) // n_workers)
    todo, suspects = list(pending), []
    ran = False  # has any worker finished a task (else its processes may die on start)
    deaths = 0
    while todo or suspects:
        pool = acquire_pool(n_workers, blas)
        broken, interrupted = False, True
        try:
            while suspects:  # one at a time: a death names its task
                t = suspects.pop(0)
                rec, broken = _run_alone(pool, t, seeds)
                yield rec
                ran = ran or not broken
                deaths += broken
                if broken:
                    break
            if deaths >= DEATHS_AT_START and not ran:
                for t in [*suspects, *todo]:
                    rec = failed_record(t.key, seeds[t.key], RuntimeError(DIED_AT_START), "driver")
                    yield rec
                interrupted = False
                return
            if broken:
                interrupted = False
                continue
            done: set[str] = set()
            for rec in _run_batch(pool, todo, seeds, n_workers, suspects, done):
                ran = ran or rec.get("worker") is not None
                yield rec
            gone = done | {t.key for t in suspects}
            todo = [t for t in todo if t.key not in gone]
            broken = bool(suspects)
            if broken:
                warn(
                    f"a worker process of the study died; running the {len(suspects)} task(s) "
                    "it was running or holding one at a time, to fail only the one that "
                    "kills its process",
                    RuntimeWarning,
                )
            interrupted = False
        finally:
            # a broken pool, or one left with tasks in flight (an interrupted study), is
            # shut down; a pool that finished its tasks stays up for the next study
            release_pool(pool, discard=broken or interrupted, wait=not broken and not interrupted)


# ------------------------------------------------------------------------------------------
# the persistent pool


class _Entry:
    __slots__ = ("pool", "pid", "users")

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self.pool, self.pid, self.users = pool, os.getpid(), 0


_POOLS: dict[tuple, _Entry] = {}
_POOLS_LOCK = threading.Lock()


def pool_key(n_workers: int, blas: int) -> tuple:
    """What a reusable pool must agree on: workers, start method, compile root, threads."""
    return (n_workers, START_METHOD, str(compile_root()), blas)


def _usable(entry: _Entry) -> bool:
    pool = entry.pool
    return (
        entry.pid == os.getpid()  # not inherited by a forked process
        and not getattr(pool, "_broken", False)
        and not getattr(pool, "_shutdown_thread", False)
    )


def acquire_pool(n_workers: int, blas: int) -> ProcessPoolExecutor:
    """The persistent pool of this key (started now if there is none or it is unusable);
    idle pools of other keys are shut down. Give it back with :func:`release_pool`."""
    key = pool_key(n_workers, blas)
    stale = []
    with _POOLS_LOCK:
        entry = _POOLS.get(key)
        if entry is not None and not _usable(entry):
            del _POOLS[key]
            stale.append(entry)
            entry = None
        for other in [k for k, e in _POOLS.items() if k != key and e.users == 0]:
            stale.append(_POOLS.pop(other))
        if entry is None:
            entry = _POOLS[key] = _Entry(_new_pool(n_workers, blas))
        entry.users += 1
    for old in stale:
        if old.pid == os.getpid():
            old.pool.shutdown(wait=False, cancel_futures=True)
    return entry.pool


def release_pool(pool: ProcessPoolExecutor, discard: bool = False, wait: bool = True) -> None:
    """Give back a pool from :func:`acquire_pool`; ``discard``: shut it down and forget it."""
    with _POOLS_LOCK:
        key = next((k for k, e in _POOLS.items() if e.pool is pool), None)
        if key is not None:
            _POOLS[key].users -= 1
            if discard or not _usable(_POOLS[key]):
                del _POOLS[key]
                discard = True
        else:
            discard = True
    if discard:
        pool.shutdown(wait=wait, cancel_futures=True)


def shutdown_pools(wait: bool = True) -> None:
    """Shut down every persistent pool of this process (run at interpreter exit)."""
    with _POOLS_LOCK:
        entries = list(_POOLS.values())
        _POOLS.clear()
    for entry in entries:
        if entry.pid == os.getpid():
            entry.pool.shutdown(wait=wait, cancel_futures=True)


def pool_pids(n_workers: int | None = None) -> list[int]:
    """Process ids of the live persistent pools' workers (of ``n_workers`` workers only,
    if given): for checks and benchmarks."""
    with _POOLS_LOCK:
        entries = [e for k, e in _POOLS.items() if n_workers is None or k[0] == n_workers]
    return sorted(pid for e in entries for pid in getattr(e.pool, "_processes", None) or {})


def _new_pool(n_workers: int, blas: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        n_workers,
        mp_context=multiprocessing.get_context(START_METHOD),
        initializer=init_local_worker,
        initargs=(str(compile_root()), blas),
    )


atexit.register(shutdown_pools)


def _payload(t, seeds):
    """The task as cloudpickle bytes, or the failed record of a task that cannot be sent."""
    import cloudpickle

    try:
        return cloudpickle.dumps((t.fn, dict(t.kwargs))), None
    except Exception as err:  # noqa: BLE001 - cannot reach a worker
        rec = failed_record(t.key, seeds[t.key], err, "driver")
        rec["error"] = f"could not send the task to a worker: {rec['error']}"
        return None, rec


def _run_batch(pool, todo, seeds, n_workers, suspects, done):
    """Run ``todo`` on ``pool`` until done or broken; on a break, the tasks the pool was
    running or holding go to ``suspects`` (the others stay undone, for a fresh pool)."""
    queue, inflight = iter(todo), {}
    broken = False
    while not broken:
        # a few tasks ahead of the workers (each holds its pickled kwargs)
        for t in queue:
            payload, rec = _payload(t, seeds)
            if rec is not None:
                done.add(t.key)
                yield rec
                continue
            try:
                fut = pool.submit(execute_pickled, t.key, payload, seeds[t.key], "local")
            except BrokenProcessPool:  # broke since the last wait: t never ran
                broken = True
                break
            inflight[fut] = t
            if len(inflight) >= 2 * n_workers:
                break
        if not inflight:
            return
        finished, _ = wait(inflight, return_when="ALL_COMPLETED" if broken else FIRST_COMPLETED)
        for fut in finished:
            t = inflight.pop(fut)
            try:
                data = fut.result()
            except BrokenProcessPool:
                broken = True
                suspects.append(t)
                continue
            except Exception as err:  # noqa: BLE001 - the pool could not run it
                data = None
                rec = failed_record(t.key, seeds[t.key], err, "driver")
            done.add(t.key)
            yield _unpack(t, seeds, data) if data is not None else rec
        if broken and inflight:  # the rest fail with the pool, at once
            wait(inflight)
            for fut, t in list(inflight.items()):
                if fut.exception() is None:
                    done.add(t.key)
                    yield _unpack(t, seeds, fut.result())
                else:
                    suspects.append(t)


def _run_alone(pool, t, seeds):
    """Run one task with nothing else on the pool: (its record, whether its process died)."""
    payload, rec = _payload(t, seeds)
    if rec is not None:
        return rec, False
    fut = pool.submit(execute_pickled, t.key, payload, seeds[t.key], "local")
    procs = list(getattr(pool, "_processes", {}).values())  # to read the exit code
    try:
        data = fut.result()
    except BrokenProcessPool as err:
        return _died(t, seeds, err, procs), True
    except Exception as err:  # noqa: BLE001 - the pool could not run it
        return failed_record(t.key, seeds[t.key], err, "driver"), False
    return _unpack(t, seeds, data), False


def _unpack(t, seeds, data):
    """The record a worker sent as pickled bytes (or the failure to read it)."""
    try:
        return pickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - e.g. a value whose class the driver lacks
        rec = failed_record(t.key, seeds[t.key], exc, "driver")
        rec["error"] = f"could not read the task's value back from its worker: {rec['error']}"
        return rec


def _died(t, seeds, err: BaseException, procs) -> dict:
    """The failed record of the task whose worker process died running it."""
    codes = []
    for p in procs:
        p.join(5)
        if p.exitcode not in (None, 0):
            codes.append(p.exitcode)
    # the pool terminates (SIGTERM) its other processes once one has died
    codes.sort(key=lambda c: c == -signal.SIGTERM)
    code = codes[0] if codes else None
    how = "its worker process died"
    if code is not None and code < 0:
        try:
            how += f" (killed by {signal.Signals(-code).name})"
        except ValueError:
            how += f" (killed by signal {-code})"
    elif code is not None:
        how += f" (exit code {code}, e.g. os._exit)"
    rec = failed_record(t.key, seeds[t.key], err, "driver")
    rec["error"] = f"{how} while running this task alone: {rec['error']}"
    return rec


# ------------------------------------------------------------------------------------------
# the main script's guard


def check_main_guard(start_method: str) -> None:
    """Refuse, before any process starts, a study started at the top level of a script that
    spawned workers would run again (no ``if __name__ == "__main__":`` guard).

    Only the ``spawn`` and ``forkserver`` start methods import the main script in the
    workers; an interactive interpreter or a notebook has no script file and is not checked.
    """
    if start_method not in ("spawn", "forkserver"):
        return
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path or not os.path.isfile(path):
        return
    frame = sys._getframe(1)
    while frame is not None and not (
        frame.f_code.co_name == "<module>" and frame.f_globals is vars(main)
    ):
        frame = frame.f_back
    if frame is None:  # not called from the script's top level (e.g. a guarded main())
        return
    line = frame.f_lineno
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return
    if _guarded(tree.body, line):
        return
    raise OptionError(
        f"{path}, line {line}: the study is started at the top level of the script without "
        'an `if __name__ == "__main__":` guard; the local pool\'s worker processes '
        f"({start_method}) import the script again and would start it again. Put the "
        "study under that guard (or pass max_workers=1, or a Dask client)"
    )


def _guarded(stmts, line: int) -> bool:
    """Whether ``line`` lies inside an ``if __name__ == "__main__":`` among ``stmts``
    (looking into ``try``, ``with`` and other compound statements)."""
    for stmt in stmts:
        end = getattr(stmt, "end_lineno", None) or stmt.lineno
        if not stmt.lineno <= line <= end:
            continue
        if _is_main_guard(stmt):
            return True
        children = [getattr(stmt, f, None) or [] for f in ("body", "orelse", "finalbody")]
        children += [h.body for h in getattr(stmt, "handlers", [])]
        children += [c.body for c in getattr(stmt, "cases", [])]
        return any(_guarded(c, line) for c in children if isinstance(c, list))
    return False


def _is_main_guard(stmt) -> bool:
    """An ``if`` whose test compares ``__name__`` with ``"__main__"``."""
    if not isinstance(stmt, ast.If):
        return False
    nodes = list(ast.walk(stmt.test))
    return any(isinstance(n, ast.Name) and n.id == "__name__" for n in nodes) and any(
        isinstance(n, ast.Constant) and n.value == "__main__" for n in nodes
    )
