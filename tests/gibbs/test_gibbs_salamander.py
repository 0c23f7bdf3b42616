"""Salamander with ``method="gibbs"`` against a long NUTS run under the same priors.

Model: ``Mate ~ 0 + Cross + (1|Female) + (1|Male)``, binomial logit (McCullagh & Nelder
1989, section 14.5; Karim & Zeger 1992 fitted it with a Gibbs sampler). The Gibbs fit uses
its conjugate defaults, ``InverseGamma(1, 1)`` on each variance; the NUTS fit is given the
same priors explicitly. Posterior means of the four fixed effects and two variances must
agree within Monte Carlo error.
"""

import importlib.util

import arviz as az
import numpy as np
import pytest

from bayesglmm import GLMM, priors
from bayesglmm.bayes.posterior import derived_draws

FORMULA = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
#: |mean_gibbs - mean_nuts| < Z * sqrt(mcse_gibbs^2 + mcse_nuts^2): z = 4 is a two-sided
#: level of 6.3e-5 per parameter, 3.8e-4 over the six parameters (Bonferroni)
Z = 4.0


@pytest.mark.slow
def test_salamander_gibbs_matches_long_nuts(salamander):
    gibbs = GLMM(FORMULA, salamander).fit(
        method="gibbs",
        draws=4000,
        tune=500,
        chains=4,
        cores=1,
        random_seed=20_261_121,
        progressbar=False,
        log_likelihood=False,
    )
    assert gibbs.info["conjugate_defaults"] == {
        "Female": "InverseGamma(alpha=1, beta=1)",
        "Male": "InverseGamma(alpha=1, beta=1)",
    }
    conj = {"Female": priors.InverseGamma(1, 1), "Male": priors.InverseGamma(1, 1)}
    reference = GLMM(FORMULA, salamander, priors=conj)
    backend = "nutpie" if importlib.util.find_spec("nutpie") else "pymc"
    nuts = reference.fit(
        method="nuts",
        nuts_sampler=backend,
        draws=2500,
        tune=1000,
        chains=4,
        cores=1,
        random_seed=20_261_122,
        progressbar=False,
        log_likelihood=False,
    )
    assert nuts.convergence["divergences"] == 0
    g_draws = derived_draws(reference, gibbs.idata)
    n_draws = derived_draws(reference, nuts.idata)
    assert gibbs.convergence["max_r_hat"] < 1.01
    for name in ["Cross[RR]", "Cross[RW]", "Cross[WR]", "Cross[WW]", "var(Female)", "var(Male)"]:
        g, n = g_draws[name], n_draws[name]
        mcse = np.hypot(*(float(np.squeeze(az.mcse(d, method="mean"))) for d in (g, n)))
        diff = g.mean() - n.mean()
        print(
            f"{name}: gibbs {g.mean():.4f} nuts {n.mean():.4f} diff {diff:+.4f} "
            f"bound {Z * mcse:.4f}"
        )
        assert abs(diff) < Z * mcse, (name, g.mean(), n.mean(), mcse)
