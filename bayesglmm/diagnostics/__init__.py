"""Model diagnostics of a fit: residuals of every kind and tests on simulated residuals."""

from __future__ import annotations

from .residuals import KINDS, Residuals, residuals

__all__ = ["KINDS", "Residuals", "residuals"]
