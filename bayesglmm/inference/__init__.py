"""Inference on fitted models: tests and model comparison.

:mod:`.loo` holds :func:`~bayesglmm.inference.loo.loo` (PSIS leave-one-out),
:func:`~bayesglmm.inference.loo.waic` and :func:`~bayesglmm.inference.loo.compare_models`,
which read the pointwise log-likelihood a Bayesian fit stores in its InferenceData and hand
it to ArviZ. The package imports none of its modules, so that importing one (the face does
so lazily, ``bayesglmm.loo``) loads only what that one needs: ArviZ only with :mod:`.loo`.
"""
