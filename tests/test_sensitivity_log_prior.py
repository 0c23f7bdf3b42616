"""The ``log_prior`` group every Bayesian fit stores (bayesglmm.sensitivity.log_prior).

Checked against PyMC's own ``pm.compute_log_prior`` on the model's PyMC graph, for every
prior family with a density, at draws from the prior; no sampling needed (exact agreement,
up to floating point).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm import priors as P
from bayesglmm.analysis.sensitivity import log_prior_dataset, prior_logpdf
from bayesglmm.bayes.log_prior import sampled_priors

#: floating point only: both sides evaluate the same closed-form densities (PyMC's
#: Student-t normalizing constant differs from SciPy's in the 8th digit)
RTOL, ATOL = 1e-7, 1e-6
#: PyTensor's Python mode: no C compilation, seconds instead of a minute on a cold cache
FAST = {"mode": "FAST_COMPILE"}


def _data(seed=0, n=60):
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{i}" for i in range(6)], n // 6)
    h = np.tile([f"h{i}" for i in range(5)], n // 5)
    x = rng.normal(size=n)
    y = 1.0 + 0.5 * x + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "g": g, "h": h, "k": rng.poisson(2.0, size=n)})


def _compare(model):
    import arviz as az
    import pymc as pm
    import xarray as xr

    pm_model = model.build_pymc()
    rvs = pm_model.free_RVs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = pm.draw(rvs, draws=40, random_seed=1, **FAST)
    post = {}
    for rv, val in zip(rvs, values, strict=True):
        dims = pm_model.named_vars_to_dims.get(rv.name, ())
        extra = tuple(dims) or tuple(f"{rv.name}_d{i}" for i in range(val.ndim - 1))
        post[rv.name] = xr.DataArray(val[None], dims=("chain", "draw", *extra))
    idata = az.InferenceData(posterior=xr.Dataset(post))
    ours = log_prior_dataset(model, idata)
    names = list(ours.data_vars)
    with pm_model:
        theirs = pm.compute_log_prior(
            idata,
            var_names=names,
            extend_inferencedata=False,
            progressbar=False,
            compile_kwargs=FAST,
        )
    assert names, "no log-prior variables"
    for n in names:
        np.testing.assert_allclose(
            ours[n].values, theirs[n].values, rtol=RTOL, atol=ATOL, err_msg=n
        )
    return names


def test_log_prior_matches_pymc_gaussian_model():
    model = bg.GLMM(
        "y ~ x + (1|g) + (0 + x||h)",
        _data(),
        family="gaussian",
        priors={
            "Intercept": P.StudentT(4, 0.5, 2.0),
            "x": P.Cauchy(0.0, 1.5),
            "g": P.HalfStudentT(3, 1.2),
            "h": P.InverseGamma(2.0, 1.5),
            "sigma": P.Gamma(2.0, 1.5),
        },
    )
    names = _compare(model)
    assert len(names) == 5 and {"Intercept", "x", "1|g_sigma", "sigma"} <= set(names), names


def test_log_prior_matches_pymc_poisson_model():
    model = bg.GLMM(
        "k ~ x + (1|g) + (1|h)",
        _data(1),
        family="poisson",
        priors={"g": P.HalfCauchy(0.7), "h": P.Exponential(2.0)},
    )
    names = _compare(model)
    assert {"Intercept", "x", "1|g_sigma", "1|h_sigma"} <= set(names)


def test_power_priors_carry_their_density():
    """PyMC keeps (sigma^2)^-(a+1) in a Potential, so its compute_log_prior gives 0 for the
    flat variable; the log_prior group holds the density power-scaling needs."""
    v = np.array([0.1, 1.0, 4.0])
    np.testing.assert_allclose(prior_logpdf(P.PowerVariance(-0.25), v), -0.75 * np.log(v))
    np.testing.assert_allclose(prior_logpdf(P.Jeffreys(), v), -np.log(v))
    np.testing.assert_allclose(prior_logpdf(P.HalfFlat(), v), 0.0)
    np.testing.assert_allclose(prior_logpdf(P.Flat(), -v), 0.0)


def test_compiled_fit_stores_log_prior(salamander):
    model = bg.GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander)
    fit = model.fit(draws=60, tune=60, chains=1, random_seed=2, progressbar=False)
    assert fit.info["details"]["nuts_sampler"] == "compiled"
    lp = fit.idata.log_prior
    assert set(lp.data_vars) == {"Cross", "1|Female_sigma", "1|Male_sigma"}
    sd = fit.idata.posterior["1|Female_sigma"].values
    np.testing.assert_allclose(
        lp["1|Female_sigma"].values,
        np.log(2.0) - 0.5 * np.log(2 * np.pi * 2.5**2) - sd**2 / (2 * 2.5**2),
        rtol=RTOL,
    )


def test_gibbs_conjugate_priors_are_the_ones_evaluated(cbpp):
    model = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp)
    swapped = sampled_priors(model, {"conjugate_priors": True, "prior_swap": {"x": "y"}})
    assert isinstance(swapped.random_sd["1|herd"][0], P.InverseGamma)
    assert sampled_priors(model, {"conjugate_priors": False}) is model.priors


def test_unknown_prior_class_has_no_density():
    assert prior_logpdf(P.Fixed(1.0), np.ones(2)) is None


@pytest.mark.parametrize("prior", [P.HalfNormal(2.0), P.Normal(1.0, 3.0)])
def test_density_integrates_to_one(prior):
    from scipy import integrate

    lo = 0.0 if prior.scale == "sd" else -60.0
    val, _ = integrate.quad(lambda t: np.exp(prior_logpdf(prior, np.array(t))), lo, 60.0)
    assert abs(val - 1.0) < 1e-6
