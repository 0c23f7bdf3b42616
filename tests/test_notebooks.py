"""Every notebook in notebooks/ runs top to bottom, and its own checks (assert) pass.

Each notebook is executed in a fresh IPython kernel (nbclient) with
``BAYESGLMM_NOTEBOOK_FAST=1``, which its parameters cell reads to run shorter chains; any
exception in a cell, including a failed ``assert`` check, fails the test with the cell's
traceback. The notebooks run on the data shipped with the package, offline.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: seconds one cell may take before the run is stopped (a hang, not a slow machine)
CELL_TIMEOUT = 600


def test_every_notebook_is_found():
    names = {p.name for p in NOTEBOOKS}
    expected = {"salamander.ipynb", "improper_posterior.ipynb", "mouse_litters.ipynb"}
    expected |= {"prior_sensitivity.ipynb", "dask_study.ipynb", "diagnostics.ipynb"}
    expected |= {"testing.ipynb"}
    assert expected <= names
    tested = {n.removeprefix("test_").removesuffix("_notebook") + ".ipynb" for n in globals()}
    assert names <= tested, f"a notebook without its test: {sorted(names - tested)}"


def _execute(path: Path, workdir: Path, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("BAYESGLMM_NOTEBOOK_FAST", "1")  # the kernel inherits it
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # the kernel imports this tree's bayesglmm, whatever copy is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},  # files a notebook writes go here
    )
    try:
        client.execute()
    except CellExecutionError as err:  # the failing cell's source and traceback
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # without the terminal colours
        pytest.fail(f"{path.name} failed:\n{plain}", pytrace=False)
    return nb


def _output_text(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


@pytest.mark.slow
def test_salamander_notebook(tmp_path, monkeypatch):
    nb = _execute(ROOT / "notebooks" / "salamander.ipynb", tmp_path, monkeypatch)
    text = _output_text(nb)
    assert "all checks passed" in text  # the checks cell ran to its end
    assert "compare checks passed" in text  # every method beside the published values
    assert "could not link to a BLAS" not in text


@pytest.mark.slow
def test_mouse_litters_notebook(tmp_path, monkeypatch):
    nb = _execute(ROOT / "notebooks" / "mouse_litters.ipynb", tmp_path, monkeypatch)
    text = _output_text(nb)
    assert "all checks passed" in text  # the checks cell ran to its end
    assert "beta-binomial (ML)" in text and "AGQ (glmer, nAGQ = 25)" in text


@pytest.mark.slow
def test_prior_sensitivity_notebook(tmp_path, monkeypatch):
    nb = _execute(ROOT / "notebooks" / "prior_sensitivity.ipynb", tmp_path, monkeypatch)
    text = _output_text(nb)
    assert "all checks passed" in text  # the checks cell ran to its end
    assert "prior-data conflict" in text and "Doubling the variance priors' scale" in text


@pytest.mark.slow
def test_improper_posterior_notebook(tmp_path, monkeypatch):
    nb = _execute(ROOT / "notebooks" / "improper_posterior.ipynb", tmp_path, monkeypatch)
    text = _output_text(nb)
    assert "ImproperPosteriorError:" in text  # the refusal was shown, not skipped
    assert "crosses the propriety boundary" in text  # power-scaling past the boundary
    assert "could not link to a BLAS" not in text


@pytest.mark.slow
def test_dask_study_notebook(tmp_path, monkeypatch):
    # per-worker PyTensor compile directories under this test's tmp_path (the kernel and its
    # Dask workers inherit the variable)
    monkeypatch.setenv("BAYESGLMM_STUDY_COMPILEDIR", str(tmp_path / "compiledirs"))
    nb = _execute(ROOT / "notebooks" / "dask_study.ipynb", tmp_path, monkeypatch)
    text = _output_text(nb)
    assert "all checks passed" in text  # the checks cell ran to its end
    assert "rerun ran 3 replications" in text


@pytest.mark.slow
def test_diagnostics_notebook(tmp_path, monkeypatch):
    nb = _execute(ROOT / "notebooks" / "diagnostics.ipynb", tmp_path, monkeypatch)
    text = _output_text(nb)
    assert "all checks passed" in text  # the checks cell ran to its end
    assert "zero_inflation" in text and "var(INDEX)" in text


@pytest.mark.slow
def test_testing_notebook(tmp_path, monkeypatch):
    nb = _execute(ROOT / "notebooks" / "testing.ipynb", tmp_path, monkeypatch)
    text = _output_text(nb)
    assert "all checks passed" in text  # the checks cell ran to its end
    assert "0.5 chi2(0) + 0.5 chi2(1)" in text and "BOOTSTRAP of (1 | Female)" in text
    assert "Kenward-Roger" in text and "integrated leave-one-group-out" in text


def test_notebook_checks_fail_loudly(tmp_path, monkeypatch):
    """A failed check in a notebook is an error of the run, not a printed line."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import os\nFAST = os.environ['BAYESGLMM_NOTEBOOK_FAST']"),
        nbformat.v4.new_code_cell(
            "import bayesglmm\nassert FAST == '1'\nx = 1\nprint(bayesglmm.__file__)"
        ),
        nbformat.v4.new_code_cell("assert x == 2, 'check failed'"),
    ]
    path = tmp_path / "failing.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(pytest.fail.Exception, match="check failed"):
        _execute(path, tmp_path, monkeypatch)
    nb.cells.pop()  # without the failing check it runs, on this tree's package
    nbformat.write(nb, path)
    assert str(ROOT / "bayesglmm") in _output_text(_execute(path, tmp_path, monkeypatch))
    assert os.environ["BAYESGLMM_NOTEBOOK_FAST"] == "1"
