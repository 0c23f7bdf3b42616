"""bayesglmm: generalized linear mixed models, Bayesian first.

lme4-style formulas become PyMC models with named coords; NUTS and Gibbs-style samplers
fit them, and frequentist baselines (Laplace, AGQ, PQL, ...) share the same design and the
same result type.
"""

from . import _blas, datasets, priors
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
from .ppc import posterior_predictive
from .propriety import ProprietyReport, check_propriety
from .result import FitResult
from .simulate import simulate

# PyTensor's C backend (the PyMC sampling path) links the OpenBLAS of the scipy-openblas32
# dependency, before its first compile (see bayesglmm/_blas.py)
_blas.configure()

__version__ = "0.1.0"

__all__ = [
    "GLMM",
    "FitResult",
    "compare",
    "ebp",
    "posterior_predictive",
    "simulate",
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
