"""Jiang's estimating equations (``method="ee"``, ``"ee2"``) and Gauss-Seidel joint
maximization for crossed GLMMs."""
