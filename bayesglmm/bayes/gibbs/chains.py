"""Chains of the collapsed sampler (:mod:`~bayesglmm.bayes.gibbs.crossed`): one after
another, or in forked worker processes (``cores > 1``), with one progress bar.

The data hold closures (the scale priors' densities) that do not pickle; forked workers
inherit them from a module-level slot filled just before the pool starts, so only seeds
go out and draws come back.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from ...options import tqdm_progress
from .crossed import CrossedData, CrossedSampler, CrossedState, linear_predictor
from .effects import single_threaded_blas

#: scans between progress reports of a worker
_REPORT_EVERY = 10
#: what forked workers inherit: (data, states, draws, tune, row log-likelihood, counter)
_SHARED: dict = {}


@dataclass
class ChainDraws:
    beta: np.ndarray  # (draws, p)
    b: list[np.ndarray]  # (draws, J_k) per factor
    u: np.ndarray  # (draws, K)
    evals: np.ndarray  # (draws,)
    loglik: np.ndarray | None  # (draws, n)
    widths: dict


def run_chain(
    data: CrossedData,
    state: CrossedState,
    seed,
    draws: int,
    tune: int,
    loglik,
    report=None,
) -> ChainDraws:
    """``tune`` scans adapting the slice widths, then ``draws`` kept scans; ``loglik`` (the
    rows' log-likelihood at a linear predictor, or None) is stored per kept scan."""
    sampler = CrossedSampler(data, state, np.random.default_rng(seed))
    K = len(data.index)
    out = ChainDraws(
        beta=np.empty((draws, state.beta.size)),
        b=[np.empty((draws, n)) for n in data.n_levels],
        u=np.empty((draws, K)),
        evals=np.empty(draws, dtype=np.int64),
        loglik=None if loglik is None else np.empty((draws, data.y.size)),
        widths={},
    )
    with single_threaded_blas():
        for i in range(tune + draws):
            kept = i - tune
            evals = sampler.scan(tune=kept < 0)
            if kept >= 0:
                st = sampler.state
                out.evals[kept], out.beta[kept], out.u[kept] = evals, st.beta, st.u
                for k in range(K):
                    out.b[k][kept] = st.b[k]
                if out.loglik is not None:
                    eta = linear_predictor(data, st)
                    out.loglik[kept] = loglik(eta)
            if report is not None:
                report(i + 1)
    out.widths = {f"{kind}[{k}]": w for (kind, k), w in sampler.widths.items()}
    return out


def _worker(c: int) -> ChainDraws:
    s = _SHARED
    counter, done = s["counter"], [0]

    def report(n):
        if n - done[0] >= _REPORT_EVERY or n == s["tune"] + s["draws"]:
            with counter.get_lock():
                counter.value += n - done[0]
            done[0] = n

    return run_chain(
        s["data"], s["states"][c], s["seeds"][c], s["draws"], s["tune"], s["loglik"], report
    )


def run_chains(
    data, states, seeds, draws, tune, loglik, cores: int, progressbar, label
) -> list[ChainDraws]:
    """All chains, in ``min(cores, chains)`` forked processes (sequentially if 1)."""
    from tqdm.auto import tqdm

    chains = len(states)
    total = chains * (tune + draws)
    bar = tqdm(total=total, desc=label, **tqdm_progress(progressbar))
    workers = min(cores, chains)
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        with bar:
            return [
                run_chain(data, states[c], seeds[c], draws, tune, loglik, lambda _: bar.update())
                for c in range(chains)
            ]
    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value("q", 0)
    _SHARED.update(
        data=data, states=states, seeds=seeds, draws=draws, tune=tune, loglik=loglik,
        counter=counter,
    )  # fmt: skip
    try:
        with bar, ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_worker, c) for c in range(chains)]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                bar.update(counter.value - bar.n)
                if any(f.done() and f.exception() for f in futures):
                    break
            return [f.result() for f in futures]
    finally:
        _SHARED.clear()


def default_cores(chains: int) -> int:
    return max(1, min(chains, os.cpu_count() or 1))
