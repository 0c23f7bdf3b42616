"""Declarative model specs: ``models/*.toml`` files naming a data set, a formula and priors.

A spec file reads::

    dataset = "salamander"
    formula = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
    family = "binomial"            # optional, default "binomial"
    link = "logit"                 # optional, the family's default link
    description = "..."            # what the model is, with its source

    [priors.Cross]                 # one table per prior key (see GLMM's ``priors``)
    dist = "Normal"                # a class of bayesglmm.priors
    sigma = 2.5

    [priors.Female]
    dist = "HalfNormal"
    sigma = 2.5

    [[references]]                 # optional: published or R estimates to compare with
    method = "Laplace (glmer)"
    source = "R 4.2.2, lme4 1.1-31: glmer(...)"
    fixed_effects = { "Cross[RR]" = 1.008208 }
    variance_components = { Female = 1.174330 }

A prior key may also be a plain number, which holds that parameter fixed
(:class:`bayesglmm.priors.Fixed`). Specs are looked up by name in the ``models/`` folder at
the root of the project (beside the installed package for an editable install), in the
folder named by the environment variable ``BAYESGLMM_MODELS``, or given as a path.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import tomllib
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import FamilyError, FormulaError, PriorError, SpecError
from ..model import priors as _priors

#: environment variable naming an extra folder of spec files
ENV_VAR = "BAYESGLMM_MODELS"
#: the bundled spec files (``bayesglmm/data/models``; ``models/`` at the project root points there)
MODELS_DIR = Path(__file__).resolve().parents[1] / "data" / "models"

_TOP_KEYS = {"name", "dataset", "formula", "family", "link", "description", "priors", "references"}
_REQUIRED = ("dataset", "formula")
_REFERENCE_KEYS = {"method", "source", "fixed_effects", "variance_components", "loglik"}
_PRIOR_CLASSES = {
    name: cls
    for name, cls in vars(_priors).items()
    if inspect.isclass(cls) and issubclass(cls, _priors.Prior) and cls is not _priors.Prior
}


@dataclass(frozen=True)
class Reference:
    """Estimates of the same model from a publication or from R, to compare a fit with."""

    method: str
    source: str
    fixed_effects: dict[str, float] = field(default_factory=dict)
    variance_components: dict[str, float] = field(default_factory=dict)
    loglik: float | None = None

    def as_series(self) -> pd.Series:
        """Values indexed like :func:`bayesglmm.compare`: ``Cross[RR]``, ``var(Female)``."""
        values = dict(self.fixed_effects)
        values.update({f"var({k})": v for k, v in self.variance_components.items()})
        if self.loglik is not None:
            values["logLik"] = self.loglik
        return pd.Series(values, dtype=float, name=self.method)


@dataclass(frozen=True)
class ModelSpec:
    """A model read from a spec file.

    Attributes
    ----------
    name : str
        The file's stem unless the file sets ``name``.
    dataset : str
        A name known to :func:`bayesglmm.datasets.load`.
    formula, family : str
    link : str or None
        None means the family's default.
    priors : dict of str to bayesglmm.priors.Prior
        Keyed as :class:`~bayesglmm.GLMM`'s ``priors`` argument.
    description : str
    references : list of Reference
    path : Path or None
        The file the spec was read from.
    """

    name: str
    dataset: str
    formula: str
    family: str = "binomial"
    link: str | None = None
    priors: dict = field(default_factory=dict)
    description: str = ""
    references: tuple[Reference, ...] = ()
    path: Path | None = None

    def build(self, data: pd.DataFrame | None = None, data_dir: str | Path | None = None):
        """The :class:`~bayesglmm.GLMM` of this spec.

        Parameters
        ----------
        data : DataFrame, optional
            Data to use instead of the spec's data set (e.g. simulated on the same design).
        data_dir : path, optional
            Passed to :func:`bayesglmm.datasets.load` when ``data`` is None.
        """
        from ..glmm import GLMM
        from ..model import datasets

        own = data is None
        if own:
            data = datasets.load(self.dataset, data_dir=data_dir)
        try:
            model = GLMM(
                self.formula, data, family=self.family, link=self.link, priors=dict(self.priors)
            )
        except PriorError as err:
            raise SpecError(f"{self._where()}: key 'priors': {err}") from None
        if own or _is_dataset(data, self.dataset, data_dir):
            _BUILT[model] = self  # its references apply: compare(model, ...) draws them
        return model

    def compare(self, result, label: str | None = None) -> pd.DataFrame:
        """A fit's estimates beside the spec's reference values, one column each.

        Rows are the fit's parameters (and ``logLik`` when the fit has one).
        """
        from ..results.tables import join_fits

        fit = join_fits({label or result.method: result})
        refs = [r.as_series() for r in self.references]
        table = pd.concat([fit, *refs], axis=1)
        return table.loc[fit.index]

    def _where(self) -> str:
        return str(self.path) if self.path is not None else f"spec {self.name!r}"


#: models built by :meth:`ModelSpec.build` on the spec's own data set -> the spec
_BUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=8)
def _dataset_copy(name: str, data_dir) -> pd.DataFrame | None:
    from ..errors import BayesGLMMError
    from ..model import datasets

    try:
        return datasets.load(name, data_dir=data_dir)
    except (BayesGLMMError, OSError):
        return None


def _is_dataset(data: pd.DataFrame, name: str, data_dir) -> bool:
    """Whether ``data`` is the data set ``name`` (then the spec's references apply)."""
    ref = _dataset_copy(name, None if data_dir is None else str(data_dir))
    return ref is not None and ref.shape == data.shape and bool(data.equals(ref))


def spec_of(model) -> ModelSpec | None:
    """The spec a model was built from by :meth:`ModelSpec.build`, if built on the spec's own
    data set (simulated or other data get None: the spec's references do not apply)."""
    try:
        return _BUILT.get(model)
    except TypeError:  # not weak-referenceable: not built by a spec
        return None


def _spec_dirs() -> list[Path]:
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    dirs.append(MODELS_DIR)
    return dirs


def available_specs() -> list[str]:
    """Names of the spec files found (``BAYESGLMM_MODELS`` first, then the bundled ones)."""
    names: dict[str, None] = {}
    for d in _spec_dirs():
        if d.is_dir():
            names.update({p.stem: None for p in sorted(d.glob("*.toml"))})
    return list(names)


def spec_path(name_or_path: str | Path) -> Path:
    """The file of a spec given by name (``"salamander"``) or path (``"my/model.toml"``)."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.parent != Path("."):
        if not p.is_file():
            raise SpecError(f"spec file {p} does not exist")
        return p
    for d in _spec_dirs():
        if (d / f"{p.name}.toml").is_file():
            return d / f"{p.name}.toml"
    where = ", ".join(str(d) for d in _spec_dirs())
    raise SpecError(
        f"no model spec named {str(name_or_path)!r} (looked in {where}); "
        f"available: {', '.join(available_specs()) or 'none'}"
    )


def load_spec(name_or_path: str | Path) -> ModelSpec:
    """Read and check a spec file.

    The formula, family, link, data set name and every prior are checked here, before any
    data are loaded; an error names the file and the key at fault.

    Raises
    ------
    SpecError
    """
    path = spec_path(name_or_path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML: {err}") from None

    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise SpecError(
            f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(_TOP_KEYS))}"
        )
    for key in _REQUIRED:
        if key not in raw:
            raise SpecError(f"{path}: missing required key {key!r}")
    for key in ("name", "dataset", "formula", "family", "link", "description"):
        if key in raw and not isinstance(raw[key], str):
            raise SpecError(f"{path}: key {key!r} must be a string, got {raw[key]!r}")

    from ..model import datasets
    from ..model.families import get_family
    from ..model.formula import parse_formula

    if raw["dataset"] not in datasets.available():
        raise SpecError(
            f"{path}: key 'dataset': unknown data set {raw['dataset']!r}; "
            f"available: {', '.join(datasets.available())}"
        )
    family, link = raw.get("family", "binomial"), raw.get("link")
    for key, args in (("family", (family, None)), ("link", (family, link))):
        try:
            get_family(*args)
        except FamilyError as err:
            raise SpecError(f"{path}: key {key!r}: {err}") from None
    try:
        parse_formula(raw["formula"], family, link)
    except FormulaError as err:
        raise SpecError(f"{path}: key 'formula': {err}") from None

    priors_raw = raw.get("priors", {})
    if not isinstance(priors_raw, dict):
        raise SpecError(f"{path}: key 'priors' must be a table of priors by parameter")
    priors = {k: _parse_prior(v, f"priors.{k}", path) for k, v in priors_raw.items()}

    refs_raw = raw.get("references", [])
    if not isinstance(refs_raw, list):
        raise SpecError(f"{path}: key 'references' must be an array of tables ([[references]])")
    references = tuple(_parse_reference(r, i, path) for i, r in enumerate(refs_raw))

    return ModelSpec(
        name=raw.get("name", path.stem),
        dataset=raw["dataset"],
        formula=raw["formula"],
        family=family,
        link=link,
        priors=priors,
        description=raw.get("description", "").strip(),
        references=references,
        path=path,
    )


def _parse_prior(value, key: str, path: Path) -> _priors.Prior:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _priors.Fixed(float(value))
    if not isinstance(value, dict):
        raise SpecError(
            f"{path}: key {key!r} must be a table with 'dist' (e.g. dist = \"HalfNormal\", "
            f"sigma = 2.5) or a number (a fixed value), got {value!r}"
        )
    params = dict(value)
    dist = params.pop("dist", None)
    if dist not in _PRIOR_CLASSES:
        raise SpecError(
            f"{path}: key '{key}.dist': {'missing' if dist is None else repr(dist)}; "
            f"choose one of {', '.join(sorted(_PRIOR_CLASSES))}"
        )
    cls = _PRIOR_CLASSES[dist]
    allowed = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, v in params.items():
        if name not in allowed:
            raise SpecError(
                f"{path}: key '{key}.{name}': {dist} has no parameter {name!r}; "
                f"its parameters: {', '.join(sorted(allowed)) or 'none'}"
            )
        if name == "sd":
            kwargs[name] = _parse_prior(v, f"{key}.sd", path)
        elif name == "on":
            if v not in ("sd", "variance", "value"):
                raise SpecError(
                    f'{path}: key \'{key}.on\' must be "sd", "variance" or "value", got {v!r}'
                )
            kwargs[name] = v
        else:
            kwargs[name] = _number(v, f"{key}.{name}", path)
    return cls(**kwargs)


def _number(v, key: str, path: Path, allow_list: bool = True):
    def ok(x) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    if ok(v):
        return float(v)
    if allow_list and isinstance(v, list) and v and all(ok(x) for x in v):
        return tuple(float(x) for x in v)
    what = "a number or a list of numbers" if allow_list else "a number"
    raise SpecError(f"{path}: key {key!r} must be {what}, got {v!r}")


def _parse_reference(raw, i: int, path: Path) -> Reference:
    key = f"references[{i}]"
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: key {key!r} must be a table")
    unknown = sorted(set(raw) - _REFERENCE_KEYS)
    if unknown:
        raise SpecError(
            f"{path}: key {key!r}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(_REFERENCE_KEYS))}"
        )
    for need in ("method", "source"):
        if not isinstance(raw.get(need), str):
            raise SpecError(f"{path}: key '{key}.{need}' (a string) is required")
    tables = {}
    for name in ("fixed_effects", "variance_components"):
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise SpecError(f"{path}: key '{key}.{name}' must be a table of numbers")
        tables[name] = {
            k: _number(v, f"{key}.{name}.{k}", path, allow_list=False) for k, v in table.items()
        }
    loglik = raw.get("loglik")
    return Reference(
        method=raw["method"],
        source=raw["source"],
        fixed_effects=tables["fixed_effects"],
        variance_components=tables["variance_components"],
        loglik=None if loglik is None else _number(loglik, f"{key}.loglik", path, False),
    )
