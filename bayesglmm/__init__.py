"""bayesglmm: generalized linear mixed models, Bayesian first.

lme4-style formulas become PyMC models with named coords; NUTS and Gibbs-style samplers
fit them, and frequentist baselines (Laplace, AGQ, PQL, ...) share the same design and the
same result type.
"""

from . import datasets, priors
from .errors import (
    BackendNotInstalledError,
    BayesGLMMError,
    DataError,
    DatasetUnavailableError,
    FamilyError,
    FormulaError,
    ImproperPosteriorError,
    MethodError,
    PriorError,
)
from .methods import available_methods
from .model import GLMM
from .propriety import ProprietyReport, check_propriety
from .result import FitResult, compare
from .simulate import simulate

__version__ = "0.1.0"

__all__ = [
    "GLMM",
    "FitResult",
    "compare",
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
    "PriorError",
]
