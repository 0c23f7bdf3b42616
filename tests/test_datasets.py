import hashlib
import urllib.error

import pytest

from bayesglmm import datasets
from bayesglmm.errors import BayesGLMMError, DatasetUnavailableError, UnknownDatasetError


def test_reference_files_load_with_their_meaning(salamander, cbpp, seeds, mouse_litters):
    assert salamander.shape == (360, 8) and salamander.Mate.sum() == 189
    assert list(salamander.Cross.cat.categories) == ["RR", "RW", "WR", "WW"]
    assert salamander.Female.nunique() == 60 and salamander.Male.nunique() == 60
    assert cbpp.shape == (56, 4) and str(cbpp.period.dtype) == "category"
    assert seeds.shape[0] == 21 and set(seeds.x1) == {0, 1}
    assert mouse_litters.shape[0] == 523
    assert mouse_litters.dead.sum() == 614 and mouse_litters["size"].sum() == 6879


def test_grouseticks_and_glmmtmb_salamanders_load_as_in_r():
    """Counts and factor levels as ``str(lme4::grouseticks)`` and ``str(glmmTMB::Salamanders)``
    show them (R 4.2.2, lme4 1.1-31, glmmTMB 1.1.11)."""
    g = datasets.load("grouseticks", download=False)
    assert g.shape == (403, 7) and g["TICKS"].sum() == 2567
    assert [g[c].nunique() for c in ("INDEX", "BROOD", "YEAR", "LOCATION")] == [403, 118, 3, 63]
    assert all(str(g[c].dtype) == "category" for c in ("INDEX", "BROOD", "YEAR", "LOCATION"))
    assert list(g["YEAR"].cat.categories) == [95, 96, 97]
    assert abs(g["cHEIGHT"].mean()) < 1e-9  # the altitude centred at its mean
    s = datasets.load("Salamanders", download=False)
    assert s.shape == (644, 9) and s["count"].sum() == 852 and (s["count"] == 0).sum() == 387
    assert list(s["mined"].cat.categories) == ["yes", "no"]
    assert list(s["spp"].cat.categories) == ["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"]
    assert s["site"].nunique() == 23 and list(s["site"].cat.categories[:2]) == ["R-1", "R-2"]
    assert s.groupby("mined", observed=True)["site"].nunique().to_dict() == {"yes": 11, "no": 12}
    # the first rows of R's print(head(Salamanders))
    assert list(s["site"].astype(str)[:4]) == ["VF-1", "VF-2", "VF-3", "R-1"]
    assert s["cover"].iloc[0] == pytest.approx(-1.4423172, abs=1e-7)
    assert list(s["count"][:4]) == [0, 0, 0, 2]


def test_lookup_order_and_sha_check(cbpp, tmp_path, monkeypatch):
    src = datasets.path("cbpp", download=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    explicit = tmp_path / "explicit" / datasets.DATASETS["cbpp"].relpath
    explicit.parent.mkdir(parents=True)
    explicit.write_bytes(src.read_bytes())
    assert datasets.path("cbpp", data_dir=tmp_path / "explicit") == explicit
    # a corrupted copy is ignored (with a warning) and the next place is used
    explicit.write_bytes(b"rownames,herd\n1,1\n")
    with pytest.warns(UserWarning, match="sha256"):
        assert datasets.path("cbpp", data_dir=tmp_path / "explicit", download=False) == src


def test_offline_error_names_address_and_variable(tmp_path, monkeypatch):
    """A data set that is not shipped (here: the packaged folder hidden) and not cached."""
    monkeypatch.setattr(datasets, "PACKAGED_DIR", tmp_path / "not_shipped")
    monkeypatch.setenv("BAYESGLMM_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def refuse(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", refuse)
    with pytest.raises(DatasetUnavailableError) as err:
        datasets.load("salamander")
    msg = str(err.value)
    assert datasets.DATASETS["salamander"].url in msg and "BAYESGLMM_DATA" in msg


def test_download_is_verified_and_cached(seeds, tmp_path, monkeypatch):
    """The download path kept for data sets too large to ship (packaged folder hidden)."""
    src = datasets.path("seeds", download=False).read_bytes()
    monkeypatch.setattr(datasets, "PACKAGED_DIR", tmp_path / "not_shipped")
    monkeypatch.setenv("BAYESGLMM_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    class Resp:
        def __init__(self, data):
            import io

            self._f = io.BytesIO(data)

        def read(self, *a):
            return self._f.read(*a)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(datasets.urllib.request, "urlopen", lambda *a, **k: Resp(b"tampered"))
    with pytest.raises(DatasetUnavailableError, match="expected"):
        datasets.load("seeds")
    monkeypatch.setattr(datasets.urllib.request, "urlopen", lambda *a, **k: Resp(src))
    df = datasets.load("seeds")
    cached = tmp_path / "cache" / "bayesglmm" / datasets.DATASETS["seeds"].relpath
    assert cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == (
        datasets.DATASETS["seeds"].sha256
    )
    assert len(df) == 21


def test_unknown_name_is_a_package_error_listing_the_names():
    for call in (datasets.load, datasets.path, datasets.describe):
        with pytest.raises(UnknownDatasetError) as err:
            call("iris")
        assert not isinstance(err.value, KeyError)
        assert isinstance(err.value, BayesGLMMError)
        assert str(err.value) == (
            "unknown data set name 'iris'; available: salamander, cbpp, seeds, mouse_litters, "
            "grouseticks, Salamanders"
        )


def test_every_data_set_ships_with_the_package_and_matches_its_sha256():
    """The packaged copies (bayesglmm/data) are the provenance table's files, byte for byte."""
    readme = (datasets.PACKAGED_DIR / "README.md").read_text()
    for name, info in datasets.DATASETS.items():
        file = datasets.PACKAGED_DIR / info.relpath
        assert hashlib.sha256(file.read_bytes()).hexdigest() == info.sha256, name
        assert f"| {name} | {info.relpath} | {info.url} | {info.sha256} |" in readme


def test_packaged_copy_is_used_offline_without_env_var(tmp_path, monkeypatch):
    monkeypatch.delenv("BAYESGLMM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def refuse(*a, **k):
        raise AssertionError("no download may be attempted")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", refuse)
    for name, info in datasets.DATASETS.items():
        assert datasets.path(name) == datasets.PACKAGED_DIR / info.relpath
    assert datasets.load("salamander").Mate.sum() == 189
    assert not (tmp_path / "cache").exists()


def test_env_var_copy_comes_before_the_packaged_one(tmp_path, monkeypatch):
    info = datasets.DATASETS["cbpp"]
    copy = tmp_path / "mine" / info.relpath
    copy.parent.mkdir(parents=True)
    copy.write_bytes((datasets.PACKAGED_DIR / info.relpath).read_bytes())
    monkeypatch.setenv("BAYESGLMM_DATA", str(tmp_path / "mine"))
    assert datasets.path("cbpp", download=False) == copy


def test_a_tampered_packaged_copy_is_refused_on_every_load(tmp_path, monkeypatch):
    """The sha256 is checked on each load, the packaged copy included: a changed packaged
    file is ignored with a warning, and with no other copy the load fails clearly."""
    info = datasets.DATASETS["salamander"]
    fake = tmp_path / "pkg"
    (fake / info.relpath).parent.mkdir(parents=True)
    good = (datasets.PACKAGED_DIR / info.relpath).read_bytes()
    (fake / info.relpath).write_bytes(good)
    monkeypatch.setattr(datasets, "PACKAGED_DIR", fake)
    monkeypatch.delenv("BAYESGLMM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert datasets.load("salamander", download=False).Mate.sum() == 189
    tampered = good.replace(b"\n1,Summer,1,R,R,RR,1,1,1\n", b"\n1,Summer,1,R,R,RR,1,1,0\n")
    assert tampered != good and len(tampered) == len(good)  # one response flipped
    (fake / info.relpath).write_bytes(tampered)
    with pytest.warns(UserWarning, match="sha256"):
        with pytest.raises(DatasetUnavailableError, match="downloads are off"):
            datasets.load("salamander", download=False)
