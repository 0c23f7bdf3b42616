"""The model layer: formula, spec, factors, design, new data, families, priors, prior sets,
simulation and the bundled data sets. Plain NumPy, SciPy and pandas: it imports no engine,
no PyMC and no Numba."""


def __getattr__(name: str):
    # ``from bayesglmm.model import GLMM``: the class lived here before ``bayesglmm.glmm``
    if name == "GLMM":
        import warnings

        from .._compat import MOVED_WARNING

        warnings.warn(
            MOVED_WARNING.format(old="bayesglmm.model.GLMM", new="bayesglmm.GLMM"),
            DeprecationWarning,
            stacklevel=2,
        )
        from ..glmm import GLMM

        return GLMM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
