"""``method="kuk"``: Kuk's (1995) bias correction with its simulations on the study runner.

The iteration and the result are :mod:`bayesglmm.frequentist.kuk`'s; this module runs each
iteration's ``n_sim`` simulate-and-refit tasks on :func:`~bayesglmm.analysis.study.run_study`
(a local process pool, or a Dask ``client``), resumably with a ``store`` (one subdirectory per
iteration). Task ``sim=i`` gets the seed :func:`~bayesglmm.analysis.study.derive_seed`
``(random_seed, "sim=i")`` in every iteration (common random numbers), so the fit is the same,
bit for bit, for a ``random_seed`` whatever the number of workers.
"""

from __future__ import annotations

import os
import time

import numpy as np
from tqdm.auto import tqdm

from ..errors import MethodError
from ..frequentist.kuk import (
    check_kuk,
    kuk_estimates,
    kuk_step,
    parameter_names,
    parameter_vector,
    relative_change,
    simulate_and_fit,
    truth_of,
)
from ..options import tqdm_progress
from .study.runner import run_tasks
from .study.tasks import Task, check_arguments


def fit_kuk(
    model,
    *,
    base: str,
    n_sim: int,
    max_iter: int,
    tol: float,
    random_seed,
    progressbar,
    max_workers,
    store,
    client,
):
    """Fit a GLMM by Kuk's iterative simulation-based correction of PQL or Laplace.

    Parameters
    ----------
    model : GLMM
    base : {"pql", "laplace"}
        The estimator corrected (fitted with its default options).
    n_sim : int
        Simulated data sets per iteration.
    max_iter : int
        Most iterations.
    tol : float
        Stop when the largest change of an estimate, relative to ``max(1, |estimate|)``, is
        below ``tol``.
    random_seed : int or None
        Seed of the simulations (the same seeds in every iteration); None: fresh entropy.
    progressbar : bool or None
        The package's convention: None shows bars for work beyond a second on a terminal.
    max_workers, store, client
        As :func:`~bayesglmm.analysis.study.run_study` (``store``: a directory; iteration
        ``k`` is resumed from its subdirectory ``iteration-k``).

    Returns
    -------
    Estimates
        Corrected fixed effects and variance components, standard errors (spread of the
        base estimator over the last iteration's simulations), Monte Carlo errors in the
        ``mcse`` column (:mod:`bayesglmm.frequentist.kuk`).
    """
    design = model.design
    check_kuk(design, base)
    args = check_arguments(store, client, max_workers, random_seed, progressbar)
    seed = args["random_seed"]
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    names = parameter_names(design)
    p = len(design.fixed_names)
    t0 = time.perf_counter()
    base_fit = model.fit(base, progressbar=False)
    target = parameter_vector(base_fit.table, names)
    t1 = time.perf_counter()
    model_args = {
        "formula": model.formula,
        "data": model.data,
        "family": design.family.name,
        "link": design.family.link.name,
    }
    theta = target.copy()
    history: list[float] = []
    converged = False
    draws = None
    n_failed = 0
    with tqdm(total=max_iter, desc="Kuk", leave=False, **tqdm_progress(progressbar)) as bar:
        for k in range(max_iter):
            truth = truth_of(design, theta)
            tasks = [
                Task(
                    f"sim={i}",
                    simulate_and_fit,
                    {
                        "model_class": type(model),
                        "model_args": model_args,
                        "truth": truth,
                        "base": base,
                        "names": names,
                    },
                )
                for i in range(n_sim)
            ]
            where = None if store is None else os.path.join(os.fspath(store), f"iteration-{k}")
            study = run_tasks(
                tasks,
                where,
                client,
                max_workers,
                seed,
                progressbar,
                desc=f"Kuk iteration {k + 1}",
                warn=False,
            )
            values = [study.results[t.key] for t in tasks if t.key in study.results]
            n_failed = n_sim - len(values)
            if len(values) < 2:
                first = study.table.loc[study.table["status"] == "failed", "error"]
                raise MethodError(
                    f"Kuk's iteration {k + 1}: {n_failed} of {n_sim} simulated {base} fits "
                    f"failed (first: {first.iloc[0] if len(first) else 'unknown'})"
                )
            draws = np.vstack(values)
            new = kuk_step(theta, target, draws.mean(axis=0), p)
            change = relative_change(new, theta)
            theta = new
            history.append(change)
            bar.set_postfix(change=f"{change:.2e}", refresh=False)
            bar.update(1)
            if change < tol:
                converged = True
                break
    return kuk_estimates(
        design,
        theta,
        draws,
        base_fit,
        base=base,
        history=history,
        converged=converged,
        n_failed=n_failed,
        tol=tol,
        timing={"base_fit": t1 - t0, "simulations": time.perf_counter() - t1},
    )
