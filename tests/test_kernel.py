"""The compiled GLMM density equals the PyMC model's logp and gradient, and its NUTS draws
agree with PyMC's."""

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, priors, simulate
from bayesglmm.bayes import compiled, kernel

# PyMC's logit-Bernoulli/Binomial logp evaluates log1p(exp) through a different but
# equivalent expression; the two agree to a few 1e-8 on values of order 1e3.
LOGP_TOL = 1e-6
GRAD_TOL = 1e-6


def _frame(seed=0, n=80):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "f": rng.choice(list("abc"), n),
            "g": rng.integers(0, 7, n),
            "h": rng.integers(0, 5, n),
            "t": rng.uniform(0.5, 2.0, n),
        }
    )


def _cases():
    df = _frame()
    b = simulate(
        "cbind(s, fl) ~ x + f + offset(log(t)) + (1|g) + (1|h)",
        df,
        [0.1, 0.5, -0.2, 0.3],
        {"g": 0.5, "h": 0.3},
        trials=6,
        random_seed=1,
    )
    yield GLMM("cbind(s, fl) ~ x + f + offset(log(t)) + (1|g) + (1|h)", b)
    pois = simulate(
        "c ~ x + (x||g)", df, [0.5, 0.2], {"g": 0.3, "g|x": 0.2}, family="poisson", random_seed=2
    )
    yield GLMM(
        "c ~ x + (x||g)",
        pois,
        family="poisson",
        priors={"x": priors.Normal(1.0, 3.0), "g|x": priors.HalfNormal(0.7)},
    )
    gauss = simulate(
        "y ~ 0 + f + (1|g/h)",
        df,
        [1.0, 2.0, 3.0],
        {"g": 1.0, "g:h": 0.5},
        family="gaussian",
        dispersion=0.8,
        random_seed=3,
    )
    yield GLMM("y ~ 0 + f + (1|g/h)", gauss, family="gaussian")
    bern = simulate("yb ~ x + (1|g)", df, [0.0, 1.0], {"g": 1.0}, random_seed=4)
    yield GLMM("yb ~ x + (1|g)", bern)


def _pymc_point(model, pm_model, kd, x):
    """Map the kernel's vector to PyMC's value variables (same order of pieces)."""
    d = model.design
    out = {}
    for term, sl in d.fixed_terms.items():
        out[term] = x[sl] if sl.stop - sl.start > 1 else np.asarray(x[sl.start])
    c, z0 = 0, kd.p + kd.K
    for t in d.random:
        for col in t.columns:
            suffix = "" if t.n_columns == 1 else f"[{col}]"
            out[f"{t.name}_sigma{suffix}_log__"] = np.asarray(x[kd.p + c])
            c += 1
        size = t.n_levels * t.n_columns
        z = x[z0 : z0 + size]
        out[f"{t.name}_offset"] = z if t.n_columns == 1 else z.reshape(t.n_levels, -1)
        z0 += size
    if "sigma" in model.priors.dispersion:
        out["sigma_log__"] = np.asarray(x[z0])
    assert set(out) == {v.name for v in pm_model.value_vars}
    return out


@pytest.mark.parametrize("case", range(4))
def test_kernel_equals_pymc_logp_and_gradient(case):
    model = list(_cases())[case]
    assert compiled.unsupported_reason(model) is None
    kd = compiled.kernel_data(model)
    pm_model = model.build_pymc()
    logp, dlogp = pm_model.compile_logp(), pm_model.compile_dlogp()
    names = [v.name for v in pm_model.value_vars]
    rng = np.random.default_rng(case)
    for _ in range(3):
        x = rng.normal(scale=0.7, size=kd.ndim)
        point = _pymc_point(model, pm_model, kd, x)
        value, grad = kernel.logp_grad(x, *kd.args)
        assert value == pytest.approx(float(logp(point)), abs=LOGP_TOL * abs(value))
        # the column-wise, vectorized kernel that sampling uses computes the same function
        v2, g2 = kernel.logp_grad_columns(x, *kernel.columnar(kd.args))
        assert v2 == pytest.approx(value, rel=1e-12)
        np.testing.assert_allclose(g2, grad, rtol=1e-10, atol=1e-12)
        ref = dlogp(point)  # concatenated in value-variable order
        pieces = _pymc_point(model, pm_model, kd, grad)  # the gradient, split like x
        ours = np.concatenate([np.atleast_1d(pieces[n]).ravel() for n in names])
        np.testing.assert_allclose(ours, ref, rtol=GRAD_TOL, atol=GRAD_TOL)


def test_unsupported_models_fall_back_with_a_reason():
    df = _frame()
    df["yb"] = (df.x > 0).astype(int)
    m = GLMM("yb ~ x + (x|g)", df)
    assert "correlated term" in compiled.unsupported_reason(m)
    m = GLMM("yb ~ x + (1|g)", df, link="probit")
    assert "probit" in compiled.unsupported_reason(m)
    m = GLMM("yb ~ x + (1|g)", df, priors={"g": priors.HalfCauchy(1)})
    assert "HalfCauchy" in compiled.unsupported_reason(m)
    from bayesglmm.errors import MethodError

    with pytest.raises(MethodError, match="does not cover correlated term"):
        GLMM("yb ~ x + (x|g)", df).fit(nuts_sampler="compiled")


@pytest.mark.slow
def test_compiled_and_pymc_posteriors_agree(salamander):
    """Posterior means of the two backends agree within their joint Monte Carlo error."""
    import arviz as az
    from scipy import stats

    m = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander)
    kw = dict(
        draws=1000, tune=1000, chains=2, random_seed=8, progressbar=False, log_likelihood=False
    )
    a = m.fit(nuts_sampler="compiled", **kw)
    b = m.fit(nuts_sampler="pymc", **kw)
    assert a.info["details"]["nuts_sampler"] == "compiled"
    assert b.info["details"]["nuts_sampler"] == "pymc"
    # 6 parameters, total false-failure rate 1e-3
    zcrit = stats.norm.isf(1e-3 / 12)
    for name in ["Cross[RR]", "Cross[RW]", "Cross[WR]", "Cross[WW]"]:
        level = name[len("Cross[") : -1]  # coords are the levels, as in bambi
        da = a.idata.posterior["Cross"].sel(Cross_dim=level).values
        db = b.idata.posterior["Cross"].sel(Cross_dim=level).values
        se = np.hypot(float(np.squeeze(az.mcse(da))), float(np.squeeze(az.mcse(db))))
        assert abs(da.mean() - db.mean()) < zcrit * se, name
    for v in ["1|Female_sigma", "1|Male_sigma"]:
        da, db = a.idata.posterior[v].values, b.idata.posterior[v].values
        se = np.hypot(float(np.squeeze(az.mcse(da))), float(np.squeeze(az.mcse(db))))
        assert abs(da.mean() - db.mean()) < zcrit * se, v
    assert a.idata.posterior["1|Female"].dims == ("chain", "draw", "Female")


@pytest.mark.parametrize("case", range(4))
def test_c_callbacks_give_the_same_draws_as_python_callbacks(case):
    """Same density, same sampler, same seed: the C-callback path reproduces the draws."""
    from bayesglmm.bayes.compiled import sample_compiled

    model = list(_cases())[case]
    kw = dict(
        draws=30,
        tune=30,
        chains=2,
        cores=1,
        random_seed=4,
        progressbar=False,
        target_accept=0.8,
        log_likelihood=True,
    )
    a = sample_compiled(model, callback="c", **kw)
    b = sample_compiled(model, callback="python", **kw)
    assert set(a.posterior.data_vars) == set(b.posterior.data_vars)
    for name in a.posterior.data_vars:
        np.testing.assert_allclose(
            a.posterior[name].values, b.posterior[name].values, rtol=1e-9, atol=1e-12, err_msg=name
        )
        assert a.posterior[name].dims == b.posterior[name].dims
    np.testing.assert_allclose(
        a.log_likelihood.to_array().values, b.log_likelihood.to_array().values, rtol=1e-9
    )


@pytest.mark.parametrize("case", range(4))
def test_pointwise_log_likelihood_matches_the_family(case):
    """idata.log_likelihood equals the family's log density at each draw's linear predictor."""
    from bayesglmm.bayes.compiled import sample_compiled

    model = list(_cases())[case]
    d = model.design
    idata = sample_compiled(model, 20, 20, 1, 1, 3, False, 0.8, True)
    post = idata.posterior
    name = d.spec.response.name
    for s in (0, 7, 19):
        eta = d.offset.copy()
        for term, sl in d.fixed_terms.items():
            eta += d.X[:, sl] @ np.atleast_1d(post[term].values[0, s])
        for t in d.random:
            b = post[t.name].values[0, s].reshape(t.n_levels, t.n_columns)
            eta += (t.X * b[t.index]).sum(axis=1)
        mu = d.family.link.linkinv(eta)
        disp = float(post["sigma"].values[0, s]) if "sigma" in post else None
        expected = d.family.loglik(d.y, mu, d.trials, disp)
        np.testing.assert_allclose(
            idata.log_likelihood[name].values[0, s], expected, rtol=1e-9, atol=1e-9
        )
