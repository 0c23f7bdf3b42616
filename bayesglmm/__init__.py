"""bayesglmm: generalized linear mixed models, Bayesian first.

lme4-style formulas become PyMC models with named coords; NUTS and Gibbs-style samplers
fit them, and frequentist baselines (Laplace, AGQ, PQL, ...) share the same design and the
same result type.
"""

from . import _blas, datasets, priors, study
from .compare import compare
from .comparison import Comparison
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
from .sensitivity import powerscale, sensitivity
from .simulate import simulate
from .study import parametric_bootstrap, simulation_study

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
