"""Writing a :class:`~bayesglmm.result.FitResult` to one zip file and reading it back.

The zip holds ``result.json`` (every field but the draws, JSON with NaN allowed) and, for
Bayesian fits, ``idata.nc`` (the ArviZ InferenceData as netCDF).
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

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
    """Read a result written by :func:`save_result` as an instance of ``cls``."""
    with zipfile.ZipFile(path) as zf:
        payload = json.loads(zf.read("result.json"))
        idata = _idata_from(zf.read("idata.nc")) if "idata.nc" in zf.namelist() else None
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        from ..errors import BayesGLMMError

        raise BayesGLMMError(
            f"{path}: saved in result format {version}, this bayesglmm reads format "
            f"{FORMAT_VERSION}; refit the model (or load it with the bayesglmm that saved it)"
        )
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
    import arviz as az

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "idata.nc"
        f.write_bytes(data)
        idata = az.from_netcdf(str(f))
        idata.load() if hasattr(idata, "load") else None
        for grp in idata.groups():
            getattr(idata, grp).load()
    return idata
