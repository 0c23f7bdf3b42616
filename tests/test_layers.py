"""The package's layers and the one direction its imports run in.

From the top down::

    entry      bayesglmm/__init__.py, cli.py, demo.py, _compat.py
    analysis   bayesglmm/analysis/          (compare, sensitivity, studies, SBC, specs, ...),
               bayesglmm/inference/         (LOO, WAIC, model comparison)
               bayesglmm/diagnostics/       (residuals and tests on them)
    fit API    glmm.py (GLMM), methods.py   (the method records)
    engines    bayesglmm/bayes/, bayesglmm/frequentist/, bayesglmm/propriety/
    results    bayesglmm/results/
    model      bayesglmm/model/
    base       errors.py, options.py, method_checks.py, _warn.py, _arviz.py, _threads.py

A module imports its own layer and the layers below it, never one above: an engine imports
no analysis and not the face, the result layer imports no engine, the model layer imports no
engine, no result and none of the samplers' stack. Every import statement counts, at module
level or inside a function (a lazy import that goes up the layers is a violation too), and
relative and absolute imports alike.
"""

from __future__ import annotations

import ast
from pathlib import Path

import bayesglmm

PACKAGE = Path(bayesglmm.__file__).parent

#: layer of a module, looked up by its longest matching dotted prefix below ``bayesglmm``
#: (``""``: the package's ``__init__``); a new root module needs its own entry
LAYER_OF = {
    "": "entry",  # bayesglmm/__init__.py
    "cli": "entry",
    "demo": "entry",
    "_compat": "entry",
    "analysis": "analysis",
    "diagnostics": "analysis",
    "inference": "analysis",
    "glmm": "fit API",
    "methods": "fit API",
    "bayes": "engines",
    "frequentist": "engines",
    "propriety": "engines",
    "results": "results",
    "model": "model",
    "errors": "base",
    "options": "base",
    "method_checks": "base",
    "_warn": "base",
    "_arviz": "base",
    "_threads": "base",
}
ORDER = ["entry", "analysis", "fit API", "engines", "results", "model", "base"]

#: third-party packages a layer never imports (the samplers' stack and the compilers)
FORBIDDEN_THIRD_PARTY = {
    "model": {"pymc", "pytensor", "arviz", "numba", "nutpie"},
    "results": {"pymc", "pytensor", "numba", "nutpie"},
}


def layer_of(module: str, package: str = "bayesglmm") -> str:
    """The layer of ``module`` (a dotted name inside ``package``)."""
    if module == package:
        return LAYER_OF[""]
    parts = module[len(package) + 1 :].split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYER_OF:
            return LAYER_OF[key]
    raise KeyError(f"{module} is in no layer: add it to LAYER_OF in tests/test_layers.py")


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def imports(root: Path = PACKAGE):
    """Every import of every module under ``root``: ``(module, path, line, target)``.

    ``target`` is the dotted name imported: a module of the package (``from .x import y``
    is ``x.y`` when that is a module, ``x`` otherwise) or a third-party top-level package.
    """
    files = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    modules = {name for name, _ in files}
    for (name, is_package), path in files.items():
        package = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                submodules = [f"{target}.{a.name}" for a in node.names]
                targets = [m for m in submodules if m in modules]
                if len(targets) < len(submodules):
                    targets.append(target)
            else:
                continue
            for target in targets:
                top = target.split(".")[0]
                if top == root.name:
                    while target not in modules and "." in target:
                        target = target.rpartition(".")[0]
                    yield name, path, node.lineno, target
                else:
                    yield name, path, node.lineno, top


def violations(root: Path = PACKAGE) -> list[str]:
    """``path:line -> target`` for every import that goes up the layers or into a
    forbidden third-party package, with the two layers named."""
    found = []
    for module, path, line, target in imports(root):
        src = layer_of(module, root.name)
        where = f"{path.relative_to(root.parent)}:{line} -> {target}"
        if target.split(".")[0] == root.name:
            dst = layer_of(target, root.name)
            if ORDER.index(dst) < ORDER.index(src):
                found.append(f"{where}  ({src} layer imports the {dst} layer above it)")
        elif target in FORBIDDEN_THIRD_PARTY.get(src, ()):
            found.append(f"{where}  ({src} layer never imports {target})")
    return sorted(set(found))


def test_checker_finds_planted_violations(tmp_path):
    """The checker itself can fail: a lazy upward import inside a function, an absolute one,
    a ``from .. import module`` and a forbidden third-party import are each reported."""
    pkg = tmp_path / "bayesglmm"
    for sub in ("model", "results", "bayes", "analysis"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .analysis import compare\n")
    (pkg / "errors.py").write_text("")
    (pkg / "analysis" / "compare.py").write_text("from ..bayes import nuts\n")
    (pkg / "bayes" / "nuts.py").write_text(
        "import numba\nfrom ..results import result\n\n\n"
        "def f():\n    from ..analysis.compare import g\n    return g\n"
    )
    (pkg / "results" / "result.py").write_text("from bayesglmm.bayes.nuts import f\n")
    (pkg / "model" / "spec.py").write_text(
        "from .. import errors\nfrom .. import results\nimport pytensor.tensor\n"
    )
    assert violations(pkg) == [
        "bayesglmm/bayes/nuts.py:6 -> bayesglmm.analysis.compare  "
        "(engines layer imports the analysis layer above it)",
        "bayesglmm/model/spec.py:2 -> bayesglmm.results  "
        "(model layer imports the results layer above it)",
        "bayesglmm/model/spec.py:3 -> pytensor  (model layer never imports pytensor)",
        "bayesglmm/results/result.py:1 -> bayesglmm.bayes.nuts  "
        "(results layer imports the engines layer above it)",
    ]


def test_every_module_has_a_layer():
    modules = {m for m, *_ in imports()}
    assert "bayesglmm.bayes.posterior" in modules and len(modules) > 100  # the walk saw them
    for module in modules:
        layer_of(module)


def test_imports_run_down_the_layers():
    found = violations()
    assert not found, "imports that go up the layers:\n" + "\n".join(found)
