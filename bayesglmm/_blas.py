"""Give PyTensor's C backend a BLAS to link: the OpenBLAS of the ``scipy-openblas32`` wheel.

Why: PyTensor compiles its C ops (the PyMC sampling path) against a BLAS found by linking
test programs to ``-lblas``, ``-lopenblas``, MKL ... in the C compiler's library folders. A pip
install has none there (NumPy and SciPy bundle their OpenBLAS under private, hashed names),
so PyTensor warns "could not link to a BLAS installation" on every fit and falls back to
slower NumPy-API code for matrix products (``Dot22``, ``Gemv``, ``Ger``).

The fix: ``scipy-openblas32`` (a dependency of bayesglmm) is OpenBLAS with 32-bit integers,
the Fortran interface PyTensor calls, built for linking; its symbols carry a ``scipy_``
prefix (``scipy_dgemm_``), so the flags below link to it and map each BLAS routine PyTensor
declares to the prefixed one with ``-D`` defines (PyTensor passes non ``-l``/``-L`` flags of
``blas__ldflags`` to the compiler). :func:`configure` puts them in ``PYTENSOR_FLAGS`` before
PyTensor is imported (or into ``pytensor.config`` if it already is), unless the user set
``blas__ldflags`` themselves (``PYTENSOR_FLAGS`` or ``.pytensorrc``), which always wins.
"""

from __future__ import annotations

import os
from pathlib import Path

#: every BLAS routine PyTensor's C code declares (pytensor/tensor/blas_headers.py), each of
#: which scipy-openblas32 exports with the ``scipy_`` prefix (tests/test_blas.py checks both)
_ROUTINES = [
    f"{name}_"
    for name in """
    caxpy ccopy cgbmv cgemm cgemv cgerc cgeru chbmv chemm chemv cher2 cher2k cher cherk chpmv
    chpr2 chpr cscal csscal cswap csymm csyr2k csyrk ctbmv ctbsv ctpmv ctpsv ctrmm ctrmv ctrsm
    ctrsv daxpy dcopy ddot dgbmv dgemm dgemv dger drot drotg drotm drotmg dsbmv dscal dspmv
    dspr2 dspr dswap dsymm dsymv dsyr2 dsyr2k dsyr dsyrk dtbmv dtbsv dtpmv dtpsv dtrmm dtrmv
    dtrsm dtrsv saxpy scopy sdot sgbmv sgemm sgemv sger srot srotg srotm srotmg ssbmv sscal
    sspmv sspr2 sspr sswap ssymm ssymv ssyr2 ssyr2k ssyr ssyrk stbmv stbsv stpmv stpsv strmm
    strmv strsm strsv zaxpy zcopy zdscal zgbmv zgemm zgemv zgerc zgeru zhbmv zhemm zhemv zher2
    zher2k zher zherk zhpmv zhpr2 zhpr zscal zswap zsymm zsyr2k zsyrk ztbmv ztbsv ztpmv ztpsv
    ztrmm ztrmv ztrsm ztrsv
    """.split()
]


def blas_ldflags() -> str | None:
    """PyTensor ``blas__ldflags`` for the bundled OpenBLAS, or None if it is not installed."""
    try:
        import scipy_openblas32 as ob
    except ImportError:
        return None
    libdir = Path(ob.get_lib_dir())
    if not (libdir / ob.get_library(fullname=True)).is_file() or set(" ,=") & set(str(libdir)):
        return None  # PyTensor splits the flags on spaces, PYTENSOR_FLAGS on "," and "="
    defines = " ".join(f"-D{r}=scipy_{r}" for r in _ROUTINES)
    # no commas (PYTENSOR_FLAGS is comma-separated): PyTensor adds the rpath for each -L itself
    return f"-L{libdir} -l{ob.get_library()} {defines}"


def _user_set() -> bool:
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "blas__ldflags" in flags or "blas.ldflags" in flags:
        return True
    rc = os.environ.get("PYTENSORRC", str(Path.home() / ".pytensorrc"))
    for name in rc.split(os.pathsep):
        try:
            text = Path(name).expanduser().read_text()
        except OSError:
            continue
        if "[blas]" in text and "ldflags" in text:
            return True
    return False


def configure() -> str | None:
    """Point PyTensor at the bundled OpenBLAS unless the user chose a BLAS; returns the flags."""
    if _user_set():
        return None
    flags = blas_ldflags()
    if flags is None:
        return None
    import sys

    if "pytensor" in sys.modules:  # imported already: set it before the first compile
        import pytensor

        pytensor.config.blas__ldflags = flags
    else:  # also reaches sampler worker processes, which inherit the environment
        current = os.environ.get("PYTENSOR_FLAGS", "")
        os.environ["PYTENSOR_FLAGS"] = f"{current},blas__ldflags={flags}".lstrip(",")
    return flags
