"""Shared fixtures. Reference data come from ../shared/data (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT.parent / "shared" / "data").resolve()

if "BAYESGLMM_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["BAYESGLMM_DATA"] = str(SHARED_DATA)


def _require_data() -> None:
    if not os.environ.get("BAYESGLMM_DATA") or not Path(os.environ["BAYESGLMM_DATA"]).is_dir():
        msg = f"reference data not found (expected {SHARED_DATA} or $BAYESGLMM_DATA)"
        if os.environ.get("CI"):
            pytest.fail(msg + "; CI must run the real-data tests")
        pytest.skip(msg)


@pytest.fixture(scope="session")
def salamander():
    _require_data()
    from bayesglmm import datasets

    return datasets.load("salamander", download=False)


@pytest.fixture(scope="session")
def cbpp():
    _require_data()
    from bayesglmm import datasets

    return datasets.load("cbpp", download=False)


@pytest.fixture(scope="session")
def seeds():
    _require_data()
    from bayesglmm import datasets

    return datasets.load("seeds", download=False)


@pytest.fixture(scope="session")
def mouse_litters():
    _require_data()
    from bayesglmm import datasets

    return datasets.load("mouse_litters", download=False)
