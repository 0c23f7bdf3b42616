"""A joint rescaling move of a random term and its scale, against slow variance mixing.

In the centered parameterization each Gibbs update of a variance is conditional on the
random effects, and the effects on the variance; when each level carries little data the
two are tightly coupled and the variance mixes slowly (the "funnel"). The group move of
Liu & Sabatti (2000) breaks the coupling: it multiplies the effects by ``c`` and their
standard deviation by ``c`` together, a Metropolis-Hastings step along the direction the
Gibbs updates cannot follow. On the value scale (``u = log sd`` or ``log variance``,
``u -> u + log c`` or ``u + 2 log c``) the move ``b -> c b`` has Jacobian ``c^N`` (``N``
effects scaled), so with ``log c ~ N(0, s^2)`` the acceptance ratio is

.. math:: \\frac{p(u', b' \\mid y)}{p(u, b \\mid y)}\\, c^{N}.

The move is exact for any prior on the scale; it needs effects ``b ~ N(0, sd)`` with ``sd``
exactly ``exp(u)`` or ``exp(u / 2)``, which it checks on the model.
"""

from __future__ import annotations

import numpy as np
from pytensor.tensor.random.basic import NormalRV

from ...errors import MethodError
from .conjugate import _CHECK_RTOL, _ConjugateStep
from .effects import compile_point_fn, depends_on
from .metropolis import TARGET_ACCEPT_1D, _TunedMetropolis


class ScaleMoveStep(_ConjugateStep, _TunedMetropolis):
    """Metropolis move rescaling a random term together with its sd or variance.

    Parameters
    ----------
    vars : variable or name
        The scale: a standard deviation (``"1|g_sigma"``) or a variance (``"1|g_var"``)
        with a log transform, of effects ``b ~ Normal(0, sd)`` in a centered model.
    model : pymc.Model, optional
    rng : seed or Generator, optional
    target_accept : float, optional
        Acceptance rate aimed at while tuning the proposal sd of ``log c`` (0.44).
    """

    name = "scale_move"
    rv_type = object
    child_type = NormalRV
    what = "scale move"
    prior_hint = "a positive scale"
    prior_params = False

    def __init__(
        self,
        vars,
        *,
        model=None,
        rng=None,
        initial_point=None,
        target_accept=None,
        blocked=True,
        compile_kwargs=None,
    ):
        super().__init__(vars, model=model, rng=rng, initial_point=initial_point)
        model = self._model
        # the terms the move changes: the scale's prior, the effects and whatever uses them
        # (every input: the weighted likelihood, a CustomDist, does not list its parameters
        # after a random generator and a size as a RandomVariable does)
        moved = [model[self.rv_name], *self.children]
        terms = moved + [
            r
            for r in model.basic_RVs
            if r not in moved
            and any(depends_on(i, x, model) for i in r.owner.inputs for x in moved)
        ]
        # potentials hold the density of improper priors (PowerVariance, Jeffreys)
        terms += [p for p in model.potentials if any(depends_on(p, x, model) for x in moved)]
        self._logp_fn = compile_point_fn(model, [model.logp(vars=terms, jacobian=True)])
        n = sum(int(m.sum()) for m in self._masks)
        self._init_tuning(
            np.array(np.log(2.38 / np.sqrt(2.0 * n))), target_accept or TARGET_ACCEPT_1D
        )

    def _check(self, ip, why):
        transform = self._model.rvs_to_transforms.get(self._model[self.rv_name])
        if type(transform).__name__ != "LogTransform":
            raise MethodError(
                f"{why}: {self.rv_name!r} must be a positive variable (log transform)"
            )
        moved = dict(ip)
        moved[self.value] = np.asarray(ip[self.value] + 1.0)
        self._masks, powers = [], []
        for child, (b, mu0, sd0), (_, mu1, sd1) in zip(
            self.children, self._children(ip), self._children(moved), strict=True
        ):
            self._check_mean(why, child, mu0, mu1)
            if not np.allclose(mu0, 0.0):
                raise MethodError(f"{why}: {child.name!r} must have mean zero")
            sd0, sd1 = np.broadcast_to(sd0, b.shape), np.broadcast_to(sd1, b.shape)
            mask = ~np.isclose(sd0, sd1, rtol=_CHECK_RTOL)
            powers.append(np.log(sd1[mask] / sd0[mask]))
            self._masks.append(mask)
        power = np.concatenate(powers)
        if power.size == 0 or not np.allclose(power, power[0]):
            raise MethodError(f"{why}: the effects do not all scale with {self.rv_name!r}")
        # sd = exp(power * u): u -> u + log(c) / power multiplies the sd by c
        for p in (0.5, 1.0):
            if np.isclose(power[0], p):
                self.power = p
                return
        raise MethodError(
            f"{why}: the sd of the effects is neither {self.rv_name} nor its square root"
        )

    def _logp(self, point) -> float:
        return float(self._logp_fn(point)[0])

    def step(self, point):
        log_c = float(np.exp(self.log_scale) * self.rng.standard_normal())
        proposal = dict(point)
        proposal[self.value] = np.asarray(point[self.value] + log_c / self.power)
        n = 0
        for name, mask in zip(self._child_values, self._masks, strict=True):
            b = np.array(point[name], dtype=float)
            b[mask] *= np.exp(log_c)
            proposal[name] = b
            n += int(mask.sum())
        log_ratio = self._logp(proposal) - self._logp(point) + n * log_c
        accept = np.log(self.rng.random()) < log_ratio
        self._adapt(np.array(float(accept)))
        return (proposal if accept else point), [{"accept_rate": float(accept)}]
