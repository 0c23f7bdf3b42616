"""Predictions from any fit, read off the result schema and the model's design.

:func:`predict` (also :meth:`bayesglmm.FitResult.predict`) computes the linear predictor

.. math::

    \\eta = X\\beta + \\text{offset} + \\sum_{t \\in \\text{re\\_form}} Z_t b_t

on the fit's rows or on new data, with all random-effect terms (``re_form=None``), none
(``"~0"`` or NA, lme4's ``re.form = NA``) or those a formula names (``"~(1|Female)"``).

- Likelihood-type fits (every kind but ``"bayesian"``) plug in the estimates: ``beta`` from
  ``fixed_effects`` and ``b`` from ``random_effects`` (conditional modes, BLUPs). Intervals
  (``interval="confidence"``) use ``Var(eta) = x' V_beta x + sum_t z_t' C_t z_t`` with
  ``V_beta`` the fixed-effect block of ``result.vcov`` (the covariance behind the table's
  standard errors: model-based, or GEE's robust sandwich) and ``C_t`` the
  conditional variances ``random_effects["<term> (conditional variance)"]`` (their
  diagonal), treating the estimated ``beta`` and the predicted ``b`` as independent, as
  ``merTools::predictInterval`` does. A level the fit has not seen (``allow_new_levels``)
  is predicted at the population level ``b = 0``, with variance ``z' Sigma z`` from the
  fitted random-effect covariance.
- Bayesian fits compute ``eta`` per posterior draw; a new level gets, per draw, a draw from
  ``N(0, Sigma_draw)`` (brms's ``sample_new_levels = "gaussian"``). The estimate is the
  posterior mean (of ``eta`` or of ``g^{-1}(eta)``), the interval equal-tailed.
  :func:`bayesglmm.ppc.posterior_predictive` simulates replicated responses into an
  ArviZ ``posterior_predictive`` group that ``arviz.plot_ppc`` reads.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import FormulaError, MethodError, OptionError
from ..model.newdata import NewRows, new_rows, training_rows
from ..options import choice, flag, real, seed

TYPES = ("link", "response")
INTERVALS = (None, "confidence")


# --------------------------------------------------------------------------------------
# the model behind a result


def model_of(result, model=None):
    """The :class:`~bayesglmm.GLMM` a result was fitted from (``model`` if given)."""
    if model is None:
        model = result.model
    if model is None:
        raise MethodError(
            "this result holds no model (it was loaded from a file, unpickled or built by hand): "
            "pass model=GLMM(formula, data, ...) with the formula and data it was fitted on"
        )
    design = model.design
    names = [str(n) for n in design.fixed_names]
    if names != [str(n) for n in result.fixed_effects.index] or (model.formula != result.formula):
        raise MethodError(
            f"model= does not match the result: the result is {result.formula!r} with fixed "
            f"effects {list(result.fixed_effects.index)}, the model {model.formula!r} with "
            f"{names}"
        )
    return model


# --------------------------------------------------------------------------------------
# re_form


def _is_na(re_form) -> bool:
    if isinstance(re_form, float) and math.isnan(re_form):
        return True
    if re_form is pd.NA:
        return True
    return isinstance(re_form, str) and re_form.replace(" ", "") in ("~0", "NA", "~-1", "0")


def select_terms(design, re_form) -> list:
    """The random-effect terms of ``design`` that ``re_form`` includes."""
    if re_form is None:
        return list(design.random)
    if _is_na(re_form):
        return []
    if not isinstance(re_form, str):
        raise OptionError(
            f"re_form must be None (all random effects), '~0' or NA (none) or a formula such "
            f"as '~(1|g)', got {re_form!r}"
        )
    from ..model.formula import parse_formula

    text = re_form.strip()
    if not text.startswith("~"):
        raise OptionError(f"re_form {re_form!r} must start with '~', e.g. '~(1|Female)'")
    spec = parse_formula("y " + text, design.family.name)
    known = {(t.spec.expr.replace(" ", ""), t.group): t for t in design.random}
    chosen = []
    for rt in spec.random:
        key = (rt.expr.replace(" ", ""), rt.group)
        if key not in known:
            raise FormulaError(
                f"re_form term {rt.label} is not a random-effect term of the model; its terms "
                f"are {', '.join(t.spec.label for t in design.random)}"
            )
        chosen.append(known[key])
    if spec.fixed.replace(" ", "") not in ("1", "0", "-1", "0+1"):
        raise FormulaError(f"re_form {re_form!r} may name random-effect terms only")
    return [t for t in design.random if any(t is c for c in chosen)]


# --------------------------------------------------------------------------------------
# the schema's random-effect quantities


def term_covariance(result, term) -> np.ndarray:
    """Fitted covariance ``Sigma`` of one term's effects, from the result's table (an AR(1)
    term: ``var R(rho)`` over its time levels)."""
    k = term.n_columns
    var = result.variance_components.reindex(term.component_names).to_numpy(float)
    if getattr(term, "structure", None) == "ar1":
        key = f"{term.group}|{term.columns[0]},{term.columns[1]}"
        rho = float(result.re_correlations.get(key, np.nan))
        S = var[0] * rho ** _lags(k)
        if not np.all(np.isfinite(S)):
            raise MethodError(f"the result has no variance or correlation for term {term.name}")
        return S
    sd = np.sqrt(np.clip(var, 0.0, None))
    S = np.diag(var)
    for a in range(k):
        for b in range(a + 1, k):
            key = f"{term.group}|{term.columns[a]},{term.columns[b]}"
            r = float(result.re_correlations.get(key, 0.0))
            S[a, b] = S[b, a] = r * sd[a] * sd[b]
    if not np.all(np.isfinite(S)):
        raise MethodError(f"the result has no variance for term {term.name}")
    return S


def _lags(k: int) -> np.ndarray:
    return np.abs(np.subtract.outer(np.arange(k), np.arange(k)))


def _frame(result, key: str, term, what: str) -> np.ndarray | None:
    frame = result.random_effects.get(key)
    if frame is None:
        return None
    arr = frame.reindex(index=term.levels, columns=term.columns).to_numpy(float)
    if np.isnan(arr).any():
        raise MethodError(f"the result's {what} of term {term.name} do not match its levels")
    return arr


def _vcov_beta(result, design) -> np.ndarray:
    """The fixed-effect block of the result's coefficient covariance (``result.vcov``)."""
    if result.vcov is None:
        raise MethodError(
            f"interval='confidence' needs the covariance of the fixed effects (result.vcov), "
            f"which this {result.kind} fit ({result.method}) does not have"
        )
    try:
        return result.vcov.block(design.fixed_names)
    except KeyError as err:
        raise MethodError(f"interval='confidence': {err.args[0]}") from None


# --------------------------------------------------------------------------------------
# prediction


def _check(type, interval, level, allow_new_levels=False, random_seed=None):
    """The arguments of a prediction, by the validators of :mod:`bayesglmm.options`."""
    choice(*TYPES)("type", type)
    choice("confidence", none=True)("interval", interval)
    real(0, 1)("level", level)
    flag()("allow_new_levels", allow_new_levels)
    seed("random_seed", random_seed)


def _check_effects_available(result, terms, re_form) -> None:
    """Refuse a ``re_form`` naming random effects that the fit does not predict.

    A marginal fit (GEE) has no random effects: the default ``re_form=None`` predicts at
    the population level, a formula naming terms is refused. A fit storing no predicted
    effects (the moment methods) is refused with the two ways to predict.
    """
    if not terms:
        return
    if result.kind == "marginal":
        if re_form is None:
            return
        raise MethodError(
            f"re_form={re_form!r} asks for random effects, but a {result.method} fit is "
            "marginal and has none; use re_form='~0' (population-level predictions) or a "
            "conditional method such as 'laplace' or 'agq'"
        )
    if result.kind == "bayesian":
        return
    missing = [t.name for t in terms if t.name not in result.random_effects]
    if missing:
        raise MethodError(
            f"this {result.method} fit stores no predicted random effects (term(s) "
            f"{', '.join(missing)}): predict at the population level with re_form='~0', or "
            "predict the random effects from the fit with bg.ebp(result)"
        )


def prediction_rows(result, newdata, re_form, allow_new_levels, model=None):
    """(model, rows) for a prediction; refuses unseen levels unless allowed."""
    model = model_of(result, model)
    design = model.design
    terms = select_terms(design, re_form)
    _check_effects_available(result, terms, re_form)
    if result.kind == "marginal":
        terms = []  # population-averaged: no random effects, no group columns needed
    if newdata is None:
        return model, training_rows(design, terms)
    rows = new_rows(design, model.data, newdata, terms)
    for t in rows.terms:
        if getattr(t, "structure", None) == "relmat" and rows.new_levels.get(t.group):
            unseen = rows.new_levels[t.group]
            raise MethodError(
                f"newdata has levels of {t.group!r} that are not in its relationship matrix "
                f"({unseen[:6]}{' ...' if len(unseen) > 6 else ''}); their relationship to "
                "the fitted levels is unknown: add them to K and refit, or use re_form='~0'"
            )
    if rows.new_levels and not allow_new_levels:
        listed = "; ".join(
            f"{g!r}: {v[:6]}{' ...' if len(v) > 6 else ''}" for g, v in rows.new_levels.items()
        )
        raise MethodError(
            f"newdata has levels the fit has not seen ({listed}); pass allow_new_levels=True "
            "to predict them from the random-effect distribution, or re_form='~0'"
        )
    return model, rows


def predict(
    result,
    newdata: pd.DataFrame | None = None,
    re_form=None,
    allow_new_levels: bool = False,
    type: str = "response",
    interval: str | None = None,
    level: float = 0.95,
    model=None,
    random_seed=None,
):
    """Predictions of a fit on its own rows or on ``newdata``.

    Parameters
    ----------
    result : FitResult
    newdata : pandas.DataFrame, optional
        Rows to predict; None predicts the fit's rows (lme4's fitted values).
    re_form : None, str or NA
        None: all random effects; ``"~0"`` or NA: none (population level); a formula such
        as ``"~(1|Female)"``: the terms it names.
    allow_new_levels : bool
        Predict levels the fit has not seen (else a :class:`MethodError` names them):
        at ``b = 0`` for non-Bayesian fits, drawn per posterior draw for Bayesian fits.
    type : {"response", "link"}
        Mean response ``g^{-1}(eta)`` or linear predictor ``eta``.
    interval : {None, "confidence"}
        Add ``std_error``, ``lower`` and ``upper`` (see the module docstring).
    level : float
        Interval probability.
    model : GLMM, optional
        The model the result was fitted from; needed after :meth:`FitResult.load`.
    random_seed : int, optional
        Seeds the draws for new levels of Bayesian fits.

    Returns
    -------
    pandas.Series or pandas.DataFrame
        A Series of predictions indexed by row label; a DataFrame with columns
        ``estimate, std_error, lower, upper`` when ``interval`` is given.
    """
    _check(type, interval, level, allow_new_levels, random_seed)
    model, rows = prediction_rows(result, newdata, re_form, allow_new_levels, model)
    link = model.design.family.link
    if result.kind == "bayesian":
        eta = linear_predictor_draws(result, model.design, rows, random_seed)
        values = eta if type == "link" else link.linkinv(eta)
        est = values.mean(axis=0)
        if interval is None:
            return pd.Series(est, index=rows.labels, name="estimate")
        q = np.quantile(values, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return pd.DataFrame(
            {
                "estimate": est,
                "std_error": values.std(axis=0, ddof=1),
                "lower": q[0],
                "upper": q[1],
            },
            index=rows.labels,
        )
    eta = point_linear_predictor(result, model.design, rows)
    est = eta if type == "link" else link.linkinv(eta)
    if interval is None:
        return pd.Series(est, index=rows.labels, name="estimate")
    from scipy import stats

    se = np.sqrt(linear_predictor_variance(result, model.design, rows))
    z = stats.norm.ppf((1 + level) / 2)
    lo, hi = eta - z * se, eta + z * se
    if type == "response":
        lo, hi = link.linkinv(lo), link.linkinv(hi)
        se = se * link.mu_eta(eta)  # delta method
    return pd.DataFrame(
        {
            "estimate": est,
            "std_error": se,
            "lower": np.minimum(lo, hi),
            "upper": np.maximum(lo, hi),
        },
        index=rows.labels,
    )


def point_linear_predictor(result, design, rows: NewRows) -> np.ndarray:
    """``X beta + offset + sum Z b`` at the estimates; unseen levels at ``b = 0``."""
    beta = result.fixed_effects.reindex(design.fixed_names).to_numpy(float)
    eta = rows.X @ beta + rows.offset
    for t, idx, Xz in zip(rows.terms, rows.index, rows.Xz, strict=True):
        B = _frame(result, t.name, t, "random effects")
        if B is None:
            if result.kind == "marginal":
                continue  # a marginal fit predicts at the population level only
            raise MethodError(f"the result has no predicted random effects for term {t.name}")
        seen = idx >= 0
        eta[seen] += np.einsum("ij,ij->i", Xz[seen], B[idx[seen]])
    return eta


def linear_predictor_variance(result, design, rows: NewRows) -> np.ndarray:
    """``x' V_beta x + sum_t z_t' C_t z_t`` (``z' Sigma z`` for unseen levels)."""
    V = _vcov_beta(result, design)
    var = np.einsum("ij,jk,ik->i", rows.X, V, rows.X)
    for t, idx, Xz in zip(rows.terms, rows.index, rows.Xz, strict=True):
        if result.kind == "marginal" and t.name not in result.random_effects:
            continue
        C = _frame(result, f"{t.name} (conditional variance)", t, "conditional variances")
        seen = idx >= 0
        if seen.any():
            if C is None:
                raise MethodError(
                    f"interval='confidence' needs the conditional variances of {t.name} "
                    f"(random_effects['{t.name} (conditional variance)']), which this "
                    f"{result.kind} fit ({result.method}) does not store; use re_form='~0'"
                )
            var[seen] += np.einsum("ij,ij->i", Xz[seen] ** 2, C[idx[seen]])
        if (~seen).any():
            S = term_covariance(result, t)
            var[~seen] += np.einsum("ij,jk,ik->i", Xz[~seen], S, Xz[~seen])
    return var


# --------------------------------------------------------------------------------------
# Bayesian fits: per draw


def posterior_array(idata, name: str) -> np.ndarray:
    post = idata.posterior
    if name in post:
        return np.asarray(post[name].values, dtype=float)
    if "constant_data" in idata.groups() and name in idata.constant_data:
        value = np.asarray(idata.constant_data[name].values, dtype=float)
        shape = (post.sizes["chain"], post.sizes["draw"])
        return np.broadcast_to(value, shape + value.shape).copy()
    raise MethodError(f"the posterior has no variable {name!r}")


def _effect_draws(idata, term) -> np.ndarray:
    """Draws of a term's effects, shape (S, n_levels, k), levels in the design's order."""
    da = idata.posterior[term.name]
    arr = np.asarray(da.values, dtype=float)
    S = arr.shape[0] * arr.shape[1]
    level_dim = da.dims[2]
    if level_dim in da.coords:
        labels = [str(v) for v in da.coords[level_dim].values]
        if labels != list(term.levels):
            pos = {lv: i for i, lv in enumerate(labels)}
            arr = np.take(arr, [pos[lv] for lv in term.levels], axis=2)
    return arr.reshape(S, term.n_levels, term.n_columns)


def _covariance_draws(result, design, term) -> np.ndarray:
    """Draws (S, k, k) of a term's covariance, from the sampled sds and correlations."""
    from .draws import derived_draws

    class _M:  # derived_draws reads model.design only
        pass

    holder = _M()
    holder.design = design
    draws = derived_draws(holder, result.idata)
    k = term.n_columns
    var = np.stack([draws[f"var({c})"].ravel() for c in term.component_names], axis=-1)
    if getattr(term, "structure", None) == "ar1":
        rho = draws[f"cor({term.group}|{term.columns[0]},{term.columns[1]})"].ravel()
        return var[:, :1, None] * rho[:, None, None] ** _lags(k)[None]
    sd = np.sqrt(var)
    Sig = np.zeros((var.shape[0], k, k))
    for a in range(k):
        Sig[:, a, a] = var[:, a]
        for b in range(a + 1, k):
            key = f"cor({term.group}|{term.columns[a]},{term.columns[b]})"
            r = draws[key].ravel() if key in draws else 0.0
            Sig[:, a, b] = Sig[:, b, a] = r * sd[:, a] * sd[:, b]
    return Sig


def linear_predictor_draws(result, design, rows: NewRows, random_seed=None) -> np.ndarray:
    """Draws (S, n) of ``eta``; unseen levels drawn from ``N(0, Sigma)`` per draw."""
    idata = result.idata
    if idata is None:
        raise MethodError("a Bayesian result without draws (idata) cannot predict")
    cols = []
    for term, sl in design.fixed_terms.items():
        arr = posterior_array(idata, term)
        cols.append(arr.reshape(arr.shape[0] * arr.shape[1], sl.stop - sl.start))
    S = int(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"])
    beta = np.hstack(cols) if cols else np.zeros((S, 0))
    eta = beta @ rows.X.T + rows.offset[None, :]
    rng = np.random.default_rng(random_seed)
    for t, idx, Xz in zip(rows.terms, rows.index, rows.Xz, strict=True):
        B = _effect_draws(idata, t)
        seen = idx >= 0
        eta[:, seen] += np.einsum("ij,sij->si", Xz[seen], B[:, idx[seen], :])
        if (~seen).any():
            codes = -idx[~seen] - 1  # one draw per unseen level, shared by its rows
            root = _psd_root(_covariance_draws(result, design, t))
            z = rng.standard_normal((S, int(codes.max()) + 1, t.n_columns))
            b_new = np.einsum("sab,slb->sla", root, z)
            eta[:, ~seen] += np.einsum("ij,sij->si", Xz[~seen], b_new[:, codes, :])
    return eta


def _psd_root(Sig: np.ndarray) -> np.ndarray:
    """A square root ``R R' = Sigma`` per draw, also for singular draws (a variance at 0)."""
    w, U = np.linalg.eigh(Sig)
    return U * np.sqrt(np.clip(w, 0.0, None))[:, None, :]
