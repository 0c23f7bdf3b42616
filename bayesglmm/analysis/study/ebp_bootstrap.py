"""Empirical best prediction with the parametric-bootstrap MSPE on the study runner.

:func:`ebp` is :func:`bayesglmm.frequentist.ebp.ebp` with ``mspe="bootstrap"`` available:
the replicates (:func:`bayesglmm.frequentist.ebp.bootstrap.replicate`: simulate from the
fit, refit, predict) run as tasks of :func:`~bayesglmm.study.run_study`, on a local process
pool or a Dask cluster (``client``), resumably (``store``), each seeded by
:func:`~bayesglmm.study.derive_seed` from ``random_seed`` and its key, so that the same
seed gives the same numbers bitwise whatever the workers.
"""

from __future__ import annotations

import pandas as pd

from ...errors import MethodError
from ...frequentist.ebp import predict
from ...frequentist.ebp.bootstrap import combine, replicate
from .runner import run_study
from .tasks import Task


def ebp(
    result,
    newdata: pd.DataFrame | None = None,
    re_form=None,
    type: str = "response",
    method: str = "auto",
    n_quad: int | None = None,
    n_draws: int = 4000,
    random_seed=None,
    model=None,
    by: str | None = None,
    mspe: str = "second-order",
    level: float = 0.95,
    n_boot: int | None = None,
    store=None,
    client=None,
    max_workers: int | None = None,
) -> pd.DataFrame:
    """As :func:`bayesglmm.frequentist.ebp.ebp`, with ``mspe="bootstrap"``: ``n_boot``
    replicates (default 200) on :func:`~bayesglmm.study.run_study` (``store``,
    ``client``, ``max_workers``, ``random_seed`` as there; replicates whose refit raises
    are left out and counted in ``attrs["n_boot_failed"]``)."""

    def run(spec, g1, n_boot, store, client, max_workers):
        tasks = [Task(f"ebp-bootstrap-{r:06d}", replicate, {"spec": spec}) for r in range(n_boot)]
        res = run_study(
            tasks,
            store=store,
            client=client,
            max_workers=max_workers,
            random_seed=random_seed,
            progressbar=False,
        )
        reps = [res.results[t.key] for t in tasks if t.key in res.results]
        if not reps:
            first = res.table["error"].dropna()
            raise MethodError(
                f"mspe='bootstrap': all {n_boot} refits failed"
                + (f" (first: {first.iloc[0]})" if len(first) else "")
            )
        corrected, naive = combine(reps, g1)
        notes = {
            "n_boot": len(reps),
            "n_boot_failed": n_boot - len(reps),
            "bootstrap_seed": res.random_seed,
        }
        return corrected, naive, notes

    args = {k: v for k, v in locals().items() if k != "run"}
    return predict(**args, bootstrap=run)[0]
