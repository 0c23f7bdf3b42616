"""E-step samplers: draws of the random effects from ``p(b | y; psi)``.

Three samplers, each ``draw(psi, m) -> Sample`` (``B`` on the scale of ``b``):

:class:`ImportanceSampler`
    Booth & Hobert (1999): a multivariate t with ``df`` degrees of freedom centred at the
    conditional mode ``u_hat`` with scale ``H^{-1}`` (the Laplace approximation, from PIRLS),
    self-normalized weights ``w_d ~ f(y | u_d) phi(u_d) / t(u_d)``, Kish's effective sample
    size reported. The unnormalized log-weights carry every constant, so their mean is an
    unbiased estimate of the likelihood (:func:`loglik_estimate`).
:class:`RejectionSampler`
    Booth & Hobert (1999): propose ``u ~ N(0, I)`` and accept with probability
    ``f(y | u) / tau``, ``tau = sup_u f(y | u)``. With one grouping factor the levels are
    independent given ``y`` and each is sampled on its own; otherwise the whole vector is
    one block. The acceptance rate (``L(psi) / tau``, from the Laplace approximation of
    ``L``) is estimated first, and an infeasible one raises :class:`MethodError` at once.
:class:`MetropolisSampler`
    McCulloch (1997): Metropolis-within-Gibbs on the spherical effects, one random-effect
    column of one term at a time, all its levels at once (they are conditionally
    independent given the other terms), random-walk proposals scaled by the conditional
    curvature at the Laplace mode. ``m`` chains are kept from one EM iteration to the next
    (each advanced ``sweeps`` sweeps), so the ``m`` draws are independent across chains;
    new chains start from the Laplace approximation with a burn-in.
:class:`GibbsSampler`
    McCulloch (1994, probit; 1997): a Gibbs sampler on the exact conditional ``p(b | y;
    psi)`` by data augmentation, binomial responses only. Given the random effects, each row
    gets a latent variable: ``omega_i ~ PG(n_i, eta_i)`` for the logit link (Polson, Scott &
    Windle 2013), the Albert & Chib (1993) truncated normals for the probit link; given the
    latents the likelihood is Gaussian in ``eta`` (``exp(kappa eta - omega eta^2 / 2)``),
    and each random-effect term's effects are drawn from their normal conditional given the
    others (block Gibbs over terms; with several columns, one column of a term at a time),
    all levels of a term at once (independent given the latents and the other terms). The
    latents come from the functions the package's Gibbs steps use
    (:func:`~bayesglmm.bayes.gibbs.polya_gamma.polya_gamma_weights`,
    :func:`~bayesglmm.bayes.gibbs.albert_chib.albert_chib_latents`). Chains are kept from
    one EM iteration to the next like the Metropolis sampler's; an E-step of size ``m`` runs
    ``K = ceil(m / GIBBS_KEEP)`` of them, each advanced ``GIBBS_BURN`` sweep(s) at the new
    ``psi`` (discarded) and then ``GIBBS_KEEP`` sweeps whose states are all kept (no
    thinning), so the draws are dependent within a chain. The Monte Carlo covariances of the
    stopping rules are then taken over chain sums (:meth:`.complete.Sample.sum_cov`), and
    the effective sample size reported (``ess``) is the smallest over the draws' sufficient
    statistics (each column's ``sum_l u_l^2`` and ``X' Z b``) of ``var / var(chain mean) *
    K``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln, logsumexp

from ...errors import MethodError
from ...method_checks import gibbs_e_step_refusal
from .complete import CompleteData, Sample
from .laplace_mode import LaplaceMode, b_from_u

#: degrees of freedom of the importance t (Booth & Hobert 1999 use a t); on salamander's 120
#: effects df 30 gave an effective size of 15 % of m, df 10 gave 10 %
T_DF = 30.0
#: rejection sampling gives up when it would need more than this many row evaluations
REJECTION_BUDGET = 3e8
#: Metropolis sweeps per EM iteration for kept chains, and burn-in sweeps of new chains
MH_SWEEPS = 3
MH_BURN_IN = 10
#: random-walk scale in units of the conditional standard deviation (1-D optimum)
MH_SCALE = 2.4
#: Gibbs: consecutive states kept per chain per E-step, sweeps at a new ``psi`` before
#: them (kept chains), and burn-in sweeps of new chains (from the Laplace approximation)
GIBBS_KEEP = 5
GIBBS_BURN = 1
GIBBS_START_BURN = 10
#: at most this many (draw, row) pairs in memory per block of work
CHUNK = 2_000_000


def _chunks(m: int, n: int):
    size = max(1, CHUNK // max(n, 1))
    for lo in range(0, m, size):
        yield lo, min(m, lo + size)


class ImportanceSampler:
    """Importance sampling from the Laplace multivariate t (see the module docstring)."""

    name = "importance"

    def __init__(self, model: CompleteData, rng: np.random.Generator, df: float = T_DF):
        self.model, self.rng, self.df = model, rng, df
        self.mode = LaplaceMode(model)

    def draw(self, psi: np.ndarray, m: int, append: Sample | None = None) -> Sample:
        model, q, nu = self.model, self.model.q, self.df
        theta, st = self.mode.at(psi)
        beta = psi[: model.p]
        Z = self.rng.standard_normal((q, m))
        g = self.rng.chisquare(nu, size=m) / nu
        U = (st.u[:, None] + st.factor.solve_Lt(Z) / np.sqrt(g)).T
        delta = np.sum(Z**2, axis=0) / g
        log_t = (
            gammaln((nu + q) / 2)
            - gammaln(nu / 2)
            - 0.5 * q * math.log(nu * math.pi)
            + 0.5 * st.logdet
            - 0.5 * (nu + q) * np.log1p(delta / nu)
        )
        B = b_from_u(model, theta, U)
        ZB = np.empty((m, model.n))
        ll = np.empty(m)
        for lo, hi in _chunks(m, model.n):
            ZB[lo:hi] = model.Zb(B[lo:hi])
            ll[lo:hi] = model.cond_loglik(beta, ZB[lo:hi])
        logw = ll - 0.5 * np.sum(U**2, axis=1) - 0.5 * q * math.log(2 * math.pi) - log_t
        w = np.exp(logw - logw.max())
        s = Sample(B, ZB, w / w.sum(), {}, logw)
        if append is not None:
            s = append.concat(s)
        s.info = {"ess": s.ess, "ess_fraction": s.ess / s.m}
        return s


def loglik_estimate(sample: Sample) -> tuple[float, float]:
    """``log L`` estimated by the mean importance weight, and its Monte Carlo standard error
    (delta method: ``sd(w) / (sqrt(m) mean(w))``)."""
    lw = sample.logw
    m = lw.size
    est = float(logsumexp(lw) - math.log(m))
    r = np.exp(lw - lw.max())
    se = float(np.std(r, ddof=1) / (math.sqrt(m) * np.mean(r))) if m > 1 else math.inf
    return est, se


class RejectionSampler:
    """Rejection sampling from ``N(0, I)`` under the bound ``tau = sup f(y | u)``."""

    name = "rejection"

    def __init__(self, model: CompleteData, rng: np.random.Generator):
        self.model, self.rng = model, rng
        self.mode = LaplaceMode(model)
        terms = model.terms
        if len(terms) == 1:  # one term: its levels are independent blocks
            t = terms[0]
            self.n_blocks, self.block_size = t.n_levels, t.k
            self.row_block = model.slot_level[0]
        else:
            self.n_blocks, self.block_size = 1, model.q
            self.row_block = np.zeros(model.n, dtype=int)
        import scipy.sparse as sp

        self.R = sp.csr_matrix(
            (np.ones(model.n), (np.arange(model.n), self.row_block)),
            shape=(model.n, self.n_blocks),
        )
        self.violations = 0

    def _block_sums(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray((self.R.T @ rows.T).T)

    def bound(self, psi: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """``log tau`` per block: the unpenalized maximum of ``log f(y | u)`` (PIRLS with the
        penalty made negligible), capped by the saturated log-likelihood."""
        model = self.model
        beta = psi[: model.p]
        st = model.problem.solve(1e4 * np.asarray(theta), beta)  # penalty ~ |b|^2 / 1e8
        ll_rows = model.resp.terms(st.eta).loglik
        found = np.bincount(self.row_block, ll_rows, minlength=self.n_blocks)
        sat_rows = model.resp.saturated_loglik()
        saturated = np.bincount(self.row_block, sat_rows, minlength=self.n_blocks)
        return np.minimum(found + 1e-8 * (1.0 + np.abs(found)), saturated)

    def acceptance(self, psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(log tau, log acceptance rate)`` per block; the rate ``L_b / tau_b`` with the
        block's likelihood ``L_b`` by the Laplace approximation."""
        theta, st = self.mode.at(psi)
        log_tau = self.bound(psi, theta)
        if self.n_blocks == 1:
            log_lik = np.array([-0.5 * st.deviance])
        else:
            k = self.block_size
            A = st.Aval  # (n, k): one term
            H = np.einsum("i,ij,ik->ijk", st.terms.W, A, A)
            Hb = np.zeros((self.n_blocks, k, k))
            np.add.at(Hb, self.row_block, H)
            Hb += np.eye(k)
            logdet = np.linalg.slogdet(Hb)[1]
            ll_rows = st.terms.loglik
            u2 = np.sum(st.u.reshape(self.n_blocks, k) ** 2, axis=1)
            log_lik = np.bincount(self.row_block, ll_rows, minlength=self.n_blocks)
            log_lik = log_lik - 0.5 * u2 - 0.5 * logdet
        return log_tau, np.minimum(log_lik - log_tau, 0.0)

    def draw(self, psi: np.ndarray, m: int, append: Sample | None = None) -> Sample:
        model = self.model
        log_tau, log_rate = self.acceptance(psi)
        worst = float(log_rate.min())
        need = m / math.exp(max(worst, -700.0)) * model.n
        if need > REJECTION_BUDGET:
            which = "the random-effect vector" if self.n_blocks == 1 else "one level"
            raise MethodError(
                f"e_step='rejection' is infeasible here: the estimated acceptance rate for "
                f"{which} is 10^{worst / math.log(10):.1f} (log L - log tau by Laplace), so "
                f"{m} draws need about 10^{math.log10(need):.1f} row evaluations (budget "
                f"{REJECTION_BUDGET:.0e}); use e_step='importance' or 'mh'"
            )
        theta = model.theta(psi)
        beta = psi[: model.p]
        nb, k = self.n_blocks, self.block_size
        U = np.zeros((m, nb, k))
        count = np.zeros(nb, dtype=int)
        batch = int(min(max(64, 1.3 * m * math.exp(-worst) / 1.0), max(64, CHUNK // model.n)))
        proposed = 0
        while count.min() < m:
            Ub = self.rng.standard_normal((batch, nb, k))
            Bb = b_from_u(model, theta, Ub.reshape(batch, -1))
            eta = model.eta(beta, model.Zb(Bb))
            rows = model.row_loglik(eta)
            ll = self._block_sums(rows)  # (batch, nb)
            over = ll > log_tau
            if np.any(over):  # the numerical sup was not the sup: raise the bound
                self.violations += int(over.sum())
                log_tau = np.maximum(log_tau, ll.max(axis=0))
            acc = np.log(self.rng.random((batch, nb))) < ll - log_tau
            pos = np.cumsum(acc, axis=0) + count[None, :]
            keep = acc & (pos <= m)
            d, blk = np.nonzero(keep)
            U[pos[d, blk] - 1, blk] = Ub[d, blk]
            count = np.minimum(pos[-1], m)
            proposed += batch
            if proposed * model.n > 10 * REJECTION_BUDGET:
                raise MethodError(
                    f"e_step='rejection' stopped after {proposed} proposals with only "
                    f"{count.min()} of {m} draws for some block; use e_step='importance'"
                )
        B = b_from_u(model, theta, U.reshape(m, -1))
        s = Sample(B, model.Zb(B), np.full(m, 1.0 / m), {})
        if append is not None:
            s = append.concat(s)
        s.info = {
            "ess": float(s.m),
            "proposals": proposed,
            "min_acceptance_rate": float(np.exp(worst)),
            "bound_violations": self.violations,
        }
        return s


class MetropolisSampler:
    """Persistent Metropolis-within-Gibbs chains (see the module docstring)."""

    name = "mh"

    def __init__(self, model: CompleteData, rng: np.random.Generator, sweeps: int = MH_SWEEPS):
        self.model, self.rng, self.sweeps = model, rng, sweeps
        self.mode = LaplaceMode(model)
        self.U: np.ndarray | None = None  # chain states, spherical scale (chains x q)
        self.accepted = 0.0
        self.tried = 0.0

    def _start(self, st, m: int) -> np.ndarray:
        Z = self.rng.standard_normal((self.model.q, m))
        return (st.u[:, None] + st.factor.solve_Lt(Z)).T

    def _sweep(self, U, eta, ll, theta, scales, n_sweeps):
        model = self.model
        for _ in range(n_sweeps):
            for ti, (t, lo) in enumerate(zip(model.terms, model.offsets[:-1], strict=True)):
                slots = np.flatnonzero(model.slot_term == ti)
                T = t.T(theta)
                lvl = model.slot_level[slots[0]]
                R = model.level_sum[slots[0]]
                for c in range(t.k):
                    a = model.Zval[:, slots] @ T[:, c]  # d eta / d u_{l,c} per row
                    idx = lo + np.arange(t.n_levels) * t.k + c
                    step = self.rng.standard_normal((U.shape[0], t.n_levels)) * scales[ti][c]
                    new_eta = eta + a * step[:, lvl]
                    new_rows = model.row_loglik(new_eta)
                    old = U[:, idx]
                    log_r = np.asarray((R.T @ (new_rows - ll).T).T)
                    log_r -= 0.5 * ((old + step) ** 2 - old**2)
                    acc = np.log(self.rng.random(log_r.shape)) < log_r
                    U[:, idx] = np.where(acc, old + step, old)
                    rows_acc = acc[:, lvl]
                    eta = np.where(rows_acc, new_eta, eta)
                    ll = np.where(rows_acc, new_rows, ll)
                    self.accepted += acc.sum()
                    self.tried += acc.size
        return U

    def _scales(self, st, theta) -> list[np.ndarray]:
        model = self.model
        W = st.terms.W
        out = []
        for ti, t in enumerate(model.terms):
            slots = np.flatnonzero(model.slot_term == ti)
            T = t.T(theta)
            lvl = model.slot_level[slots[0]]
            sc = np.empty((t.k, t.n_levels))
            for c in range(t.k):
                a = model.Zval[:, slots] @ T[:, c]
                prec = np.bincount(lvl, W * a**2, minlength=t.n_levels) + 1.0
                sc[c] = MH_SCALE / np.sqrt(prec)
            out.append(sc)
        return out

    def _run(self, U, theta, beta, scales, n_sweeps):
        model = self.model
        for lo, hi in _chunks(U.shape[0], model.n):
            Uc = U[lo:hi]
            eta = model.eta(beta, model.Zb(b_from_u(model, theta, Uc)))
            ll = model.row_loglik(eta)
            U[lo:hi] = self._sweep(Uc, eta, ll, theta, scales, n_sweeps)
        return U

    def draw(self, psi: np.ndarray, m: int, append: Sample | None = None) -> Sample:
        model = self.model
        theta, st = self.mode.at(psi)
        beta = psi[: model.p]
        scales = self._scales(st, theta)
        self.accepted = self.tried = 0.0
        if self.U is None:
            self.U = np.empty((0, model.q))
        if append is not None:  # new chains only, appended to the kept ones
            new = self._run(self._start(st, m), theta, beta, scales, MH_BURN_IN)
            self.U = np.concatenate([self.U, new])
        else:
            keep = self.U[:m]
            if keep.shape[0]:
                keep = self._run(keep.copy(), theta, beta, scales, self.sweeps)
            if keep.shape[0] < m:
                new = self._run(self._start(st, m - keep.shape[0]), theta, beta, scales, MH_BURN_IN)
                keep = np.concatenate([keep, new])
            self.U = keep
        B = b_from_u(model, theta, self.U)
        s = Sample(B, model.Zb(B), np.full(B.shape[0], 1.0 / B.shape[0]), {})
        s.info = {
            "ess": float(s.m),
            "acceptance_rate": float(self.accepted / max(self.tried, 1.0)),
            "chains": int(s.m),
        }
        return s


def chain_ess(T: np.ndarray, chain: np.ndarray) -> float:
    """Effective size of draws ``T`` (``(m, s)`` statistics) from independent chains: the
    smallest over the columns of ``var(T_j) / Var(mean of T_j)``, the variance of the mean
    estimated from the chain means (``var(chain means) / K``, chains of equal length)."""
    m = T.shape[0]
    K = int(chain.max()) + 1
    if K < 2 or m < 3:
        return float(m)
    counts = np.bincount(chain, minlength=K)
    means = np.zeros((K, T.shape[1]))
    np.add.at(means, chain, T)
    means /= counts[:, None]
    var = T.var(axis=0, ddof=1)
    var_mean = means.var(axis=0, ddof=1) / K
    ok = (var > 1e-12 * (1.0 + np.abs(T).mean(axis=0) ** 2)) & (var_mean > 0)
    if not ok.any():
        return float(m)
    return float(np.clip(np.min(var[ok] / var_mean[ok]), 1.0, m))


class GibbsSampler:
    """Persistent data-augmentation Gibbs chains (see the module docstring)."""

    name = "gibbs"

    def __init__(
        self,
        model: CompleteData,
        rng: np.random.Generator,
        keep: int = GIBBS_KEEP,
        burn: int = GIBBS_BURN,
        start_burn: int = GIBBS_START_BURN,
    ):
        fam = model.design.family
        why = gibbs_e_step_refusal(fam.name, fam.link.name)
        if why:
            raise MethodError(why)
        # the package's augmentations (importing them imports the Gibbs steps' PyMC stack)
        if fam.link.name == "logit":
            from ...bayes.gibbs.polya_gamma import polya_gamma_weights as augment
        else:
            from ...bayes.gibbs.albert_chib import albert_chib_latents as augment
        self.augment = augment
        self.model, self.rng = model, rng
        self.keep, self.burn, self.start_burn = int(keep), int(burn), int(start_burn)
        self.mode = LaplaceMode(model)
        self.U: np.ndarray | None = None  # chain states, spherical scale (chains x q)
        self.sweeps = 0

    def _blocks(self, theta):
        """Per (term, column): the row coefficient ``a`` of ``u_{l,c}`` in ``eta``, its
        square, the row's level, the level-sum matrix and the columns of ``U``."""
        model = self.model
        out = []
        for ti, (t, lo) in enumerate(zip(model.terms, model.offsets[:-1], strict=True)):
            slots = np.flatnonzero(model.slot_term == ti)
            T = t.T(theta)
            lvl = model.slot_level[slots[0]]
            R = model.level_sum[slots[0]].T.tocsr()  # levels x rows
            for c in range(t.k):
                a = model.Zval[:, slots] @ T[:, c]
                idx = lo + np.arange(t.n_levels) * t.k + c
                out.append((a, a * a, lvl, R, idx))
        return out

    def _sweep(self, U, eta, blocks):
        """One scan: latents given ``eta``, then each block's normal conditional."""
        r, rng = self.model.resp, self.rng
        w, kappa = self.augment(eta, r.y, r.n, rng)
        for a, a2, lvl, R, idx in blocks:
            rest = eta - a * U[:, idx][:, lvl]
            prec = np.asarray(R @ (w * a2).T).T + 1.0  # the prior N(0, 1) of u
            h = np.asarray(R @ (a * (kappa - w * rest)).T).T
            new = h / prec + rng.standard_normal(h.shape) / np.sqrt(prec)
            U[:, idx] = new
            eta = rest + a * new[:, lvl]
        self.sweeps += 1
        return U, eta

    def _run(self, U, theta, beta, burn):
        """Advance the chains ``U`` by ``burn`` sweeps, then record ``keep`` sweeps:
        ``(final states, recorded states (chains, keep, q))``."""
        model = self.model
        blocks = self._blocks(theta)
        out = np.empty((U.shape[0], self.keep, model.q))
        size = max(1, CHUNK // max(model.n, 1))
        for lo in range(0, U.shape[0], size):
            Uc = U[lo : lo + size].copy()
            eta = model.eta(beta, model.Zb(b_from_u(model, theta, Uc)))
            for _ in range(burn):
                Uc, eta = self._sweep(Uc, eta, blocks)
            for j in range(self.keep):
                Uc, eta = self._sweep(Uc, eta, blocks)
                out[lo : lo + size, j] = Uc
            U[lo : lo + size] = Uc
        return U, out

    def _start(self, psi, k: int) -> np.ndarray:
        _, st = self.mode.at(psi)
        Z = self.rng.standard_normal((self.model.q, k))
        return (st.u[:, None] + st.factor.solve_Lt(Z)).T

    def _sample(self, theta, rec: np.ndarray, first_chain: int = 0) -> Sample:
        model = self.model
        K = rec.shape[0]
        B = b_from_u(model, theta, rec.reshape(K * self.keep, model.q))
        chain = np.repeat(np.arange(K), self.keep) + first_chain
        return Sample(B, model.Zb(B), np.full(B.shape[0], 1.0 / B.shape[0]), {}, chain=chain)

    def draw(self, psi: np.ndarray, m: int, append: Sample | None = None) -> Sample:
        model = self.model
        theta = model.theta(psi)
        beta = np.asarray(psi[: model.p], dtype=float)
        K = -(-int(m) // self.keep)
        self.sweeps = 0
        if self.U is None:
            self.U = np.empty((0, model.q))
        if append is not None:  # new chains only, appended to the kept ones
            U, rec = self._run(self._start(psi, K), theta, beta, self.start_burn)
            self.U = np.concatenate([self.U, U])
            s = append.concat(self._sample(theta, rec))
        else:
            kept = self.U[:K]
            parts, recs = [], []
            if kept.shape[0]:
                U, rec = self._run(kept.copy(), theta, beta, self.burn)
                parts.append(U)
                recs.append(rec)
            if kept.shape[0] < K:
                U, rec = self._run(
                    self._start(psi, K - kept.shape[0]), theta, beta, self.start_burn
                )
                parts.append(U)
                recs.append(rec)
            self.U = np.concatenate(parts)
            s = self._sample(theta, np.concatenate(recs))
        stats = [s.ZB @ model.X]
        for t, lo in zip(model.terms, model.offsets[:-1], strict=True):
            bt = s.B[:, lo : lo + t.k * t.n_levels].reshape(s.m, t.n_levels, t.k)
            stats.append(np.sum(bt**2, axis=1))
        s.n_eff = chain_ess(np.concatenate(stats, axis=1), s.chain)
        s.info = {
            "ess": s.ess,
            "ess_fraction": s.ess / s.m,
            "chains": int(s.chain.max()) + 1,
            "kept_per_chain": self.keep,
            "sweeps": int(self.sweeps),
        }
        return s


def make_sampler(name: str, model: CompleteData, rng: np.random.Generator):
    """The E-step sampler called ``name`` (``"importance"``, ``"rejection"``, ``"mh"``,
    ``"gibbs"``)."""
    kinds = {
        "importance": ImportanceSampler,
        "rejection": RejectionSampler,
        "mh": MetropolisSampler,
        "gibbs": GibbsSampler,
    }
    if name not in kinds:
        raise MethodError(f"e_step must be one of {', '.join(map(repr, kinds))}, got {name!r}")
    return kinds[name](model, rng)
