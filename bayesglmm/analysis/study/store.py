"""A study's result store: one directory, one file per finished task, written atomically.

Layout::

    <store>/manifest.json        study metadata: random_seed and each task's fingerprint
    <store>/tasks/<name>.pkl     one record per task (key, status, seconds, worker, error,
                                 seed, fingerprint and the value, or the name of its file)
    <store>/tasks/<name>.fit.zip a FitResult value, written by bayesglmm.result_io
    <store>/.lock                held (flock) by the run using the store

Every file is written to a temporary name in the same directory and moved into place with
:func:`os.replace`, so a reader (or a run resumed after a kill) sees a whole record or none;
the value file is in place before the record that points to it. A task has one record
path, derived from its key, so a rerun overwrites and never duplicates. The records are the
truth: the manifest names the study (its seed and task definitions) so that a store made
by another study is refused instead of mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import tempfile
from pathlib import Path

from ...errors import OptionError

FORMAT = "bayesglmm-study"
VERSION = 1


class ResultStore:
    """The store directory of one study (see the module docstring)."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.tasks_dir = self.path / "tasks"
        self._lock = None
        #: why the store cannot be written (None: it can); a read-only store is only read
        self.read_only: str | None = None

    # ------------------------------------------------------------------ opening
    def open(self, random_seed: int | None, fingerprints: dict[str, str]) -> int:
        """Create or check the store for this study; return the study's random_seed.

        ``random_seed=None`` takes the stored one (or, for a new store, fresh entropy).
        Raises :class:`OptionError` if the store was made with another seed or holds a task
        of the same key with another definition.
        """
        manifest = self.path / "manifest.json"
        if not (self.path.is_dir() and manifest.exists()):
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise OptionError(
                    f"store {str(self.path)!r} cannot be created: {type(err).__name__}: "
                    f"{err.strerror or err}"
                ) from None
        self._acquire_lock()
        if manifest.exists():
            try:
                meta = json.loads(manifest.read_text())
            except (OSError, ValueError) as err:
                raise OptionError(
                    f"store {str(self.path)!r}: unreadable manifest.json ({err})"
                ) from None
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise OptionError(f"store {str(self.path)!r} is not a bayesglmm study store")
            stored = int(meta["random_seed"])
            if random_seed is not None and random_seed != stored:
                raise OptionError(
                    f"store {str(self.path)!r} was made with random_seed={stored}, not "
                    f"{random_seed}: use another store (or random_seed={stored} to resume)"
                )
            random_seed = stored
            known = meta.get("tasks", {})
            for key, fp in fingerprints.items():
                if key in known and known[key] != fp:
                    raise OptionError(
                        f"store {str(self.path)!r} holds task {key!r} with another definition "
                        "(function or kwargs changed): use another store for the new study"
                    )
            new = {k: v for k, v in fingerprints.items() if k not in known}
            if new and self.read_only:
                raise OptionError(
                    f"store {str(self.path)!r} cannot be written ({self.read_only}) and does "
                    f"not hold task {next(iter(new))!r}: copy it to a writable directory to "
                    "add tasks"
                )
            if new:
                meta["tasks"] = {**known, **new}
                self._write_bytes(manifest, json.dumps(meta, indent=1).encode())
        else:
            if any(self.path.iterdir()) and not {p.name for p in self.path.iterdir()} <= {
                ".lock",
                "tasks",
            }:
                raise OptionError(
                    f"store {str(self.path)!r} is a non-empty directory without a study "
                    "manifest: give an empty or new directory"
                )
            if random_seed is None:
                import numpy as np

                random_seed = int(np.random.SeedSequence().entropy)
            meta = {
                "format": FORMAT,
                "version": VERSION,
                "random_seed": int(random_seed),
                "tasks": dict(fingerprints),
            }
            self._write_bytes(manifest, json.dumps(meta, indent=1).encode())
        if self.read_only:
            return int(random_seed)
        self.tasks_dir.mkdir(exist_ok=True)
        for stale in self.tasks_dir.glob(".tmp-*"):  # left by a run killed mid-write
            stale.unlink(missing_ok=True)
        return int(random_seed)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def _acquire_lock(self) -> None:
        """Hold the store's lock for the run; a store that cannot be written (a read-only
        directory or file system, or another run holding the lock) is opened for reading
        only, without a lock."""
        try:
            fh = open(self.path / ".lock", "a+")  # noqa: SIM115 - held for the run
        except OSError as err:  # read-only: a finished store is still read
            if (self.path / "manifest.json").exists():
                self.read_only = f"{type(err).__name__}: {err.strerror or err}"
                return
            raise OptionError(
                f"store {str(self.path)!r} cannot be written: {type(err).__name__}: "
                f"{err.strerror or err}"
            ) from None
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no flock (Windows): no protection against a concurrent run
            pass
        except OSError:
            fh.close()
            if (self.path / "manifest.json").exists():  # read what it holds, write nothing
                self.read_only = "in use by another running study"
                return
            raise OptionError(
                f"store {str(self.path)!r} is in use by another running study"
            ) from None
        self._lock = fh

    # ------------------------------------------------------------------ records
    def record_path(self, key: str) -> Path:
        return self.tasks_dir / f"{_name(key)}.pkl"

    def load(self, key: str, fingerprint: str) -> dict | None:
        """The stored record of ``key`` (value loaded), or None if absent or unreadable."""
        path = self.record_path(key)
        try:
            with open(path, "rb") as fh:
                rec = pickle.load(fh)
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - a damaged record is redone, not fatal
            return None
        if rec.get("key") != key or rec.get("fingerprint") != fingerprint:
            return None
        if rec.get("value_file"):
            from ...results.result import FitResult

            try:
                rec["value"] = FitResult.load(self.tasks_dir / rec["value_file"])
            except Exception:  # noqa: BLE001
                return None
        return rec

    def save(self, rec: dict) -> None:
        """Write one task's record (and its FitResult value file) atomically."""
        from ...results.result import FitResult

        rec = dict(rec)
        rec.pop("exception", None)
        value = rec.get("value")
        rec["value_file"] = None
        if rec["status"] == "done" and isinstance(value, FitResult):
            name = f"{_name(rec['key'])}.fit.zip"
            fd, tmp = tempfile.mkstemp(dir=self.tasks_dir, prefix=".tmp-", suffix=".zip")
            os.close(fd)
            try:
                value.save(tmp)
                os.chmod(tmp, _file_mode())
                os.replace(tmp, self.tasks_dir / name)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            rec["value"], rec["value_file"] = None, name
        self._write_bytes(self.record_path(rec["key"]), pickle.dumps(rec, protocol=4))

    def keys(self) -> list[str]:
        """Keys of all records in the store (for checks: one record per key)."""
        out = []
        for p in sorted(self.tasks_dir.glob("*.pkl")):
            with open(p, "rb") as fh:
                out.append(pickle.load(fh)["key"])
        return out

    def _write_bytes(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            _follow_umask(fd)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _name(key: str) -> str:
    """A file name for ``key``: a readable prefix and a digest (unique, any characters)."""
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)[:40]
    return f"{slug}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:16]}"


def _file_mode() -> int:
    """The mode ``open()`` gives a new file (0666 less the umask; temporary files are 0600)."""
    mask = os.umask(0o022)  # read it (there is no other portable way) and put it back
    os.umask(mask)
    return 0o666 & ~mask


def _follow_umask(fd: int) -> None:
    try:
        os.fchmod(fd, _file_mode())
    except (AttributeError, OSError):  # no fchmod (Windows)
        pass
