"""Tests of variance components: likelihood ratio, restricted LR, bootstrap and score.

:func:`test_variance` tests whether the variance(s) of one random-effect term, or of one
column of a correlated term, are zero.

``method="lrt"`` refits the model without the term by the same method and options and
compares the two maximized (approximate) log-likelihoods. When no random effect is left, the
reduced model is the GLM, fitted by IRLS (:mod:`bayesglmm.frequentist.glm`); its
log-likelihood is the family's at the estimate (for ``lmm`` with ``reml=True``, the REML
criterion of the linear model, as lme4 writes it). The null distribution respects the
boundary (a variance cannot be negative):

- one variance: ``0.5 chi2(0) + 0.5 chi2(1)`` (Self & Liang 1987, case 5);
- one column of a correlated term of dimension ``q`` (its variance and ``q - 1``
  covariances): ``0.5 chi2(q - 1) + 0.5 chi2(q)`` (Stram & Lee 1994). Both hold whatever the
  information matrix: the tangent cone is a half-space;
- a whole correlated term of dimension ``q >= 2``: the chi-bar-square of the cone of
  positive semi-definite ``q x q`` matrices, ``sum_k w_k chi2(k (k + 1) / 2 + k (q - k))``
  (the dimension of the cone's face at a rank-``k`` matrix), and ``q`` uncorrelated
  variances (an ``||`` term): the chi-bar-square of the orthant, ``sum_k w_k chi2(k)``.
  The weights ``w_k`` depend on the Fisher information ``I`` of the tested covariance
  parameters at the null, after the nuisance parameters are profiled out (the efficient
  information ``I_tt - I_tn I_nn^-1 I_nt``; Shapiro 1988, Silvapulle & Sen 2005, ch. 3):
  with ``Z ~ N(0, I^-1)`` and ``theta`` its projection on the cone in the metric ``I``
  (``min (Z - theta)' I (Z - theta)``), ``w_k = P(theta lies in the relative interior of a
  face of dimension d_k)``, i.e. ``k`` eigenvalues of the projected matrix (``k``
  components) positive. :func:`cone_weights` estimates them by simulation (projected,
  accelerated gradient in the Frobenius coordinates). The information is the expected
  information of the linear model at the reduced fit's estimates, ``I_ab = tr(P G_a P G_b)
  / 2`` with ``G_a = dV / d sigma_a`` (Harville 1977): ``V = sigma^2 I + Z_0 D_0 Z_0'`` for
  ``lmm`` fits (``P`` the REML projection, or ``V^-1`` for ML); for GLMMs the working
  linear model of the reduced fit, ``V = W^-1 + Z_0 D_0 Z_0'`` with ``W`` the family's
  Fisher weights (the approximation of Breslow & Clayton 1993 and Lin 1997, first order, no
  kurtosis correction; ``P`` accounts for the fixed effects). When it cannot be computed
  (more than :data:`INFO_MAX_N` rows, a singular information) the identity is used
  (GOE weights for the PSD cone, ``C(q, k) 2^-q`` for the orthant) and the result says so.

``method="rlrt"`` (Gaussian ``lmm`` fits; an ML fit is refitted by REML): the restricted LRT
with its exact finite-sample null (Crainiceanu & Ruppert 2004) simulated as R's RLRsim
``exactRLRT`` does (:mod:`bayesglmm.inference.rlrt`), for one variance.

``method="bootstrap"``: the parametric-bootstrap LRT. ``n_boot`` data sets are simulated
from the reduced fit (:func:`bayesglmm.simulate`), both models are refitted by the fit's
method and options, and ``p = (1 + #{T* >= T}) / (B + 1)`` over the ``B`` replicates that
finished. The replicates run on :func:`~bayesglmm.study.run_study` (process pool or Dask
``client``, resumable ``store``, seeds derived from ``random_seed`` and the replicate's
number: the same seed gives the same p-value bitwise whatever the number of workers).

``method="score"``: the score test of :mod:`bayesglmm.inference.score_test`, which needs the
null fit only (an unfitted :class:`~bayesglmm.GLMM` is accepted).

The naive ``chi2(df)`` p-value is reported beside, as ``p_value_naive``, never as the test.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from ..errors import MethodError
from ..model.design import refuse_extensions
from ..model.families import DISPERSION_NAMES
from ..options import choice, flag, integer, seed
from .mixtures import (  # noqa: F401 (the names other modules import from here)
    CONE_SEED,
    CONE_SIMULATIONS,
    INFO_MAX_N,
    Mixture,
    cone_weights,
    independent_variances,
    information_mixture,
    null_covariance,
    one_column,
    one_variance,
    psd_cone,
    variance_information,
    vech_pairs,
)
from .reduced import (  # noqa: F401 (the names other modules import from here)
    LIKELIHOOD_KINDS,
    GLMNullFit,
    Removal,
    VarianceTest,
    _default_term,
    _drop_column,
    check_likelihood_fit,
    find_term,
    fit_options_of,
    fit_reduced,
    formula_with,
    glm_loglik,
    lr_statistic,
    reduced_model_of,
    response_text,
    warn_negative,
)

#: methods of test_variance
METHODS = ("lrt", "rlrt", "bootstrap", "score")

#: most bootstrap replicates and RLRT simulations accepted
MAX_BOOT = 100_000

MAX_NSIM = 10_000_000


def _passthrough(name, v):
    return v


#: options of each method: name -> (validator, default)
OPTIONS = {
    "lrt": {},
    "rlrt": {
        "nsim": (integer(1, most=MAX_NSIM), 10_000),
        "random_seed": (seed, None),
        "others": (choice("estimates", "ignore"), "estimates"),
    },
    "bootstrap": {
        "n_boot": (integer(1, most=MAX_BOOT), 1000),
        "random_seed": (seed, None),
        "client": (_passthrough, None),
        "store": (_passthrough, None),
        "max_workers": (integer(1, none=True), None),
        "progressbar": (flag(none=True), False),
    },
    "score": {
        "correction": (flag(none=True), None),
    },
}


def resolve_test_options(method, options: dict) -> dict:
    """``options`` of ``method`` checked and completed with defaults, or one MethodError."""
    if not isinstance(method, str) or method not in METHODS:
        raise MethodError(
            f"test_variance method must be one of {', '.join(METHODS)}, got {method!r}"
        )
    table = OPTIONS[method]
    for name in options:
        if name not in table:
            known = ", ".join(table) or "none"
            others = [m for m, t in OPTIONS.items() if name in t]
            hint = f" (an option of method {', '.join(others)})" if others else ""
            raise MethodError(
                f"unknown option {name!r} for test_variance(method={method!r}){hint}; "
                f"known: {known}"
            )
    out = {}
    for name, (check, default) in table.items():
        out[name] = check(name, options[name]) if name in options else default
    if method == "bootstrap":
        from ..analysis.study.tasks import check_arguments

        check_arguments(
            out["store"], out["client"], out["max_workers"], out["random_seed"],
            out["progressbar"],
        )  # fmt: skip
    return out


def test_variance(fit, term: str | None = None, method: str = "lrt", **options) -> VarianceTest:
    """Test whether the variance(s) of one random-effect term are zero.

    Parameters
    ----------
    fit : FitResult or GLMM
        A likelihood fit (``laplace``, ``agq``, ``lmm``, ...) made by :meth:`GLMM.fit`; an
        unfitted :class:`~bayesglmm.GLMM` only with ``method="score"``.
    term : str or list of str, optional
        The term to remove: its label (``"(1|herd)"``, ``"1|herd"``), its grouping factor
        when that has one term, or a component ``"g|x"`` of a correlated term (then only that
        column, its variance and covariances, is removed). A list of terms of one variance
        each (``["(1|a)", "(1|b)"]``, the pieces of ``(1 + x || g)``) removes them all: the
        null is the chi-bar-square of the orthant (``lrt``). None: the model's only term.
    method : {"lrt", "rlrt", "bootstrap", "score"}
        ``"lrt"``: boundary-aware chi-bar-square null (module docstring). ``"rlrt"``: the
        restricted LRT with its exact finite-sample null (Gaussian ``lmm`` fits, one
        variance; an ML fit is refitted by REML and the result says so). ``"bootstrap"``:
        parametric-bootstrap LRT. ``"score"``: :func:`bayesglmm.inference.score_test.score_test`.
    **options
        Per method, checked before any fit (an unknown one raises MethodError):

        - ``rlrt``: ``nsim`` (10000 draws of the null), ``random_seed``, ``others``
          (with other random effects in the model: ``"estimates"``, default, holds them at
          their REML estimates under the null; ``"ignore"`` computes the eigenvalues from
          the tested effect alone, as RLRsim's ``exactRLRT(m, mA, m0)``;
          :mod:`bayesglmm.inference.rlrt`);
        - ``bootstrap``: ``n_boot`` (1000 replicates, 1 to 100000), ``random_seed``,
          ``client`` (a Dask ``Client`` or an Executor), ``store`` (a directory: finished
          replicates are kept and a rerun resumes), ``max_workers`` (local process pool;
          1 runs in this process), ``progressbar``;
        - ``score``: ``correction`` (passed to ``score_test`` when given; its default
          otherwise).

    Returns
    -------
    VarianceTest
        Statistic, p-value (with its Monte Carlo standard error for ``rlrt`` and
        ``bootstrap``), the null used and the naive ``chi2`` p-value beside it.

    Raises
    ------
    MethodError
        For an unknown method or option, a Bayesian or quasi-likelihood fit, a term not in
        the model, an unfitted model with a method other than ``score``, or ``rlrt`` on a
        fit that is not a Gaussian ``lmm`` fit of one variance.
    """
    from ..glmm import GLMM

    opts = resolve_test_options(method, options)
    if method == "score":
        from .score_test import score_test

        return score_test(fit, term=term, **{k: v for k, v in opts.items() if v is not None})
    if isinstance(fit, GLMM):
        raise MethodError(
            f"test_variance(method={method!r}) needs a fitted model (GLMM.fit(...)); only "
            "method='score' takes an unfitted GLMM (it needs the null fit only)"
        )
    check_likelihood_fit(fit)
    refuse_extensions(fit.model.design, f"test_variance(method={method!r})")
    if method == "rlrt":
        _check_rlrt_fit(fit)
    if term is None:
        term = _default_term(fit.model.design, method)
    rm = reduced_model_of(fit, term)
    if method == "rlrt":
        return _rlrt(fit, rm, opts)
    options = fit_options_of(fit)
    reduced = fit_reduced(rm.model, fit.method, options)
    stat = lr_statistic(fit.loglik, reduced.loglik, fit, rm.formula)
    notes: list[str] = []
    ml = fit.method == "lmm" and not options.get("reml", True)
    terms = rm.terms(fit.model.design)
    t = terms[0]
    if rm.column is not None:
        null, df = (one_column(t.n_columns), t.n_columns) if t.correlated else (one_variance(), 1)
    elif len(terms) == 1 and t.n_columns == 1:
        null, df = one_variance(), 1
    else:
        q = t.n_columns
        psd = len(terms) == 1 and t.correlated
        df = q * (q + 1) // 2 if psd else sum(u.n_columns for u in terms)
        if method == "lrt":
            null, notes = information_mixture(fit, reduced, rm.indices, ml)
        else:  # the bootstrap replaces the null
            null = psd_cone(q) if psd else independent_variances(df)
    res = VarianceTest(
        statistic=stat,
        p_value=null.sf(stat),
        method=method,
        null_distribution=str(null),
        df=int(df),
        p_value_naive=float(stats.chi2.sf(stat, df)),
        term=rm.label,
        fits={"full": fit, "reduced": reduced},
        notes=notes,
    )
    if method == "bootstrap":
        _bootstrap(res, fit, rm.model, reduced, options, opts)
    return res


# --------------------------------------------------------------------------- rlrt
def _check_rlrt_fit(fit) -> None:
    if fit.method != "lmm":
        raise MethodError(
            f"test_variance(method='rlrt') needs a Gaussian linear mixed model fitted by "
            f"method 'lmm', got a {fit.method} fit; use method='lrt' or 'bootstrap'"
        )


def _rlrt(fit, rm: Removal, opts) -> VarianceTest:
    from .rlrt import lambda_grid, rlrt_eigenvalues, rlrt_p_value, rlrt_sample

    terms = rm.terms(fit.model.design)
    t, column, formula = terms[0], rm.column, rm.formula
    if len(terms) > 1 or (column is None and t.n_columns > 1) or (column and t.correlated):
        raise MethodError(
            f"test_variance(method='rlrt') tests one variance; removing {rm.label} removes "
            "more (covariances or several variances): use method='lrt' or 'bootstrap'"
        )
    notes = []
    options = fit_options_of(fit)
    full = fit
    if not options.get("reml", True):
        options["reml"] = True
        full = fit.model.fit(method="lmm", **options)
        notes.append("the ML fit was refitted by REML (the RLRT compares REML criteria)")
    reduced = fit_reduced(rm.model, "lmm", options)
    stat = lr_statistic(full.loglik, reduced.loglik, full, formula)
    d = fit.model.design
    k = t.n_columns
    j = 0 if column is None else list(t.columns).index(column)
    Zt = t.Z[:, j::k]
    W = None
    if rm.model.design.random and opts["others"] == "ignore":
        others = (
            "the other random effects ignored: eigenvalues of the tested effect alone, as "
            "RLRsim exactRLRT(m, mA, m0)"
        )
    elif rm.model.design.random:
        r, W, _ = null_covariance(d, reduced, "lmm")
        W = W / np.sqrt(r[0])  # relative to sigma: V0 / sigma^2 = I + W W'
        others = "the other variance components held at their REML estimates under the null"
    else:
        others = "exact: one variance component"
    sample = np.zeros(0)
    if stat > 0:
        mu = rlrt_eigenvalues(d.X, Zt, W)
        sample = rlrt_sample(mu, d.n, d.p, opts["nsim"], opts["random_seed"], lambda_grid())
    p, se = rlrt_p_value(stat, sample)
    null = (
        f"simulated finite-sample null of the RLRT ({opts['nsim']} draws; Crainiceanu & "
        f"Ruppert 2004, as RLRsim exactRLRT; {others})"
    )
    if stat == 0:
        notes.append("the statistic is 0: p = 1 without simulation")
    return VarianceTest(
        statistic=stat,
        p_value=p,
        method="rlrt",
        null_distribution=null,
        df=1,
        p_value_naive=float(stats.chi2.sf(stat, 1)),
        term=rm.label,
        fits={"full": full, "reduced": reduced},
        mc_error=se,
        notes=notes,
        details={"sample": sample},
    )


# --------------------------------------------------------------------------- bootstrap
def _truth_of(reduced, design) -> dict:
    """Simulation parameters (as :func:`bayesglmm.simulate` takes them) of the reduced fit."""
    if isinstance(reduced, GLMNullFit):
        fixed = dict(zip(design.fixed_names, (float(b) for b in reduced.beta), strict=True))
        return {"fixed_effects": fixed, "dispersion": reduced.dispersion}
    disp = next((float(reduced.dispersion[k]) for k in DISPERSION_NAMES
                 if k in reduced.dispersion.index), None)  # fmt: skip
    return {
        "fixed_effects": reduced.fixed_effects.to_dict(),
        "variance_components": reduced.variance_components.to_dict(),
        "correlations": reduced.re_correlations.to_dict() or None,
        "dispersion": disp,
    }


def bootstrap_replicate(setup: dict, seed: int) -> dict:
    """One parametric-bootstrap replicate (a study task): simulate from the reduced fit,
    refit both models, return ``{"statistic": 2 (l1 - l0), "warnings": [texts]}``."""
    from ..glmm import GLMM
    from ..model.simulate import simulate
    from ..options import known_options

    data_ss, full_ss, red_ss = np.random.SeedSequence(seed).spawn(3)
    sim = simulate(
        setup["reduced_formula"],
        setup["data"],
        family=setup["family"],
        link=setup["link"],
        random_seed=int(data_ss.generate_state(1, np.uint64)[0] >> np.uint64(1)),
        **setup["truth"],
    )
    method = setup["method"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits = []
        for formula, ss in ((setup["formula"], full_ss), (setup["reduced_formula"], red_ss)):
            opts = dict(setup["options"])
            if "random_seed" in known_options(method):
                opts["random_seed"] = int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
            model = GLMM(formula, sim, family=setup["family"], link=setup["link"])
            fits.append(fit_reduced(model, method, opts))
    texts = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return {"statistic": lr_statistic(fits[0].loglik, fits[1].loglik), "warnings": texts}


def _bootstrap(res: VarianceTest, fit, reduced_model, reduced, options, opts) -> None:
    """Replace ``res``'s p-value by the parametric bootstrap's."""
    from ..analysis.study import Task
    from ..analysis.study.runner import run_tasks
    from ..options import known_options

    d = fit.model.design
    if d.dropped_rows:
        raise MethodError(
            "test_variance(method='bootstrap') needs data without missing values in the "
            "model's columns: drop those rows before fitting"
        )
    keep = set(known_options(fit.method)) - {"random_seed"}
    refit = {k: v for k, v in options.items() if k in keep and v is not None}
    if "progressbar" in keep:
        refit["progressbar"] = False
    setup = {
        "formula": fit.model.formula,
        "reduced_formula": reduced_model.formula,
        "data": fit.model.data,
        "family": d.family.name,
        "link": d.family.link.name,
        "method": fit.method,
        "options": refit,
        "truth": {k: v for k, v in _truth_of(reduced, reduced_model.design).items()
                  if v is not None},
    }  # fmt: skip
    B = opts["n_boot"]
    tasks = [Task(f"boot={i}", bootstrap_replicate, {"setup": setup}) for i in range(B)]
    study = run_tasks(
        tasks, opts["store"], opts["client"], opts["max_workers"], opts["random_seed"],
        opts["progressbar"], desc="bootstrap LRT", warn=False,
    )  # fmt: skip
    values = [study.results[t.key] for t in tasks if t.key in study.results]
    sample = np.array([v["statistic"] for v in values], dtype=float)
    n_ok = sample.size
    if n_ok == 0:
        first = study.table["error"].dropna()
        raise MethodError(
            f"every bootstrap replicate failed (first: "
            f"{first.iloc[0] if len(first) else 'no error recorded'})"
        )
    exceed = int(np.sum(sample >= res.statistic))
    p = (1.0 + exceed) / (n_ok + 1.0)
    res.p_value = float(p)
    res.mc_error = float(np.sqrt(p * (1.0 - p) / n_ok))
    res.null_distribution = (
        f"parametric bootstrap from the reduced fit ({n_ok} replicates, refitted by "
        f"{fit.method}; p = (1 + #{{T* >= T}}) / (B + 1))"
    )
    n_failed = B - n_ok
    if n_failed:
        res.notes.append(f"{n_failed} of {B} bootstrap replicates failed (see details['study'])")
    n_warned = sum(bool(v["warnings"]) for v in values)
    if n_warned:
        res.notes.append(f"{n_warned} of {n_ok} bootstrap refits raised warnings")
    res.details.update({"sample": sample, "study": study})
