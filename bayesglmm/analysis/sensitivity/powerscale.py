"""Power-scaling sensitivity of one Bayesian fit (Kallioinen, Paananen, Buerkner & Vehtari
2023), by Pareto-smoothed importance weighting of its draws.

The prior (or the likelihood) is raised to a power :math:`\\alpha`,
:math:`p_\\alpha(\\theta \\mid y) \\propto p(\\theta)^\\alpha p(y \\mid \\theta)`, and the draws
are reweighted by :math:`p(\\theta)^{\\alpha - 1}` (Pareto-smoothed, :func:`arviz.psislw`).
The sensitivity of a parameter is the derivative of the cumulative Jensen-Shannon distance
between the base and the power-scaled posteriors at :math:`\\alpha = 1`; priorsense's
diagnosis reads it against 0.05: prior and likelihood both sensitive is a *prior-data
conflict*, a sensitive prior with an insensitive likelihood is a *strong prior / weak
likelihood*.

What ArviZ does and does not do here (ArviZ 0.23):

* the sensitivity number is :func:`arviz.psens` itself, run on an InferenceData built here:
  its posterior holds the *reported* parameters (fixed effects, variances, sds), its
  ``log_prior`` the sum of the selected priors' log densities and its ``log_likelihood``
  the summed pointwise log-likelihood;
* its ``coords=`` and ``component_coords=`` arguments are ignored (its code reads
  ``if coords is None: dataset = dataset.sel(coords)``, the test inverted), so selections
  are made here, by building that InferenceData, never through those arguments;
* it sums *every* variable of ``log_prior``; which priors are power-scaled is chosen here
  (``priors=``), by default the top-level priors only;
* it has no power-scaled summaries, plots or refit predictions; those are computed here
  from the same Pareto-smoothed weights (:mod:`bayesglmm.sensitivity.weights`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...bayes.log_prior import log_prior_dataset, prior_variables
from ...errors import MethodError, OptionError
from .prior_ops import powerscaled_set, with_priors
from .weights import khat_limit, psis, weighted_summary

#: priorsense's threshold on the power-scaling sensitivity (CJS derivative)
THRESHOLD = 0.05
#: alphas of the power-scaled summaries and plots (the diagnosis uses 1 +- delta)
ALPHAS = (0.8, 0.9, 1.0, 1.1, 1.25)


@dataclass
class PowerScaleResult:
    """What :func:`powerscale` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per parameter: ``prior`` and ``likelihood`` sensitivity, ``diagnosis``
        (``"prior-data conflict"``, ``"strong prior / weak likelihood"`` or ``"none"``),
        ``khat_prior`` and ``khat_likelihood`` (largest Pareto k-hat at ``1 +- delta``).
    scaled : pandas.DataFrame
        Power-scaled posterior summaries: component, alpha, parameter, mean, sd, median,
        q2.5, q97.5, mcse_median, khat, reliable (k-hat below the limit).
    propriety : pandas.DataFrame
        Per alpha, for the power-scaled priors: the priors, whether they are proper, and
        for improper ones the verdict of :func:`bayesglmm.check_propriety` on the model
        with the power-scaled priors (``"proper"``, ``"improper"``, ``"undecided"``).
    priors : list of str
        The log-prior variables power-scaled.
    threshold, delta : float
    messages : list of str
        Sentences for the report (boundary crossings, unreliable weights).
    """

    table: pd.DataFrame
    scaled: pd.DataFrame
    propriety: pd.DataFrame
    priors: list
    threshold: float = THRESHOLD
    delta: float = 0.01
    messages: list = field(default_factory=list)
    _draws: dict = field(default_factory=dict, repr=False)
    _components: dict = field(default_factory=dict, repr=False)

    @property
    def flagged(self) -> pd.DataFrame:
        """Rows of :attr:`table` with a diagnosis."""
        return self.table[self.table["diagnosis"] != "none"]

    def __str__(self) -> str:
        lines = [
            f"Power-scaling sensitivity (threshold {self.threshold}; priors scaled: "
            f"{', '.join(self.priors)})",
            self.table.round(3).to_string(),
        ]
        lines += [f"note: {m}" for m in self.messages]
        return "\n".join(lines)

    def plot(self, parameters=None, component: str = "prior", alphas=None, ax=None):
        """Power-scaled posterior densities (weighted KDE) of each parameter per alpha."""
        from .plots import plot_powerscale

        return plot_powerscale(self, parameters, component, alphas, ax)


def _check(result, alphas, delta, threshold):
    from ...results.result import FitResult

    if not isinstance(result, FitResult):
        text = repr(result)
        text = text if len(text) <= 40 else text[:37] + "..."
        raise OptionError(
            f"powerscale: result must be a FitResult of a Bayesian fit (NUTS or Gibbs), got a "
            f"{type(result).__name__} ({text})"
        )
    if getattr(result, "idata", None) is None or "posterior" not in result.idata.groups():
        raise MethodError(
            f"powerscale needs the draws of a Bayesian fit; this is a {result.method!r} fit"
        )
    if "log_likelihood" not in result.idata.groups():
        raise MethodError(
            "powerscale needs the pointwise log-likelihood: fit with log_likelihood=True"
        )
    if not (isinstance(delta, float | int) and 0 < delta < 0.5):
        raise OptionError(f"delta must be in (0, 0.5), got {delta!r}")
    if not (isinstance(threshold, float | int) and threshold > 0):
        raise OptionError(f"threshold must be positive, got {threshold!r}")
    a = np.asarray(alphas, dtype=float)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a) & (a > 0)):
        raise OptionError(f"alphas must be positive numbers, got {alphas!r}")


def parameter_draws(model, idata) -> dict[str, np.ndarray]:
    """Reported parameters (chain, draw): fixed effects, ``var(...)`` and ``sd(...)``."""
    from ...bayes.draws import derived_draws

    out = {}
    for k, v in derived_draws(model, idata).items():
        out[k] = v
        if k.startswith("var("):
            out["sd(" + k[4:]] = np.sqrt(v)
    return out


def _components(model, idata, priors, sampled):
    lp = log_prior_dataset(model, idata, sampled)
    names = [n for n in lp.data_vars]
    chosen = names if priors is None else list(priors)
    unknown = [p for p in chosen if p not in names]
    if unknown:
        raise OptionError(
            f"priors={unknown} are not log-prior variables of this fit; choose from {names}"
        )
    shape = (idata.posterior.sizes["chain"], idata.posterior.sizes["draw"])
    prior = np.zeros(shape)
    for n in chosen:
        v = np.asarray(lp[n].values, dtype=float)
        prior += v.reshape(shape + (-1,)).sum(axis=-1)
    ll = idata.log_likelihood
    lik = np.zeros(shape)
    for n in ll.data_vars:
        lik += np.asarray(ll[n].values, dtype=float).reshape(shape + (-1,)).sum(axis=-1)
    return {"prior": prior, "likelihood": lik}, chosen


def _psens(draws: dict, comps: dict, delta: float) -> pd.DataFrame:
    """arviz.psens per parameter for prior and likelihood, on a purpose-built InferenceData."""
    import warnings

    from ..._arviz import import_arviz

    az = import_arviz()
    import xarray as xr

    dims = ("chain", "draw")
    post = xr.Dataset({k: (dims, v) for k, v in draws.items()})
    idata = az.InferenceData(
        posterior=post,
        log_prior=xr.Dataset({"lprior": (dims, comps["prior"])}),
        log_likelihood=xr.Dataset({"loglik": (dims, comps["likelihood"])}),
    )
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # psislw's k-hat warnings: reported as columns
        for comp in ("prior", "likelihood"):
            if np.ptp(comps[comp]) == 0:
                out[comp] = pd.Series(0.0, index=list(draws))
                continue
            res = az.psens(idata, component=comp, delta=delta)
            out[comp] = pd.Series({k: float(res[k].values) for k in draws})
    return pd.DataFrame(out)


def diagnose(prior: float, likelihood: float, threshold: float = THRESHOLD) -> str:
    """priorsense's diagnosis of one parameter."""
    if prior >= threshold and likelihood >= threshold:
        return "prior-data conflict"
    if prior >= threshold:
        return "strong prior / weak likelihood"
    return "none"


def powerscale(
    result,
    *,
    priors=None,
    alphas=ALPHAS,
    delta: float = 0.01,
    threshold: float = THRESHOLD,
    model=None,
) -> PowerScaleResult:
    """Power-scaling sensitivity of prior and likelihood, per parameter.

    Parameters
    ----------
    result : FitResult
        A Bayesian fit (NUTS or Gibbs) with its ``log_likelihood`` group (the default).
    priors : list of str, optional
        The log-prior variables to power-scale (``"1|Female_sigma"``, ``"Cross"``; see
        ``result.idata.log_prior``); default: every top-level prior.
    alphas : sequence of float
        Powers for the scaled summaries, the plots and the propriety of improper priors.
    delta : float
        Finite-difference step of the sensitivity (``alpha = 1/(1+delta), 1+delta``).
    threshold : float
        Sensitivity at or above which a component counts as influential (priorsense: 0.05).
    model : GLMM, optional
        Needed only for a result loaded from disk.

    Returns
    -------
    PowerScaleResult

    Notes
    -----
    ArviZ's ``psens`` gives the sensitivity (see the module docstring for what it is given
    and why). The log prior is the density of each parameter on the scale its prior is
    declared, no Jacobian (:mod:`bayesglmm.sensitivity.log_prior`). For an improper power
    prior :math:`(\\sigma^2)^{-(a+1)}` power-scaling gives :math:`a' = \\alpha (a+1) - 1`,
    which may leave the region where the posterior exists: :attr:`PowerScaleResult.propriety`
    runs the package's own check for every alpha and the messages say where it crosses.
    """
    from ...results.predict import model_of

    _check(result, alphas, delta, threshold)
    model = model_of(result, model)
    idata = result.idata
    sampled = _sampled_priors(model, result)
    comps, chosen = _components(model, idata, priors, sampled)
    draws = parameter_draws(model, idata)
    sens = _psens(draws, comps, float(delta))
    n = comps["prior"].size
    kh = {}
    for comp in ("prior", "likelihood"):
        kh[comp] = max(psis((a - 1.0) * comps[comp])[1] for a in (1 / (1 + delta), 1 + delta))
    table = pd.DataFrame(
        {
            "prior": sens["prior"],
            "likelihood": sens["likelihood"],
            "diagnosis": [
                diagnose(p, q, threshold) for p, q in sens[["prior", "likelihood"]].values
            ],
            "khat_prior": kh["prior"],
            "khat_likelihood": kh["likelihood"],
        },
        index=pd.Index(list(draws), name="parameter"),
    )
    scaled, messages = _scaled_summaries(draws, comps, alphas, n)
    propriety, more = powerscaled_propriety(model, alphas, chosen, sampled)
    return PowerScaleResult(
        table=table,
        scaled=scaled,
        propriety=propriety,
        priors=chosen,
        threshold=float(threshold),
        delta=float(delta),
        messages=messages + more,
        _draws=draws,
        _components=comps,
    )


def _sampled_priors(model, result):
    from ...bayes.log_prior import sampled_priors

    opts = result.info.get("options") or {}
    return sampled_priors(
        model,
        {
            "conjugate_priors": opts.get("conjugate_priors"),
            "prior_swap": result.info.get("prior_swap"),
        },
    )


def _scaled_summaries(draws, comps, alphas, n):
    rows, bad = [], []
    limit = khat_limit(n)
    for comp in ("prior", "likelihood"):
        for a in sorted(set(float(x) for x in alphas)):
            w, khat = psis((a - 1.0) * comps[comp])
            for name, x in draws.items():
                s = weighted_summary(x, w)
                rows.append({"component": comp, "alpha": a, "parameter": name, **s, "khat": khat})
            if khat > limit:
                bad.append(f"{comp} alpha={a:g} (k-hat {khat:.2f})")
    scaled = pd.DataFrame(rows)
    scaled["reliable"] = scaled["khat"] <= limit
    messages = []
    if bad:
        messages.append(
            f"importance weights unreliable (k-hat > {limit:.2f}) for {', '.join(bad)}: those "
            "power-scaled summaries are not trustworthy; refit with the scaled prior instead"
        )
    return scaled, messages


def powerscaled_propriety(model, alphas, variables=None, priors=None):
    """Is there a posterior under each power-scaled prior set?

    Parameters
    ----------
    model : GLMM
    alphas : sequence of float
    variables : list of str, optional
        The log-prior variables power-scaled (default: all top-level priors).
    priors : PriorSet, optional
        Default ``model.priors``.

    Returns
    -------
    (pandas.DataFrame, list of str)
        Per alpha (1 included): the power-scaled priors (``PowerVariance(a)`` becomes
        ``PowerVariance(alpha (a + 1) - 1)``), whether they are proper, and the verdict of
        :func:`bayesglmm.check_propriety` on the model with them; and sentences saying
        where the verdict differs from alpha = 1.
    """
    from ...propriety import check_propriety

    sampled = model.priors if priors is None else priors
    names = [n for n, _, _, _ in prior_variables(model, sampled)]
    chosen = set(names if variables is None else variables)

    slots = {name: slot for name, _, _, slot in prior_variables(model, sampled)}
    improper = [
        (n, p) for n, _, p, _ in prior_variables(model, sampled) if n in chosen and p.improper
    ]
    rows, messages = [], []
    for a in sorted(set(float(x) for x in alphas) | {1.0}):
        ps, prior_proper, notes = powerscaled_set(sampled, a, chosen, slots)
        verdict = "proper" if prior_proper else "undecided"
        if ps is not None and not prior_proper:
            try:
                verdict = check_propriety(with_priors(model, ps)).verdict
            except Exception as err:  # a scaled prior the check cannot represent
                verdict = f"undecided ({err})"
        rows.append(
            {
                "alpha": a,
                "priors": "; ".join(notes) if notes else "proper, same family",
                "prior_proper": prior_proper,
                "posterior": verdict,
            }
        )
    frame = pd.DataFrame(rows)
    lost = frame[~frame["prior_proper"] & frame["priors"].str.contains("<= 0|not integrable")]
    if not improper and len(lost):
        messages.append(
            "the power-scaled prior is improper at "
            + ", ".join(
                f"alpha={a:g} ({n})" for a, n in zip(lost["alpha"], lost["priors"], strict=True)
            )
        )
    if improper:
        base = frame.loc[frame["alpha"] == 1.0, "posterior"].iloc[0]
        changed = frame[frame["posterior"] != base]
        decided = changed[changed["posterior"].isin(["proper", "improper"])]
        names = ", ".join(n for n, _ in improper)
        if len(decided):
            messages.append(
                f"power-scaling the improper prior(s) {names} crosses the propriety boundary: "
                f"the posterior is {base} at alpha=1 but "
                + ", ".join(
                    f"{v} at alpha={a:g}"
                    for a, v in zip(decided["alpha"], decided["posterior"], strict=True)
                )
                + " (bayesglmm.check_propriety); power-scaled summaries where it is improper "
                "describe no posterior"
            )
        open_ = changed[~changed["posterior"].isin(["proper", "improper"])]
        if len(open_):
            messages.append(
                f"power-scaling the improper prior(s) {names}: the posterior is {base} at "
                "alpha=1, and bayesglmm.check_propriety cannot decide at "
                + ", ".join(f"alpha={a:g}" for a in open_["alpha"])
            )
        flats = [n for n, p in improper if p.flat]
        if flats:
            messages.append(
                f"{', '.join(flats)}: flat priors have log density 0; power-scaling does not "
                "move them, so their prior sensitivity is 0 by construction"
            )
        powers = [n for n, p in improper if not p.flat]
        if powers and not len(changed):
            messages.append(
                f"power prior(s) {', '.join(powers)}: exponent a -> alpha (a + 1) - 1 stays on "
                f"the {base} side of the propriety boundary for alphas {sorted(set(alphas))}"
            )
    return frame, messages
