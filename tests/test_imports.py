"""The package's import structure: no import cycles between its modules, the plain-data
layers (priors, prior sets, spec, design, the propriety check) import no PyMC, a one-factor
Laplace or GEE fit loads none of the samplers' stack, importing the package leaves the
environment alone, and the old module paths still import. The direction of imports between
the layers is checked in tests/test_layers.py."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bayesglmm

PACKAGE = Path(bayesglmm.__file__).parent


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Import statements executed at some point: module level or inside functions, but not
    under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports (lazy imports in functions included).

    ``from .x import y`` counts as an import of ``x.y`` when that is a module, and of ``x``
    otherwise. The implicit import of a module's parent packages is not an edge: every
    submodule would otherwise form a cycle with a package ``__init__`` that re-exports it.
    """
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    modules = {name for name, _ in files}
    graph: dict[str, set[str]] = {}
    for (name, is_package), path in files.items():
        package = name if is_package else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # ``from pkg import mod`` needs only the submodule (and pkg's __init__, an
                # implicit parent import); ``from pkg import name`` needs pkg itself
                submodules = [f"{target}.{a.name}" for a in node.names]
                targets = [m for m in submodules if m in modules]
                if len(targets) < len(submodules):
                    targets.append(target)
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def test_cycle_finder_finds_a_planted_cycle(tmp_path):
    """The checker itself can fail: a three-module cycle through a lazy import is found,
    an import under ``if TYPE_CHECKING:`` is not an edge."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("from .sub import b\n\ndef f():\n    return b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def g():\n    from ..c import h\n    return h\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from . import a\n"
    )
    graph = import_graph(pkg)
    assert graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.c"] == set()
    assert find_cycles(graph) == []
    (pkg / "c.py").write_text("import pkg.a\n")
    assert find_cycles(import_graph(pkg)) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


def test_no_import_cycles_in_the_package():
    graph = import_graph()
    assert "bayesglmm.bayes.posterior" in graph and len(graph) > 30  # the walk saw the package
    assert find_cycles(graph) == []


def test_plain_data_layers_import_no_pymc():
    """priors.py is plain data: PyMC is built from it in bayes/prior_dists.py."""
    code = (
        "import sys\n"
        "import bayesglmm.model.priors, bayesglmm.model.prior_set, bayesglmm.model.spec\n"
        "import bayesglmm.model.design\n"
        "import bayesglmm.propriety\n"
        "loaded = sorted(m for m in ('pymc', 'pytensor') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_prior_classes_carry_no_pymc_construction():
    from bayesglmm.model import priors

    classes = [
        c for c in vars(priors).values() if isinstance(c, type) and issubclass(c, priors.Prior)
    ]
    assert len(classes) > 10
    builders = {
        f"{c.__name__}.{attr}" for c in classes for attr in vars(c) if attr.startswith("build")
    }
    assert builders == set()


def test_import_loads_no_heavy_dependency():
    """``import bayesglmm`` stays light (lazy imports, see ``bayesglmm.__init__``): scipy.stats,
    the samplers' stack and the study runner load when a fit or a study needs them, and the
    lazy names still resolve."""
    code = (
        "import sys\n"
        "import bayesglmm as bg\n"
        "heavy = ('scipy.stats', 'scipy.optimize', 'arviz', 'xarray', 'numba', 'pymc',\n"
        "         'pytensor', 'nutpie', 'formulae', 'bayesglmm.analysis.study',\n"
        "         'bayesglmm.model.datasets')\n"
        "loaded = sorted(m for m in heavy if m in sys.modules)\n"
        "assert not loaded, loaded\n"
        "# submodules reachable as attributes of the package without importing them (checked\n"
        "# first: importing any submodule later would set the attribute as a side effect)\n"
        "assert bg.propriety.PosteriorProprietyWarning and bg.ppc and bg.comparison.Comparison\n"
        "assert all(getattr(bg, name) is not None for name in bg.__all__)\n"
        "from bayesglmm import datasets, parametric_bootstrap, study\n"
        "assert study.parametric_bootstrap is parametric_bootstrap and datasets.load\n"
        "assert callable(bg.compare) and callable(bg.sensitivity) and callable(bg.ebp)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


#: the samplers' stack and the compilers, none of which a one-factor Laplace or GEE fit needs
SAMPLER_STACK = ("pymc", "pytensor", "arviz", "numba", "nutpie")


def test_one_factor_laplace_and_gee_fits_load_no_sampler_stack():
    """Both fits on cbpp in a fresh interpreter leave PyMC, PyTensor, ArviZ, Numba and nutpie
    unloaded; the iterative solver of large crossed designs, which does use Numba, loads it
    (so the check sees an import when there is one)."""
    code = (
        "import sys\n"
        "import bayesglmm as bg\n"
        "model = bg.GLMM('cbind(incidence, size - incidence) ~ period + (1|herd)',\n"
        "                bg.datasets.load('cbpp'))\n"
        "laplace, gee = model.fit(method='laplace'), model.fit(method='gee')\n"
        "assert abs(laplace.loglik - -92.02628) < 1e-3, laplace.loglik  # lme4::glmer, cbpp\n"
        "assert gee.fixed_effects.shape[0] == 4\n"
        f"stack = {SAMPLER_STACK!r}\n"
        "loaded = sorted(m for m in stack if m in sys.modules)\n"
        "assert not loaded, f'a one-factor fit loaded {loaded}'\n"
        "import bayesglmm.frequentist.crossed_kernels\n"
        "assert 'numba' in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def _clean_env() -> dict[str, str]:
    """The test process's environment without PyTensor settings (and no readable
    .pytensorrc), as a user who never configured PyTensor has it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTENSOR")}
    env["PYTENSORRC"] = os.devnull
    return env


def test_import_changes_no_environment_variable():
    """``import bayesglmm`` (and resolving its lazy names) leaves ``os.environ`` as it was:
    subprocesses the user starts inherit nothing from the package."""
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import bayesglmm as bg\n"
        "assert all(getattr(bg, name) is not None for name in bg.__all__)\n"
        "changed = sorted(set(before.items()) ^ set(os.environ.items()))\n"
        "assert not changed, changed\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_an_in_process_dask_worker_changes_no_environment_variable():
    """A study's Dask plugin gives each worker *process* its own PyTensor compile directory
    through ``PYTENSOR_FLAGS``; a worker that runs inside the user's own process (a cluster
    with ``processes=False``) is left alone, so the user's environment does not change."""
    code = (
        "import os, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from distributed import Client, LocalCluster\n"
        "from bayesglmm.analysis.study import workers\n"
        "from bayesglmm.analysis.study._dask import CompiledirPlugin\n"
        "before = dict(os.environ)\n"
        "with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:\n"
        "    with Client(cluster) as client:\n"
        "        client.register_plugin(CompiledirPlugin(os.environ['ROOT']), name='cd')\n"
        "        assert client.run(lambda: 1)  # the worker is up and ran the plugin\n"
        "changed = sorted(set(before.items()) ^ set(os.environ.items()))\n"
        "assert not changed and workers._SLOT_DIR is None, (changed, workers._SLOT_DIR)\n"
        "print('ok')\n"
    )
    env = {**_clean_env(), "ROOT": os.devnull}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_old_module_paths_still_import():
    """Paths from before the package was grouped into layers import (for one release), with a
    DeprecationWarning naming the new path; the model layer never imports the face itself."""
    import importlib

    import bayesglmm as bg
    from bayesglmm.bayes import log_prior

    with pytest.warns(DeprecationWarning, match="bayesglmm.bayes.log_prior"):
        old = importlib.import_module("bayesglmm.sensitivity.log_prior")
    assert old is log_prior
    with pytest.warns(DeprecationWarning, match=r"bayesglmm\.model\.GLMM has moved"):
        from bayesglmm.model import GLMM
    assert GLMM is bg.GLMM
    with pytest.raises(AttributeError):
        bg.model.NoSuchName  # noqa: B018
