"""Data-augmentation steps: a latent variable per row makes the effects jointly Gaussian.

Subclasses say how to draw the working weights ``omega`` and responses ``kappa`` given the
current linear predictor (:mod:`.polya_gamma`, :mod:`.albert_chib`); this class draws the
chosen fixed and random effects jointly from their Gaussian full conditional
(:class:`~bayesglmm.bayes.gibbs.joint.EffectsConditional`). One step is a complete
data-augmentation update ``omega | theta, y`` then ``theta | omega, y``, so it leaves the
posterior of the effects invariant and is reversible.

Prior weights ``w`` (:attr:`~bayesglmm.model.design.Design.weights`): the weighted binomial
log-likelihood ``w_i l_i(y_i, n_i)`` equals ``l_i(w_i y_i, w_i n_i)`` up to a term free of
the effects, so the step augments ``(w y, w n)``: Polya-Gamma draws ``PG(w_i n_i, eta_i)``
(defined for any real ``w_i n_i > 0``); Albert-Chib needs whole numbers ``w_i y_i`` and
``w_i n_i`` (that many latent trials) and refuses other weights.
"""

from __future__ import annotations

import numpy as np

from ...errors import MethodError
from .effects import EffectsLayout, GaussianPriors, GibbsStep, ObservedData, rv_of
from .joint import EffectsConditional


class AugmentedEffectsStep(GibbsStep):
    """Joint Gibbs update of effects after augmenting each row with a latent variable.

    Parameters
    ----------
    vars : list, optional
        Effect variables (fixed-effect terms, random terms) to draw jointly; default all.
    design : Design or GLMM
        The design the model was built from (for ``X``, the ``Z`` blocks and the offset).
    model : pymc.Model, optional
        A centered model from :func:`~bayesglmm.bayes.builder.build_pymc_model`.
    rng : seed or Generator, optional
        Set per chain by :func:`pymc.sample` through ``set_rng``.
    dense_limit : int, optional
        Factor densely up to this many coefficients, else exploit sparsity.
    """

    #: family and link the augmentation is exact for (checked on the design)
    family = "binomial"
    link = ""
    label = ""

    def __init__(
        self,
        vars=None,
        *,
        design,
        model=None,
        rng=None,
        initial_point=None,
        dense_limit=None,
        blocked=True,
        compile_kwargs=None,
    ):
        import pymc as pm

        model = pm.modelcontext(model)
        design = getattr(design, "design", design)
        why = f"{self.label} step"
        self._check_family(design)
        layout = EffectsLayout(design, model, why)
        if vars is None:
            vars = [model[n] for n in layout.names]
        ip = self._setup(vars, model, rng, initial_point)
        names = [rv_of(model, v).name for v in self.vars]
        unknown = [n for n in names if n not in layout.names]
        if unknown:
            raise MethodError(
                f"{why}: {unknown} are not fixed or random effects of the design; the step "
                f"draws some of {layout.names}"
            )
        self.names = names
        self._layout = layout
        self._priors = GaussianPriors(model, names, why, ip)
        self._cond = EffectsConditional(layout, names, dense_limit)
        self._data = ObservedData(model, why, design)
        if not self._data.binomial:
            raise MethodError(f"{why}: the observed variable is not binomial or Bernoulli")
        self._check_weights(why)

    def _check_family(self, design) -> None:
        fam, link = design.family.name, design.family.link.name
        if fam != self.family or link != self.link:
            raise MethodError(
                f"{self.label} augmentation needs a {self.family} response with {self.link} "
                f"link; this model is {fam}/{link}" + self._hint(fam, link)
            )

    def _hint(self, fam: str, link: str) -> str:
        if fam == "binomial" and link in ("logit", "probit"):
            other = "polya_gamma" if link == "logit" else "albert_chib"
            return f" (use the {other} step for the {link} link)"
        return " (use the metropolis step for the random effects)"

    def _check_weights(self, why: str) -> None:
        """Refuse prior weights the augmentation cannot take (none here: see
        :meth:`step`)."""

    def augment(self, eta: np.ndarray, y: np.ndarray, n: np.ndarray):
        """Working weights ``omega`` and responses ``kappa`` given the linear predictor."""
        raise NotImplementedError

    def step(self, point: dict):
        eta = self._layout.eta(point)
        y, n = self._data()
        if self._data.weights is not None:
            # prior weights w: w_i l_i(y_i, n_i) is the likelihood of w_i y_i successes in
            # w_i n_i trials up to a constant, so the augmentation runs on (w y, w n)
            y, n = self._data.weights * y, self._data.weights * n
        weights, kappa = self.augment(eta, y, n)
        cond = self._cond
        rest = eta - cond.C @ cond.gather(point)
        P, Pm = cond.prior(self._priors(point))
        theta = cond.draw(weights, cond.rhs(kappa, weights, rest, Pm), P, self.rng)
        return cond.scatter(theta, point), [{}]
