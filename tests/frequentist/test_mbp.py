"""Maximization by parts (method="mbp") against glmer(nAGQ = 25) and against fit_agq."""

import numpy as np
import pytest

from bayesglmm import GLMM, MethodError, OptionError

#: agreement required with glmer(nAGQ = 25): the R values (bayesglmm/data/README.md) carry
#: 4 decimals
AGQ_TOL = 1e-3
#: MBP and fit_agq maximize the same quadrature likelihood; both stop with parameter
#: steps below ~1e-6, so they agree far inside this
SAME_TOL = 1e-4

CBPP = "cbind(incidence, size - incidence) ~ period + (1|herd)"


@pytest.mark.reference
def test_cbpp_mbp_matches_glmer_agq25(cbpp):
    """glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial,
    nAGQ = 25) (README): -1.3992, -0.9914, -1.1278, -1.5795; herd variance 0.4193."""
    r = GLMM(CBPP, cbpp).fit("mbp")
    np.testing.assert_allclose(
        r.fixed_effects.to_numpy(), [-1.3992, -0.9914, -1.1278, -1.5795], atol=AGQ_TOL
    )
    assert r.variance_components["herd"] == pytest.approx(0.4193, abs=AGQ_TOL)
    assert r.converged and r.method == "mbp"
    history = r.info["details"]["mbp_history"]
    assert 1 <= len(history) < 20  # linear convergence at a small rate: a few iterations
    a = GLMM(CBPP, cbpp).fit("agq", n_quad=25)
    np.testing.assert_allclose(r.fixed_effects, a.fixed_effects, atol=SAME_TOL)
    np.testing.assert_allclose(r.fixed_effects_se, a.fixed_effects_se, rtol=1e-2)
    assert r.loglik == pytest.approx(a.loglik, abs=1e-6)


def test_mbp_refuses_crossed_and_bad_options(cbpp):
    cbpp = cbpp.assign(g2=np.arange(len(cbpp)) % 3)
    with pytest.raises(MethodError):
        GLMM("cbind(incidence, size - incidence) ~ period + (1|herd) + (1|g2)", cbpp).fit("mbp")
    with pytest.raises(OptionError, match="n_quad"):
        GLMM(CBPP, cbpp).fit("mbp", n_quad=0)
