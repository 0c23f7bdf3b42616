"""GLMM.fit keeps every warning a fit raises: their texts in ``convergence["warnings"]``
whatever the caller's filters, and each warning raised again to the caller unchanged
(category, message, the user's line), also when the fit fails."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, simulate
from bayesglmm._warn import PACKAGE_DIR
from bayesglmm.frequentist import laplace
from bayesglmm.frequentist.pql import PQLWarning


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(8)
    frame = pd.DataFrame(
        {"x": rng.normal(size=60), "g": np.repeat([f"g{i}" for i in range(10)], 6)}
    )
    data = simulate("y ~ x + (1|g)", frame, {"Intercept": 0.2, "x": 0.5}, {"g": 0.5}, random_seed=8)
    return GLMM("y ~ x + (1|g)", data)


def _inside_package(source: str):
    """A function compiled as if it were a module of bayesglmm (its warnings' location)."""
    namespace = {"warnings": warnings}
    exec(compile(source, PACKAGE_DIR + "frequentist/_stand_in.py", "exec"), namespace)
    return namespace["stand_in"]


@pytest.fixture
def noisy_laplace(monkeypatch):
    """fit_laplace, raising before it fits: a warning from a package line, one from a
    library's line (this file's), and a DeprecationWarning (about code, not the fit)."""
    package_line = _inside_package(
        "def stand_in():\n    warnings.warn('package line says', RuntimeWarning)\n"
    )
    fit = laplace.fit_laplace

    def noisy(model, **options):
        package_line()
        warnings.warn("library line says", UserWarning, stacklevel=1)  # LIBRARY LINE
        warnings.warn("old spelling", DeprecationWarning, stacklevel=1)
        return fit(model, **options)

    monkeypatch.setattr(laplace, "fit_laplace", noisy)
    return noisy


def _line_of(marker: str) -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if marker in line and "_line_of" not in line)


def test_warnings_are_raised_again_unchanged(model, noisy_laplace):
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        fit = model.fit("laplace")  # USER LINE
    by_text = {str(w.message): w for w in shown}
    assert set(by_text) == {"package line says", "library line says", "old spelling"}
    assert len(shown) == 3  # each once
    assert by_text["package line says"].category is RuntimeWarning
    assert by_text["library line says"].category is UserWarning
    assert by_text["old spelling"].category is DeprecationWarning
    # a package line is replaced by the user's; a library's line is kept
    assert (by_text["package line says"].filename, by_text["package line says"].lineno) == (
        __file__,
        _line_of("# USER LINE"),
    )
    assert by_text["library line says"].lineno == _line_of("# LIBRARY LINE")
    # the fit's warnings are kept with the result, those about code are not
    assert fit.convergence["warnings"] == ["package line says", "library line says"]


def test_warnings_are_kept_whatever_the_filters(model, noisy_laplace):
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("ignore")
        ignored = model.fit("laplace")
    assert shown == []
    assert ignored.convergence["warnings"] == ["package line says", "library line says"]
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("once")  # a repeated warning is shown once at most
        first, second = model.fit("laplace"), model.fit("laplace")
    assert first.convergence["warnings"] == second.convergence["warnings"]
    assert "package line says" in second.convergence["warnings"]


def test_an_error_filter_still_raises(model, noisy_laplace):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(RuntimeWarning, match="package line says"):
            model.fit("laplace")


def test_warnings_before_a_failure_reach_the_caller(model, monkeypatch):
    def failing(model, **options):
        warnings.warn("about to fail", UserWarning, stacklevel=1)
        raise ValueError("failed")

    monkeypatch.setattr(laplace, "fit_laplace", failing)
    with pytest.warns(UserWarning, match="about to fail"), pytest.raises(ValueError, match="fa"):
        model.fit("laplace")


def test_a_delegated_fit_keeps_the_warning_that_delegated_it():
    """PQL on a Gaussian identity-link model warns and fits the linear mixed model: one
    result, with that warning."""
    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"x": rng.normal(size=40), "g": np.repeat([f"g{i}" for i in range(8)], 5)})
    data = simulate(
        "y ~ x + (1|g)",
        frame,
        {"Intercept": 1.0, "x": 0.5},
        {"g": 0.5},
        family="gaussian",
        dispersion=1.0,
        random_seed=9,
    )
    m = GLMM("y ~ x + (1|g)", data, family="gaussian")
    with pytest.warns(PQLWarning) as caught:
        fit = m.fit("pql", progressbar=False)
    assert fit.method == "lmm"
    assert sum(issubclass(w.category, PQLWarning) for w in caught) == 1
    assert any("linear mixed model itself" in t for t in fit.convergence["warnings"])
