"""Prior weights in the Bayesian engines (``GLMM(..., weights=)`` with NUTS and Gibbs).

The reference is :meth:`bayesglmm.model.families.Family.weighted`: ``w_i l_i`` for the
binomial, Poisson and negative binomial (whole weights are frequency weights, so the model
of the data with row ``i`` repeated ``w_i`` times has the same likelihood) and
``y_i ~ N(mu_i, sigma^2 / w_i)`` for the Gaussian. Checked here:

* the PyMC model's likelihood term and its gradient equal those of the replicated-rows model
  at seeded random points (to ``TOL``: both sum the same terms in another order), and the
  Gaussian one the closed-form ``N(mu, sigma^2 / w)`` density; each comparison also fails
  for the unweighted model;
* a NUTS fit stores the observed response and the weighted pointwise log-likelihood;
* the compiled densities refuse weights by a reason, and ``nuts_sampler="auto"`` then takes
  PyMC;
* Polya-Gamma: the Gaussian full conditional of the effects (precision ``A`` and right-hand
  side ``r``) of the weighted step equals that of the replicated-rows step exactly when the
  weighted row's ``omega`` is the sum of its copies' (``PG(w n, c)`` is the law of the sum
  of ``w`` independent ``PG(n, c)``, so the two chains have the same law); the package's
  sampler draws ``PG(b, c)`` for real ``b`` with the right mean; the collapsed sampler
  works on ``(w y, w n)`` and stores the weighted log-likelihood;
* Albert-Chib refuses weights that do not give whole numbers of latent trials.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor
import pytest
from scipy import special, stats

from bayesglmm import GLMM
from bayesglmm.bayes import compiled, family_pytensor
from bayesglmm.bayes.gibbs import AlbertChibStep, PolyaGammaStep
from bayesglmm.bayes.gibbs.collapsed import crossed_data
from bayesglmm.bayes.gibbs.effects import EffectsLayout
from bayesglmm.bayes.nuts import _choose_backend
from bayesglmm.errors import MethodError
from bayesglmm.model.families import get_family
from bayesglmm.model.priors import HalfNormal, InverseGamma, Normal

#: the fits below are a few draws long: they check what is stored, not the posterior
pytestmark = pytest.mark.filterwarnings("ignore::bayesglmm.bayes.posterior.SamplingWarning")

#: agreement of sums of the same terms in another order (values of size 1e2-1e3)
TOL = 1e-8
#: explicit priors, so that the weighted and the replicated models differ in data only
PRIORS = {"Intercept": Normal(0, 2), "x": Normal(0, 2), "g": HalfNormal(1)}


def _data(seed: int = 3, n: int = 24) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "g": rng.integers(0, 5, n).astype(str),
            "w": rng.integers(1, 4, n).astype(float),
            "trials": rng.integers(1, 6, n),
        }
    )
    df["s"] = rng.binomial(df["trials"], 0.4)
    df["f"] = df["trials"] - df["s"]
    df["b01"] = rng.binomial(1, 0.4, n)
    df["c"] = rng.poisson(2.0, n)
    df["yg"] = rng.normal(size=n)
    return df


def _replicated(df: pd.DataFrame) -> pd.DataFrame:
    return df.loc[df.index.repeat(df["w"].astype(int))].reset_index(drop=True)


def _priors(family: str) -> dict:
    out = dict(PRIORS)
    if family == "gaussian":
        out["sigma"] = HalfNormal(1)
    return out


def _likelihood_fn(model):
    """``point -> (observed-term logp, its gradient in every value variable)``."""
    term = model.logp(vars=model.observed_RVs)
    grads = pytensor.grad(term, model.value_vars)
    fn = model.compile_fn([term, *grads], point_fn=True)
    return lambda point: (fn(point)[0], np.concatenate([np.ravel(g) for g in fn(point)[1:]]))


def _random_points(model, rng, k: int = 3) -> list[dict]:
    ip = model.initial_point()
    return [{n: rng.normal(scale=0.7, size=np.shape(v)) for n, v in ip.items()} for _ in range(k)]


CASES = [
    ("cbind(s, f) ~ x + (1|g)", "binomial", "logit"),
    ("cbind(s, f) ~ x + (1|g)", "binomial", "probit"),
    ("b01 ~ x + (1|g)", "binomial", "logit"),
    ("c ~ x + (1|g)", "poisson", "log"),
    ("c ~ x + (1|g)", "negative_binomial", "log"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[1]}-{c[2]}-{c[0][:5]}" for c in CASES])
def test_pymc_likelihood_equals_replicated_rows(case):
    formula, family, link = case
    df = _data()
    pr = _priors(family)
    weighted = GLMM(formula, df, family, link, priors=pr, weights="w").build_pymc()
    replicated = GLMM(formula, _replicated(df), family, link, priors=pr).build_pymc()
    plain = GLMM(formula, df, family, link, priors=pr).build_pymc()
    fw, fr = _likelihood_fn(weighted), _likelihood_fn(replicated)
    fp = plain.compile_logp(vars=plain.observed_RVs)
    whole_w, whole_r = weighted.compile_logp(), replicated.compile_logp()
    for point in _random_points(weighted, np.random.default_rng(11)):
        (lw, gw), (lr, gr) = fw(point), fr(point)
        assert abs(lw - lr) <= TOL * max(1.0, abs(lr))
        np.testing.assert_allclose(gw, gr, rtol=TOL, atol=TOL)
        assert abs(fp(point) - lr) > 1e3 * TOL * max(1.0, abs(lr))  # the weights matter
        # the whole model too: the priors are the same
        assert whole_w(point) == pytest.approx(whole_r(point), rel=TOL)


def test_pymc_gaussian_is_normal_with_variance_sigma2_over_w():
    df = _data()
    df["w"] = np.random.default_rng(5).uniform(0.2, 3.0, len(df))  # any positive weights
    m = GLMM("yg ~ x + (1|g)", df, "gaussian", priors=_priors("gaussian"), weights="w")
    model = m.build_pymc(parameterization="centered")
    fn = model.compile_fn(
        model.logp(vars=model.observed_RVs, sum=False)[0],
        inputs=model.value_vars,
        on_unused_input="ignore",
    )
    layout = EffectsLayout(m.design, model, "test")
    w, y = df["w"].to_numpy(), df["yg"].to_numpy()
    for point in _random_points(model, np.random.default_rng(12)):
        mu, sigma = layout.eta(point), np.exp(point["sigma_log__"])
        closed = -0.5 * np.log(2 * np.pi * sigma**2 / w) - w * (y - mu) ** 2 / (2 * sigma**2)
        np.testing.assert_allclose(fn(point), closed, rtol=1e-12, atol=1e-12)
        reference = m.design.family.loglik(y, mu, dispersion=sigma, weights=w)
        np.testing.assert_allclose(fn(point), reference, rtol=1e-12, atol=1e-12)
        unweighted = stats.norm.logpdf(y, mu, sigma)
        assert np.max(np.abs(fn(point) - unweighted)) > 1e-3


@pytest.mark.parametrize(
    "family, link", [("binomial", "logit"), ("binomial", "cloglog"), ("poisson", "log")]
)
def test_pointwise_logp_is_the_family_weighted_loglik(family, link):
    rng = np.random.default_rng(7)
    n = 20
    fam = get_family(family, link)
    eta = rng.uniform(-2.0, 1.0, n)
    trials = rng.integers(1, 6, n).astype(float) if family == "binomial" else None
    y = rng.binomial(trials.astype(int), 0.4) if trials is not None else rng.poisson(2.0, n)
    w = rng.uniform(0.1, 4.0, n)
    got = family_pytensor.pointwise_logp(fam, eta, y, trials, weights=w).eval()
    mu = fam.link.linkinv(eta)
    np.testing.assert_allclose(
        got, fam.loglik(y.astype(float), mu, trials, weights=w), rtol=1e-9, atol=1e-12
    )


def test_compiled_path_refuses_weights_and_auto_takes_pymc():
    m = GLMM("cbind(s, f) ~ x + (1|g)", _data(), weights="w")
    assert compiled.unsupported_reason(m) == compiled.WEIGHTS_REASON
    assert _choose_backend(m, "auto", "noncentered") == "pymc"
    with pytest.raises(MethodError, match="prior weights"):
        m.fit(method="nuts", nuts_sampler="compiled", draws=10, tune=10, chains=1)
    unweighted = GLMM("cbind(s, f) ~ x + (1|g)", _data())
    assert compiled.unsupported_reason(unweighted) is None


def test_nuts_fit_stores_observed_response_and_weighted_log_likelihood():
    df = _data()
    m = GLMM("c ~ x + (1|g)", df, "poisson", priors=_priors("poisson"), weights="w")
    fit = m.fit(method="nuts", draws=20, tune=20, chains=1, random_seed=1, progressbar=False)
    idata = fit.idata
    np.testing.assert_array_equal(idata.observed_data["c"].values, df["c"].to_numpy())
    post = idata.posterior
    eta = (
        post["Intercept"].values[0, :, None]
        + post["x"].values[0, :, None] * df["x"].to_numpy()
        + post["1|g"].values[0][:, m.design.random[0].index]
    )
    w, y = df["w"].to_numpy(), df["c"].to_numpy()
    expected = w * stats.poisson.logpmf(y, np.exp(eta))
    np.testing.assert_allclose(idata.log_likelihood["c"].values[0], expected, rtol=1e-10)


def _capture_conditional(step, point, augment):
    """``(A, r)`` of the step's Gaussian full conditional at ``point`` with the working
    weights and responses of ``augment(y, n)`` (the draw itself is not made)."""
    seen = {}
    step.augment = lambda eta, y, n: augment(y, n)

    def draw(weights, rhs, P, rng):
        C = step._cond.C.toarray()
        seen["A"] = (C.T * weights) @ C + (P.toarray() if hasattr(P, "toarray") else P)
        seen["r"] = rhs
        return np.zeros(step._cond.m)

    step._cond.draw = draw
    step.step(point)
    return seen["A"], seen["r"]


def test_polya_gamma_conditional_equals_replicated_rows():
    df = _data()
    formula = "cbind(s, f) ~ x + (1|g)"
    pr = {"Intercept": Normal(0, 2), "x": Normal(0, 2), "g": InverseGamma(1, 1)}
    rep = _replicated(df)
    copies = df["w"].astype(int).to_numpy()
    source = np.repeat(np.arange(len(df)), copies)  # the weighted row of each replicated row
    omega_rep = np.random.default_rng(2).uniform(0.05, 1.0, len(rep))
    omega = np.bincount(source, weights=omega_rep, minlength=len(df))
    out = {}
    for key, data, kw in (("w", df, {"weights": "w"}), ("r", rep, {})):
        m = GLMM(formula, data, priors=pr, **kw)
        with m.build_pymc(parameterization="centered") as model:
            step = PolyaGammaStep(design=m)
        point = model.initial_point()
        rng = np.random.default_rng(4)
        point = {k: rng.normal(scale=0.5, size=np.shape(v)) for k, v in point.items()}
        om = omega if key == "w" else omega_rep
        seen_yn = []

        def augment(y, n, om=om, seen_yn=seen_yn):
            seen_yn.append((y, n))
            return om, y - n / 2.0

        out[key] = _capture_conditional(step, point, augment), seen_yn[0]
    (A_w, r_w), (y_w, n_w) = out["w"]
    (A_r, r_r), _ = out["r"]
    w = df["w"].to_numpy()
    np.testing.assert_array_equal(y_w, w * df["s"].to_numpy())
    np.testing.assert_array_equal(n_w, w * (df["s"] + df["f"]).to_numpy())
    np.testing.assert_allclose(A_w, A_r, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r_w, r_r, rtol=1e-12, atol=1e-12)


def test_polya_gamma_sampler_takes_real_shape():
    """``E PG(b, c) = b tanh(c / 2) / (2 c)``; 20,000 draws, 5 standard errors (a false
    failure about once in 1.7 million)."""
    from polyagamma import random_polyagamma

    rng = np.random.default_rng(9)
    for b, c in ((0.7, 1.3), (2.35, -0.4), (5.5, 2.0)):
        x = random_polyagamma(np.full(20_000, b), np.full(20_000, c), random_state=rng)
        mean = b * np.tanh(c / 2) / (2 * c)
        assert abs(x.mean() - mean) <= 5 * x.std() / np.sqrt(x.size)


def test_collapsed_sampler_uses_weighted_counts_and_log_likelihood():
    df = _data()
    df["w"] = df["w"] * 0.6  # not whole numbers: the Polya-Gamma shapes are real
    pr = dict(PRIORS)
    m = GLMM("cbind(s, f) ~ x + (1|g)", df, priors=pr, weights="w")
    data = crossed_data(m.design, m.priors)
    w = df["w"].to_numpy()
    np.testing.assert_allclose(data.y, w * df["s"].to_numpy())
    np.testing.assert_allclose(data.trials, w * (df["s"] + df["f"]).to_numpy())
    fit = m.fit(
        method="gibbs",
        scheme="collapsed",
        draws=20,
        tune=10,
        chains=1,
        cores=1,
        random_seed=1,
        progressbar=False,
    )
    post = fit.idata.posterior
    eta = (
        post["Intercept"].values[0, :, None]
        + post["x"].values[0, :, None] * df["x"].to_numpy()
        + post["1|g"].values[0][:, m.design.random[0].index]
    )
    n = (df["s"] + df["f"]).to_numpy()
    expected = w * stats.binom.logpmf(df["s"].to_numpy(), n, special.expit(eta))
    np.testing.assert_allclose(fit.idata.log_likelihood["s"].values[0], expected, rtol=1e-9)


def test_albert_chib_refuses_fractional_weights_and_takes_whole_ones():
    df = _data()
    for weights, ok in ((df["w"], True), (df["w"] * 0.7, False)):
        df["wt"] = weights
        m = GLMM("cbind(s, f) ~ x + (1|g)", df, link="probit", weights="wt")
        with m.build_pymc(parameterization="centered"):
            if ok:
                AlbertChibStep(design=m)
            else:
                with pytest.raises(MethodError, match="whole numbers"):
                    AlbertChibStep(design=m)


def test_metropolis_slice_and_scale_move_targets_equal_replicated_rows():
    """The log-densities the level-wise Metropolis, slice and rescaling steps evaluate
    (Poisson, weights in the likelihood only) equal those of the replicated-rows model up
    to rounding at random points: each includes the weighted observed term."""
    from bayesglmm.bayes.gibbs import LevelMetropolisStep, ScaleMoveStep, SliceScaleStep

    df = _data()
    pr = _priors("poisson")
    values = {}
    for key, data, kw in (("w", df, {"weights": "w"}), ("r", _replicated(df), {})):
        m = GLMM("c ~ x + (1|g)", data, "poisson", priors=pr, **kw)
        with m.build_pymc(parameterization="centered") as model:
            move = ScaleMoveStep(model["1|g_sigma"])
            level = LevelMetropolisStep(model["1|g"], design=m)
            sl = SliceScaleStep(model["1|g_sigma"])
        rng = np.random.default_rng(6)
        points = _random_points(model, rng, k=4)
        values[key] = [(move._logp(p), sl._logp(p), *level._per_level(p)) for p in points]
    np.testing.assert_allclose(values["w"], values["r"], rtol=TOL)


def test_gibbs_fit_with_fractional_weights_stores_weighted_log_likelihood():
    df = _data()
    df["w"] = df["w"] * 0.6
    m = GLMM("cbind(s, f) ~ x + (1|g)", df, priors=dict(PRIORS), weights="w")
    fit = m.fit(
        method="gibbs",
        scheme="steps",
        draws=20,
        tune=10,
        chains=1,
        random_seed=1,
        progressbar=False,
    )
    assert fit.info["details"]["step_kinds"]["Intercept"] == "polya_gamma"
    idata = fit.idata
    np.testing.assert_array_equal(idata.observed_data["s"].values, df["s"].to_numpy())
    post = idata.posterior
    eta = (
        post["Intercept"].values[0, :, None]
        + post["x"].values[0, :, None] * df["x"].to_numpy()
        + post["1|g"].values[0][:, m.design.random[0].index]
    )
    n = (df["s"] + df["f"]).to_numpy()
    expected = df["w"].to_numpy() * stats.binom.logpmf(df["s"].to_numpy(), n, special.expit(eta))
    np.testing.assert_allclose(idata.log_likelihood["s"].values[0], expected, rtol=1e-9)
