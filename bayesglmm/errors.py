"""Exception types raised by bayesglmm.

Every error about the user's input is raised before any PyTensor compilation or sampling,
and names the column, row or term at fault.
"""

from __future__ import annotations


class BayesGLMMError(Exception):
    """Base class of all bayesglmm errors."""


class FormulaError(BayesGLMMError, ValueError):
    """The model formula is malformed or names something that does not exist."""


class DataError(BayesGLMMError, ValueError):
    """The data do not fit the model: missing values, wrong support, degenerate design."""


class FamilyError(BayesGLMMError, ValueError):
    """Unknown family or link, or a link that the family does not allow."""


class PriorError(BayesGLMMError, ValueError):
    """A prior is malformed or names a parameter the model does not have."""


class MethodError(BayesGLMMError, ValueError):
    """An estimation method does not exist or does not apply to this model."""


class OptionError(MethodError):
    """An option of a fit is unknown, of the wrong type or out of range; names the option."""


class BackendNotInstalledError(BayesGLMMError, ImportError):
    """An optional backend (nutpie, numpyro) was requested but is not installed."""


class DatasetUnavailableError(BayesGLMMError, OSError):
    """A data set could not be found locally and could not be downloaded."""


class UnknownDatasetError(BayesGLMMError, ValueError):
    """A data set name that :mod:`bayesglmm.datasets` does not know; names the known ones."""


class ImproperPosteriorError(BayesGLMMError):
    """The posterior distribution does not exist (is improper) under the chosen priors."""


class SpecError(BayesGLMMError, ValueError):
    """A declarative model spec (``models/*.toml``) is malformed; names the file and key."""


class ResultFileError(BayesGLMMError, ValueError):
    """A saved result file is unreadable or damaged; names the file and the damaged part."""
