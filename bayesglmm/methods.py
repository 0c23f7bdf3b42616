"""The estimation methods behind :meth:`bayesglmm.GLMM.fit`, one record each.

A :class:`MethodRecord` is the one place a method is declared: its name, its fitting function
(``"module:function"``, imported only when used, so frequentist fits never import PyMC), its
kind and a one-line summary, its option table (names, validators, defaults, meanings:
:class:`bayesglmm.options.Option`) and what it applies to (families, links, one factor or
nested or crossed, correlated terms), with the reason it refuses the rest
(:meth:`MethodRecord.applies`). ``GLMM.fit``, ``compare``'s "does not apply" notes,
:func:`bayesglmm.options.describe_options`, the CLI help and :func:`method_table` (the
README's table) all read these records.

A fitting function takes the model and every option of its table as keywords (no defaults:
they are the table's) and returns :class:`~bayesglmm.results.assemble.Estimates`;
``GLMM.fit`` turns those into the :class:`~bayesglmm.results.result.FitResult`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from . import options as _options
from .errors import MethodError
from .method_checks import (
    ALPHA,
    GEE_START,
    GIBBS_E_STEP,
    LIKELIHOOD_START,
    MC_SIZES,
    MOMENT_SIZES,
    MOMENT_START,
    CrossCheck,
    moments_memory,
    moments_seconds,
    monte_carlo_memory,
    monte_carlo_seconds,
    quadrature_memory,
    sampler_memory,
)
from .options import (
    NUTS_SAMPLERS,
    PYMC_INITS,
    Option,
    choice,
    column_name,
    flag,
    integer,
    laplace_start,
    mapping,
    option_table,
    real,
    weight_vector,
)

#: the kinds of method (the ``kind`` column of :func:`method_table`)
METHOD_KINDS = ("bayesian", "likelihood", "quasi-likelihood", "monte carlo", "marginal")


# ------------------------------------------------------------------------------------------
# what a method applies to


@dataclass(frozen=True)
class Requirement:
    """One condition on the design: ``text`` for people, ``refuse(design)`` the reason a
    design fails it (None when it holds), a sentence in which ``<method>`` stands for the
    method's name."""

    text: str
    refuse: Callable[[object], str | None]


def _random(design) -> str | None:
    if design.random:
        return None
    return (
        "method <method> needs at least one random-effect term such as (1|g); this formula "
        "has no random-effect term (fit a GLM instead)"
    )


def families(*names: str, why: str = "") -> Requirement:
    """The response family is one of ``names`` (``why``: the reason the others are not)."""

    def refuse(design):
        fam = design.family.name
        if fam in names:
            return None
        return f"method <method> supports the families {', '.join(names)}; got {fam!r}{why}"

    return Requirement(f"families: {', '.join(names)}", refuse)


def _binomial_poisson(design) -> str | None:
    fam = design.family.name
    if fam in ("binomial", "poisson"):
        return None
    return f"method <method> fits binomial and Poisson models, not {fam}"


def _gaussian_identity(design) -> str | None:
    fam, link = design.family.name, design.family.link.name
    if fam == "gaussian" and link == "identity":
        return None
    return (
        f"method <method> fits Gaussian models with the identity link; this model is "
        f"{fam}/{link}: use method='pql' or 'laplace'"
    )


def _intercepts(design) -> str | None:
    for t in design.random:
        if not t.is_intercept_only:
            return f"method <method> takes random intercepts only; {t.name} has slopes"
    return None


def _one_cluster(design) -> str | None:
    if len(design.random) > 1:
        names = ", ".join(t.group for t in design.random)
        return (
            f"GEE needs one clustering factor; the formula has {len(design.random)} grouping "
            f"factors ({names}). For crossed or nested random effects use method='ee' "
            "(Jiang's estimating equations)"
        )
    if design.random and not design.random[0].is_intercept_only:
        t = design.random[0]
        return (
            f"GEE takes the clusters from a random-intercept term (1|g); the formula has "
            f"{t.name}: write (1|{t.group}) or pass groups="
        )
    return None


#: quadrature integrates at most this many random effects per level
QUADRATURE_DIM = 3


def _quadrature(design) -> str | None:
    structure = design.grouping
    groups = structure["groups"]
    for g, k in structure["dims"].items():
        if k > QUADRATURE_DIM:
            return (
                f"adaptive quadrature integrates {k} random effects per level of {g!r}; the "
                f"product rule is limited to {QUADRATURE_DIM} dimensions (n_quad^{k} nodes). "
                "Use method='laplace', or uncorrelated/fewer random slopes"
            )
    kind = structure["kind"]
    if kind == "crossed":
        return (
            f"adaptive quadrature needs one grouping factor or two nested ones; {groups[0]!r} "
            f"and {groups[1]!r} are crossed (levels of one occur with several levels of the "
            "other), so the likelihood does not factor into low-dimensional integrals and "
            "quadrature would need a grid over all random effects at once. Use "
            "method='laplace' for crossed designs"
        )
    if kind == "multiple":
        return (
            f"adaptive quadrature supports one grouping factor or two nested ones; this model "
            f"has {len(groups)} ({', '.join(groups)}). Use method='laplace'"
        )
    return None


RANDOM = Requirement("a random-effect term", _random)


def _not_betabinomial(design) -> str | None:
    if design.family.name != "betabinomial":
        return None
    return (
        "method <method> does not fit the beta-binomial family (its likelihood is not an "
        "exponential family's and its precision phi has no update there); use "
        "method='laplace', 'agq' or 'nuts'"
    )


NOT_BETABINOMIAL = Requirement("not the beta-binomial family", _not_betabinomial)


def _structures(record, design) -> str | None:
    """Why ``record`` cannot take a structured term of ``design`` (its ``structures``)."""
    for t in getattr(design, "random", ()):
        kind = getattr(t, "structure", None)
        if kind is not None and kind not in record.structures:
            what = {"ar1": "an AR(1) term", "relmat": "a known relationship matrix (relmat)"}
            takers = ", ".join(repr(r.name) for r in _RECORDS.values() if kind in r.structures)
            return (
                f"method <method> does not take {what.get(kind, kind)} ({t.name}); "
                f"methods that do: {takers}"
            )
    return None


def _weights(record, design) -> str | None:
    """Why ``record`` cannot take the prior weights of ``design`` (its ``weights``)."""
    if getattr(design, "weights", None) is None or record.weights:
        return None
    takers = ", ".join(repr(r.name) for r in _RECORDS.values() if r.weights)
    return (
        f"method <method> does not take prior weights "
        f"(weights={getattr(design, 'weights_name', None) or '...'}); methods that do: "
        f"{takers or 'none'}"
    )


BINOMIAL_POISSON = Requirement("families: binomial, poisson", _binomial_poisson)
MONTE_CARLO_FAMILIES = families(
    "binomial", "poisson", why=" (its dispersion parameter has no Monte Carlo M-step here)"
)
GAUSSIAN = Requirement("Gaussian with identity link", _gaussian_identity)
INTERCEPTS = Requirement("random intercepts only", _intercepts)
ONE_CLUSTER = Requirement("one random intercept (1|cluster) or groups=", _one_cluster)
QUADRATURE = Requirement(
    f"one factor or two nested, up to {QUADRATURE_DIM} effects per factor", _quadrature
)


#: h-likelihood random-effect distributions and the (family, link) each needs (None: any)
HLIK_PAIRS = {"normal": None, "gamma": ("poisson", "log"), "beta": ("binomial", "logit")}


def _hlik_pairing(design, given, options) -> str | None:
    """Why ``re_family`` does not pair with the model's family and link (None: it does)."""
    re_family = options.get("re_family")
    pair = HLIK_PAIRS.get(re_family)
    here = (design.family.name, design.family.link.name)
    if pair is not None and here != pair:
        return (
            f"re_family={re_family!r} needs the {pair[0]} family with the {pair[1]} link "
            f"(its conjugate pairing); this model is {here[0]}/{here[1]}: use "
            "re_family='normal'"
        )
    return None


HLIK_PAIRING = CrossCheck("re_family='gamma': Poisson/log; 'beta': binomial/logit", _hlik_pairing)


# ------------------------------------------------------------------------------------------
# the record


@dataclass(frozen=True)
class MethodRecord:
    """Everything about one estimation method, declared once.

    Attributes
    ----------
    name : str
        The ``method=`` of :meth:`bayesglmm.GLMM.fit`.
    target : str
        ``"module:function"`` of the fitting function, imported on first use.
    kind : str
        One of :data:`METHOD_KINDS`.
    summary : str
        One line for tables and help texts.
    options : dict of str to Option
        The option table (see :func:`bayesglmm.options.option_table`).
    requires : tuple of Requirement
        What the method applies to; :meth:`applies` reports the first one a design fails.
    checks : tuple of CrossCheck
        Rules across options (and the model) that the option table cannot state, run by
        :func:`bayesglmm.method_checks.check_fit` right after the options are resolved.
    memory : callable, optional
        ``memory(design, options) -> bytes``: what the fit's sizes make it allocate; a fit
        needing more than is available is refused before it starts.
    sizes : tuple of str
        The size options that drive ``memory`` (named in the refusal).
    seconds : callable, optional
        ``seconds(design, options) -> seconds``: a rough estimate of the fit's time from its
        Monte Carlo or simulation sizes; a fit estimated above five minutes is warned about
        (never refused).
    slow : tuple of str
        The size options that drive ``seconds`` (named in the warning, the first as the one
        to lower).
    """

    name: str
    target: str
    kind: str
    summary: str
    options: dict
    requires: tuple[Requirement, ...] = ()
    checks: tuple[CrossCheck, ...] = ()
    memory: Callable[[object, dict], int] | None = None
    sizes: tuple[str, ...] = ()
    seconds: Callable[[object, dict], float] | None = None
    slow: tuple[str, ...] = ()
    #: the structured covariances the method takes: ``"ar1"`` (``ar1(time + 0 | g)``) and
    #: ``"relmat"`` (``GLMM(..., relmat=...)``); a design with another is refused
    structures: tuple[str, ...] = ()
    #: the method takes prior weights (``GLMM(..., weights=)``) exactly; a design with
    #: weights is refused otherwise
    weights: bool = False

    @property
    def fit(self) -> Callable:
        """The fitting function (imported now)."""
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)

    def applies(self, design) -> str | None:
        """None if the method can fit ``design``, else the reason it cannot: one line that
        :meth:`bayesglmm.GLMM.fit` raises as a :class:`MethodError` and ``compare`` keeps as
        the method's note."""
        structure = _structures(self, design) or _weights(self, design)
        if structure:
            return structure.replace("<method>", repr(self.name))
        for req in self.requires:
            reason = req.refuse(design)
            if reason:
                return reason.replace("<method>", repr(self.name))
        return None

    @property
    def applies_to(self) -> str:
        """What the method applies to, for people."""
        return "; ".join(r.text for r in self.requires) or "every model"


# ------------------------------------------------------------------------------------------
# the records

_SAMPLING = (
    Option("draws", integer(1), "draws kept per chain", 1000),
    Option("tune", integer(0), "tuning (warm-up) iterations per chain, discarded", 1000),
    Option("chains", integer(1), "independent chains", 4),
    Option("cores", integer(1, none=True), "chains run in parallel; None: min(chains, CPUs)"),
    Option("log_likelihood", flag(), "store the pointwise log-likelihood (LOO/WAIC)", True),
    Option("allow_improper", flag(), "sample even when the posterior is found improper", False),
    Option(
        "sampler_kwargs",
        mapping,
        "further keywords for the sampler (pymc.sample or nutpie.sample), checked there",
    ),
)
_SOLVER = Option(
    "solver",
    choice("auto", "direct", "iterative"),
    "linear algebra: exact factor, or iterative with memory linear in rows and levels",
    "auto",
)
_LAPLACE_START = Option("start", laplace_start, "vector (theta, beta[, log dispersion]) or dict")
_MC_START = Option("start", laplace_start, "vector (theta, beta) or dict; default Laplace")
_E_STEP = Option(
    "e_step",
    choice("importance", "rejection", "mh", "gibbs"),
    "E-step sampler (gibbs: Polya-Gamma/Albert-Chib, binomial logit/probit)",
    "mh",
)
_MC_SIZES = (
    Option("mc_max", integer(10), "largest Monte Carlo sample size", 100_000),
    Option("loglik_draws", integer(100), "importance draws for the log-likelihood estimate", 5000),
)
_MC_SHARED = {
    "max_iter": 200,
    "progressbar": None,
    "random_seed": None,
    "threads": None,
    "start": None,
}
_SAMPLER_SIZES = ("draws", "chains", "log_likelihood")
_MC_SIZE_NAMES = ("mc_size", "mc_max", "loglik_draws")
_QUAD_NODES = Option("n_quad", integer(1), "quadrature nodes per dimension (lme4's nAGQ)", 25)


def _moments(name: str, weighting: str) -> MethodRecord:
    return MethodRecord(
        name,
        f"bayesglmm.frequentist.moments.fit:fit_{name}",
        "quasi-likelihood",
        f"Jiang's estimating equations ({weighting}); nested or crossed random intercepts",
        option_table(
            {"max_iter": 200, "random_seed": None, "start": None},
            Option("n_sim", integer(2), "Monte Carlo draws of the random effects for E(S)", 1000),
            Option(
                "expectation",
                choice("auto", "simulation", "quadrature"),
                "E(S) by simulation or (one factor) Gauss-Hermite quadrature",
                "auto",
            ),
            Option("n_quad", integer(1), "quadrature nodes for expectation='quadrature'", 30),
            Option("weights", weight_vector, "weights of the base statistics (first step B)"),
            Option("tol", real(0), "tolerance of the equation solver", 1e-10),
        ),
        (BINOMIAL_POISSON, RANDOM, INTERCEPTS),
        checks=(MOMENT_SIZES, MOMENT_START),
        memory=moments_memory,
        sizes=("expectation", "n_sim", "n_quad"),
        seconds=moments_seconds(2 if name == "ee2" else 1),
        slow=("n_sim",),
    )


#: what MCEM and MCNR share beyond their option tables: the rules across their sizes, the
#: start check, and the memory and time their Monte Carlo sizes need
_MC_EM_CHECKS = dict(
    checks=(MC_SIZES, LIKELIHOOD_START, GIBBS_E_STEP),
    memory=monte_carlo_memory,
    sizes=_MC_SIZE_NAMES,
    seconds=monte_carlo_seconds,
    slow=("mc_max", "mc_size", "max_iter", "tol"),
)

RECORDS: tuple[MethodRecord, ...] = (
    MethodRecord(
        "nuts",
        "bayesglmm.bayes.nuts:fit_nuts",
        "bayesian",
        "posterior draws by NUTS (compiled density with nutpie, or PyMC's samplers)",
        option_table(
            {"progressbar": None, "random_seed": None, "start": None},
            *_SAMPLING,
            Option(
                "nuts_sampler",
                choice(*NUTS_SAMPLERS),
                "NUTS backend (auto: compiled or pymc)",
                "auto",
            ),
            Option("target_accept", real(0, 1), "target acceptance rate of NUTS, in (0, 1)", 0.8),
            Option(
                "parameterization",
                choice("noncentered", "centered"),
                "random effects as sd * N(0, 1) offsets or drawn directly",
                "noncentered",
            ),
            Option("init", choice(*PYMC_INITS, none=True), "PyMC's initialization (pymc only)"),
        ),
        memory=sampler_memory,
        sizes=_SAMPLER_SIZES,
        structures=("ar1", "relmat"),
        weights=True,
    ),
    MethodRecord(
        "gibbs",
        "bayesglmm.bayes.gibbs.fit:fit_gibbs",
        "bayesian",
        "posterior draws by Gibbs-style updates (Polya-Gamma, conjugate, slice), NUTS elsewhere",
        option_table(
            {"progressbar": None, "random_seed": None, "start": None},
            *_SAMPLING,
            Option("steps", mapping, "{variable: step kind} overriding the automatic choice"),
            Option(
                "nuts_fallback",
                flag(),
                "NUTS (True) or Metropolis for variables without Gibbs",
                True,
            ),
            Option(
                "scale_moves", flag(), "Liu-Sabatti rescaling moves after variance updates", True
            ),
            Option(
                "conjugate_priors", flag(), "conjugate priors in place of the default ones", False
            ),
            Option(
                "scheme",
                choice("auto", "collapsed", "steps"),
                "collapsed crossed-design sampler or PyMC steps (auto: collapsed when large)",
                "auto",
            ),
        ),
        (NOT_BETABINOMIAL,),
        memory=sampler_memory,
        sizes=_SAMPLER_SIZES,
        weights=True,
    ),
    MethodRecord(
        "lmm",
        "bayesglmm.frequentist.lmm:fit_lmm",
        "likelihood",
        "linear mixed model by REML or ML, as lme4::lmer",
        option_table(
            {"max_iter": 1000, "progressbar": None, "threads": None},
            Option("reml", flag(), "REML (True, as lmer) or maximum likelihood", True),
        ),
        (GAUSSIAN, RANDOM),
        weights=True,
    ),
    MethodRecord(
        "pql",
        "bayesglmm.frequentist.pql:fit_pql",
        "quasi-likelihood",
        "penalized quasi-likelihood (Breslow & Clayton; MASS::glmmPQL)",
        option_table(
            {"max_iter": 100, "progressbar": None, "random_seed": None, "threads": None},
            _SOLVER,
            Option("reml", flag(), "REML (True) or ML for the working linear mixed model", True),
            Option(
                "dispersion", choice("fixed", "estimated"), "working residual variance", "fixed"
            ),
            Option("tol", real(0), "relative change of the linear predictor that stops", 1e-6),
            Option("alpha", real(0, none=True), "negative binomial shape (required there)"),
            Option(
                "bias_correction",
                choice("none", "lin-breslow"),
                "small-variance bias correction of Breslow & Lin (1995), Lin & Breslow (1996)",
                "none",
            ),
        ),
        (RANDOM, NOT_BETABINOMIAL),
        checks=(ALPHA,),
        weights=True,
    ),
    MethodRecord(
        "kuk",
        "bayesglmm.analysis.kuk:fit_kuk",
        "monte carlo",
        "Kuk's iterative simulation-based bias correction of PQL or Laplace (Kuk 1995)",
        option_table(
            {"max_iter": 10, "progressbar": None, "random_seed": None},
            Option("base", choice("pql", "laplace"), "the estimator corrected", "pql"),
            Option("n_sim", integer(2), "simulated data sets per iteration", 50),
            Option("tol", real(0), "largest relative change of an estimate that stops", 1e-3),
            Option(
                "max_workers",
                integer(1, none=True),
                "processes of the local pool (run_study's); None: the CPUs",
            ),
            # checked by the fit (run_study's checks) before anything runs
            Option("store", lambda name, v: v, "directory resuming the simulations (run_study)"),
            Option("client", lambda name, v: v, "Dask client or Executor for the simulations"),
        ),
        (BINOMIAL_POISSON, RANDOM),
        # at most n_sim * max_iter refits of about 0.2 s + 3 ms per row (PQL, 2 cores)
        seconds=lambda design, o: (
            o["n_sim"]
            * o["max_iter"]
            * (0.2 + 3e-3 * design.n)
            / (o.get("max_workers") or _options.usable_cores())
        ),
        slow=("n_sim", "max_iter"),
    ),
    MethodRecord(
        "laplace",
        "bayesglmm.frequentist.laplace:fit_laplace",
        "likelihood",
        "maximum likelihood, Laplace approximation (lme4's glmer, nAGQ = 1)",
        option_table(
            {
                "max_iter": 1000,
                "progressbar": None,
                "random_seed": None,
                "threads": None,
                "start": None,
            },  # fmt: skip
            Option(
                "curvature",
                choice("fisher", "observed"),
                "weights of the Laplace log-det",
                "fisher",
            ),
            _SOLVER,
            start=_LAPLACE_START,
        ),
        (RANDOM,),
        checks=(LIKELIHOOD_START,),
        structures=("ar1", "relmat"),
        weights=True,
    ),
    MethodRecord(
        "agq",
        "bayesglmm.frequentist.agq:fit_agq",
        "likelihood",
        "maximum likelihood, adaptive Gauss-Hermite quadrature (glmer with nAGQ > 1)",
        option_table(
            {"max_iter": 1000, "progressbar": None, "threads": None, "start": None},
            _QUAD_NODES,
            start=_LAPLACE_START,
        ),
        (RANDOM, QUADRATURE),
        checks=(LIKELIHOOD_START,),
        memory=quadrature_memory,
        sizes=("n_quad",),
        weights=True,
    ),
    MethodRecord(
        "mbp",
        "bayesglmm.frequentist.mbp:fit_mbp",
        "likelihood",
        "maximum likelihood by maximization by parts (Song, Fan & Kalbfleisch 2005)",
        option_table(
            {"max_iter": 200, "progressbar": None, "threads": None},
            Option(
                "n_quad",
                integer(1),
                "quadrature nodes per dimension of the full likelihood",
                25,
            ),
            Option("tol", real(0, none=True), "largest relative parameter step that stops"),
        ),
        (RANDOM, QUADRATURE, NOT_BETABINOMIAL),
        memory=quadrature_memory,
        sizes=("n_quad",),
    ),
    MethodRecord(
        "mcem",
        "bayesglmm.frequentist.montecarlo.mcem:fit_mcem",
        "monte carlo",
        "maximum likelihood by Monte Carlo EM (Booth & Hobert 1999)",
        option_table(
            _MC_SHARED,
            Option("mc_size", integer(10), "(starting) Monte Carlo sample size", 200),
            *_MC_SIZES,
            _E_STEP,
            Option(
                "mc_rule",
                choice("booth_hobert", "ascent"),
                "Monte Carlo size/stopping rule",
                "booth_hobert",
            ),
            Option("tol", real(0, none=True), "stopping tolerance (see the rule)"),
            start=_MC_START,
        ),
        (MONTE_CARLO_FAMILIES, RANDOM),
        **_MC_EM_CHECKS,
    ),
    MethodRecord(
        "mcnr",
        "bayesglmm.frequentist.montecarlo.mcnr:fit_mcnr",
        "monte carlo",
        "maximum likelihood by Monte Carlo Newton-Raphson (McCulloch 1997)",
        option_table(
            _MC_SHARED,
            Option("mc_size", integer(10), "(starting) Monte Carlo sample size", 200),
            *_MC_SIZES,
            _E_STEP,
            Option("tol", real(0, none=True), "relative change that stops (3 in a row)"),
            start=_MC_START,
        ),
        (MONTE_CARLO_FAMILIES, RANDOM),
        **_MC_EM_CHECKS,
    ),
    MethodRecord(
        "sml",
        "bayesglmm.frequentist.montecarlo.sml:fit_sml",
        "monte carlo",
        "simulated maximum likelihood by importance sampling around the Laplace fit",
        option_table(
            {**_MC_SHARED, "max_iter": 500},
            Option("mc_size", integer(10), "importance draws, fixed for the optimization", 10_000),
            _MC_SIZES[1],
            start=_MC_START,
        ),
        (MONTE_CARLO_FAMILIES, RANDOM),
        checks=(MC_SIZES, LIKELIHOOD_START),
        memory=monte_carlo_memory,
        sizes=_MC_SIZE_NAMES,
    ),
    MethodRecord(
        "gee",
        "bayesglmm.frequentist.gee.fit:fit_gee",
        "marginal",
        "marginal model by generalized estimating equations (geepack's geeglm)",
        option_table(
            {"max_iter": 100, "start": None},
            Option(
                "corstr",
                choice("independence", "exchangeable", "ar1", "unstructured"),
                "working correlation (geepack's names)",
                "exchangeable",
            ),
            Option(
                "se",
                choice("robust", "model", "bias_reduced"),
                "standard errors of the table",
                "robust",
            ),
            Option(
                "association",
                choice("moment", "prentice"),
                "alpha by moments, or Prentice's equations with SEs (geese; binary, exch/ar1)",
                "moment",
            ),
            Option("groups", column_name, "column of the clusters (default: the (1|g) term)"),
            Option(
                "time", column_name, "column ordering rows within a cluster (AR(1), unstructured)"
            ),
            Option("tol", real(0), "largest relative step of beta that stops", 1e-10),
            Option(
                "moments",
                choice("geepack", "statsmodels"),
                "moment estimators of scale and correlation: R geepack's or statsmodels'",
                "geepack",
            ),
        ),
        (families("binomial", "poisson", "gaussian"), ONE_CLUSTER),
        checks=(GEE_START,),
        weights=True,
    ),
    MethodRecord(
        "hlik",
        "bayesglmm.frequentist.hlik:fit_hlik",
        "likelihood",
        "hierarchical GLM by h-likelihood (HL(1,1) or HL(0,1)): normal, gamma or beta "
        "random effects (Lee & Nelder 1996)",
        option_table(
            {"max_iter": 200, "progressbar": None, "start": None},
            Option(
                "re_family",
                choice(*HLIK_PAIRS),
                "random-effect distribution (gamma: Poisson/log, beta: binomial/logit)",
                "normal",
            ),
            Option("tol", real(0), "largest Newton step on (beta, v) that stops", 1e-8),
            Option(
                "variant",
                choice("HL(1,1)", "HL(0,1)"),
                "fixed effects from p_v(h) (HL(1,1)) or from h (HL(0,1)); dispersions by APHL",
                "HL(1,1)",
            ),
        ),
        (families("binomial", "poisson", "gaussian"), RANDOM, INTERCEPTS),
        checks=(HLIK_PAIRING,),
    ),
    _moments("ee", "first step, Jiang 1998"),
    _moments("ee2", "optimally weighted second step, Jiang & Zhang 2001"),
)

_RECORDS: dict[str, MethodRecord] = {}


def register_method(record: MethodRecord) -> None:
    """Make ``record`` a method of :meth:`bayesglmm.GLMM.fit` (and of compare, the CLI ...)."""
    if record.kind not in METHOD_KINDS:
        raise MethodError(f"method kind {record.kind!r} is not one of {METHOD_KINDS}")
    _RECORDS[record.name] = record
    _options.METHODS[record.name] = record.options


for _record in RECORDS:
    register_method(_record)


def available_methods() -> list[str]:
    """Names of the registered methods, sorted."""
    return sorted(_RECORDS)


def get_record(name: str) -> MethodRecord:
    """The record of ``name`` (any case); an unknown name raises :class:`MethodError`."""
    if not isinstance(name, str) or name.lower() not in _RECORDS:
        close = difflib.get_close_matches(str(name).lower(), available_methods(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise MethodError(
            f"unknown method {name!r}; {hint}available: {', '.join(available_methods())}"
        )
    return _RECORDS[name.lower()]


def get_method(name: str) -> Callable:
    """The fitting function registered for ``name``."""
    return get_record(name).fit


def method_table():
    """One row per method: ``method``, ``kind``, ``summary``, ``applies to``, ``options``
    (a pandas DataFrame, in the records' order; the README's method table)."""
    import pandas as pd

    rows = [
        {
            "method": r.name,
            "kind": r.kind,
            "summary": r.summary,
            "applies to": r.applies_to,
            "options": ", ".join(r.options),
        }
        for r in _RECORDS.values()
    ]
    return pd.DataFrame(rows, columns=["method", "kind", "summary", "applies to", "options"])
