"""Shared fixtures: the reference data sets, loaded from the copy shipped in the package.

``bayesglmm/data`` holds the reference data sets (provenance and sha256 in
``bayesglmm/data/README.md``), so the tests need no network, no ``../shared/data`` and no
environment variable; ``$BAYESGLMM_DATA``, when set, is looked in first (and a copy there
that does not match the pinned sha256 is ignored with a warning). No test skips for want of
data: a missing or corrupted packaged file fails the fixture. With ``CI`` set (``.ci/run``
exports ``CI=1``) any skip, at collection or in a test, is reported as a failure.
"""

from __future__ import annotations

import os

import pytest

_CI_SKIP = "skipped under CI=1 (nothing may skip in CI)"


def _fail_skips(report) -> None:
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"{_CI_SKIP}: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skips(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skips(outcome.get_result())


def _load(name: str):
    from bayesglmm import datasets

    return datasets.load(name, download=False)


@pytest.fixture(scope="session")
def salamander():
    return _load("salamander")


@pytest.fixture(scope="session")
def cbpp():
    return _load("cbpp")


@pytest.fixture(scope="session")
def seeds():
    return _load("seeds")


@pytest.fixture(scope="session")
def mouse_litters():
    return _load("mouse_litters")
