"""Working correlation structures of GEE as small strategy classes.

Each structure holds its parameters, re-estimates them from Pearson residuals with
:meth:`update`, and returns the working correlation matrices of a batch of equally sized
clusters with :meth:`covariance_matrix`. Two conventions for the moment estimators
(``moments=``):

* ``"geepack"`` (default), R's geepack (``geese.fit``, ``src/gee2.cc`` ``update_alpha``):
  residuals scaled by ``phi = sum r^2 / N`` (no ddof), ``z_ijk = r_ij r_ik / phi``, and
  ``alpha`` solves ``sum_pairs E_jk (z_ijk - rho_jk(alpha)) = 0``, ``E = d rho / d alpha``,
  over *all* pairs of a cluster. Exchangeable: the mean of ``z`` over all pairs; AR(1):
  ``rho = alpha^|t_j - t_k|`` fitted to all pairs (not only lag 1); unstructured: the mean
  of ``z`` for each pair of time points, not rescaled by its diagonal.
* ``"statsmodels"``: Liang & Zeger (1986) as in statsmodels' ``genmod/cov_struct.py``,
  ``ddof`` = number of regression parameters (exchangeable, unstructured) and the
  lag-1 "grid" estimator of AR(1).

Residuals arrive in *buckets*: all clusters of one size ``k`` stacked into an ``(m, k)``
array ``r``, with ``times`` the ``(m, k)`` integer time codes of the observations (their
positions ``0..k-1`` within the cluster when no time column was given). Rows within a
cluster are sorted by time.

With prior weights a bucket is ``(r, times, w)`` and the geepack moments are geepack's
weighted ones (``src/geesubs.cc`` ``HiandGi``): ``phi = sum w r^2 / sum w`` and each pair's
``z_ijk`` weighted by ``w_ij w_ik`` in ``alpha``'s equation (the weighted mean of ``z``
over pairs for the exchangeable and unstructured structures). The statsmodels moments take
no weights.
"""

from __future__ import annotations

import numpy as np

#: an unstructured estimate with an eigenvalue below this is projected (clipped) to it
EIG_FLOOR = 1e-2
#: most Gauss-Newton steps of geepack's AR(1) estimating equation per update
AR1_MAX_ITER = 200
#: the ``corstr`` names (as geepack spells them) and their classes (filled below)
CORSTRS: dict[str, type] = {}


def _mean_square(buckets) -> float:
    """``sum r^2 / N`` over all residuals: geepack's scale (no ddof); with weights
    ``sum w r^2 / sum w``."""
    if _weighted(buckets):
        ssr = sum(float((w * r * r).sum()) for r, _, w in buckets)
        total = sum(float(w.sum()) for _, _, w in buckets)
        return ssr / total if total else 1.0
    ssr = sum(float((r * r).sum()) for r, _ in buckets)
    n = sum(r.size for r, _ in buckets)
    return ssr / n if n else 1.0


def _weighted(buckets) -> bool:
    """The buckets carry prior weights (``(r, times, w)``)."""
    return bool(buckets) and len(buckets[0]) == 3


def _pair_sums(a: np.ndarray) -> np.ndarray:
    """``sum_{j<k} a_j a_k`` of each row of ``a``."""
    return 0.5 * (a.sum(axis=1) ** 2 - (a * a).sum(axis=1))


class WorkingCorrelation:
    """Base class: independence-like defaults, no parameters."""

    name = "independence"

    def __init__(self, moments: str = "geepack") -> None:
        self.n_times = 0
        self.moments = moments

    def initialize(self, n_times: int) -> None:
        """Called once before fitting with the number of distinct time codes."""
        self.n_times = int(n_times)

    def update(self, buckets: list[tuple[np.ndarray, np.ndarray]], ddof: int) -> None:
        """Re-estimate the parameters from Pearson residuals ``[(r, times), ...]``."""

    def covariance_matrix(self, times: np.ndarray) -> np.ndarray:
        """Working correlation matrices, shape ``(m, k, k)``, of clusters with ``times``."""
        m, k = times.shape
        return np.broadcast_to(np.eye(k), (m, k, k))

    @property
    def params(self) -> dict:
        """The estimated correlation parameters, JSON-ready."""
        return {}

    def describe(self) -> str:
        return "observations within a cluster are independent"


class Independence(WorkingCorrelation):
    """``R = I``: the GEE estimate is the GLM estimate; only the SEs account for clusters."""


class Exchangeable(WorkingCorrelation):
    """``R_jk = alpha`` for every pair ``j != k`` of a cluster.

    ``alpha = sum_pairs r_ij r_ik / (phi (P - ddof))`` with ``phi = sum r^2 / (N - ddof)``
    and ``P`` the number of within-cluster pairs; geepack's ``ddof`` is 0.
    """

    name = "exchangeable"

    def __init__(self, moments: str = "geepack") -> None:
        super().__init__(moments)
        self.alpha = 0.0

    def update(self, buckets, ddof):
        if _weighted(buckets):
            phi = _mean_square(buckets)
            pairs = sum(float(_pair_sums(w * r).sum()) for r, _, w in buckets)
            n_pairs = sum(float(_pair_sums(w).sum()) for _, _, w in buckets)
            ok = n_pairs > 0 and phi > 0
            self.alpha = float(pairs / (phi * n_pairs)) if ok else 0.0
            return
        if self.moments == "geepack":
            ddof = 0
        ssr = pairs = n = n_pairs = 0.0
        for r, _ in buckets:
            k = r.shape[1]
            sq = (r * r).sum(axis=1)
            ssr += sq.sum()
            pairs += 0.5 * (r.sum(axis=1) ** 2 - sq).sum()
            n += r.size
            n_pairs += r.shape[0] * k * (k - 1) / 2
        phi = ssr / (n - ddof)
        denom = phi * (n_pairs - ddof)
        self.alpha = float(pairs / denom) if n_pairs > ddof and phi > 0 else 0.0

    def covariance_matrix(self, times):
        m, k = times.shape
        R = np.full((k, k), self.alpha)
        np.fill_diagonal(R, 1.0)
        return np.broadcast_to(R, (m, k, k))

    @property
    def params(self):
        return {"alpha": self.alpha}

    def describe(self):
        return f"exchangeable: correlation {self.alpha:.4f} between any two observations"


class Autoregressive(WorkingCorrelation):
    """AR(1): ``R_jk = alpha^|j - k|`` for positions ``j, k`` in time order.

    statsmodels: ``alpha = sum_i mean_j(r_ij r_i,j+1) / sum_i mean_j(r_ij^2)`` over clusters
    of two or more observations (its grid estimator, positions in time order). geepack:
    ``rho_jk = alpha^d_jk``, ``d_jk = |t_j - t_k|`` the distance of the time codes,
    fitted to ``z_ijk = r_ij r_ik / phi`` of all pairs by Gauss-Newton
    (``sum E (z - rho) = 0``, ``E = d_jk alpha^(d_jk - 1)``).
    """

    name = "ar1"

    def __init__(self, moments: str = "geepack") -> None:
        super().__init__(moments)
        self.alpha = 0.0

    def update(self, buckets, ddof):
        if self.moments == "geepack":
            self._update_geepack(buckets)
            return
        lag0 = lag1 = 0.0
        for r, _ in buckets:
            k = r.shape[1]
            if k < 2:
                continue
            lag1 += (r[:, :-1] * r[:, 1:]).sum() / (k - 1)
            lag0 += (r * r).sum() / k
        self.alpha = float(lag1 / lag0) if lag0 > 0 else 0.0

    def _update_geepack(self, buckets):
        phi = _mean_square(buckets)
        weighted = _weighted(buckets)
        zs, ds, ws = [], [], []
        for bucket in buckets:
            r, times = bucket[0], bucket[1]
            k = r.shape[1]
            if k < 2:
                continue
            j, l = np.triu_indices(k, 1)
            zs.append((r[:, j] * r[:, l]).ravel() / phi)
            ds.append(np.abs(times[:, l] - times[:, j]).ravel().astype(float))
            if weighted:
                ws.append((bucket[2][:, j] * bucket[2][:, l]).ravel())
        if not zs or phi <= 0:
            self.alpha = 0.0
            return
        z, d = np.concatenate(zs), np.concatenate(ds)
        ww = np.concatenate(ws) if weighted else None
        a = self.alpha
        for _ in range(AR1_MAX_ITER):
            rho = a**d
            E = np.where(d == 1.0, 1.0, d * a ** np.maximum(d - 1.0, 0.0))
            WE = E if ww is None else ww * E  # pair weights w_j w_k (geepack)
            h = float(WE @ E)
            if h <= 0:
                break
            step = float(WE @ (z - rho)) / h
            a += step
            if abs(step) < 1e-14 * (1.0 + abs(a)):
                break
        self.alpha = float(a)

    def covariance_matrix(self, times):
        m, k = times.shape
        if self.moments == "geepack":
            d = np.abs(times[:, :, None] - times[:, None, :]).astype(float)
            return self.alpha**d
        pos = np.arange(k)
        R = self.alpha ** np.abs(pos[:, None] - pos[None, :]).astype(float)
        return np.broadcast_to(R, (m, k, k))

    @property
    def params(self):
        return {"alpha": self.alpha}

    def describe(self):
        return f"AR(1): correlation {self.alpha:.4f}^|lag| within a cluster"


class Unstructured(WorkingCorrelation):
    """A free correlation for every pair of time points.

    statsmodels: ``C_st = sum r_is r_it / (n_st - ddof)`` over clusters observed at both
    ``s`` and ``t``, scaled to a correlation matrix. geepack: ``R_st = sum r_is r_it /
    (phi n_st)`` for ``s != t``, ``phi = sum r^2 / N``, unit diagonal.
    """

    name = "unstructured"

    def initialize(self, n_times):
        super().initialize(n_times)
        self.R = np.eye(self.n_times)
        self.projected = False

    def update(self, buckets, ddof):
        T = self.n_times
        cov = np.zeros((T, T))
        count = np.zeros((T, T))
        for bucket in buckets:
            r, times = bucket[0], bucket[1]
            m, k = r.shape
            ii = np.repeat(times, k, axis=1).ravel()
            jj = np.tile(times, (1, k)).ravel()
            if len(bucket) == 3:  # prior weights: pairs weighted by w_s w_t (geepack)
                w = bucket[2]
                r = w * r
                np.add.at(count, (ii, jj), (w[:, :, None] * w[:, None, :]).ravel())
            else:
                np.add.at(count, (ii, jj), 1.0)
            prod = (r[:, :, None] * r[:, None, :]).ravel()
            np.add.at(cov, (ii, jj), prod)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.moments == "geepack":
                R = np.where(count > 0, cov / (count * _mean_square(buckets)), 0.0)
            else:
                cov = np.where(count > ddof, cov / (count - ddof), 0.0)
                sd = np.sqrt(np.diag(cov))
                R = cov / np.outer(sd, sd)
        R = np.where(np.isfinite(R), R, 0.0)
        np.fill_diagonal(R, 1.0)
        w, v = np.linalg.eigh(R)
        self.projected = bool(w.min() < EIG_FLOOR)
        if self.projected:  # not positive definite: clip the eigenvalues, rescale
            R = (v * np.maximum(w, EIG_FLOOR)) @ v.T
            d = np.sqrt(np.diag(R))
            R = R / np.outer(d, d)
        self.R = R

    def covariance_matrix(self, times):
        return self.R[times[:, :, None], times[:, None, :]]

    @property
    def params(self):
        return {"R": self.R.tolist(), "projected": self.projected}

    def describe(self):
        return f"unstructured: a free correlation for each of the {self.n_times} time points"


CORSTRS.update(
    {
        "independence": Independence,
        "exchangeable": Exchangeable,
        "ar1": Autoregressive,
        "unstructured": Unstructured,
    }
)


def make_correlation(corstr: str, moments: str = "geepack") -> WorkingCorrelation:
    """A fresh working correlation for the ``corstr`` name and ``moments`` convention."""
    return CORSTRS[corstr](moments)
