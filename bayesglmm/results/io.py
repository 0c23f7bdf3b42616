"""Writing a :class:`~bayesglmm.result.FitResult` to one zip file and reading it back.

The zip holds ``result.json`` (every field but the draws, JSON with NaN allowed) and, for
Bayesian fits, ``idata.nc`` (the ArviZ InferenceData as netCDF).
"""

from __future__ import annotations

import json
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BayesGLMMError, ResultFileError

#: version 2: the one result schema (``convergence`` and ``info`` keys fixed, ``details``)
FORMAT_VERSION = 2

_SERIES = ("fixed_effects", "fixed_effects_se", "variance_components", "re_correlations",
           "dispersion")  # fmt: skip
_PLAIN = ("method", "formula", "family", "link", "loglik", "n_params", "nobs")


def save_result(result, path: str | Path) -> Path:
    """Write ``result`` to ``path`` (a zip file); returns the path."""
    path = Path(path)
    payload = {"format_version": FORMAT_VERSION}
    payload.update({k: getattr(result, k) for k in _PLAIN})
    payload.update({k: _series_to(getattr(result, k)) for k in _SERIES})
    payload["table"] = _frame_to(result.table)
    payload["random_effects"] = {k: _frame_to(v) for k, v in result.random_effects.items()}
    payload["converged"] = bool(result.converged)
    for k in ("convergence", "timing", "info"):
        payload[k] = jsonable(getattr(result, k))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("result.json", json.dumps(payload, allow_nan=True))
        if result.idata is not None:
            zf.writestr("idata.nc", _idata_bytes(result.idata))
    return path


def load_result(cls, path: str | Path):
    """Read a result written by :func:`save_result` as an instance of ``cls``.

    Raises
    ------
    ResultFileError
        If the file is not a zip, lacks ``result.json``, holds malformed JSON, a missing
        field or a field of the wrong type, or a damaged ``idata.nc``; the message names the
        file and the part at fault.
    """
    path = Path(path)
    payload, idata_raw = _read_zip(path)
    version = payload.get("format_version")
    if version is None:
        raise ResultFileError(f"{path}: result.json is damaged: field 'format_version' is missing")
    if version != FORMAT_VERSION:
        raise ResultFileError(
            f"{path}: saved in result format {version}, this bayesglmm reads format "
            f"{FORMAT_VERSION}; refit the model (or load it with the bayesglmm that saved it)"
        )
    _check_schema(path, payload)
    idata = None if idata_raw is None else _idata_or_error(path, idata_raw)
    try:
        kwargs = {k: payload[k] for k in _PLAIN}
        kwargs.update({k: _series_from(payload[k]) for k in _SERIES})
        return cls(
            **kwargs,
            table=_frame_from(payload["table"]),
            random_effects={k: _frame_from(v) for k, v in payload["random_effects"].items()},
            converged=payload["converged"],
            convergence=payload["convergence"],
            timing=payload["timing"],
            idata=idata,
            info=payload["info"],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        if isinstance(err, BayesGLMMError):
            raise
        raise ResultFileError(
            f"{path}: result.json is damaged: {type(err).__name__}: {err}"
        ) from err


def _read_zip(path: Path) -> tuple[dict, bytes | None]:
    """``result.json`` parsed and the raw ``idata.nc`` bytes (None if absent)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "result.json" not in names:
                raise ResultFileError(
                    f"{path}: not a saved bayesglmm result: the zip holds no result.json "
                    f"(it holds {', '.join(names) or 'nothing'})"
                )
            raw = zf.read("result.json")
            idata_raw = zf.read("idata.nc") if "idata.nc" in names else None
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as err:
        raise ResultFileError(
            f"{path}: not a readable zip file (truncated or damaged: {err}); save the result again"
        ) from err
    except (OSError, zlib.error) as err:
        if isinstance(err, FileNotFoundError | IsADirectoryError | PermissionError):
            raise
        raise ResultFileError(f"{path}: a member of the zip is damaged ({err})") from err
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultFileError(f"{path}: result.json is not valid JSON ({err})") from err
    if not isinstance(payload, dict):
        raise ResultFileError(
            f"{path}: result.json holds a {type(payload).__name__}, not a JSON object"
        )
    return payload, idata_raw


def _idata_or_error(path: Path, data: bytes):
    try:
        return _idata_from(data)
    except Exception as err:  # netCDF/HDF5 readers raise OSError, ValueError, KeyError ...
        raise ResultFileError(
            f"{path}: idata.nc (the posterior draws) is damaged or truncated "
            f"({type(err).__name__}: {err})"
        ) from err


def _is_num(v) -> bool:
    return v is None or (isinstance(v, int | float) and not isinstance(v, bool))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_schema(path: Path, payload: dict) -> None:
    """Raise :class:`ResultFileError` naming the first missing field or field of wrong type."""

    def bad(field: str, want: str, got=None) -> ResultFileError:
        what = "is missing" if got is _MISSING else f"is a {type(got).__name__}, not {want}"
        return ResultFileError(f"{path}: result.json is damaged: field {field!r} {what}")

    def get(field: str):
        if field not in payload:
            raise bad(field, "", _MISSING)
        return payload[field]

    for k in ("method", "formula", "family", "link"):
        if not isinstance(v := get(k), str):
            raise bad(k, "a string", v)
    if not _is_num(v := get("loglik")):
        raise bad("loglik", "a number or null", v)
    for k in ("n_params", "nobs"):
        if not _is_int(v := get(k)):
            raise bad(k, "an integer", v)
    if not isinstance(v := get("converged"), bool):
        raise bad("converged", "true or false", v)
    for k in ("convergence", "timing", "info", "random_effects"):
        if not isinstance(v := get(k), dict):
            raise bad(k, "an object", v)
    for k in _SERIES:
        _check_series(path, k, get(k), bad)
    _check_frame(path, "table", get("table"), bad)
    for name, frame in payload["random_effects"].items():
        _check_frame(path, f"random_effects[{name!r}]", frame, bad)


_MISSING = object()


def _check_series(path: Path, field: str, d, bad) -> None:
    if not isinstance(d, dict):
        raise bad(field, "an object", d)
    for key, ok, want in (
        ("index", lambda v: isinstance(v, list), "a list"),
        ("values", lambda v: isinstance(v, list) and all(map(_is_num, v)), "a list of numbers"),
    ):
        if key not in d:
            raise bad(f"{field}.{key}", want, _MISSING)
        if not ok(d[key]):
            raise bad(f"{field}.{key}", want, d[key])
    if len(d["index"]) != len(d["values"]):
        raise ResultFileError(
            f"{path}: result.json is damaged: field {field!r} has {len(d['index'])} names "
            f"and {len(d['values'])} values"
        )


def _check_frame(path: Path, field: str, d, bad) -> None:
    if not isinstance(d, dict):
        raise bad(field, "an object", d)
    for key in ("index", "columns", "dtypes", "data"):
        if key not in d:
            raise bad(f"{field}.{key}", "a list", _MISSING)
        if not isinstance(d[key], list):
            raise bad(f"{field}.{key}", "a list", d[key])
    ncol, nrow = len(d["columns"]), len(d["index"])
    if len(d["dtypes"]) != ncol or len(d["data"]) != nrow:
        raise ResultFileError(
            f"{path}: result.json is damaged: field {field!r} has {ncol} columns, "
            f"{len(d['dtypes'])} dtypes, {nrow} row names and {len(d['data'])} rows"
        )
    for i, row in enumerate(d["data"]):
        if not isinstance(row, list) or len(row) != ncol:
            raise ResultFileError(
                f"{path}: result.json is damaged: row {i} of field {field!r} is not a list "
                f"of {ncol} values"
            )
    for col, dtype in zip(d["columns"], d["dtypes"], strict=True):
        if not isinstance(dtype, str):
            raise bad(f"{field}.dtypes", "a list of strings", dtype)
        if dtype.startswith(("float", "int")):
            j = d["columns"].index(col)
            for i, row in enumerate(d["data"]):
                if not _is_num(row[j]):
                    raise ResultFileError(
                        f"{path}: result.json is damaged: field {field!r}, column {col!r}, "
                        f"row {i} holds {row[j]!r}, not a number"
                    )


def _series_to(s: pd.Series) -> dict:
    return {
        "name": s.name,
        "index": [str(i) for i in s.index],
        "index_name": s.index.name,
        "values": s.tolist(),
    }


def _series_from(d: dict) -> pd.Series:
    return pd.Series(
        d["values"],
        index=pd.Index(d["index"], name=d.get("index_name")),
        name=d["name"],
        dtype=float,
    )


def _frame_to(df: pd.DataFrame) -> dict:
    return {
        "index": [str(i) for i in df.index],
        "index_name": df.index.name,
        "columns": [str(c) for c in df.columns],
        "dtypes": [str(t) for t in df.dtypes],
        "data": [[_scalar(v) for v in row] for row in df.itertuples(index=False)],
    }


def _frame_from(d: dict) -> pd.DataFrame:
    df = pd.DataFrame(
        d["data"], columns=d["columns"], index=pd.Index(d["index"], name=d["index_name"])
    )
    for col, dtype in zip(d["columns"], d["dtypes"], strict=True):
        if dtype.startswith(("float", "int", "bool")):
            df[col] = df[col].astype(dtype)
    return df


def _scalar(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, pd.Series):
        return {str(k): _scalar(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    return repr(obj)


def _idata_bytes(idata) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "idata.nc"
        idata.to_netcdf(str(f))
        return f.read_bytes()


def _idata_from(data: bytes):
    from .._arviz import import_arviz

    az = import_arviz()

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "idata.nc"
        f.write_bytes(data)
        idata = az.from_netcdf(str(f))
        idata.load() if hasattr(idata, "load") else None
        for grp in idata.groups():
            getattr(idata, grp).load()
    return idata
