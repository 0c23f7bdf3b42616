"""Reference data sets: shipped inside the package, checked by sha256 on every load.

Look-up order for a file: an explicit ``data_dir``, the environment variable
``BAYESGLMM_DATA``, the copy packaged in ``bayesglmm/data`` (the reference data sets,
with their provenance in ``bayesglmm/data/README.md``), the user cache
(``$XDG_CACHE_HOME/bayesglmm`` or ``~/.cache/bayesglmm``), then a download from the pinned
address, verified by sha256 and stored in the cache (for data sets too large to ship). Every
candidate file is checked against the pinned sha256 each time it is read; a copy that does
not match is ignored with a warning and the next place is tried. Each directory mirrors the
address after the host, e.g. ``<dir>/rdatasets/lme4/salamander.csv``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _warn
from ..errors import DatasetUnavailableError, UnknownDatasetError

ENV_VAR = "BAYESGLMM_DATA"
#: the data sets shipped with the package, laid out like the addresses
PACKAGED_DIR = Path(__file__).resolve().parents[1] / "data"
_RDATASETS = (
    "https://raw.githubusercontent.com/vincentarelbundock/Rdatasets/"
    "1dcc2bf5f955cc1224a3e1307256e1fe86b68dae/csv/"
)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    relpath: str
    url: str
    sha256: str
    description: str


DATASETS: dict[str, DatasetInfo] = {
    "salamander": DatasetInfo(
        "salamander",
        "rdatasets/lme4/salamander.csv",
        _RDATASETS + "lme4/salamander.csv",
        "9d7020ab11ba49b046820fc90cbe0e6b417664293789554ef7fc9ee8931c9d41",
        "Salamander mating experiments (McCullagh & Nelder 1989, sec. 14.5): 360 matings, "
        "crossed Female and Male ids (60 each), Cross = female type then male type, Mate 0/1.",
    ),
    "cbpp": DatasetInfo(
        "cbpp",
        "rdatasets/lme4/cbpp.csv",
        _RDATASETS + "lme4/cbpp.csv",
        "8919ad586aabfa75fa3b3ece7ad7b398c7b31bf17467f17c304cbec86afa910a",
        "Contagious bovine pleuropneumonia (lme4): incidence of size per herd and period; "
        "herd and period are factors.",
    ),
    "seeds": DatasetInfo(
        "seeds",
        "rdatasets/agridat/crowder.seeds.csv",
        _RDATASETS + "agridat/crowder.seeds.csv",
        "ede28ef40dd7cb73da5af22d359b6528b64e896af6fa1271a5a5ed33e3bb4d7f",
        "Crowder (1978) seed germination: germ of n per plate; gen O75/O73, extract "
        "bean/cucumber; x1 = (gen == 'O73'), x2 = (extract == 'cucumber') added as 0/1.",
    ),
    "mouse_litters": DatasetInfo(
        "mouse_litters",
        "cran/turboEM/implants.RData",
        "https://raw.githubusercontent.com/cran/turboEM/"
        "7e6f92d51047e8016842946293e327e5ba9d8a1e/data/implants.RData",
        "996e479837f378a213662c273a18860022f1956d8b39666e2d7bf008ace68d69",
        "Fetal deaths in 523 control mouse litters (Haseman & Soares 1976): dead, survived, "
        "and a litter id added for the random intercept.",
    ),
    "grouseticks": DatasetInfo(
        "grouseticks",
        "rdatasets/lme4/grouseticks.csv",
        _RDATASETS + "lme4/grouseticks.csv",
        "8b74d5a7929a5f137ac3766badc1fc39ffc6a97cdf215e62fdd8dc9947db1ef0",
        "Ticks on red grouse chicks (Elston et al. 2001; lme4): 403 chicks, TICKS counted on "
        "the head; INDEX (chick), BROOD, YEAR (95/96/97) and LOCATION are factors, HEIGHT "
        "the altitude (m) and cHEIGHT the centred altitude.",
    ),
    "Salamanders": DatasetInfo(
        "Salamanders",
        "cran/glmmTMB/Salamanders.rda",
        "https://raw.githubusercontent.com/cran/glmmTMB/"
        "24adfef033db874f283afb525893d876f40574f3/data/Salamanders.rda",
        "cca69c7eb8488d7932217ccc623a815105eb3e522f4debcb1841342c31bfc389",
        "Salamander counts in Appalachian streams (Price et al. 2016; glmmTMB's Salamanders, "
        "not lme4's salamander): 644 repeated counts of 7 species (spp) at 23 sites, mined "
        "yes/no, standardized cover, DOP, Wtemp and DOY; many zeros.",
    ),
}


def cache_dir() -> Path:
    """The user cache for downloaded data sets (``$XDG_CACHE_HOME/bayesglmm``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bayesglmm"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verified(path: Path, info: DatasetInfo) -> bool:
    if not path.is_file():
        return False
    if _sha256(path) != info.sha256:
        _warn.warn(f"{path} does not match the pinned sha256 of {info.name}; ignored")
        return False
    return True


def _download(info: DatasetInfo, dest: Path, timeout: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(info.url, timeout=timeout) as resp:  # noqa: S310
                shutil.copyfileobj(resp, tmp)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
    digest = _sha256(tmp_path)
    if digest != info.sha256:
        tmp_path.unlink(missing_ok=True)
        raise DatasetUnavailableError(
            f"download of {info.name} from {info.url} has sha256 {digest}, expected "
            f"{info.sha256}; the file was not kept"
        )
    tmp_path.replace(dest)


def path(
    name: str, data_dir: str | Path | None = None, download: bool = True, timeout: float = 30.0
) -> Path:
    """Local path of a data set's file, verified by sha256, downloading it if needed.

    Parameters
    ----------
    name : str
        A name from :func:`available`.
    data_dir : path, optional
        A folder laid out like the addresses, looked in first.
    download : bool
        Fetch from the pinned address into the cache when no verified local copy exists.
    timeout : float
        Seconds to wait for the download.

    Returns
    -------
    pathlib.Path
        The first verified copy in the look-up order of the module docstring.

    Raises
    ------
    UnknownDatasetError
        ``name`` is not a known data set.
    DatasetUnavailableError
        No verified copy exists and the download is off or fails.
    """
    info = _info(name)
    candidates = []
    if data_dir is not None:
        candidates.append(Path(data_dir))
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    candidates += [PACKAGED_DIR, cache_dir()]
    for base in candidates:
        if _verified(base / info.relpath, info):
            return base / info.relpath
    if not download:
        raise DatasetUnavailableError(_missing_message(info, candidates, "downloads are off"))
    dest = cache_dir() / info.relpath
    try:
        _download(info, dest, timeout)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        if isinstance(err, DatasetUnavailableError):
            raise
        raise DatasetUnavailableError(_missing_message(info, candidates, str(err))) from None
    return dest


def _missing_message(info: DatasetInfo, looked: list[Path], why: str) -> str:
    where = ", ".join(str(p / info.relpath) for p in looked)
    return (
        f"data set {info.name!r} is not available offline ({why}). Looked in: {where}. "
        f"Download it from {info.url} (sha256 {info.sha256}) into a folder mirroring "
        f"'{info.relpath}' and point the environment variable {ENV_VAR} at that folder, "
        "or pass data_dir=..."
    )


def _info(name: str) -> DatasetInfo:
    if not isinstance(name, str) or name not in DATASETS:
        raise UnknownDatasetError(
            f"unknown data set name {name!r}; available: {', '.join(DATASETS)}"
        )
    return DATASETS[name]


def available() -> list[str]:
    """Names of the known data sets."""
    return list(DATASETS)


def describe(name: str) -> str:
    """One paragraph on a data set: what it is and the columns the loader adds."""
    return _info(name).description


def load(name: str, data_dir: str | Path | None = None, download: bool = True) -> pd.DataFrame:
    """Load a reference data set as a DataFrame.

    The reference data sets ship with the package, so this works offline; the file read is
    checked against its pinned sha256 first.

    Parameters
    ----------
    name : {"salamander", "cbpp", "seeds", "mouse_litters", "grouseticks", "Salamanders"}
    data_dir : path, optional
        A folder laid out like the addresses (see the module docstring), looked in first.
    download : bool
        Fetch from the pinned address when no verified local copy exists.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    UnknownDatasetError
        ``name`` is not a known data set (the message lists the known ones).
    DatasetUnavailableError
        No verified copy exists and the download is off or fails.

    Examples
    --------
    >>> from bayesglmm import datasets
    >>> datasets.load("salamander").shape
    (360, 8)
    """
    file = path(name, data_dir=data_dir, download=download)
    return _READERS[name](file)


def _read_salamander(file: Path) -> pd.DataFrame:
    df = pd.read_csv(file).drop(columns=["rownames"])
    df["Cross"] = pd.Categorical(df["Cross"], categories=["RR", "RW", "WR", "WW"])
    return df


def _read_cbpp(file: Path) -> pd.DataFrame:
    df = pd.read_csv(file).drop(columns=["rownames"])
    df["herd"] = pd.Categorical(df["herd"])
    df["period"] = pd.Categorical(df["period"])
    return df


def _read_seeds(file: Path) -> pd.DataFrame:
    df = pd.read_csv(file).drop(columns=["rownames"])
    df["x1"] = (df["gen"] == "O73").astype(int)
    df["x2"] = (df["extract"] == "cucumber").astype(int)
    return df


def _read_mouse_litters(file: Path) -> pd.DataFrame:
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = rdata.read_rda(str(file))["implants"]
    df = pd.DataFrame(
        {
            "litter": np.arange(1, len(raw) + 1),
            "dead": np.asarray(raw["dead"], dtype=np.int64),
            "survived": np.asarray(raw["survived"], dtype=np.int64),
        }
    )
    df["size"] = df["dead"] + df["survived"]
    return df


def _read_grouseticks(file: Path) -> pd.DataFrame:
    df = pd.read_csv(file).drop(columns=["rownames"])
    for col in ("INDEX", "BROOD", "YEAR", "LOCATION"):  # factors in lme4
        df[col] = pd.Categorical(df[col])
    return df


def _read_salamanders(file: Path) -> pd.DataFrame:
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = rdata.read_rda(str(file))["Salamanders"]
    df = pd.DataFrame(raw).reset_index(drop=True)
    for col in ("sample", "count"):
        df[col] = np.asarray(df[col], dtype=np.int64)
    for col in ("site", "mined", "spp"):  # R's levels, in R's order
        df[col] = pd.Categorical(
            df[col].astype(str), categories=[str(c) for c in raw[col].cat.categories]
        )
    return df


_READERS = {
    "salamander": _read_salamander,
    "cbpp": _read_cbpp,
    "seeds": _read_seeds,
    "mouse_litters": _read_mouse_litters,
    "grouseticks": _read_grouseticks,
    "Salamanders": _read_salamanders,
}
