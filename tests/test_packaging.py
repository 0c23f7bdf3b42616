"""The wheel holds what an installed package needs outside its source tree: the reference
data sets (checked against their pinned sha256) and their README, every bundled model spec,
every module (among them the sources of the compiled Numba kernels, which Numba compiles
from the installed .py files), and nothing of the tests or the benchmarks.

The wheel is built from a copy of the project (so the work tree gets no ``build/``) with the
installed setuptools, no download: ``pip wheel --no-deps --no-build-isolation``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import bayesglmm
from bayesglmm.model import datasets

PACKAGE = Path(bayesglmm.__file__).resolve().parent
ROOT = PACKAGE.parent


def _source_files() -> set[str]:
    return {
        p.relative_to(ROOT).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".nbi")
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    assert (ROOT / "pyproject.toml").is_file(), f"no project at {ROOT} (an editable install?)"
    src = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(PACKAGE, src / "bayesglmm", ignore=shutil.ignore_patterns("__pycache__"))
    out = src / "wheel"
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*cmd, "-w", str(out), "-q"], capture_output=True, text=True, timeout=300, cwd=src
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (path,) = out.glob("bayesglmm-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def test_wheel_ships_the_data_sets_and_their_readme(wheel):
    names = set(wheel.namelist())
    assert "bayesglmm/data/README.md" in names
    assert len(datasets.DATASETS) == 6
    for info in datasets.DATASETS.values():
        member = f"bayesglmm/data/{info.relpath}"
        assert member in names, f"{info.name}: {member} is not in the wheel"
        assert hashlib.sha256(wheel.read(member)).hexdigest() == info.sha256, info.name


def test_wheel_ships_every_model_spec(wheel):
    specs = {p for p in _source_files() if p.startswith("bayesglmm/data/models/")}
    assert {Path(p).name for p in specs} >= {"salamander.toml", "cbpp.toml"}
    assert specs == {n for n in wheel.namelist() if n.startswith("bayesglmm/data/models/")}


def test_wheel_ships_every_module_with_the_compiled_kernels(wheel):
    names = set(wheel.namelist())
    modules = {p for p in _source_files() if p.endswith(".py")}
    numba_import = re.compile(r"^(import|from) numba\b", re.MULTILINE)
    kernels = {p for p in modules if numba_import.search((ROOT / p).read_text())}
    # the compiled NUTS densities (bayes/) and the crossed solver and Monte Carlo kernels
    tops = {p.split("/")[1] for p in kernels}
    assert {"bayes", "frequentist"} <= tops, sorted(kernels)
    assert not kernels - names, f"Numba kernel sources missing: {sorted(kernels - names)}"
    assert not modules - names, f"modules missing from the wheel: {sorted(modules - names)}"


def test_wheel_holds_no_tests_or_benchmarks(wheel):
    tops = {n.split("/")[0] for n in wheel.namelist()}
    assert tops == {"bayesglmm", f"bayesglmm-{bayesglmm.__version__}.dist-info"}, tops
    assert not [n for n in wheel.namelist() if "/tests/" in n or "/benchmarks/" in n]
    entry = wheel.read(f"bayesglmm-{bayesglmm.__version__}.dist-info/entry_points.txt")
    assert b"bayesglmm = bayesglmm.cli:main" in entry
