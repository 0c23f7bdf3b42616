"""The README's figures are the last output of ``benchmarks/readme_tables.py``.

Every ``<!-- begin:NAME -->`` ... ``<!-- end:NAME -->`` block of README.md must equal the
block of the same name in ``benchmarks/results/readme_tables.md``, which the script writes
(``--update-readme`` copies them over). Nothing is fitted here: a figure that changes is
caught when the script is rerun and the README is not updated, or the README is edited by
hand.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "readme_tables.py"

#: the blocks the README must carry (a README without its markers would pass vacuously)
REQUIRED = {"compare", "every_method", "suite"}
#: the stated suite size may lag the real one by this fraction (tests are added between runs
#: of the script; 5% of ~900 tests is ~45)
COUNT_SLACK = 0.05


def _script():
    spec = importlib.util.spec_from_file_location("readme_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _script()


@pytest.fixture(scope="module")
def readme_blocks(script):
    return script.blocks(script.README.read_text())


@pytest.fixture(scope="module")
def output_blocks(script):
    return script.blocks(script.OUTPUT.read_text())


def test_the_readme_carries_every_generated_block(readme_blocks, output_blocks):
    assert REQUIRED <= set(readme_blocks), (
        f"README lacks markers for {REQUIRED - set(readme_blocks)}"
    )
    missing = set(output_blocks) - set(readme_blocks)
    assert not missing, f"the script wrote {sorted(missing)}, which the README does not show"


def test_every_readme_block_equals_the_script_output(readme_blocks, output_blocks):
    for name, body in readme_blocks.items():
        assert name in output_blocks, f"README block {name!r} is not written by the script"
        assert body == output_blocks[name], (
            f"README block {name!r} differs from benchmarks/results/readme_tables.md: run "
            "`python benchmarks/readme_tables.py --update-readme` (or copy the block)"
        )


def test_block_replacement_touches_only_the_named_block(script):
    text = "a <!-- begin:x -->1<!-- end:x --> b\n<!-- begin:y -->\n| 2 |\n<!-- end:y -->\n"
    out = script.replace_blocks(text, {"y": "\n| 3 |\n"})
    assert out == "a <!-- begin:x -->1<!-- end:x --> b\n<!-- begin:y -->\n| 3 |\n<!-- end:y -->\n"
    assert script.blocks(out) == {"x": "1", "y": "\n| 3 |\n"}


def test_the_stated_suite_size_is_the_collected_count(output_blocks):
    stated = re.match(r"([\d,]+) tests", output_blocks["suite"])
    assert stated, output_blocks["suite"]
    stated = int(stated.group(1).replace(",", ""))
    # collecting takes ~10 s on the 2-core machine (imports of every test module, no fits)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    found = re.search(r"(\d+) tests? collected", out.stdout)
    assert found, out.stdout[-2000:] + out.stderr[-2000:]
    real = int(found.group(1))
    assert abs(stated - real) <= COUNT_SLACK * real, (
        f"README states {stated} tests, {real} are collected: run "
        "`python benchmarks/readme_tables.py --sections suite --update-readme`"
    )
