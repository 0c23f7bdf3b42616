"""Hierarchical GLMs by h-likelihood (``method="hlik"``; Lee & Nelder 1996).

The model (Lee & Nelder 1996, JRSS-B 58; Lee, Nelder & Pawitan 2006, "Generalized Linear
Models with Random Effects", the book) has, for each random-intercept term, one random
effect ``u_j`` per level and its scale ``v_j = g_r(u_j)``:

.. math::

    g(\\mu_i) = x_i'\\beta + \\sum_k v_{k, j_k(i)}, \\qquad
    h = \\sum_i \\log f(y_i \\mid v) + \\sum_{k, j} \\log f_{\\lambda_k}(v_{kj}),

with ``f_lambda(v)`` the density of ``v`` (the Jacobian of ``u -> v`` included) and
``re_family``:

- ``"normal"``: ``v ~ N(0, lambda)`` (any link of the binomial, Poisson and Gaussian
  families; ``lambda`` is the variance of ``v``);
- ``"gamma"``: ``u ~ Gamma(mean 1, variance lambda)``, ``v = log u`` (Poisson, log link:
  the Poisson-gamma HGLM; ``lambda`` is the variance of ``u``);
- ``"beta"``: ``u ~ Beta(1/(2 lambda), 1/(2 lambda))``, mean 1/2, ``v = logit u``
  (binomial, logit link: the binomial-beta HGLM; ``lambda`` is the book's dispersion,
  ``var(u) = lambda / (4 (1 + lambda))`` and the intra-class correlation of the
  Bernoulli trials within a level is ``lambda / (1 + lambda)``).

``v`` maximizes ``h`` given the other parameters (Newton steps on ``h``: the IWLS of the
augmented GLM, Lee & Nelder 1996, Section 4). The fixed effects maximize, with
``variant``, either ``p_v(h) = [h - log det(D_vv / 2 pi) / 2]`` at ``v = v(beta)`` (HL(1,1),
the default: the Laplace approximation of the marginal likelihood, Noh & Lee 2007) or
``h`` itself (HL(0,1), Lee & Nelder 1996). The dispersions ``lambda`` (and the Gaussian
``sigma``) maximize the adjusted profile h-likelihood (APHL)

.. math::

    p_{\\beta, v}(h) = \\Big[h - \\tfrac12 \\log\\det\\{D(h; \\beta, v) / (2\\pi)\\}\\Big]
    _{\\beta = \\hat\\beta, v = \\hat v},
    \\qquad D = -\\partial^2 h / \\partial(\\beta, v)^2 .

For the Poisson-gamma HGLM ``log det D_vv`` does not depend on ``beta``, so the two
variants give the same ``beta``: HL(0,1) is HL(1,1), and given ``lambda`` the ``beta`` is
the exact marginal maximum likelihood estimate (Lee & Nelder 1996, Section 4.2). For a
Gaussian response with normal random effects the APHL is the restricted likelihood: the
fit is REML. ``D`` uses the Fisher weights of the response (the observed ones for the
canonical links, among them the gamma and beta pairings).

The log-likelihood reported is the marginal one: for the Poisson-gamma HGLM (one term) the
negative-multinomial likelihood in closed form; for the binomial-beta HGLM (one term) the
closed form through Gauss' hypergeometric function (the beta-binomial when the fixed part
is zero) where the fixed part is constant within each level, else adaptive Gauss-Hermite
quadrature over ``v``; for normal random effects (and for several terms of the other
families) the Laplace approximation ``p_v(h)`` at the estimates. Standard errors of
``beta`` come from the inverse of ``D`` (the augmented GLM's information), those of
``lambda`` from the curvature of the APHL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import linalg, optimize, special

from .._warn import warn
from ..errors import MethodError, OptionError
from ..results.assemble import Estimates
from ..results.details import Covariance, LikelihoodDetails
from ..results.result import wald_table
from .assemble import ConvergenceWarning, SingularFitWarning
from .glm import fit_glm_design
from .laplace import check_model

#: the random-effect distributions and the (family, link) each needs (None: any)
RE_FAMILIES = {"normal": None, "gamma": ("poisson", "log"), "beta": ("binomial", "logit")}
#: most Newton steps of the inner (beta, v) maximization of h
INNER_MAX = 200
#: log(lambda) (and log sigma) are kept within these bounds
LOG_BOUNDS = (-18.0, 9.0)
#: a normal-family lambda below this is a boundary (singular) fit
SINGULAR_LAMBDA = 1e-6
#: quadrature nodes of the binomial-beta marginal when it has no closed form
BETA_QUAD_NODES = 40
#: several terms: a dense D_vv beyond this many random effects is refused (q^2 doubles)
MAX_COLUMNS = 6000
#: central-difference step on the log dispersions for the APHL gradient and curvature
FD_STEP = 1e-4
#: the Newton polish of the log dispersions stops below this step
NEWTON_TOL = 1e-7
#: central-difference step on beta for the Hessian of p_v(h) (HL(1,1))
PV_STEP = 1e-5


# ------------------------------------------------------------------------------------------
# the random-effect distributions on the scale of v


def re_logpdf(kind: str, v: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """``log f_lambda(v)`` of each random effect (the Jacobian of ``u -> v`` included)."""
    if kind == "normal":
        return -0.5 * v**2 / lam - 0.5 * np.log(2 * np.pi * lam)
    if kind == "gamma":
        a = 1.0 / lam
        return a * (v - np.exp(v)) - special.gammaln(a) + a * np.log(a)
    a = 0.5 / lam  # beta: log u + log(1 - u) = v - 2 log(1 + e^v)
    return a * (v - 2.0 * np.logaddexp(0.0, v)) - special.betaln(a, a)


def re_curvature_derivative(kind: str, v: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """``d/dv`` of ``-d^2 log f / dv^2`` (the change of the random effects' curvature)."""
    if kind == "normal":
        return np.zeros_like(v)
    if kind == "gamma":
        return np.exp(v) / lam
    u = special.expit(v)
    return u * (1.0 - u) * (1.0 - 2.0 * u) / lam


def re_score(kind: str, v: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``d log f / dv`` and ``-d^2 log f / dv^2`` of each random effect."""
    if kind == "normal":
        return -v / lam, 1.0 / lam
    if kind == "gamma":
        u = np.exp(v)
        return (1.0 - u) / lam, u / lam
    u = special.expit(v)
    return 0.5 * (1.0 - 2.0 * u) / lam, u * (1.0 - u) / lam


# ------------------------------------------------------------------------------------------
# the h-likelihood and its maximization in (beta, v)


class Blocks:
    """``D = [[A, B], [B', C]] = -d^2 h / d(beta, v)^2`` by block elimination on ``C``
    (diagonal for one term, a dense Cholesky factor for several)."""

    def __init__(self, A, B, C, diagonal: bool):
        self.A, self.B, self.diagonal = A, B, diagonal
        if diagonal:
            self.c = C
            self.CiBt = B.T / C[:, None]
            self.logdet_C = float(np.sum(np.log(C / (2 * np.pi))))
        else:
            self.c = np.diag(C).copy()
            self.chol = linalg.cho_factor(C, lower=True)
            self.CiBt = linalg.cho_solve(self.chol, B.T)
            self.logdet_C = float(
                2 * np.sum(np.log(np.diag(self.chol[0]))) - C.shape[0] * np.log(2 * np.pi)
            )
        self.S = A - B @ self.CiBt
        self.S_chol = linalg.cho_factor(self.S, lower=True)
        self.logdet = self.logdet_C + float(
            2 * np.sum(np.log(np.diag(self.S_chol[0]))) - A.shape[0] * np.log(2 * np.pi)
        )

    def _ci(self, r):
        return r / self.c if self.diagonal else linalg.cho_solve(self.chol, r)

    def solve(self, g1, g2) -> tuple[np.ndarray, np.ndarray]:
        """``D^{-1} (g1, g2)``."""
        a = linalg.cho_solve(self.S_chol, g1 - self.B @ self._ci(g2))
        return a, self._ci(g2 - self.B.T @ a)

    def cov_beta(self) -> np.ndarray:
        """The ``beta`` block of ``D^{-1}``: ``S^{-1}``."""
        return linalg.cho_solve(self.S_chol, np.eye(self.A.shape[0]))

    def cond_var_v(self) -> np.ndarray:
        """The diagonal of the ``v`` block of ``D^{-1}``."""
        if self.diagonal:
            base = 1.0 / self.c
        else:
            base = np.diag(linalg.cho_solve(self.chol, np.eye(self.CiBt.shape[0])))
        return base + np.einsum("ij,jk,ik->i", self.CiBt, self.cov_beta(), self.CiBt)

    def diag_C(self) -> np.ndarray:
        """The diagonal of ``C = D_vv``."""
        return self.c


@dataclass
class HState:
    """The maximum of ``h`` in ``(beta, v)`` at given dispersions.

    Attributes
    ----------
    beta, v : ndarray
    h : float
        The h-likelihood there.
    blocks : Blocks
        ``D = -d^2 h / d(beta, v)^2`` there, factored.
    eta : ndarray
        Linear predictor (offset included).
    converged : bool
    iterations : int
    """

    beta: np.ndarray
    v: np.ndarray
    h: float
    blocks: Blocks | None
    eta: np.ndarray
    converged: bool
    iterations: int

    @property
    def aphl(self) -> float:
        """The adjusted profile h-likelihood ``p_{beta,v}(h) = h - log det(D/2pi)/2``."""
        return -np.inf if self.blocks is None else self.h - 0.5 * self.blocks.logdet

    @property
    def pv(self) -> float:
        """``p_v(h) = h - log det(D_vv / 2 pi) / 2``, the Laplace approximation of the
        marginal log-likelihood."""
        return -np.inf if self.blocks is None else self.h - 0.5 * self.blocks.logdet_C


class HLikelihood:
    """The h-likelihood of a design with random intercepts and a random-effect family."""

    def __init__(self, design, re_family: str, tol: float):
        self.design = design
        self.kind = re_family
        self.family = design.family
        self.X = np.asarray(design.X, dtype=float)
        self.Z = sp.hstack([t.Z for t in design.random], format="csr")
        self.term_of = np.concatenate([np.full(t.n_levels, k) for k, t in enumerate(design.random)])
        self.p, self.q = self.X.shape[1], self.Z.shape[1]
        self.y, self.trials, self.offset = design.y, design.trials, design.offset
        self.constant = self.family.log_constant(self.y, self.trials)
        self.gaussian = self.family.name == "gaussian"
        self.tol = tol
        self.n_terms = len(design.random)

    def split(self, logpar: np.ndarray) -> tuple[np.ndarray, float]:
        """``lambda`` per term and the Gaussian ``sigma`` (1 otherwise) from log values."""
        lam = np.exp(logpar[: self.n_terms])
        sigma = float(np.exp(logpar[self.n_terms])) if self.gaussian else 1.0
        return lam, sigma

    def _parts(self, beta, v, lam_col, sigma):
        eta = self.X @ beta + self.Z @ v + self.offset
        tr = self.family.eta_terms(self.y, eta, self.trials, sigma, constant=self.constant)
        h = float(np.sum(tr.loglik) + np.sum(re_logpdf(self.kind, v, lam_col)))
        return eta, tr, h

    def blocks(self, W, qdiag) -> Blocks | None:
        """``D`` at the Fisher weights ``W`` and random-effect curvatures ``qdiag``."""
        ZW = self.Z.multiply(W[:, None]).tocsr()
        A = self.X.T @ (self.X * W[:, None])
        B = np.asarray((ZW.T @ self.X).T)
        ZtWZ = (self.Z.T @ ZW).tocsr()
        try:
            if self.n_terms == 1:
                return Blocks(A, B, ZtWZ.diagonal() + qdiag, True)
            return Blocks(A, B, ZtWZ.toarray() + np.diag(qdiag), False)
        except (np.linalg.LinAlgError, ValueError):
            return None

    def maximize(self, logpar, beta, v) -> HState:
        """Maximize ``h`` in ``(beta, v)`` from ``(beta, v)`` by Newton steps with step
        halving (Fisher weights; the augmented GLM's IWLS)."""
        lam, sigma = self.split(logpar)
        lam_col = lam[self.term_of]
        beta, v = beta.copy(), v.copy()
        eta, tr, h = self._parts(beta, v, lam_col, sigma)
        converged, it = False, 0
        while it < INNER_MAX:
            it += 1
            d1, qdiag = re_score(self.kind, v, lam_col)
            bl = self.blocks(tr.W, qdiag)
            if bl is None:
                break
            sb, sv = bl.solve(self.X.T @ tr.score, self.Z.T @ tr.score + d1)
            t = 1.0
            for _ in range(40):
                nb, nv = beta + t * sb, v + t * sv
                neta, ntr, nh = self._parts(nb, nv, lam_col, sigma)
                if np.isfinite(nh) and nh >= h - 1e-12 * abs(h):
                    break
                t *= 0.5
            else:
                break
            size = t * max(float(np.max(np.abs(sb))), float(np.max(np.abs(sv), initial=0.0)))
            beta, v, eta, tr, h = nb, nv, neta, ntr, nh
            if size < self.tol:
                converged = True
                break
        _, qdiag = re_score(self.kind, v, lam_col)
        return HState(beta, v, h, self.blocks(tr.W, qdiag), eta, converged, it)

    def maximize_v(self, logpar, beta, v) -> HState:
        """Maximize ``h`` in ``v`` alone at ``beta`` (Newton steps with step halving)."""
        lam, sigma = self.split(logpar)
        lam_col = lam[self.term_of]
        v = v.copy()
        eta, tr, h = self._parts(beta, v, lam_col, sigma)
        converged, it = False, 0
        while it < INNER_MAX:
            it += 1
            d1, qdiag = re_score(self.kind, v, lam_col)
            bl = self.blocks(tr.W, qdiag)
            if bl is None:
                break
            sv = bl._ci(self.Z.T @ tr.score + d1)
            t = 1.0
            for _ in range(40):
                nv = v + t * sv
                neta, ntr, nh = self._parts(beta, nv, lam_col, sigma)
                if np.isfinite(nh) and nh >= h - 1e-12 * abs(h):
                    break
                t *= 0.5
            else:
                break
            size = t * float(np.max(np.abs(sv), initial=0.0))
            v, eta, tr, h = nv, neta, ntr, nh
            if size < self.tol:
                converged = True
                break
        _, qdiag = re_score(self.kind, v, lam_col)
        return HState(beta, v, h, self.blocks(tr.W, qdiag), eta, converged, it)

    def pv_gradient(self, logpar, st: HState) -> np.ndarray:
        """``d p_v(h) / d beta`` at ``st`` (``v`` at its maximum given ``beta``), with
        ``dv/dbeta = -C^{-1} Z'WX`` and ``dW/deta`` from the family."""
        lam, sigma = self.split(logpar)
        lam_col = lam[self.term_of]
        tr = self.family.eta_terms(
            self.y, st.eta, self.trials, sigma, second=True, constant=self.constant
        )
        bl = st.blocks
        dv = -bl.CiBt  # (q, p)
        if bl.diagonal:
            cinv = 1.0 / bl.c
            lev = cinv[self.design.random[0].index]
        else:
            Ci = linalg.cho_solve(bl.chol, np.eye(self.q))
            cinv = np.diag(Ci)
            lev = np.asarray((self.Z @ Ci) * self.Z.toarray()).sum(axis=1)
        deta = self.X + self.Z @ dv
        qprime = re_curvature_derivative(self.kind, st.v, lam_col)
        trace = (tr.dW * lev) @ deta + (qprime * cinv) @ dv
        return self.X.T @ tr.score - 0.5 * trace

    def maximize_pv(self, logpar, beta, v) -> HState:
        """HL(1,1)'s fixed effects: maximize ``p_v(h)`` in ``beta`` (``v`` maximizing ``h``
        given ``beta``) by Newton steps on its analytic gradient with a central-difference
        Hessian, halved until ``p_v(h)`` rises."""
        st = self.maximize_v(logpar, beta, v)
        g = self.pv_gradient(logpar, st)
        converged = False
        for _ in range(INNER_MAX):
            H = np.empty((self.p, self.p))
            for k in range(self.p):
                e = np.zeros(self.p)
                e[k] = PV_STEP
                sp_ = self.maximize_v(logpar, st.beta + e, st.v)
                sm_ = self.maximize_v(logpar, st.beta - e, st.v)
                H[:, k] = (self.pv_gradient(logpar, sp_) - self.pv_gradient(logpar, sm_)) / (
                    2 * PV_STEP
                )
            H = 0.5 * (H + H.T)
            try:
                step = -np.linalg.solve(H, g)
            except np.linalg.LinAlgError:
                break
            if not np.all(np.linalg.eigvalsh(H) < 0):
                step = g / max(np.abs(np.diag(H)).max(), 1.0)
            t = 1.0
            while t > 1e-6:
                new = self.maximize_v(logpar, st.beta + t * step, st.v)
                if np.isfinite(new.pv) and new.pv >= st.pv - 1e-12 * abs(st.pv):
                    break
                t *= 0.5
            else:
                break
            size = t * float(np.max(np.abs(step)))
            st = new
            g = self.pv_gradient(logpar, st)
            if size < self.tol:
                converged = bool(st.converged)
                break
        st.converged = converged
        return st


# ------------------------------------------------------------------------------------------
# the dispersions by the APHL


class _Profile:
    """``-p_{beta,v}(h)`` as a function of the log dispersions, warm-started inner fits."""

    def __init__(self, hl: HLikelihood, beta0, v0, variant: str = "HL(0,1)"):
        self.hl, self.beta, self.v = hl, beta0, v0
        self.inner = hl.maximize if variant == "HL(0,1)" else hl.maximize_pv
        self.evals = 0
        self.inner_failures = 0

    def state(self, logpar) -> HState:
        st = self.inner(np.asarray(logpar, float), self.beta, self.v)
        self.evals += 1
        if st.converged:
            self.beta, self.v = st.beta, st.v
        else:
            self.inner_failures += 1
        return st

    def value(self, logpar) -> float:
        a = self.state(logpar).aphl
        return -a if np.isfinite(a) else 1e300

    def value_and_grad(self, logpar) -> tuple[float, np.ndarray]:
        x = np.asarray(logpar, float)
        f = self.value(x)
        g = np.empty_like(x)
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = FD_STEP
            g[i] = (self.value(x + e) - self.value(x - e)) / (2 * FD_STEP)
        return f, g

    def hessian(self, x) -> np.ndarray:
        k = x.size
        H = np.empty((k, k))
        for i in range(k):
            e = np.zeros(k)
            e[i] = FD_STEP
            _, gp = self.value_and_grad(x + e)
            _, gm = self.value_and_grad(x - e)
            H[i] = (gp - gm) / (2 * FD_STEP)
        return 0.5 * (H + H.T)


def maximize_aphl(prof: _Profile, x0: np.ndarray, max_iter: int) -> tuple:
    """Maximize the APHL over the log dispersions: Nelder-Mead (bounded) to near the
    optimum, then Newton steps with central-difference gradient and Hessian, halved until
    the APHL rises. Returns ``(x, success, message, iterations)``."""
    bounds = [LOG_BOUNDS] * x0.size
    nm = optimize.minimize(
        prof.value,
        x0,
        method="Nelder-Mead",
        bounds=bounds,
        options={"maxiter": max_iter * x0.size, "xatol": 1e-5, "fatol": 1e-10},
    )
    x, f = np.clip(nm.x, *LOG_BOUNDS), float(nm.fun)
    n_iter = int(nm.nit)
    for _ in range(max_iter):
        n_iter += 1
        inside = (x > LOG_BOUNDS[0] + 1e-6) & (x < LOG_BOUNDS[1] - 1e-6)
        if not inside.any():
            return x, True, "all dispersions at their bounds", n_iter
        _, g = prof.value_and_grad(x)
        H = prof.hessian(x)[np.ix_(inside, inside)]
        try:
            np.linalg.cholesky(H)
            step = np.zeros_like(x)
            step[inside] = -np.linalg.solve(H, g[inside])
        except np.linalg.LinAlgError:
            return x, bool(nm.success), f"Nelder-Mead: {nm.message} (APHL not concave)", n_iter
        t = 1.0
        while t > 1e-4:
            xn = np.clip(x + t * step, *LOG_BOUNDS)
            fn = prof.value(xn)
            if fn <= f + 1e-12:
                break
            t *= 0.5
        else:
            return x, True, "Newton step does not improve the APHL", n_iter
        size = float(np.max(np.abs(xn - x)))
        x, f = xn, fn
        if size < NEWTON_TOL:
            return x, True, "Newton step on the log dispersions below tolerance", n_iter
    return x, False, "maximum iterations reached", n_iter


# ------------------------------------------------------------------------------------------
# marginal log-likelihoods


def marginal_loglik(hl: HLikelihood, st: HState, lam: np.ndarray, sigma: float) -> tuple:
    """The marginal log-likelihood at the estimates and how it was computed."""
    design = hl.design
    if hl.n_terms == 1 and hl.kind == "gamma":
        return poisson_gamma_loglik(design, st.beta, lam[0]), "negative multinomial (exact)"
    if hl.n_terms == 1 and hl.kind == "beta":
        eta0 = hl.X @ st.beta + hl.offset
        idx = design.random[0].index
        nlev = design.random[0].n_levels
        lo = np.full(nlev, np.inf)
        hi = np.full(nlev, -np.inf)
        np.minimum.at(lo, idx, eta0)
        np.maximum.at(hi, idx, eta0)
        if np.all(hi - lo < 1e-12):
            ll = binomial_beta_loglik(design.y, design.trials, idx, lo[idx], lam[0])
            return ll, "binomial-beta (exact, hypergeometric form)"
        return _beta_quadrature(hl, st, lam[0]), (
            f"binomial-beta (adaptive Gauss-Hermite, {BETA_QUAD_NODES} nodes)"
        )
    what = "exact (Gaussian)" if hl.gaussian else "Laplace approximation p_v(h)"
    return st.pv, what


def poisson_gamma_loglik(design, beta, lam: float) -> float:
    """Marginal log-likelihood of the Poisson-gamma HGLM with one random intercept:
    a product over levels of negative-multinomial probabilities."""
    t = design.random[0]
    mu = np.exp(design.X @ beta + design.offset)
    y = design.y
    a = 1.0 / lam
    ysum = np.bincount(t.index, weights=y, minlength=t.n_levels)
    musum = np.bincount(t.index, weights=mu, minlength=t.n_levels)
    rows = np.sum(y * np.log(mu) - special.gammaln(y + 1.0))
    lev = special.gammaln(ysum + a) - special.gammaln(a) + a * np.log(a)
    lev = lev - (ysum + a) * np.log(musum + a)
    return float(rows + np.sum(lev))


def binomial_beta_loglik(y, trials, index, eta0_rows, lam: float) -> float:
    """Marginal log-likelihood of the binomial-beta HGLM with one random intercept whose
    fixed part ``eta0`` is constant within each level.

    With ``c = exp(eta0)``, ``u ~ Beta(a, a)``, ``a = 1/(2 lambda)`` and
    ``p = c u / (1 - u + c u)`` (``logit p = eta0 + logit u``), a level with ``Y``
    successes in ``N`` trials contributes
    ``c^Y B(a + Y, a + N - Y) / B(a, a) 2F1(N, a + Y; 2a + N; 1 - c)`` (Euler's integral),
    times the binomial coefficients; ``c = 1`` is the beta-binomial.
    """
    y = np.asarray(y, float)
    n = np.asarray(trials, float)
    nlev = int(index.max()) + 1
    Y = np.bincount(index, weights=y, minlength=nlev)
    N = np.bincount(index, weights=n, minlength=nlev)
    eta0 = np.zeros(nlev)
    eta0[index] = eta0_rows
    a = 0.5 / lam
    const = np.sum(special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1))
    base = Y * eta0 + special.betaln(a + Y, a + N - Y) - special.betaln(a, a)
    c = np.exp(eta0)
    # Pfaff's transformation keeps the argument in [0, 1): for c > 1,
    # 2F1(N, a+Y; 2a+N; 1-c) = c^-N 2F1(N, a+N-Y; 2a+N; 1 - 1/c)
    small = c <= 1.0
    log_f = np.empty(nlev)
    log_f[small] = np.log(special.hyp2f1(N[small], a + Y[small], 2 * a + N[small], 1 - c[small]))
    big = ~small
    log_f[big] = -N[big] * eta0[big] + np.log(
        special.hyp2f1(N[big], a + N[big] - Y[big], 2 * a + N[big], 1 - 1 / c[big])
    )
    return float(const + np.sum(base + log_f))


def _beta_quadrature(hl: HLikelihood, st: HState, lam: float) -> float:
    """Binomial-beta marginal by adaptive Gauss-Hermite quadrature over each level's v."""
    t = hl.design.random[0]
    x, w = np.polynomial.hermite.hermgauss(BETA_QUAD_NODES)
    dvv = st.blocks.diag_C()
    s = np.sqrt(2.0 / dvv)
    eta0 = hl.X @ st.beta + hl.offset
    total = 0.0
    logs = np.empty((t.n_levels, x.size))
    for k in range(x.size):
        vk = st.v + s * x[k]
        ll = hl.family.loglik(hl.y, None, hl.trials, eta=eta0 + vk[t.index], constant=hl.constant)
        logs[:, k] = (
            np.bincount(t.index, weights=ll, minlength=t.n_levels)
            + re_logpdf("beta", vk, np.full(t.n_levels, lam))
            + x[k] ** 2
            + np.log(w[k])
        )
    total = np.sum(special.logsumexp(logs, axis=1) + np.log(s))
    return float(total)


# ------------------------------------------------------------------------------------------
# the fit


TITLE = (
    "Hierarchical generalized linear model fit by h-likelihood, {variant} (Lee & Nelder "
    "1996): {fixed}; v maximizes h; dispersions maximize the APHL p_beta,v(h)"
)
#: where each variant takes the fixed effects from
FIXED_FROM = {"HL(0,1)": "beta maximizes h", "HL(1,1)": "beta maximizes p_v(h)"}
#: how each random-effect family appears in the report
RE_TEXT = {
    "normal": "v ~ N(0, lambda); 'Variance' is lambda = var(v)",
    "gamma": "u ~ Gamma(mean 1, variance lambda), v = log u; 'Variance' is lambda = var(u)",
    "beta": "u ~ Beta(1/(2 lambda), 1/(2 lambda)), mean 1/2, v = logit u; 'Variance' is "
    "lambda (var(u) = lambda / (4 (1 + lambda)))",
}


def _start(design, start, n_terms: int, gaussian: bool):
    """Starting (beta, lambda, sigma) from ``start`` (None: GLM fit, lambda 0.5)."""
    p = design.X.shape[1]
    beta = lam = sigma = None
    if isinstance(start, list):
        raise OptionError("start must be one dict or vector for method 'hlik', got a list")
    if isinstance(start, dict):
        unknown = [
            k for k in start if k not in ("fixed_effects", "variance_components", "dispersion")
        ]
        if unknown:
            raise OptionError(
                f"start has unknown key {unknown[0]!r} for method 'hlik'; known: "
                "fixed_effects, variance_components, dispersion"
            )
        if "fixed_effects" in start:
            fe = start["fixed_effects"]
            if isinstance(fe, dict):
                fe = [fe.get(n, np.nan) for n in design.fixed_names]
            beta = np.asarray(fe, float)
        if "variance_components" in start:
            vc = start["variance_components"]
            if isinstance(vc, dict):
                vc = [vc.get(c, np.nan) for c in design.component_names]
            lam = np.atleast_1d(np.asarray(vc, float))
        if "dispersion" in start:
            sigma = float(np.asarray(start["dispersion"], float).ravel()[0])
    elif start is not None:
        x = np.asarray(start, float).ravel()
        want = p + n_terms + int(gaussian)
        if x.size != want:
            raise OptionError(
                f"start has {x.size} numbers; method 'hlik' takes {want}: the {p} fixed "
                f"effects, one lambda per term ({n_terms})" + (", sigma" if gaussian else "")
            )
        beta, lam = x[:p], x[p : p + n_terms]
        sigma = float(x[-1]) if gaussian else None
    if beta is not None and (beta.size != p or not np.all(np.isfinite(beta))):
        raise OptionError(f"start: fixed_effects needs {p} finite numbers")
    if lam is not None and (lam.size != n_terms or not np.all(lam > 0)):
        raise OptionError(f"start: variance_components needs {n_terms} positive numbers")
    if sigma is not None and not (sigma > 0 and np.isfinite(sigma)):
        raise OptionError("start: dispersion (sigma) must be positive")
    return beta, lam, sigma


def fit_hlik(
    model,
    *,
    re_family: str,
    max_iter: int,
    tol: float,
    start,
    variant: str,
    progressbar: bool | None,
) -> Estimates:
    """Fit a hierarchical GLM by h-likelihood, HL(0,1) (Lee & Nelder 1996).

    Parameters
    ----------
    model : GLMM
        Binomial, Poisson or Gaussian response with one or more random intercepts
        ``(1|g)``.
    re_family : {"normal", "gamma", "beta"}
        Distribution of the random effects (module docstring): ``"gamma"`` with the Poisson
        family and log link, ``"beta"`` with the binomial family and logit link.
    max_iter : int
        Most iterations of the optimizer of the dispersions (Nelder-Mead, then as many
        Newton steps at most, on their logs).
    tol : float
        Largest Newton step on ``(beta, v)`` that stops the inner maximization of ``h``.
    start : dict or vector, optional
        ``{"fixed_effects", "variance_components" (lambda per term), "dispersion"
        (Gaussian sigma)}`` or the vector ``(beta, lambda[, sigma])``.
    variant : {"HL(1,1)", "HL(0,1)"}
        Fixed effects maximizing ``p_v(h)`` (HL(1,1), the Laplace approximation of the
        marginal likelihood) or ``h`` (HL(0,1)); either way ``v`` maximizes ``h`` and the
        dispersions the APHL. The two agree for Poisson-gamma and Gaussian models.
    progressbar : bool or None
        Accepted for the shared vocabulary; the fit shows no bar.

    Returns
    -------
    Estimates
        Kind ``"likelihood"``: the fixed effects with standard errors from ``D^{-1}``;
        ``var(<group>)`` holds ``lambda`` (its meaning per ``re_family`` in
        ``details.extra["re_distribution"]``); ``random_effects[term]`` the predicted ``v``
        (log u, logit u or v) with their conditional variances (diagonal of ``D^{-1}``);
        ``loglik`` the marginal log-likelihood (``details.extra["loglik_method"]``);
        ``details.extra`` also the h-likelihood, the APHL, ``lambda`` and, for the beta
        family, ``var(u)``.
    """
    t0 = time.perf_counter()
    design = model.design
    check_model(design, "hlik")
    pair = RE_FAMILIES[re_family]
    fam, link = design.family.name, design.family.link.name
    if pair is not None and (fam, link) != pair:  # the record's check says it first
        raise MethodError(
            f"re_family={re_family!r} needs the {pair[0]} family with the {pair[1]} link"
        )
    gaussian = fam == "gaussian"
    n_terms = len(design.random)
    beta0, lam0, sigma0 = _start(design, start, n_terms, gaussian)
    if n_terms > 1 and design.q > MAX_COLUMNS:
        raise MethodError(
            f"method 'hlik' with several terms factors the dense information of their "
            f"{design.q} random effects; it takes at most {MAX_COLUMNS}"
        )
    hl = HLikelihood(design, re_family, float(tol))
    if beta0 is None:
        beta0 = fit_glm_design(design).beta
    if lam0 is None:
        lam0 = np.full(n_terms, 0.5)
    x0 = np.log(lam0)
    if gaussian:
        if sigma0 is None:
            resid = design.y - design.X @ beta0 - design.offset
            sigma0 = max(float(np.std(resid)), 1e-3)
        x0 = np.append(x0, np.log(sigma0))
    x0 = np.clip(x0, *LOG_BOUNDS)
    # log det D_vv is free of beta for the Poisson-gamma and the Gaussian identity-link
    # models: there HL(1,1) is HL(0,1), and the cheaper maximization of h gives it
    same = re_family == "gamma" or (gaussian and design.family.link.name == "identity")
    prof = _Profile(hl, np.asarray(beta0, float), np.zeros(hl.q), "HL(0,1)" if same else variant)
    x, success, message, n_iter = maximize_aphl(prof, x0, int(max_iter))
    st = prof.state(x)
    if st.blocks is None:
        raise MethodError("hlik: the information D is not positive definite at the estimates")
    lam, sigma = hl.split(x)
    t_opt = time.perf_counter() - t0

    # standard errors: beta from D^-1, log dispersions from the APHL curvature
    cov_beta = st.blocks.cov_beta()
    se_beta = np.sqrt(np.diag(cov_beta))
    at_bound = (x <= LOG_BOUNDS[0] + 1e-6) | (x >= LOG_BOUNDS[1] - 1e-6)
    free = ~at_bound
    se_log = np.full(x.size, np.nan)
    if free.any():
        H = prof.hessian(x)
        try:
            cov_log = np.linalg.inv(H[np.ix_(free, free)])
            d = np.diag(cov_log)
            se_log[free] = np.sqrt(np.where(d > 0, d, np.nan))
        except np.linalg.LinAlgError:
            pass
    table = wald_table(design.fixed_names, st.beta, se_beta)
    rows = pd.DataFrame(
        {"estimate": lam, "std_error": lam * se_log[:n_terms]},
        index=[f"var({c})" for c in design.component_names],
    )
    parts = [table, rows]
    if gaussian:
        name = design.family.dispersion_name
        parts.append(
            pd.DataFrame({"estimate": [sigma], "std_error": [sigma * se_log[-1]]}, index=[name])
        )
    table = pd.concat(parts)

    loglik, ll_method = marginal_loglik(hl, st, lam, sigma)
    random_effects = {}
    cvar = st.blocks.cond_var_v()
    lo = 0
    for t in design.random:
        idx = pd.Index(t.levels, name=t.group)
        sl = slice(lo, lo + t.n_levels)
        random_effects[t.name] = pd.DataFrame(st.v[sl, None], index=idx, columns=t.columns)
        random_effects[f"{t.name} (conditional variance)"] = pd.DataFrame(
            cvar[sl, None], index=idx, columns=t.columns
        )
        lo += t.n_levels

    singular = [
        c
        for c, val in zip(design.component_names, lam, strict=True)
        if re_family == "normal" and val < SINGULAR_LAMBDA
    ]
    converged = bool(success and st.converged)
    messages = []
    if not success:
        messages.append(f"dispersion optimizer did not converge: {message}")
    if not st.converged:
        messages.append("the maximization of h in (beta, v) did not converge at the optimum")
    if singular:
        warn(
            f"boundary (singular) fit (hlik): lambda of {', '.join(singular)} is below "
            f"{SINGULAR_LAMBDA:g}; consider dropping the term",
            SingularFitWarning,
        )
    if not converged:
        warn(f"hlik fit did not converge: {'; '.join(messages)}", ConvergenceWarning)
    mu = hl.family.link.linkinv(st.eta)
    pearson = hl.family.pearson_residuals(design.y, mu, design.trials, sigma)
    extra = {
        "re_family": re_family,
        "re_distribution": RE_TEXT[re_family],
        "hl_order": variant,
        "lambda": dict(zip(design.component_names, lam.tolist(), strict=True)),
        "h_likelihood": st.h,
        "aphl": st.aphl,
        "p_v_h": st.pv,
        "loglik_method": ll_method,
    }
    if re_family == "beta":
        extra["var_u"] = dict(
            zip(design.component_names, (lam / (4 * (1 + lam))).tolist(), strict=True)
        )
    title = (
        f"{TITLE.format(variant=variant, fixed=FIXED_FROM[variant])}\n"
        f" Random effects: {RE_TEXT[re_family]}\n"
        f" h-likelihood: {st.h:.4f}   APHL p_beta,v(h): {st.aphl:.4f}   "
        f"logLik: {ll_method}"
    )
    details = LikelihoodDetails(
        title=title,
        df_resid=int(design.n - (hl.p + x.size)),
        pearson_residuals=np.quantile(pearson, [0, 0.25, 0.5, 0.75, 1]).tolist(),
        label="marginal",
        deviance=-2.0 * loglik,
        extra=extra,
    )
    conv = {
        "optimizer": "Nelder-Mead then Newton on log dispersions (APHL); Newton on (beta, v)",
        "optimizer_message": message,
        "optimizer_success": bool(success),
        "evaluations": prof.evals,
        "inner_iterations": st.iterations,
        "inner_converged": bool(st.converged),
        "inner_failures": prof.inner_failures,
        "at_bound": [n for n, b in zip(design.component_names, at_bound, strict=False) if b],
        "singular_components": singular,
    }
    return Estimates(
        kind="likelihood",
        table=table,
        converged=converged,
        n_params=int(hl.p + x.size),
        loglik=float(loglik),
        vcov=Covariance("model", list(design.fixed_names), cov_beta),
        random_effects=random_effects,
        iterations=int(n_iter),
        messages=messages,
        singular=bool(singular),
        convergence_details=conv,
        details=details,
        timing={"optimize": t_opt},
    )
