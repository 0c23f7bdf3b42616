import hashlib
import urllib.error

import pytest

from bayesglmm import datasets
from bayesglmm.errors import DatasetUnavailableError


def test_reference_files_load_with_their_meaning(salamander, cbpp, seeds, mouse_litters):
    assert salamander.shape == (360, 8) and salamander.Mate.sum() == 189
    assert list(salamander.Cross.cat.categories) == ["RR", "RW", "WR", "WW"]
    assert salamander.Female.nunique() == 60 and salamander.Male.nunique() == 60
    assert cbpp.shape == (56, 4) and str(cbpp.period.dtype) == "category"
    assert seeds.shape[0] == 21 and set(seeds.x1) == {0, 1}
    assert mouse_litters.shape[0] == 523
    assert mouse_litters.dead.sum() == 614 and mouse_litters["size"].sum() == 6879


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
    src = datasets.path("seeds", download=False).read_bytes()
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


def test_unknown_name():
    with pytest.raises(KeyError, match="available: salamander"):
        datasets.load("iris")
