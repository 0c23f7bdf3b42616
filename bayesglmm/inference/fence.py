"""Model selection among candidate models by the fence (Jiang, Rao, Gu & Nguyen 2008).

:func:`fence` is the fence of Jiang, Rao, Gu & Nguyen (2008, *Ann. Statist.* 36,
1669-1692) over candidate formulas: with ``Q(M) = -log L(M)`` (maximum likelihood) and
``M_f`` the full model, the models with ``Q(M) - Q(M_f) <= c sigma(M, M_f)`` are in the
fence and the one with fewest parameters is selected (ties: smallest ``Q``). The adaptive
fence chooses ``c`` by the parametric bootstrap under the full fit. Every fit is a task of
:func:`~bayesglmm.analysis.study.run_study` (process pool or Dask, resumable with a store).

The conditional AIC of every candidate is
:func:`bayesglmm.inference.selection.information_criteria`.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import MethodError, OptionError
from ..model.design import same_response
from ..model.families import DISPERSION_NAMES
from .selection import LINEAR, information_criteria

#: likelihood methods :func:`fence` fits with
FENCE_METHODS = ("laplace", "agq", "lmm")
#: a model whose ``Q(M) - Q(M_f)`` exceeds ``c sigma`` by no more than this (optimizer
#: noise on the log-likelihood scale) is in the fence
FENCE_TOL = 1e-6
#: ways of estimating ``sigma(M, M_f)``
SIGMAS = ("chi2", "bootstrap")


@dataclass
class FenceResult:
    """What :func:`fence` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per candidate (indexed by formula, in the order given): ``npar``,
        ``loglik``, ``Q`` (``-loglik``), ``Q_diff`` (``Q - Q(full)``), ``sigma``,
        ``bound`` (``c * sigma``), ``in_fence``, ``selected``, ``converged``, and the
        information criteria ``mAIC``, ``BIC``, ``cAIC``, ``df_conditional``,
        ``cAIC_naive`` (:func:`information_criteria`; for a candidate without random
        effects all three AICs are its AIC), ``cAIC_method`` and the fit's ``warnings``.
    selected : str
        The formula of the selected model.
    full : str
        The formula of the full model.
    c : float
        The constant used (chosen by the bootstrap when adaptive).
    sigma : str
        How ``sigma(M, M_f)`` was estimated (``"chi2"`` or ``"bootstrap"``).
    adaptive : pandas.DataFrame or None
        For the adaptive fence: one row per ``c`` of the grid with ``p_star`` (the frequency
        of the most selected model over the bootstrap samples), ``model`` (that model) and
        ``chosen`` (True at the ``c`` used).
    n_boot : int
        Bootstrap samples used (0 without bootstrap).
    n_boot_failed : int
        Bootstrap samples dropped because a candidate's fit failed on them.
    random_seed : int or None
    """

    table: pd.DataFrame
    selected: str
    full: str
    c: float
    sigma: str
    adaptive: pd.DataFrame | None = None
    n_boot: int = 0
    n_boot_failed: int = 0
    random_seed: int | None = None
    bootstrap_Q: np.ndarray | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        cols = ["npar", "Q", "Q_diff", "bound", "in_fence", "selected"]
        with pd.option_context("display.width", 120, "display.max_colwidth", 60):
            body = self.table[cols].to_string(float_format=lambda v: f"{v:.4f}")
        kind = "adaptive fence" if self.adaptive is not None else "fence"
        return (
            f"FenceResult({kind}, c = {self.c:.4g}, sigma = {self.sigma}, "
            f"n_boot = {self.n_boot})\n  selected: {self.selected}\n{body}"
        )


def _fit_candidate(
    formula: str, data, family: str, link, method: str, options: dict, seed: int
) -> dict:
    """Fit one candidate (a study task): its log-likelihood, parameters and criteria."""
    from ..glmm import GLMM
    from .variance_tests import glm_loglik

    model = GLMM(formula, data, family=family, link=link)
    row = {"formula": formula, "converged": True, "warnings": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if not model.design.random:
            null = glm_loglik(model, method, options)
            ll, npar = null.loglik, null.n_params
            aic = -2.0 * ll + 2.0 * npar
            row.update(
                loglik=ll,
                npar=npar,
                mAIC=aic,
                BIC=-2.0 * ll + math.log(model.design.n) * npar,
                cAIC=aic,
                cAIC_naive=aic,
                df_conditional=float(npar),
                cAIC_method=LINEAR,
            )
        else:
            fit = model.fit(method, **options)
            ic = information_criteria(fit)
            row.update(
                loglik=float(fit.loglik),
                npar=int(fit.n_params),
                converged=bool(fit.converged),
                mAIC=ic.mAIC,
                BIC=ic.BIC,
                cAIC=ic.cAIC,
                cAIC_naive=ic.cAIC_naive,
                df_conditional=ic.df_conditional,
                cAIC_method=ic.method,
                truth=_truth(fit),
            )
    texts = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    row["warnings"] = "; ".join(texts) if texts else None
    return row


def _loglik_only(model, method: str, options: dict) -> float:
    """The maximized log-likelihood of ``model`` by ``method`` (bootstrap refits: the
    Laplace fit skips its Hessian, which only standard errors need)."""
    from .variance_tests import glm_loglik

    if not model.design.random:
        return float(glm_loglik(model, method, options).loglik)
    if method == "laplace":
        from ..frequentist import blas_threads
        from ..frequentist.laplace import check_model, fit_laplace_design

        check_model(model.design, "laplace")
        with blas_threads(1):
            _, opt = fit_laplace_design(
                model.design,
                maxiter=int(options.get("max_iter", 1000)),
                hessian=False,
                curvature=options.get("curvature", "fisher"),
                solver=options.get("solver", "auto"),
                random_seed=options.get("random_seed"),
            )
        return float(-0.5 * opt.fun)
    return float(model.fit(method, **options).loglik)


def _fence_replicate(
    full: str,
    data,
    family: str,
    link,
    truth: dict,
    candidates: list,
    method: str,
    options: dict,
    seed: int,
) -> np.ndarray:
    """One parametric bootstrap sample under the full fit (a study task): the maximized
    log-likelihood of every candidate (NaN where a fit fails)."""
    from ..glmm import GLMM
    from ..model.simulate import simulate

    sim = simulate(full, data, family=family, link=link, random_seed=int(seed), **truth)
    out = np.full(len(candidates), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, formula in enumerate(candidates):
            try:
                model = GLMM(formula, sim, family=family, link=link)
                out[i] = _loglik_only(model, method, options)
            except Exception:  # noqa: BLE001, S112 - a failed refit drops this sample
                continue
    return out


def _candidate_models(candidates, data, family, link):
    from ..glmm import GLMM

    if isinstance(candidates, str) or not hasattr(candidates, "__iter__"):
        raise OptionError(f"candidates must be a list of formulas, got {type(candidates).__name__}")
    formulas = [str(c) for c in candidates]
    if len(formulas) < 2:
        raise OptionError(f"fence needs at least 2 candidate formulas, got {len(formulas)}")
    if len(set(formulas)) < len(formulas):
        dup = next(f for f in formulas if formulas.count(f) > 1)
        raise OptionError(f"candidate {dup!r} is given twice")
    if not isinstance(data, pd.DataFrame):
        raise OptionError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    models = [GLMM(f, data, family=family, link=link) for f in formulas]
    first = models[0].design
    for f, m in zip(formulas[1:], models[1:], strict=True):
        d = m.design
        if not same_response(d, first):
            raise MethodError(
                f"candidate {f!r} (n = {d.n}) and candidate {formulas[0]!r} (n = {first.n}) "
                "do not model the same response rows: the fence compares fits of the same data"
            )
    return formulas, models


def _npar(design) -> int:
    from ..frequentist.covariance import CovarianceFactor

    return int(design.p + CovarianceFactor(design).n_theta + int(design.family.has_dispersion))


def _nested_in(small, big) -> tuple[list, list]:
    """Fixed effects and random terms of ``small`` that ``big`` lacks."""
    fixed = [n for n in small.fixed_names if n not in big.fixed_names]
    terms = []
    for t in small.random:
        ok = any(
            u.group == t.group
            and set(t.columns) <= set(u.columns)
            and (u.correlated or not t.correlated)
            for u in big.random
        )
        if not ok:
            terms.append(t.spec.label)
    return fixed, terms


def _full_model(formulas, models, full) -> int:
    designs = [m.design for m in models]
    if full is not None:
        if full not in formulas:
            raise OptionError(f"full={full!r} is not one of the candidates")
        idx = formulas.index(full)
    else:
        npars = [_npar(d) for d in designs]
        idx = int(np.argmax(npars))
    for f, d in zip(formulas, designs, strict=True):
        fixed, terms = _nested_in(d, designs[idx])
        if fixed or terms:
            raise MethodError(
                f"candidate {f!r} is not nested in the full model {formulas[idx]!r}: its fixed "
                f"effects {fixed} and random terms {terms} are not in the full model"
            )
    return idx


def _truth(fit) -> dict:
    truth = {
        "fixed_effects": fit.fixed_effects.to_dict(),
        "variance_components": fit.variance_components.to_dict(),
    }
    if len(fit.re_correlations):
        truth["correlations"] = fit.re_correlations.to_dict()
    for name in DISPERSION_NAMES:
        if name in fit.dispersion.index:
            truth["dispersion"] = float(fit.dispersion[name])
    return truth


def _select(q, npar, sigma, c, tol=FENCE_TOL) -> tuple[int, np.ndarray]:
    """Index of the model the fence selects and the in-fence mask, for one data set."""
    q = np.asarray(q, dtype=float)
    diff = q - q[_full_index(npar)]
    inside = diff <= c * sigma + tol
    order = np.lexsort((q, npar))  # fewest parameters, then smallest Q
    for i in order:
        if inside[i]:
            return int(i), inside
    return _full_index(npar), inside  # unreachable: the full model is always inside


def _full_index(npar) -> int:
    return int(np.argmax(npar))


def fence(
    candidates,
    data: pd.DataFrame,
    family: str = "binomial",
    link: str | None = None,
    method: str = "laplace",
    c: float = 1.0,
    sigma: str = "chi2",
    full: str | None = None,
    adaptive: bool = False,
    n_boot: int = 100,
    n_grid: int = 50,
    fit_options: dict | None = None,
    store=None,
    client=None,
    max_workers: int | None = None,
    random_seed: int | None = None,
    progressbar: bool | None = False,
) -> FenceResult:
    """Select among candidate GLMMs by the fence of Jiang, Rao, Gu & Nguyen (2008).

    Parameters
    ----------
    candidates : list of str
        Formulas (fixed effects and random-effect terms) on the same data, each nested in
        the full model; a formula without random terms is fitted as a GLM by IRLS.
    data : pandas.DataFrame
    family, link : str
        As :class:`~bayesglmm.GLMM`.
    method : {"laplace", "agq", "lmm"}
        Likelihood method of every fit; ``lmm`` (Gaussian) fits by maximum likelihood
        (``reml=False``: REML criteria are not comparable across fixed effects).
    c : float
        The fence constant (not adaptive).
    sigma : {"chi2", "bootstrap"}
        ``sigma(M, M_f)``: ``"chi2"``, ``sqrt((npar(M_f) - npar(M)) / 2)``, the standard
        deviation of ``Q(M) - Q(M_f)`` when ``M`` is correct (half a chi-square on the
        difference in parameters; boundary effects ignored); ``"bootstrap"``, the standard
        deviation of ``Q(M) - Q(M_f)`` over the parametric bootstrap samples.
    full : str, optional
        The full model; default the candidate with most parameters. Every candidate must
        be nested in it (fixed-effect columns and random terms).
    adaptive : bool
        Choose ``c`` by the adaptive fence: ``n_boot`` samples simulated from the full fit,
        every candidate refitted on each; for ``c`` on a grid of ``n_grid`` points over
        ``(0, c_max]`` (``c_max``: the smallest ``c`` at which every candidate is in the
        fence in every sample) ``p*(c)`` is the frequency of the most selected model. At
        both ends ``p*`` tends to a value fixed by construction (small ``c``: the full model;
        large ``c``: the smallest model), so those stretches are skipped: ``c`` is the
        smallest grid point maximizing ``p*(c)`` between the first local minimum of
        ``p*`` from the left and the last one from the right (Jiang et al. 2008, Section 3:
        the peak in the middle).
    n_boot, n_grid : int
        Bootstrap samples and grid points (``adaptive`` or ``sigma="bootstrap"``).
    fit_options : dict, optional
        Options of every fit (e.g. ``{"n_quad": 9}`` for ``agq``).
    store, client, max_workers, progressbar
        As :func:`~bayesglmm.analysis.study.run_study`: the candidate fits and the bootstrap
        samples are tasks (stored under ``<store>/candidates`` and ``<store>/bootstrap``).
    random_seed : int, optional
        Seed of the bootstrap; the same seed gives the same result bitwise.

    Returns
    -------
    FenceResult
        The candidate table, the selected formula and, when adaptive, ``p*(c)`` on the grid.

    Raises
    ------
    OptionError
        Fewer than 2 candidates, repeated candidates, bad options.
    MethodError
        Candidates not nested in the full model, candidates on different response rows, a
        method without a maximized likelihood, a failed fit of a candidate.
    """
    from ..options import flag, integer, real, resolve_options
    from ..options import seed as seed_option

    if method not in FENCE_METHODS:
        raise OptionError(f"fence method must be one of {FENCE_METHODS}, got {method!r}")
    if sigma not in SIGMAS:
        raise OptionError(f"sigma must be one of {SIGMAS}, got {sigma!r}")
    c = real(0)("c", c)
    adaptive = flag()("adaptive", adaptive)
    n_boot = integer(2)("n_boot", n_boot)
    n_grid = integer(2)("n_grid", n_grid)
    random_seed = seed_option("random_seed", random_seed)
    options = dict(fit_options or {})
    if method == "lmm":
        if options.get("reml", False):
            raise OptionError(
                "fence fits by maximum likelihood: reml=True gives REML criteria that are not "
                "comparable across fixed effects (leave reml unset)"
            )
        options["reml"] = False
    if "progressbar" in _known(method):
        options.setdefault("progressbar", False)
    resolve_options(method, options)
    formulas, models = _candidate_models(candidates, data, family, link)
    full_idx = _full_model(formulas, models, full)
    npar = np.array([_npar(m.design) for m in models])
    # the full model must have the most parameters for _select's convention
    if np.sum(npar == npar[full_idx]) > 1 or npar[full_idx] != npar.max():
        raise MethodError(
            f"the full model {formulas[full_idx]!r} must have more parameters than every "
            "other candidate (two candidates with its number of parameters are the same model)"
        )
    family_name, link_name = models[0].design.family.name, models[0].design.family.link.name

    # ---- the candidate fits: one task each
    from ..analysis.study.runner import run_tasks
    from ..analysis.study.tasks import Task

    tasks = [
        Task(
            f"candidate={i}",
            _fit_candidate,
            {
                "formula": f,
                "data": data,
                "family": family_name,
                "link": link_name,
                "method": method,
                "options": options,
            },
        )
        for i, f in enumerate(formulas)
    ]
    study = run_tasks(
        tasks, _sub(store, "candidates"), client, max_workers, 0, progressbar,
        desc="fence fits", warn=False,
    )  # fmt: skip
    if study.failed:
        key = study.failed[0]
        err = study.table.set_index("key").loc[key, "error"]
        raise MethodError(
            f"the fit of candidate {formulas[int(key.split('=')[1])]!r} failed: {err}"
        )
    rows = [dict(study.results[t.key]) for t in tasks]
    truths = [row.pop("truth", None) for row in rows]
    table = pd.DataFrame(rows).set_index("formula")
    table.index.name = "model"
    for i, f in enumerate(formulas):
        if int(table.loc[f, "npar"]) != int(npar[i]):
            raise MethodError(
                f"candidate {f!r}: {table.loc[f, 'npar']} parameters, expected {npar[i]}"
            )
    Q = -table["loglik"].to_numpy(float)

    # ---- bootstrap under the full fit
    boot_Q = None
    n_failed = 0
    used_seed = None
    if adaptive or sigma == "bootstrap":
        if truths[full_idx] is None:
            raise MethodError("the full model has no random effects: nothing to bootstrap")
        truth = truths[full_idx]  # the full fit's estimates
        btasks = [
            Task(
                f"boot={r}",
                _fence_replicate,
                {
                    "full": formulas[full_idx],
                    "data": data,
                    "family": family_name,
                    "link": link_name,
                    "truth": truth,
                    "candidates": formulas,
                    "method": method,
                    "options": options,
                },
            )
            for r in range(n_boot)
        ]
        bstudy = run_tasks(
            btasks, _sub(store, "bootstrap"), client, max_workers, random_seed, progressbar,
            desc="fence bootstrap", warn=False,
        )  # fmt: skip
        used_seed = bstudy.random_seed
        lls = np.array([bstudy.results.get(t.key, np.full(len(formulas), np.nan)) for t in btasks])
        ok = np.all(np.isfinite(lls), axis=1)
        n_failed = int((~ok).sum())
        boot_Q = -lls[ok]
        if boot_Q.shape[0] < 2:
            raise MethodError(
                f"only {boot_Q.shape[0]} of {n_boot} bootstrap samples could be refitted by "
                "every candidate"
            )

    if sigma == "chi2":
        sig = np.sqrt(np.maximum(npar[full_idx] - npar, 0) / 2.0)
    else:
        diffs = boot_Q - boot_Q[:, [full_idx]]
        sig = diffs.std(axis=0, ddof=1)

    grid_frame = None
    if adaptive:
        c, grid_frame = _adaptive_c(boot_Q, npar, sig, n_grid, formulas)
    chosen, inside = _select(Q, npar, sig, c)
    table["Q"] = Q
    table["Q_diff"] = Q - Q[full_idx]
    table["sigma"] = sig
    table["bound"] = c * sig
    table["in_fence"] = inside
    table["selected"] = np.arange(len(formulas)) == chosen
    cols = [
        *("npar", "loglik", "Q", "Q_diff", "sigma", "bound", "in_fence", "selected"),
        *("converged", "mAIC", "BIC", "cAIC", "df_conditional", "cAIC_naive", "cAIC_method"),
        "warnings",
    ]
    table = table[cols]
    table["npar"] = table["npar"].astype(int)
    return FenceResult(
        table=table,
        selected=formulas[chosen],
        full=formulas[full_idx],
        c=float(c),
        sigma=sigma,
        adaptive=grid_frame,
        n_boot=0 if boot_Q is None else int(boot_Q.shape[0]),
        n_boot_failed=n_failed,
        random_seed=used_seed,
        bootstrap_Q=boot_Q,
    )


def _known(method: str):
    from ..options import known_options

    return known_options(method)


def _sub(store, name: str):
    return None if store is None else os.path.join(os.fspath(store), name)


def _interior(p_star: np.ndarray) -> tuple[int, int]:
    """First and last grid index between the trivial ends of ``p*(c)``: the descent from
    small ``c`` (where the full model is selected by construction) ends at the first local
    minimum from the left, the ascent to large ``c`` (where the smallest model is) starts at
    the last local minimum from the right."""
    lo = 0
    while lo + 1 < p_star.size and p_star[lo + 1] <= p_star[lo]:
        lo += 1
    hi = p_star.size - 1
    while hi - 1 > lo and p_star[hi - 1] <= p_star[hi]:
        hi -= 1
    return lo, max(hi, lo)


def _adaptive_c(boot_Q, npar, sig, n_grid: int, formulas) -> tuple[float, pd.DataFrame]:
    """``c`` maximizing ``p*(c)`` over the grid (see :func:`fence`) and the grid's table."""
    full = _full_index(npar)
    diffs = boot_Q - boot_Q[:, [full]]
    pos = sig > 0
    ratio = np.where(pos[None, :], diffs / np.where(pos, sig, 1.0)[None, :], 0.0)
    c_max = float(np.max(ratio)) if np.any(pos) else 0.0
    if not c_max > 0:
        c_max = 1.0
    grid = np.linspace(0.0, c_max, n_grid + 1)[1:]
    n = boot_Q.shape[0]
    p_star, best = [], []
    for cc in grid:
        picks = [_select(boot_Q[b], npar, sig, cc)[0] for b in range(n)]
        counts = np.bincount(picks, minlength=len(npar))
        top = int(np.argmax(counts))
        p_star.append(counts[top] / n)
        best.append(formulas[top])
    p_star = np.asarray(p_star)
    lo, hi = _interior(p_star)
    k = int(lo + np.argmax(p_star[lo : hi + 1]))
    frame = pd.DataFrame(
        {"c": grid, "p_star": p_star, "model": best, "chosen": np.arange(len(grid)) == k}
    )
    return float(grid[k]), frame
