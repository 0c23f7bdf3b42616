"""Empirical best prediction of mixed effects (Jiang & Lahiri 2001; Jiang 2003).

For a mixed effect ``zeta = h(x' beta + z' b)`` (``h`` the identity on the link scale or
the inverse link, e.g. a group's success probability) the best predictor under squared
error is the conditional mean

.. math::

    \\tilde\\zeta(\\psi) = E_\\psi(\\zeta \\mid y)
      = \\frac{\\int h(x'\\beta + z'b)\\, f(y \\mid b)\\, \\phi(b; \\Sigma)\\, db}
             {\\int f(y \\mid b)\\, \\phi(b; \\Sigma)\\, db},

and the *empirical* best predictor plugs in the estimates ``psi-hat`` of ``psi = (beta,
Sigma, dispersion)``, read from any fit's result schema. Its mean squared prediction error
(MSPE) is estimated (``mspe=``)

- ``"second-order"`` (default): ``g1 - B1 + g2 + g3``, unbiased to ``o(1/m)`` for ``m``
  groups: Prasad & Rao (1990) ``g1 + g2 + 2 g3`` for the nested-error model, Jiang &
  Lahiri (2001) for GLMMs (:mod:`.mspe`);
- ``"g1g2"``: ``g1 + g2`` (first order; understates the MSPE with few groups);
- ``"bootstrap"``: the parametric bootstrap with the bias correction of ``g1`` (Butar &
  Lahiri 2003; Hall & Maiti 2006), its replicates run on the study runner
  (:mod:`.bootstrap`).

The second-order estimate is never below ``g1 + g2`` (it falls below only near the boundary
of the parameter space, where the expansion fails). Prediction intervals are normal on the
scale of the prediction, ``estimate +- z_{(1+level)/2} sqrt(MSPE)`` with the chosen MSPE.
Predictions are per level (``by="level"``: each random effect on the link scale and the
level's mean response over its rows, ``mean_i h(x_i' beta + z_i' b)``) or per row.

The integrals are computed (:mod:`.engines`)

- by adaptive Gauss-Hermite quadrature per level (product rule, centred at the conditional
  mode and scaled by its curvature) when every random-effect term has the same grouping
  factor, so that the levels are independent given ``y`` (up to 3 effects per level);
- by self-normalized importance sampling otherwise (crossed or nested factors), from a
  multivariate t proposal at the joint conditional mode with the Laplace covariance
  (seeded; the Monte Carlo standard error is reported).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

from ...errors import MethodError, OptionError
from ...method_checks import check_memory, rule_memory
from ...model.design import refuse_extensions
from ...model.families import DISPERSION_NAMES
from ...options import choice, integer, real, seed
from ...results.predict import model_of
from .engines import (
    MAX_Q,
    MAX_STEP,
    MODE_ITER,
    PROPOSAL_DF,
    Importance,
    Psi,
    Quadrature,
    Targets,
    _log_normal,
    _row_loglik,
    _score_weight,
)
from .mspe import delta_terms, expected_g3, g1_bias
from .params import is_gaussian_identity, level_targets, param_map, psi_hat, row_targets

__all__ = ["ebp"]

METHODS = ("auto", "quadrature", "importance")
MSPE = ("second-order", "g1g2", "bootstrap")
BY = ("level", "row")

# names kept for callers of the single-module version
_Quadrature, _Importance, _psi_hat = Quadrature, Importance, psi_hat
_ = (MAX_Q, MAX_STEP, MODE_ITER, PROPOSAL_DF, Psi, Targets, _log_normal, _row_loglik)
_ = _score_weight


def _check_fit(result) -> None:
    from ...results.result import FitResult

    if not isinstance(result, FitResult):
        text = repr(result)
        text = text if len(text) <= 40 else text[:37] + "..."
        raise OptionError(
            f"ebp: result must be a FitResult (from GLMM.fit or FitResult.load), got a "
            f"{type(result).__name__} ({text})"
        )


def _targets(model, newdata, re_form, by):
    if by == "row":
        return row_targets(model, newdata, re_form)
    return level_targets(model)


def ebp(
    result,
    newdata: pd.DataFrame | None = None,
    re_form=None,
    type: str = "response",
    method: str = "auto",
    n_quad: int | None = None,
    n_draws: int = 4000,
    random_seed=None,
    model=None,
    by: str | None = None,
    mspe: str = "second-order",
    level: float = 0.95,
    n_boot: int | None = None,
    store=None,
    client=None,
    max_workers: int | None = None,
) -> pd.DataFrame:
    """Empirical best predictors ``E(zeta | y)`` at the fitted parameters, with their MSPE
    and prediction intervals.

    Parameters
    ----------
    result : FitResult
        Any fit; its estimates are plugged in (``fixed_effects``, variance components,
        dispersion) and ``result.vcov``, when present, gives ``g2`` and ``g3``.
    newdata : pandas.DataFrame, optional
        Rows defining ``x`` and ``z`` of each ``zeta`` (implies ``by="row"``). A level the
        fit has not seen is predicted from the random-effect distribution.
    re_form : None, str or NA
        With ``by="row"``: the random-effect terms in ``zeta`` (as
        :func:`bayesglmm.predict.predict`); the conditioning on ``y`` always uses the whole
        model.
    type : {"response", "link"}
        ``zeta = g^{-1}(x'beta + z'b)`` (a probability, a rate) or the linear combination.
        Random effects are always on the link scale.
    method : {"auto", "quadrature", "importance"}
        ``auto``: quadrature for one grouping factor, importance sampling otherwise.
    n_quad : int, optional
        Gauss-Hermite points per dimension (default 30, 12 and 8 for 1, 2, 3 effects).
    n_draws : int
        Importance draws.
    random_seed : int, optional
        Seeds the importance sampler and the bootstrap.
    model : GLMM, optional
        Needed after :meth:`FitResult.load`.
    by : {"level", "row"}, optional
        ``"level"`` (default without ``newdata``): per level of each grouping factor, each
        random effect and the level's mean response over its rows (``mean(h(x_i'beta +
        z_i'b))``, the area mean); ``"row"``: one prediction per row.
    mspe : {"second-order", "g1g2", "bootstrap"}
        The MSPE estimator (module docstring); default ``"second-order"``.
    level : float
        Level of the prediction intervals ``estimate +- z_{(1+level)/2} sqrt(mspe)``
        (normal, on the scale of the prediction).
    n_boot : int, optional
        Bootstrap replicates (``mspe="bootstrap"`` only; default 200).
    store, client, max_workers
        As :func:`~bayesglmm.study.run_study`, for the bootstrap. The bootstrap refits on
        the study runner, which this layer does not import: ``mspe="bootstrap"`` is served
        by :func:`bayesglmm.analysis.study.ebp_bootstrap.ebp` (same arguments) and refused
        here with a :class:`~bayesglmm.errors.MethodError` saying so.

    Returns
    -------
    pandas.DataFrame
        One row per prediction. With ``by="level"``: ``group``, ``level``, ``quantity``
        (``"random_effect"`` or ``"mean"``) and ``component``; then ``estimate`` (the
        EBP), ``mspe``, ``lower``, ``upper``, ``g1``, ``g2``, ``g3``, ``g1_bias`` (``B1``;
        ``g2``, ``g3`` and ``B1`` are NaN without ``result.vcov``; ``B1`` is not computed
        with ``mspe="g1g2"``), ``mspe_g1g2``,
        ``mspe_second_order`` (and ``mspe_bootstrap``, ``mspe_bootstrap_naive`` with the
        bootstrap), ``mcse`` (importance sampling) and ``conditional_mode`` (the plug-in at
        the conditional modes). ``attrs`` records the method, the MSPE estimator, the
        parameters in ``g2``/``g3`` and how ``g3`` was computed.
    """
    return predict(
        result,
        newdata,
        re_form,
        type,
        method,
        n_quad,
        n_draws,
        random_seed,
        model,
        by,
        mspe,
        level,
        n_boot,
        store,
        client,
        max_workers,
    )[0]


def predict(
    result,
    newdata=None,
    re_form=None,
    type="response",
    method="auto",
    n_quad=None,
    n_draws=4000,
    random_seed=None,
    model=None,
    by=None,
    mspe="second-order",
    level=0.95,
    n_boot=None,
    store=None,
    client=None,
    max_workers=None,
    bootstrap=None,
):
    """:func:`ebp` and the bootstrap's specification; ``bootstrap(spec, g1)`` runs it and
    returns ``(corrected, naive, notes)`` (given by the study runner's caller)."""
    _check_fit(result)
    choice("response", "link")("type", type)
    choice(*METHODS)("method", method)
    choice(*MSPE)("mspe", mspe)
    by = choice(*BY, none=True)("by", by)
    level = real(0, 1)("level", level)
    n_quad = integer(1, none=True)("n_quad", n_quad)  # None: the default; 0 is refused
    n_draws = integer(100)("n_draws", n_draws)
    random_seed = seed("random_seed", random_seed)
    if mspe == "bootstrap":
        if bootstrap is None:
            raise MethodError(
                "mspe='bootstrap' refits on the study runner: call "
                "bayesglmm.analysis.study.ebp_bootstrap.ebp (the package's bg.ebp)"
            )
        n_boot = integer(2)("n_boot", 200 if n_boot is None else n_boot)
        max_workers = integer(1, none=True)("max_workers", max_workers)
    else:
        for name, value in (("n_boot", n_boot), ("store", store), ("client", client)):
            if value is not None:
                raise OptionError(f"{name} is for mspe='bootstrap' only (mspe={mspe!r})")
        if max_workers is not None:
            raise OptionError(f"max_workers is for mspe='bootstrap' only (mspe={mspe!r})")
    if by is None:
        by = "row" if newdata is not None else "level"
    if by == "level" and (newdata is not None or re_form is not None):
        raise OptionError("by='level' predicts the fit's levels: newdata and re_form need by='row'")
    model = model_of(result, model)
    refuse_extensions(model.design, "ebp")
    design = model.design
    if not design.random:
        raise MethodError("ebp needs a model with random effects")
    one_factor = len({t.group for t in design.random}) == 1
    if method == "auto":
        method = "quadrature" if one_factor else "importance"
    if method == "quadrature" and not one_factor:
        raise MethodError(
            "quadrature needs one grouping factor (levels independent given y); this model has "
            f"{sorted({t.group for t in design.random})}: use method='importance'"
        )
    targets, frame = _targets(model, newdata, re_form, by)
    if mspe == "bootstrap" and any((idx < 0).any() for idx in targets.rows.index):
        raise MethodError("mspe='bootstrap' predicts seen levels only (newdata has new levels)")
    psi = psi_hat(result, design)
    h = (lambda e: e) if type == "link" else design.family.link.linkinv
    n_rows = targets.rows.n
    if method == "quadrature":
        k = sum(t.n_columns for t in design.random)
        if k > 3:
            raise MethodError(f"quadrature handles up to 3 effects per level, this model has {k}")
        n_quad = n_quad or {1: 30, 2: 12, 3: 8}[k]
        levels = sum(t.n_levels for t in design.random)
        need = 8 * n_quad**k * (levels + n_rows + design.n) + rule_memory(n_quad)
        check_memory(need, f"ebp with n_quad={n_quad}")
        engine = Quadrature(design, targets, psi, n_quad)
    else:
        check_memory(16 * n_draws * (design.q + n_rows), f"ebp with n_draws={n_draws}")
        engine = Importance(design, targets, psi, n_draws, np.random.default_rng(random_seed))
    mean, second, mcse = engine.moments(psi, h)
    g1 = np.clip(second - mean**2, 0.0, None)
    n_t = targets.n
    g2 = g3 = b1 = np.full(n_t, np.nan)
    pm = param_map(result, design, psi, one_factor)
    g3_kind = None
    if pm is not None:
        _, g2, g3 = delta_terms(engine, psi, h, pm)
        g3_kind = "at the observed response"
        if mspe != "g1g2":  # g1g2 only: no second-order terms (their cost is the Hessian)
            gauss = method == "quadrature" and is_gaussian_identity(design)
            if gauss and pm.V.shape[0] > pm.p:
                exact = expected_g3(engine, psi, h, pm)
                if exact is not None:
                    g3, g3_kind = exact, "expected over the response (Prasad-Rao)"
            b1 = g1_bias(engine, psi, h, pm, g1)
    out = frame.copy() if by == "level" else frame
    out["estimate"] = mean
    first = g1 + g2
    # never below g1 + g2 (reached only near the boundary, where the expansion fails)
    second_order = np.fmax(g1 - b1 + g2 + g3, first)
    cols = {"mspe_g1g2": first, "mspe_second_order": second_order}
    boot_note = {}
    if mspe == "bootstrap":
        spec = _boot_spec(result, model, psi, newdata, re_form, by, type, method, n_quad, n_draws)
        corrected, naive, boot_note = bootstrap(spec, g1, n_boot, store, client, max_workers)
        cols["mspe_bootstrap"] = corrected
        cols["mspe_bootstrap_naive"] = naive
    chosen = cols[
        {"g1g2": "mspe_g1g2", "second-order": "mspe_second_order"}.get(mspe, "mspe_bootstrap")
    ]
    z = NormalDist().inv_cdf(0.5 + level / 2)
    out["mspe"] = chosen
    out["lower"] = mean - z * np.sqrt(chosen)
    out["upper"] = mean + z * np.sqrt(chosen)
    out["g1"], out["g2"], out["g3"], out["g1_bias"] = g1, g2, g3, b1
    for name, v in cols.items():
        out[name] = v
    out["mcse"] = mcse
    out["conditional_mode"] = engine.mode_eta(psi, h)
    if by == "level":
        out = out.reset_index(drop=True)
    out.attrs.update(
        {
            "method": method,
            "mspe": mspe,
            "by": by,
            "level": level,
            "interval": "estimate +- z sqrt(mspe), normal on the scale of the prediction",
            "g2_parameters": [] if pm is None else pm.names,
            "parameter_covariance": None if pm is None else pm.source,
            "g3": g3_kind,
            **engine.notes,
            **boot_note,
        }
    )
    return out, spec if mspe == "bootstrap" else None


def _boot_spec(result, model, psi, newdata, re_form, by, type, method, n_quad, n_draws):
    from ...options import known_options

    fm = result.method
    given = (result.info or {}).get("options") or {}
    keep = set(known_options(fm)) - {"progressbar", "random_seed"}
    opts = {k: v for k, v in given.items() if k in keep and v is not None}
    if "progressbar" in known_options(fm):
        opts["progressbar"] = False
    disp = None
    for name in DISPERSION_NAMES:
        if name in result.dispersion.index:
            disp = float(result.dispersion[name])
    design = model.design
    return {
        "model_class": model.__class__,
        "formula": model.formula,
        "data": model.data,
        "family": design.family.name,
        "link": design.family.link.name,
        "truth": {
            "fixed_effects": result.fixed_effects.to_dict(),
            "variance_components": result.variance_components.to_dict(),
            "correlations": result.re_correlations.to_dict() or None,
            "dispersion": disp,
        },
        "method": fm,
        "fit_options": opts,
        "seeded": "random_seed" in known_options(fm),
        "psi": psi,
        "newdata": newdata,
        "re_form": re_form,
        "by": by,
        "type": type,
        "method_ebp": method,
        "n_quad": n_quad,
        "n_draws": n_draws,
    }
