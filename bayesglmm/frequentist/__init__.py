"""Frequentist estimators on one sparse PIRLS engine (no PyMC imported here).

- :mod:`.covariance`: the relative covariance factor ``Lambda(theta)`` (lme4's theta);
- :mod:`.response`: the response given the linear predictor, its log-likelihood, score and
  weights from the family (:mod:`bayesglmm.model.families`);
- :mod:`.glm`: the GLM without random effects (IRLS), where the fits start;
- :mod:`.pirls`: conditional modes by penalized IRLS, the Laplace deviance and its gradient;
- :mod:`.devfun`, :mod:`.optimize`, :mod:`.assemble`: deviance function, optimizer, result;
- :mod:`.laplace` (``method="laplace"``), :mod:`.agq` (``method="agq"``), :mod:`.pql`
  (``method="pql"``) and the linear mixed model :mod:`.lmm`;
- :mod:`.montecarlo`: Monte Carlo EM (``method="mcem"``), Monte Carlo Newton-Raphson
  (``method="mcnr"``) and simulated maximum likelihood (``method="sml"``);
- :mod:`.intervals`: parametric bootstrap and profile-likelihood intervals;
- :mod:`.summary`: an lme4-like text summary.
"""

from __future__ import annotations

from .._threads import blas_threads

__all__ = ["blas_threads"]
