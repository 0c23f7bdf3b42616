"""The ``bayesglmm`` command, run in-process through ``main([...])`` with short chains."""

from __future__ import annotations

import urllib.error

import numpy as np
import pandas as pd
import pytest

from bayesglmm import FitResult, simulate
from bayesglmm.cli import _method_options, _parser, main
from bayesglmm.demo import SIMULATION_FIXED, demo_data, salamander_design

#: short runs: these tests check the command's plumbing, not the posterior
SHORT = ["--draws", "100", "--tune", "100", "--chains", "2", "--cores", "1", "--no-progress"]


def test_specs_and_datasets_are_listed(capsys):
    assert main(["specs"]) == 0
    out = capsys.readouterr().out
    for name in ("salamander", "cbpp", "seeds", "mouse_litters"):
        assert name in out
    assert "Mate ~ 0 + Cross + (1|Female) + (1|Male)" in out
    assert main(["datasets"]) == 0
    assert "McCullagh & Nelder" in capsys.readouterr().out


def test_fit_a_spec_writes_result_summary_and_plots(tmp_path, capsys, seeds):
    assert main(["fit", "seeds", *SHORT, "--seed", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "FitResult(method='nuts'" in out
    assert "AGQ (glmer, nAGQ = 25)" in out  # the spec's references printed beside the fit
    for name in (
        "seeds_nuts.fit.zip",
        "seeds_nuts_summary.csv",
        "seeds_nuts_trace.png",
        "seeds_nuts_rank.png",
        "seeds_nuts_forest.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    result = FitResult.load(tmp_path / "seeds_nuts.fit.zip")
    assert result.info["draws"] == 100 and result.info["random_seed"] == 3
    assert result.idata.posterior.sizes["chain"] == 2
    assert list(result.fixed_effects.index) == ["Intercept", "x1", "x2", "x1:x2"]
    summary = pd.read_csv(tmp_path / "seeds_nuts_summary.csv", index_col=0)
    np.testing.assert_allclose(summary["estimate"], result.table["estimate"])


def test_fit_a_formula_with_a_csv(tmp_path, capsys):
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"x": rng.normal(size=120), "g": np.repeat(list("abcdefghij"), 12)})
    frame = simulate(
        "y ~ x + (1|g)",
        frame,
        {"Intercept": 0.5, "x": 0.4},
        {"g": 0.3},
        family="poisson",
        random_seed=11,
    )
    csv = tmp_path / "counts.csv"
    frame.drop(columns=[]).to_csv(csv, index=False)
    code = main(
        [
            "fit",
            "y ~ x + (1|g)",
            "--data",
            str(csv),
            "--family",
            "poisson",
            *SHORT,
            "-o",
            "target_accept=0.9",
            "--no-plots",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "family=poisson/log" in out
    result = FitResult.load(tmp_path / "o" / "model_nuts.fit.zip")
    assert result.info["target_accept"] == 0.9
    assert list(result.variance_components.index) == ["g"]
    assert not list((tmp_path / "o").glob("*.png"))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["fit", "y ~ x + (1|g)"], "needs --data"),
        (["fit", "salamandr"], "no model spec named 'salamandr'"),
        (["fit", "salamander", "--method", "magic"], "unknown method 'magic'"),
        (["fit", "salamander", "--family", "poisson"], "apply to a formula"),
        (["fit", "y ~ x + (1|g)", "--data", "/nonexistent/file.csv"], "no such file"),
        (["fit", "Mate ~ 0 + Cros + (1|Female)", "--data", "@SAL"], "Cros"),
        (["fit", "salamander", "--nuts-sampler", "stan"], "unknown nuts_sampler 'stan'"),
        (["fit", "salamander", "-o", "target_accept"], "KEY=VALUE"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(argv, needle, capsys, tmp_path, salamander):
    csv = tmp_path / "sal.csv"
    salamander.to_csv(csv, index=False)
    argv = [str(csv) if a == "@SAL" else a for a in argv]
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("bayesglmm: error:") and needle in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_flags_a_method_does_not_take_are_refused():
    from bayesglmm.cli import CLIError

    def fit_laplace(model, n_iter: int = 100):  # a method without sampling options
        return model

    args = _parser().parse_args(["fit", "salamander", "--method", "laplace", "--draws", "10"])
    with pytest.raises(CLIError, match="--draws does not apply to method 'laplace'.*n_iter"):
        _method_options(args, fit_laplace)
    args = _parser().parse_args(["fit", "salamander", "-o", "n_iter=5"])
    assert _method_options(args, fit_laplace) == {"n_iter": 5}
    args = _parser().parse_args(["fit", "salamander", "-o", "maxiter=5"])
    with pytest.raises(CLIError, match="option 'maxiter' does not apply"):
        _method_options(args, fit_laplace)

    def fit_checked(model, start=None, **options):  # checks its own **options
        return model

    args = _parser().parse_args(["fit", "salamander", "--seed", "1"])
    with pytest.raises(CLIError, match="--seed does not apply"):
        _method_options(args, fit_checked)
    args = _parser().parse_args(["fit", "salamander", "-o", "curvature='hessian'"])
    assert _method_options(args, fit_checked) == {"curvature": "hessian"}  # no progressbar


def test_fit_with_a_frequentist_method(tmp_path, capsys, salamander):
    """Any registered method runs through the same command (no plots without draws)."""
    from bayesglmm import available_methods

    if "laplace" not in available_methods():
        pytest.skip("laplace not registered")
    assert main(["fit", "salamander", "--method", "laplace", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Laplace (glmer)" in out and "logLik" in out
    assert (tmp_path / "salamander_laplace.fit.zip").is_file()
    assert not list(tmp_path.glob("*.png"))


def test_salamander_design_matches_the_published_layout():
    """3 experiments x (10 R + 10 W) females and males; 6 matings each, 3 per population."""
    df = salamander_design(random_seed=4)
    assert len(df) == 360 and df["Female"].nunique() == 60 and df["Male"].nunique() == 60
    for animal, other_type in (("Female", "TypeM"), ("Male", "TypeF")):
        counts = df.groupby([animal, other_type]).size()
        assert (counts == 3).all() and len(counts) == 120
    assert (df.groupby(["Experiment", "Cross"], observed=True).size() == 30).all()
    assert not df.duplicated(["Female", "Male"]).any()
    # every pair lies within one experiment
    assert (df.groupby("Female")["Experiment"].nunique() == 1).all()
    assert (df.groupby("Male")["Experiment"].nunique() == 1).all()


def test_demo_falls_back_to_simulated_data_and_says_so(tmp_path, monkeypatch, capsys):
    from bayesglmm import datasets

    monkeypatch.setenv("BAYESGLMM_DATA", str(tmp_path / "no_data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no_cache"))

    def offline(info, dest, timeout):
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr(datasets, "_download", offline)
    fallback = demo_data(random_seed=2)
    assert fallback.simulated and "network unreachable (test)" in fallback.message
    assert fallback.data.attrs["truth"]["fixed_effects"] == SIMULATION_FIXED

    assert main(["demo", *SHORT, "--seed", "2", "--no-plots", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "NOT AVAILABLE OFFLINE" in out and "SIMULATED data" in out
    assert "BAYESGLMM_DATA" in out  # how to get the real data
    assert "truth (simulated)" in out and "Laplace (glmer)" in out
    assert (tmp_path / "salamander_nuts.fit.zip").is_file()


def test_demo_on_the_real_data_says_which_data(tmp_path, capsys, salamander):
    assert main(["demo", *SHORT, "--no-plots", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "McCullagh & Nelder" in out and "SIMULATED" not in out
    assert "MCEM (Booth & Hobert 1999)" in out
    result = FitResult.load(tmp_path / "salamander_nuts.fit.zip")
    assert result.nobs == 360
