"""Empirical best prediction of mixed effects (Jiang & Lahiri 2001).

For a mixed effect ``zeta = h(x' beta + z' b)`` (``h`` the identity on the link scale or
the inverse link, e.g. a group's success probability) the best predictor under squared
error is the conditional mean

.. math::

    \\tilde\\zeta(\\psi) = E_\\psi(\\zeta \\mid y)
      = \\frac{\\int h(x'\\beta + z'b)\\, f(y \\mid b)\\, \\phi(b; \\Sigma)\\, db}
             {\\int f(y \\mid b)\\, \\phi(b; \\Sigma)\\, db},

and the *empirical* best predictor plugs in a consistent estimate ``psi-hat`` of
``psi = (beta, Sigma, dispersion)``, read here from any fit's result schema. Its mean
squared prediction error is, to first order,

.. math::

    \\text{MSPE} \\approx g_1 + g_2, \\quad
    g_1 = \\operatorname{Var}_{\\hat\\psi}(\\zeta \\mid y), \\quad
    g_2 = \\nabla_\\psi \\tilde\\zeta' \\, V_\\psi \\, \\nabla_\\psi \\tilde\\zeta,

``g1`` the MSPE of the best predictor (as the conditional variance at ``psi-hat``) and
``g2`` the delta-method term for estimating ``psi`` (``V_psi`` from
``result.vcov``: the fixed effects and, where the covariance covers them, the
variance parameters, named ``theta[...]`` as in lme4 or ``var(...)``; a dispersion
parameter is held fixed). Omitted, both of order ``1/m`` for ``m`` groups: the bias of
``g1(psi-hat)`` and the cross term of Jiang & Lahiri's second-order expansion (Prasad-Rao's
``g3``); with few groups the MSPE is somewhat understated.

The integrals are computed

- by adaptive Gauss-Hermite quadrature per level (product rule, centred at the conditional
  mode and scaled by its curvature) when every random-effect term has the same grouping
  factor, so that the levels are independent given ``y`` (up to 3 effects per level);
- by self-normalized importance sampling otherwise (crossed or nested factors), from a
  multivariate t proposal at the joint conditional mode with the Laplace covariance
  (seeded; the Monte Carlo standard error is reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import MethodError, OptionError
from ..method_checks import check_memory, rule_memory
from ..model.newdata import NewRows, new_rows, training_rows
from ..options import choice, integer, seed
from ..results.predict import model_of, select_terms, term_covariance

METHODS = ("auto", "quadrature", "importance")
#: Newton iterations for the conditional modes, and the step cap on the link scale
MODE_ITER, MAX_STEP = 100, 5.0
#: degrees of freedom of the importance proposal (heavier tails than the Laplace normal)
PROPOSAL_DF = 10
#: largest number of random effects the (dense) importance proposal handles
MAX_Q = 4000


@dataclass
class Psi:
    """Model parameters: fixed effects, one covariance per term, dispersion (or None)."""

    beta: np.ndarray
    covs: list
    dispersion: float | None


# --------------------------------------------------------------------------------------
# parameters from the schema, and the delta-method map


def _psi_hat(result, design) -> Psi:
    beta = result.fixed_effects.reindex(design.fixed_names).to_numpy(float)
    covs = [term_covariance(result, t) for t in design.random]
    disp = None
    if design.family.has_dispersion:
        name = design.family.dispersion_name
        if name not in result.dispersion:
            raise MethodError(
                f"the result has no dispersion {name!r} for the {design.family.name} family"
            )
        disp = float(result.dispersion[name])
    return Psi(beta, covs, disp)


def _delta_map(result, design, psi: Psi):
    """(V, build): the covariance of the estimated parameters the EBP depends on and a
    function from a perturbation of them to :class:`Psi`; (None, None) without the
    sampling covariance of the estimates (``result.vcov``; a posterior one is not that)."""
    if result.vcov is None or result.vcov.kind == "posterior":
        return None, None, []
    V = result.vcov.matrix
    names = list(result.vcov.names)
    fixed = [str(n) for n in design.fixed_names]
    if not all(n in names for n in fixed) or len(names) != V.shape[0]:
        return None, None, []
    use = [names.index(n) for n in fixed]
    used_names = list(fixed)
    theta_names = result.info.get("theta_names") or []
    theta_pos = [_find(names, n) for n in theta_names]
    cov_factor = None
    if (
        theta_names
        and all(i is not None for i in theta_pos)
        and not design.family.has_dispersion
        and len(names) == V.shape[0]
    ):
        from .covariance import CovarianceFactor

        cov_factor = CovarianceFactor(design)
        theta0 = np.asarray(result.info["theta"], dtype=float)
        implied = cov_factor.covariances(theta0)
        if all(
            np.allclose(implied[t.name], c, rtol=1e-6, atol=1e-10)
            for t, c in zip(design.random, psi.covs, strict=True)
        ):
            use += theta_pos
            used_names += [names[i] for i in theta_pos]
        else:
            cov_factor = None
    diagonal = []  # (term position, column) of variances named "var(<component>)"
    if cov_factor is None:
        for i, t in enumerate(design.random):
            for j, comp in enumerate(t.component_names):
                if f"var({comp})" in names:
                    use.append(names.index(f"var({comp})"))
                    used_names.append(f"var({comp})")
                    diagonal.append((i, j))
    p = len(fixed)
    Vu = V[np.ix_(use, use)]

    def build(delta: np.ndarray) -> Psi:
        covs = psi.covs
        if cov_factor is not None:
            th = cov_factor.covariances(theta0 + delta[p:])
            covs = [th[t.name] for t in design.random]
        elif diagonal:
            covs = [c.copy() for c in psi.covs]
            for (i, j), dv in zip(diagonal, delta[p:], strict=True):
                sd_old = np.sqrt(covs[i][j, j])
                sd_new = np.sqrt(max(covs[i][j, j] + dv, 1e-300))
                covs[i][j, :] *= sd_new / max(sd_old, 1e-300)  # correlations kept
                covs[i][:, j] *= sd_new / max(sd_old, 1e-300)
        return Psi(psi.beta + delta[:p], covs, psi.dispersion)

    return Vu, build, used_names


def _find(names: list[str], theta_name: str) -> int | None:
    """Position of a covariance parameter in ``vcov_names`` (``"herd"`` or ``"theta[herd]"``)."""
    for cand in (theta_name, f"theta[{theta_name}]"):
        if cand in names:
            return names.index(cand)
    return None


# --------------------------------------------------------------------------------------
# per-row log-likelihood, score and weight in eta (the family's own)


def _row_loglik(design, y, trials, eta, disp):
    """Each row's log-likelihood at ``eta`` without its data-only term (constant in ``b``)."""
    fam = design.family
    return fam.loglik(y, fam.link.linkinv(eta), trials, disp, constant=0.0)


def _score_weight(design, y, trials, eta, disp):
    """Each row's score ``dl/deta`` and Fisher weight at ``eta``."""
    return design.family.score_weight(y, eta, trials, 1.0 if disp is None else disp)


def _log_normal(b: np.ndarray, S: np.ndarray) -> np.ndarray:
    """log N(b; 0, S) over the last axis, up to nothing (normalized)."""
    k = S.shape[0]
    w, U = np.linalg.eigh(S)
    w = np.clip(w, 1e-300, None)
    r = (b @ U) / np.sqrt(w)
    return -0.5 * (r**2).sum(-1) - 0.5 * np.log(w).sum() - 0.5 * k * np.log(2 * np.pi)


# --------------------------------------------------------------------------------------
# the target rows


def _rows(result, model, newdata, re_form) -> NewRows:
    design = model.design
    terms = select_terms(design, re_form)
    if newdata is None:
        return training_rows(design, terms)
    return new_rows(design, model.data, newdata, terms)


def _check_fit(result) -> None:
    from ..results.result import FitResult

    if not isinstance(result, FitResult):
        text = repr(result)
        text = text if len(text) <= 40 else text[:37] + "..."
        raise OptionError(
            f"ebp: result must be a FitResult (from GLMM.fit or FitResult.load), got a "
            f"{type(result).__name__} ({text})"
        )


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
) -> pd.DataFrame:
    """Empirical best predictors ``E(zeta | y)`` at the fitted parameters, with MSPE.

    Parameters
    ----------
    result : FitResult
        Any fit; its estimates are plugged in (``fixed_effects``, variance components,
        dispersion) and ``result.vcov``, when present, gives ``g2``.
    newdata : pandas.DataFrame, optional
        Rows defining ``x`` and ``z`` of each ``zeta`` (default: the fit's rows). A level
        the fit has not seen is predicted from the random-effect distribution.
    re_form : None, str or NA
        The random-effect terms in ``zeta`` (as :func:`bayesglmm.predict.predict`); the
        conditioning on ``y`` always uses the whole model.
    type : {"response", "link"}
        ``zeta = g^{-1}(x'beta + z'b)`` (a probability, a rate) or the linear combination.
    method : {"auto", "quadrature", "importance"}
        ``auto``: quadrature for one grouping factor, importance sampling otherwise.
    n_quad : int, optional
        Gauss-Hermite points per dimension (default 30, 12 and 8 for 1, 2, 3 effects).
    n_draws : int
        Importance draws.
    random_seed : int, optional
        Seeds the importance sampler.
    model : GLMM, optional
        Needed after :meth:`FitResult.load`.

    Returns
    -------
    pandas.DataFrame
        One row per target row: ``estimate`` (the EBP), ``g1``, ``g2``, ``mspe`` (``g1 +
        g2``; ``g2`` is NaN without ``vcov``), ``mcse`` (importance sampling) and
        ``conditional_mode`` (the plug-in ``h(x'beta + z'b-tilde)`` at the conditional
        modes, for comparison). ``attrs`` records the method, the parameters in ``g2`` and,
        for importance sampling, the effective sample size.
    """
    _check_fit(result)
    choice("response", "link")("type", type)
    choice(*METHODS)("method", method)
    n_quad = integer(1, none=True)("n_quad", n_quad)  # None: the default; 0 is refused
    n_draws = integer(100)("n_draws", n_draws)
    random_seed = seed("random_seed", random_seed)
    model = model_of(result, model)
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
    rows = _rows(result, model, newdata, re_form)
    psi = _psi_hat(result, design)
    h = (lambda e: e) if type == "link" else design.family.link.linkinv
    if method == "quadrature":
        k = sum(t.n_columns for t in design.random)
        if k > 3:
            raise MethodError(f"quadrature handles up to 3 effects per level, this model has {k}")
        n_quad = n_quad or {1: 30, 2: 12, 3: 8}[k]
        levels = sum(t.n_levels for t in design.random)
        need = 8 * n_quad**k * (levels + rows.n + design.n) + rule_memory(n_quad)
        check_memory(need, f"ebp with n_quad={n_quad}")
        engine = _Quadrature(design, rows, psi, n_quad)
    else:
        check_memory(16 * n_draws * (design.q + rows.n), f"ebp with n_draws={n_draws}")
        engine = _Importance(design, rows, psi, n_draws, np.random.default_rng(random_seed))
    mean, second, mcse = engine.moments(psi, h)
    g1 = np.clip(second - mean**2, 0.0, None)
    V, build, used = _delta_map(result, design, psi)
    g2 = np.full(rows.n, np.nan)
    if V is not None:
        grad = np.zeros((rows.n, V.shape[0]))
        for j in range(V.shape[0]):
            step = 1e-4 * max(1.0, np.sqrt(V[j, j]))
            e = np.zeros(V.shape[0])
            e[j] = step
            up = engine.moments(build(e), h)[0]
            down = engine.moments(build(-e), h)[0]
            grad[:, j] = (up - down) / (2 * step)
        g2 = np.einsum("ij,jk,ik->i", grad, V, grad)
    out = pd.DataFrame(
        {
            "estimate": mean,
            "g1": g1,
            "g2": g2,
            "mspe": g1 + g2,
            "mcse": mcse,
            "conditional_mode": h(engine.mode_eta(psi)),
        },
        index=rows.labels,
    )
    out.attrs.update({"method": method, "g2_parameters": used, **engine.notes})
    return out


# --------------------------------------------------------------------------------------
# one grouping factor: adaptive Gauss-Hermite quadrature per level


class _Quadrature:
    def __init__(self, design, rows: NewRows, psi: Psi, n_quad: int) -> None:
        self.design, self.rows = design, rows
        terms = design.random
        self.L = terms[0].n_levels
        self.Zd = np.hstack([t.X for t in terms])  # (n, k): all effects of a row's level
        self.level = terms[0].index
        self.k = self.Zd.shape[1]
        # target rows: the re_form columns of each term in the k-vector
        n_t = rows.n
        self.Zt = np.zeros((n_t, self.k))
        self.tlevel = np.full(n_t, self.L)  # pseudo-level L: no data (new level / no term)
        lo, col = 0, {}
        for t in terms:
            col[t.name] = slice(lo, lo + t.n_columns)
            lo += t.n_columns
        for t, idx, Xz in zip(rows.terms, rows.index, rows.Xz, strict=True):
            self.Zt[:, col[t.name]] = Xz
            self.tlevel = np.where(idx >= 0, idx, self.L)
        if not rows.terms:
            self.tlevel = np.full(n_t, self.L)
        x, w = np.polynomial.hermite.hermgauss(n_quad)
        grids = np.meshgrid(*([x] * self.k), indexing="ij")
        self.nodes = np.stack([g.ravel() for g in grids], axis=-1)  # (J, k)
        wgrid = np.meshgrid(*([w] * self.k), indexing="ij")
        self.log_base = np.sum([np.log(g.ravel()) for g in wgrid], axis=0) + (self.nodes**2).sum(1)
        self.notes = {"n_quad": n_quad, "nodes_per_level": len(self.nodes)}
        self._points(psi)

    def _S(self, psi: Psi) -> np.ndarray:
        import scipy.linalg

        return scipy.linalg.block_diag(*psi.covs)

    def _mode(self, psi: Psi):
        d = self.design
        S = self._S(psi)
        P = np.linalg.pinv(S)
        base = d.X @ psi.beta + d.offset
        b = np.zeros((self.L + 1, self.k))
        for _ in range(MODE_ITER):
            eta = base + np.einsum("ij,ij->i", self.Zd, b[self.level])
            s, w = _score_weight(d, d.y, d.trials, eta, psi.dispersion)
            grad = np.zeros((self.L + 1, self.k))
            np.add.at(grad, self.level, self.Zd * s[:, None])
            grad -= b @ P
            H = np.zeros((self.L + 1, self.k, self.k))
            np.add.at(H, self.level, w[:, None, None] * self.Zd[:, :, None] * self.Zd[:, None, :])
            H += P
            step = np.linalg.solve(H, grad[..., None])[..., 0]
            step *= np.minimum(
                1.0, MAX_STEP / np.maximum(np.abs(step).max(1, keepdims=True), 1e-300)
            )
            b = b + step
            if np.abs(step).max() < 1e-10:
                break
        return b, H

    def _points(self, psi: Psi) -> None:
        b, H = self._mode(psi)
        self.b_mode = b
        # b_lj = mode_l + sqrt(2) R_l x_j, R_l R_l' = H_l^{-1}
        R = np.linalg.cholesky(np.linalg.inv(H))
        self.points = b[:, None, :] + np.sqrt(2.0) * np.einsum("lab,jb->lja", R, self.nodes)

    def _log_weights(self, psi: Psi) -> np.ndarray:
        d = self.design
        base = d.X @ psi.beta + d.offset
        eta = base[:, None] + np.einsum("ik,ijk->ij", self.Zd, self.points[self.level])
        ll = _row_loglik(
            d, d.y[:, None], None if d.trials is None else d.trials[:, None], eta, psi.dispersion
        )
        lw = np.zeros((self.L + 1, len(self.nodes)))
        np.add.at(lw, self.level, ll)
        lw += _log_normal(self.points, self._S(psi)) + self.log_base[None, :]
        lw -= lw.max(1, keepdims=True)
        w = np.exp(lw)
        return w / w.sum(1, keepdims=True)

    def moments(self, psi: Psi, h):
        w = self._log_weights(psi)
        r = self.rows
        eta = (r.X @ psi.beta + r.offset)[:, None] + np.einsum(
            "ik,ijk->ij", self.Zt, self.points[self.tlevel]
        )
        z = h(eta)
        wt = w[self.tlevel]
        mean = (wt * z).sum(1)
        return mean, (wt * z**2).sum(1), np.full(r.n, np.nan)

    def mode_eta(self, psi: Psi) -> np.ndarray:
        r = self.rows
        return r.X @ psi.beta + r.offset + np.einsum("ik,ik->i", self.Zt, self.b_mode[self.tlevel])


# --------------------------------------------------------------------------------------
# several grouping factors: importance sampling over all random effects


class _Importance:
    def __init__(self, design, rows: NewRows, psi: Psi, n_draws: int, rng) -> None:
        self.design, self.rows = design, rows
        self.Z = design.Z.tocsr()
        self.q = self.Z.shape[1]
        if self.q > MAX_Q:
            raise MethodError(
                f"importance sampling here uses a dense proposal over all {self.q} random "
                f"effects; at most {MAX_Q} are supported"
            )
        self.blocks, lo = [], 0
        for t in design.random:
            size = t.n_levels * t.n_columns
            self.blocks.append((lo, t.n_levels, t.n_columns))
            lo += size
        b_mode, H = self._mode(psi)
        self.b_mode = b_mode
        C = np.linalg.cholesky(H)  # H = C C'; proposal scale H^{-1}
        z = rng.standard_normal((n_draws, self.q))
        chi = rng.chisquare(PROPOSAL_DF, n_draws) / PROPOSAL_DF
        import scipy.linalg

        u = scipy.linalg.solve_triangular(C.T, z.T, lower=False).T / np.sqrt(chi)[:, None]
        self.B = b_mode[None, :] + u
        # log t density of the proposal, up to a constant
        quad = (z**2).sum(1) / chi
        self.log_q = -0.5 * (PROPOSAL_DF + self.q) * np.log1p(quad / PROPOSAL_DF)
        self._target(rng, n_draws)
        self.notes = {
            "n_draws": n_draws,
            "proposal": f"multivariate t({PROPOSAL_DF}) at the conditional mode",
        }
        w = self._weights(psi)
        self.notes["ess"] = float(1.0 / np.sum(w**2))

    def _prior(self, b: np.ndarray, psi: Psi) -> np.ndarray:
        out = np.zeros(b.shape[0])
        for (lo, L, k), S in zip(self.blocks, psi.covs, strict=True):
            out += _log_normal(b[:, lo : lo + L * k].reshape(b.shape[0], L, k), S).sum(1)
        return out

    def _mode(self, psi: Psi):
        d = self.design
        P = sp.block_diag(
            [
                sp.kron(sp.identity(L), np.linalg.pinv(S))
                for (lo, L, k), S in zip(self.blocks, psi.covs, strict=True)
            ],
            format="csr",
        )
        base = d.X @ psi.beta + d.offset
        b = np.zeros(self.q)
        for _ in range(MODE_ITER):
            eta = base + self.Z @ b
            s, w = _score_weight(d, d.y, d.trials, eta, psi.dispersion)
            grad = self.Z.T @ s - P @ b
            H = (self.Z.T @ sp.diags(w) @ self.Z + P).toarray()
            step = np.linalg.solve(H, grad)
            step *= min(1.0, MAX_STEP / max(np.abs(step).max(), 1e-300))
            b = b + step
            if np.abs(step).max() < 1e-10:
                break
        return b, H

    def _target(self, rng, n_draws) -> None:
        """Target rows' random-effect sums per draw; unseen levels drawn from the prior."""
        r = self.rows
        self.Zt = np.zeros((r.n, n_draws))
        self.Zt_mode = np.zeros(r.n)
        self.new = []  # (rows mask, Xz, standard normal draws, term position)
        pos = {t.name: i for i, t in enumerate(self.design.random)}
        for t, idx, Xz in zip(r.terms, r.index, r.Xz, strict=True):
            lo, L, k = self.blocks[pos[t.name]]
            seen = idx >= 0
            cols = lo + idx[seen, None] * k + np.arange(k)[None, :]
            self.Zt[seen] += np.einsum("ij,dij->id", Xz[seen], self.B[:, cols])
            self.Zt_mode[seen] += np.einsum("ij,ij->i", Xz[seen], self.b_mode[cols])
            if (~seen).any():
                codes = -idx[~seen] - 1
                z = rng.standard_normal((n_draws, int(codes.max()) + 1, k))
                self.new.append((~seen, Xz[~seen], z[:, codes, :], pos[t.name]))

    def _weights(self, psi: Psi) -> np.ndarray:
        d = self.design
        eta = (d.X @ psi.beta + d.offset)[:, None] + self.Z @ self.B.T
        ll = _row_loglik(
            d, d.y[:, None], None if d.trials is None else d.trials[:, None], eta, psi.dispersion
        )
        lw = ll.sum(0) + self._prior(self.B, psi) - self.log_q
        lw -= lw.max()
        w = np.exp(lw)
        return w / w.sum()

    def moments(self, psi: Psi, h):
        w = self._weights(psi)
        r = self.rows
        eta = (r.X @ psi.beta + r.offset)[:, None] + self.Zt
        for mask, Xz, z, j in self.new:
            root = np.linalg.cholesky(psi.covs[j] + 1e-12 * np.eye(z.shape[-1]))
            eta[mask] += np.einsum("ia,dia->id", Xz, z @ root.T)
        v = h(eta)
        mean = v @ w
        mcse = np.sqrt(((v - mean[:, None]) ** 2) @ (w**2))
        return mean, (v**2) @ w, mcse

    def mode_eta(self, psi: Psi) -> np.ndarray:
        r = self.rows
        return r.X @ psi.beta + r.offset + self.Zt_mode
