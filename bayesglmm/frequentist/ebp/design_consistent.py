"""Model-assisted (design-consistent) empirical best prediction of domain means.

Jiang & Lahiri (2006, JASA 101, 301-311) predict a finite-population domain mean from a
complex survey so that the predictor converges, with respect to the sampling design and
whatever the mixed model, to the customary design-consistent estimator as the domain's
sample grows. Their construction conditions on the domain's survey-weighted summary rather
than on every response. The form implemented here (the paper's exact equations were not
available when this was written; this is the construction its abstract describes, with the
Gaussian case equal to You & Rao's (2002) pseudo-EBLUP with ``beta`` from the fit):

with normalized survey weights ``w~_ij = w_ij / sum_j w_ij`` of the sampled units of area
``i``, the direct (Hajek) estimator ``ybar_iw = sum_j w~_ij y_ij`` (``y`` on the response
scale: a proportion for the binomial), and a random intercept ``v_i ~ N(0, sigma_v^2)``,

.. math::

    m_i(v) = \\sum_j \\tilde w_{ij}\\, h(x_{ij}'\\beta + v), \\qquad
    s_i^2(v) = \\sum_j \\tilde w_{ij}^2\\, \\phi V(h(x_{ij}'\\beta + v)) / n_{ij},

    \\bar y_{iw} \\mid v_i \\approx N(m_i(v_i),\\, s_i^2(v_i)),

and the model-assisted EBP (MEBP) of the domain mean ``theta_i = m_i(v_i)`` (the
survey-weighted mean of the model means) is its conditional mean given the summary,

.. math::

    \\hat\\theta_i = E_{\\hat\\psi}\\{m_i(v) \\mid \\bar y_{iw}\\}
      = \\frac{\\int m_i(v)\\, N(\\bar y_{iw}; m_i(v), s_i^2(v))\\, \\phi(v; \\hat\\sigma_v^2)
                   \\, dv}
             {\\int N(\\bar y_{iw}; m_i(v), s_i^2(v))\\, \\phi(v; \\hat\\sigma_v^2)\\, dv},

computed by adaptive Gauss-Hermite quadrature per area. As the area's sample grows,
``s_i^2 -> 0`` and the conditional law of ``v`` concentrates at the root ``v_i*`` of the
survey-weighted estimating equation ``m_i(v) = ybar_iw`` (reported as ``v_solution``), so
that ``theta-hat_i -> m_i(v_i*) = ybar_iw``: the Hajek estimator, design-consistent whether
or not the model holds. For the Gaussian family with the identity link it is exactly
``x~_iw' beta + gamma_i (ybar_iw - x~_iw' beta)``, ``gamma_i = sigma_v^2 / (sigma_v^2 +
sigma_e^2 sum_j w~_ij^2)`` (You & Rao 2002). The parameters ``psi-hat`` are the fit's (any
method); they need only converge to some limit for the design consistency.

MSPE, under the model (``mspe=``): ``"g1g2"`` (default), ``g1`` the conditional variance
``Var{m_i(v) | ybar_iw}`` at ``psi-hat`` plus ``g2`` the delta-method term over ``beta``
(``d' V_beta d``, ``d`` the central-difference gradient of ``theta-hat_i`` in ``beta``,
``V_beta`` from ``result.vcov``), first order; ``"jackknife"``, the delete-one-area
jackknife of Jiang, Lahiri & Wan (2002), second order, with ``m`` refits in-process. Both
measure the prediction error under the model, not the design MSE when the model fails.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

from ...errors import DataError, MethodError
from ...options import choice, integer, real
from ...results.predict import model_of
from .params import psi_hat

__all__ = ["mebp"]

#: Newton iterations for the conditional mode of each area's effect
MODE_ITER = 200


def _survey_weights(survey_weights, model) -> np.ndarray:
    """The survey weights on the design's rows; one-line errors for bad input."""
    data, design = model.data, model.design
    if isinstance(survey_weights, str):
        if survey_weights not in data.columns:
            raise DataError(f"survey_weights: no column {survey_weights!r} in the data")
        w = data[survey_weights]
        name = repr(survey_weights)
    else:
        w = survey_weights
        name = "array"
    try:
        w = np.asarray(w, dtype=float).ravel()
    except (TypeError, ValueError):
        raise DataError(f"survey_weights ({name}) must be numeric") from None
    if len(w) == len(data):
        keep = ~pd.Index(data.index).isin(list(design.dropped_rows))
        w = w[keep]
    elif len(w) != design.n:
        raise DataError(
            f"survey_weights ({name}) has {len(w)} values; the data has {len(data)} rows "
            f"({design.n} fitted)"
        )
    if np.isnan(w).any():
        raise DataError(f"survey_weights ({name}) has NaN at position {int(np.isnan(w).argmax())}")
    if not np.isfinite(w).all():
        raise DataError(f"survey_weights ({name}) must be finite")
    if (w <= 0).any():
        raise DataError(
            f"survey_weights ({name}) must be positive (got {w.min():g} at position "
            f"{int(w.argmin())})"
        )
    return w


class _Areas:
    """Per-area summaries and the MEBP integrals (one random intercept)."""

    def __init__(self, design, w, n_quad):
        self.design = design
        term = design.random[0]
        self.level, self.L = term.index, term.n_levels
        self.wsum = np.bincount(self.level, w, self.L)
        self.wt = w / self.wsum[self.level]  # normalized within area
        fam = design.family
        trials = design.trials
        self.ntr = np.ones(design.n) if trials is None else trials
        self.yr = design.y / self.ntr  # response scale
        self.ybar = np.bincount(self.level, self.wt * self.yr, self.L)
        self.count = np.bincount(self.level, minlength=self.L)
        self.fam = fam
        self.x, self.hw = np.polynomial.hermite.hermgauss(n_quad)

    def _m_s2(self, beta, disp, v):
        """m_i(v) and s_i^2(v) at effects ``v`` (areas x points)."""
        d = self.design
        eta = (d.X @ beta + d.offset)[:, None] + v[self.level]
        mu = self.fam.link.linkinv(eta)
        phi = self.fam.scale(1.0 if disp is None else disp)
        var = phi * self.fam.variance(mu, 1.0 if disp is None else disp) / self.ntr[:, None]
        k = v.shape[1]
        m = np.zeros((self.L, k))
        s2 = np.zeros((self.L, k))
        np.add.at(m, self.level, self.wt[:, None] * mu)
        np.add.at(s2, self.level, self.wt[:, None] ** 2 * var)
        return m, np.maximum(s2, 1e-300)

    def _logpost(self, beta, disp, s2v, v):
        m, s2 = self._m_s2(beta, disp, v)
        r = self.ybar[:, None] - m
        return -0.5 * r**2 / s2 - 0.5 * np.log(s2) - 0.5 * v**2 / s2v

    def _mode(self, beta, disp, s2v):
        """Conditional mode and curvature of each area's effect (damped Newton with
        central differences; vectorized over areas)."""
        v = np.zeros(self.L)
        h = 1e-4
        for _ in range(MODE_ITER):
            pts = v[:, None] + np.array([-h, 0.0, h])[None, :]
            f = self._logpost(beta, disp, s2v, pts)
            g = (f[:, 2] - f[:, 0]) / (2 * h)
            c = (f[:, 2] - 2 * f[:, 1] + f[:, 0]) / h**2
            step = np.where(c < 0, -g / np.where(c < 0, c, -1.0), np.sign(g) * 0.5)
            step = np.clip(step, -1.0, 1.0)
            v = v + step
            if np.abs(step).max() < 1e-9:
                break
        pts = v[:, None] + np.array([-h, 0.0, h])[None, :]
        f = self._logpost(beta, disp, s2v, pts)
        c = (f[:, 2] - 2 * f[:, 1] + f[:, 0]) / h**2
        # a flat curvature (no information) falls back to the prior's
        curv = np.where(c < -1e-12, -c, 1.0 / s2v)
        return v, curv

    def moments(self, beta, disp, s2v):
        """(E(theta | ybar_w), Var(theta | ybar_w), conditional mode of v)."""
        vm, curv = self._mode(beta, disp, s2v)
        sd = 1.0 / np.sqrt(curv)
        pts = vm[:, None] + np.sqrt(2.0) * sd[:, None] * self.x[None, :]
        lw = self._logpost(beta, disp, s2v, pts) + np.log(self.hw)[None, :] + self.x[None, :] ** 2
        lw -= lw.max(1, keepdims=True)
        wq = np.exp(lw)
        wq /= wq.sum(1, keepdims=True)
        m, _ = self._m_s2(beta, disp, pts)
        mean = (wq * m).sum(1)
        var = np.clip((wq * m**2).sum(1) - mean**2, 0.0, None)
        return mean, var, vm

    def solve_equation(self, beta):
        """Root of ``m_i(v) = ybar_iw`` (NaN when ybar is at the boundary of the mean's
        range, e.g. 0 or 1 for a proportion), by bisection on the monotone ``m_i``."""
        lo, hi = np.full(self.L, -30.0), np.full(self.L, 30.0)
        mlo = self._m_s2(beta, None, lo[:, None])[0][:, 0]
        mhi = self._m_s2(beta, None, hi[:, None])[0][:, 0]
        ok = (self.ybar > np.minimum(mlo, mhi)) & (self.ybar < np.maximum(mlo, mhi))
        up = mhi >= mlo
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            mm = self._m_s2(beta, None, mid[:, None])[0][:, 0]
            below = (mm < self.ybar) == up
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return np.where(ok, 0.5 * (lo + hi), np.nan)


def _refit_without(result, model, drop_level: int):
    """The fit's method and options on the design's rows outside one level; its
    parameters as a :class:`Psi` (None when the refit fails or loses a fixed effect)."""
    import warnings

    from ...options import known_options

    design = model.design
    data = model.data
    keep = ~pd.Index(data.index).isin(list(design.dropped_rows))
    rows = data.loc[keep]
    sub = rows.loc[design.random[0].index != drop_level]
    given = (result.info or {}).get("options") or {}
    allowed = set(known_options(result.method)) - {"progressbar"}
    opts = {k: v for k, v in given.items() if k in allowed and v is not None}
    if "progressbar" in known_options(result.method):
        opts["progressbar"] = False
    try:
        m = model.__class__(
            model.formula, sub, family=design.family.name, link=design.family.link.name
        )
        if list(m.design.fixed_names) != list(design.fixed_names):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = m.fit(result.method, **opts)
        return psi_hat(fit, m.design)
    except Exception:  # noqa: BLE001 - a failed refit is left out and counted
        return None


def mebp(
    result,
    survey_weights,
    model=None,
    mspe: str = "g1g2",
    n_quad: int = 40,
    level: float = 0.95,
) -> pd.DataFrame:
    """Model-assisted empirical best predictors of domain (area) means, design-consistent
    under informative sampling and model failure (module docstring).

    Parameters
    ----------
    result : FitResult
        A fit of a GLMM with one random intercept ``(1|area)`` (any family and link, any
        method); its ``beta``, ``sigma_v^2`` and dispersion are plugged in.
    survey_weights : str or array-like
        Survey (design) weights ``w_ij > 0`` of the sampled units: a column of the model's
        data or one value per row of it (or per fitted row). Not the model's prior weights
        (``GLMM(..., weights=)``, refused here).
    model : GLMM, optional
        Needed after :meth:`FitResult.load`.
    mspe : {"g1g2", "jackknife"}
        ``"g1g2"``: ``g1 + g2`` (first order, module docstring). ``"jackknife"``: the
        delete-one-area jackknife of Jiang, Lahiri & Wan (2002), ``g1(psi-hat) - (m-1)/m
        sum_u {g1(psi-hat_-u) - g1(psi-hat)} + (m-1)/m sum_u (theta-hat_i(psi-hat_-u) -
        theta-hat_i)^2``, each ``psi-hat_-u`` refitted in-process by the fit's method and
        options without area ``u`` (``m`` refits; second-order unbiased under the model,
        refits that fail are left out and counted in ``attrs["n_jackknife_failed"]``).
        Both are MSPEs under the model: under model failure they do not measure the
        design MSE (benchmarks/bench_mebp.py).
    n_quad : int
        Adaptive Gauss-Hermite points per area.
    level : float
        Level of the normal prediction intervals ``estimate +- z sqrt(mspe)``.

    Returns
    -------
    pandas.DataFrame
        One row per area: ``group``, ``level``, ``n`` (sampled rows), ``weight_sum``,
        ``direct`` (the Hajek estimator ``ybar_iw``), ``estimate`` (the MEBP), ``mspe``
        (the chosen estimate), ``g1``, ``g2`` (NaN without ``result.vcov``), ``lower``,
        ``upper``, ``v_mode`` (the conditional mode of ``v_i`` given ``ybar_iw``) and
        ``v_solution`` (the root of the survey-weighted equation ``m_i(v) = ybar_iw``),
        ``mspe_g1g2`` and ``mspe_jackknife`` (NaN unless ``mspe="jackknife"``).
    """
    from . import _check_fit

    _check_fit(result)
    choice("g1g2", "jackknife")("mspe", mspe)
    n_quad = integer(2)("n_quad", n_quad)
    level = real(0, 1)("level", level)
    model = model_of(result, model)
    design = model.design
    if getattr(design, "weights", None) is not None:
        raise MethodError(
            "mebp does not take the model's prior weights (weights="
            f"{design.weights_name}); survey weights go in survey_weights="
        )
    if getattr(design, "random", None) and any(
        getattr(t, "structure", None) for t in design.random
    ):
        raise MethodError("mebp does not take structured random effects")
    if len(design.random) != 1 or design.random[0].n_columns != 1:
        raise MethodError("mebp needs one random intercept (1|area)")
    w = _survey_weights(survey_weights, model)
    psi = psi_hat(result, design)
    s2v = float(max(psi.covs[0][0, 0], 1e-10))
    areas = _Areas(design, w, n_quad)
    mean, g1, vm = areas.moments(psi.beta, psi.dispersion, s2v)
    g2 = np.full(areas.L, np.nan)
    if result.vcov is not None and result.vcov.kind != "posterior":
        names = list(result.vcov.names)
        fixed = [str(n) for n in design.fixed_names]
        if all(n in names for n in fixed):
            idx = [names.index(n) for n in fixed]
            V = result.vcov.matrix[np.ix_(idx, idx)]
            p = len(fixed)
            D = np.zeros((areas.L, p))
            for j in range(p):
                e = np.zeros(p)
                e[j] = 1e-5 * max(1.0, abs(psi.beta[j]))
                up = areas.moments(psi.beta + e, psi.dispersion, s2v)[0]
                dn = areas.moments(psi.beta - e, psi.dispersion, s2v)[0]
                D[:, j] = (up - dn) / (2 * e[j])
            g2 = np.einsum("ij,jk,ik->i", D, V, D)
    first = g1 + np.nan_to_num(g2)
    jack = np.full(areas.L, np.nan)
    n_failed = 0
    if mspe == "jackknife":
        est_u, g1_u = [], []
        for u in range(areas.L):
            psi_u = _refit_without(result, model, u)
            if psi_u is None:
                n_failed += 1
                continue
            s2u = float(max(psi_u.covs[0][0, 0], 1e-10))
            mu_u, g1u, _ = areas.moments(psi_u.beta, psi_u.dispersion, s2u)
            est_u.append(mu_u)
            g1_u.append(g1u)
        if len(est_u) < 2:
            raise MethodError(f"mspe='jackknife': {n_failed} of {areas.L} refits failed")
        k = len(est_u)
        est_u, g1_u = np.array(est_u), np.array(g1_u)
        jack = g1 - (k - 1) / k * (g1_u - g1).sum(0) + (k - 1) / k * ((est_u - mean) ** 2).sum(0)
        jack = np.clip(jack, 0.0, None)
    mspe_value = first if mspe == "g1g2" else jack
    z = NormalDist().inv_cdf(0.5 + level / 2)
    term = design.random[0]
    out = pd.DataFrame(
        {
            "group": term.group,
            "level": list(term.levels),
            "n": areas.count,
            "weight_sum": areas.wsum,
            "direct": areas.ybar,
            "estimate": mean,
            "mspe": mspe_value,
            "g1": g1,
            "g2": g2,
            "lower": mean - z * np.sqrt(mspe_value),
            "upper": mean + z * np.sqrt(mspe_value),
            "v_mode": vm,
            "v_solution": areas.solve_equation(psi.beta),
            "mspe_g1g2": first,
            "mspe_jackknife": jack,
        }
    )
    out.attrs.update(
        {
            "estimator": "model-assisted EBP given the survey-weighted area mean",
            "mspe": {
                "g1g2": "g1 + g2 (first order; g2 over beta)",
                "jackknife": "delete-one-area jackknife (Jiang, Lahiri & Wan 2002)",
            }[mspe],
            "n_jackknife_failed": n_failed if mspe == "jackknife" else None,
            "n_quad": n_quad,
            "level": level,
        }
    )
    return out
