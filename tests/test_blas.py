"""PyTensor's C backend links the OpenBLAS of the scipy-openblas32 dependency
(bayesglmm/bayes/blas.py), set in ``pytensor.config`` when the package builds its first PyMC
model, never in the environment.

Each check of PyTensor's settings runs in a fresh interpreter: PyTensor reads
``PYTENSOR_FLAGS`` and ``.pytensorrc`` once per process.
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

from bayesglmm.bayes import blas


def _run(code: str, **env_extra) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter whose environment has no PyTensor settings and no
    readable ``.pytensorrc`` (plus ``env_extra``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTENSOR")}
    env["PYTENSORRC"] = os.devnull
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_flags_map_every_routine_pytensor_declares_to_an_exported_symbol():
    flags = blas.blas_ldflags()
    assert flags is not None and "-lscipy_openblas" in flags and "," not in flags
    assert "-Ddgemm_=scipy_dgemm_" in flags and "-Dsdot_=scipy_sdot_" in flags
    from pytensor.tensor import blas_headers

    text = Path(blas_headers.__file__).read_text()
    declared = set(re.findall(r"\b(?:void|float|double|int)\s+([a-z0-9]+_)\s*\(", text))
    assert declared - {"xerbla_"} == set(blas._ROUTINES)  # xerbla_: BLAS's error handler
    import scipy_openblas32 as ob

    lib = ctypes.CDLL(str(Path(ob.get_lib_dir()) / ob.get_library(fullname=True)))
    missing = [r for r in blas._ROUTINES if not hasattr(lib, f"scipy_{r}")]
    assert not missing


@pytest.mark.slow  # a fresh interpreter imports PyMC's stack: ~30 s on 2 busy cores
def test_pytensor_compiles_blas_ops_against_it_without_the_warning():
    """Building the package's PyMC models sets the flags (``import bayesglmm`` alone does
    not), the C op that calls ``dgemv_`` is compiled against the library, which the process
    then has loaded, and no PyTensor variable of the environment changed (threadpoolctl,
    which PyMC imports, sets ``KMP_DUPLICATE_LIB_OK`` on its own import)."""
    result = _run(
        """
        import os
        import warnings
        warnings.filterwarnings("error", message=".*could not link to a BLAS")
        import numpy as np
        before = dict(os.environ)
        import bayesglmm
        import pytensor
        import pytensor.tensor as pt

        param = type(pytensor.config).__dict__["blas__ldflags"]
        assert not hasattr(param, "val"), "import bayesglmm set PyTensor's BLAS"
        import bayesglmm.bayes.builder

        assert "scipy_openblas" in pytensor.config.blas__ldflags
        A, v = pt.dmatrix(), pt.dvector()
        f = pytensor.function([A, v], A @ v)
        ops = {type(n.op).__name__ for n in f.maker.fgraph.toposort()}
        assert "CGemv" in ops, ops  # the C op that calls dgemv_, not the NumPy fallback
        rng = np.random.default_rng(0)
        a, x = rng.normal(size=(7, 5)), rng.normal(size=5)
        np.testing.assert_allclose(f(a, x), a @ x, rtol=1e-12)
        if os.path.exists("/proc/self/maps"):
            assert "scipy_openblas32" in open("/proc/self/maps").read()
        after = {k: v for k, v in os.environ.items() if k.startswith("PYTENSOR")}
        assert after == {k: v for k, v in before.items() if k.startswith("PYTENSOR")}, after
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


@pytest.mark.parametrize(
    "setup, env",
    [
        ("", {"PYTENSOR_FLAGS": "floatX=float64,blas__ldflags=-lmyblas"}),
        ("", {"PYTENSORRC": "RC"}),
        ("pytensor.config.blas__ldflags = '-lmyblas'", {}),
    ],
    ids=["PYTENSOR_FLAGS", "pytensorrc", "pytensor.config"],
)
def test_a_users_own_blas_choice_wins(tmp_path, setup, env):
    """configure() leaves PyTensor's BLAS alone when the user chose one, wherever; with no
    choice made it sets the bundled one (the control: the same script can see a change)."""
    if env.get("PYTENSORRC") == "RC":
        rc = tmp_path / "pytensorrc"
        rc.write_text("[blas]\nldflags = -lmyblas\n")
        env = {"PYTENSORRC": str(rc)}
    code = """
        import pytensor
        from bayesglmm.bayes import blas
        {setup}
        assert blas.configure() is None
        assert pytensor.config.blas__ldflags == "-lmyblas", pytensor.config.blas__ldflags
        print("ok")
        """
    result = _run(code.format(setup=setup), **env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
    control = _run(code.format(setup=""))  # nothing chosen: configure() sets the bundled one
    assert control.returncode != 0 and "AssertionError" in control.stderr
