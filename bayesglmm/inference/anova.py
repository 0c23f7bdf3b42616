"""Likelihood-ratio comparison of nested likelihood fits, as R's ``anova``.

:func:`anova` takes two or more fits of the same data by the same likelihood method, ordered
from the smallest model to the largest, checks that each is nested in the next and gives one
row per fit with ``npar``, ``AIC``, ``BIC``, ``logLik`` and ``deviance``; from the second row
on, the likelihood-ratio statistic against the previous row (``statistic``, R's ``Chisq``),
its ``df`` and ``p_value``. Where the step adds exactly one variance component (one random
intercept, or one column of a correlated term) the p-value is from the boundary mixture of
:mod:`.variance_tests` (``0.5 chi2(0) + 0.5 chi2(1)``, Self & Liang 1987; Stram & Lee 1994
for a column of a correlated term); otherwise it is ``chi2(df)``. The ``null`` column names
the distribution used.

With one fit, :func:`anova` tests each fixed-effect term of it (one row per term; a factor
term tests all its columns jointly, by lmerTest's type III hypotheses of
:func:`.ddf.term_contrasts`):

- ``ddf="satterthwaite"`` or ``"kenward-roger"`` (``lmm`` fits): F tests with approximate
  denominator df, as lmerTest's ``anova(m, ddf=...)`` (:mod:`.ddf`); an ML fit is refitted
  by REML first, with a warning;
- ``test="wald"``: the chi-square Wald test ``(L b)' (L V L')^{-1} (L b)`` on ``rank(L)``
  df, from the fit's covariance of the fixed effects;
- ``test="bootstrap"``: the parametric bootstrap of the likelihood-ratio test of each term:
  the model without the term (``beta`` restricted to the null space of ``L``) is fitted,
  responses are simulated from that fit and both models refitted on each, on the study
  runner (:func:`~bayesglmm.analysis.study.run_study`); the p-value
  ``(1 + #{T* >= T}) / (1 + B)`` is reported with its Monte Carlo standard error.

:func:`fixed_effect_tests` gives the t test of each fixed effect of an ``lmm`` fit with
Satterthwaite or Kenward-Roger df (lmerTest's ``summary``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import MethodError
from ..model.design import refuse_extensions, same_response
from ..model.families import DISPERSION_NAMES
from .variance_tests import check_likelihood_fit, one_column


def _terms(fit) -> dict[str, set[str]]:
    """Grouping factor -> columns, per random term (a list per group when several)."""
    out: dict[str, list[set[str]]] = {}
    for t in fit.model.design.random:
        out.setdefault(t.group, []).append(set(t.columns))
    return out


def _nested_terms(small, big) -> list[str]:
    """Random terms of ``small`` that no term of ``big`` on the same group contains."""
    big_terms = _terms(big)
    missing = []
    for t in small.model.design.random:
        if not any(set(t.columns) <= cols for cols in big_terms.get(t.group, [])):
            missing.append(t.spec.label)
    return missing


def _one_component(small, big) -> int | None:
    """``q`` when ``big`` is ``small`` plus one variance component: one more random
    intercept (``q = 1``) or one more column of a correlated term of dimension ``q``;
    else None."""
    if list(small.model.design.fixed_names) != list(big.model.design.fixed_names):
        return None
    s = sorted((t.group, tuple(sorted(t.columns))) for t in small.model.design.random)
    b = sorted((t.group, tuple(sorted(t.columns))) for t in big.model.design.random)
    extra = [x for x in b if x not in s]
    gone = [x for x in s if x not in b]
    if len(extra) != 1 or len(gone) > 1:
        return None
    group, cols = extra[0]
    if not gone:
        return 1 if len(cols) == 1 else None
    g_group, g_cols = gone[0]
    if g_group == group and set(g_cols) < set(cols) and len(cols) - len(g_cols) == 1:
        term = next(t for t in big.model.design.random if t.group == group)
        return len(cols) if term.correlated else 1
    return None


def _check(fits) -> None:
    for i, fit in enumerate(fits):
        check_likelihood_fit(fit, f"fit {i + 1}")
    methods = {f.method for f in fits}
    if len(methods) > 1:
        raise MethodError(
            f"anova compares fits by one method; got {', '.join(f.method for f in fits)}"
        )
    first = fits[0].model.design
    for i, fit in enumerate(fits[1:], start=2):
        d = fit.model.design
        if not same_response(d, first):
            raise MethodError(
                f"fit {i} ({fit.formula!r}, n = {d.n}) and fit 1 ({fits[0].formula!r}, "
                f"n = {first.n}) are not fitted to the same response: anova needs the same data"
            )
    for i in range(1, len(fits)):
        small, big = fits[i - 1], fits[i]
        extra = [n for n in small.model.design.fixed_names if n not in big.model.design.fixed_names]
        terms = _nested_terms(small, big)
        if extra or terms:
            raise MethodError(
                f"fit {i} ({small.formula!r}) is not nested in fit {i + 1} ({big.formula!r}): "
                f"fixed effects {extra} and random terms {terms} of fit {i} are not in fit "
                f"{i + 1}; order the fits from the smallest model to the largest"
            )
        if small.method == "lmm" and small.info["options"].get("reml", True):
            if list(small.model.design.fixed_names) != list(big.model.design.fixed_names):
                raise MethodError(
                    f"fits {i} and {i + 1} differ in their fixed effects and are REML fits, "
                    "whose criteria are not comparable: refit with reml=False"
                )


def anova(
    *fits,
    ddf: str | None = None,
    test: str | None = None,
    n_boot: int | None = None,
    random_seed: int | None = None,
    client=None,
    store=None,
    max_workers: int | None = None,
    progressbar: bool | None = None,
) -> pd.DataFrame:
    """Likelihood-ratio tests between nested fits, or tests of the terms of one fit.

    Parameters
    ----------
    *fits : FitResult
        Two or more fits of the same data by the same likelihood method (``laplace``,
        ``agq``, ``lmm``, ...), from the smallest model to the largest, each nested in the
        next (its fixed-effect names and random terms among the next one's); or one fit,
        whose fixed-effect terms are tested (with ``ddf`` or ``test``).
    ddf : {"satterthwaite", "kenward-roger"}, optional
        One ``lmm`` fit: lmerTest's type III F table with these denominator df.
    test : {"wald", "bootstrap"}, optional
        One likelihood fit: chi-square Wald tests, or the parametric bootstrap of the
        likelihood-ratio test of each term (module docstring).
    n_boot, random_seed, client, store, max_workers, progressbar
        ``test="bootstrap"`` only: replicates per term (default 200) and the study runner's
        options
        (:func:`~bayesglmm.analysis.study.run_study`); the same ``random_seed`` gives the
        same table.

    Returns
    -------
    pandas.DataFrame
        Several fits: one row per fit (indexed by formula) with ``npar``, ``AIC``, ``BIC``,
        ``logLik``, ``deviance``; from the second row on ``statistic``
        (``2 (l_i - l_{i-1})``), ``df``, ``p_value`` and ``null`` (the distribution of the
        p-value: the 50:50 boundary mixture when the step adds one variance component, else
        ``chi2(df)``). One fit: one row per term, with ``SumSq``, ``MeanSq``, ``NumDF``,
        ``DenDF``, ``F``, ``p_value`` (``ddf``); ``statistic``, ``df``, ``p_value``
        (``"wald"``); ``statistic``, ``df``, ``p_value``, ``mc_error``, ``n_boot``,
        ``n_failed``, ``p_value_chi2`` (``"bootstrap"``; the bootstrap statistics per term are
        in ``table.attrs["replicates"]``, the refits' warnings with their counts in
        ``table.attrs["warnings"]``). Notes (a REML refit, the ML refits of a
        bootstrap) are in ``table.attrs["notes"]``.

    Raises
    ------
    MethodError
        Before any work: for no fit, ``ddf`` or ``test`` with several fits, ``ddf`` with a
        fit other than ``lmm`` or with ``test``, an unknown ``ddf`` or ``test``, one fit
        with neither; Bayesian fits (use :func:`bayesglmm.loo`), fits without a
        log-likelihood, fits by different methods or of different data, and fits that are
        not nested (naming the fixed effects and random terms at fault).
    """
    boot = {"n_boot": n_boot, "random_seed": random_seed, "client": client, "store": store,
            "max_workers": max_workers, "progressbar": progressbar}  # fmt: skip
    if not fits:
        raise MethodError("anova needs a fit (one fit: tests of its terms; several: LRTs)")
    for f in fits:
        if getattr(f, "model", None) is not None:
            refuse_extensions(f.model.design, "anova")
    if len(fits) == 1 or ddf is not None or test is not None:
        return _one_fit(fits, ddf, test, boot)
    _check(fits)
    rows = []
    for i, fit in enumerate(fits):
        row = {
            "npar": int(fit.n_params),
            "AIC": fit.aic,
            "BIC": fit.bic,
            "logLik": fit.loglik,
            "deviance": -2.0 * fit.loglik,
            "statistic": np.nan,
            "df": np.nan,
            "p_value": np.nan,
            "null": "",
        }
        if i:
            prev = fits[i - 1]
            stat = max(2.0 * (fit.loglik - prev.loglik), 0.0)
            df = int(fit.n_params - prev.n_params)
            q = _one_component(prev, fit)
            if q is not None:
                null = one_column(q)
                row.update(p_value=null.sf(stat), null=str(null))
            else:
                p = float(stats.chi2.sf(stat, df)) if df > 0 else np.nan
                row.update(p_value=p, null=f"chi2({df})")
            row.update(statistic=stat, df=df)
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index([f.formula for f in fits], name="model"))


# --------------------------------------------------------------------------------------
# one fit: tests of its fixed-effect terms

#: values of ``test=`` for one fit
TESTS = ("wald", "bootstrap")


def _one_fit(fits, ddf, test, boot) -> pd.DataFrame:
    from .ddf import KR_MAX_N, normalize_ddf

    if len(fits) > 1:
        what = "ddf" if ddf is not None else "test"
        raise MethodError(
            f"anova({what}=...) tests the terms of one fit, got {len(fits)} fits; compare "
            "nested fits without ddf= and test="
        )
    fit = fits[0]
    if ddf is not None and test is not None:
        raise MethodError("anova takes ddf= (F tests of an lmm fit) or test=, not both")
    if ddf is None and test is None:
        raise MethodError(
            "anova of one fit tests its fixed-effect terms: give ddf='satterthwaite' or "
            "'kenward-roger' (lmm fits) or test='wald' or 'bootstrap'; to compare nested "
            "fits give two or more"
        )
    if test is not None and test not in TESTS:
        raise MethodError(f"anova test must be one of {TESTS}, got {test!r}")
    if ddf is not None:
        ddf = normalize_ddf(ddf)
        if fit.method != "lmm":
            raise MethodError(
                f"anova(ddf={ddf!r}) is for linear mixed models fitted by method='lmm'; this "
                f"fit is {fit.method!r}: use test='wald' or 'bootstrap'"
            )
    given = sorted(k for k, v in boot.items() if v is not None)
    if test != "bootstrap" and given:
        raise MethodError(f"anova options {given} are for test='bootstrap' only")
    if ddf == "kenward-roger" and fit.nobs > KR_MAX_N:
        raise MethodError(
            f"ddf='kenward-roger' builds dense n x n matrices (as pbkrtest) and is limited to "
            f"{KR_MAX_N} rows; the fit has {fit.nobs}: use ddf='satterthwaite'"
        )
    if fit.kind == "bayesian":
        raise MethodError(
            f"anova tests frequentist fits; this is a Bayesian fit ({fit.method}): compare "
            "Bayesian fits with bg.loo and bg.compare_models"
        )
    if fit.model is None:
        raise MethodError("the fit has no model attached (a result read from a file?): refit")
    if ddf is not None:
        return _ddf_table(fit, ddf)
    if test == "wald":
        return wald_anova(fit)
    check_likelihood_fit(fit)
    if boot["n_boot"] is None:
        boot = {**boot, "n_boot": 200}
    return bootstrap_anova(fit, **boot)


def reml_fit(fit):
    """``fit`` if it is a REML ``lmm`` fit, else its REML refit (with a warning); notes."""
    options = dict(fit.info.get("options") or {})
    if options.get("reml", True):
        return fit, []
    from .._warn import warn

    note = "the ML fit was refitted by REML (reml=True): F tests with approximate df use REML"
    warn(note)
    options["reml"] = True
    options.pop("start", None)
    return fit.model.fit(method="lmm", **options), [note]


def _ddf_table(fit, ddf: str) -> pd.DataFrame:
    from .ddf import ddf_anova, lmm_pieces

    fit, notes = reml_fit(fit)
    table = ddf_anova(lmm_pieces(fit), ddf)
    table.attrs["notes"] = notes
    table.attrs["heading"] = (
        "Type III analysis of variance with "
        + ("Satterthwaite's" if ddf == "satterthwaite" else "Kenward-Roger's")
        + " method"
    )
    return table


def fixed_effect_tests(fit, ddf: str = "satterthwaite") -> pd.DataFrame:
    """t tests of the fixed effects of an ``lmm`` fit with approximate df (lmerTest's
    ``coef(summary(m, ddf=...))``).

    Parameters
    ----------
    fit : FitResult
        A fit by ``method="lmm"`` (an ML fit is refitted by REML, with a warning).
    ddf : {"satterthwaite", "kenward-roger"}
        Satterthwaite df with the model covariance, or Kenward-Roger's adjusted covariance
        (its standard errors) and df.

    Returns
    -------
    pandas.DataFrame
        One row per fixed effect: ``estimate``, ``std_error``, ``df``, ``t``, ``p_value``
        (two-sided, ``t(df)``).
    """
    from .ddf import coefficient_tests, lmm_pieces, normalize_ddf

    ddf = normalize_ddf(ddf)
    if fit.method != "lmm":
        raise MethodError(
            f"fixed_effect_tests is for fits by method='lmm'; this fit is {fit.method!r}"
        )
    if fit.model is None:
        raise MethodError("the fit has no model attached (a result read from a file?): refit")
    refuse_extensions(fit.model.design, "fixed_effect_tests")
    fit, notes = reml_fit(fit)
    table = coefficient_tests(lmm_pieces(fit), ddf)
    table.attrs["notes"] = notes
    return table


def wald_anova(fit) -> pd.DataFrame:
    """Chi-square Wald test of each fixed-effect term from the fit's covariance.

    ``W = (L b)' (L V L')^{-1} (L b)`` on ``rank(L)`` df, with ``L`` the term's type III
    contrasts (:func:`.ddf.term_contrasts`) and ``V`` the covariance behind the fit's
    standard errors (``fit.vcov``: model-based, robust for GEE).
    """
    from .ddf import term_contrasts

    d = fit.model.design
    names = [str(n) for n in d.fixed_names]
    if fit.vcov is None:
        raise MethodError(f"the {fit.method} fit holds no covariance of its fixed effects")
    try:
        V = fit.vcov.block(names)
    except KeyError as err:
        raise MethodError(f"the {fit.method} fit's covariance: {err.args[0]}") from None
    b = fit.fixed_effects.reindex(names).to_numpy(float)
    rows = {}
    for term, L in term_contrasts(d).items():
        LVL = L @ V @ L.T
        w, P = np.linalg.eigh(LVL)
        keep = w > max(np.sqrt(np.finfo(float).eps) * w.max(), 0.0)
        z = (P[:, keep].T @ (L @ b)) / np.sqrt(w[keep])
        stat, df = float(z @ z), int(keep.sum())
        rows[term] = {"statistic": stat, "df": df, "p_value": float(stats.chi2.sf(stat, df))}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "term"
    table.attrs["notes"] = [f"Wald chi-square tests from the {fit.vcov.kind} covariance"]
    return table


# --------------------------------------------------------------------------------------
# parametric bootstrap of the likelihood-ratio test of each term

#: prefix of the columns ``X K`` of a model without a term (``K`` spans the null space of L)
REDUCED_PREFIX = "anova_col"


def _random_text(spec) -> list[str]:
    parts = [f"offset({o})" for o in spec.offsets]
    parts += [f"({t.expr} {'|' if t.correlated else '||'} {t.group})" for t in spec.random]
    return parts


def reduced_model_args(model, L: np.ndarray) -> dict:
    """Formula and data of ``model`` restricted to ``L beta = 0``.

    Columns of ``X`` that ``L`` does not involve are kept (the intercept as ``1``); the
    others, ``X_R``, are replaced by ``X_R K`` with ``K`` an orthonormal basis of the null
    space of ``L_R``, as new data columns ``anova_col0, ...``.
    """
    from scipy.linalg import null_space

    from .variance_tests import response_text

    d = model.design
    X = np.asarray(d.X, dtype=float)
    involved = np.any(np.abs(L) > 0, axis=0)
    names = [str(n) for n in d.fixed_names]
    columns = [X[:, j] for j in np.flatnonzero(~involved) if names[j] != "Intercept"]
    R = np.flatnonzero(involved)
    K = null_space(L[:, R])
    columns += list((X[:, R] @ K).T)
    data = model.data.loc[d.row_labels].copy()
    new = [f"{REDUCED_PREFIX}{j}" for j in range(len(columns))]
    for name, col in zip(new, columns, strict=True):
        data[name] = col
    intercept = "Intercept" in names and not involved[names.index("Intercept")]
    rhs = ["1" if intercept else "0", *new, *_random_text(d.spec)]
    formula = f"{response_text(d.spec)} ~ " + " + ".join(rhs)
    return {"formula": formula, "data": data, "family": d.spec.family, "link": d.spec.link}


def _truth(fit) -> dict:
    disp = None
    for name in DISPERSION_NAMES:
        if name in fit.dispersion.index:
            disp = float(fit.dispersion[name])
    return {
        "fixed_effects": fit.fixed_effects.to_dict(),
        "variance_components": fit.variance_components.to_dict(),
        "correlations": fit.re_correlations.to_dict() or None,
        "dispersion": disp,
    }


def _fit_args(args: dict, data=None):
    from ..glmm import GLMM

    return GLMM(args["formula"], args["data"] if data is None else data,
                family=args["family"], link=args["link"])  # fmt: skip


def bootstrap_replicate(full: dict, reduced: dict, truth: dict, method: str, options: dict,
                        seed: int) -> dict:  # fmt: skip
    """One replicate: simulate from the reduced fit, refit both models.

    Runs on a worker of :func:`~bayesglmm.analysis.study.run_study`. Returns the
    likelihood-ratio statistic (``statistic``) and the texts of the warnings the refits
    raised (``warnings``), collected here rather than printed once per replicate.
    """
    import warnings

    from ..model.simulate import simulate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim = simulate(
            reduced["formula"],
            reduced["data"],
            family=reduced["family"],
            link=reduced["link"],
            random_seed=int(seed),
            trials=reduced.get("trials"),
            **truth,
        )
        big = _fit_args(full, sim).fit(method=method, **options)
        small = _fit_args(reduced, sim).fit(method=method, **options)
    texts = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return {"statistic": max(2.0 * (big.loglik - small.loglik), 0.0), "warnings": texts}


def bootstrap_anova(
    fit,
    n_boot: int = 200,
    random_seed: int | None = None,
    client=None,
    store=None,
    max_workers: int | None = None,
    progressbar: bool | None = None,
) -> pd.DataFrame:
    """Parametric bootstrap likelihood-ratio test of each fixed-effect term of ``fit``.

    For each term (type III contrasts ``L``, :func:`.ddf.term_contrasts`) the model with
    ``L beta = 0`` is fitted by the fit's method and options (``lmm``: by ML, as
    likelihood-ratio tests of fixed effects need), ``T = 2 (l_full - l_reduced)``, and
    ``n_boot`` responses are simulated from the reduced fit and both models refitted on
    each (one task per replicate on the study runner, seeds derived from ``random_seed``).
    ``p = (1 + #{T* >= T}) / (1 + B)`` over the ``B`` replicates that succeeded, with
    Monte Carlo standard error ``sqrt(p (1 - p) / B)``; ``p_value_chi2`` is the
    ``chi2(df)`` p-value of the same ``T``.
    """
    from ..analysis.study.runner import run_tasks
    from ..analysis.study.tasks import Task
    from ..options import integer
    from .ddf import term_contrasts

    n_boot = integer(1)("n_boot", n_boot)
    model = fit.model
    d = model.design
    method = fit.method
    options = dict(fit.info.get("options") or {})
    options.pop("start", None)
    options.pop("progressbar", None)
    notes = []
    if method == "lmm" and options.get("reml", True):
        options["reml"] = False
        fit = model.fit(method=method, **options)
        notes.append("the lmm fits are by maximum likelihood (reml=False) for the LRT")
    full = {"formula": model.formula, "data": model.data.loc[d.row_labels],
            "family": d.spec.family, "link": d.spec.link}  # fmt: skip
    trials = d.trials if d.spec.response.kind == "cbind" else None
    tasks, observed = [], {}
    for term, L in term_contrasts(d).items():
        reduced = reduced_model_args(model, L)
        reduced["trials"] = trials
        small = _fit_args(reduced).fit(method=method, **options)
        observed[term] = (max(2.0 * (fit.loglik - small.loglik), 0.0), L.shape[0])
        kwargs = {"full": full, "reduced": reduced, "truth": _truth(small),
                  "method": method, "options": options}  # fmt: skip
        tasks += [Task(f"{term} #{b}", bootstrap_replicate, kwargs) for b in range(n_boot)]
    study = run_tasks(tasks, store, client, max_workers, random_seed, progressbar,
                      desc="bootstrap anova", warn=False)  # fmt: skip
    rows, replicates, warned = {}, {}, {}
    for term, (stat, df) in observed.items():
        keys = [f"{term} #{b}" for b in range(n_boot)]
        done = [study.results[k] for k in keys if k in study.results]
        replicates[term] = values = np.array([r["statistic"] for r in done], dtype=float)
        for r in done:
            for text in r["warnings"]:
                warned[text] = warned.get(text, 0) + 1
        B = values.size
        p = (1.0 + np.sum(values >= stat)) / (1.0 + B) if B else np.nan
        rows[term] = {
            "statistic": stat,
            "df": int(df),
            "p_value": float(p),
            "mc_error": float(np.sqrt(p * (1 - p) / B)) if B else np.nan,
            "n_boot": int(B),
            "n_failed": int(n_boot - B),
            "p_value_chi2": float(stats.chi2.sf(stat, df)),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "term"
    table.attrs["notes"] = notes
    table.attrs["random_seed"] = study.random_seed
    table.attrs["replicates"] = replicates
    table.attrs["warnings"] = warned
    return table
