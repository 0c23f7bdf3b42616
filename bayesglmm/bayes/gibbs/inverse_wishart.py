"""The inverse-Wishart prior as a PyMC distribution on a packed Cholesky factor.

PyMC has no inverse-Wishart distribution that NUTS can use. This one puts the density on
the packed lower Cholesky factor ``L`` of the covariance (``Sigma = L L'``, rows of the
lower triangle in order, as :class:`pymc.LKJCholeskyCov`), with the same log-diagonal
transform as LKJ, so that NUTS and the conjugate Gibbs update of
:class:`~bayesglmm.bayes.gibbs.conjugate.InverseWishartStep` share one model:

.. math::

    \\log p(L) = \\log \\mathrm{IW}(L L' \\mid \\nu, \\Psi) + k \\log 2
                 + \\sum_{i=1}^{k} (k - i + 1) \\log L_{ii},

the last two terms being the log Jacobian of ``L -> L L'`` (Muirhead 1982, Thm 2.1.9).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import scipy.stats
from pymc.distributions.dist_math import check_parameters
from pymc.distributions.transforms import CholeskyCovPacked
from pytensor.tensor.random.op import RandomVariable


def pack_lower(L: np.ndarray) -> np.ndarray:
    """Rows of the lower triangle of ``L`` in order (PyMC's packing)."""
    return L[np.tril_indices(L.shape[-1])]


def unpack_lower(packed: np.ndarray, k: int) -> np.ndarray:
    L = np.zeros((k, k))
    L[np.tril_indices(k)] = packed
    return L


def diag_positions(k: int) -> np.ndarray:
    """Positions of the diagonal of ``L`` in the packed vector."""
    return np.cumsum(np.arange(1, k + 1)) - 1


def to_value(cov: np.ndarray) -> np.ndarray:
    """The transformed (unconstrained) value of the model variable for a covariance."""
    k = cov.shape[0]
    packed = pack_lower(np.linalg.cholesky(cov))
    d = diag_positions(k)
    packed[d] = np.log(packed[d])
    return packed


def from_value(value: np.ndarray, k: int) -> np.ndarray:
    """The covariance for a transformed value of the model variable."""
    packed = np.array(value, dtype=float)
    d = diag_positions(k)
    packed[d] = np.exp(packed[d])
    L = unpack_lower(packed, k)
    return L @ L.T


class InverseWishartCholeskyRV(RandomVariable):
    """Draws the packed Cholesky factor of an inverse-Wishart covariance."""

    name = "inverse_wishart_cholesky"
    signature = "(),(k,k)->(m)"
    dtype = "floatX"
    _print_name = ("InverseWishartCholesky", "\\operatorname{IWChol}")

    def _supp_shape_from_params(self, dist_params, param_shapes=None):
        k = (param_shapes or [p.shape for p in dist_params])[1][-1]
        return ((k * (k + 1)) // 2,)

    @classmethod
    def rng_fn(cls, rng, nu, psi, size):
        nu, psi = np.asarray(nu, dtype=float), np.asarray(psi, dtype=float)
        k = psi.shape[-1]
        shape = () if size is None else tuple(size)
        out = np.empty((*shape, k * (k + 1) // 2))
        flat = out.reshape(-1, out.shape[-1])
        nus = np.broadcast_to(nu, shape).reshape(-1)
        psis = np.broadcast_to(psi, (*shape, k, k)).reshape(-1, k, k)
        for i in range(flat.shape[0]):
            cov = scipy.stats.invwishart.rvs(df=nus[i], scale=psis[i], random_state=rng)
            flat[i] = pack_lower(np.linalg.cholesky(np.atleast_2d(cov)))
        return out


inverse_wishart_cholesky = InverseWishartCholeskyRV()


def _multigammaln(a, k: int):
    j = np.arange(1, k + 1)
    return k * (k - 1) / 4.0 * np.log(np.pi) + pt.sum(pt.gammaln(a + (1.0 - j) / 2.0))


class InverseWishartCholesky(pm.distributions.Continuous):
    """Packed Cholesky factor ``L`` of ``Sigma ~ IW(nu, psi)``.

    Parameters
    ----------
    nu : float
        Degrees of freedom, ``nu > k - 1``.
    psi : array, shape (k, k)
        Scale matrix, symmetric positive definite.
    """

    rv_op = inverse_wishart_cholesky

    def __new__(cls, name, *args, **kwargs):
        psi = np.asarray(kwargs.get("psi", args[1] if len(args) > 1 else None), dtype=float)
        kwargs.setdefault("default_transform", CholeskyCovPacked(psi.shape[-1]))
        return super().__new__(cls, name, *args, **kwargs)

    @classmethod
    def dist(cls, nu, psi, **kwargs):
        nu = pt.as_tensor_variable(np.asarray(nu, dtype=float))
        psi = pt.as_tensor_variable(np.asarray(psi, dtype=float))
        return super().dist([nu, psi], **kwargs)

    def support_point(rv, size, nu, psi):
        # the packed Cholesky factor of the prior mode psi / (nu + k + 1)
        k = psi.shape[-1]
        L = pt.linalg.cholesky(psi / (nu + k + 1.0))
        rows, cols = pt.tril_indices(k)
        point = L[..., rows, cols]
        if size is not None and not pm.distributions.shape_utils.rv_size_is_none(size):
            point = pt.full((*size, point.shape[-1]), point)
        return point

    def logp(value, nu, psi):
        k = int(psi.type.shape[-1])
        L = pm.expand_packed_triangular(k, value, lower=True)
        diag = pt.diagonal(L)
        log_diag = pt.log(diag)
        C = pt.linalg.cholesky(psi)
        A = pt.linalg.solve_triangular(L, C, lower=True)  # L^{-1} C: tr(psi Sigma^-1) = |A|^2
        logdet_psi = 2.0 * pt.sum(pt.log(pt.diagonal(C)))
        logdet_sigma = 2.0 * pt.sum(log_diag)
        log_iw = (
            0.5 * nu * logdet_psi
            - 0.5 * nu * k * np.log(2.0)
            - _multigammaln(0.5 * nu, k)
            - 0.5 * (nu + k + 1.0) * logdet_sigma
            - 0.5 * pt.sum(A**2)
        )
        log_jac = k * np.log(2.0) + pt.sum((k - np.arange(k)) * log_diag)
        res = pt.switch(pt.all(diag > 0), log_iw + log_jac, -np.inf)
        return check_parameters(res, nu > k - 1, msg="nu > k - 1")
