"""Every engine's spelling of every family's log-likelihood equals the NumPy reference.

The reference is :class:`bayesglmm.model.families.Family`, itself checked against SciPy's
distributions and, for its derivatives, against finite differences. Then, for each family
and link an engine declares, at seeded random points: the frequentist response, the Monte
Carlo kernels, the Numba rows of :mod:`bayesglmm.bayes.family_kernels`, the family part of
both compiled NUTS densities (value and gradient) and the PyMC likelihood must equal the
reference to ``RTOL`` relative. Each comparison also checks that it can fail: the reference
at a linear predictor moved by ``1e-6`` must not pass it. An engine refuses a family it does
not declare, by a reason naming what it takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from bayesglmm import GLMM
from bayesglmm.bayes import family_kernels as fk
from bayesglmm.errors import MethodError
from bayesglmm.frequentist.glm import fit_glm
from bayesglmm.frequentist.montecarlo import kernels as mc_kernels
from bayesglmm.frequentist.response import Response
from bayesglmm.model.families import FAMILIES, Family, get_family

#: agreement asked of every spelling (relative to the largest reference value, at least 1)
RTOL = 1e-10
#: the linear predictor is moved by this to show that a comparison can fail
SHIFT = 1e-6
#: finite differences of the reference (5-point stencil, step FD_STEP): truncation and
#: rounding leave about 1e-9 relative on these values, so derivative checks ask for 1e-7
FD_STEP = 1e-3
FD_RTOL = 1e-7
#: values of the dispersion at the random points (Gaussian sigma, negative-binomial alpha)
DISPERSION = {"gaussian": 0.7, "negative_binomial": 2.5, "betabinomial": 3.0}
#: ranges of eta at the random points, per link (family-specific where the mean is bounded)
ETA_RANGE = {
    "logit": (-3.0, 3.0),
    "probit": (-3.0, 3.0),
    "cloglog": (-3.0, 1.2),
    "log": (-2.0, 2.0),
    "identity": (0.2, 5.0),
}
ETA_RANGE_OF = {("binomial", "log"): (-3.0, -0.05), ("gaussian", "identity"): (-3.0, 3.0)}

COMBOS = [(name, link) for name, cls in FAMILIES.items() for link in cls.links]


def _with_bernoulli(pairs):
    """Each pair, and the binomial ones again with one trial per row."""
    return [(pair, False) for pair in pairs] + [(p, True) for p in pairs if p[0] == "binomial"]


def _case_id(case) -> str:
    pair, bernoulli = case
    return "/".join(pair) + ("/bernoulli" if bernoulli else "")


@dataclass
class Point:
    family: Family
    y: np.ndarray
    trials: np.ndarray | None
    eta: np.ndarray
    disp: float | None

    @property
    def n(self) -> np.ndarray:
        return np.ones_like(self.y) if self.trials is None else self.trials

    def loglik(self, eta=None, y=None, disp=None) -> np.ndarray:
        """The reference log-likelihood per row (constants included)."""
        eta = self.eta if eta is None else eta
        y = self.y if y is None else y
        disp = self.disp if disp is None else disp
        return self.family.loglik(y, trials=self.trials, dispersion=disp, eta=eta)

    def score(self, eta=None, y=None) -> np.ndarray:
        eta = self.eta if eta is None else eta
        y = self.y if y is None else y
        return self.family.eta_terms(y, eta, self.trials, self.disp or 1.0).score


def point(name: str, link: str, seed: int = 0, n: int = 40, bernoulli: bool = False) -> Point:
    rng = np.random.default_rng([seed, n, len(name), len(link)])
    fam = get_family(name, link)
    lo, hi = ETA_RANGE_OF.get((name, link), ETA_RANGE[link])
    eta = rng.uniform(lo, hi, n)
    trials = None
    if fam.has_trials:
        trials = np.ones(n) if bernoulli else rng.integers(1, 9, n).astype(float)
    disp = DISPERSION.get(name)
    y = np.asarray(fam.simulate(fam.link.linkinv(eta), rng, trials, disp), dtype=float)
    return Point(fam, y, trials, eta, disp)


def _overdispersion(p: Point):
    """The factor of a row's variance over ``n V(mu) phi``: ``1 + (n - 1) / (phi + 1)`` for
    the beta-binomial (its Fisher-step weight is the quasi-likelihood one), 1 otherwise."""
    if p.family.name == "betabinomial":
        return 1.0 + (p.n - 1.0) / (p.disp + 1.0)
    return 1.0


def close(actual, expected, wrong, rtol: float = RTOL) -> None:
    """``actual`` equals ``expected`` to ``rtol``, and ``wrong`` (the reference at a moved
    point) does not: the comparison can tell a wrong spelling."""
    actual, expected, wrong = (np.asarray(v, dtype=float) for v in (actual, expected, wrong))
    atol = rtol * max(float(np.max(np.abs(expected))), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)
    assert not np.allclose(actual, wrong, rtol=rtol, atol=atol)


def derivative(f, x, h=FD_STEP):
    """5-point central difference of ``f`` at ``x`` (elementwise in ``x``)."""
    return (f(x - 2 * h) - 8 * f(x - h) + 8 * f(x + h) - f(x + 2 * h)) / (12 * h)


# ---------------------------------------------------------------------------- the reference
def _scipy_logpmf(p: Point, mu: np.ndarray) -> np.ndarray:
    name = p.family.name
    if name == "binomial":
        return stats.binom.logpmf(p.y, p.n, mu)
    if name == "poisson":
        return stats.poisson.logpmf(p.y, mu)
    if name == "gaussian":
        return stats.norm.logpdf(p.y, mu, p.disp)
    if name == "betabinomial":
        return stats.betabinom.logpmf(p.y, p.n, mu * p.disp, (1 - mu) * p.disp)
    return stats.nbinom.logpmf(p.y, p.disp, p.disp / (p.disp + mu))


@pytest.mark.parametrize("name, link", COMBOS)
def test_reference_log_likelihood_is_the_distribution(name, link):
    p = point(name, link)
    mu = p.family.link.linkinv(p.eta)
    wrong = _scipy_logpmf(p, p.family.link.linkinv(p.eta + SHIFT))
    close(p.family.loglik(p.y, mu, p.trials, p.disp), _scipy_logpmf(p, mu), wrong)
    close(p.loglik(), _scipy_logpmf(p, mu), wrong)  # from eta, exact in the tails
    const = p.family.log_constant(p.y, p.trials)
    kernel = p.family.loglik(p.y, mu, p.trials, p.disp, constant=np.zeros_like(p.y))
    np.testing.assert_allclose(kernel + const, p.loglik(), rtol=RTOL, atol=RTOL)


@pytest.mark.parametrize("name, link", COMBOS)
def test_reference_score_and_weights_are_derivatives(name, link):
    p = point(name, link, seed=1)
    terms = p.family.eta_terms(p.y, p.eta, p.trials, p.disp or 1.0, second=True)
    close(
        terms.score, derivative(lambda e: p.loglik(eta=e), p.eta), p.score(p.eta + SHIFT), FD_RTOL
    )
    # observed weight: -d score / d eta; dW: d W / d eta; W: the expected observed weight
    w_obs = -derivative(p.score, p.eta)
    np.testing.assert_allclose(terms.W_obs, w_obs, rtol=FD_RTOL, atol=FD_RTOL)
    W = lambda e: p.family.eta_terms(p.y, e, p.trials, p.disp or 1.0).W  # noqa: E731
    np.testing.assert_allclose(terms.dW, derivative(W, p.eta), rtol=FD_RTOL, atol=FD_RTOL)
    mu, n = terms.mu, p.n
    mu_eta = p.family.link.mu_eta(p.eta)
    expected = n * mu_eta**2 / (p.family.variance(mu, p.disp or 1.0) * p.family.scale(p.disp or 1))
    expected = expected / _overdispersion(p)
    np.testing.assert_allclose(terms.W, expected, rtol=RTOL)
    if p.family.canonical:
        np.testing.assert_array_equal(terms.W_obs, terms.W)


@pytest.mark.parametrize("name, link", COMBOS)
def test_reference_variance_and_deviance(name, link):
    p = point(name, link, seed=2)
    fam, mu = p.family, p.family.link.linkinv(p.eta)
    d = p.disp or 1.0
    V = lambda m: fam.variance(m, d)  # noqa: E731
    np.testing.assert_allclose(fam.variance_derivative(mu, d), derivative(V, mu, 1e-5), rtol=1e-7)
    # the unit deviance is twice the distance to the saturated log-likelihood
    gap = 2.0 * (fam.saturated_loglik(p.y, p.trials, p.disp) - p.loglik())
    wrong = 2.0 * (fam.saturated_loglik(p.y, p.trials, p.disp) - p.loglik(eta=p.eta + SHIFT))
    scale = fam.scale(d)
    close(fam.unit_deviance(p.y, mu, p.trials, p.disp), gap * scale, wrong * scale, 1e-9)
    r = fam.deviance_residuals(p.y, mu, p.trials, p.disp)
    np.testing.assert_allclose(r**2, fam.unit_deviance(p.y, mu, p.trials, p.disp), rtol=1e-12)
    assert np.all(np.sign(r) == np.sign(p.y - p.n * mu))
    pearson = fam.pearson_residuals(p.y, mu, p.trials, d)
    r_scale = np.sqrt(p.n * V(mu) * scale * _overdispersion(p))
    np.testing.assert_allclose(pearson * r_scale, p.y - p.n * mu)


@pytest.mark.parametrize("name, link", COMBOS)
def test_reference_draws_have_the_mean_and_variance(name, link):
    fam = get_family(name, link)
    lo, hi = ETA_RANGE_OF.get((name, link), ETA_RANGE[link])
    mu = np.full(20_000, fam.link.linkinv(np.array([0.5 * (lo + hi)]))[0])
    trials = np.full(mu.size, 5.0) if fam.has_trials else None
    d = DISPERSION.get(name)
    y = fam.simulate(mu, np.random.default_rng(7), trials, d)
    n = 1.0 if trials is None else 5.0
    var = float(fam.cumulants(mu[:1], None if trials is None else trials[:1], d)[1][0])
    se = np.sqrt(var / mu.size)
    assert abs(y.mean() - n * mu[0]) < 5 * se
    assert abs(y.var() / var - 1.0) < 0.1


@pytest.mark.parametrize("name, link", COMBOS)
def test_starting_means_are_inside_the_link(name, link):
    p = point(name, link, seed=3)
    y = p.y.copy()
    y[:3] = 0.0
    eta = p.family.link.linkfun(p.family.mustart(y, p.trials))
    assert np.all(np.isfinite(eta))


@pytest.mark.parametrize("name, link", COMBOS)
def test_glm_fit_solves_the_score_equations(name, link):
    p = point(name, link, seed=4, n=200)
    X = np.column_stack([np.ones(p.y.size), np.random.default_rng(5).normal(size=p.y.size)])
    # the working form is R's IRLS with the variance function: for the beta-binomial (not
    # an exponential family) it solves the binomial quasi-score equations, not these
    forms = ("scoring", "working") if p.family.fisher_information else ("scoring",)
    for form in forms:
        fit = fit_glm(p.family, X, p.y, p.trials, np.zeros(p.y.size), p.disp or 1.0, form)
        assert fit.converged
        score = X.T @ p.score(fit.eta)
        assert np.max(np.abs(score)) < 1e-6 * np.sqrt(p.y.size)


# ---------------------------------------------------------------------------- the engines
@pytest.mark.parametrize("name, link", COMBOS)
def test_frequentist_response(name, link):
    p = point(name, link, seed=5)
    resp = Response(p.family, p.y, p.trials)
    mu = p.family.link.linkinv(p.eta)
    close(resp.loglik(p.eta, mu, p.disp or 1.0), p.loglik(), p.loglik(eta=p.eta + SHIFT))
    terms = resp.terms(p.eta, p.disp or 1.0, second=True)
    close(terms.score, p.score(), p.score(p.eta + SHIFT))


@pytest.mark.parametrize("pair", sorted(mc_kernels.FAMILIES), ids="/".join)
def test_montecarlo_kernels(pair):
    p = point(*pair, seed=6)
    kind, n = mc_kernels.FAMILIES[pair], p.n
    const = p.family.log_constant(p.y, p.trials)
    eta = p.eta + np.random.default_rng(6).normal(0, 0.3, (3, p.y.size))
    ref = np.stack([p.loglik(eta=e) for e in eta])
    wrong = np.stack([p.loglik(eta=e + SHIFT) for e in eta])
    close(mc_kernels.rows_loglik(kind, eta, p.y, n, const), ref, wrong)
    ll, score, W = mc_kernels.eta_pieces(kind, eta, p.y, n, float(const.sum()))
    close(ll, ref.sum(axis=1), wrong.sum(axis=1))
    ref_score = np.stack([p.score(e) for e in eta])
    close(score, ref_score, np.stack([p.score(e + SHIFT) for e in eta]))
    ref_W = np.stack([p.family.eta_terms(p.y, e, p.trials).W for e in eta])
    np.testing.assert_allclose(W, ref_W, rtol=RTOL)
    close(fk.canonical_loglik(kind, p.eta, p.y, n, const), p.loglik(), p.loglik(p.eta + SHIFT))


@pytest.mark.parametrize("case", _with_bernoulli(sorted(fk.ROW_FAMILIES)), ids=_case_id)
def test_numba_rows(case):
    pair, bernoulli = case
    p = point(*pair, seed=7, bernoulli=bernoulli)
    fam, link = fk.FAMILY_CODES[pair[0]], fk.LINK_CODES[pair[1]]
    disp = p.disp or 1.0
    rows = np.array(
        [
            fk.row(fam, link, y, t, e, disp, bernoulli)
            for y, t, e in zip(p.y, p.n, p.eta, strict=True)
        ]
    )
    const = p.family.log_constant(p.y, p.trials)
    close(rows[:, 0] + const, p.loglik(), p.loglik(eta=p.eta + SHIFT))
    close(rows[:, 1], p.score(), p.score(p.eta + SHIFT))
    if p.disp is not None:  # d/d dispersion, against the reference's finite difference
        d_disp = derivative(lambda d: p.loglik(disp=d), p.disp)
        close(rows[:, 2], d_disp, derivative(lambda d: p.loglik(disp=d), p.disp + 1e-4), FD_RTOL)


# the family part of the compiled NUTS densities: their value and gradient at one point less
# those with no rows of data (priors and Jacobians alone) are the log-likelihood's
def _model(name, link, bernoulli=False, seed=8, n=60, priors=None):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, 6, n).astype(str)})
    p = point(name, link, seed=seed, n=n, bernoulli=bernoulli)
    frame["y"] = p.y
    formula = "y ~ x + (1|g)"
    if p.family.has_trials and not bernoulli:
        frame["f"] = p.trials - p.y
        formula = "cbind(y, f) ~ x + (1|g)"
    return GLMM(formula, frame, family=name, link=link, priors=priors)


def _eta(design, named) -> np.ndarray:
    eta = design.offset.astype(float).copy()
    for term, sl in design.fixed_terms.items():
        eta += design.X[:, sl] @ np.atleast_1d(named[term])
    for t in design.random:
        b = np.asarray(named[t.name]).reshape(t.n_levels, t.n_columns)
        eta += (t.X * b[t.index]).sum(axis=1)
    return eta


def _reference(model, disp):
    """The log-likelihood summed over rows, as a function of ``eta`` (and the dispersion),
    and its gradient in the fixed effects."""
    d = model.design
    fam, trials = d.family, d.trials

    def value(eta, s=disp):
        return float(np.sum(fam.loglik(d.y, trials=trials, dispersion=s, eta=eta)))

    def grad(eta):
        return d.X.T @ fam.eta_terms(d.y, eta, trials, disp or 1.0).score

    return value, grad


def _check_family_part(model, eta, disp, full, empty, disp_pos, on_var=False):
    (lp1, g1), (lp0, g0) = full, empty
    value, grad = _reference(model, disp)
    close(lp1 - lp0, value(eta), value(eta + SHIFT))
    p = model.design.p
    close(g1[:p] - g0[:p], grad(eta), grad(eta + SHIFT))
    if disp is not None:  # d/d log dispersion
        u = np.log(disp**2 if on_var else disp)
        f = lambda u: value(eta, np.exp(0.5 * u if on_var else u))  # noqa: E731
        diff = g1[disp_pos] - g0[disp_pos]
        close(diff, derivative(f, u), derivative(f, u + 1e-3), FD_RTOL)


@pytest.mark.parametrize("case", _with_bernoulli(sorted(fk.ROW_FAMILIES)), ids=_case_id)
def test_general_compiled_density(case):
    from bayesglmm.bayes import density, density_layout

    pair, bernoulli = case
    model = _model(*pair, bernoulli=bernoulli)
    dd = density_layout.density_data(model)
    x = np.random.default_rng(9).normal(0, 0.4, dd.ndim)
    XT, offset, y, trials, reXT, re_ones, zidxT, meta, *rest = dd.args
    rest[-1] = 0.0  # no data-only constant: the reference has it
    meta0 = meta.copy()
    meta0[0] = 0
    full = density.logp_grad(x, XT, offset, y, trials, reXT, re_ones, zidxT, meta, *rest)
    empty = density.logp_grad(
        x, XT[:, :0], offset[:0], y[:0], trials[:0], reXT[:, :0], re_ones, zidxT[:, :0], meta0,
        *rest,
    )  # fmt: skip
    named = dd.expand(x, model)
    name = model.design.family.dispersion_name
    disp = float(named[name]) if name else None
    const = float(np.sum(model.design.family.log_constant(model.design.y, model.design.trials)))
    eta = _eta(model.design, named)
    pos, on_var = (dd.disp[1], dd.disp[2]) if dd.disp else (None, False)
    _check_family_part(model, eta, disp, (full[0] + const, full[1]), empty, pos, on_var)


@pytest.mark.parametrize("case", _with_bernoulli(sorted(fk.CANONICAL)), ids=_case_id)
def test_specialised_compiled_kernel(case):
    from bayesglmm.bayes import compiled, kernel

    pair, bernoulli = case
    model = _model(*pair, bernoulli=bernoulli)
    kd = compiled.kernel_data(model)
    x = np.random.default_rng(10).normal(0, 0.4, kd.ndim)
    X, offset, y, trials, re_x, re_zidx, *rest = kd.args
    rest[-1] = 0.0
    empty = (X[:0], offset[:0], y[:0], trials[:0], re_x[:0], re_zidx[:0], *rest)
    full = (X, offset, y, trials, re_x, re_zidx, *rest)
    named = kd.expand(x, model.design)
    eta = _eta(model.design, named)
    disp = float(named["sigma"]) if "sigma" in named else None
    const = float(np.sum(model.design.family.log_constant(model.design.y, model.design.trials)))
    for logp_grad, layout in (
        (kernel.logp_grad, tuple),
        (kernel.logp_grad_columns, kernel.columnar),
    ):
        lp1, g1 = logp_grad(x, *layout(full))
        _check_family_part(model, eta, disp, (lp1 + const, g1), logp_grad(x, *layout(empty)), -1)
    # the pointwise log-likelihood of the draws (constants included)
    cols = kernel.columnar(full)
    z0, q = kd.p + kd.K, kd.q
    sd = np.exp(x[kd.p : z0])
    effects = (sd[cols[15][:q]] * x[z0 : z0 + q])[None]
    sigma = np.array([disp if disp is not None else 1.0])
    y, trials = cols[6], cols[7]
    const = kernel.row_constants(y, trials, kd.family)
    ll = kernel.pointwise_loglik(
        x[None, : kd.p], effects, sigma, *cols[:4], cols[4], y, trials, const, kd.family
    )[0]
    ref = Point(model.design.family, y, model.design.trials, eta, disp)
    close(ll, ref.loglik(), ref.loglik(eta=eta + SHIFT))


@pytest.mark.parametrize("case", _with_bernoulli(COMBOS), ids=_case_id)
def test_pymc_likelihood(case):
    import pytensor
    import pytensor.tensor as pt

    from bayesglmm.bayes import family_pytensor

    (name, link), bernoulli = case
    p = point(name, link, seed=11, bernoulli=bernoulli)
    eta = pt.dvector("eta")
    logp = family_pytensor.pointwise_logp(p.family, eta, p.y, p.trials, bernoulli, p.disp)
    fn = pytensor.function([eta], [logp, pytensor.grad(logp.sum(), eta)])
    value, grad = fn(p.eta)
    close(value, p.loglik(), p.loglik(eta=p.eta + SHIFT))
    close(grad, p.score(), p.score(p.eta + SHIFT))


# ---------------------------------------------------------------------------- other call sites
@pytest.mark.parametrize("name, link", COMBOS)
def test_reference_cumulants(name, link):
    p = point(name, link, seed=13)
    mu = p.family.link.linkinv(p.eta)
    if name == "binomial":
        dist = stats.binom(p.n, mu)
    elif name == "poisson":
        dist = stats.poisson(mu)
    elif name == "gaussian":
        dist = stats.norm(mu, p.disp)
    elif name == "betabinomial":
        dist = stats.betabinom(p.n, mu * p.disp, (1 - mu) * p.disp)
    else:
        dist = stats.nbinom(p.disp, p.disp / (p.disp + mu))
    mean, var, skew, kurt = (np.asarray(v, dtype=float) for v in dist.stats("mvsk"))
    expected = (mean, var, skew * var**1.5, kurt * var**2)
    got = p.family.cumulants(mu, p.trials, p.disp)
    moved = p.family.link.linkinv(p.eta + SHIFT)
    moved_disp = None if p.disp is None else p.disp * (1.0 + SHIFT)
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        wrong = p.family.cumulants(moved, p.trials, moved_disp)[k]
        if np.any(e != 0.0):
            close(g, e, wrong, 1e-9)
        else:
            np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize("name, link", COMBOS)
def test_ebp_rows(name, link):
    """The empirical best predictor's row log-likelihood (without the data-only term) and
    its score and weight, on the (rows, nodes) arrays it evaluates."""
    from types import SimpleNamespace

    from bayesglmm.frequentist import ebp

    p = point(name, link, seed=14)
    design = SimpleNamespace(family=p.family)
    lo, hi = ETA_RANGE_OF.get((name, link), ETA_RANGE[link])
    nodes = np.clip(p.eta[:, None] + np.linspace(-0.2, 0.2, 5)[None, :], lo, hi)
    y, t = p.y[:, None], None if p.trials is None else p.trials[:, None]
    const = p.family.log_constant(p.y, p.trials)[:, None]

    def ref(eta):
        return p.family.loglik(y, trials=t, dispersion=p.disp, eta=eta) - const

    close(ebp._row_loglik(design, y, t, nodes, p.disp), ref(nodes), ref(nodes + SHIFT))
    score, W = ebp._score_weight(design, p.y, p.trials, p.eta, p.disp)
    terms = p.family.eta_terms(p.y, p.eta, p.trials, p.disp or 1.0)
    close(score, terms.score, p.score(p.eta + SHIFT))
    np.testing.assert_allclose(W, terms.W, rtol=RTOL)


@pytest.mark.parametrize("pair", [("binomial", "logit"), ("poisson", "log")], ids="/".join)
def test_gauss_seidel_objective(pair):
    from bayesglmm.frequentist.moments import gauss_seidel as gs

    p = point(*pair, seed=15)
    rng = np.random.default_rng(15)
    X = np.column_stack([np.ones(p.y.size), rng.normal(size=p.y.size)])
    idx = [rng.integers(0, 4, p.y.size)]
    beta, b = np.array([0.2, -0.4]), [rng.normal(size=4)]
    eta = X @ beta + b[0][idx[0]]
    const = p.family.log_constant(p.y, p.trials)

    def ref(e):
        return float(np.sum(p.loglik(eta=e) - const) - 0.5 * np.sum(b[0] ** 2) / 0.8**2)

    got = gs.joint_objective(p.y, p.n, X, np.zeros(p.y.size), idx, [0.8], beta, b, p.family)
    close(got, ref(eta), ref(eta + SHIFT))


@pytest.mark.parametrize("pair", [("binomial", "probit"), ("gaussian", "identity")], ids="/".join)
def test_gauss_seidel_refuses_a_non_canonical_or_dispersion_family(pair):
    from bayesglmm.frequentist.moments.gauss_seidel import gauss_seidel

    X = np.ones((4, 1))
    with pytest.raises(MethodError, match="canonical-link family without a dispersion"):
        gauss_seidel(np.ones(4), None, X, None, [np.arange(4) % 2], [1.0], get_family(*pair))


#: responses drawn per family by the prior predictive check (draws x rows)
PRIOR_DRAWS = 400


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_prior_predictive_draws_the_family(name):
    """With every parameter held (``Fixed`` priors) the prior predictive draws are the
    family's at one mean: standardized by the reference's cumulants they have mean 0 and
    variance 1 (bounds: 5 Monte Carlo standard errors of 24,000 draws)."""
    from bayesglmm.analysis.sensitivity.prior_predictive import simulate_prior
    from bayesglmm.model.priors import Fixed

    link = FAMILIES[name].links[0]
    priors = {"Intercept": Fixed(0.3), "x": Fixed(0.0), "g": Fixed(0.0)}
    if name in DISPERSION:
        priors[FAMILIES[name].dispersion_name] = Fixed(DISPERSION[name])
    model = _model(name, link, priors=priors)
    d = model.design
    y = simulate_prior(model, model.priors, PRIOR_DRAWS, np.random.default_rng(16))
    n = np.ones(d.n) if d.trials is None else d.trials
    mu = d.family.link.linkinv(np.full(d.n, 0.3) + d.offset)
    k1, k2, k3, k4 = d.family.cumulants(mu, d.trials, DISPERSION.get(name))
    z = ((y * n if d.family.has_trials else y) - k1) / np.sqrt(k2)
    count = z.size
    assert abs(z.mean()) < 5 / np.sqrt(count)
    kurt = float(np.mean(k4 / k2**2))  # excess kurtosis of z
    assert abs(z.var() - 1.0) < 5 * np.sqrt((kurt + 2.0) / count)


# ---------------------------------------------------------------------------- capabilities
@dataclass(frozen=True)
class Geometric(Family):
    """A family only this test knows: the number of failures before a success, mean
    ``mu``, ``P(y) = (1 - p)^y p`` with ``p = 1 / (1 + mu)`` (the negative binomial with
    ``alpha = 1``)."""

    family_name: ClassVar[str] = "geometric"
    links: ClassVar[tuple[str, ...]] = ("log",)

    def _loglik(self, y, n, mu, eta, dispersion, constant):
        m = self._mean(mu, eta)
        return constant + special.xlogy(y, m) - (y + 1.0) * np.log1p(m)

    def variance(self, mu, dispersion=1.0):
        return mu + mu**2

    def variance_derivative(self, mu, dispersion=1.0):
        return 1.0 + 2.0 * mu

    def mustart(self, y, trials=None):
        return y + 0.1


def _geometric_model():
    model = _model("negative_binomial", "log")
    model.design.family = Geometric.make("log")
    return model


def test_a_new_family_is_one_class():
    """The frequentist response takes a new family from its methods; the engines that
    declare their families refuse it with a reason."""
    from bayesglmm.bayes import compiled, density_layout, family_pytensor
    from bayesglmm.bayes.gibbs.collapsed import why_not_collapsed

    geo, nb = Geometric.make("log"), get_family("negative_binomial")
    p = point("negative_binomial", "log", seed=12)
    resp = Response(geo, p.y, None)
    mu = geo.link.linkinv(p.eta)
    ref = nb.loglik(p.y, mu, None, 1.0)
    close(resp.loglik(p.eta, mu), ref, nb.loglik(p.y, geo.link.linkinv(p.eta + SHIFT), None, 1.0))
    nb_score = lambda e: nb.eta_terms(p.y, e, None, 1.0).score  # noqa: E731
    close(resp.terms(p.eta).score, nb_score(p.eta), nb_score(p.eta + SHIFT))
    fit = fit_glm(geo, np.ones((p.y.size, 1)), p.y, None, np.zeros(p.y.size))
    assert fit.converged and np.exp(fit.beta[0]) == pytest.approx(p.y.mean(), rel=1e-8)

    model = _geometric_model()
    for reason in (
        compiled.unsupported_reason(model),
        density_layout.unsupported_reason(model),
        why_not_collapsed(model.design, model.priors),
    ):
        assert "geometric/log" in reason
    with pytest.raises(MethodError, match="no likelihood for the geometric family"):
        family_pytensor.distribution(geo, np.zeros(3), np.zeros(3), None, False, None)


def test_montecarlo_methods_refuse_a_dispersion_family():
    from bayesglmm.frequentist.montecarlo.complete import CompleteData

    model = _model("gaussian", "identity")
    with pytest.raises(MethodError, match="dispersion parameter.*'sigma'"):
        CompleteData(model.design, "mcem")


def test_engine_declarations_name_only_known_pairs():
    import importlib

    from bayesglmm.bayes import family_pytensor, kernel
    from bayesglmm.model.families import ENGINE_SPELLINGS

    assert {importlib.import_module(m) for m in ENGINE_SPELLINGS.values()} == {fk, family_pytensor}

    known = set(COMBOS)
    for declared in (fk.ROW_FAMILIES, fk.CANONICAL, kernel.FAMILIES, mc_kernels.FAMILIES):
        assert set(declared) <= known
    assert set(family_pytensor.LIKELIHOODS) == set(FAMILIES)
