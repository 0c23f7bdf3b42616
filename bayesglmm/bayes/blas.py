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
``blas__ldflags`` to the compiler).

:func:`configure` sets them in ``pytensor.config`` (PyTensor reads ``blas__ldflags`` when it
first compiles a BLAS op, not on import). :mod:`bayesglmm.bayes.builder`, where the package
builds its PyMC models, calls it on import, so ``import bayesglmm`` itself touches neither
PyTensor nor the environment. The user's own choice always wins: a ``blas__ldflags`` in
``PYTENSOR_FLAGS`` or ``.pytensorrc``, or a value already in ``pytensor.config`` (set by the
user, or read by an earlier compile), is left as it is. Sampler processes forked from this
one (PyMC's default on Linux) inherit the setting; processes started with ``spawn`` or
``forkserver`` use their own PyTensor defaults, unless the user puts :func:`blas_ldflags`
in their ``PYTENSOR_FLAGS``.
"""

from __future__ import annotations

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
    # no commas, so the flags also work in PYTENSOR_FLAGS (e.g. for processes started with
    # spawn): PyTensor adds the rpath for each -L itself
    return f"-L{libdir} -l{ob.get_library()} {defines}"


def configure() -> str | None:
    """Point PyTensor at the bundled OpenBLAS unless a BLAS was chosen already.

    Returns
    -------
    str or None
        The flags set, or None if PyTensor's setting was left alone (chosen by the user,
        already in use, or no ``scipy-openblas32`` installed).
    """
    import pytensor

    config = pytensor.config
    if hasattr(type(config).__dict__["blas__ldflags"], "val"):
        return None  # set, or read by a compile, already: keep what the process uses
    try:
        config.fetch_val_for_key("blas__ldflags")
        return None  # the user's PYTENSOR_FLAGS or .pytensorrc names one
    except KeyError:
        pass
    flags = blas_ldflags()
    if flags is not None:
        config.blas__ldflags = flags
    return flags
