"""Lin's (1997) score test of variance components: only the model under the null is fitted.

Lin, X. (1997). Variance component testing in generalised linear models with random
effects. *Biometrika* 84, 309-326.

With ``eta = X beta + sum_k Z_k b_k``, ``b_k ~ N(0, theta_k I)``, the derivative of the
integrated log-likelihood at ``theta = 0`` is exactly

.. math::

    U_k = \\tfrac12 \\{ s' Z_k Z_k' s - \\operatorname{tr}(W_o Z_k Z_k') \\},

``s = dl/deta`` the score of the linear predictor, ``W_o = -d^2 l / deta^2`` (the Fisher
weight ``W`` for a canonical link). Two forms are computed:

**Global test** (the model under the null has no random effect: ``term=None``, or the only
term of the model). The null is the GLM, fitted by IRLS (:mod:`bayesglmm.frequentist.glm`).
``beta`` estimated makes ``E s s' = P = W - W X (X'WX)^{-1} X'W`` rather than ``W``; the
statistic is Lin's bias-corrected score

.. math::

    U_k^c = U_k + \\tfrac12 \\operatorname{tr}\\{(W - P) Z_k Z_k'\\},

whose variance is the efficient information ``I_tt - I_tb I_bb^{-1} I_bt`` with (Lin 1997,
section 2, for the response cumulants ``k2, k3, k4`` of :meth:`Family.cumulants`)

- ``I_{kl} = 1/2 ||Z_k' W Z_l||_F^2 + 1/4 sum_i a^k_i a^l_i r_i``,
  ``r_i = c_i^4 k4_i + 2 c_i^2 d_i k3_i + d_i^2 k2_i``;
- ``I_{k beta} = 1/2 sum_i a^k_i (c_i^3 k3_i + c_i d_i k2_i) x_i``; ``I_bb = X'WX``;

``a^k_i = (Z_k Z_k')_ii``, ``s_i = c_i (y_i - mu_i)`` and ``W_o = W - (y - mu) d`` (``d = 0``
for a canonical link). Nothing ``n x n`` is formed: ``Z_k'WZ_l`` is sparse, so the global
test of a crossed design with thousands of levels costs about one GLM fit.

**Test of one term with others present.** The null is the GLMM without the term, fitted by
the method of the given fit (``"laplace"`` when a model is given; ``"lmm"`` for a Gaussian
model). The score is computed in the PQL/Laplace *working* model of that fit (Lin 1997,
section 3; Breslow & Clayton 1993): the working vector ``Y* = X beta + Z0 b0 + W^{-1} s`` at
the null fit's conditional modes ``b0`` is taken as Gaussian with covariance
``V = W^{-1} + Z0 D0 Z0'`` (``D0`` the null fit's covariance of the random effects). Then
``U_k^c = 1/2 {e' Z_k Z_k' e - tr(P Z_k Z_k')}`` with ``P = V^{-1} - V^{-1}X(X'V^{-1}X)^{-1}
X'V^{-1}``, ``e = P Y*``, and the information ``I_xy = 1/2 tr(P A_x P A_y)`` over the tested
variances and the null's covariance parameters (variances, covariances of correlated terms,
the Gaussian residual variance), the latter profiled out as nuisance parameters. This is an
approximation: the working model treats ``Y*`` as Gaussian with the weights held at the null
fit (no third or fourth cumulant terms). ``V^{-1}`` is applied through Woodbury's identity
with the ``q0 x q0`` matrix ``C = I + Lambda0' Z0' W Z0 Lambda0`` (diagonal for one random
intercept; else a dense Cholesky factor up to :data:`DENSE_MAX` columns, a sparse LU above),
and the information needs the dense ``L_a x L_b`` blocks ``Z_a' P Z_b`` of the tested and
null terms: nothing ``n x n`` or ``n x L`` is formed (except ``P Z`` for the Gaussian residual
variance).

**Gaussian family.** The working model is then the model itself (``V = sigma^2 I + Z0 D0
Z0'``) and the test, global or not, is the classical REML score test with ``sigma^2`` a
nuisance parameter (the residual variance of the null fit: ``RSS / (n - p)`` for the linear
model).

**Several components** (several terms, or the columns of a term ``(x|g)``). The score test
is for the diagonal variances of each term: covariances are not identified when the
variances are zero (their score vanishes at ``theta = 0``). The test reported as
``p_value`` is Lin's one-sided global statistic ``z = sum_k U_k^c / sqrt(1' I_eff 1)``
(``z^2`` is Lin's ``X^2``), against ``N(0, 1)`` in the upper tail. The ``K``-df form
``U' I_eff^{-1} U ~ chi2(K)`` is ``p_value_naive``. With one component ``p_value_naive`` is
the two-sided ``chi2(1)`` p-value of ``z^2``.

**Small-sample correction** (``correction=True``; the default for the global form with a
binomial family, see below): the quadratic part ``S = 1/2 s' A s`` (``A = sum_k Z_k Z_k'``)
of the statistic is referred to ``kappa chi2(nu)`` with its mean ``E = 1/2 tr(P A)`` and
variance ``I_eff`` matched,
``kappa = I_eff / (2 E)``, ``nu = 2 E^2 / I_eff``: a Satterthwaite-type reference of the
kind Lin (1997) suggests for small samples (binary data in small clusters, where the
normal approximation of the skewed ``S`` is poor); the moments used are the first-order
ones above, so the correction shares their approximations. In the working form the
information omits the (negative, for Bernoulli rows) fourth-cumulant terms, so the
standardized score has standard deviation a little below 1 there (about 0.93 for Bernoulli
rows in ``benchmarks/bench_score_test.py``) and the test is somewhat conservative; the
scaled chi-square makes it more so, which is why it is not the default for that form.

**What is not corrected.** Lin's bias correction removes the first-order effect of
estimating ``beta``. An ``O(1)`` remainder stays: expanding ``U^c(beta_hat)`` to second order,
for a canonical link,

.. math::

    E\\,U_k^c \approx \tfrac14 (X'(a^k \\circ W'))' (X'WX)^{-1} X'(W' \\circ h)
        - \tfrac14 \textstyle\\sum_i a^k_i W''_i h_i,

``h_i = x_i'(X'WX)^{-1}x_i``, ``W'``, ``W''`` the derivatives of ``W`` in ``eta`` (the first
term is ``-I_tb`` times the ``O(1/n)`` bias of ``beta_hat``; the two cancel for the Poisson
log link with an intercept). For Bernoulli clusters of 4 it is about 0.22, 0.1 standard
deviation of ``U``, shrinking relative to the standard deviation as clusters are added; it
makes the test slightly liberal in small binary designs (see
``benchmarks/results/score_test.txt``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy import stats
from scipy.sparse.linalg import splu

from ..errors import MethodError, OptionError
from ..model.design import refuse_extensions
from .reduced import (
    VarianceTest,
    _drop_column,
    find_term,
    formula_with,
    glm_loglik,
)

#: families the score test takes (a likelihood with the cumulants of the response)
FAMILIES = ("binomial", "poisson", "gaussian")
#: fit kinds whose model can be tested (the null refitted by the fit's method)
FIT_KINDS = ("likelihood", "lmm")
#: the default small-sample correction of the global form, by family (the working form:
#: none by default)
CORRECTION_DEFAULT = {"binomial": True, "poisson": False, "gaussian": False}
#: null models with at most this many random effects factor ``C`` densely
DENSE_MAX = 6000


@dataclass
class ScoreParts:
    """The pieces of a score test (:func:`score_parts`).

    Attributes
    ----------
    U : ndarray (K,)
        Bias-corrected scores ``U_k^c`` of the tested variances.
    info : ndarray (K, K)
        Efficient information of the tested variances (nuisance parameters profiled out).
    quad : ndarray (K,)
        The quadratic parts ``S_k = U_k^c + E_k``.
    mean : ndarray (K,)
        ``E_k = 1/2 tr(P Z_k Z_k')``, the null mean of ``S_k``.
    raw : ndarray (K,)
        Global form: the score without the bias correction, ``U_k``, the derivative of
        the log-likelihood at zero. Working form: the quadratic ``1/2 e' Z_k Z_k' e``.
    names : list of str
        The tested variances.
    form : str
        ``"global"`` (GLM null, exact cumulants) or ``"working"`` (working-model null).
    null_fit : object
        The fit under the null.
    """

    U: np.ndarray
    info: np.ndarray
    quad: np.ndarray
    mean: np.ndarray
    raw: np.ndarray
    names: list
    form: str
    null_fit: object


# --------------------------------------------------------------------------- checks
def _resolve(model_or_fit):
    """``(model, method, options)`` of the null fit, with the checks of the input."""
    from ..glmm import GLMM
    from ..results.result import FitResult

    if isinstance(model_or_fit, GLMM):
        model = model_or_fit
        gaussian = model.design.family.name == "gaussian"
        return model, ("lmm" if gaussian else "laplace"), {}
    if not isinstance(model_or_fit, FitResult):
        raise MethodError(
            "score_test takes a bayesglmm.GLMM or a likelihood fit of one, got "
            f"{type(model_or_fit).__name__}"
        )
    fit = model_or_fit
    kind = fit.kind
    if kind == "bayesian":
        raise MethodError(
            f"score_test needs a likelihood fit or a model, not a Bayesian fit ({fit.method}); "
            "pass the model: score_test(fit.model, term)"
        )
    if kind == "marginal":
        raise MethodError(
            f"score_test does not take a GEE fit ({fit.method}): a marginal model has no "
            "random-effect variance to test; pass a GLMM"
        )
    if kind == "quasi_likelihood":
        raise MethodError(
            f"score_test needs a likelihood; the {fit.method} fit is a quasi-likelihood fit "
            "without one; pass the model (score_test(fit.model, term)) or a laplace fit"
        )
    if fit.model is None:
        raise MethodError("the fit has no model attached (a result read from a file?): refit")
    if kind not in FIT_KINDS:
        return fit.model, "laplace", {}
    options = dict(fit.info.get("options") or {})
    options.pop("start", None)
    return fit.model, fit.method, options


def _check_family(design) -> None:
    fam = design.family
    if fam.name not in FAMILIES:
        raise MethodError(
            f"score_test takes the {', '.join(FAMILIES)} families (a likelihood whose "
            f"cumulants give the information); the model is {fam.name}/{fam.link.name}"
        )
    if fam.name == "gaussian" and fam.link.name != "identity":
        raise MethodError(
            "score_test takes the Gaussian family with the identity link only; the model "
            f"has the {fam.link.name} link"
        )
    if not design.random:
        raise MethodError("score_test needs a model with a random-effect term such as (1|g)")


# --------------------------------------------------------------------------- blocks
def column_block(t, c: int) -> sp.csc_matrix:
    """The ``n x L`` block of ``Z`` of column ``c`` of term ``t`` (one column per level)."""
    n = t.index.size
    return sp.csc_matrix((t.X[:, c], (np.arange(n), t.index)), shape=(n, t.n_levels))


def _tested(design, term):
    """``(label, blocks, names, reduced random specs or None for the GLM)``."""
    if term is None or (isinstance(term, str) and term.strip().lower() == "all"):
        blocks, names = [], []
        for t in design.random:
            for c in range(t.n_columns):
                blocks.append(column_block(t, c))
                names.append(t.component_names[c])
        return "all", blocks, names, []
    if not isinstance(term, str):
        raise OptionError(f"term must be a term label such as '(1|g)' or None, got {term!r}")
    index, column = find_term(design, term)
    t = design.random[index]
    specs = [r.spec for r in design.random]
    if column is None:
        specs.pop(index)
        cols = list(range(t.n_columns))
        label = t.spec.label
    else:
        specs[index] = _drop_column(t, column)
        cols = [t.columns.index(column)]
        label = f"{t.group}|{column}"
    blocks = [column_block(t, c) for c in cols]
    names = [t.component_names[c] for c in cols]
    return label, blocks, names, specs


def _null_fit(model, specs, method, options):
    """The fit under the null: the GLM (``specs`` empty) or the reduced GLMM."""
    from ..glmm import GLMM

    d = model.design
    if not specs:
        return glm_loglik(model, "laplace", {}), None
    formula = formula_with(d.spec, specs)
    reduced = GLMM(
        formula, model.data, family=d.spec.family, link=d.spec.link, dropna=bool(d.dropped_rows)
    )
    if reduced.design.n != d.n:
        raise MethodError(
            f"the null model {formula!r} has {reduced.design.n} rows, the model {d.n}: "
            "missing values in a grouping factor"
        )
    return reduced.fit(method=method, **options), reduced.design


# --------------------------------------------------------------------------- global form
def _global_parts(design, blocks, names, null_fit) -> ScoreParts:
    """Lin's exact score and efficient information at the GLM (module docstring)."""
    fam = design.family
    X = design.X
    n_tr = np.ones(design.n) if design.trials is None else design.trials
    eta = X @ null_fit.beta + design.offset
    link = fam.link
    mu = link.linkinv(eta)
    mu_eta = link.mu_eta(eta)
    V = fam.variance(mu)
    resid = design.y - n_tr * mu
    c = mu_eta / V
    s = c * resid
    W = n_tr * mu_eta**2 / V
    if fam.canonical:
        d = np.zeros_like(eta)
    else:
        mee = link.mu_eta2(eta, mu, mu_eta)
        d = (mee * V - mu_eta**2 * fam.variance_derivative(mu)) / V**2
    W_obs = W - resid * d
    _, k2, k3, k4 = fam.cumulants(mu, n_tr)
    r = c**4 * k4 + 2.0 * c**2 * d * k3 + d**2 * k2
    g = c**3 * k3 + c * d * k2
    I_bb = X.T @ (W[:, None] * X)
    L_bb = scipy.linalg.cho_factor(I_bb)
    K = len(blocks)
    a = [np.asarray(Zk.multiply(Zk).sum(axis=1)).ravel() for Zk in blocks]
    WZ = [sp.csc_matrix(Zk.multiply(W[:, None])) for Zk in blocks]
    raw = np.array(
        [0.5 * (np.sum((Zk.T @ s) ** 2) - a_k @ W_obs) for Zk, a_k in zip(blocks, a, strict=True)]
    )
    shift = np.empty(K)
    mean = np.empty(K)
    I_tb = np.empty((K, X.shape[1]))
    I_tt = np.empty((K, K))
    for k in range(K):
        XWZ = np.asarray((WZ[k].T @ X).T)  # p x L
        shift[k] = 0.5 * np.sum(XWZ * scipy.linalg.cho_solve(L_bb, XWZ))
        mean[k] = 0.5 * (a[k] @ W) - shift[k]
        I_tb[k] = 0.5 * (a[k] * g) @ X
        for m in range(k + 1):
            cross = (blocks[k].T @ WZ[m]).tocsr()
            I_tt[k, m] = I_tt[m, k] = 0.5 * cross.multiply(cross).sum() + 0.25 * np.sum(
                a[k] * a[m] * r
            )
    info = I_tt - I_tb @ scipy.linalg.cho_solve(L_bb, I_tb.T)
    U = raw + shift
    return ScoreParts(U, info, U + mean, mean, raw, names, "global", null_fit)


# --------------------------------------------------------------------------- working form
def _null_covariance(null_fit, t) -> np.ndarray:
    """The null fit's covariance matrix of term ``t``'s random effects (absolute scale)."""
    comps = t.component_names
    var = np.array([float(null_fit.variance_components[c]) for c in comps])
    D = np.diag(var)
    if t.correlated:
        cors = null_fit.re_correlations
        for i in range(t.n_columns):
            for j in range(i + 1, t.n_columns):
                key = f"{t.group}|{t.columns[i]},{t.columns[j]}"
                rho = float(cors[key]) if key in cors.index else 0.0
                D[i, j] = D[j, i] = rho * np.sqrt(var[i] * var[j])
    return D


def _root(D: np.ndarray) -> np.ndarray:
    """``R`` with ``R R' = D`` for a positive semi-definite ``D`` (zero variances allowed)."""
    lam, Q = np.linalg.eigh(D)
    return Q * np.sqrt(np.clip(lam, 0.0, None))


class _Block:
    """``M = S - A' C`` (``S`` sparse or dense ``La x Lb``, ``A`` ``p x La``, ``C`` ``p x
    Lb``): a block ``Za' P Zb``, kept as sparse plus low rank."""

    def __init__(self, S, A: np.ndarray, C: np.ndarray) -> None:
        self.S, self.A, self.C = S, A, C

    @property
    def T(self) -> _Block:
        return _Block(self.S.T, self.C, self.A)

    def trace(self) -> float:
        return float(self.S.diagonal().sum() - np.sum(self.A * self.C))

    def inner(self, other: _Block) -> float:
        """``sum(M1 * M2)`` elementwise."""
        s1, s2 = self.S, other.S
        ss = s1.multiply(s2).sum() if sp.issparse(s1) else np.sum(s1 * _dense(s2))
        sl = np.sum(_left(other.A, s1) * other.C)
        ls = np.sum(_left(self.A, s2) * self.C)
        ll = np.sum((self.A @ other.A.T) * (self.C @ other.C.T))
        return float(ss - sl - ls + ll)


def _dense(M) -> np.ndarray:
    return M.toarray() if sp.issparse(M) else np.asarray(M)


def _left(A: np.ndarray, S) -> np.ndarray:
    """``A @ S`` for a dense ``A`` and a sparse or dense ``S``."""
    return np.asarray((S.T @ A.T).T) if sp.issparse(S) else A @ S


class _CSolver:
    """Solves with the symmetric positive-definite ``C = I + T'WT`` (``q0 x q0``, sparse):
    elementwise when diagonal (one random intercept), a dense Cholesky factor up to
    :data:`DENSE_MAX` columns, a sparse LU above."""

    def __init__(self, C: sp.csc_matrix) -> None:
        q0 = C.shape[0]
        off = C - sp.diags(C.diagonal())
        if off.count_nonzero() == 0:
            self.kind, self.d = "diagonal", C.diagonal()
        elif q0 <= DENSE_MAX:
            self.kind, self.f = "dense", scipy.linalg.cho_factor(C.toarray())
        else:
            self.kind, self.f = "sparse", splu(sp.csc_matrix(C))

    def solve(self, B):
        """``C^{-1} B``; sparse for a sparse ``B`` when ``C`` is diagonal, else dense."""
        if self.kind == "diagonal":
            if sp.issparse(B):
                return sp.csr_matrix(sp.diags(1.0 / self.d) @ B)
            B = np.asarray(B, dtype=float)
            return B / (self.d if B.ndim == 1 else self.d[:, None])
        B = B.toarray() if sp.issparse(B) else np.asarray(B, dtype=float)
        if self.kind == "dense":
            return scipy.linalg.cho_solve(self.f, B)
        return self.f.solve(B)


class _Working:
    """``V = diag(1/w) + T T'`` of the working model, applied through Woodbury's identity
    ``V^{-1} = W - W T C^{-1} T' W``, ``C = I + T'WT``."""

    def __init__(self, w: np.ndarray, T: sp.csc_matrix, X: np.ndarray) -> None:
        self.w, self.T, self.X = w, T, X
        self.WX = X * w[:, None]
        if T.shape[1]:
            self.WT = sp.csc_matrix(T.multiply(w[:, None]))
            self.C = _CSolver(sp.csc_matrix(sp.identity(T.shape[1]) + T.T @ self.WT))
            self.TWX = np.asarray(T.T @ self.WX)
        self.VX = self.vinv(X)
        self.G = scipy.linalg.cho_factor(X.T @ self.VX)
        self._cache: dict[int, tuple] = {}

    def vinv(self, M):
        """``V^{-1} M`` for a dense ``M`` (n x k) or vector."""
        M = np.asarray(M, dtype=float)
        wM = M * (self.w if M.ndim == 1 else self.w[:, None])
        if self.T.shape[1] == 0:
            return wM
        return wM - self.WT @ self.C.solve(self.T.T @ wM)

    def p(self, M):
        """``P M``."""
        VM = self.vinv(M)
        return VM - self.VX @ scipy.linalg.cho_solve(self.G, self.X.T @ VM)

    def _pieces(self, Zb: sp.csc_matrix) -> tuple:
        """``(W Zb, C^{-1} T'W Zb, X' V^{-1} Zb)`` of one block, computed once."""
        key = id(Zb)
        if key not in self._cache:
            WZb = sp.csc_matrix(Zb.multiply(self.w[:, None]))
            XVZb = np.asarray(WZb.T @ self.X).T  # p x Lb: X' W Zb
            R = None
            if self.T.shape[1]:
                R = self.C.solve(sp.csc_matrix(self.T.T @ WZb))  # q0 x Lb
                XVZb = XVZb - np.asarray((R.T @ self.TWX).T)
            self._cache[key] = (WZb, R, XVZb, Zb)
        return self._cache[key]

    def block(self, Za: sp.csc_matrix, Zb: sp.csc_matrix) -> _Block:
        """``Za' P Zb`` as sparse-or-dense minus rank ``p``, without forming ``n x n`` or
        ``n x L`` arrays (sparse when ``C`` is diagonal)."""
        WZb, Rb, XVZb, _ = self._pieces(Zb)
        XVZa = self._pieces(Za)[2]
        S = sp.csr_matrix(Za.T @ WZb)
        if Rb is not None:
            prod = sp.csr_matrix(Za.T @ self.WT) @ Rb
            S = S - prod if sp.issparse(prod) else S.toarray() - np.asarray(prod)
        return _Block(S, XVZa, scipy.linalg.cho_solve(self.G, XVZb))

    def trace_p2(self) -> float:
        """``tr(P^2)`` for a constant weight ``w`` (the Gaussian working model)."""
        w = float(self.w[0])
        n = self.w.size
        if self.T.shape[1]:
            K = (self.T.T @ self.T).toarray()
            CK = self.C.solve(K)
            tv2 = w**2 * n - 2.0 * w**3 * np.trace(CK) + w**4 * np.sum(CK * CK.T)
        else:
            tv2 = w**2 * n
        V2X = self.vinv(self.VX)
        V3X = self.vinv(V2X)
        H2 = self.X.T @ V2X
        GH2 = scipy.linalg.cho_solve(self.G, H2)
        return float(
            tv2
            - 2.0 * np.trace(scipy.linalg.cho_solve(self.G, self.X.T @ V3X))
            + np.sum(GH2 * GH2.T)
        )


def _working_parts(design, blocks, names, null_fit, null_design) -> ScoreParts:
    """Score and efficient information in the working model of the null fit."""
    fam = design.family
    X = design.X
    n = design.n
    gaussian = fam.name == "gaussian"
    beta = np.asarray(null_fit.beta if null_design is None else _fixed(null_fit, design), float)
    terms = [] if null_design is None else null_design.random
    b_eta = np.zeros(n)
    roots, null_blocks = [], []
    for t in terms:
        D = _null_covariance(null_fit, t)
        R = _root(D)
        roots.append(sp.kron(sp.identity(t.n_levels, format="csc"), sp.csc_matrix(R)))
        re = null_fit.random_effects[t.name].reindex(index=t.levels, columns=t.columns)
        b_eta += np.einsum("ik,ik->i", t.X, re.to_numpy(float)[t.index])
        null_blocks.append([column_block(t, c) for c in range(t.n_columns)])
    T = (
        sp.csc_matrix(sp.hstack([t.Z @ Rk for t, Rk in zip(terms, roots, strict=True)]))
        if terms
        else sp.csc_matrix((n, 0))
    )
    eta = X @ beta + b_eta + design.offset
    if gaussian:
        resid = design.y - eta
        if null_design is None:
            phi = float(resid @ resid / (n - X.shape[1]))
        else:
            phi = float(null_fit.dispersion["sigma"]) ** 2
        w = np.full(n, 1.0 / phi)
        s = resid / phi
    else:
        s, w = fam.score_weight(design.y, eta, design.trials)
    work = _Working(w, T, X)
    ystar = b_eta + s / w  # Y* - X beta
    e = work.p(ystar)
    K = len(blocks)
    raw = np.array([0.5 * np.sum((Zk.T @ e) ** 2) for Zk in blocks])
    # parameters: the tested variances, then the null's covariance entries, as lists of
    # (a, b) block pairs with A = sum Z_a Z_b' (symmetrised)
    all_blocks = list(blocks)
    params = [[(k, k)] for k in range(K)]
    for t, tb in zip(terms, null_blocks, strict=True):
        base = len(all_blocks)
        all_blocks.extend(tb)
        for i in range(t.n_columns):
            params.append([(base + i, base + i)])
            if t.correlated:
                for j in range(i + 1, t.n_columns):
                    params.append([(base + i, base + j), (base + j, base + i)])
    nb = len(all_blocks)
    M = [[None] * nb for _ in range(nb)]
    for a in range(nb):
        for b in range(a, nb):
            M[a][b] = work.block(all_blocks[a], all_blocks[b])
            M[b][a] = M[a][b].T
    n_par = len(params) + int(gaussian)
    info = np.empty((n_par, n_par))
    for x, px in enumerate(params):
        for y in range(x + 1):
            val = sum(
                M[a][d].inner(M[b][c]) for (a, b) in px for (c, d) in params[y]
            )  # tr(P Z_a Z_b' P Z_c Z_d') = sum(M_ad * M_bc)
            info[x, y] = info[y, x] = 0.5 * val
    if gaussian:  # the residual variance: A = I
        PZ = [work.p(Zb.toarray()) for Zb in all_blocks]
        for x, px in enumerate(params):
            info[-1, x] = info[x, -1] = 0.5 * sum(np.sum(PZ[a] * PZ[b]) for (a, b) in px)
        info[-1, -1] = 0.5 * work.trace_p2()
    mean = np.array([0.5 * M[k][k].trace() for k in range(K)])
    tt, tn, nn = info[:K, :K], info[:K, K:], info[K:, K:]
    eff = tt - tn @ np.linalg.pinv(nn, hermitian=True) @ tn.T if nn.size else tt
    U = raw - mean
    return ScoreParts(U, eff, raw, mean, raw, names, "working", null_fit)


def _fixed(null_fit, design) -> np.ndarray:
    return null_fit.fixed_effects.reindex(design.fixed_names).to_numpy(float)


# --------------------------------------------------------------------------- the test
def score_parts(model_or_fit, term: str | None = None) -> ScoreParts:
    """Fit the null model and compute the scores and efficient information of the tested
    variances (the pieces of :func:`score_test`)."""
    model, method, options = _resolve(model_or_fit)
    design = model.design
    _check_family(design)
    _, blocks, names, specs = _tested(design, term)
    null_fit, null_design = _null_fit(model, specs, method, options)
    if null_design is None and design.family.name != "gaussian":
        return _global_parts(design, blocks, names, null_fit)
    return _working_parts(design, blocks, names, null_fit, null_design)


def score_test(model_or_fit, term: str | None = None, *, correction: bool | None = None):
    """Lin's (1997) score test that random-effect variances are zero.

    Only the model under the null is fitted, so the test suits models whose alternative
    is expensive to fit (crossed designs with thousands of levels). The statistic, its
    information and the approximations are in the module docstring.

    Parameters
    ----------
    model_or_fit : GLMM or FitResult
        The model with the random effects (unfitted), or a likelihood fit of it (its
        ``model`` is used; the null is refitted by the fit's method and options).
    term : str, optional
        ``None`` or ``"all"``: all variance components are zero (the null is the GLM).
        A term label (``"(1|g)"``), a grouping factor with one term, or a column
        ``"g|x"`` of a correlated term: that term's diagonal variances (that column's
        variance) are zero with the other components present.
    correction : bool, optional
        Refer the statistic to a scaled chi-square matching its mean and variance (Lin's
        small-sample correction) instead of ``N(0, 1)``. Default: True for the binomial
        family when the null is the GLM (the global form), False otherwise.

    Returns
    -------
    VarianceTest
        ``statistic`` the one-sided standardized score ``z = sum_k U_k / sqrt(1' I 1)``;
        ``p_value`` its upper tail under ``N(0, 1)`` or, with the correction,
        ``P(kappa chi2(nu) >= S)``; ``df`` the number of tested variances;
        ``p_value_naive`` the ``chi2(df)`` tail of ``U' I^{-1} U`` (two-sided for one
        variance); ``method="score"``; ``fits={"null": null_fit}`` (a
        :class:`~bayesglmm.inference.variance_tests.GLMNullFit` for the GLM).

    Raises
    ------
    MethodError
        For a Bayesian, quasi-likelihood (PQL) or GEE fit, a family other than binomial,
        Poisson or Gaussian, a model without random effects, or a term not in the model.
    """
    if correction is not None and not isinstance(correction, bool):
        raise OptionError(f"correction must be True, False or None, got {correction!r}")
    model, _, _ = _resolve(model_or_fit)
    refuse_extensions(model.design, "the score test")
    _check_family(model.design)
    label = _tested(model.design, term)[0]
    parts = score_parts(model_or_fit, term)
    if correction is None:
        correction = parts.form == "global" and CORRECTION_DEFAULT[model.design.family.name]
    K = parts.U.size
    one = np.ones(K)
    var = float(one @ parts.info @ one)
    z = float(np.sum(parts.U) / np.sqrt(var)) if var > 0 else 0.0
    quad, mean = float(np.sum(parts.quad)), float(np.sum(parts.mean))
    if correction and var > 0 and mean > 0:
        kappa, nu = var / (2.0 * mean), 2.0 * mean**2 / var
        p = float(stats.chi2.sf(quad / kappa, nu))
        null = (
            f"{kappa:.4g} chi2({nu:.4g}): mean and variance of the quadratic score matched "
            "(Lin 1997 small-sample correction)"
        )
    else:
        p = float(stats.norm.sf(z))
        null = "N(0, 1), upper tail of the standardized score (Lin 1997)"
    if K == 1:
        naive = float(stats.chi2.sf(z**2, 1))
    else:
        wald = float(parts.U @ np.linalg.pinv(parts.info, hermitian=True) @ parts.U)
        naive = float(stats.chi2.sf(max(wald, 0.0), K))
    if K > 1:
        null += f"; global statistic over {K} variances ({', '.join(parts.names)})"
    return VarianceTest(
        statistic=z,
        p_value=p,
        method="score",
        null_distribution=null,
        df=K,
        p_value_naive=naive,
        term=label,
        fits={"null": parts.null_fit},
    )
