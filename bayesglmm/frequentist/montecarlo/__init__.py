"""Monte Carlo maximum likelihood for GLMMs (no PyMC imported here).

- :mod:`.complete`: the complete-data log-likelihood, its scores and Louis' information;
- :mod:`.estep`: E-step samplers (importance, rejection, Metropolis-Hastings, Gibbs);
- :mod:`.mstep`: Newton steps for the fixed effects, closed-form covariances;
- :mod:`.stopping`: Booth & Hobert's and the ascent-based sample-size and stopping rules;
- :mod:`.mcem` (``method="mcem"``), :mod:`.mcnr` (``method="mcnr"``), :mod:`.sml`
  (``method="sml"``);
- :mod:`.sml_levels`: simulated ML level by level for one grouping factor;
- :mod:`.loglik`: the log-likelihood at the estimate with its Monte Carlo se (level by level
  for one grouping factor, jointly otherwise);
- :mod:`.finish`: standard errors, the likelihood estimate and the result;
- :mod:`.history`: the iteration history as a DataFrame and a plot.
"""

from __future__ import annotations

from .history import history, plot_history

__all__ = ["history", "plot_history"]
