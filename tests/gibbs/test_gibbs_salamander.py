"""Salamander with ``method="gibbs"`` against NUTS under the same priors.

Model: ``Mate ~ 0 + Cross + (1|Female) + (1|Male)``, binomial logit (McCullagh & Nelder
1989, section 14.5; Karim & Zeger 1992 fitted it with a Gibbs sampler), on the real data.

* Default priors (half-normal sds): Gibbs samples them with Polya-Gamma, slice and scale
  moves; NUTS (the default, compiled backend) samples the same model. The two methods fit
  the same model, so they must agree within Monte Carlo error.
* ``conjugate_priors=True``: Gibbs swaps the defaults for ``InverseGamma(1, 1)`` on each
  variance and says so; NUTS is given those priors explicitly.

In both, the posterior means of the four fixed effects and two variances must agree:
``|mean_gibbs - mean_nuts| < Z * sqrt(mcse_gibbs^2 + mcse_nuts^2)``.
"""

import importlib.util

import numpy as np
import pytest

from bayesglmm import GLMM, priors

FORMULA = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
PARAMETERS = ["Cross[RR]", "Cross[RW]", "Cross[WR]", "Cross[WW]", "var(Female)", "var(Male)"]
#: z = 4 is a two-sided level of 6.3e-5 per parameter if the MCSE is right, 3.8e-4 over the
#: six parameters of one test (Bonferroni); the MCSEs are themselves estimated from ~1000+
#: effective draws (relative error ~3%), which moves the level by well under a factor 2
Z = 4.0
RUN = {"tune": 500, "chains": 4, "cores": 1, "progressbar": False, "log_likelihood": False}


def _agree(gibbs, nuts) -> None:
    assert nuts.convergence["details"]["divergences"] == 0
    assert gibbs.convergence["details"]["max_r_hat"] < 1.01
    for name in PARAMETERS:
        g, n = gibbs.table.loc[name], nuts.table.loc[name]
        bound = Z * np.hypot(g["mcse"], n["mcse"])
        diff = g["estimate"] - n["estimate"]
        print(
            f"{name}: gibbs {g['estimate']:.4f} nuts {n['estimate']:.4f} diff {diff:+.4f} "
            f"bound {bound:.4f}"
        )
        assert abs(diff) < bound, (name, g["estimate"], n["estimate"], bound)


@pytest.mark.slow
def test_salamander_gibbs_and_nuts_agree_under_default_priors(salamander):
    model = GLMM(FORMULA, salamander)
    gibbs = model.fit(method="gibbs", draws=2000, random_seed=20_261_130, **RUN)
    assert gibbs.info["prior_swap"] == {}
    assert gibbs.info["priors"]["1|Female"] == "HalfNormal(sigma=2.5)"
    steps = gibbs.info["details"]["step_kinds"]
    assert steps["1|Female_sigma"] == steps["1|Male_sigma"] == "slice"
    nuts = model.fit(method="nuts", draws=1000, random_seed=20_261_131, **RUN)
    assert nuts.info["priors"] == gibbs.info["priors"]
    _agree(gibbs, nuts)


@pytest.mark.slow
def test_salamander_conjugate_gibbs_matches_nuts_under_the_same_priors(salamander):
    gibbs = GLMM(FORMULA, salamander).fit(
        method="gibbs", draws=2000, conjugate_priors=True, random_seed=20_261_121, **RUN
    )
    assert gibbs.info["prior_swap"] == {
        "Female": "InverseGamma(alpha=1, beta=1)",
        "Male": "InverseGamma(alpha=1, beta=1)",
    }
    conj = {"Female": priors.InverseGamma(1, 1), "Male": priors.InverseGamma(1, 1)}
    backend = "nutpie" if importlib.util.find_spec("nutpie") else "pymc"
    nuts = GLMM(FORMULA, salamander, priors=conj).fit(
        method="nuts", nuts_sampler=backend, draws=1000, random_seed=20_261_122, **RUN
    )
    assert nuts.info["priors"] == gibbs.info["priors"]
    _agree(gibbs, nuts)
