"""Old module paths, importable for one release after the package was grouped into layers.

``import bayesglmm.design`` (and every other path in :data:`MOVED`) still works: it returns
the module at its new path, with a :class:`DeprecationWarning` that names that path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module path -> new module path (submodules of a moved package follow their parent)
MOVED = {
    "bayesglmm.spec": "bayesglmm.model.spec",
    "bayesglmm.formula": "bayesglmm.model.formula",
    "bayesglmm.factors": "bayesglmm.model.factors",
    "bayesglmm.design": "bayesglmm.model.design",
    "bayesglmm.newdata": "bayesglmm.model.newdata",
    "bayesglmm.families": "bayesglmm.model.families",
    "bayesglmm.priors": "bayesglmm.model.priors",
    "bayesglmm.prior_set": "bayesglmm.model.prior_set",
    "bayesglmm.simulate": "bayesglmm.model.simulate",
    "bayesglmm.datasets": "bayesglmm.model.datasets",
    "bayesglmm.linalg": "bayesglmm.model.linalg",
    "bayesglmm.result": "bayesglmm.results.result",
    "bayesglmm.result_io": "bayesglmm.results.io",
    "bayesglmm.report": "bayesglmm.results.report",
    "bayesglmm.predict": "bayesglmm.results.predict",
    "bayesglmm.fit_table": "bayesglmm.results.tables",
    "bayesglmm.compare": "bayesglmm.analysis.compare",
    "bayesglmm.comparison": "bayesglmm.analysis.comparison",
    "bayesglmm.plots": "bayesglmm.analysis.plots",
    "bayesglmm.ppc": "bayesglmm.analysis.ppc",
    "bayesglmm.sbc": "bayesglmm.analysis.sbc",
    "bayesglmm.specs": "bayesglmm.analysis.specs",
    "bayesglmm.sensitivity.log_prior": "bayesglmm.bayes.log_prior",  # before its parent
    "bayesglmm.sensitivity": "bayesglmm.analysis.sensitivity",
    "bayesglmm.study": "bayesglmm.analysis.study",
    "bayesglmm.ebp": "bayesglmm.frequentist.ebp",
}
MOVED_WARNING = "{old} has moved to {new}; the old path goes in the next release"


def new_path(old: str) -> str | None:
    """The new path of ``old`` (or of its moved parent package), None if it did not move."""
    for prefix, target in MOVED.items():
        if old == prefix or old.startswith(prefix + "."):
            return target + old[len(prefix) :]
    return None


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module already imported at the new one."""

    def __init__(self, module):
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        module.__spec__ = self.spec  # the import system set the old path's spec on it


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds an old path and hands back the module at the new one."""

    def find_spec(self, fullname, path=None, target=None):
        new = new_path(fullname)
        if new is None:
            return None
        warnings.warn(MOVED_WARNING.format(old=fullname, new=new), DeprecationWarning, 2)
        module = importlib.import_module(new)
        return importlib.util.spec_from_loader(fullname, _Alias(module))


def _model_getattr(name: str):
    """``from bayesglmm.model import GLMM``: the class lived in the module ``bayesglmm.model``
    before that name became the model layer's package (set on it by :func:`install`, so the
    model layer itself never imports the face)."""
    if name == "GLMM":
        warnings.warn(
            MOVED_WARNING.format(old="bayesglmm.model.GLMM", new="bayesglmm.GLMM"),
            DeprecationWarning,
            stacklevel=2,
        )
        from .glmm import GLMM

        return GLMM
    raise AttributeError(f"module 'bayesglmm.model' has no attribute {name!r}")


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once): before the path finder, which would
    otherwise load a second copy of a moved package's submodule under its old name. Give
    ``bayesglmm.model`` the old ``GLMM`` attribute."""
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())
    importlib.import_module("bayesglmm.model").__getattr__ = _model_getattr
