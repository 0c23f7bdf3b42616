"""Bayesian fitting: PyMC model building, NUTS and Gibbs-style samplers."""
