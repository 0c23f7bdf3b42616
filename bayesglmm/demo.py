"""The salamander analysis behind ``bayesglmm demo``: its data, with an honest fallback.

The real data (:func:`bayesglmm.datasets.load`) are used when they can be had. When they
cannot (offline, no local copy), :func:`demo_data` says so and returns data simulated from
the experiment's published design instead: three experiments, each with 10 Rough Butt (R)
and 10 Whiteside (W) females and as many males; every animal mated six times, three times
with each population (McCullagh & Nelder 1989, sec. 14.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import DatasetUnavailableError

FORMULA = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
#: parameters of the simulated stand-in: Cross effects near the published estimates
#: (Laplace 1.008, 0.306, -1.896, 0.990) and variances near the MCEM ones (1.40, 1.25)
SIMULATION_FIXED = {"Cross[RR]": 1.0, "Cross[RW]": 0.3, "Cross[WR]": -1.9, "Cross[WW]": 1.0}
SIMULATION_VARIANCES = {"Female": 1.2, "Male": 1.0}
#: animals per population and experiment, experiments, matings per animal with each population
_PER_TYPE, _EXPERIMENTS, _MATES = 10, 3, 3


@dataclass
class DemoData:
    """The data the demo runs on, and where they came from."""

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
    from .simulate import simulate

    return simulate(
        FORMULA,
        salamander_design(random_seed),
        SIMULATION_FIXED,
        SIMULATION_VARIANCES,
        family="binomial",
        random_seed=random_seed,
    )


def demo_data(data_dir=None, random_seed: int | None = 0) -> DemoData:
    """The real salamander data, or, when they cannot be had, a simulated stand-in.

    Never falls back silently: ``message`` says which data are used and why, and the
    caller is expected to show it.
    """
    from . import datasets

    try:
        df = datasets.load("salamander", data_dir=data_dir)
    except DatasetUnavailableError as err:
        truth = ", ".join(f"{k} {v:g}" for k, v in SIMULATION_FIXED.items())
        var = ", ".join(f"var({k}) {v:g}" for k, v in SIMULATION_VARIANCES.items())
        msg = (
            "THE REAL SALAMANDER DATA ARE NOT AVAILABLE OFFLINE, so this demo runs on "
            "SIMULATED data instead: 360 matings drawn from the salamander design "
            f"(3 experiments x 20 females x 20 males, 6 matings per animal) with {truth}, "
            f"{var} (seed {random_seed}). Estimates below are of those values, not of the "
            f"published analysis.\nWhy: {err}"
        )
        return DemoData(simulated_salamander(random_seed), True, msg)
    return DemoData(
        df,
        False,
        "Data: the salamander mating experiments (360 matings, "
        "McCullagh & Nelder 1989, sec. 14.5), lme4's salamander data.",
    )
