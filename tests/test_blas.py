"""PyTensor's C backend links the OpenBLAS of the scipy-openblas32 dependency (bayesglmm/_blas.py).

Each check runs in a fresh interpreter: PyTensor reads its BLAS flags once per process.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bayesglmm import _blas


def _run(code: str, **env_extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTENSOR_FLAGS"}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_flags_map_every_routine_pytensor_declares_to_an_exported_symbol():
    flags = _blas.blas_ldflags()
    assert flags is not None and "-lscipy_openblas" in flags and "," not in flags
    assert "-Ddgemm_=scipy_dgemm_" in flags and "-Dsdot_=scipy_sdot_" in flags
    from pytensor.tensor import blas_headers

    text = Path(blas_headers.__file__).read_text()
    declared = set(re.findall(r"\b(?:void|float|double|int)\s+([a-z0-9]+_)\s*\(", text))
    assert declared - {"xerbla_"} == set(_blas._ROUTINES)  # xerbla_: BLAS's error handler
    import scipy_openblas32 as ob

    lib = ctypes.CDLL(str(Path(ob.get_lib_dir()) / ob.get_library(fullname=True)))
    missing = [r for r in _blas._ROUTINES if not hasattr(lib, f"scipy_{r}")]
    assert not missing


@pytest.mark.slow  # a fresh interpreter imports PyMC's stack: ~30 s on 2 busy cores
def test_pytensor_compiles_blas_ops_against_it_without_the_warning():
    result = _run(
        """
        import warnings
        warnings.filterwarnings("error", message=".*could not link to a BLAS")
        import numpy as np
        import bayesglmm
        import pytensor
        import pytensor.tensor as pt

        assert "scipy_openblas" in pytensor.config.blas__ldflags
        A, v = pt.dmatrix(), pt.dvector()
        f = pytensor.function([A, v], A @ v)
        ops = {type(n.op).__name__ for n in f.maker.fgraph.toposort()}
        assert "CGemv" in ops, ops  # the C op that calls dgemv_, not the NumPy fallback
        rng = np.random.default_rng(0)
        a, x = rng.normal(size=(7, 5)), rng.normal(size=5)
        np.testing.assert_allclose(f(a, x), a @ x, rtol=1e-12)
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_a_users_own_blas_choice_wins(tmp_path, monkeypatch):
    """configure() leaves PyTensor alone when the user set blas__ldflags anywhere."""
    monkeypatch.setenv("PYTENSORRC", str(tmp_path / "none"))
    monkeypatch.setenv("PYTENSOR_FLAGS", "floatX=float64,blas__ldflags=-lmyblas")
    assert _blas._user_set() and _blas.configure() is None
    assert os.environ["PYTENSOR_FLAGS"] == "floatX=float64,blas__ldflags=-lmyblas"
    monkeypatch.setenv("PYTENSOR_FLAGS", "floatX=float64")
    assert not _blas._user_set()
    rc = tmp_path / "pytensorrc"
    rc.write_text("[blas]\nldflags = -lmkl_rt\n")
    monkeypatch.setenv("PYTENSORRC", str(rc))
    assert _blas._user_set() and _blas.configure() is None
