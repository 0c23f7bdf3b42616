"""Generalized estimating equations for marginal models (``method="gee"``)."""

from .correlation import (
    Autoregressive,
    Exchangeable,
    Independence,
    Unstructured,
    WorkingCorrelation,
    make_correlation,
)

__all__ = [
    "Autoregressive",
    "Exchangeable",
    "Independence",
    "Unstructured",
    "WorkingCorrelation",
    "make_correlation",
]
