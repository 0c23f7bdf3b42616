"""Jiang's (2001) chi-square goodness-of-fit test for mixed models.

Jiang, J. (2001). Goodness-of-fit tests for mixed model diagnostics. *The Annals of
Statistics* 29(4), 1137-1164.

The response space is cut into cells ``E_1, ..., E_K`` (intervals of the response, of the
proportion ``y / trials`` for a binomial response with trials). With ``N_k`` the number of
rows whose response falls in ``E_k`` and ``E_theta(N_k) = sum_i P_theta(y_i in E_k)`` its
expectation under the model, the probabilities integrated over the random effects (the
marginal model, not the conditional one), Jiang's statistic is

    chi^2 = a_n^{-2} sum_k (N_k - E_thetahat(N_k))^2,          a_n^2 = n.

Unlike Pearson's statistic for independent rows, the rows of a mixed model are dependent
and ``theta`` is estimated from the same data, so ``chi^2`` is not ``chi2(K - 1)``: with
``a_n^{-1} (N - E_thetahat N) -> N(0, Sigma)`` the limit is the weighted sum of chi-squares

    chi^2 -> sum_j lambda_j xi_j^2,     xi_j iid N(0, 1),

``lambda_j`` the eigenvalues of ``Sigma`` (Jiang's theorem). ``Sigma`` is estimated at the
fit: ``N - E_thetahat N = (N - E_theta N) - B (thetahat - theta) + o_p(a_n)`` with
``B = d E_theta N / d theta'``, and for a maximum-likelihood estimate
``Cov(N, thetahat) = B V`` (``E[N s] = d E N / d theta`` for the score ``s``, and
``thetahat - theta = I^{-1} s``), so

    Sigma = a_n^{-2} (Var_thetahat(N) - B V B'),

``V`` the fit's covariance of its estimates (``fit.vcov``). ``Var(N)`` is computed from
``n_sim`` data sets simulated from the fit with new random effects (it holds the dependence
between rows sharing a level), ``E_theta N`` and ``B`` by Gauss-Hermite quadrature over the
linear predictor, whose marginal at row ``i`` is ``N(x_i' beta, sum_t z_it' Sigma_t z_it)``
for any number of crossed or nested terms, ``B`` by central differences. Parameters the fit
has no covariance for (PQL's variance components, for instance) are treated as known.

Two other weightings of ``d = N - E N`` are offered, with the same kind of null:
``weight="pearson"`` (``sum d_k^2 / E_k``, eigenvalues of ``D^{-1/2} Sigma D^{-1/2}``) and
``weight="inverse"`` (``d' Sigma^+ d``, ``chi2(rank Sigma)``). The p-value of a weighted sum
of chi-squares is Imhof's (1961) integral.

``method="bootstrap"`` replaces the asymptotic null by a parametric bootstrap: data sets
simulated from the fit, refitted by the same method and options, the statistic recomputed
on each with the same cells, run as tasks of :func:`bayesglmm.study.run_study` (process
pool or Dask client, resumable store, seeds derived from ``random_seed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import integrate, optimize, stats

from ..errors import MethodError, OptionError
from ..model.design import refuse_extensions
from ..model.families import DISPERSION_NAMES
from ..results.predict import model_of, term_covariance

#: how the null distribution is obtained
METHODS = ("asymptotic", "bootstrap")
#: weightings of the cell differences
WEIGHTS = ("jiang", "pearson", "inverse")
#: fit kinds the test applies to (a point estimate of the full mixed model)
FIT_KINDS = ("likelihood", "lmm", "quasi_likelihood", "monte_carlo")
#: Gauss-Hermite nodes of the marginal integrals
N_NODES = 40
#: default number of cells
DEFAULT_CELLS = 5
#: families with a conditional distribution function here
FAMILIES = ("binomial", "poisson", "negative_binomial", "gaussian")


@dataclass
class GofResult:
    """What :func:`gof_test` returns.

    Attributes
    ----------
    statistic : float
        The statistic (Jiang's ``sum_k (N_k - E_k)^2 / n`` for ``weight="jiang"``).
    p_value : float
    method : str
        ``"asymptotic"`` or ``"bootstrap"``.
    weight : str
    weights : ndarray
        The ``lambda_j`` of the asymptotic null ``sum_j lambda_j chi2(1)`` (all ones for
        ``weight="inverse"``).
    df : int
        The rank of the estimated ``Sigma`` (``K - 1`` at most: the counts sum to ``n``).
    table : pandas.DataFrame
        One row per cell: ``cell`` (its interval), ``observed``, ``expected``.
    cuts : ndarray
        The cells' upper bounds (the last cell is unbounded above).
    n_boot : int or None
        Bootstrap refits that succeeded (``method="bootstrap"``).
    boot_statistics : ndarray or None
    n_failed : int
        Bootstrap refits that raised.
    note : str
    """

    statistic: float
    p_value: float
    method: str
    weight: str
    weights: np.ndarray = field(repr=False)
    df: int
    table: pd.DataFrame = field(repr=False)
    cuts: np.ndarray = field(repr=False)
    n_boot: int | None = None
    boot_statistics: np.ndarray | None = field(default=None, repr=False)
    n_failed: int = 0
    note: str = ""

    def __repr__(self) -> str:
        head = (
            f"Jiang chi-square goodness of fit ({self.method}, weight={self.weight!r}): "
            f"statistic = {self.statistic:.4g}, p = {self.p_value:.4g}, "
            f"{len(self.table)} cells, rank {self.df}"
        )
        if self.method == "asymptotic":
            head += "\nnull: sum_j lambda_j chi2(1), lambda = " + np.array2string(
                self.weights, precision=3, separator=", "
            )
        else:
            head += f"\nnull: {self.n_boot} bootstrap refits ({self.n_failed} failed)"
        with pd.option_context("display.width", 100):
            body = self.table.to_string(index=False, float_format=lambda v: f"{v:.2f}")
        return head + "\n" + body + (f"\n{self.note}" if self.note else "")


# ------------------------------------------------------------------------------------------
# the model's marginal cell probabilities


@dataclass
class _State:
    """The parameters the expected counts depend on."""

    beta: np.ndarray
    covs: list  # one k x k covariance per random term
    dispersion: float | None


def _response_scale(design) -> tuple[np.ndarray, np.ndarray | None]:
    """The response on the cells' scale (``y / trials`` for binomial trials) and the trials."""
    y = np.asarray(design.y, dtype=float)
    if design.family.name == "binomial" and design.trials is not None:
        n = np.asarray(design.trials, dtype=float)
        return y / n, n
    return y, None


def _cond_cdf(family, c: float, eta: np.ndarray, trials, disp) -> np.ndarray:
    """``P(v <= c | eta)`` with ``v`` the response on the cells' scale."""
    mu = family.link.linkinv(eta)
    name = family.name
    if name == "binomial":
        n = np.ones(eta.shape[0]) if trials is None else trials
        n = n.reshape((-1,) + (1,) * (eta.ndim - 1))
        return stats.binom.cdf(np.floor(c * n + 1e-9), n, np.clip(mu, 0.0, 1.0))
    if name == "poisson":
        return stats.poisson.cdf(np.floor(c + 1e-9), mu)
    if name == "negative_binomial":
        return stats.nbinom.cdf(np.floor(c + 1e-9), disp, disp / (disp + mu))
    return stats.norm.cdf((c - mu) / disp)


def _cell_of(family, v: np.ndarray, cuts: np.ndarray, trials) -> np.ndarray:
    """The cell index of each response (``v`` of shape ``(..., n)``), as ``_cond_cdf`` counts."""
    if family.discrete:
        n = np.ones(v.shape[-1]) if trials is None else trials
        if family.name == "binomial":
            counts = np.rint(v * n)
            thr = np.floor(cuts[:, None] * n[None, :] + 1e-9)  # (K-1, n)
        else:
            counts = v
            thr = np.broadcast_to(np.floor(cuts + 1e-9)[:, None], (cuts.size, v.shape[-1]))
        return (counts[..., None, :] > thr).sum(axis=-2)
    return np.searchsorted(cuts, v, side="left")


class _Marginal:
    """Marginal cell probabilities of each row by Gauss-Hermite quadrature over ``eta``."""

    def __init__(self, design):
        self.design = design
        self.family = design.family
        _, self.trials = _response_scale(design)
        x, w = np.polynomial.hermite_e.hermegauss(N_NODES)
        self.nodes, self.node_w = x, w / np.sqrt(2.0 * np.pi)

    def moments(self, state: _State) -> tuple[np.ndarray, np.ndarray]:
        d = self.design
        m = d.X @ state.beta + d.offset
        s2 = np.zeros(d.n)
        for t, S in zip(d.random, state.covs, strict=True):
            s2 += np.einsum("ij,jk,ik->i", t.X, S, t.X)
        return m, np.sqrt(np.clip(s2, 0.0, None))

    def cdf_rows(self, c: float, state: _State, moments=None) -> np.ndarray:
        """``P(v_i <= c)`` per row, integrated over the random effects."""
        m, s = self.moments(state) if moments is None else moments
        eta = m[:, None] + s[:, None] * self.nodes[None, :]
        return self._cdf(c, eta, state) @ self.node_w

    def _cdf(self, c, eta, state):
        return _cond_cdf(self.family, c, eta, self.trials, state.dispersion)

    def expected(self, cuts: np.ndarray, state: _State) -> np.ndarray:
        """``E N_k`` for the cells cut at ``cuts``."""
        mom = self.moments(state)
        F = [np.zeros(self.design.n)]
        F += [self.cdf_rows(c, state, mom) for c in cuts]
        F.append(np.ones(self.design.n))
        P = np.diff(np.stack(F, axis=1), axis=1)
        return P.sum(axis=0)


# ------------------------------------------------------------------------------------------
# parameters: the fit's estimates and the covariance V


def _state(fit, design) -> _State:
    beta = fit.fixed_effects.reindex(design.fixed_names).to_numpy(float)
    covs = [term_covariance(fit, t) for t in design.random]
    disp = None
    if design.family.has_dispersion:
        disp = fit.dispersion.get(design.family.dispersion_name)
        if disp is None or not np.isfinite(disp):
            raise MethodError(
                f"the fit has no estimate of the {design.family.name} dispersion "
                f"{design.family.dispersion_name!r}"
            )
        disp = float(disp)
    if not np.all(np.isfinite(beta)):
        raise MethodError("the fit has no estimate of every fixed effect")
    return _State(beta, covs, disp)


def _parameters(fit, design, state: _State):
    """The estimated parameters with a covariance in ``fit.vcov``: names, a function from
    their values to a :class:`_State`, their estimates, ``V``, and the names left out."""
    vc = fit.vcov
    fixed = list(design.fixed_names)
    names_in = set(vc.names) if vc is not None else set()
    used, setters, values = [], [], []
    for j, name in enumerate(fixed):
        if name in names_in:
            used.append(name)
            values.append(state.beta[j])
            setters.append(("beta", j))
    theta = (fit.info or {}).get("theta")
    relative = False
    if theta is not None and design.random:
        from ..frequentist.covariance import CovarianceFactor

        cf = CovarianceFactor(design)
        theta = np.asarray(theta, dtype=float)
        if theta.size == cf.n_theta:
            covs = cf.covariances(theta)
            scale = None
            for s in (1.0, state.dispersion):
                if s is None:
                    continue
                if all(
                    np.allclose(covs[t.name] * s**2, S, rtol=1e-4, atol=1e-10)
                    for t, S in zip(design.random, state.covs, strict=True)
                ):
                    scale = s
                    break
            relative = scale is not None and scale != 1.0
            if scale is not None:
                for j, tn in enumerate(cf.theta_names):
                    name = f"theta[{tn}]"
                    if name in names_in:
                        used.append(name)
                        values.append(theta[j])
                        setters.append(("theta", j))
    if state.dispersion is not None:
        name = f"log({design.family.dispersion_name})"
        if name in names_in:
            used.append(name)
            values.append(np.log(state.dispersion))
            setters.append(("logdisp", 0))
    left = [n for n in (vc.names if vc is not None else []) if n not in used]
    if not used:
        return [], None, np.zeros(0), np.zeros((0, 0)), left

    def make(p: np.ndarray) -> _State:
        beta = state.beta.copy()
        th = None if theta is None else theta.copy()
        disp = state.dispersion
        for (kind, j), v in zip(setters, p, strict=True):
            if kind == "beta":
                beta[j] = v
            elif kind == "theta":
                th[j] = v
            else:
                disp = float(np.exp(v))
        covs = state.covs
        if relative or (th is not None and any(k == "theta" for k, _ in setters)):
            full = cf.covariances(th)
            s2 = disp**2 if relative else 1.0  # theta relative to the dispersion (LMM-style)
            covs = [full[t.name] * s2 for t in design.random]
        return _State(beta, covs, disp)

    V = vc.block(used)
    return used, make, np.asarray(values, dtype=float), V, left


def _jacobian(marg: _Marginal, cuts, make, p0: np.ndarray) -> np.ndarray:
    """``B = d E N / d p'`` by central differences, shape ``(K, len(p0))``."""
    K = cuts.size + 1
    B = np.zeros((K, p0.size))
    for j in range(p0.size):
        h = 1e-4 * max(1.0, abs(p0[j]))
        up, down = p0.copy(), p0.copy()
        up[j] += h
        down[j] -= h
        B[:, j] = (marg.expected(cuts, make(up)) - marg.expected(cuts, make(down))) / (2 * h)
    return B


def _count_covariance(fit, design, cuts, n_sim: int, rng) -> np.ndarray:
    """``Var(N)`` over ``n_sim`` data sets simulated from the fit with new random effects."""
    from .residuals import _simulate_point

    family = design.family
    _, trials = _response_scale(design)
    K = cuts.size + 1
    counts = np.zeros((n_sim, K))
    chunk = max(1, min(n_sim, 2_000_000 // max(design.n * K, 1)))
    done = 0
    while done < n_sim:
        m = min(chunk, n_sim - done)
        sims = _simulate_point(fit, design, False, m, rng)
        v = sims / trials[None, :] if trials is not None else sims
        cell = _cell_of(family, v, cuts, trials)
        for k in range(K):
            counts[done : done + m, k] = (cell == k).sum(axis=1)
        done += m
    return np.cov(counts, rowvar=False, ddof=1)


# ------------------------------------------------------------------------------------------
# cells


def _default_cuts(marg: _Marginal, v: np.ndarray, state: _State, K: int) -> np.ndarray:
    """Cells of about equal size: observed quantiles (discrete), fitted ones (continuous)."""
    if marg.family.discrete:
        values = np.unique(v)
        cuts = []
        for q in np.quantile(v, np.arange(1, K) / K, method="inverted_cdf"):
            above = values[values > q]
            if above.size:
                cuts.append((q + above[0]) / 2.0)  # between two observed values
        return np.unique(np.asarray(cuts, dtype=float))
    mom = marg.moments(state)
    m, s = mom
    sd = np.sqrt(s**2 + state.dispersion**2)
    lo, hi = float(np.min(m - 12 * sd)), float(np.max(m + 12 * sd))
    out = []
    for k in range(1, K):
        target = k / K
        out.append(
            optimize.brentq(
                lambda c, t=target: float(np.mean(marg.cdf_rows(c, state, mom))) - t,
                lo,
                hi,
                xtol=1e-10,
            )
        )
    return np.asarray(out)


def _cuts(cells, marg, v, state) -> np.ndarray:
    if cells is None:
        cells = DEFAULT_CELLS
    if isinstance(cells, bool):
        raise OptionError(f"cells must be a number of cells (>= 2) or cut points, got {cells!r}")
    if isinstance(cells, int | np.integer):
        if cells < 2:
            raise OptionError(f"cells must be at least 2, got {cells}")
        cuts = _default_cuts(marg, v, state, int(cells))
    else:
        try:
            cuts = np.asarray(cells, dtype=float)
        except (TypeError, ValueError):
            raise OptionError(
                f"cells must be a number of cells or increasing cut points, got {cells!r}"
            ) from None
        if cuts.ndim != 1 or cuts.size < 1 or not np.all(np.isfinite(cuts)):
            raise OptionError("cells: cut points must be a non-empty 1-d array of finite numbers")
        if np.any(np.diff(cuts) <= 0):
            raise OptionError("cells: cut points must be strictly increasing")
    if cuts.size < 1:
        raise OptionError("cells: the response takes one value only; no cells to compare")
    return cuts


def _cell_labels(cuts: np.ndarray) -> list[str]:
    edges = [-np.inf, *cuts.tolist(), np.inf]
    return [f"({a:.4g}, {b:.4g}]" for a, b in zip(edges[:-1], edges[1:], strict=True)]


# ------------------------------------------------------------------------------------------
# the statistic and its null


def weighted_chi2_sf(x: float, weights) -> float:
    """``P(sum_j w_j xi_j^2 >= x)`` for ``xi_j`` iid N(0, 1), ``w_j > 0`` (Imhof 1961)."""
    lam = np.asarray(weights, dtype=float)
    lam = lam[lam > 0]
    if lam.size == 0:
        return 1.0 if x <= 0 else 0.0
    if x <= 0:
        return 1.0
    if np.allclose(lam, lam[0], rtol=1e-12):
        return float(stats.chi2.sf(x / lam[0], lam.size))

    lam = lam / lam.max()  # the probability is unchanged by scaling weights and x together
    x = x / (np.asarray(weights, dtype=float).max())
    omega = 0.5 * x

    def amp(u):  # half the sum of arctangents, and 1 / (u rho(u))
        return 0.5 * np.sum(np.arctan(lam * u)), np.exp(
            -0.25 * np.sum(np.log1p((lam * u) ** 2))
        ) / u

    def full(u):
        a, r = amp(u)
        return np.sin(a - omega * u) * r

    # sin(A - w u) = sin A cos(w u) - cos A sin(w u): [1, inf) as two Fourier integrals (QAWF)
    head = integrate.quad(full, 0.0, 1.0, limit=200)[0]
    cos_part = integrate.quad(
        lambda u: np.sin(amp(u)[0]) * amp(u)[1], 1.0, np.inf, weight="cos", wvar=omega
    )[0]
    sin_part = integrate.quad(
        lambda u: np.cos(amp(u)[0]) * amp(u)[1], 1.0, np.inf, weight="sin", wvar=omega
    )[0]
    val = head + cos_part - sin_part
    return float(np.clip(0.5 + val / np.pi, 0.0, 1.0))


def _quadratic(d, expected, weight, Sigma_pinv, n):
    if weight == "jiang":
        return float(d @ d) / n
    if weight == "pearson":
        return float(np.sum(d**2 / expected))
    return float(d @ Sigma_pinv @ d)


def _observed_expected(fit, design, cuts, marg, state):
    v, trials = _response_scale(design)
    cell = _cell_of(design.family, v, cuts, trials)
    observed = np.bincount(cell, minlength=cuts.size + 1).astype(float)
    return observed, marg.expected(cuts, state)


def _null_covariance(fit, design, cuts, marg, state, n_sim, rng):
    """``Var(N) - B V B'`` and the parameters left out of the correction."""
    varN = _count_covariance(fit, design, cuts, n_sim, rng)
    used, make, p0, V, left = _parameters(fit, design, state)
    if used:
        B = _jacobian(marg, cuts, make, p0)
        Sigma = varN - B @ V @ B.T
    else:
        Sigma = varN
    # Var(N) is simulated: u' Var(N) u carries a relative error of about sqrt(2 / n_sim) in
    # every direction u, so an eigenvalue of Sigma below 4 times that error is taken as zero
    # (the estimates fit that direction: Bernoulli cells with an intercept, say). The
    # weighted null keeps every positive eigenvalue; the rank and ``weight="inverse"`` use
    # the clear ones only, so that noise is not weighted up.
    w, U = np.linalg.eigh((Sigma + Sigma.T) / 2.0)
    noise = 4.0 * np.sqrt(2.0 / n_sim) * np.einsum("ij,ik,kj->j", U, varN, U)
    clear = w > np.maximum(noise, 1e-12 * max(float(w.max()), 1e-300))
    return _NullCov((U * np.clip(w, 0.0, None)) @ U.T, U[:, clear], w[clear]), used, left


@dataclass
class _NullCov:
    """The estimated ``Sigma`` (negative eigenvalues set to zero) and its clear part."""

    Sigma: np.ndarray
    basis: np.ndarray
    values: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.values.size)

    def pinv(self) -> np.ndarray:
        return (self.basis / self.values) @ self.basis.T


def _null_weights(null: _NullCov, expected, weight, n) -> tuple[np.ndarray, int]:
    if weight == "inverse":
        return np.ones(null.rank), null.rank
    if weight == "jiang":
        M = null.Sigma / n
    else:
        r = 1.0 / np.sqrt(expected)
        M = null.Sigma * np.outer(r, r)
    lam = np.linalg.eigvalsh((M + M.T) / 2.0)[::-1]
    lam = lam[lam > 1e-12 * max(float(lam[0]), 1e-300)]
    return lam, null.rank


def _check(fit, method, weight, n_sim, n_boot, bootstrap_args) -> None:
    if method not in METHODS:
        raise OptionError(f"method must be one of {METHODS}, got {method!r}")
    if weight not in WEIGHTS:
        raise OptionError(f"weight must be one of {WEIGHTS}, got {weight!r}")
    for name, value, low in (("n_sim", n_sim, 100), ("n_boot", n_boot, 2)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise OptionError(f"{name} must be an integer of at least {low}, got {value!r}")
    if method == "asymptotic":
        given = [k for k, v in bootstrap_args.items() if v is not None]
        if given:
            raise OptionError(f"{', '.join(given)}: used by method='bootstrap' only")
    kind = getattr(fit, "kind", None)
    if kind not in FIT_KINDS:
        raise MethodError(
            f"gof_test needs a point estimate of the mixed model (kinds {FIT_KINDS}); "
            f"a {kind!r} fit has none: use bg.residuals for Bayesian or marginal (GEE) fits"
        )
    if fit.family not in FAMILIES:
        raise MethodError(f"gof_test supports the families {FAMILIES}, not {fit.family!r}")


def _core(fit, design, cuts_spec, weight, n_sim, rng, need_sigma):
    marg = _Marginal(design)
    state = _state(fit, design)
    v, _ = _response_scale(design)
    cuts = _cuts(cuts_spec, marg, v, state)
    observed, expected = _observed_expected(fit, design, cuts, marg, state)
    if weight == "pearson" and np.any(expected <= 0):
        raise MethodError("weight='pearson': a cell has expected count 0; choose other cells")
    Sigma, used, left = (None, [], [])
    if need_sigma:
        Sigma, used, left = _null_covariance(fit, design, cuts, marg, state, n_sim, rng)
    return cuts, observed, expected, Sigma, used, left


def gof_test(
    fit,
    cells=None,
    method: str = "asymptotic",
    weight: str = "jiang",
    n_sim: int = 2000,
    n_boot: int = 200,
    model=None,
    random_seed=None,
    fit_options=None,
    store=None,
    client=None,
    max_workers: int | None = None,
    progressbar: bool | None = None,
) -> GofResult:
    """Jiang's (2001) chi-square goodness-of-fit test of a fitted mixed model.

    Parameters
    ----------
    fit : FitResult
        A likelihood, linear mixed, PQL or Monte Carlo fit (Bayesian and marginal fits are
        refused). Families: binomial, Poisson, negative binomial, Gaussian.
    cells : int or array of float, optional
        The number of cells (default 5) or their cut points ``c_1 < ... < c_{K-1}`` (cells
        ``(-inf, c_1], (c_1, c_2], ..., (c_{K-1}, inf)`` on the scale of the response, or of
        ``y / trials`` for a binomial response with trials). A number of cells cuts count
        responses between observed values at their quantiles (fewer cells where values
        repeat) and continuous responses at quantiles of the fitted marginal distribution.
    method : {"asymptotic", "bootstrap"}
        Jiang's weighted chi-square null, or a parametric bootstrap.
    weight : {"jiang", "pearson", "inverse"}
        ``sum_k d_k^2 / n`` (Jiang), ``sum_k d_k^2 / E_k`` or ``d' Sigma^+ d``, with
        ``d = N - E N`` (see the module docstring).
    n_sim : int
        Data sets simulated from the fit for ``Var(N)`` (asymptotic null; also for each
        bootstrap refit with ``weight="inverse"``).
    n_boot : int
        Bootstrap refits.
    model : GLMM, optional
        The model of the fit (needed for a fit loaded from a file).
    random_seed : int, optional
        Seeds the simulations (and the bootstrap's derived task seeds).
    fit_options : dict, optional
        Options of the bootstrap refits (default: the fit's own options).
    store, client, max_workers, progressbar
        As :func:`bayesglmm.study.run_study` (``method="bootstrap"`` only).

    Returns
    -------
    GofResult
    """
    bootstrap_args = {
        "fit_options": fit_options,
        "store": store,
        "client": client,
        "max_workers": max_workers,
        "progressbar": progressbar,
    }
    _check(fit, method, weight, n_sim, n_boot, bootstrap_args)
    glmm = model_of(fit, model)
    design = glmm.design
    refuse_extensions(design, "gof_test")
    if random_seed is not None and (
        isinstance(random_seed, bool) or not isinstance(random_seed, int | np.integer)
    ):
        raise OptionError(f"random_seed must be an integer or None, got {random_seed!r}")
    seed = int(np.random.SeedSequence(random_seed).entropy % (2**63))
    rng = np.random.default_rng(seed)
    need_sigma = method == "asymptotic" or weight == "inverse"
    cuts, observed, expected, Sigma, used, left = _core(
        fit, design, cells, weight, n_sim, rng, need_sigma
    )
    n = design.n
    d = observed - expected
    pinv = Sigma.pinv() if weight == "inverse" else None
    statistic = _quadratic(d, expected, weight, pinv, n)
    table = pd.DataFrame({"cell": _cell_labels(cuts), "observed": observed, "expected": expected})
    notes = []
    if need_sigma:
        lam, rank = _null_weights(Sigma, expected, weight, n)
        if left:
            notes.append(f"not in the correction B V B': {', '.join(left)}")
        known = []
        if design.random and not any(u.startswith("theta[") for u in used):
            known.append("the variance components")
        if design.family.has_dispersion and not any(u.startswith("log(") for u in used):
            known.append(f"the dispersion {design.family.dispersion_name!r}")
        if known:
            notes.append(
                f"{' and '.join(known)} treated as known (the fit has no covariance for "
                "them): the asymptotic null is conservative"
            )
        if fit.kind != "likelihood" and fit.kind != "lmm":
            notes.append(
                f"Cov(N, thetahat) = B V holds for maximum likelihood; a {fit.kind} fit "
                "makes the asymptotic null approximate"
            )
    else:
        lam, rank = np.zeros(0), cuts.size
    if method == "asymptotic":
        if rank == 0:
            raise MethodError(
                "the estimates fit every cell count (Sigma = Var(N) - B V B' has rank 0), "
                "as for a two-valued response with an intercept: use more cells or "
                "method='bootstrap'"
            )
        p = weighted_chi2_sf(statistic, lam)
        return GofResult(
            statistic, p, method, weight, lam, rank, table, cuts, note="; ".join(notes)
        )
    boots, n_failed, first_error = _bootstrap(
        fit, glmm, cuts, weight, n_sim, n_boot, seed, fit_options, store, client,
        max_workers, progressbar,
    )  # fmt: skip
    if boots.size == 0:
        raise MethodError(f"every bootstrap refit failed; the first: {first_error}")
    p = float((1.0 + np.sum(boots >= statistic)) / (boots.size + 1.0))
    if n_failed:
        notes.append(f"{n_failed} refits failed (first: {first_error})")
    return GofResult(
        statistic,
        p,
        method,
        weight,
        lam,
        rank,
        table,
        cuts,
        n_boot=int(boots.size),
        boot_statistics=boots,
        n_failed=n_failed,
        note="; ".join(notes),
    )


# ------------------------------------------------------------------------------------------
# parametric bootstrap on the study runner


def bootstrap_statistic(
    model_args: dict,
    truth: dict,
    method: str,
    options: dict,
    cuts: np.ndarray,
    weight: str,
    n_sim: int,
    seed: int,
) -> float:
    """One bootstrap replicate: simulate from ``truth``, refit, recompute the statistic."""
    from ..glmm import GLMM
    from ..model.simulate import simulate
    from ..options import known_options

    data_ss, fit_ss, sim_ss = np.random.SeedSequence(seed).spawn(3)
    sim = simulate(
        model_args["formula"],
        model_args["data"],
        family=model_args["family"],
        link=model_args["link"],
        random_seed=int(data_ss.generate_state(1, np.uint64)[0] >> np.uint64(1)),
        **truth,
    )
    glmm = GLMM(model_args["formula"], sim, family=model_args["family"], link=model_args["link"])
    opts = dict(options)
    known = known_options(method)
    if "random_seed" in known and "random_seed" not in opts:
        opts["random_seed"] = int(fit_ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
    if "progressbar" in known:
        opts["progressbar"] = False
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refit = glmm.fit(method, **opts)
    rng = np.random.default_rng(sim_ss)
    _, observed, expected, Sigma, _, _ = _core(
        refit, glmm.design, cuts, weight, n_sim, rng, weight == "inverse"
    )
    pinv = Sigma.pinv() if weight == "inverse" else None
    return _quadratic(observed - expected, expected, weight, pinv, glmm.design.n)


def _bootstrap(
    fit, glmm, cuts, weight, n_sim, n_boot, seed, fit_options, store, client, max_workers,
    progressbar,
):  # fmt: skip
    from ..analysis.study import Task, run_study
    from ..options import known_options

    if fit_options is None:
        given = (fit.info or {}).get("options") or {}
        keep = set(known_options(fit.method)) - {"progressbar", "random_seed"}
        fit_options = {k: v for k, v in given.items() if k in keep and v is not None}
    truth = {
        "fixed_effects": fit.fixed_effects.to_dict(),
        "variance_components": fit.variance_components.to_dict(),
        "correlations": fit.re_correlations.to_dict() or None,
        "dispersion": _dispersion_of(fit),
    }
    model_args = {
        "formula": glmm.formula,
        "data": glmm.data,
        "family": glmm.design.family.name,
        "link": glmm.design.family.link.name,
    }
    kwargs = {
        "model_args": model_args,
        "truth": truth,
        "method": fit.method,
        "options": dict(fit_options),
        "cuts": np.asarray(cuts),
        "weight": weight,
        "n_sim": int(n_sim),
    }
    tasks = [Task(f"gof-boot={b}", bootstrap_statistic, kwargs) for b in range(n_boot)]
    study = run_study(
        tasks,
        store=store,
        client=client,
        max_workers=max_workers,
        random_seed=seed,
        progressbar=False if progressbar is None else progressbar,
    )
    values = [float(study.results[t.key]) for t in tasks if t.key in study.results]
    errors = study.table.loc[study.table["status"] == "failed", "error"].tolist()
    return np.asarray(values), len(errors), (errors[0] if errors else None)


def _dispersion_of(fit):
    for name in DISPERSION_NAMES:
        if name in fit.dispersion.index:
            return float(fit.dispersion[name])
    return None
