"""Bad or contradictory options are refused in one line naming them, before any work.

Classes: options that contradict each other or are ignored (cross-option rules of the method
records, ``ebp(n_quad=0)``, ``conjugate_priors`` with nothing to replace, ``demo
--data-dir``); booleans and choices type-checked (``predict``, ``ebp``, ``GLMM``); start
values checked for every backend; ``threads`` clamped to the cores; sizes refused when they
need more memory than there is. Each refusal is checked to come before the fitting function
(or sampler) is called.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

import bayesglmm.method_checks as method_checks
from bayesglmm import GLMM, datasets, ebp
from bayesglmm.errors import OptionError
from bayesglmm.methods import RECORDS, MethodRecord
from bayesglmm.model import priors
from bayesglmm.options import option_defaults, usable_cores

CBPP = "cbind(incidence, size - incidence) ~ period + (1|herd)"
SALAMANDER = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
GB = 10**9


@pytest.fixture(scope="module")
def cbpp():
    return GLMM(CBPP, datasets.load("cbpp"))


@pytest.fixture(scope="module")
def salamander():
    return GLMM(SALAMANDER, datasets.load("salamander"))


@pytest.fixture(scope="module")
def laplace_fit(cbpp):
    return cbpp.fit("laplace")


@pytest.fixture
def no_engine(monkeypatch):
    """Any fitting function called fails the test: refusals come before it."""

    def fail(self):
        raise AssertionError(f"the fitting function of {self.name!r} was called")

    monkeypatch.setattr(MethodRecord, "fit", property(fail))


@pytest.fixture
def four_gb(monkeypatch):
    """A machine with 4 GB available, whatever this one has."""
    monkeypatch.setattr(method_checks, "available_memory", lambda: 4 * GB)


def refused(call, *names, error=OptionError):
    """``call()`` raises ``error`` within a second, its one-line message naming ``names``."""
    t0 = time.perf_counter()
    with pytest.raises(error) as info:
        call()
    elapsed = time.perf_counter() - t0
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert name in message, (name, message)
    assert elapsed < 1.0, elapsed
    return message


# ------------------------------------------------------------------------------------------
# options that contradict each other or would be ignored

CROSS = [
    ("mcem", {"mc_size": 500, "mc_max": 100}, ("mc_size=500", "mc_max=100")),
    ("mcnr", {"mc_size": 500, "mc_max": 100}, ("mc_size=500", "mc_max=100")),
    ("mcem", {"mc_size": np.int64(101), "mc_max": 100}, ("mc_size=101", "mc_max=100")),
    ("ee", {"n_sim": 50}, ("n_sim", "quadrature", "expectation='auto'")),
    ("ee2", {"n_sim": 50}, ("n_sim", "quadrature")),
    ("ee", {"n_sim": 50, "expectation": "quadrature"}, ("n_sim", "quadrature")),
    ("ee", {"n_quad": 10, "expectation": "simulation"}, ("n_quad", "simulation")),
    ("ee2", {"n_quad": 10, "expectation": "simulation"}, ("n_quad", "simulation")),
    ("pql", {"alpha": 2.0}, ("alpha", "binomial")),
]


@pytest.mark.parametrize("method, options, names", CROSS)
def test_contradictory_options_refused(cbpp, no_engine, method, options, names):
    refused(lambda: cbpp.fit(method, **options), *names)


def test_quadrature_sizes_refused_where_the_engine_simulates(salamander, no_engine):
    # two factors: expectation='auto' resolves to simulation, so n_quad is ignored
    refused(lambda: salamander.fit("ee", n_quad=10), "n_quad", "simulation")


def test_alpha_refused_on_poisson(no_engine):
    df = datasets.load("cbpp")
    m = GLMM("incidence ~ period + (1|herd)", df, family="poisson")
    refused(lambda: m.fit("pql", alpha=1.5), "alpha", "poisson")


def test_ebp_n_quad_zero_is_not_default(laplace_fit):
    refused(lambda: ebp(laplace_fit, n_quad=0), "n_quad")


@pytest.fixture
def no_sampling(monkeypatch):
    import bayesglmm.bayes.gibbs.fit as gibbs_fit
    import bayesglmm.bayes.nuts as nuts

    def fail(*args, **kwargs):
        raise AssertionError("the sampler was called")

    monkeypatch.setattr(nuts, "run_pm_sample", fail)
    monkeypatch.setattr(gibbs_fit, "run_pm_sample", fail)
    monkeypatch.setattr(gibbs_fit, "_fit_collapsed", fail)
    monkeypatch.setattr(gibbs_fit, "build_steps", fail)


@pytest.mark.parametrize(
    "chosen",
    [
        {"herd": priors.HalfNormal(1.0)},
        {"herd": priors.HalfCauchy(2.0)},
    ],
)
def test_conjugate_priors_with_nothing_to_replace(no_sampling, chosen):
    m = GLMM(CBPP, datasets.load("cbpp"), priors=chosen)
    message = refused(
        lambda: m.fit("gibbs", conjugate_priors=True, random_seed=1),
        "conjugate_priors",
        "herd",
    )
    assert "same model" in message


def test_conjugate_priors_refused_on_a_spec_with_its_own_priors(no_sampling):
    from bayesglmm.analysis.specs import load_spec

    m = load_spec("salamander").build()
    refused(
        lambda: m.fit("gibbs", conjugate_priors=True, random_seed=1),
        "conjugate_priors",
        "Female",
        "Male",
    )


def test_demo_data_dir_missing(capsys, tmp_path):
    from bayesglmm.cli import main

    status = main(["demo", "--data-dir", str(tmp_path / "nonexistent")])
    err = capsys.readouterr().err.strip()
    assert status != 0
    assert len(err.splitlines()) == 1
    assert "data_dir" in err and "nonexistent" in err


def test_demo_data_dir_present(tmp_path):
    from bayesglmm.demo import demo_data

    assert len(demo_data(tmp_path).data) == 360  # an empty folder: the packaged copy


# ------------------------------------------------------------------------------------------
# booleans and choices

PREDICT = [
    ({"allow_new_levels": "no"}, "allow_new_levels"),
    ({"allow_new_levels": 0}, "allow_new_levels"),
    ({"allow_new_levels": None}, "allow_new_levels"),
    ({"type": "resp"}, "type"),
    ({"type": None}, "type"),
    ({"interval": "conf"}, "interval"),
    ({"interval": True}, "interval"),
    ({"level": 1.5}, "level"),
    ({"level": "0.9"}, "level"),
    ({"level": True}, "level"),
    ({"level": float("nan")}, "level"),
    ({"random_seed": -1}, "random_seed"),
    ({"random_seed": "1"}, "random_seed"),
    ({"random_seed": 1.5}, "random_seed"),
]


@pytest.mark.parametrize("kwargs, name", PREDICT)
def test_predict_arguments(laplace_fit, kwargs, name):
    refused(lambda: laplace_fit.predict(**kwargs), name)


EBP = [
    ({"type": "prob"}, "type"),
    ({"method": "quad"}, "method"),
    ({"n_quad": -1}, "n_quad"),
    ({"n_quad": 2.5}, "n_quad"),
    ({"n_quad": "10"}, "n_quad"),
    ({"n_quad": True}, "n_quad"),
    ({"n_draws": 50}, "n_draws"),
    ({"n_draws": 1000.0}, "n_draws"),
    ({"random_seed": -3}, "random_seed"),
    ({"random_seed": "a"}, "random_seed"),
]


@pytest.mark.parametrize("kwargs, name", EBP)
def test_ebp_arguments(laplace_fit, kwargs, name):
    refused(lambda: ebp(laplace_fit, **kwargs), name)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_glmm_dropna_is_a_flag(value):
    refused(lambda: GLMM(CBPP, datasets.load("cbpp"), dropna=value), "dropna")


def test_numpy_scalars_accepted(laplace_fit):
    df = datasets.load("cbpp")
    a = laplace_fit.predict(df, allow_new_levels=np.bool_(True), level=np.float32(0.9))
    b = laplace_fit.predict(df, allow_new_levels=True, level=0.9)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    out = ebp(laplace_fit, n_quad=np.int64(10), n_draws=np.int64(200), random_seed=np.int64(3))
    ref = ebp(laplace_fit, n_quad=10)
    np.testing.assert_allclose(out["estimate"], ref["estimate"], rtol=0, atol=0)
    assert GLMM(CBPP, df, dropna=np.bool_(False)).design.n == len(df)


# ------------------------------------------------------------------------------------------
# start values

LIKELIHOOD_START = [
    ({"fixed_effects": ["a", "b", "c", "d"]}, "fixed_effects"),
    ({"fixed_effects": {"nope": 1.0}}, "nope"),
    ({"variance_components": {"herd": -1.0}}, "herd"),
    ({"variance_components": {"herd": "1"}}, "herd"),
    ({"variance_components": {"herd": 0.0}}, "herd"),
    ({"variance_components": {"var(herd)": 1.0}}, "var(herd)"),
    ({"variance_components": [1.0]}, "variance_components"),
    ({"theta": "abc"}, "theta"),
    ({"dispersion": -1.0}, "dispersion"),
    ({"sigma": 1.0}, "sigma"),
    ("0.5", "start"),
]


@pytest.mark.parametrize("method", ["laplace", "agq", "mcem"])
@pytest.mark.parametrize("start, name", LIKELIHOOD_START)
def test_likelihood_start_checked(cbpp, no_engine, method, start, name):
    refused(lambda: cbpp.fit(method, start=start), name)


VECTOR_START = [
    ("gee", [1.0], "start must have 4 values"),
    ("gee", {"Intercept": 0.0}, "got a dict"),
    ("gee", ["a", 1, 1, 1], "start"),
    ("ee", [1.0] * 4, "start must have 5 values"),
    ("ee", [0.0, 0.0, 0.0, 0.0, -1.0], "standard deviations"),
    ("ee2", {"theta": [1.0]}, "got a dict"),
]


@pytest.mark.parametrize("method, start, text", VECTOR_START)
def test_vector_start_checked(cbpp, no_engine, method, start, text):
    refused(lambda: cbpp.fit(method, start=start), "start", text)


def test_vector_start_that_fits_is_used(cbpp):
    fit = cbpp.fit("gee", start=[-1.5, -1.0, -1.0, -1.5])
    ref = cbpp.fit("gee")
    np.testing.assert_allclose(
        fit.fixed_effects.to_numpy(), ref.fixed_effects.to_numpy(), atol=1e-6
    )


SAMPLER_START = [
    ({"nope": 1.0}, "nope"),
    ({"Intercept": "a"}, "Intercept"),
    ({"1|herd_sigma": -1.0}, "1|herd_sigma"),
    ({"1|herd_offset": np.zeros(3)}, "1|herd_offset"),
    ({"Intercept": float("inf")}, "Intercept"),
    ([{"Intercept": 0.0}] * 3, "chains"),
]


@pytest.mark.parametrize("start, name", SAMPLER_START)
def test_pymc_nuts_start_checked(cbpp, no_sampling, start, name):
    refused(
        lambda: cbpp.fit("nuts", nuts_sampler="pymc", start=start, chains=2, random_seed=1),
        name,
    )


@pytest.mark.parametrize("start, name", SAMPLER_START[:4])
def test_gibbs_steps_start_checked(cbpp, no_sampling, start, name):
    refused(lambda: cbpp.fit("gibbs", scheme="steps", start=start, random_seed=1), name)


@pytest.mark.parametrize(
    "start, name",
    [
        ({"Intercept": "x"}, "Intercept"),
        ({"Intercept": [1.0, 2.0]}, "Intercept"),
        ({"1|herd": np.zeros(3)}, "1|herd"),
        ({"1|herd_sigma": -1.0}, "1|herd_sigma"),
        ({"nope": 1.0}, "nope"),
    ],
)
def test_gibbs_collapsed_start_checked(cbpp, monkeypatch, start, name):
    import bayesglmm.bayes.gibbs.collapsed as collapsed

    def fail(*args, **kwargs):
        raise AssertionError("the collapsed sampler ran")

    monkeypatch.setattr(collapsed, "run_chains", fail)
    refused(lambda: cbpp.fit("gibbs", scheme="collapsed", start=start, random_seed=1), name)


def test_compiled_nuts_refuses_start(cbpp, no_sampling):
    refused(
        lambda: cbpp.fit("nuts", nuts_sampler="compiled", start={"Intercept": 0.0}),
        "start",
    )


def test_pymc_start_that_fits_is_kept(cbpp, monkeypatch):
    import bayesglmm.bayes.nuts as nuts

    seen = {}

    def record(pm_model, log_likelihood, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(nuts, "run_pm_sample", record)
    start = {"Intercept": -1.0, "1|herd_sigma": 0.5, "1|herd_offset": np.zeros(15)}
    with pytest.raises(RuntimeError, match="stop"):
        cbpp.fit("nuts", nuts_sampler="pymc", start=start, chains=1, random_seed=1)
    assert seen["initvals"] is start


# ------------------------------------------------------------------------------------------
# threads


def test_threads_above_the_cores_clamped(cbpp):
    with pytest.warns(UserWarning, match="threads=1000000") as caught:
        fit = cbpp.fit("laplace", threads=10**6)
    assert f"threads={usable_cores()}" in str(caught[0].message)
    assert caught[0].filename == __file__  # points at the user's line
    np.testing.assert_allclose(
        fit.fixed_effects.to_numpy(), cbpp.fit("laplace").fixed_effects.to_numpy(), atol=1e-8
    )


@pytest.mark.parametrize("n", [1, np.int64(1), usable_cores()])
def test_threads_within_the_cores_accepted(cbpp, n):
    """Up to the cores this process may use (its CPU affinity), no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        cbpp.fit("laplace", threads=n)


@pytest.mark.parametrize("value", [0, -2, 1.5, "2", True])
def test_threads_type_checked(cbpp, no_engine, value):
    refused(lambda: cbpp.fit("laplace", threads=value), "threads")


# ------------------------------------------------------------------------------------------
# sizes bounded by memory

MEMORY = [
    ("nuts", {"draws": 10**9}, "draws=1000000000"),
    ("nuts", {"draws": 10**6, "chains": 1000}, "chains=1000"),
    ("gibbs", {"draws": 10**9}, "draws=1000000000"),
    ("agq", {"n_quad": 10**6}, "n_quad=1000000"),
    ("mbp", {"n_quad": 10**6}, "n_quad=1000000"),
    ("mcem", {"mc_size": 10**9, "mc_max": 10**9}, "mc_size=1000000000"),
    ("mcem", {"mc_max": 10**8}, "mc_max=100000000"),
    ("mcnr", {"mc_max": 10**8}, "mc_max=100000000"),
    ("sml", {"mc_size": 10**9}, "mc_size=1000000000"),
    ("ee", {"n_sim": 10**9, "expectation": "simulation"}, "n_sim=1000000000"),
    ("ee2", {"n_sim": 10**9, "expectation": "simulation"}, "n_sim=1000000000"),
    ("ee", {"n_quad": 10**6}, "n_quad=1000000"),
]


@pytest.mark.parametrize("method, options, name", MEMORY)
def test_sizes_beyond_memory_refused(cbpp, no_engine, four_gb, method, options, name):
    message = refused(lambda: cbpp.fit(method, **options), name, "memory", "4 GB")
    assert "needs about" in message


@pytest.mark.parametrize("method, options, name", MEMORY[:1] + MEMORY[3:4] + MEMORY[5:6])
def test_sizes_beyond_memory_refused_on_this_machine(cbpp, no_engine, method, options, name):
    refused(lambda: cbpp.fit(method, **options), name, "memory")


def test_simulated_moments_on_two_factors(salamander, no_engine, four_gb):
    refused(lambda: salamander.fit("ee", n_sim=10**9), "n_sim=1000000000", "memory")


@pytest.mark.parametrize(
    "kwargs, name",
    [({"n_quad": 10**6}, "n_quad"), ({"method": "importance", "n_draws": 10**10}, "n_draws")],
)
def test_ebp_sizes_beyond_memory(laplace_fit, four_gb, kwargs, name):
    refused(lambda: ebp(laplace_fit, **kwargs), name, "memory")


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.name)
def test_defaults_fit_in_a_small_machine(salamander, cbpp, record):
    if record.memory is None:
        return
    options = option_defaults(record.name)
    for m in (salamander, cbpp):
        assert record.memory(m.design, options) < 0.5 * GB


def test_memory_estimate_grows_with_the_sizes(cbpp):
    nuts = next(r for r in RECORDS if r.name == "nuts")
    base = option_defaults("nuts")
    small = nuts.memory(cbpp.design, base)
    assert nuts.memory(cbpp.design, {**base, "draws": 2 * base["draws"]}) == 2 * small
    assert nuts.memory(cbpp.design, {**base, "log_likelihood": False}) < small


def test_valid_edges_still_fit(cbpp):
    # mc_size equal to mc_max, n_sim with simulation, alpha left at None
    fit = cbpp.fit("mcem", mc_size=100, mc_max=100, max_iter=2, random_seed=1)
    assert fit.method == "mcem"
    fit = cbpp.fit("ee", n_sim=50, expectation="simulation", random_seed=1)
    assert np.isfinite(fit.fixed_effects.to_numpy()).all()
    assert cbpp.fit("pql", alpha=None).method == "pql"
    nb = GLMM("incidence ~ period + (1|herd)", datasets.load("cbpp"), family="negative_binomial")
    assert nb.fit("pql", alpha=2.0).method == "pql"  # alpha where it belongs


@pytest.mark.parametrize(
    "second, names",
    [
        (("mcem", {"mc_size": 500, "mc_max": 100}), ("mc_size", "mc_max")),
        (("pql", {"alpha": 1.0}), ("alpha",)),
        (("agq", {"n_quad": 10**6}), ("n_quad", "memory")),
    ],
)
def test_compare_checks_every_plan_before_the_first_fit(cbpp, monkeypatch, second, names):
    from bayesglmm import compare

    def fail(self, method="nuts", **options):
        raise AssertionError(f"{method} was fitted")

    monkeypatch.setattr(GLMM, "fit", fail)
    refused(lambda: compare(cbpp, methods=["laplace", second], progressbar=False), *names)


@pytest.mark.parametrize("value", [0, 2.5, "400", True])
def test_sensitivity_prior_draws_checked(cbpp, no_engine, value):
    from bayesglmm import sensitivity

    refused(lambda: sensitivity(cbpp, prior_draws=value), "prior_draws")


def test_sensitivity_sizes_checked_before_any_refit(cbpp, no_engine, four_gb):
    from bayesglmm import sensitivity

    refused(lambda: sensitivity(cbpp, draws=10**9), "draws=1000000000", "memory")
