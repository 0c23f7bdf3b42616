"""What a user sees besides the result: no raw NumPy warnings, no ArviZ notice, warnings
at the user's line, and progress output only where it belongs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import bayesglmm as bg
from bayesglmm import options
from bayesglmm._warn import WarningsRecord
from bayesglmm.analysis.study import Task, run_study
from bayesglmm.bayes.nuts import pymc_log_lines
from bayesglmm.bayes.posterior import sampler_diagnostics, summarize_draws


@pytest.fixture(scope="module")
def cbpp():
    return bg.GLMM(
        "cbind(incidence, size - incidence) ~ period + (1|herd)", bg.datasets.load("cbpp")
    )


# ------------------------------------------------------------------ no raw RuntimeWarning
class _NoStats:
    """Draws without sampler statistics (as an InferenceData without sample_stats)."""

    def groups(self):
        return ["posterior"]


def test_one_chain_table_and_diagnostics_raise_no_runtime_warning():
    rng = np.random.default_rng(1)
    draws = {"a": rng.normal(size=(1, 200)), "b": rng.normal(size=(1, 200))}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        table = summarize_draws(draws)
        diag = sampler_diagnostics(_NoStats(), table, n_chains=1)
    assert table["r_hat"].isna().all()  # R-hat needs two chains
    assert np.isnan(diag["max_r_hat"])
    assert np.isfinite(table["ess_bulk"]).all()


def test_one_chain_nuts_fit_raises_no_runtime_warning():
    model = bg.GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", bg.datasets.load("salamander"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)  # low ESS of a short run
        fit = model.fit(
            method="nuts", chains=1, draws=200, tune=200, progressbar=False, random_seed=1
        )
    assert fit.table["r_hat"].isna().all()


# ------------------------------------------------------------------ ArviZ's notice
_NOTICE_CODE = """
import warnings
warnings.simplefilter("always")
{body}
"""


def _stderr_of(body: str, cache: str) -> str:
    env = {**os.environ, "XDG_CACHE_HOME": cache}
    done = subprocess.run(
        [sys.executable, "-c", _NOTICE_CODE.format(body=body)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_demo_path_arviz_import_shows_no_refactor_notice(tmp_path):
    # a fresh cache: ArviZ shows its notice on the day's first import
    plain = _stderr_of("import arviz", str(tmp_path / "plain"))
    # the control: the pinned ArviZ (< 0.24) prints its notice on a plain import
    assert "major refactor" in plain
    quiet = _stderr_of(
        "from bayesglmm.bayes.nutpie_driver import _prepare_result_libraries\n"
        "_prepare_result_libraries()\n"
        "import sys; assert 'arviz' in sys.modules",
        str(tmp_path / "quiet"),
    )
    assert "major refactor" not in quiet
    assert "FutureWarning" not in quiet


def test_fit_drops_the_arviz_notice_only():
    notice = "\nArviZ is undergoing a major refactor to improve flexibility"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with WarningsRecord() as raised:
            warnings.warn(notice, FutureWarning, stacklevel=1)
            warnings.warn("another future change", FutureWarning, stacklevel=1)
    messages = [str(w.message) for w in seen]
    assert messages == ["another future change"]
    assert raised.texts == []  # warnings about code are not kept with the result


# ------------------------------------------------------------------ warnings at the user's line
def test_design_warning_points_at_the_callers_line():
    data = bg.datasets.load("cbpp").copy()
    data.loc[3, "period"] = np.nan
    with pytest.warns(UserWarning, match="dropped 1 row") as record:
        bg.GLMM("cbind(incidence, size - incidence) ~ period + (1|herd)", data, dropna=True)
    assert [w.filename for w in record] == [__file__]


def _fails(seed):
    raise ValueError("failed on purpose")


def test_study_warning_points_at_the_callers_line():
    tasks = [Task("a", _fails, {})]
    with pytest.warns(RuntimeWarning, match="1 of 1 study tasks failed") as record:
        run_study(tasks, max_workers=1, random_seed=1, progressbar=False)
    assert {w.filename for w in record} == {__file__}


# ------------------------------------------------------------------ progress output
def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch):
    class Pipe:
        def isatty(self):
            return False

    class Terminal:
        def isatty(self):
            return True

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", Pipe())
    assert options.tqdm_progress(None)["disable"]
    assert not options.tqdm_progress(True)["disable"]
    assert options.tqdm_progress(False)["disable"]
    monkeypatch.setattr(sys, "stderr", Terminal())
    shown = options.tqdm_progress(None)
    assert not shown["disable"] and shown["delay"] == options.PROGRESS_DELAY


def test_compare_on_a_redirected_stream_writes_no_bar(cbpp, capfd, monkeypatch):
    # no delay: only the stream decides
    monkeypatch.setattr(options, "PROGRESS_DELAY", 0.0)
    bg.compare(cbpp, methods=["laplace", "pql"])
    assert "compare" not in capfd.readouterr().err
    bg.compare(cbpp, methods=["laplace", "pql"], progressbar=True)  # asked for: shown
    assert "compare" in capfd.readouterr().err


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def pymc_records():
    """Every record that reaches the ``pymc`` logger's handlers."""
    import pymc  # noqa: F401 - sets up the pymc logger

    handler = _Records()
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.INFO)  # as PyMC sets it outside pytest
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_progressbar_false_prints_nothing_for_a_gibbs_fit(cbpp, capfd, pymc_records):
    cbpp.fit(
        method="gibbs",
        scheme="steps",
        chains=1,
        draws=50,
        tune=50,
        progressbar=False,
        random_seed=2,
    )
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""
    assert [r.getMessage() for r in pymc_records if r.levelno < logging.WARNING] == []
    assert logging.getLogger("pymc").level == logging.INFO  # restored after the fit


def test_pymc_log_lines_silenced_only_when_asked(pymc_records):
    logger = logging.getLogger("pymc.sampling.mcmc")
    with pymc_log_lines(False):
        logger.info("Sampling 1 chain")
        logger.warning("a warning")
    with pymc_log_lines(True):
        logger.info("Sampling 2 chains")
    assert [r.getMessage() for r in pymc_records] == ["a warning", "Sampling 2 chains"]
