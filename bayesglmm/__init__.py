"""bayesglmm: generalized linear mixed models, Bayesian first.

lme4-style formulas become PyMC models with named coords; NUTS and Gibbs-style samplers
fit them, and frequentist baselines (Laplace, AGQ, PQL, ...) share the same design and the
same result type.
"""

from . import _blas, priors
from .compare import compare
from .ebp import ebp
from .errors import (
    BackendNotInstalledError,
    BayesGLMMError,
    DataError,
    DatasetUnavailableError,
    FamilyError,
    FormulaError,
    ImproperPosteriorError,
    MethodError,
    OptionError,
    PriorError,
)
from .methods import available_methods
from .model import GLMM
from .result import FitResult
from .sensitivity import powerscale, sensitivity
from .simulate import simulate

#: imported on first use (``bayesglmm.<name>``), so ``import bayesglmm`` stays light: name ->
#: (module, attribute or None for the module itself). Names that are also submodules of the
#: package (compare, ebp, simulate, sensitivity) stay eager: importing the submodule would
#: set the package attribute to the module.
_LAZY = {
    "datasets": ("datasets", None),
    "study": ("study", None),
    "comparison": ("comparison", None),
    "ppc": ("ppc", None),
    "propriety": ("propriety", None),
    "parametric_bootstrap": ("study", "parametric_bootstrap"),
    "simulation_study": ("study", "simulation_study"),
    "Comparison": ("comparison", "Comparison"),
    "posterior_predictive": ("ppc", "posterior_predictive"),
    "ProprietyReport": ("propriety", "ProprietyReport"),
    "check_propriety": ("propriety", "check_propriety"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = importlib.import_module(f".{module}", __name__)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


# PyTensor's C backend (the PyMC sampling path) links the OpenBLAS of the scipy-openblas32
# dependency, before its first compile (see bayesglmm/_blas.py)
_blas.configure()

__version__ = "0.1.0"

__all__ = [
    "GLMM",
    "FitResult",
    "compare",
    "Comparison",
    "ebp",
    "posterior_predictive",
    "simulate",
    "study",
    "simulation_study",
    "parametric_bootstrap",
    "powerscale",
    "sensitivity",
    "datasets",
    "priors",
    "available_methods",
    "check_propriety",
    "ProprietyReport",
    "BayesGLMMError",
    "BackendNotInstalledError",
    "DataError",
    "DatasetUnavailableError",
    "FamilyError",
    "FormulaError",
    "ImproperPosteriorError",
    "MethodError",
    "OptionError",
    "PriorError",
]
