"""Simulation-based calibration of every Gibbs-style step, alone and mixed with NUTS.

Each case draws 200 data sets from the prior of a small model (6 groups x 5 rows, or
8 x 6 for correlated slopes), runs the steps on one compiled model through
:class:`bayesglmm.sbc.StepMethodSBC` (a stationary chain through the true parameters, so
the ranks are exactly uniform for a correct sampler), and tests the ranks of every
coordinate of every free variable for uniformity: chi-square on 10 bins with exact-null
p-values, Bonferroni over the coordinates, family-wise false-failure rate ALPHA per case.
A deliberately broken inverse-gamma update (shape alpha + N instead of alpha + N / 2), a
broken level-wise Metropolis (prior left out of the acceptance ratio) and a broken slice
update of a standard deviation (its half-normal prior density left out, Jacobian kept: a
flat prior on the sd in its place) must fail the same test.
"""

import numpy as np
import pandas as pd
import pymc as pm
import pytest

from bayesglmm import GLMM, priors
from bayesglmm.analysis.sbc import StepMethodSBC
from bayesglmm.bayes.gibbs import (
    AlbertChibStep,
    CoordinateMetropolisStep,
    InverseGammaStep,
    InverseWishartStep,
    LevelMetropolisStep,
    PolyaGammaStep,
    ScaleMoveStep,
    SliceScaleStep,
)
from bayesglmm.bayes.gibbs.effects import compile_point_fn

pytestmark = pytest.mark.slow

#: replications per case (at least 200 are required of the SBC check)
N_REPS = 200
#: family-wise false-failure rate of one case (Bonferroni over its coordinates); over the
#: 12 cases that must pass, the chance that a correct sampler fails somewhere is <= 0.012
ALPHA = 1e-3
#: posterior states per replication (ranks 0..99, 10 bins of 10)
N_DRAWS = 99
#: replications of the slice-step cases (half of N_REPS, to keep each case near 30 s): the
#: broken slice step still fails by far (chi-square 111 on 200 replications, so about 55
#: on 100, where the per-parameter threshold is about 33)
N_REPS_SLICE = 100
#: scans between kept states: 2 for pure Gibbs scans, 1 where NUTS (the costly step) is
#: in the scan; validity does not depend on it (the chain through the truth is exact),
#: only the distance travelled from the truth, i.e. power
THIN_GIBBS, THIN_NUTS = 2, 1


def _data(n_groups, per_group, seed, trials=False):
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    df = pd.DataFrame(
        {
            "g": np.repeat([f"g{i}" for i in range(n_groups)], per_group),
            "x": np.round(rng.normal(size=n), 2),
        }
    )
    df["y"] = 0
    if trials:
        df["n"] = rng.integers(1, 4, size=n)
        df["f"] = df["n"]
    return df


BASE = {"Intercept": priors.Normal(0, 1), "x": priors.Normal(0, 1)}


def _model(formula, df, family="binomial", link=None, **extra):
    return GLMM(formula, df, family=family, link=link, priors={**BASE, **extra})


def _nuts(model, names):
    return pm.NUTS([model[n] for n in names])


class BrokenInverseGamma(InverseGammaStep):
    """Wrong full conditional: shape alpha + N where it should be alpha + N / 2."""

    @staticmethod
    def conditional(alpha, beta, n, sum_sq):
        return alpha + n, beta + 0.5 * sum_sq


class BrokenLevelMetropolis(LevelMetropolisStep):
    """Acceptance ratio without the prior of the random effects."""

    def _per_level(self, point):
        ll, _ = self._fn(point)
        return np.bincount(self.index, weights=np.ravel(ll), minlength=self.n_levels)


class BrokenSlice(SliceScaleStep):
    """Slice update without the prior's density (the log-transform Jacobian kept)."""

    def __init__(self, vars, **kwargs):
        super().__init__(vars, **kwargs)
        rv = self._model[self.rv_name]
        prior = self._model.logp(vars=[rv], jacobian=False)
        self._prior_fn = compile_point_fn(self._model, [prior])

    def _density(self, point, x):
        f = super()._density(point, x)

        def without_prior(value, i):
            y = x.copy()
            y[i] = value
            moved = {**point, self.value: y.reshape(self.shape)}
            return f(value, i) - float(self._prior_fn(moved)[0])

        return without_prior


def case(name):
    """(GLMM, make_steps) of each calibrated combination."""
    ig = priors.InverseGamma(3, 2)  # variance with prior mean 1: no extreme data sets
    iw = priors.InverseWishart(6, 3.0)  # E[Sigma] = I, finite variances
    scalar = _data(6, 5, seed=1)
    if name in ("pg_ig", "pg_broken_ig", "nuts_ig"):
        m = _model("y ~ x + (1|g)", scalar, g=ig)
        if name == "nuts_ig":
            return m, lambda pm_m: [
                _nuts(pm_m, ["Intercept", "x", "1|g"]),
                InverseGammaStep("1|g_var"),
            ]
        var_step = BrokenInverseGamma if name == "pg_broken_ig" else InverseGammaStep
        return m, lambda pm_m: [PolyaGammaStep(design=m), var_step("1|g_var")]
    if name == "pg_ig_scale":
        m = _model("y ~ x + (1|g)", scalar, g=ig)
        return m, lambda pm_m: [
            PolyaGammaStep(design=m),
            InverseGammaStep("1|g_var"),
            ScaleMoveStep("1|g_var"),
        ]
    if name == "pg_nuts":
        m = _model("y ~ x + (1|g)", scalar, g=priors.HalfNormal(1.0))
        return m, lambda pm_m: [PolyaGammaStep(design=m), _nuts(pm_m, ["1|g_sigma"])]
    if name in ("pg_slice", "pg_broken_slice"):
        # the default prior family of method="gibbs": a half-normal sd, slice-updated
        m = _model("y ~ x + (1|g)", scalar, g=priors.HalfNormal(1.0))
        sl = BrokenSlice if name == "pg_broken_slice" else SliceScaleStep
        return m, lambda pm_m: [PolyaGammaStep(design=m), sl("1|g_sigma")]
    if name == "mwg_slice_scale":
        # a heavy-tailed sd prior, with the scale move method="gibbs" adds after the slice
        m = _model("y ~ x + (1|g)", scalar, family="poisson", g=priors.HalfStudentT(3, 1.0))
        return m, lambda pm_m: [
            LevelMetropolisStep("1|g", design=m),
            SliceScaleStep("1|g_sigma"),
            ScaleMoveStep("1|g_sigma"),
            CoordinateMetropolisStep(["Intercept", "x"]),
        ]
    if name == "ac_ig":
        m = _model("cbind(y, f) ~ x + (1|g)", _data(6, 5, seed=2, trials=True), link="probit", g=ig)
        return m, lambda pm_m: [AlbertChibStep(design=m), InverseGammaStep("1|g_var")]
    if name == "ac_nuts":
        m = _model("y ~ x + (1|g)", scalar, link="probit", g=priors.HalfNormal(1.0))
        return m, lambda pm_m: [AlbertChibStep(design=m), _nuts(pm_m, ["1|g_sigma"])]
    if name in ("pg_iw", "nuts_iw"):
        m = _model("cbind(y, f) ~ x + (1 + x|g)", _data(8, 6, seed=3, trials=True), g=iw)
        if name == "nuts_iw":
            return m, lambda pm_m: [
                _nuts(pm_m, ["Intercept", "x", "1+x|g"]),
                InverseWishartStep("1+x|g_chol"),
            ]
        return m, lambda pm_m: [PolyaGammaStep(design=m), InverseWishartStep("1+x|g_chol")]
    if name in ("mwg_ig", "mwg_nuts", "broken_mwg_ig"):
        m = _model("y ~ x + (1|g)", scalar, family="poisson", g=ig)
        level = BrokenLevelMetropolis if name == "broken_mwg_ig" else LevelMetropolisStep
        if name == "mwg_nuts":
            return m, lambda pm_m: [
                level("1|g", design=m),
                InverseGammaStep("1|g_var"),
                _nuts(pm_m, ["Intercept", "x"]),
            ]
        return m, lambda pm_m: [
            level("1|g", design=m),
            InverseGammaStep("1|g_var"),
            CoordinateMetropolisStep(["Intercept", "x"]),
        ]
    raise KeyError(name)


def _run(name, seed, n_reps=N_REPS):
    m, make_steps = case(name)
    thin = THIN_NUTS if "nuts" in name else THIN_GIBBS
    sbc = StepMethodSBC(
        m.build_pymc(parameterization="centered"), make_steps, n_draws=N_DRAWS, thin=thin, seed=seed
    )
    return sbc.run(n_reps, seed=seed, alpha=ALPHA, progressbar=False)


@pytest.mark.parametrize(
    "name",
    [
        "pg_ig",
        "pg_ig_scale",
        "pg_nuts",
        "ac_ig",
        "ac_nuts",
        "nuts_ig",
        "pg_iw",
        "nuts_iw",
        "mwg_ig",
        "mwg_nuts",
    ],
)
def test_steps_are_calibrated(name):
    result = _run(name, seed=20_260_401)
    assert result.passed, f"{name}: {result}\n{result.summary()}"


@pytest.mark.parametrize("name", ["pg_broken_ig", "broken_mwg_ig"])
def test_broken_steps_fail_calibration(name):
    result = _run(name, seed=20_260_402)
    assert not result.passed, f"{name} should fail: {result}\n{result.summary()}"


@pytest.mark.parametrize("name", ["pg_slice", "mwg_slice_scale"])
def test_slice_step_is_calibrated(name):
    result = _run(name, seed=20_261_130, n_reps=N_REPS_SLICE)
    assert result.passed, f"{name}: {result}\n{result.summary()}"


def test_broken_slice_step_fails_calibration():
    result = _run("pg_broken_slice", seed=20_261_131, n_reps=N_REPS_SLICE)
    assert not result.passed, f"should fail: {result}\n{result.summary()}"
    assert "1|g_sigma_log__" in result.failing
