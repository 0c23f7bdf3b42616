"""One option vocabulary: bad options of every method are refused before anything runs.

Every case calls ``GLMM.fit`` (the API a user calls) with the stages that build, compile,
sample or optimize replaced by a function that raises :class:`Ran`; a case passes only if
:class:`~bayesglmm.errors.OptionError` comes first, on one line naming the option. The
``reaches_the_work`` cases show that the replacement does intercept a valid call.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, OptionError, simulate
from bayesglmm.methods import available_methods, get_method
from bayesglmm.options import (
    METHODS,
    NUTS_SAMPLERS,
    known_options,
    option_defaults,
    resolve_options,
)


class Ran(Exception):
    """Raised by a stage that builds, compiles, samples or optimizes (must not be reached)."""


def _ran(*args, **kwargs):
    raise Ran("work started before the options were checked")


@pytest.fixture
def no_work(monkeypatch):
    """Replace every stage that does work with :func:`_ran`."""
    from bayesglmm.bayes import builder, compiled, nuts
    from bayesglmm.bayes.gibbs import fit as gibbs_fit
    from bayesglmm.frequentist import agq, laplace, lmm, pql

    for module, name in [
        (compiled, "sample_compiled"),
        (compiled, "kernel_data"),
        (nuts, "run_pm_sample"),
        (nuts, "check_priors"),
        (builder, "build_pymc_model"),
        (gibbs_fit, "run_pm_sample"),
        (gibbs_fit, "check_priors"),
        (laplace, "minimize_deviance"),
        (agq, "fit_laplace_design"),
        (agq, "minimize_deviance"),
        (pql, "pql_iterations"),
        (lmm.LMMProblem, "optimize"),
    ]:
        monkeypatch.setattr(module, name, _ran)


@pytest.fixture(scope="module")
def binary():
    rng = np.random.default_rng(8)
    frame = pd.DataFrame(
        {"x": rng.normal(size=60), "g": np.repeat([f"g{i}" for i in range(10)], 6)}
    )
    data = simulate("y ~ x + (1|g)", frame, {"Intercept": 0.2, "x": 0.5}, {"g": 0.5}, random_seed=8)
    return GLMM("y ~ x + (1|g)", data)


@pytest.fixture(scope="module")
def gaussian():
    rng = np.random.default_rng(9)
    frame = pd.DataFrame(
        {"x": rng.normal(size=60), "g": np.repeat([f"g{i}" for i in range(10)], 6)}
    )
    data = simulate(
        "y ~ x + (1|g)",
        frame,
        {"Intercept": 1.0, "x": 0.5},
        {"g": 0.5},
        family="gaussian",
        dispersion=1.0,
        random_seed=9,
    )
    return GLMM("y ~ x + (1|g)", data, family="gaussian")


#: (method, options, text the one-line message must contain)
BAD = [
    # NUTS
    ("nuts", {"draws": 0}, "draws"),
    ("nuts", {"draws": -1}, "draws"),
    ("nuts", {"draws": "100"}, "draws"),
    ("nuts", {"draws": 100.0}, "draws"),
    ("nuts", {"draws": True}, "draws"),
    ("nuts", {"chains": -1}, "chains"),
    ("nuts", {"chains": 0}, "chains"),
    ("nuts", {"chains": True}, "chains"),
    ("nuts", {"tune": -5}, "tune"),
    ("nuts", {"cores": 0}, "cores"),
    ("nuts", {"target_accept": 1.5}, "target_accept"),
    ("nuts", {"target_accept": 1.0}, "target_accept"),
    ("nuts", {"target_accept": 0}, "target_accept"),
    ("nuts", {"target_accept": float("nan")}, "target_accept"),
    ("nuts", {"target_accept": "0.9"}, "target_accept"),
    ("nuts", {"nuts_sampler": "stan"}, "nuts_sampler"),
    ("nuts", {"parameterization": "centred"}, "'centered'"),
    ("nuts", {"random_seed": -1}, "random_seed"),
    ("nuts", {"random_seed": 1.5}, "random_seed"),
    ("nuts", {"random_seed": "1"}, "random_seed"),
    ("nuts", {"init": "adapt_diag"}, "init='adapt_diag'"),  # the compiled path cannot honour
    ("nuts", {"init": "adapt_diag", "nuts_sampler": "nutpie"}, "init"),
    ("nuts", {"init": "magic", "nuts_sampler": "pymc"}, "init"),
    ("nuts", {"start": {"Intercept": 0.0}}, "start"),  # compiled: no initial values
    ("nuts", {"start": "zero"}, "start"),
    ("nuts", {"sampler_kwargs": {"draws": 5}}, "sampler_kwargs['draws']"),
    ("nuts", {"sampler_kwargs": {"seed": 5}}, "random_seed"),
    ("nuts", {"sampler_kwargs": {"bogus": 1}}, "sampler_kwargs['bogus']"),
    ("nuts", {"sampler_kwargs": {"maxdepth": "deep"}}, "sampler_kwargs['maxdepth']"),
    ("nuts", {"sampler_kwargs": {"bogus": 1}, "nuts_sampler": "pymc"}, "'bogus'"),
    ("nuts", {"sampler_kwargs": [1, 2]}, "sampler_kwargs"),
    ("nuts", {"log_likelihood": "yes"}, "log_likelihood"),
    ("nuts", {"allow_improper": 1}, "allow_improper"),
    ("nuts", {"progressbar": "yes"}, "progressbar"),
    ("nuts", {"maxiter": 5}, "'maxiter'"),
    ("nuts", {"max_iter": 5}, "'max_iter'"),
    ("nuts", {"initvals": {}}, "did you mean 'start'"),
    ("nuts", {"target_acept": 0.9}, "did you mean 'target_accept'"),
    # Gibbs
    ("gibbs", {"draws": 0}, "draws"),
    ("gibbs", {"chains": 0}, "chains"),
    ("gibbs", {"tune": -1}, "tune"),
    ("gibbs", {"cores": -2}, "cores"),
    ("gibbs", {"random_seed": -3}, "random_seed"),
    ("gibbs", {"steps": "auto"}, "steps"),
    ("gibbs", {"steps": {"x": "magic"}}, "steps['x']"),
    ("gibbs", {"nuts_fallback": "no"}, "nuts_fallback"),
    ("gibbs", {"scale_moves": 0}, "scale_moves"),
    ("gibbs", {"sampler_kwargs": {"step": None}}, "sampler_kwargs['step']"),
    ("gibbs", {"sampler_kwargs": {"bogus": 1}}, "sampler_kwargs['bogus']"),
    ("gibbs", {"target_accept": 0.9}, "'target_accept'"),  # sampler_kwargs for Gibbs' NUTS
    ("gibbs", {"start": 3}, "start"),
    ("gibbs", {"initvals": [{}]}, "did you mean 'start'"),
    # Laplace
    ("laplace", {"max_iter": 0}, "max_iter"),
    ("laplace", {"max_iter": "abc"}, "max_iter"),
    ("laplace", {"maxiter": 5}, "did you mean 'max_iter'"),
    ("laplace", {"curvature": "hessian"}, "curvature"),
    ("laplace", {"threads": 0}, "threads"),
    ("laplace", {"random_seed": -1}, "random_seed"),  # seeds the iterative solver's probes
    ("laplace", {"solver": "cg"}, "solver"),
    ("laplace", {"n_quad": 5}, "'n_quad'"),
    ("laplace", {"start": [1.0, 2.0]}, "start has 2 values; expected 3"),
    ("laplace", {"start": [np.nan, 0.0, 0.0]}, "start"),
    ("laplace", {"start": "abc"}, "start"),
    ("laplace", {"start": {"thetaa": 1.0}}, "did you mean 'theta'"),
    ("laplace", {"start": {"theta": [1.0, 1.0]}}, "start['theta'] has 2 values"),
    ("laplace", {"start": {"fixed_effects": [0.0]}}, "start['fixed_effects']"),
    ("laplace", {"start": {"fixed_effects": {"x": 0.0}}}, "start['fixed_effects'] lacks"),
    ("laplace", {"start": {"variance_components": {}}}, "start['variance_components']"),
    # AGQ
    ("agq", {"n_quad": 0}, "n_quad"),
    ("agq", {"n_quad": 2.5}, "n_quad"),
    ("agq", {"n_quad": True}, "n_quad"),
    ("agq", {"n_quad": "25"}, "n_quad"),
    ("agq", {"max_iter": -1}, "max_iter"),
    ("agq", {"maxiter": 10}, "did you mean 'max_iter'"),
    ("agq", {"nAGQ": 10}, "did you mean 'n_quad'"),
    ("agq", {"start": [0.0]}, "start has 1 values"),
    ("agq", {"threads": 1.5}, "threads"),
    # PQL
    ("pql", {"tol": 0}, "tol"),
    ("pql", {"tol": -1.0}, "tol"),
    ("pql", {"tol": "small"}, "tol"),
    ("pql", {"tol": float("inf")}, "tol"),
    ("pql", {"max_iter": 0}, "max_iter"),
    ("pql", {"reml": "yes"}, "reml"),
    ("pql", {"reml": 1}, "reml"),
    ("pql", {"dispersion": "free"}, "dispersion"),
    ("pql", {"alpha": -1.0}, "alpha"),
    ("pql", {"threads": 0}, "threads"),
    ("pql", {"draws": 100}, "'draws'"),
    ("pql", {"niter": 10}, "did you mean 'max_iter'"),
    ("pql", {"start": [0.0]}, "'start'"),
]

#: the same for a Gaussian model (the linear mixed model, and PQL's detour to it)
BAD_GAUSSIAN = [
    ("lmm", {"reml": "yes"}, "reml"),
    ("lmm", {"reml": 1}, "reml"),
    ("lmm", {"REML": False}, "did you mean 'reml'"),
    ("lmm", {"max_iter": 0}, "max_iter"),
    ("lmm", {"threads": "two"}, "threads"),
    ("lmm", {"random_seed": 1}, "'random_seed'"),
    ("lmm", {"progressbar": 2}, "progressbar"),
    ("pql", {"tol": 0}, "tol"),  # checked before PQL hands a Gaussian model to lmm
    ("pql", {"bogus": 1}, "'bogus'"),
]


def _assert_refused(model, method, options, needle):
    with pytest.raises(OptionError) as caught:
        model.fit(method=method, **options)
    message = str(caught.value)
    assert "\n" not in message
    assert needle in message, message
    name = next(iter(options))
    assert name in message or f"'{name}'" in message, message


@pytest.mark.parametrize(("method", "options", "needle"), BAD)
def test_bad_options_are_refused_before_any_work(binary, no_work, method, options, needle):
    _assert_refused(binary, method, options, needle)


@pytest.mark.parametrize(("method", "options", "needle"), BAD_GAUSSIAN)
def test_bad_options_of_gaussian_fits(gaussian, no_work, method, options, needle):
    _assert_refused(gaussian, method, options, needle)


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("nuts", {"draws": 10, "random_seed": 1}),
        ("nuts", {"nuts_sampler": "pymc", "init": "adapt_diag", "start": {"Intercept": 0.1}}),
        ("nuts", {"sampler_kwargs": {"maxdepth": 8}}),
        ("nuts", {"nuts_sampler": "pymc", "sampler_kwargs": {"max_treedepth": 8}}),
        ("gibbs", {"draws": 10, "sampler_kwargs": {"target_accept": 0.9}, "start": [{}, {}]}),
        ("laplace", {"max_iter": 5, "threads": 1, "start": {"theta": [1.0]}}),
        ("agq", {"n_quad": 5, "max_iter": 5}),
        ("pql", {"max_iter": 5, "tol": 1e-4, "threads": 1, "progressbar": False}),
    ],
)
def test_valid_options_reach_the_work(binary, no_work, method, options):
    """The control of the corpus above: with good options the (replaced) work is reached."""
    with pytest.raises(Ran):
        binary.fit(method=method, **options)


def test_lmm_valid_options_reach_the_work(gaussian, no_work):
    with pytest.raises(Ran):
        gaussian.fit(method="lmm", reml=False, max_iter=10, threads=1)


@pytest.mark.parametrize("method", available_methods())
def test_the_record_matches_its_fit_function(method):
    """The fit function takes the model and, as keywords without defaults, exactly the
    options its record declares (their defaults are the record's); nothing public is named
    ``maxiter``."""
    params = inspect.signature(get_method(method)).parameters
    named = {k for k in params if k != "model"}
    assert named == set(known_options(method))
    for name in named:
        p = params[name]
        assert p.kind is p.KEYWORD_ONLY and p.default is p.empty, name
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())
    assert "maxiter" not in set(known_options(method))


@pytest.mark.parametrize("method", available_methods())
def test_every_default_passes_its_own_check(method):
    """A default is never checked when a fit runs; here each one is."""
    for name, option in METHODS[method].items():
        assert option.check(name, option.default) == option.default, name


def test_an_option_the_fit_function_does_not_take_is_refused_by_the_record(binary):
    """The record's table is the one list: an option outside it is an OptionError, one
    inside it reaches the function (checked above for every method)."""
    with pytest.raises(OptionError, match="unknown option 'n_quad' for method 'laplace'"):
        binary.fit(method="laplace", n_quad=3)


def test_every_registered_method_has_an_option_table():
    """The CLI and resolve_options need it (see options.register_options)."""
    from bayesglmm.methods import available_methods

    assert set(available_methods()) <= set(METHODS)


def test_nuts_sampler_choices_are_the_backends():
    from bayesglmm.bayes.nuts import BACKENDS

    assert tuple(BACKENDS) == NUTS_SAMPLERS


def test_resolve_normalizes_and_lists_known_options():
    out = resolve_options("nuts", {"model": object(), "draws": np.int64(5), "unknown": {}})
    assert out == {"draws": 5} and type(out["draws"]) is int
    with pytest.raises(OptionError, match="unknown option 'foo' for method 'lmm'.*known: "):
        resolve_options("lmm", {"unknown": {"foo": 1}})


def test_warnings_point_at_the_users_line(gaussian):
    """A warning from inside the fitting code names this file, whatever the call path."""
    from bayesglmm.frequentist.pql import PQLWarning, fit_pql

    with pytest.warns(PQLWarning, match="linear mixed model itself") as caught:
        gaussian.fit(method="pql", progressbar=False)
    assert caught[0].filename == __file__
    with pytest.warns(PQLWarning) as caught:  # one frame less between the user and it
        fit_pql(gaussian, **option_defaults("pql"))
    assert caught[0].filename == __file__


def test_progress_bars_only_for_work_beyond_a_second(binary, capsys, monkeypatch):
    """progressbar=None shows PQL's bar only once the iterations have run PROGRESS_DELAY
    seconds (set here to "never" and to "at once", so that the test does not depend on the
    machine's speed) and only where a bar renders (a terminal); True always, False never.
    stderr is captured (not a terminal)."""
    from bayesglmm import options

    fit = {"method": "pql", "max_iter": 3, "tol": 1e-12}  # 3 iterations, quick
    monkeypatch.setattr(options, "PROGRESS_DELAY", 1e6)  # a fit shorter than that: no bar
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PQL does not converge in 3 iterations: said
        binary.fit(**fit)
        assert "PQL" not in capsys.readouterr().err
        binary.fit(**fit, progressbar=True)
        assert "PQL" in capsys.readouterr().err
        monkeypatch.setattr(options, "PROGRESS_DELAY", 0.0)  # as if every fit were slow
        binary.fit(**fit)  # stderr is not a terminal: no bar written into it
        assert "PQL" not in capsys.readouterr().err
        monkeypatch.setattr(options, "bars_render", lambda: True)  # as on a terminal
        binary.fit(**fit)
        assert "PQL" in capsys.readouterr().err
        binary.fit(**fit, progressbar=False)
        assert capsys.readouterr().err == ""
    assert options.show_progress(None) and options.show_progress(True)
    assert not options.show_progress(False)


def test_sampling_progress_in_a_pipe(capsys, monkeypatch):
    """nutpie draws its bar only on a terminal; in a pipe the compiled path writes lines of
    its own, under the same delay rule (nothing for a block shorter than the delay)."""
    import time

    from bayesglmm import options
    from bayesglmm.bayes.compiled import _pipe_progress

    monkeypatch.setattr(options, "PROGRESS_DELAY", 1e6)
    with _pipe_progress("NUTS"):
        time.sleep(0.05)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(options, "PROGRESS_DELAY", 0.01)
    with _pipe_progress("NUTS"):
        time.sleep(0.3)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("NUTS: running") and err[-1].startswith("NUTS: done in")


def test_a_new_method_is_one_record(monkeypatch, binary):
    """register_method with one record: the method fits, checks its options and its
    applicability, and is listed (here the Laplace fit under another name, Gaussian only)."""
    from bayesglmm import methods, options
    from bayesglmm.errors import MethodError

    monkeypatch.setattr(options, "METHODS", dict(options.METHODS))
    monkeypatch.setattr(methods, "_RECORDS", dict(methods._RECORDS))
    laplace = methods.get_record("laplace")
    methods.register_method(
        methods.MethodRecord(
            "laplace_copy",
            laplace.target,
            "likelihood",
            "the Laplace fit again",
            laplace.options,
            (methods.GAUSSIAN,),
        )
    )
    assert "laplace_copy" in methods.available_methods()
    assert "laplace_copy" in set(methods.method_table()["method"])
    assert options.known_options("laplace_copy") == options.known_options("laplace")
    with pytest.raises(OptionError, match="max_iter must be a positive integer"):
        binary.fit(method="laplace_copy", max_iter=0)
    with pytest.raises(MethodError, match="method 'laplace_copy' fits Gaussian models"):
        binary.fit(method="laplace_copy")


def test_a_misspelt_method_gets_a_suggestion():
    from bayesglmm.errors import MethodError

    with pytest.raises(MethodError, match="unknown method 'lapalce'; did you mean 'laplace'"):
        get_method("lapalce")


def test_one_grouping_decision_for_the_record_and_the_quadrature():
    """Design.grouping decides single / nested / crossed once; the agq record's check and
    the quadrature's structure both follow it."""
    from bayesglmm.errors import MethodError
    from bayesglmm.frequentist.agq import quadrature_structure
    from bayesglmm.methods import get_record

    frame = pd.DataFrame(
        {
            "a": np.repeat(["a0", "a1", "a2"], 8),
            "b": [f"b{i // 2}" for i in range(24)],  # 12 levels, each inside one of a
            "c": np.tile(["c0", "c1", "c2", "c3"], 6),  # crossed with a
        }
    )
    frame["y"] = np.random.default_rng(3).integers(0, 2, len(frame))
    expected = {"(1|a)": "single", "(1|a) + (1|b)": "nested", "(1|a) + (1|c)": "crossed"}
    record = get_record("agq")
    for terms, kind in expected.items():
        design = GLMM(f"y ~ 1 + {terms}", frame).design
        assert design.grouping["kind"] == kind
        reason = record.applies(design)
        if kind == "crossed":
            assert "crossed" in reason
            with pytest.raises(MethodError, match="crossed"):
                quadrature_structure(design)
        else:
            assert reason is None and quadrature_structure(design)["kind"] == kind
    nested = GLMM("y ~ 1 + (1|a) + (1|b)", frame).design.grouping
    assert (nested["outer"], nested["inner"]) == ("a", "b")


def test_the_solver_defaults_of_ee_are_the_records(monkeypatch):
    """solve_equations called without tol/max_iter uses the ee record's defaults."""
    from bayesglmm import options
    from bayesglmm.frequentist.moments import fit as moments_fit

    seen = {}

    def least_squares(prob, B, S, draws, start, free, tol, max_iter):
        seen.update(tol=tol, max_iter=max_iter)
        raise Ran

    table = dict(options.METHODS["ee"])
    table["tol"] = dataclasses.replace(table["tol"], default=1e-3)
    monkeypatch.setitem(options.METHODS, "ee", table)
    monkeypatch.setattr(moments_fit, "_least_squares", least_squares)
    with pytest.raises(Ran):
        moments_fit.solve_equations(SimpleNamespace(p=1, R=1), None, None, None, None)
    assert seen == {"tol": 1e-3, "max_iter": options.METHODS["ee"]["max_iter"].default}
