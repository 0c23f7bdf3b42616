"""Analyses built on fits: comparisons, plots, posterior predictive checks, simulation-based
calibration, model specs, prior sensitivity and studies of many fits."""
