"""Prior classes: defaults, keys, and each class's own math.

Every prior class is checked against SciPy's densities, its draws against its density, its
declared tail exponents against the slopes of its density, its power-scaled and rescaled
forms against its density, and every engine's spelling of it (PyMC, the compiled density,
the Gibbs samplers' scalar kernel) against its ``logpdf``.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

from bayesglmm import GLMM, priors
from bayesglmm.errors import PriorError


@pytest.fixture
def frame():
    rng = np.random.default_rng(1)
    n = 40
    return pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "x": rng.normal(0, 4, n),
            "f": rng.choice(["a", "b"], n),
            "g": np.repeat(np.arange(8), 5),
        }
    )


def test_default_priors_are_documented_values(frame):
    ps = GLMM("y ~ x + f + (x|g)", frame).priors
    assert ps.fixed["Intercept"] == priors.Normal(0.0, 2.5)
    # numeric column: 2.5 / sd(x); indicator column: 2.5
    assert ps.fixed["x"].sigma == pytest.approx(2.5 / frame.x.std(ddof=0))
    assert ps.fixed["f"].sigma == 2.5
    assert ps.random_sd["1+x|g"] == [priors.HalfNormal(2.5), priors.HalfNormal(2.5)]
    assert ps.correlation["1+x|g"] == priors.LKJ(1.0)
    g = GLMM("x ~ f + (1|g)", frame, family="gaussian").priors
    s = frame.x.std(ddof=0)
    assert g.dispersion["sigma"].sigma == pytest.approx(2.5 * s)
    assert g.random_sd["1|g"][0].sigma == pytest.approx(2.5 * s)
    assert "parameter" == ps.table().index.name


def test_user_priors_by_term_group_and_component(frame):
    p = {
        "x": priors.StudentT(3, 0, 1),
        "g": priors.HalfCauchy(1.0),
        "g|x": priors.Exponential(2),
        "Intercept": priors.Normal(0, 5),
    }
    ps = GLMM("y ~ x + (x||g)", frame, priors=p).priors
    assert ps.fixed["x"] == priors.StudentT(3, 0, 1)
    assert ps.random_sd["1|g"] == [priors.HalfCauchy(1.0)]
    assert ps.random_sd["x|g"] == [priors.Exponential(2)]
    assert ps.user_keys == set(p)
    lkj = GLMM("y ~ x + (x|g)", frame, priors={"g": priors.LKJ(2.0, sd=priors.HalfNormal(1))})
    assert lkj.priors.correlation["1+x|g"].eta == 2.0
    assert lkj.priors.random_sd["1+x|g"] == [priors.HalfNormal(1)] * 2


def test_prior_errors_name_the_key(frame):
    with pytest.raises(PriorError, match="'z', which is not a parameter.*valid keys: Intercept"):
        GLMM("y ~ x + (1|g)", frame, priors={"z": priors.Normal()})
    with pytest.raises(PriorError, match="use 'f'"):
        GLMM("y ~ f + (1|g)", frame, priors={"f[b]": priors.Normal()})
    with pytest.raises(PriorError, match="prior on a coefficient and cannot be used for 'g'"):
        GLMM("y ~ x + (1|g)", frame, priors={"g": priors.Normal()})
    with pytest.raises(PriorError, match="prior on a standard deviation.*'x'"):
        GLMM("y ~ x + (1|g)", frame, priors={"x": priors.HalfNormal()})
    with pytest.raises(PriorError, match="has no correlations"):
        GLMM("y ~ x + (1|g)", frame, priors={"g": priors.LKJ(2)})
    with pytest.raises(PriorError, match="bayesglmm.priors object"):
        GLMM("y ~ x + (1|g)", frame, priors={"x": "normal"})


def test_prior_classes_build_in_pymc(frame):
    import pymc as pm

    p = {"g": priors.InverseGamma(2, 1), "x": priors.Cauchy(0, 2)}
    model = GLMM("y ~ x + (1|g)", frame, priors=p).build_pymc(parameterization="centered")
    names = {v.name for v in model.free_RVs}
    assert {"1|g_var", "x", "1|g"} <= names
    assert "1|g_sigma" in {v.name for v in model.deterministics}
    assert isinstance(model, pm.Model)
    assert list(model.coords["g"]) == [str(i) for i in range(8)]


# ------------------------------------------------------------------------------------------
# every prior class owns its math: checked here against SciPy, against its own draws, against
# numerical tail estimates, and against every engine's spelling (PyMC, the compiled density)

#: one or more instances of every prior class (a new class must be added here)
PROPER = [
    priors.Normal(0.7, 1.8),
    priors.StudentT(4.0, -0.5, 1.3),
    priors.Cauchy(0.3, 0.8),
    priors.HalfNormal(1.7),
    priors.HalfStudentT(3.0, 1.2),
    priors.HalfCauchy(0.9),
    priors.Exponential(1.6),
    priors.Gamma(2.5, 1.5),
    priors.Gamma(2.5, 1.5, on="variance"),
    priors.InverseGamma(5.0, 4.0),
]
IMPROPER = [priors.Flat(), priors.HalfFlat(), priors.PowerVariance(-0.3), priors.Jeffreys()]
SCALAR = PROPER + IMPROPER
PSI = ((2.0, 0.3, 0.1), (0.3, 1.5, -0.2), (0.1, -0.2, 1.0))
MATRIX = [priors.LKJ(2.0), priors.LKJ(1.0), priors.InverseWishart(7.0, PSI)]
POINT = [priors.Fixed(1.3)]
ALL = SCALAR + MATRIX + POINT
#: draws per sampling test
N_DRAWS = 4000
#: a KS p-value below this fails: the false-failure rate of each KS test when the sampler
#: and the density agree
KS_LEVEL = 1e-3
#: |mean - E x| within this many standard errors: two-sided normal tail 6.3e-5 per test
Z_MEAN = 4.0
#: points at which log densities are compared
N_POINTS = 25


def _ids(ps):
    return [p.describe() + (f"@{p.scale}" if p.scale != p.default_scale else "") for p in ps]


def _scipy_logpdf(prior, x):
    """Reference log density on the declared scale, written from SciPy's parameterizations."""
    kind = type(prior).__name__
    if kind == "Normal":
        return st.norm(prior.mu, prior.sigma).logpdf(x)
    if kind == "StudentT":
        return st.t(prior.nu, prior.mu, prior.sigma).logpdf(x)
    if kind == "Cauchy":
        return st.cauchy(prior.alpha, prior.beta).logpdf(x)
    if kind == "HalfNormal":
        return st.halfnorm(scale=prior.sigma).logpdf(x)
    if kind == "HalfStudentT":  # |T| for T ~ t(nu, 0, sigma): twice the density on x > 0
        return np.log(2.0) + st.t(prior.nu, 0.0, prior.sigma).logpdf(x)
    if kind == "HalfCauchy":
        return st.halfcauchy(scale=prior.beta).logpdf(x)
    if kind == "Exponential":
        return st.expon(scale=1.0 / prior.lam).logpdf(x)
    if kind == "Gamma":  # shape alpha, rate beta
        return st.gamma(prior.alpha, scale=1.0 / prior.beta).logpdf(x)
    if kind == "InverseGamma":  # shape alpha, scale beta
        return st.invgamma(prior.alpha, scale=prior.beta).logpdf(x)
    if kind in ("Flat", "HalfFlat"):
        return np.zeros_like(x)
    if kind == "PowerVariance":
        return -(prior.a + 1.0) * np.log(x)
    if kind == "Jeffreys":
        return -np.log(x)
    raise AssertionError(f"no reference for {kind}")


def _points(prior, seed=0, n=N_POINTS):
    rng = np.random.default_rng(seed)
    if prior.support == "positive":
        return np.exp(rng.normal(0.0, 1.5, n))
    return rng.normal(0.0, 3.0, n)


def _matrices(prior, seed=0, n=N_POINTS, k=3):
    """Random correlation (LKJ) or covariance matrices (k x k)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, k, k + 2))
    cov = a @ np.swapaxes(a, -1, -2) / (k + 2) + 0.1 * np.eye(k)
    if prior.scale == "covariance":
        return cov
    d = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    return cov / d[:, :, None] / d[:, None, :]


def _grid(prior, m=400_001):
    """(x, weights) of a quadrature over the support: x = tan(u), u on an open grid."""
    lo = 0.0 if prior.support == "positive" else -np.pi / 2
    u = np.linspace(lo, np.pi / 2, m)[1:-1]
    return np.tan(u), 1.0 / np.cos(u) ** 2, u[1] - u[0]


def _cdf(prior):
    """CDF of exp(logpdf) by cumulative trapezoid on the tan grid, and its total mass."""
    x, jac, du = _grid(prior)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        dens = np.nan_to_num(np.exp(prior.logpdf(x)) * jac)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * du)])
    return (lambda q: np.interp(q, x, cum)), cum[-1], x, dens * du


def pytensor_value(v):
    return v.eval() if hasattr(v, "eval") else v


def test_every_prior_class_is_tested():
    classes = {
        c
        for c in vars(priors).values()
        if isinstance(c, type) and issubclass(c, priors.Prior) and c is not priors.Prior
    }
    assert classes == {type(p) for p in ALL}


@pytest.mark.parametrize("prior", SCALAR, ids=_ids(SCALAR))
def test_logpdf_matches_scipy_on_the_declared_scale(prior):
    x = _points(prior)
    np.testing.assert_allclose(prior.logpdf(x), _scipy_logpdf(prior, x), rtol=1e-12, atol=1e-12)


def test_matrix_logpdfs_match_scipy():
    iw = priors.InverseWishart(7.0, PSI)
    covs = _matrices(iw)
    ref = [st.invwishart(7.0, np.array(PSI)).logpdf(c) for c in covs]
    np.testing.assert_allclose(iw.logpdf(covs), ref, rtol=1e-10)
    # LKJ(eta) on 2 x 2 matrices: (r + 1) / 2 ~ Beta(eta, eta)
    r = np.random.default_rng(1).uniform(-0.99, 0.99, 20)
    R = np.stack([np.array([[1.0, v], [v, 1.0]]) for v in r])
    for eta in (1.0, 2.0, 0.6):
        lkj = priors.LKJ(eta)
        ref = st.beta(eta, eta).logpdf((r + 1) / 2) - np.log(2.0)
        np.testing.assert_allclose(lkj.logpdf(R), ref, rtol=1e-10)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
@pytest.mark.parametrize("eta", [1.0, 2.5, 0.7])
def test_lkj_normalizer_is_pymcs_negated(eta, k):
    """PyMC adds minus the log normalizer (its k = 2, eta = 1 density is 2, not 1/2); the
    compiled density adds PyMC's value to equal the PyMC model."""
    from pymc.distributions.multivariate import _lkj_normalizing_constant

    ref = float(np.asarray(pytensor_value(_lkj_normalizing_constant(eta, k))))
    # PyMC's constant goes through float32 PyTensor constants (relative error ~1e-8)
    assert priors.LKJ(eta).log_normalizer(k) == pytest.approx(-ref, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("prior", PROPER, ids=_ids(PROPER))
def test_draws_follow_the_density(prior):
    """KS test of the draws against the CDF integrated from ``logpdf``, which must have mass
    one, and a z-test of their mean where the prior has four moments on its scale."""
    cdf, mass, x, w = _cdf(prior)
    # the open grid leaves out about one cell at each end: 4e-6 of a Cauchy's mass
    assert mass == pytest.approx(1.0, abs=2e-5)
    draws = prior.sample(np.random.default_rng(7), (N_DRAWS,))
    assert draws.shape == (N_DRAWS,)
    assert st.kstest(draws, cdf).pvalue > KS_LEVEL
    moments = prior.tails().moments / (2.0 if prior.scale == "variance" else 1.0)
    if moments > 4:
        mean = float(np.sum(x * w))
        se = draws.std() / np.sqrt(N_DRAWS)
        assert abs(draws.mean() - mean) < Z_MEAN * se


def test_matrix_draws_follow_their_marginals():
    rng = np.random.default_rng(3)
    # LKJ(eta), k = 3: each correlation is 2 Beta(b, b) - 1, b = eta - 1 + k / 2
    R = priors.LKJ(2.0).sample(rng, (N_DRAWS,), 3)
    assert R.shape == (N_DRAWS, 3, 3)
    np.testing.assert_allclose(np.diagonal(R, axis1=1, axis2=2), 1.0)
    beta = st.beta(2.5, 2.5)
    assert st.kstest((R[:, 0, 2] + 1) / 2, beta.cdf).pvalue > KS_LEVEL
    # k = 2 against the LKJ density itself
    r = priors.LKJ(0.8).sample(rng, (N_DRAWS,), 2)[:, 0, 1]
    grid = np.linspace(-1, 1, 200_001)[1:-1]
    mats = np.zeros((grid.size, 2, 2))
    mats[:, 0, 0] = mats[:, 1, 1] = 1.0
    mats[:, 0, 1] = mats[:, 1, 0] = grid
    dens = np.exp(priors.LKJ(0.8).logpdf(mats))
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * (grid[1] - grid[0]))])
    assert cum[-1] == pytest.approx(1.0, abs=1e-3)  # the endpoint singularity costs ~1e-4
    assert st.kstest(r, lambda q: np.interp(q, grid, cum)).pvalue > KS_LEVEL
    # inverse Wishart: Sigma_11 ~ InverseGamma((nu - k + 1) / 2, psi_11 / 2)
    S = priors.InverseWishart(7.0, PSI).sample(rng, (N_DRAWS,), 3)
    ig = st.invgamma((7.0 - 3 + 1) / 2, scale=PSI[0][0] / 2)
    assert st.kstest(S[:, 0, 0], ig.cdf).pvalue > KS_LEVEL


@pytest.mark.parametrize("prior", IMPROPER, ids=_ids(IMPROPER))
def test_improper_priors_refuse_draws(prior):
    with pytest.raises(PriorError, match="improper"):
        prior.sample(np.random.default_rng(0), (3,))


def test_fixed_is_a_point_mass():
    p = priors.Fixed(1.3)
    np.testing.assert_array_equal(p.logpdf([1.3, 1.0]), [0.0, -np.inf])
    np.testing.assert_array_equal(p.sample(np.random.default_rng(0), (4,)), 1.3)
    assert p.rescaled(3.0) == p and p.powerscaled(0.5).prior == p


def _slope(logp, x1, x2):
    """d log p / d log|x| between x1 and x2 (same sign)."""
    return float((logp(x2) - logp(x1)) / (np.log(abs(x2)) - np.log(abs(x1))))


def _on_variance(prior):
    if prior.scale == "variance":
        return prior.logpdf
    return lambda v: prior.logpdf(np.sqrt(v)) - np.log(2.0 * np.sqrt(v))


def _on_sd(prior):
    if prior.scale == "variance":
        return lambda s: prior.logpdf(s * s) + np.log(2.0 * s)
    return prior.logpdf


#: far enough in the tails that lower-order terms are below 1e-6 of the exponent
FAR, NEAR = 1e8, 1e-8


@pytest.mark.parametrize("prior", SCALAR, ids=_ids(SCALAR))
def test_tail_exponents_match_the_density(prior):
    """``tails()`` against the slope of the log density on a log scale: -(a + 1) on the
    variance at 0 and at infinity, -(moments + 1) at infinity on the coefficient or sd."""
    t = prior.tails()
    if prior.support == "real":
        at_inf = _slope(prior.logpdf, FAR, 10 * FAR)
        assert _slope(prior.logpdf, -FAR, -10 * FAR) == pytest.approx(at_inf)
        assert t.a0 is None
        if t.improper:
            assert t.moments == 0 and at_inf >= -1.0
        elif np.isinf(t.moments):
            assert at_inf < -100
        else:
            assert at_inf == pytest.approx(-(t.moments + 1.0), abs=1e-6)
        return
    var, sd = _on_variance(prior), _on_sd(prior)
    at_zero = _slope(var, NEAR / 10, NEAR)
    at_inf = _slope(var, FAR, 10 * FAR)
    sd_inf = _slope(sd, FAR, 10 * FAR)
    if t.improper:
        assert at_zero == pytest.approx(-(t.a0 + 1.0), abs=1e-6)
        assert at_inf == pytest.approx(-(t.a_inf + 1.0), abs=1e-6)
        assert t.moments == 0 and (at_zero <= -1.0 or at_inf >= -1.0)
        return
    assert t.a0 is None and at_zero > -1.0  # integrable at 0
    if np.isinf(t.a_inf):
        assert at_inf < -100 and np.isinf(t.moments) and sd_inf < -100
    else:
        assert at_inf == pytest.approx(-(t.a_inf + 1.0), abs=1e-6)
        assert sd_inf == pytest.approx(-(t.moments + 1.0), abs=1e-6)


#: powers away from the boundaries (alpha (nu + 1) = 1), where a numerical slope cannot decide
ALPHAS = (0.15, 0.45, 0.6, 2.0, 3.0)


def _integrable(logp, prior):
    """Whether exp(logp) has finite mass, from its log-log slopes at the ends."""
    if prior.support == "real":
        return _slope(logp, FAR, 10 * FAR) < -1.0
    return _slope(logp, NEAR / 10, NEAR) > -1.0 and _slope(logp, FAR, 10 * FAR) < -1.0


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("prior", SCALAR + MATRIX[:2], ids=_ids(SCALAR + MATRIX[:2]))
def test_powerscaling_is_logpdf_times_alpha(prior, alpha):
    new, proper, note = prior.powerscaled(alpha)
    x = _matrices(prior) if prior.support == "correlation" else _points(prior)
    if new is not None:
        diff = new.logpdf(x) - alpha * prior.logpdf(x)
        np.testing.assert_allclose(diff, diff[0], atol=1e-9)
        assert proper == (not new.improper)
        return
    assert proper == _integrable(lambda v: alpha * prior.logpdf(v), prior)
    assert proper or note


@pytest.mark.parametrize("prior", SCALAR + MATRIX, ids=_ids(SCALAR + MATRIX))
def test_rescaled_is_the_prior_of_the_rescaled_parameter(prior):
    """log p_new(f^d x) = log p(x) - log|Jacobian|, up to a constant for improper priors."""
    f = 2.5
    new = prior.rescaled(f)
    if prior.support == "correlation":
        x = _matrices(prior)
        np.testing.assert_allclose(new.logpdf(x), prior.logpdf(x))
        return
    if prior.support == "covariance":
        x = _matrices(prior)
        k = x.shape[-1]
        diff = new.logpdf(f * f * x) + k * (k + 1) / 2 * np.log(f * f) - prior.logpdf(x)
    else:
        power = 2 if prior.scale == "variance" else 1
        x = _points(prior)
        diff = new.logpdf(f**power * x) + power * np.log(f) - prior.logpdf(x)
    np.testing.assert_allclose(diff, diff[0] if prior.improper else 0.0, atol=1e-9)


@pytest.mark.parametrize("prior", SCALAR + MATRIX, ids=_ids(SCALAR + MATRIX))
def test_pymc_logp_equals_logpdf(prior):
    from bayesglmm.bayes.prior_dists import pymc_logp

    x = _matrices(prior, n=6) if prior.support in ("correlation", "covariance") else _points(prior)
    ours = prior.logpdf(x)
    if prior.support == "correlation":
        # PyMC's LKJ constant has the opposite sign (test_lkj_normalizer_is_pymcs_negated)
        ours = ours - 2.0 * prior.log_normalizer(x.shape[-1])
    # PyMC's Student-t normalizing constant differs from SciPy's in the 8th digit
    np.testing.assert_allclose(pymc_logp(prior, x), ours, rtol=1e-7, atol=1e-7)


COMPILED = [p for p in SCALAR if p.compiled_code is not None]


@pytest.mark.parametrize("prior", COMPILED, ids=_ids(COMPILED))
def test_compiled_prior_density_equals_logpdf(prior):
    from bayesglmm.bayes import density as dens
    from bayesglmm.bayes.density_layout import _params

    assert prior.compiled_code in dens.COEFFICIENT_PRIORS | dens.POSITIVE_PRIORS
    par = _params(prior, 1)[0]
    x = _points(prior)
    lp, grad = zip(*(dens.prior_lp(prior.compiled_code, par, v) for v in x), strict=True)
    np.testing.assert_allclose(lp, prior.logpdf(x), rtol=1e-10, atol=1e-10)
    h = 1e-6 * np.maximum(1.0, np.abs(x))
    numeric = (prior.logpdf(x + h) - prior.logpdf(x - h)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


KERNELS = [p for p in SCALAR if p.scalar_log_kernel() is not None]


@pytest.mark.parametrize("prior", KERNELS, ids=_ids(KERNELS))
def test_scalar_log_kernel_is_logpdf_up_to_a_constant(prior):
    kernel = prior.scalar_log_kernel()
    x = np.exp(np.random.default_rng(2).normal(0.0, 1.5, N_POINTS))
    diff = np.array([kernel(v, np.log(v)) for v in x]) - prior.logpdf(x)
    np.testing.assert_allclose(diff, diff[0], atol=1e-9)


@pytest.mark.parametrize("prior", ALL, ids=_ids(ALL))
def test_normal_forms_are_the_density(prior):
    x = _points(prior)
    normal, half = prior.as_normal(), prior.as_half_normal()
    if normal is not None:
        mu, sd = normal
        expected = np.zeros_like(x) if np.isinf(sd) else st.norm(mu, sd).logpdf(x)
        np.testing.assert_allclose(prior.logpdf(x), expected, rtol=1e-12)
    if half is not None:
        np.testing.assert_allclose(prior.logpdf(x), st.halfnorm(scale=half).logpdf(x))
    assert normal is None or half is None


@pytest.mark.parametrize(
    "prior, name",
    [
        (priors.Normal(0, -1), "sigma"),
        (priors.Cauchy(-2.0, 1.0), None),  # alpha is the location
        (priors.Gamma(0.0, 1.0), "alpha"),
        (priors.InverseGamma(1.0, 0.0), "beta"),
        (priors.StudentT(3, 0, (1.0, -1.0)), "sigma"),
        (priors.LKJ(0.0), "eta"),
        (priors.HalfNormal(2.0), None),
    ],
)
def test_nonpositive_parameters_are_named(prior, name):
    assert prior.nonpositive_parameter() == name


@dataclass(frozen=True)
class LogNormalSD(priors.Prior):
    """A prior defined outside the package: ``log sd ~ Normal(mu, sigma)``."""

    mu: float = 0.0
    sigma: float = 1.0
    dist: ClassVar[str] = "LogNormal"  # PyMC's LogNormal(mu, sigma)
    default_scale: ClassVar[str] = "sd"
    support: ClassVar[str] = "positive"
    positive_params: ClassVar[tuple[str, ...]] = ("sigma",)

    def logpdf(self, x):
        return st.lognorm(s=self.sigma, scale=np.exp(self.mu)).logpdf(np.asarray(x, dtype=float))

    def sample(self, rng, size):
        return np.exp(rng.normal(self.mu, self.sigma, size))

    def tails(self):
        return priors.Tails(False, None, np.inf, np.inf)

    def rescaled(self, factor):
        return LogNormalSD(self.mu + np.log(factor), self.sigma)


def test_a_new_prior_class_is_picked_up_or_refused_by_every_engine(frame):
    from bayesglmm.analysis.sensitivity.prior_ops import scale_variance_priors
    from bayesglmm.analysis.sensitivity.prior_predictive import prior_predictive_check
    from bayesglmm.bayes.compiled import unsupported_reason
    from bayesglmm.bayes.gibbs.assign import plan_steps
    from bayesglmm.bayes.log_prior import prior_variables
    from bayesglmm.bayes.prior_dists import pymc_logp
    from bayesglmm.propriety import check_propriety

    prior = LogNormalSD(0.2, 0.7)
    model = GLMM("y ~ x + (1|g)", frame, priors={"g": prior})
    # compiled densities: refused (no compiled_code), with the prior named
    assert "LogNormalSD(mu=0.2, sigma=0.7) on 1|g" in unsupported_reason(model)
    # PyMC: built from its declared distribution, with the density of logpdf
    x = _points(prior)
    np.testing.assert_allclose(pymc_logp(prior, x), prior.logpdf(x), rtol=1e-10)
    pm_model = model.build_pymc(parameterization="centered")
    assert "1|g_sigma" in {v.name for v in pm_model.free_RVs}
    # Gibbs: no conjugate update, so its sd gets the slice step
    assert plan_steps(model.design, model.priors, pm_model).kinds["1|g_sigma"] == "slice"
    # log prior, prior predictive, rescaling, power-scaling, propriety: its own methods
    assert any(p is prior for _, _, p, _ in prior_variables(model))
    ppc = prior_predictive_check(model, model.priors, 50, 1)
    assert ppc["median"].notna().all()
    assert scale_variance_priors(model.priors, 2.0).random_sd["1|g"] == [prior.rescaled(2.0)]
    assert prior.powerscaled(2.0).prior is None
    assert check_propriety(model).verdict == "proper"
