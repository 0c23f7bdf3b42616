"""Generalized estimating equations for marginal models (``method="gee"``)."""

from .association import Association, association_covariance
from .correlation import (
    Autoregressive,
    Exchangeable,
    Independence,
    Unstructured,
    WorkingCorrelation,
    make_correlation,
)

__all__ = [
    "Association",
    "association_covariance",
    "Autoregressive",
    "Exchangeable",
    "Independence",
    "Unstructured",
    "WorkingCorrelation",
    "make_correlation",
]
