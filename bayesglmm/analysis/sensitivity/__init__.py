"""Prior sensitivity: power-scaling of one fit and refits under alternative priors.

* :func:`powerscale` (:mod:`.powerscale`): power-scaling sensitivity of prior and
  likelihood (Kallioinen, Paananen, Buerkner & Vehtari 2023) by Pareto-smoothed importance
  weighting of one fit's draws, with the diagnosis, plots, and the propriety of power-scaled
  improper priors;
* :func:`predict_refit` (:mod:`.importance`): a refit under other priors predicted from
  one fit's draws, with its Monte Carlo error and Pareto k-hat;
* :func:`sensitivity` (:mod:`.refit`): refits under named alternative priors or a grid of
  prior scales, run as a study (:func:`bayesglmm.study.run_study`), with prior predictive
  checks (:mod:`.prior_predictive`);
* :mod:`bayesglmm.bayes.log_prior`: the ``log_prior`` group every Bayesian fit stores.
"""

from ...bayes.log_prior import add_log_prior, log_prior_dataset, prior_logpdf
from .importance import UnreliablePredictionWarning, predict_refit
from .powerscale import PowerScaleResult, powerscale
from .prior_predictive import prior_predictive_check
from .refit import PriorSensitivityWarning, SensitivityResult, sensitivity

__all__ = [
    "powerscale",
    "PowerScaleResult",
    "predict_refit",
    "UnreliablePredictionWarning",
    "sensitivity",
    "SensitivityResult",
    "PriorSensitivityWarning",
    "prior_predictive_check",
    "add_log_prior",
    "log_prior_dataset",
    "prior_logpdf",
]
