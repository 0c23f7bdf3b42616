"""Residuals of a fit, one per row in the data's order.

``pearson``, ``deviance`` and ``response`` residuals are computed from the fitted means
(``fit.predict(type="response")``, conditional on the predicted random effects or at the
population level) with the family's own variance and unit deviance.

``quantile`` residuals are the simulated, randomized quantile residuals of Dunn & Smyth
(1996), the scaled residuals of R's DHARMa: responses are simulated from the fitted model,
and the residual of row ``i`` is the randomized probability integral transform

    r_i = (#{s : y_si < y_i} + U_i #{s : y_si = y_i}) / S,    U_i ~ Uniform(0, 1),

uniform on (0, 1) under the model for integer responses too. The simulations are

- likelihood fits: ``n_sim`` responses per row at the estimates, conditional on the
  predicted random effects (``conditional=True``) or with new effects ``b ~ N(0, Sigma)``
  drawn per level from the fitted covariance of each term (``conditional=False``);
- Bayesian fits: one response per posterior draw (the posterior predictive), with the
  draws' own effects (``conditional=True``) or new effects drawn from each draw's
  covariance (``conditional=False``); ``n_sim`` is then the number of posterior draws;
- marginal (GEE) fits: from the marginal mean, with no random effects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import MethodError, OptionError
from ..model.design import refuse_extensions
from ..model.newdata import training_rows
from ..results.predict import (
    linear_predictor_draws,
    model_of,
    point_linear_predictor,
    posterior_array,
    term_covariance,
)

#: the kinds of residual
KINDS = ("quantile", "pearson", "deviance", "response")


@dataclass
class Residuals:
    """Residuals of a fit.

    Attributes
    ----------
    values : ndarray (n,)
        One residual per row of the fit, in the data's order.
    kind : str
        One of :data:`KINDS`.
    fitted : ndarray (n,)
        The fitted mean response of each row (``trials * mu`` for a binomial response).
    labels : pandas.Index
        The rows' labels in the data.
    conditional : bool
        Whether the residuals are conditional on the predicted random effects.
    observed : ndarray (n,)
        The response.
    simulated : ndarray (S, n) or None
        The simulated responses (``kind="quantile"`` only).
    discrete : bool
        The response is a count.
    groups : dict of str to ndarray
        Grouping factor -> the level label (str) of each row, one entry per grouping factor
        of the model's random terms, in formula order; empty without random terms.
    n_sim : int or None
        The number of simulated responses per row behind ``kind="quantile"`` residuals
        (``simulated.shape[0]``: ``n_sim`` for point fits, the number of posterior draws for
        Bayesian fits); None for the other kinds.
    random_effects : dict of str to RandomEffectPrediction
        Per random term (``"1|herd"``): its predicted effects (conditional modes, BLUPs or
        posterior means), their conditional variances where the fit computed them, and the
        fitted covariance of the term; empty for marginal (GEE) fits.
    """

    values: np.ndarray
    kind: str
    fitted: np.ndarray = field(repr=False)
    labels: pd.Index = field(repr=False)
    conditional: bool
    observed: np.ndarray = field(repr=False)
    simulated: np.ndarray | None = field(default=None, repr=False)
    discrete: bool = True
    groups: dict = field(default_factory=dict, repr=False)
    n_sim: int | None = None
    random_effects: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.values)

    def to_series(self) -> pd.Series:
        """The residuals as a Series indexed by the rows' labels."""
        return pd.Series(self.values, index=self.labels, name=f"{self.kind} residual")

    def tests(self, group=None) -> pd.DataFrame:
        """Tests on the quantile residuals and the predicted random effects.

        Uniformity, dispersion, zero-inflation and outliers, then one per-group dispersion
        row (``dispersion[<factor>]``) per grouping factor and one normality row
        (``re_normality[<term>]`` or ``re_normality[<term>:<column>]``) per column of each
        random term (see :mod:`bayesglmm.diagnostics.residual_tests`).

        Parameters
        ----------
        group : str, list of str or None
            The grouping factors given per-group dispersion rows: all of them (None), one,
            several, or none (an empty list).

        Returns
        -------
        pandas.DataFrame
            Columns ``test, statistic, p_value, note``, one row per test.
        """
        from .residual_tests import residual_tests

        return residual_tests(self, group=group)

    def group_dispersion(self, group: str) -> pd.DataFrame:
        """The per-level dispersion table behind the ``dispersion[<group>]`` test.

        Parameters
        ----------
        group : str
            A grouping factor of the model.

        Returns
        -------
        pandas.DataFrame
            One row per level: ``level``, ``n`` (rows), ``statistic`` (observed over mean
            simulated sum of squares around the simulated means) and ``p_value`` (share of
            simulations at least as dispersed, one-sided).
        """
        from .residual_tests import group_dispersion_table

        return group_dispersion_table(self, group)

    def plot(self, kind: str = "all", group=None, ax=None, **kw):
        """Diagnostic plots of the residuals (:func:`bayesglmm.diagnostics.plots.plot_residuals`).

        Parameters
        ----------
        kind : str
            Which plot: ``"all"`` or one of the panels ``plot_residuals`` draws.
        group : str, optional
            A grouping factor (a key of :attr:`groups`) for the per-group panels.
        ax : matplotlib Axes, optional
            Where to draw (a new figure when None).
        **kw
            Passed to ``plot_residuals``.

        Returns
        -------
        What ``plot_residuals`` returns (the figure or axes).
        """
        from .plots import plot_residuals

        return plot_residuals(self, kind=kind, group=group, ax=ax, **kw)


@dataclass
class RandomEffectPrediction:
    """The predicted effects of one random term, as :class:`Residuals` keeps them.

    Attributes
    ----------
    term : str
        Term name (``"1|herd"``).
    group : str
        Its grouping factor.
    modes : pandas.DataFrame
        Predicted effects, one row per level, one column per term column.
    conditional_variance : pandas.DataFrame or None
        Their conditional (posterior) variances where the fit computed them.
    covariance : ndarray (k, k)
        The fitted covariance of the term's effects.
    """

    term: str
    group: str
    modes: pd.DataFrame
    conditional_variance: pd.DataFrame | None
    covariance: np.ndarray


def _check(kind, n_sim) -> None:
    if kind not in KINDS:
        raise OptionError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if isinstance(n_sim, bool) or not isinstance(n_sim, int | np.integer) or n_sim < 2:
        raise OptionError(f"n_sim must be an integer of at least 2, got {n_sim!r}")


def _dispersion(result, family):
    """The fitted dispersion (None for families without one)."""
    if not family.has_dispersion:
        return None
    value = result.dispersion.get(family.dispersion_name)
    if value is None or not np.isfinite(value):
        raise MethodError(
            f"the result has no estimate of the {family.name} dispersion "
            f"{family.dispersion_name!r} needed for residuals"
        )
    return float(value)


def residuals(
    fit,
    kind: str = "quantile",
    conditional: bool = True,
    n_sim: int = 250,
    random_seed=None,
    model=None,
) -> Residuals:
    """Residuals of a fit, one per row.

    Parameters
    ----------
    fit : FitResult
        A fit of any method.
    kind : {"quantile", "pearson", "deviance", "response"}
        Simulated randomized quantile residuals (see the module docstring), Pearson
        ``(y - n mu) / sqrt(n V(mu) phi)``, deviance ``sign(y - n mu) sqrt(d(y, mu))`` or
        raw ``y - n mu`` residuals.
    conditional : bool
        Conditional on the predicted random effects (True) or at the population level
        (False: means at ``b = 0`` for the closed-form kinds, new effects drawn from the
        fitted covariance for ``"quantile"``). Marginal (GEE) fits are always population level.
    n_sim : int
        Simulated responses per row for ``"quantile"`` on non-Bayesian fits.
    random_seed : int or numpy.random.Generator, optional
        Seeds the simulation and the randomization.
    model : GLMM, optional
        The model the fit came from (needed for a fit loaded from a file).

    Returns
    -------
    Residuals
    """
    _check(kind, n_sim)
    model = model_of(fit, model)
    design = model.design
    refuse_extensions(design, "residuals")
    family = design.family
    marginal = fit.kind == "marginal"
    cond = bool(conditional) and not marginal
    y = np.asarray(design.y, dtype=float)
    n = np.ones_like(y) if design.trials is None else np.asarray(design.trials, dtype=float)
    mu = fit.predict(type="response", re_form=None if cond else "~0", model=model).to_numpy(float)
    fitted = n * mu
    common = dict(
        kind=kind,
        fitted=fitted,
        labels=design.row_labels,
        conditional=cond,
        observed=y,
        discrete=family.discrete,
        groups=row_groups(design),
        random_effects={} if marginal else _predictions(fit, design),
    )
    if kind != "quantile":
        disp = _point_dispersion(fit, family)
        trials = design.trials
        if kind == "response":
            values = y - fitted
        elif kind == "pearson":
            values = family.pearson_residuals(y, mu, trials, 1.0 if disp is None else disp)
        else:
            values = family.deviance_residuals(y, mu, trials, disp)
        return Residuals(values=np.asarray(values, float), **common)
    rng = np.random.default_rng(random_seed)
    if fit.kind == "bayesian":
        sims = _simulate_bayesian(fit, design, cond, rng)
    else:
        sims = _simulate_point(fit, design, cond, int(n_sim), rng)
    values = randomized_pit(y, sims, rng)
    return Residuals(values=values, simulated=sims, n_sim=int(sims.shape[0]), **common)


def row_groups(design) -> dict:
    """Grouping factor -> level label (str) of each row, in formula order."""
    out = {}
    for t in design.random:
        if t.group not in out:
            out[t.group] = np.asarray([str(v) for v in t.levels], dtype=object)[t.index]
    return out


def _predictions(fit, design) -> dict:
    """The fit's predicted effects per term (terms the fit has no predictions for are left out)."""
    out = {}
    for t in design.random:
        modes = fit.random_effects.get(t.name)
        if modes is None:
            continue
        try:
            cov = term_covariance(fit, t)
        except MethodError:
            continue
        cv = fit.random_effects.get(f"{t.name} (conditional variance)")
        out[t.name] = RandomEffectPrediction(
            term=t.name,
            group=t.group,
            modes=modes.reindex(index=t.levels, columns=t.columns),
            conditional_variance=None
            if cv is None
            else cv.reindex(index=t.levels, columns=t.columns),
            covariance=cov,
        )
    return out


def _point_dispersion(fit, family):
    """The dispersion at the point estimates (posterior mean for Bayesian fits)."""
    if not family.has_dispersion:
        return None
    if fit.kind == "bayesian" and fit.idata is not None:
        return float(posterior_array(fit.idata, family.dispersion_name).mean())
    return _dispersion(fit, family)


def randomized_pit(y: np.ndarray, sims: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(#{sims < y} + U #{sims == y}) / S`` per row (``sims`` of shape ``(S, n)``)."""
    below = (sims < y[None, :]).sum(axis=0)
    ties = (sims == y[None, :]).sum(axis=0)
    u = rng.uniform(size=y.shape[0])
    return (below + u * ties) / sims.shape[0]


def _simulate_point(fit, design, conditional: bool, n_sim: int, rng) -> np.ndarray:
    """``(n_sim, n)`` responses from a likelihood or marginal fit at its estimates."""
    family = design.family
    terms = list(design.random) if conditional else []
    eta = point_linear_predictor(fit, design, training_rows(design, terms))
    eta = np.broadcast_to(eta, (n_sim, eta.shape[0])).copy()
    if not conditional and fit.kind != "marginal":
        for t in design.random:
            S = term_covariance(fit, t)
            w, U = np.linalg.eigh(S)
            root = U * np.sqrt(np.clip(w, 0.0, None))[None, :]
            z = rng.standard_normal((n_sim, t.n_levels, t.n_columns))
            b = z @ root.T
            eta += np.einsum("ij,sij->si", t.X, b[:, t.index, :])
    mu = family.link.linkinv(eta)
    disp = _dispersion(fit, family)
    return np.asarray(family.simulate(mu, rng, design.trials, disp), dtype=float)


def _simulate_bayesian(fit, design, conditional: bool, rng) -> np.ndarray:
    """One response per posterior draw, shape ``(S, n)``."""
    family = design.family
    rows = training_rows(design, list(design.random))
    if not conditional:
        # every level coded unseen: linear_predictor_draws draws it from N(0, Sigma_s)
        rows = dataclasses.replace(rows, index=[-np.asarray(i) - 1 for i in rows.index])
    eta = linear_predictor_draws(fit, design, rows, rng)
    mu = family.link.linkinv(eta)
    disp = None
    if family.has_dispersion:
        disp = posterior_array(fit.idata, family.dispersion_name).reshape(-1, 1)
    return np.asarray(family.simulate(mu, rng, design.trials, disp), dtype=float)
