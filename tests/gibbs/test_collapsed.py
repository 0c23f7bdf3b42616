"""The collapsed Polya-Gamma sampler for crossed designs (``method="gibbs", scheme=...``).

* SBC of the whole scan on a small crossed binomial model (two factors, one half-normal sd
  and one inverse-gamma variance: both scale powers), by inserting the truth into a
  stationary chain as :class:`bayesglmm.sbc.StepMethodSBC` does (forward scans after it,
  reversed scans before it), so ranks are exactly uniform for a correct sampler; a
  version whose collapsed precision of ``beta`` leaves out the ``b_k`` correction must fail.
* The closed-form scale priors against scipy's densities (PyMC's parameterizations).
* Salamander: collapsed Gibbs against NUTS under the default priors, posterior means within
  Monte Carlo error.
* Options, errors, reproducibility, names and coords.
"""

import copy
import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from polyagamma import random_polyagamma

from bayesglmm import GLMM, priors
from bayesglmm.analysis.sbc import run_sbc
from bayesglmm.bayes.gibbs import crossed
from bayesglmm.bayes.gibbs.collapsed import (
    AUTO_MIN_ROWS,
    choose_scheme,
    crossed_data,
    scale_logp,
)
from bayesglmm.errors import MethodError, OptionError

# ------------------------------------------------------------------------------------------
# SBC

#: replications (as the slice-step cases of test_gibbs_sbc.py; 200 would take ~75 s)
N_REPS = 100
#: family-wise false-failure rate over all coordinates (Bonferroni), as the other SBC tests
ALPHA = 1e-3
#: states per replication besides the truth (ranks 0..99 in 10 bins)
N_DRAWS = 99
#: scans between kept states (validity does not depend on it; power does)
THIN = 1
SBC_PRIORS = {
    "Intercept": priors.Normal(0, 1),
    "x": priors.Normal(0, 1),
    "g": priors.HalfNormal(1.0),
    "h": priors.InverseGamma(3, 2),
}


def _sbc_model():
    rng = np.random.default_rng(7)
    g, h = np.meshgrid(np.arange(6), np.arange(5), indexing="ij")
    df = pd.DataFrame(
        {
            "g": [f"g{i}" for i in g.ravel()],
            "h": [f"h{i}" for i in h.ravel()],
            "x": np.round(rng.normal(size=30), 2),
            "n": rng.integers(1, 4, size=30),
        }
    )
    df["y"] = 0
    df["f"] = df["n"]
    return GLMM("cbind(y, f) ~ x + (1|g) + (1|h)", df, priors=SBC_PRIORS)


def _simulate(model, data):
    d = model.design
    X, idx = d.X, [t.index for t in d.random]

    def simulate(rng):
        beta = rng.normal(size=2)
        sd_g = abs(rng.normal())
        var_h = 1.0 / rng.gamma(3.0, 1.0 / 2.0)
        b = [rng.normal(0, sd_g, size=6), rng.normal(0, math.sqrt(var_h), size=5)]
        eta = X @ beta + b[0][idx[0]] + b[1][idx[1]]
        y = rng.binomial(data.trials.astype(int), 1.0 / (1.0 + np.exp(-eta)))
        truth_state = (beta, b, np.array([math.log(sd_g), math.log(var_h)]))
        return _flat(*truth_state), (y, truth_state)

    return simulate


def _flat(beta, b, u):
    return np.concatenate([beta, u, *b])


NAMES = ["Intercept", "x", "log sd(g)", "log var(h)"]
NAMES += [f"g{i}" for i in range(6)] + [f"h{i}" for i in range(5)]


def _sample(data0):
    order = crossed.scan_updates(data0)

    def sample(payload, truth, rng):
        y, (beta, b, u) = payload
        data = dataclasses.replace(data0, y=y.astype(float))
        state = crossed.initial_state(data, beta, b, u)
        eta = crossed.linear_predictor(data, state)  # omega | truth: the augmented truth
        state.omega = random_polyagamma(data.trials, eta, random_state=rng)
        state.xtox = (data.X * state.omega[:, None]).T @ data.X
        j = int(rng.integers(0, N_DRAWS + 1))
        out = []
        for n_states, scan in ((j, order[::-1]), (N_DRAWS - j, order)):
            s = crossed.CrossedSampler(data, copy.deepcopy(state), rng)
            for _ in range(n_states):
                for _ in range(THIN):
                    s.scan(order=scan)
                out.append(_flat(s.state.beta, s.state.b, s.state.u))
        return np.array(out)

    return sample


def _run_sbc(seed):
    model = _sbc_model()
    data = crossed_data(model.design, model.priors)
    return run_sbc(
        _simulate(model, data),
        _sample(data),
        N_REPS,
        NAMES,
        seed=seed,
        n_draws=N_DRAWS,
        alpha=ALPHA,
        progressbar=False,
    )


@pytest.mark.slow
def test_collapsed_scan_is_calibrated():
    result = _run_sbc(20_261_201)
    assert result.passed, f"{result}\n{result.summary()}"


_EFFECTS_CONDITIONAL = crossed.effects_conditional


def _uncollapsed_precision(data, st_, k, omega_r):
    """Broken: the precision of beta without the correction for integrating out b_k."""
    W, S, XW, D, P, h = _EFFECTS_CONDITIONAL(data, st_, k, omega_r)
    return W, S, XW, D, np.diag(data.prior_prec) + st_.xtox, h


@pytest.mark.slow
def test_broken_collapsed_update_fails_calibration(monkeypatch):
    monkeypatch.setattr(crossed, "effects_conditional", _uncollapsed_precision)
    result = _run_sbc(20_261_202)
    assert not result.passed, f"should fail: {result}\n{result.summary()}"


_MOVE_DENSITY = crossed.move_density


def _move_without_prior(data, st_, k, omega_r):
    """Broken: the rescaling move's density without the prior of the scale."""
    lp = data.scale_logp[k]
    f = _MOVE_DENSITY(data, st_, k, omega_r)
    return lambda u: f(u) - lp(u)


@pytest.mark.slow
def test_rescaling_move_without_the_prior_fails_calibration(monkeypatch):
    monkeypatch.setattr(crossed, "move_density", _move_without_prior)
    result = _run_sbc(20_261_203)
    assert not result.passed, f"should fail: {result}\n{result.summary()}"


# ------------------------------------------------------------------------------------------
# scale priors


def _halft(x, nu, sigma):
    return np.log(2.0) + st.t.logpdf(x, nu, scale=sigma)


@pytest.mark.parametrize(
    "prior, reference",
    [
        (priors.HalfNormal(2.5), lambda x: st.halfnorm.logpdf(x, scale=2.5)),
        (priors.HalfStudentT(3, 1.5), lambda x: _halft(x, 3, 1.5)),
        (priors.HalfCauchy(2.0), lambda x: st.halfcauchy.logpdf(x, scale=2.0)),
        (priors.Exponential(2.0), lambda x: st.expon.logpdf(x, scale=0.5)),
        (priors.Gamma(2.0, 3.0), lambda x: st.gamma.logpdf(x, 2.0, scale=1 / 3.0)),
        (priors.InverseGamma(3.0, 2.0), lambda x: st.invgamma.logpdf(x, 3.0, scale=2.0)),
        (priors.HalfFlat(), lambda x: 0.0 * x),
        (priors.PowerVariance(-1.0), lambda x: 0.0 * x),
        (priors.Jeffreys(), lambda x: -np.log(x)),
    ],
)
def test_closed_form_scale_priors_match_their_densities(prior, reference):
    u = np.array([-2.0, -0.3, 0.0, 0.7, 2.5])
    ours = np.array([scale_logp(prior)(v) for v in u])
    exact = reference(np.exp(u)) + u  # density of log x: Jacobian x
    diff = ours - exact
    np.testing.assert_allclose(diff, diff[0], atol=1e-10)  # equal up to a constant


def test_pymc_fallback_matches_closed_form():
    prior = priors.HalfStudentT(4, 0.8)
    a, b = scale_logp(prior), scale_logp(prior, closed_form=False)
    diff = [a(v) - b(v) for v in (-1.0, 0.2, 1.5)]
    np.testing.assert_allclose(diff, diff[0], atol=1e-8)


# ------------------------------------------------------------------------------------------
# salamander against NUTS

FORMULA = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
PARAMETERS = ["Cross[RR]", "Cross[RW]", "Cross[WR]", "Cross[WW]", "var(Female)", "var(Male)"]
#: as tests/gibbs/test_gibbs_salamander.py: z = 4 is a two-sided level of 6.3e-5 per
#: parameter, 3.8e-4 over the six (Bonferroni), if the MCSEs are right (they are estimated
#: from ~900+ effective draws per method, ~3% relative error, moving the level under 2x)
Z = 4.0


@pytest.mark.slow
def test_salamander_collapsed_agrees_with_nuts(salamander):
    model = GLMM(FORMULA, salamander)
    run = {"chains": 2, "progressbar": False, "log_likelihood": False}
    gibbs = model.fit(
        method="gibbs", scheme="collapsed", draws=3000, tune=300, random_seed=11, **run
    )
    assert gibbs.info["details"]["scheme"] == "collapsed"
    assert gibbs.info["prior_swap"] == {}
    nuts = model.fit(method="nuts", draws=1500, tune=500, random_seed=12, **run)
    assert nuts.info["priors"] == gibbs.info["priors"]
    assert gibbs.convergence["details"]["max_r_hat"] < 1.01
    for name in PARAMETERS:
        g, n = gibbs.table.loc[name], nuts.table.loc[name]
        bound = Z * np.hypot(g["mcse"], n["mcse"])
        assert abs(g["estimate"] - n["estimate"]) < bound, (name, g["estimate"], n["estimate"])


# ------------------------------------------------------------------------------------------
# options, names, reproducibility


@pytest.fixture(scope="module")
def small(salamander):
    return GLMM(FORMULA, salamander)


@pytest.mark.filterwarnings("ignore::bayesglmm.bayes.posterior.SamplingWarning")  # 20 draws
def test_draws_have_the_pymc_names_and_coords(small):
    res = small.fit(
        method="gibbs",
        scheme="collapsed",
        draws=20,
        tune=5,
        chains=2,
        progressbar=False,
        random_seed=3,
    )
    post = res.idata.posterior
    assert set(post.data_vars) == {"Cross", "1|Female", "1|Male", "1|Female_sigma", "1|Male_sigma"}
    assert list(post["Cross"].coords["Cross_dim"].values) == ["RR", "RW", "WR", "WW"]
    assert list(post["1|Female"].dims) == ["chain", "draw", "Female"]
    assert res.idata.log_likelihood["Mate"].shape == (2, 20, 360)
    assert res.method == "gibbs"
    assert list(res.random_effects["1|Male"].index) == small.design.random[1].levels


@pytest.mark.filterwarnings("ignore::bayesglmm.bayes.posterior.SamplingWarning")  # 10 draws
def test_same_seed_same_draws_and_variance_priors(small):
    kw = {"method": "gibbs", "scheme": "collapsed", "draws": 10, "tune": 5}
    kw |= {"progressbar": False, "log_likelihood": False}
    ig = GLMM(FORMULA, small.data, priors={"Female": priors.InverseGamma(2, 1)})
    kw["chains"] = 2
    # the same seed gives the same draws, in one process or in two forked ones
    a, b, c = (ig.fit(random_seed=s, cores=n, **kw) for s, n in ((5, 1), (5, 2), (6, 2)))
    assert "1|Female_var" in a.idata.posterior
    assert a.info["details"]["processes"] == 1 and b.info["details"]["processes"] == 2
    np.testing.assert_array_equal(a.idata.posterior["Cross"], b.idata.posterior["Cross"])
    np.testing.assert_array_equal(a.idata.posterior["1|Male"], b.idata.posterior["1|Male"])
    assert not np.array_equal(a.idata.posterior["Cross"], c.idata.posterior["Cross"])


def test_scheme_choice_and_errors(small, salamander):
    assert choose_scheme(small.design, small.priors, "auto") == "steps"  # 360 rows
    rng = np.random.default_rng(1)
    n = AUTO_MIN_ROWS
    big = pd.DataFrame(
        {"y": rng.integers(0, 2, n), "f": rng.integers(0, 50, n), "m": rng.integers(0, 50, n)}
    )
    model = GLMM("y ~ 1 + (1|f) + (1|m)", big.astype({"f": str, "m": str}))
    assert choose_scheme(model.design, model.priors, "auto") == "collapsed"
    with pytest.raises(OptionError, match="scheme"):
        small.fit(method="gibbs", scheme="collpased")
    pois = GLMM("Mate ~ 0 + Cross + (1|Female)", salamander, family="poisson")
    with pytest.raises(MethodError, match="binomial response with logit link"):
        pois.fit(method="gibbs", scheme="collapsed")
    t_prior = GLMM(FORMULA, salamander, priors={"Cross": priors.StudentT(3, 0, 2)})
    assert choose_scheme(t_prior.design, t_prior.priors, "auto") == "steps"
    with pytest.raises(OptionError, match="start"):
        small.fit(method="gibbs", scheme="collapsed", draws=5, tune=0, start={"nope": 1.0})
    with pytest.raises(OptionError, match="steps"):
        small.fit(method="gibbs", scheme="collapsed", steps={"Cross": "nuts"})
