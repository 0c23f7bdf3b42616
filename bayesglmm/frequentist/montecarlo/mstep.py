"""The M-step: maximize the Monte Carlo Q-function

.. math::

    Q_m(\\psi) = \\sum_d w_d \\left[\\log f(y \\mid b_d; \\beta)
        + \\sum_t \\log N(b_{d,t}; 0, I \\otimes \\Sigma_t)\\right]

over the fixed effects by Newton's method (with step halving; concave for canonical links)
and over each covariance in closed form, ``Sigma_t = sum_d w_d sum_l b_{d,l} b_{d,l}' / L_t``
(its diagonal for uncorrelated terms).

Parameter expansion (``px=True``, the default; Liu, Rubin & Wu 1998, PX-EM): every scalar
term's effects enter the linear predictor as ``alpha_t Z_t b_t``, and ``alpha`` is maximized
with ``beta`` by the same Newton iteration (``Z_t b_{d,t}`` is a covariate that changes
with the draw); the new variance is ``alpha_t^2 Sigma_t``. The fixed point is the same as
EM's, but the variances, which EM moves slowly when the random effects carry much of the
missing information (crossed designs), converge in a few iterations. The M-step returns
the per-draw complete-data log-likelihood at its maximizer (in the expanded model), whose
weighted mean minus the old one is the Q-function's increase the ascent rule tests.
"""

from __future__ import annotations

import numpy as np

from .complete import CompleteData, Sample

#: Newton iterations for the fixed effects, and the step size that stops them
NEWTON_ITER = 50
NEWTON_TOL = 1e-10


def closed_form_sigmas(model: CompleteData, sample: Sample) -> list[np.ndarray]:
    """``Sigma_t`` maximizing the Q-function given the draws."""
    out = []
    for t, St in zip(model.terms, model.suff(sample.B), strict=True):
        S = np.einsum("m,mij->ij", sample.w, St) / t.n_levels
        out.append(S if t.correlated else np.diag(np.diag(S)))
    return out


def _newton(model: CompleteData, beta0, sample: Sample, covs: list[np.ndarray], rest):
    """Maximize ``sum_d w_d log f(y | X beta + sum_t alpha_t Z_t b_dt + rest_d)`` over
    ``(beta, alpha)``; ``covs`` are the per-draw ``Z_t b_dt`` of the expanded terms."""
    X, w, p = model.X, sample.w, model.p
    k = len(covs)
    x = np.concatenate([np.asarray(beta0, float), np.ones(k)])
    base = model.X @ x[:p] + model.offset

    def eta_of(x):
        eta = (X @ x[:p] + model.offset)[None, :] + rest
        for t, c in enumerate(covs):
            eta = eta + x[p + t] * c
        return eta

    del base
    ll, s, W = model.eta_pieces(eta_of(x))
    q_old = float(w @ ll)
    for _ in range(NEWTON_ITER):
        ws, wW = w @ s, w[:, None] * W
        grad = np.concatenate([X.T @ ws, [float(np.sum(w[:, None] * s * c)) for c in covs]])
        H = np.zeros((p + k, p + k))
        H[:p, :p] = (X.T * wW.sum(axis=0)) @ X
        for t, c in enumerate(covs):
            wWc = wW * c
            H[:p, p + t] = H[p + t, :p] = X.T @ wWc.sum(axis=0)
            for u in range(t, k):
                H[p + t, p + u] = H[p + u, p + t] = float(np.sum(wWc * covs[u]))
        try:
            step = np.linalg.solve(H, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(H, grad, rcond=None)[0]
        t_ = 1.0
        for _ in range(30):
            new = x + t_ * step
            ll_new, s_new, W_new = model.eta_pieces(eta_of(new))
            q_new = float(w @ ll_new)
            if np.isfinite(q_new) and q_new >= q_old - 1e-12 * abs(q_old):
                break
            t_ *= 0.5
        else:
            break
        x, q_old, ll, s, W = new, q_new, ll_new, s_new, W_new
        if np.max(np.abs(t_ * step)) < NEWTON_TOL:
            break
    return x[:p], x[p:], ll


def m_step(model: CompleteData, psi: np.ndarray, sample: Sample, px: bool = True):
    """The new ``psi`` from the draws of one E-step, and the per-draw complete-data
    log-likelihood at the maximizer (for the ascent rule)."""
    sample = sample.pruned()
    sigmas = closed_form_sigmas(model, sample)
    expand = [
        ti
        for ti, (t, S) in enumerate(zip(model.terms, sigmas, strict=True))
        if px and t.k == 1 and S[0, 0] > 0
    ]
    covs = [model.Zb_term(sample.B, ti) for ti in expand]
    rest = sample.ZB - sum(covs) if covs else sample.ZB
    beta, alpha, ll = _newton(model, psi[: model.p], sample, covs, rest)
    gain_cl = ll + model.prior_logpdf(sigmas, model.suff(sample.B))
    new_sigmas = list(sigmas)
    for ti, a in zip(expand, alpha, strict=True):
        new_sigmas[ti] = sigmas[ti] * a**2
    return model.join(beta, new_sigmas), (sample, gain_cl)
