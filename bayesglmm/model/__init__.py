"""The model layer: formula, spec, factors, design, new data, families, priors, prior sets,
simulation and the bundled data sets. Plain NumPy, SciPy and pandas: it imports no engine,
no PyMC and no Numba."""
