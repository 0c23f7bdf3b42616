"""Conjugate updates of random-effect variances and covariances.

* :class:`InverseGammaStep`: a variance ``v ~ IG(alpha, beta)`` whose only role in the
  model is the variance of centered normal effects ``b_j ~ N(mu_j, v)``, ``j = 1..N``:

  .. math:: v \\mid b \\sim \\mathrm{IG}\\big(\\alpha + N/2,\\;
            \\beta + \\tfrac12 \\textstyle\\sum_j (b_j - \\mu_j)^2\\big).

* :class:`InverseWishartStep`: a covariance ``Sigma ~ IW(nu, Psi)`` (the
  :class:`~bayesglmm.priors.InverseWishart` prior) of centered effects
  ``b_l ~ N_k(mu, Sigma)``, ``l = 1..N``:

  .. math:: \\Sigma \\mid b \\sim \\mathrm{IW}\\big(\\nu + N,\\;
            \\Psi + \\textstyle\\sum_l (b_l - \\mu)(b_l - \\mu)'\\big).

Both steps find the effects from the PyMC graph and check conjugacy there (the variable
enters no other distribution; the effects' sd is exactly ``sqrt(v)``, their covariance
exactly ``L L'``), so a model where the update would be wrong is refused with the reason.
"""

from __future__ import annotations

import numpy as np
import scipy.stats
from pymc.distributions.multivariate import MvNormalRV
from pymc.logprob.transforms import LogTransform
from pytensor.tensor.random.basic import InvGammaRV, NormalRV

from ...errors import MethodError
from .effects import GibbsStep, compile_point_fn, depends_on, rv_of, value_name
from .inverse_wishart import InverseWishartCholeskyRV, from_value, to_value

#: relative tolerance of the numerical conjugacy checks (exact relations up to rounding)
_CHECK_RTOL = 1e-8


class _ConjugateStep(GibbsStep):
    """Shared set-up: one variable, its children in the graph, its prior parameters."""

    rv_type: type = object
    child_type: type = object
    what = ""
    #: one step per variable when PyMC assigns several at once
    default_blocked = False
    #: whether the update reads the prior's two parameters (a scale move needs none, and
    #: priors such as HalfCauchy or Exponential have other parameter lists)
    prior_params = True

    @classmethod
    def competence(cls, var, has_grad):
        """IDEAL for a variable with the conjugate prior (conjugacy is checked on creation)."""
        from pymc.step_methods.compound import Competence

        op = getattr(getattr(var, "owner", None), "op", None)
        if cls.rv_type is not object and isinstance(op, cls.rv_type):
            return Competence.IDEAL
        return Competence.INCOMPATIBLE

    def __init__(
        self, vars, *, model=None, rng=None, initial_point=None, blocked=True, compile_kwargs=None
    ):
        ip = self._setup(vars, model, rng, initial_point)
        model = self._model
        if len(self.vars) != 1:
            raise MethodError(
                f"{type(self).__name__} updates one variable; make one step "
                f"per variable (got {[v.name for v in self.vars]})"
            )
        rv = rv_of(model, self.vars[0])
        self.rv_name, self.value = rv.name, value_name(model, rv)
        why = f"the {self.what} update of {rv.name!r}"
        if not isinstance(rv.owner.op, self.rv_type):
            raise MethodError(
                f"{why} needs {self.prior_hint}; {rv.name!r} has a "
                f"{type(rv.owner.op).__name__.removesuffix('RV')} prior"
            )
        self.children = []
        for other in model.free_RVs + model.observed_RVs:
            uses = [depends_on(i, rv, model) for i in other.owner.inputs[2:]]
            # every input of the observed variable: the weighted likelihood (a CustomDist)
            # does not list its parameters after a generator and a size
            if other is rv or not any(depends_on(i, rv, model) for i in other.owner.inputs):
                continue
            # a child may use the variable in its scale only (its mean is checked by value:
            # PyMC broadcasts a mean against the covariance, a dependence through shape only)
            if (
                other in model.observed_RVs
                or not isinstance(other.owner.op, self.child_type)
                or len(uses) != 2
            ):
                raise MethodError(
                    f"{why}: {rv.name!r} also enters the distribution of {other.name!r}, "
                    f"so its full conditional is not {self.what}"
                )
            self.children.append(other)
        if not self.children:
            raise MethodError(f"{why}: no random effects depend on {rv.name!r}")
        self._child_values = [value_name(model, c) for c in self.children]
        # one compiled call per step: the prior's parameters, then each child's (mean, scale)
        prior_inputs = list(rv.owner.inputs[2:4]) if self.prior_params else []
        self._n_prior = len(prior_inputs)
        self._fn = compile_point_fn(
            model, [*prior_inputs, *(x for c in self.children for x in c.owner.inputs[2:4])]
        )
        self._check(ip, why)

    def _check_mean(self, why, child, mu0, mu1) -> None:
        if not np.allclose(mu0, mu1, rtol=_CHECK_RTOL):
            raise MethodError(
                f"{why}: {self.rv_name!r} also enters the mean of {child.name!r}, so its full "
                f"conditional is not {self.what}"
            )

    def _prior_fn(self, point):
        return self._fn(point)[: self._n_prior]

    def _children(self, point, vals=None):
        vals = (self._fn(point) if vals is None else vals)[self._n_prior :]
        return [
            (np.asarray(point[name]), vals[2 * i], vals[2 * i + 1])
            for i, name in enumerate(self._child_values)
        ]


class InverseGammaStep(_ConjugateStep):
    """Gibbs update of a variance with an inverse-gamma prior.

    Parameters
    ----------
    vars : variable or name
        The variance (e.g. ``"1|Female_var"``, built from an
        :class:`~bayesglmm.priors.InverseGamma` prior in the centered model).
    model : pymc.Model, optional
    rng : seed or Generator, optional
    """

    name = "inverse_gamma"
    rv_type = InvGammaRV
    child_type = NormalRV
    what = "inverse-gamma"
    prior_hint = (
        "an InverseGamma prior on the variance (bayesglmm.priors.InverseGamma); "
        "priors on the standard deviation have no conjugate update"
    )

    def _check(self, ip, why):
        transform = self._model.rvs_to_transforms.get(rv_of(self._model, self.vars[0]))
        if transform is not None and not isinstance(transform, LogTransform):
            raise MethodError(f"{why}: unsupported transform {type(transform).__name__}")
        self._log = transform is not None
        v0 = self._variance(ip[self.value])
        moved = dict(ip)
        moved[self.value] = self._to_value(4.0 * v0)
        self._masks = []
        for child, (b, mu0, sd0), (_, mu1, sd1) in zip(
            self.children, self._children(ip), self._children(moved), strict=True
        ):
            self._check_mean(why, child, mu0, mu1)
            sd0, sd1 = np.broadcast_to(sd0, b.shape), np.broadcast_to(sd1, b.shape)
            mask = ~np.isclose(sd0, sd1, rtol=_CHECK_RTOL)
            exact = np.allclose(sd0[mask] ** 2, v0, rtol=1e-6) and np.allclose(
                sd1[mask] ** 2, 4.0 * v0, rtol=1e-6
            )
            if not np.any(mask) or not exact:
                raise MethodError(
                    f"{why}: the standard deviation of {child.name!r} is not "
                    f"sqrt({self.rv_name}) (the update needs effects ~ Normal(mu, "
                    "sqrt(variance)))"
                )
            self._masks.append(mask)

    def _variance(self, value):
        return float(np.exp(value) if self._log else value)

    def _to_value(self, v):
        return np.asarray(np.log(v) if self._log else v, dtype=float)

    @staticmethod
    def conditional(alpha, beta, n, sum_sq):
        """Shape and rate of the full conditional (a method, so tests can break it)."""
        return alpha + 0.5 * n, beta + 0.5 * sum_sq

    def step(self, point):
        vals = self._fn(point)
        n, ss = 0, 0.0
        for (b, mu, _), mask in zip(self._children(point, vals), self._masks, strict=True):
            r = (b - np.broadcast_to(mu, b.shape))[mask]
            n, ss = n + r.size, ss + float(r @ r)
        alpha, beta = float(vals[0]), float(vals[1])
        shape, rate = self.conditional(alpha, beta, n, ss)
        v = rate / self.rng.gamma(shape)
        new = dict(point)
        new[self.value] = self._to_value(v)
        return new, [{}]


class InverseWishartStep(_ConjugateStep):
    """Gibbs update of a covariance matrix with an inverse-Wishart prior.

    Parameters
    ----------
    vars : variable or name
        The packed Cholesky factor ``"<term>_chol"`` built from an
        :class:`~bayesglmm.priors.InverseWishart` prior in the centered model.
    model : pymc.Model, optional
    rng : seed or Generator, optional
    """

    name = "inverse_wishart"
    rv_type = InverseWishartCholeskyRV
    child_type = MvNormalRV
    what = "inverse-Wishart"
    prior_hint = (
        "an InverseWishart prior on the covariance (bayesglmm.priors.InverseWishart);"
        " an LKJ prior on the correlations has no conjugate update"
    )

    def _check(self, ip, why):
        nu, psi = self._prior_fn(ip)
        self.k = int(np.shape(psi)[-1])
        cov0 = from_value(ip[self.value], self.k)
        moved = dict(ip)
        moved[self.value] = to_value(4.0 * cov0)
        for child, (_, mu0, c0), (_, mu1, c1) in zip(
            self.children, self._children(ip), self._children(moved), strict=True
        ):
            self._check_mean(why, child, mu0, mu1)
            c0 = np.asarray(c0).reshape(-1, self.k, self.k)
            c1 = np.asarray(c1).reshape(-1, self.k, self.k)
            if not (np.allclose(c0, cov0, rtol=1e-6) and np.allclose(c1, 4.0 * cov0, rtol=1e-6)):
                raise MethodError(
                    f"{why}: the covariance of {child.name!r} is not the one "
                    f"{self.rv_name!r} holds (the update needs effects ~ MvNormal(mu, L L'))"
                )

    def step(self, point):
        vals = self._fn(point)
        n, S = 0, np.zeros((self.k, self.k))
        for b, mu, _ in self._children(point, vals):
            r = (b - np.broadcast_to(mu, b.shape)).reshape(-1, self.k)
            n, S = n + r.shape[0], S + r.T @ r
        nu, psi = vals[0], vals[1]
        cov = scipy.stats.invwishart.rvs(
            df=float(nu) + n, scale=np.asarray(psi) + S, random_state=self.rng
        )
        new = dict(point)
        new[self.value] = to_value(np.atleast_2d(cov))
        return new, [{}]
