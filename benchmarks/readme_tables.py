"""The README's figures that quote the package's own output, computed here.

Each table (and the test-suite size) is one section, written to
``benchmarks/results/readme_tables.md`` between ``<!-- begin:NAME -->`` and
``<!-- end:NAME -->``; ``--update-readme`` copies every such block into the same markers in
``README.md``. ``tests/test_readme.py`` checks that the README's blocks equal this file's, so
a README figure is always the last output of this script.

    nice python benchmarks/readme_tables.py                    # every section (~4 minutes)
    python benchmarks/readme_tables.py --sections suite --update-readme
    python benchmarks/readme_tables.py --sections --update-readme   # copy, compute nothing

Sections:

``compare``
    The short tour's table: the salamander model fitted by NUTS, Gibbs, MCEM, Laplace and
    PQL with the calls and seeds the README shows, joined by ``bg.compare``.
``every_method``
    ``bg.compare(model, methods="all", random_seed=1)`` on the salamander spec, beside the
    spec's glmer and Booth & Hobert references; the caption's run lengths and convergence
    flags are read from the fits.
``suite``
    The number of tests ``python -m pytest --collect-only -q`` collects. The suite's wall
    time is measured only with ``--time-suite`` (the whole suite on 2 workers); otherwise
    the time clause of the last written block is kept.
``methods``
    The method table, from ``bayesglmm.methods.method_table()`` where the package has it;
    otherwise the section is skipped and the README keeps its own text.

A section not asked for with ``--sections`` keeps its block from the existing output file.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
OUTPUT = ROOT / "benchmarks" / "results" / "readme_tables.md"

#: a delimited block: its name and its text between the markers (a table's markers stand on
#: lines of their own; the suite's sit inside a sentence)
BLOCK = re.compile(r"<!-- begin:(?P<name>[\w-]+) -->(?P<body>.*?)<!-- end:(?P=name) -->", re.S)

SALAMANDER = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
#: the rows the README shows: two of the four Cross effects and both variance components
ROWS = ["Cross[RR]", "Cross[WR]", "var(Female)", "var(Male)"]
#: column headers for the methods, in the order of the every-method table
DISPLAY = {
    "laplace": "Laplace",
    "pql": "PQL",
    "kuk": "Kuk",
    "hlik": "HL(1,1)",
    "mcem": "MCEM",
    "mcnr": "MCNR",
    "sml": "SML",
    "ee": "EE",
    "ee2": "EE2",
    "nuts": "NUTS",
    "gibbs": "Gibbs",
}
#: the spec's references shown beside the fits: header and decimals (Booth & Hobert
#: published two decimals; the glmer values are printed like the fits)
REFERENCES = {
    "Laplace (glmer)": ("glmer", 3),
    "MCEM (Booth & Hobert 1999)": ("Booth & Hobert", 2),
}


# ------------------------------------------------------------------------------------------
# formatting


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table with a blank first header cell and right-aligned number columns."""
    lines = ["|" + "".join(f" {h} |" if h else " |" for h in header)]
    lines.append("|---|" + "---:|" * (len(header) - 1))
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def number(value: float, decimals: int = 3) -> str:
    return f"{value:.{decimals}f}"


def _quiet():
    """Warnings and PyMC's step-method messages off: the tables carry the numbers."""
    warnings.simplefilter("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)


# ------------------------------------------------------------------------------------------
# sections


def compare_section() -> str:
    """The short tour: the README's own calls, joined by ``bg.compare``."""
    import bayesglmm as bg

    _quiet()
    data = bg.datasets.load("salamander")
    model = bg.GLMM(SALAMANDER, data, family="binomial")
    fits = {
        "NUTS": model.fit(method="nuts", draws=1000, chains=4, random_seed=1, progressbar=False),
        "Gibbs": model.fit(method="gibbs", random_seed=1, progressbar=False),
        "MCEM": model.fit(method="mcem", random_seed=1, progressbar=False),
        "Laplace": model.fit(method="laplace"),
        "PQL": model.fit(method="pql"),
    }
    table = bg.compare(fits)
    labels = list(table.columns)
    rows = [[row, *(number(table.loc[row, lab]) for lab in labels)] for row in ROWS]
    return "\n" + markdown_table(["", *labels], rows)


def _run_length(fit) -> str:
    post = fit.idata.posterior
    return f"{post.sizes['chain']} x {post.sizes['draw']}"


def every_method_section() -> str:
    """``compare(model, methods="all", random_seed=1)`` on the salamander spec."""
    import bayesglmm as bg
    from bayesglmm.analysis.specs import load_spec

    _quiet()
    model = load_spec("salamander").build()
    cmp = bg.compare(model, methods="all", random_seed=1, progressbar=False)
    table = cmp.wide(references=True)
    columns, header = [], [""]
    for method, name in DISPLAY.items():
        found = [c for c in table.columns if c == method or c.startswith(method + " [")]
        if len(found) != 1:
            raise RuntimeError(f"every_method: no single column for {method!r} in {found}")
        columns.append((found[0], 3))
        header.append(name + found[0][len(method) :])
    for label, (name, decimals) in REFERENCES.items():
        columns.append((label, decimals))
        header.append(name)
    rows = [[row, *(number(table.loc[row, c], d) for c, d in columns)] for row in ROWS]

    runs = [f"{DISPLAY[m]} {_run_length(cmp[m])}" for m in ("nuts", "gibbs")]
    flags = []
    for method, name in DISPLAY.items():
        fit = cmp[method]
        if not fit.converged:
            messages = fit.convergence.get("messages") or ["no message"]
            why = " ".join(str(messages[0]).split(":")[0].split())
            flags.append(f"{name} flagged as not converged: {why}")
    caption = (
        f"\nSalamander, every method ({', '.join(runs)}"
        + (f"; {', '.join(flags)}" if flags else "")
        + "), beside glmer and Booth & Hobert's published Monte Carlo EM values:\n\n"
    )
    return caption + markdown_table(header, rows)


def collected_tests() -> int:
    """The number of tests ``python -m pytest --collect-only -q`` collects from the root."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"(\d+) tests? collected", out.stdout)
    if out.returncode != 0 or found is None:
        raise RuntimeError(f"pytest --collect-only failed:\n{out.stdout[-2000:]}{out.stderr}")
    return int(found.group(1))


def suite_section(previous: str | None, time_suite: bool) -> str:
    """``N tests, <time clause>``: the count collected now; the time measured or kept."""
    n = collected_tests()
    if time_suite:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider"],
            cwd=ROOT,
            check=True,
        )
        minutes = (time.perf_counter() - start) / 60
        clause = (
            f"{minutes:.0f} minutes on 2 cores after the install "
            f"(measured {datetime.date.today().isoformat()}); nothing is skipped"
        )
    else:
        kept = re.fullmatch(r"[\d,]+ tests, (?P<clause>.*)", previous or "", re.S)
        if kept is None:
            raise RuntimeError("suite: no earlier time to keep; run with --time-suite")
        clause = kept.group("clause")
    return f"{n:,} tests, {clause}"


def methods_section() -> str | None:
    """The method table from the method records, or None where the package has none."""
    try:
        from bayesglmm.methods import method_table
    except ImportError:
        return None
    table = method_table()
    if "method" in table.columns:
        table = table.assign(method=[f'`"{m}"`' for m in table["method"]])
    header = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    return "\n" + "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# files


def blocks(text: str) -> dict[str, str]:
    """Every delimited block of ``text``: ``{name: body}``."""
    return {m["name"]: m["body"] for m in BLOCK.finditer(text)}


def replace_blocks(text: str, new: dict[str, str]) -> str:
    """``text`` with the body of each block named in ``new`` replaced."""

    def swap(m: re.Match) -> str:
        name = m["name"]
        body = new.get(name, m["body"])
        return f"<!-- begin:{name} -->{body}<!-- end:{name} -->"

    return BLOCK.sub(swap, text)


def write_output(sections: dict[str, str], skipped: dict[str, str]) -> None:
    head = [
        "# README figures",
        "",
        "Written by `benchmarks/readme_tables.py`; `--update-readme` copies each block below into",
        "the same markers in `README.md`, and `tests/test_readme.py` checks that they are equal.",
        "",
    ]
    parts = []
    for name, body in sections.items():
        parts += [f"## {name}", "", f"<!-- begin:{name} -->{body}<!-- end:{name} -->", ""]
    for name, why in skipped.items():
        parts += [f"## {name}", "", f"Skipped: {why}", ""]
    OUTPUT.write_text("\n".join(head + parts))


SECTIONS: dict[str, Callable[..., str | None]] = {
    "compare": compare_section,
    "every_method": every_method_section,
    "suite": suite_section,
    "methods": methods_section,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sections",
        nargs="*",
        choices=list(SECTIONS),
        default=list(SECTIONS),
        help="sections to compute (none: only copy the written blocks with --update-readme)",
    )
    parser.add_argument("--update-readme", action="store_true", help="copy the blocks to README")
    parser.add_argument("--time-suite", action="store_true", help="time the whole test suite")
    args = parser.parse_args(argv)

    old = blocks(OUTPUT.read_text()) if OUTPUT.exists() else {}
    sections: dict[str, str] = {n: old[n] for n in SECTIONS if n in old}
    skipped: dict[str, str] = {}
    for name, make in SECTIONS.items():
        if name not in args.sections:
            continue
        start = time.perf_counter()
        if name == "suite":
            previous = old.get("suite") or blocks(README.read_text()).get("suite")
            body = make(previous, args.time_suite)
        else:
            body = make()
        if body is None:
            sections.pop(name, None)
            skipped[name] = "bayesglmm.methods.method_table() does not exist"
            print(f"{name}: skipped ({skipped[name]})")
            continue
        sections[name] = body
        print(f"{name} ({time.perf_counter() - start:.0f} s)\n{body}")
        write_output(sections, skipped)  # after each section: a later failure loses none
    write_output(sections, skipped)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")

    if args.update_readme:
        text = README.read_text()
        marked = blocks(text)
        missing = sorted(set(sections) - set(marked))
        if missing:
            print(f"README has no markers for: {', '.join(missing)} (left out)")
        README.write_text(replace_blocks(text, sections))
        print(f"updated {', '.join(sorted(set(sections) & set(marked)))} in README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
