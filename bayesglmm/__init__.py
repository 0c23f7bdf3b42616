"""bayesglmm: generalized linear mixed models, Bayesian first.

lme4-style formulas become PyMC models with named coords; NUTS and Gibbs-style samplers
fit them, and frequentist baselines (Laplace, AGQ, PQL, ...) share the same design and the
same result type.
"""

from . import _compat
from .analysis.compare import compare
from .analysis.sensitivity import powerscale, sensitivity
from .errors import (
    BackendNotInstalledError,
    BayesGLMMError,
    DataError,
    DatasetUnavailableError,
    FamilyError,
    FormulaError,
    ImproperPosteriorError,
    MethodError,
    OptionError,
    PriorError,
    ResultFileError,
)
from .frequentist import ebp as _ebp  # noqa: F401 (the module the old path bayesglmm.ebp names)
from .glmm import GLMM
from .methods import available_methods
from .model import priors
from .model.simulate import simulate
from .results.result import FitResult

#: imported on first use (``bayesglmm.<name>``), so ``import bayesglmm`` stays light: name ->
#: (module, attribute or None for the module itself)
_LAZY = {
    "datasets": ("model.datasets", None),
    "specs": ("analysis.specs", None),
    "study": ("analysis.study", None),
    "comparison": ("analysis.comparison", None),
    "ppc": ("analysis.ppc", None),
    "propriety": ("propriety", None),
    "parametric_bootstrap": ("analysis.study", "parametric_bootstrap"),
    "simulation_study": ("analysis.study", "simulation_study"),
    "Comparison": ("analysis.comparison", "Comparison"),
    "posterior_predictive": ("analysis.ppc", "posterior_predictive"),
    "ProprietyReport": ("propriety", "ProprietyReport"),
    "check_propriety": ("propriety", "check_propriety"),
    "loo": ("inference.loo", "loo"),
    "waic": ("inference.loo", "waic"),
    "compare_models": ("inference.loo", "compare_models"),
    "integrated_group_loglik": ("inference.group_loo", "integrated_group_loglik"),
    "group_refit_elpd": ("inference.group_loo", "group_refit_elpd"),
    "additive_relationship": ("model.relmat", "additive_relationship"),
    "test_variance": ("inference.variance_tests", "test_variance"),
    "score_test": ("inference.score_test", "score_test"),
    "anova": ("inference.anova", "anova"),
    "information_criteria": ("inference.selection", "information_criteria"),
    "criteria_table": ("inference.selection", "criteria_table"),
    "fence": ("inference.fence", "fence"),
    "fixed_effect_tests": ("inference.anova", "fixed_effect_tests"),
    "residuals": ("diagnostics.residuals", "residuals"),
    "ebp": ("analysis.study.ebp_bootstrap", "ebp"),
    "mebp": ("frequentist.ebp.design_consistent", "mebp"),
    "influence": ("diagnostics.influence", "influence"),
    "gof_test": ("diagnostics.gof", "gof_test"),
    "Influence": ("diagnostics.influence", "Influence"),
    "plot_residuals": ("diagnostics.plots", "plot_residuals"),
    "plot_ppc_by_group": ("diagnostics.plots", "plot_ppc_by_group"),
    "plot_loo_pit": ("diagnostics.plots", "plot_loo_pit"),
}

# old module paths (bayesglmm.design, bayesglmm.study.runner, ...) import for one release.
# The four whose names are also functions of the package are aliased here, so that importing
# them never rebinds bayesglmm.compare (the function) to a module.
_compat.install()
for _name in ("compare", "ebp", "simulate", "sensitivity"):
    _compat.sys.modules.setdefault(
        f"{__name__}.{_name}", _compat.sys.modules[_compat.new_path(f"{__name__}.{_name}")]
    )
del _name


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = importlib.import_module(f".{module}", __name__)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "GLMM",
    "FitResult",
    "compare",
    "Comparison",
    "ebp",
    "posterior_predictive",
    "simulate",
    "study",
    "specs",
    "simulation_study",
    "parametric_bootstrap",
    "powerscale",
    "sensitivity",
    "datasets",
    "priors",
    "available_methods",
    "check_propriety",
    "ProprietyReport",
    "loo",
    "waic",
    "compare_models",
    "integrated_group_loglik",
    "group_refit_elpd",
    "additive_relationship",
    "residuals",
    "influence",
    "Influence",
    "gof_test",
    "mebp",
    "BayesGLMMError",
    "BackendNotInstalledError",
    "DataError",
    "DatasetUnavailableError",
    "FamilyError",
    "FormulaError",
    "ImproperPosteriorError",
    "MethodError",
    "OptionError",
    "PriorError",
    "ResultFileError",
    "test_variance",
    "score_test",
    "anova",
    "fixed_effect_tests",
    "information_criteria",
    "criteria_table",
    "fence",
    "plot_residuals",
    "plot_ppc_by_group",
    "plot_loo_pit",
]
