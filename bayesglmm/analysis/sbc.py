"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018).

Draw parameters from the prior, data from the model given them, and posterior draws given
the data; if the sampler is right, the rank of each true parameter among its posterior draws
is uniform. :func:`run_sbc` does this for any sampler and tests the uniformity of every
parameter's ranks: a Pearson chi-square statistic on equiprobable bins, with p-values from
the exact null (a multinomial with equal cell probabilities, simulated once,
:data:`NULL_DRAWS` times) rather than the chi-square approximation, whose tail is too light
at the small levels used here (measured: 1.6 x the nominal rate at 3e-5 with 200 ranks in
10 bins). The test fails if any parameter's p-value is below ``alpha / n_parameters``
(Bonferroni), so a correct sampler fails with probability at most ``alpha``.

:class:`StepMethodSBC` runs PyMC step methods (Gibbs steps, NUTS, mixtures) on one compiled
model per structure, changing only a shared observed variable between replications. It
draws posterior samples by *inserting the truth into a stationary chain*: the true
parameter is placed at a uniformly random position ``J`` of a chain of ``M + 1`` states; the
states after it are run forward from it with the step sequence, the states before it
backward with the steps in reverse order (the time reversal of a scan of reversible
updates). The resulting sequence is a stationary chain in which the truth sits at a uniform
random position, so its rank is *exactly* uniform for a correct sampler, whatever the
autocorrelation: no burn-in and no thinning to independence are needed for validity. (Every
update used here is reversible: exact conditional draws, data augmentation, Metropolis
with fixed proposals, NUTS with a fixed step size.) A wrong update pulls the chain away
from the truth on both sides, which the ranks show. Kernel parameters (step sizes, proposal
scales) are tuned once on a pilot replication and then frozen, so the kernel depends on
neither the truth nor the data of any replication.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

#: simulations of the exact null distribution of the chi-square statistic; with a
#: per-parameter level near 1e-4 this leaves about 100 null exceedances (10% error)
NULL_DRAWS = 1_000_000
_NULL_SEED = 20_181_106  # fixed: the null distribution is part of the test's definition


@lru_cache(maxsize=8)
def _null_statistics(n_reps: int, bins: int) -> np.ndarray:
    rng = np.random.default_rng(_NULL_SEED)
    expected = n_reps / bins
    out = []
    for _ in range(10):
        counts = rng.multinomial(n_reps, np.full(bins, 1.0 / bins), size=NULL_DRAWS // 10)
        out.append(((counts - expected) ** 2).sum(axis=1) / expected)
    return np.sort(np.concatenate(out))


def uniformity_test(ranks: np.ndarray, n_draws: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Chi-square statistics and exact-null p-values of ranks in ``0..n_draws``, per column.

    ``n_draws + 1`` must be a multiple of ``bins`` so that the bins are equiprobable.
    """
    ranks = np.atleast_2d(np.asarray(ranks))
    if (n_draws + 1) % bins:
        raise ValueError(f"n_draws + 1 = {n_draws + 1} is not a multiple of bins = {bins}")
    n_reps = ranks.shape[0]
    width = (n_draws + 1) // bins
    counts = np.stack([np.bincount(col // width, minlength=bins) for col in ranks.T], axis=1)
    expected = n_reps / bins
    stat = ((counts - expected) ** 2).sum(axis=0) / expected
    null = _null_statistics(n_reps, bins)
    exceed = null.size - np.searchsorted(null, stat - 1e-9, side="left")
    return stat, (1.0 + exceed) / (1.0 + null.size)


@dataclass
class SBCResult:
    """Ranks and uniformity tests of one simulation-based calibration.

    Attributes
    ----------
    names : list of str
    ranks : ndarray, shape (n_reps, n_parameters)
        Rank of the truth among ``n_draws`` posterior draws (0 .. n_draws), ties broken at
        random.
    n_draws, bins : int
    alpha : float
        Family-wise false-failure rate: a correct sampler fails with at most this chance.
    statistics, pvalues : ndarray
        Chi-square statistic and exact-null p-value per parameter.
    """

    names: list[str]
    ranks: np.ndarray
    n_draws: int
    bins: int
    alpha: float
    statistics: np.ndarray
    pvalues: np.ndarray

    @property
    def threshold(self) -> float:
        """Per-parameter level (Bonferroni)."""
        return self.alpha / len(self.names)

    @property
    def failing(self) -> list[str]:
        return [n for n, p in zip(self.names, self.pvalues, strict=True) if p <= self.threshold]

    @property
    def passed(self) -> bool:
        return not self.failing

    def summary(self) -> pd.DataFrame:
        """Per parameter: statistic, p-value, mean rank (0.5 when calibrated), rejected."""
        return pd.DataFrame(
            {
                "chi2": self.statistics,
                "pvalue": self.pvalues,
                "mean_rank": self.ranks.mean(axis=0) / self.n_draws,
                "rejected": self.pvalues <= self.threshold,
            },
            index=pd.Index(self.names, name="parameter"),
        )

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else f"FAILED for {self.failing}"
        return (
            f"SBCResult({self.ranks.shape[0]} replications, {self.n_draws} draws, "
            f"alpha={self.alpha:g}: {verdict})"
        )


def run_sbc(
    simulate: Callable,
    sample: Callable,
    n_reps: int,
    names: list[str],
    seed: int,
    n_draws: int,
    bins: int = 10,
    alpha: float = 1e-3,
    progressbar: bool = True,
    *,
    client=None,
    max_workers: int | None = 1,
    store=None,
) -> SBCResult:
    """Simulation-based calibration of any sampler.

    Parameters
    ----------
    simulate : callable
        ``simulate(rng) -> (truth, data)``: parameters from the prior (a vector in the order
        of ``names``) and data from the model given them.
    sample : callable
        ``sample(data, truth, rng) -> draws`` of shape ``(n_draws, len(names))``: posterior
        draws given the data (the truth may be used only as :class:`StepMethodSBC` does,
        to start an exact stationary chain).
    n_reps : int
        Replications (Talts et al. use 1000; a few hundred detect gross errors).
    names : list of str
    seed : int
        Replication ``r`` uses ``numpy.random.default_rng([seed, r])``, wherever it runs.
    n_draws, bins : int
        ``n_draws + 1`` must be a multiple of ``bins``.
    alpha : float
        Family-wise false-failure rate over all parameters.
    progressbar : bool
    client, max_workers, store
        Where the replications run, as :func:`bayesglmm.study.run_study` (one task per
        replication): by default one after another in this process; ``max_workers=None``
        or more than 1 for a local process pool (``simulate`` and ``sample`` must then be
        picklable), a ``dask.distributed.Client`` for a cluster, ``store`` to resume.

    Raises
    ------
    Exception
        The first replication's error, if any replication raised.
    """
    from .study import Task
    from .study.runner import run_tasks

    tasks = [
        Task(
            f"rep={r}",
            _sbc_replication,
            {
                "simulate": simulate,
                "sample": sample,
                "sbc_seed": seed,
                "rep": r,
                "shape": (n_draws, len(names)),
            },
        )  # fmt: skip
        for r in range(n_reps)
    ]
    study = run_tasks(tasks, store, client, max_workers, seed, progressbar, desc="SBC", warn=False)
    if study.failed:
        key = study.failed[0]
        err = study.exceptions.get(key)
        if err is not None:
            raise err
        raise RuntimeError(
            f"SBC replication {key} failed: {study.table.set_index('key').loc[key, 'error']}"
        )
    ranks = np.stack([study.results[f"rep={r}"] for r in range(n_reps)]).astype(np.int64)
    ranks = ranks.reshape(n_reps, len(names))
    stat, pvalues = uniformity_test(ranks, n_draws, bins)
    return SBCResult(list(names), ranks, n_draws, bins, alpha, stat, pvalues)


def _sbc_replication(simulate, sample, sbc_seed: int, rep: int, shape: tuple, seed: int):
    """Ranks of the truth in one replication (``seed``, the study's, is not used: the
    replication's stream is ``default_rng([sbc_seed, rep])`` as before the study runner)."""
    rng = np.random.default_rng([sbc_seed, rep])
    truth, data = simulate(rng)
    draws = np.asarray(sample(data, truth, rng))
    if draws.shape != shape:
        raise ValueError(f"sample returned shape {draws.shape}, expected {shape}")
    less = (draws < truth).sum(axis=0)
    ties = (draws == truth).sum(axis=0)
    return less + rng.integers(0, ties + 1)


class StepMethodSBC:
    """Simulation-based calibration of PyMC step methods on one compiled model.

    Parameters
    ----------
    model : pymc.Model
        A model with one observed variable; its priors are the ones calibrated against.
    make_steps : callable
        ``make_steps(model) -> list`` of step methods (e.g. ``[PolyaGammaStep(...),
        pm.NUTS([...])]``) over all free variables, built inside the given model (a copy
        of ``model`` whose observed data are a shared variable).
    n_draws : int
        Posterior states per replication besides the truth (``M``).
    thin : int
        Scans between kept states (more travel away from the truth: more power).
    pilot_tune : int
        Tuning iterations on a pilot replication before the kernel is frozen.
    seed : int
    """

    def __init__(
        self,
        model,
        make_steps: Callable,
        n_draws: int = 99,
        thin: int = 2,
        pilot_tune: int = 200,
        seed: int = 0,
    ) -> None:
        import pymc as pm
        import pytensor
        from pytensor.tensor.random.type import RandomGeneratorType

        if len(model.observed_RVs) != 1:
            raise ValueError("StepMethodSBC needs a model with one observed variable")
        obs = model.observed_RVs[0]
        y0 = np.asarray(model.rvs_to_values[obs].eval())
        self._y = pytensor.shared(y0, name=f"{obs.name}_sbc")
        self.model = pm.observe(model, {obs.name: self._y})
        m = self.model
        self._values = [m.rvs_to_values[rv].name for rv in m.free_RVs]
        outs = []
        for rv in m.free_RVs:
            tr = m.rvs_to_transforms.get(rv)
            outs.append(rv if tr is None else tr.forward(rv, *rv.owner.inputs))
        outs.append(m[obs.name])
        self._forward = pm.pytensorf.compile([], outs, random_seed=seed)
        self._rngs = [
            v for v in self._forward.get_shared() if isinstance(v.type, RandomGeneratorType)
        ]
        self._shapes = {
            name: np.shape(v) for name, v in zip(self._values, self._forward()[:-1], strict=True)
        }
        self.names = [
            f"{name}{_index(idx)}"
            for name in self._values
            for idx in np.ndindex(self._shapes[name])
        ]
        self.n_draws, self.thin = n_draws, thin
        with self.model:
            self.steps = list(make_steps(self.model))
        if pilot_tune:
            from ..bayes.gibbs.effects import single_threaded_blas

            with single_threaded_blas():
                self._pilot(pilot_tune, seed)
        for s in self.steps:
            s.stop_tuning()

    # --------------------------------------------------------------------------- pieces
    def simulate(self, rng: np.random.Generator):
        """Parameters from the prior (value space) and data from the model."""
        import pymc as pm

        pm.pytensorf.reseed_rngs(self._rngs, int(rng.integers(2**31)))
        *params, y = self._forward()
        point = {name: np.asarray(v) for name, v in zip(self._values, params, strict=True)}
        return self._flat(point), (point, np.asarray(y))

    def _flat(self, point: dict) -> np.ndarray:
        return np.concatenate([np.ravel(point[n]) for n in self._values])

    def _scan(self, point: dict, steps) -> dict:
        for s in steps:
            point, _ = s.step(point)
        return point

    def _pilot(self, n: int, seed: int) -> None:
        _, (point, y) = self.simulate(np.random.default_rng([seed, 2**20]))
        self._y.set_value(y.astype(self._y.get_value().dtype))
        for s in self.steps:
            s.set_rng(np.random.default_rng([seed, 2**21]))
            s.tune = True
        for _ in range(n):
            point = self._scan(point, self.steps)

    def sample(self, data, truth, rng: np.random.Generator) -> np.ndarray:
        """``n_draws`` states of a stationary chain through the truth, truth left out."""
        point, y = data
        self._y.set_value(y.astype(self._y.get_value().dtype))
        for s, child in zip(self.steps, rng.spawn(len(self.steps)), strict=True):
            s.set_rng(child)
        J = int(rng.integers(0, self.n_draws + 1))
        draws = []
        for steps, count in ((self.steps[::-1], J), (self.steps, self.n_draws - J)):
            current, kept = point, []
            for _ in range(count):
                for _ in range(self.thin):
                    current = self._scan(current, steps)
                kept.append(self._flat(current))
            draws.append(kept)
        return np.array(draws[0][::-1] + draws[1]).reshape(self.n_draws, -1)

    def run(
        self, n_reps: int, seed: int, bins: int = 10, alpha: float = 1e-3, progressbar: bool = True
    ) -> SBCResult:
        """:func:`run_sbc` with this model's prior, data and steps."""
        from ..bayes.gibbs.effects import single_threaded_blas

        with single_threaded_blas():
            return run_sbc(
                self.simulate,
                self.sample,
                n_reps,
                self.names,
                seed,
                self.n_draws,
                bins,
                alpha,
                progressbar,
            )


def _index(idx: tuple) -> str:
    return "" if not idx else "[" + ",".join(map(str, idx)) + "]"
