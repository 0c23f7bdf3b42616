"""Studies: many independent fits on a local process pool or a Dask cluster, resumably.

A study (a prior grid, a simulation study, simulation-based calibration, a parametric
bootstrap) is a list of :class:`Task` objects. :func:`run_study` runs each as
``fn(**kwargs, seed=...)`` with a seed derived from the study's ``random_seed`` and the
task's key, on a local process pool by default or a ``dask.distributed.Client`` when given
one, writes each finished task to a result store at once, and on a rerun with the same store
skips the finished tasks: an interrupted study, or one that lost a worker, resumes without
redoing or losing finished work. The local pool persists between studies (its worker
processes start once per interpreter, :mod:`bayesglmm.analysis.study.pool`), and on Dask
short tasks travel in batches (``batch_size``).

>>> from bayesglmm.study import Task, run_study
>>> tasks = [Task(f"scale={s}", fit_one, {"scale": s}) for s in (1, 2)]  # doctest: +SKIP
>>> res = run_study(tasks, store="study-dir", random_seed=1)            # doctest: +SKIP
>>> res.results["scale=2"], res.table                                   # doctest: +SKIP

Built on it: :func:`simulation_study` (simulate from a model and refit by several methods:
bias, MSE and coverage) and :func:`parametric_bootstrap`; :func:`bayesglmm.sbc.run_sbc` runs
its replications on it too.
"""

from .runner import StudyResult, run_study
from .simulation import BootstrapResult, SimulationStudy, parametric_bootstrap, simulation_study
from .tasks import ClusterError, Task, derive_seed

__all__ = [
    "Task",
    "run_study",
    "StudyResult",
    "ClusterError",
    "derive_seed",
    "simulation_study",
    "SimulationStudy",
    "parametric_bootstrap",
    "BootstrapResult",
]
