"""Sizes that make a fit run for minutes are warned about, in one line naming the option and
the expected minutes, before any work; never refused. The engines are replaced by one that
stops at once, so only the warning (raised before the engine is called) is checked."""

from __future__ import annotations

import re
import warnings

import pytest

import bayesglmm as bg
from bayesglmm.method_checks import LONG_SECONDS
from bayesglmm.methods import get_record

FORMULA = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"


class _Reached(Exception):
    """The engine was called."""


def _stop(*args, **kwargs):
    raise _Reached


@pytest.fixture
def model(monkeypatch):
    import bayesglmm.frequentist.moments.fit as moments
    import bayesglmm.frequentist.montecarlo.mcem as mcem
    import bayesglmm.frequentist.montecarlo.mcnr as mcnr
    from bayesglmm import method_checks

    for module, name in ((mcem, "fit_mcem"), (mcnr, "fit_mcnr"), (moments, "fit_ee")):
        monkeypatch.setattr(module, name, _stop)
    monkeypatch.setattr(moments, "fit_ee2", _stop)
    # the memory check (run first) would refuse the largest samples on a small machine
    monkeypatch.setattr(method_checks, "available_memory", lambda: 10**15)
    return bg.GLMM(FORMULA, bg.datasets.load("salamander"))


def _long_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "minutes" in str(w.message)]


@pytest.mark.parametrize(
    ("method", "options", "option"),
    [
        ("mcem", dict(mc_max=10**8, tol=1e-6), "mc_max"),
        ("mcnr", dict(mc_max=10**7), "mc_max"),
        ("ee2", dict(n_sim=10**6), "n_sim"),
        ("ee", dict(n_sim=10**7), "n_sim"),
    ],
)
def test_long_sizes_warn_once_naming_the_option_and_minutes_then_run(
    model, method, options, option
):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with pytest.raises(_Reached):  # warned, not refused: the engine runs
            model.fit(method=method, random_seed=1, **options)
    found = _long_warnings(record)
    assert len(found) == 1, found
    text = found[0]
    assert "\n" not in text
    assert f"method={method!r}" in text and f"{option}={options[option]}" in text
    assert f"lower {option}" in text
    minutes = float(re.search(r"about ([0-9.e+]+) minutes", text).group(1))
    assert minutes > LONG_SECONDS / 60
    assert all(w.category is UserWarning for w in record if "minutes" in str(w.message))
    # the warning points at this file, the user's line
    assert any(w.filename == __file__ for w in record if "minutes" in str(w.message))


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("mcem", {}),
        ("mcnr", {}),
        ("ee", {}),
        ("ee2", {}),
        ("ee2", dict(n_sim=10**5)),
        ("mcem", dict(mc_max=10**4, tol=1e-6)),
    ],
)
def test_default_and_moderate_sizes_do_not_warn(model, method, options):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with pytest.raises(_Reached):
            model.fit(method=method, random_seed=1, **options)
    assert _long_warnings(record) == []


def test_estimate_grows_with_the_sizes():
    model = bg.GLMM(FORMULA, bg.datasets.load("salamander"))
    rec = get_record("mcem")
    base = dict(mc_size=200, mc_max=10**5, max_iter=200)
    small, large = (rec.seconds(model.design, {**base, "mc_max": m}) for m in (10**4, 10**6))
    assert 0 < small < large
    # bounded by max_iter: a few iterations cannot reach mc_max
    few = rec.seconds(model.design, {**base, "mc_max": 10**8, "max_iter": 2})
    assert few < rec.seconds(model.design, {**base, "mc_max": 10**8})
    ee2 = get_record("ee2")
    opts = dict(expectation="simulation", n_sim=10**4, n_quad=30)
    assert ee2.seconds(model.design, opts) == pytest.approx(
        2 * get_record("ee").seconds(model.design, opts)
    )
    assert ee2.seconds(model.design, {**opts, "expectation": "quadrature"}) == 0.0


# ------------------------------------------------------------------------------------------
# Ctrl-C


@pytest.mark.parametrize(
    ("method", "small", "large"),
    [
        ("mcem", dict(mc_size=50, mc_max=100, max_iter=2), dict(mc_size=20_000, mc_max=10**6)),
        ("mcnr", dict(mc_size=50, mc_max=100, max_iter=2), dict(mc_size=20_000, mc_max=10**6)),
        ("ee2", dict(n_sim=200, max_iter=2), dict(n_sim=300_000, max_iter=1000)),
    ],
)
def test_ctrl_c_returns_promptly_from_monte_carlo_loops(method, small, large):
    import _thread
    import threading
    import time

    model = bg.GLMM(FORMULA, bg.datasets.load("salamander"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(method=method, random_seed=1, **small)  # compiled and imported before
        timer = threading.Timer(0.5, _thread.interrupt_main)
        start = time.perf_counter()
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                model.fit(method=method, random_seed=1, **large)
        finally:
            timer.cancel()
    assert time.perf_counter() - start < 2.5
