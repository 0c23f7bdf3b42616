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
    df["c"] = np.arange(len(df)) % 4
    m = GLMM("yb ~ x + (x|g)", df, priors={"g": priors.InverseWishart()})
    assert "InverseWishart" in compiled.unsupported_reason(m)
    m = GLMM("c ~ x + (1|g)", df, family="poisson", link="identity")
    assert "poisson/identity" in compiled.unsupported_reason(m)
    m = GLMM("yb ~ x + (1|g)", df, priors={"g": priors.Jeffreys()})
    assert "Jeffreys" in compiled.unsupported_reason(m)
    # what the specialised kernel leaves, the general density takes
    m = GLMM("yb ~ x + (x|g)", df, link="probit")
    assert "probit" in compiled.specialised_reason(m)
    assert compiled.unsupported_reason(m) is None
    assert compiled.unsupported_reason(m, "centered") is None
    from bayesglmm.errors import MethodError

    m = GLMM("yb ~ x + (x|g)", df, priors={"g": priors.InverseWishart()})
    with pytest.raises(MethodError, match="does not cover prior InverseWishart"):
        m.fit(nuts_sampler="compiled")


def _general_cases():
    """(model, parameterization): every family, link, prior and term of the general density,
    four models so that PyTensor compiles little."""
    df = _frame()
    bern = simulate("yb ~ x + (1|g)", df, [0.0, 1.0], {"g": 1.0}, random_seed=4)
    yield (
        GLMM(
            "yb ~ x + f + (x|g) + (1|h)",
            bern,
            link="probit",
            priors={
                "x": priors.StudentT(4, 0.5, 2.0),
                "f": priors.Cauchy(0.4, 2.0),
                "g": priors.LKJ(eta=2.0),
                "h": priors.Exponential(2.0),
            },
        ),
        "noncentered",
    )
    binom = simulate("cbind(s, fl) ~ x + (1|g)", df, [0.1, 0.5], {"g": 0.5}, trials=6,
                     random_seed=1)  # fmt: skip
    yield (
        GLMM(
            "cbind(s, fl) ~ x + offset(log(t)) + (x + t|g) + (1|h)",
            binom,
            link="cloglog",
            priors={"h": priors.HalfCauchy(1.5), "Intercept": priors.Flat()},
        ),
        "centered",
    )
    counts = simulate("c ~ x + (1|g)", df, [0.5, 0.2], {"g": 0.3}, family="poisson",
                      random_seed=2)  # fmt: skip
    counts["c"] = np.random.default_rng(5).negative_binomial(2, 0.4, len(counts))
    yield (
        GLMM(
            "c ~ x + (1|g) + (x||h)",
            counts,
            family="negative_binomial",
            priors={
                "g": priors.HalfStudentT(3, 1.0),
                "h": priors.InverseGamma(2.0, 1.0),
                "h|x": priors.Gamma(2.0, 1.0, on="variance"),
            },
        ),
        "noncentered",
    )
    gauss = simulate("y ~ x + (1|g)", df, [1.0, 2.0], {"g": 1.0}, family="gaussian",
                     dispersion=0.8, random_seed=3)  # fmt: skip
    yield (
        GLMM(
            "y ~ x + (x|g) + (1|h)",
            gauss,
            family="gaussian",
            priors={"h": priors.Gamma(2.0, 2.0), "sigma": priors.HalfCauchy(2.0)},
        ),
        "centered",
    )


@pytest.mark.parametrize("case", range(4))
def test_general_density_equals_pymc_logp_and_gradient(case):
    """The general density (every family, link, prior, correlated and centered terms)
    equals PyMC's logp and gradient on the same unconstrained space."""
    from bayesglmm.bayes import density, density_layout

    model, par = list(_general_cases())[case]
    assert compiled.specialised_reason(model, par) is not None
    assert density_layout.unsupported_reason(model, par) is None
    dd = density_layout.density_data(model, par)
    pm_model = model.build_pymc(parameterization=par)
    names = [v.name for v in pm_model.value_vars]
    outs = pm_model.unobserved_value_vars
    # one PyTensor function for logp, gradient and the named variables (compiles once)
    fn = pm_model.compile_fn([pm_model.logp(), pm_model.dlogp(), *outs],
                             inputs=pm_model.value_vars, on_unused_input="ignore",
                             point_fn=False)  # fmt: skip
    rng = np.random.default_rng(case)
    for _ in range(2):
        x = rng.normal(scale=0.7, size=dd.ndim)
        point = dd.value_point(x, model)
        assert set(point) == set(names)
        value, grad = density.logp_grad(x, *dd.args)
        ref_logp, ref_grad, *_ = fn(**point)
        assert value == pytest.approx(float(ref_logp), abs=LOGP_TOL * abs(value))
        pieces = dd.value_point(grad, model)
        ours = np.concatenate([np.atleast_1d(pieces[n]).ravel() for n in names])
        np.testing.assert_allclose(ours, ref_grad, rtol=GRAD_TOL, atol=GRAD_TOL)
    # the named draws are the PyMC model's free and deterministic variables: same names,
    # dims and values at the same unconstrained point
    xs = rng.normal(scale=0.7, size=(2, 3, dd.ndim))
    named = dd.expand(xs, model)
    assert set(named) == {v.name for v in pm_model.free_RVs + pm_model.deterministics}
    values = fn(**dd.value_point(xs[1, 2], model))[2:]
    ref = dict(zip([v.name for v in outs], values, strict=True))
    for name, arr in named.items():
        np.testing.assert_allclose(arr[1, 2], ref[name], rtol=1e-12, atol=1e-12, err_msg=name)
        dims = pm_model.named_vars_to_dims.get(name)
        if dims:
            assert dd.dims[name] == tuple(dims), name
            assert arr.shape == (2, 3, *(len(pm_model.coords[d]) for d in dims)), name


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


def test_general_path_fits_through_the_result_assembly():
    """A probit model with correlated slopes, centered: ``auto`` samples it on the general
    compiled density; the result has the PyMC model's variables, the variance components
    and correlation, a pointwise log-likelihood, and the same seed gives the same draws."""
    model, _ = list(_general_cases())[0]
    kw = dict(draws=40, tune=40, chains=2, random_seed=5, progressbar=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 40 draws: low-ESS warnings
        a = model.fit(parameterization="centered", **kw)
        b = model.fit(parameterization="centered", nuts_sampler="compiled", **kw)
    assert a.info["details"]["nuts_sampler"] == "compiled"
    assert {"var(g|Intercept)", "var(g|x)", "cor(g|Intercept,x)", "var(h)"} <= set(a.table.index)
    assert "1+x|g_offset" not in a.idata.posterior  # centered: the effects are sampled
    assert a.idata.posterior["1+x|g"].dims == ("chain", "draw", "g", "1+x|g_coef")
    assert a.idata.log_likelihood["yb"].shape == (2, 40, model.design.n)
    for name in a.idata.posterior.data_vars:
        np.testing.assert_array_equal(a.idata.posterior[name], b.idata.posterior[name])


class _Stop(Exception):
    pass


@pytest.mark.parametrize(
    ("sampler_kwargs", "grad_based", "link"),
    [(None, False, "logit"), ({"use_grad_based_mass_matrix": True}, True, "logit"),
     (None, False, "probit")],
)  # fmt: skip
def test_compiled_path_adapts_the_mass_matrix_from_draw_variances(
    monkeypatch, sampler_kwargs, grad_based, link
):
    """nutpie receives use_grad_based_mass_matrix=False (Stan's and PyMC's variance-based
    estimate) on both compiled densities unless sampler_kwargs says otherwise."""
    from bayesglmm.bayes import nutpie_driver

    seen = {}

    def fake_settings(seed, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(nutpie_driver, "settings_for", fake_settings)
    df = _frame()
    df["yb"] = (df.x > 0).astype(int)
    model = GLMM("yb ~ x + (1|g)", df, link=link)
    with pytest.raises(_Stop):
        model.fit(method="nuts", draws=10, tune=10, chains=1, sampler_kwargs=sampler_kwargs)
    assert seen["use_grad_based_mass_matrix"] is grad_based


def test_chains_start_near_the_glm_fit_without_random_effects():
    """The fixed effects start within two standard errors of the GLM without random
    effects; the other coordinates in (-1, 1). Salamander, Mate ~ 0 + Cross: the GLM is
    saturated in Cross, so R's ``glm(Mate ~ 0 + Cross, binomial(link))`` has closed forms:
    estimate link(p_j) and standard error sqrt(p_j (1 - p_j) / n_j) / mu_eta, p_j the mating
    proportion of cross j (n_j = 90)."""
    from scipy import stats

    from bayesglmm import datasets
    from bayesglmm.bayes import density_sampler
    from bayesglmm.bayes.callbacks import callback_model, start_box

    sal = datasets.load("salamander")
    grp = sal.groupby("Cross")["Mate"].agg(["mean", "count"])
    p, n = grp["mean"].to_numpy(), grp["count"].to_numpy()
    expected = {
        "logit": (np.log(p / (1 - p)), np.sqrt(1 / (n * p * (1 - p)))),
        "probit": (
            stats.norm.ppf(p),
            np.sqrt(p * (1 - p) / n) / stats.norm.pdf(stats.norm.ppf(p)),
        ),
    }
    for link, (est, se) in expected.items():
        model = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", sal, link=link)
        if link == "logit":  # the specialised kernel
            kd = compiled.kernel_data(model)
            cm, ndim = callback_model(model, kd), kd.ndim
        else:  # the general density
            dd, cm = density_sampler.prepare(model, "noncentered")
            ndim = dd.ndim
        centre, half = start_box(model.design, ndim)
        np.testing.assert_allclose(centre[:4], est, rtol=1e-8)
        np.testing.assert_allclose(half[:4], 2 * se, rtol=1e-6)
        assert np.all(centre[4:] == 0.0) and np.all(half[4:] == 1.0)
        for seed in range(5):
            x0 = cm.initial_point(seed)
            assert np.all(np.abs(x0 - centre) <= half)
        # not all chains start at the same point
        assert not np.allclose(cm.initial_point(0), cm.initial_point(1))

    # Gaussian: ordinary least squares (numpy's polyfit, its own implementation)
    df = _frame(3, 200)
    df["y"] = 5.0 + 2.0 * df.x + np.random.default_rng(0).normal(size=200)
    model = GLMM("y ~ x + (1|g)", df, family="gaussian")
    coef, cov = np.polyfit(df.x, df.y, 1, cov="unscaled")
    s2 = np.sum((df.y - np.polyval(coef, df.x)) ** 2) / (200 - 2)
    centre, half = start_box(model.design, compiled.kernel_data(model).ndim)
    np.testing.assert_allclose(centre[:2], coef[::-1], rtol=1e-8)
    np.testing.assert_allclose(half[:2], 2 * np.sqrt(s2 * np.diag(cov))[::-1], rtol=1e-6)

    # complete separation: no finite GLM estimate, the fixed effects start in (-1, 1)
    df["yb"] = (df.x > 0).astype(int)
    model = GLMM("yb ~ x + (1|g)", df)
    centre, half = start_box(model.design, compiled.kernel_data(model).ndim)
    assert np.all(centre == 0.0) and np.all(half == 1.0)


def test_many_fixed_effect_columns_skip_the_glm_start(monkeypatch):
    """Above the column limit (an IRLS iteration costs n p^2) the chains start in (-1, 1)."""
    from bayesglmm.bayes import callbacks

    df = _frame(3, 200)
    df["y"] = 5.0 + 2.0 * df.x + np.random.default_rng(0).normal(size=200)
    model = GLMM("y ~ x + (1|g)", df, family="gaussian")
    ndim = compiled.kernel_data(model).ndim
    assert not np.all(callbacks.start_box(model.design, ndim)[0] == 0.0)
    monkeypatch.setattr(callbacks, "_GLM_START_MAX_COLUMNS", 1)
    centre, half = callbacks.start_box(model.design, ndim)
    assert np.all(centre == 0.0) and np.all(half == 1.0)
