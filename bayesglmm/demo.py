"""The salamander analysis behind ``bayesglmm demo``: its data, and a simulator of its design.

The demo runs on the real data, which ship inside the package (``bayesglmm/data``, checked
by sha256 on load; :func:`bayesglmm.datasets.load`), so it needs no network and no
environment variable. If they cannot be read (say, the packaged file was altered and there is
no network), :func:`demo_data` raises :class:`~bayesglmm.errors.DatasetUnavailableError`
saying why; it never swaps in other data.

:func:`salamander_design` and :func:`simulated_salamander` lay out and simulate data with the
experiment's published design, for simulation studies: three experiments, each with 10 Rough
Butt (R) and 10 Whiteside (W) females and as many males; every animal mated six times, three
times with each population (McCullagh & Nelder 1989, sec. 14.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import DatasetUnavailableError

FORMULA = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
#: parameters for :func:`simulated_salamander`: Cross effects near the published estimates
#: (Laplace 1.008, 0.306, -1.896, 0.990) and variances near the MCEM ones (1.40, 1.25)
SIMULATION_FIXED = {"Cross[RR]": 1.0, "Cross[RW]": 0.3, "Cross[WR]": -1.9, "Cross[WW]": 1.0}
SIMULATION_VARIANCES = {"Female": 1.2, "Male": 1.0}
#: animals per population and experiment, experiments, matings per animal with each population
_PER_TYPE, _EXPERIMENTS, _MATES = 10, 3, 3


@dataclass
class DemoData:
    """The data the demo runs on, and a line saying which they are.

    ``simulated`` is always False since the data ship with the package; the field stays
    for callers that read it.
    """

    data: pd.DataFrame
    simulated: bool
    message: str


def salamander_design(random_seed: int | None = 0) -> pd.DataFrame:
    """A mating design laid out like the salamander experiments (360 rows, no response).

    In each experiment and each of the four crosses, every one of the 10 females of one
    population is paired with 3 of the 10 males of the other (or same) population, and every
    male with 3 females; which males is random. Ids run 1-60 across experiments, as in the
    real data.
    """
    rng = np.random.default_rng(random_seed)
    rows = []
    for e in range(_EXPERIMENTS):
        base = e * 2 * _PER_TYPE
        ids = {
            "R": base + 1 + np.arange(_PER_TYPE),
            "W": base + 1 + _PER_TYPE + np.arange(_PER_TYPE),
        }
        for tf in "RW":
            for tm in "RW":
                males = rng.permutation(ids[tm])
                for i, female in enumerate(ids[tf]):
                    for k in range(_MATES):
                        male = males[(i + k) % _PER_TYPE]
                        rows.append((e + 1, tm, tf, tf + tm, int(male), int(female)))
    df = pd.DataFrame(rows, columns=["Experiment", "TypeM", "TypeF", "Cross", "Male", "Female"])
    df.insert(0, "Season", np.where(df["Experiment"] == 1, "Summer", "Fall"))
    df["Cross"] = pd.Categorical(df["Cross"], categories=["RR", "RW", "WR", "WW"])
    return df


def simulated_salamander(random_seed: int | None = 0) -> pd.DataFrame:
    """Mating outcomes drawn from the crossed logistic model on :func:`salamander_design`.

    The true values are :data:`SIMULATION_FIXED` and :data:`SIMULATION_VARIANCES`; they and
    the drawn random effects are in ``.attrs["truth"]``.
    """
    from .model.simulate import simulate

    return simulate(
        FORMULA,
        salamander_design(random_seed),
        SIMULATION_FIXED,
        SIMULATION_VARIANCES,
        family="binomial",
        random_seed=random_seed,
    )


def demo_data(data_dir=None, random_seed: int | None = 0) -> DemoData:
    """The real salamander data (shipped with the package), with a line saying so.

    Parameters
    ----------
    data_dir : path, optional
        A folder laid out like the data addresses, looked in before the packaged copy.
    random_seed : int, optional
        Unused (the data ship with the package); accepted so that calls passing it work.

    Raises
    ------
    DatasetUnavailableError
        ``data_dir`` is not a folder, or the data cannot be read: no copy matches the
        pinned sha256 (the packaged one included) and the download failed. The message
        says where it looked and why.
    """
    from pathlib import Path

    from .model import datasets

    if data_dir is not None and not Path(data_dir).is_dir():
        raise DatasetUnavailableError(f"data_dir {str(data_dir)!r} is not a folder")
    try:
        df = datasets.load("salamander", data_dir=data_dir)
    except DatasetUnavailableError as err:
        raise DatasetUnavailableError(
            f"the demo needs the real salamander data, which ship with the package in "
            f"{datasets.PACKAGED_DIR}; they could not be read (is the installation "
            f"complete? reinstall bayesglmm): {err}"
        ) from None
    return DemoData(
        df,
        False,
        "Data: the salamander mating experiments (360 matings, "
        "McCullagh & Nelder 1989, sec. 14.5), lme4's salamander data, shipped with "
        "bayesglmm (provenance: bayesglmm/data/README.md).",
    )
