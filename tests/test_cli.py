"""The ``bayesglmm`` command, run in-process through ``main([...])`` with short chains."""

from __future__ import annotations

import subprocess
import sys
import urllib.error

import numpy as np
import pandas as pd
import pytest

from bayesglmm import FitResult, OptionError, simulate
from bayesglmm.cli import _method_options, _parser, main
from bayesglmm.demo import SIMULATION_FIXED, demo_data, salamander_design, simulated_salamander

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
        "seeds_nuts_residuals.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "seeds_nuts_residuals.png" in out.split("Plots: ")[1]  # named in the output
    result = FitResult.load(tmp_path / "seeds_nuts.fit.zip")
    assert result.info["options"]["draws"] == 100 and result.info["options"]["random_seed"] == 3
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
    assert "random seed: 1 (--seed to change)" in out  # fit's default seed, printed
    result = FitResult.load(tmp_path / "o" / "model_nuts.fit.zip")
    assert result.info["options"]["target_accept"] == 0.9
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
        (["fit", "Mate ~ 0 + Cross + (1|", "--data", "@SAL"], "unbalanced"),
        (["fit", "Mate ~ Cross", "--data", "@SAL", "--family", "binomal"], "binomal"),
        (["fit", "salamander", "--nuts-sampler", "stan"], "nuts_sampler"),
        (["fit", "salamander", "-o", "target_accept"], "KEY=VALUE"),
        (["fit", "salamander", "--draws", "0"], "draws must be a positive integer"),
        (["fit", "salamander", "--chains", "-1"], "chains must be a positive integer"),
        (["fit", "salamander", "--tune", "-5"], "tune"),
        (["fit", "salamander", "--seed", "-2"], "random_seed"),
        (["fit", "salamander", "-o", "target_accept=1.5"], "target_accept must be in (0, 1)"),
        (["fit", "salamander", "-o", "init='adapt_diag'"], "init='adapt_diag'"),
        (["fit", "salamander", "-o", "initvals={}"], "did you mean 'start'"),
        (["fit", "salamander", "--method", "laplace", "-o", "max_iter=abc"], "max_iter"),
        (["fit", "salamander", "--method", "laplace", "-o", "maxiter=5"], "'max_iter'"),
        (["fit", "salamander", "--method", "laplace", "--draws", "10"], "--draws does not"),
        (["fit", "salamander", "--method", "pql", "-o", "tol=0"], "tol"),
        (["fit", "salamander", "--method", "lmm", "-o", "reml=maybe"], "reml"),
        (["fit", "salamander", "--draws", "abc"], "invalid int value: 'abc'"),  # argparse
        (["fit", "salamander", "--bogus"], "unrecognized arguments: --bogus"),  # argparse
        (["fitt", "salamander"], "invalid choice: 'fitt'"),  # argparse
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys, tmp_path, salamander):
    csv = tmp_path / "sal.csv"
    salamander.to_csv(csv, index=False)
    argv = [str(csv) if a == "@SAL" else a for a in argv]
    if argv[0] == "fit":
        argv = [*argv, "--no-progress", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("bayesglmm: error:") and needle in err, err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err + captured.out
    assert not (tmp_path / "o").exists()


def test_a_bad_option_stops_before_the_data_are_read(monkeypatch, capsys):
    """Options are checked first: nothing is loaded, built or sampled for a bad --draws."""
    from bayesglmm import specs

    def no(*args, **kwargs):
        raise AssertionError("the spec was loaded before the options were checked")

    monkeypatch.setattr(specs, "load_spec", no)
    assert main(["fit", "salamander", "--draws", "0"]) == 2
    assert "draws must be a positive integer, got 0" in capsys.readouterr().err


def test_console_command_prints_no_traceback(tmp_path):
    """The installed entry point, in a pipe: one line on stderr, exit status 2."""
    for argv in (["--draws", "0"], ["-o", "max_iter=abc", "--method", "laplace"]):
        run = subprocess.run(
            [sys.executable, "-m", "bayesglmm.cli", "fit", "salamander", *argv],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
        assert run.returncode == 2, run.stderr
        assert "Traceback" not in run.stderr + run.stdout
        assert run.stderr.startswith("bayesglmm: error:") and len(run.stderr.splitlines()) == 1


def test_unexpected_errors_are_one_line_with_exit_1(monkeypatch, capsys):
    from bayesglmm import cli

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "_cmd_specs", broken)
    assert main(["specs"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unexpected ZeroDivisionError" in err
    assert "--traceback" in err
    with pytest.raises(ZeroDivisionError):
        main(["--traceback", "specs"])


def test_fit_help_names_the_real_default_backend_and_the_methods(capsys):
    from bayesglmm import available_methods

    assert main(["fit", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "auto (default: bayesglmm's compiled density sampled with nutpie" in out
    assert "else PyMC's own NUTS" in out
    assert f"estimation method: {', '.join(available_methods())} (default: nuts)" in out
    assert "random seed of a sampling method (default: 1, printed)" in out


def test_flags_a_method_does_not_take_are_refused():
    from bayesglmm.cli import CLIError

    args = _parser().parse_args(["fit", "salamander", "--method", "laplace", "--draws", "10"])
    with pytest.raises(CLIError, match="--draws does not apply to method 'laplace'.*max_iter"):
        _method_options(args, "laplace")
    args = _parser().parse_args(["fit", "salamander", "-o", "max_iter=5"])
    assert _method_options(args, "gee") == {"max_iter": 5}  # no seed: no random draws
    args = _parser().parse_args(["fit", "salamander", "-o", "maxiter=5"])
    with pytest.raises(OptionError, match="unknown option 'maxiter'.*did you mean 'max_iter'"):
        _method_options(args, "laplace")
    args = _parser().parse_args(["fit", "salamander", "--seed", "1"])
    with pytest.raises(CLIError, match="--seed does not apply"):
        _method_options(args, "gee")
    args = _parser().parse_args(["fit", "salamander", "-o", "curvature='observed'"])
    assert _method_options(args, "laplace")["curvature"] == "observed"
    args = _parser().parse_args(["fit", "salamander", "--no-progress"])
    assert _method_options(args, "nuts") == {"random_seed": 1, "progressbar": False}
    args = _parser().parse_args(["fit", "salamander", "--seed", "7"])
    assert _method_options(args, "gibbs") == {"random_seed": 7}


def test_fit_with_a_frequentist_method(tmp_path, capsys, salamander):
    """Any registered method runs through the same command; without draws the only plot is
    the residuals' (quantile residuals: QQ, against fitted, by the first grouping factor)."""
    import matplotlib.image as mpimg

    from bayesglmm import available_methods

    assert "laplace" in available_methods()
    assert main(["fit", "salamander", "--method", "laplace", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Laplace (glmer)" in out and "logLik" in out
    assert (tmp_path / "salamander_laplace.fit.zip").is_file()
    png = tmp_path / "salamander_laplace_residuals.png"
    assert list(tmp_path.glob("*.png")) == [png]
    assert f"Plots: {png}" in out
    img = mpimg.imread(png)
    assert img.shape[1] > 2 * img.shape[0] and img[..., :3].std() > 0.05  # panels side by side


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


def _offline(monkeypatch, tmp_path):
    """No $BAYESGLMM_DATA copy, an empty cache, and a network that refuses."""
    from bayesglmm import datasets

    monkeypatch.setenv("BAYESGLMM_DATA", str(tmp_path / "no_data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no_cache"))

    def offline(info, dest, timeout):
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr(datasets, "_download", offline)
    return datasets


def test_demo_without_readable_data_is_one_clear_line(tmp_path, monkeypatch, capsys):
    """Only if even the packaged copy is unreadable: one line saying why, no other data."""
    datasets = _offline(monkeypatch, tmp_path)
    monkeypatch.setattr(datasets, "PACKAGED_DIR", tmp_path / "not_installed")
    assert main(["demo", *SHORT, "--no-plots", "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("bayesglmm: error:")
    assert "salamander" in err and "network unreachable (test)" in err
    assert "BAYESGLMM_DATA" in err  # how to point at a copy
    assert not (tmp_path / "out").exists()  # nothing sampled or written
    # the simulator of the design is still there for simulation studies
    assert simulated_salamander(2).attrs["truth"]["fixed_effects"] == SIMULATION_FIXED


def test_demo_runs_offline_on_the_packaged_real_data(tmp_path, monkeypatch, capsys):
    _offline(monkeypatch, tmp_path)  # no network, no env var: the packaged copy is used
    assert not demo_data().simulated
    assert main(["demo", *SHORT, "--no-plots", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "McCullagh & Nelder" in out and "SIMULATED" not in out
    assert "bayesglmm/data/README.md" in out  # a source the installed package holds
    assert "MCEM (Booth & Hobert 1999)" in out
    result = FitResult.load(tmp_path / "salamander_nuts.fit.zip")
    assert result.nobs == 360


def test_compare_prints_the_table_and_writes_the_tidy_csv_and_the_plot(tmp_path, capsys):
    import matplotlib.image as mpimg

    from bayesglmm.analysis.comparison import TIDY_COLUMNS

    argv = ["compare", "salamander", "--methods", "laplace,pql,gee", "--out", str(tmp_path)]
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "MCEM (Booth & Hobert 1999)" in out and "var(Female)" in out  # references beside
    assert "gee: not applicable: GEE needs one clustering factor" in out
    tidy = pd.read_csv(tmp_path / "salamander_compare.csv")
    assert list(tidy.columns) == list(TIDY_COLUMNS)
    assert tidy.groupby("method", sort=False).size().to_dict() == {"laplace": 6, "pql": 6, "gee": 1}
    img = mpimg.imread(tmp_path / "salamander_compare.png")
    assert img.shape[0] >= 300 and img.shape[1] >= 600 and img[..., :3].std() > 0.05


def test_compare_a_formula_on_a_packaged_data_set(tmp_path, capsys):
    formula = "cbind(incidence, size - incidence) ~ period + (1|herd)"
    argv = ["compare", formula, "--data", "cbpp", "--methods", "laplace,agq", "-o", "n_quad=9"]
    assert main([*argv, "--no-plots", "--no-progress", "--out", str(tmp_path)]) == 0
    tidy = pd.read_csv(tmp_path / "model_compare.csv")
    assert set(tidy["method"]) == {"laplace", "agq"} and not list(tmp_path.glob("*.png"))
    assert "Laplace (glmer)" not in capsys.readouterr().out  # a formula has no references


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--methods", "laplace,magic"], "unknown method 'magic'"),
        (["--methods", "laplace,all"], "'all' cannot be combined"),
        (["--methods", "pql,pql"], "names a method twice"),
        (["--methods", ","], "no method named"),
        (["--methods", "laplace,pql", "--draws", "10"], "--draws applies to none of the methods"),
        (["--methods", "laplace,nuts", "--draws", "0"], "nuts: draws must be a positive integer"),
        (["--methods", "laplace", "-o", "nuts.draws=5"], "method 'nuts' is not in --methods"),
        (["--methods", "nuts", "-o", "drawz=5"], "did you mean 'draws'"),
        (["--methods", "laplace", "-o", "max_iter"], "[METHOD.]KEY=VALUE"),
        (["--methods", "pql", "-o", "pql.tol=0"], "tol"),
        (["--methods", "laplace", "--data", "/nonexistent.csv"], "no such file"),
        (["--methods", "laplace", "--family", "poisson"], "apply to a formula"),
        (["--methods", "laplace", "--seed", "-1"], "random_seed"),
    ],
)
def test_compare_mistakes_are_one_line_and_exit_2(argv, needle, tmp_path, capsys, monkeypatch):
    from bayesglmm import GLMM

    def no_fit(self, method="nuts", **options):
        raise AssertionError("fitted before the check")

    monkeypatch.setattr(GLMM, "fit", no_fit)
    out = tmp_path / "o"
    assert main(["compare", "salamander", *argv, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("bayesglmm: error:") and needle in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err + captured.out
    assert not out.exists()


CBPP_FORMULA = "cbind(incidence, size - incidence) ~ period + (1|herd)"


def test_test_command_prints_the_variance_test(capsys):
    """The LRT of cbpp's herd variance: 2 (l1 - l0) = 2 (-92.02634 - (-99.02926)) = 14.0058
    (logLik of glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
    binomial) and of the glm without the herd term), p = 0.5 P(chi2(1) > 14.0058)."""
    from scipy import stats

    assert main(["test", CBPP_FORMULA, "--data", "cbpp", "--term", "(1|herd)"]) == 0
    out = capsys.readouterr().out
    assert "FitResult(method='laplace'" in out and "logLik -92.0263" in out  # the fit tested
    line = out.strip().splitlines()[-1]
    assert line.startswith("VarianceTest(LRT of (1 | herd): statistic = 14.00")
    p = float(line.split(" p = ")[1].split()[0])
    assert p == pytest.approx(0.5 * stats.chi2.sf(14.0058, 1), rel=1e-3)


def test_test_command_gives_the_score_test_the_unfitted_model(monkeypatch, capsys):
    from bayesglmm import GLMM
    from bayesglmm.inference import variance_tests

    seen = {}

    def record(fit, term=None, method="lrt", **options):
        seen.update(fit=fit, term=term, method=method, options=options)
        return "VarianceTest(recorded)"

    def no_fit(self, method="nuts", **options):
        raise AssertionError("the score test fits no model")

    monkeypatch.setattr(variance_tests, "test_variance", record)
    monkeypatch.setattr(GLMM, "fit", no_fit)
    argv = ["test", "salamander", "--term", "(1|Male)", "--method", "score"]
    assert main([*argv, "-t", "correction=True"]) == 0
    assert isinstance(seen["fit"], GLMM) and seen["fit"].formula.startswith("Mate ~")
    assert (seen["term"], seen["method"], seen["options"]) == (
        "(1|Male)",
        "score",
        {"correction": True},
    )
    assert capsys.readouterr().out.strip().endswith("'VarianceTest(recorded)'")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--method", "magic"], "--method must be one of lrt, score, rlrt, bootstrap"),
        (["--term", "(1|Femle)"], "term '(1|Femle)' is not a random term of the model"),
        (["--method", "bootstrap", "-t", "n_bot=5"], "unknown option 'n_bot'"),
        (["--method", "lrt", "-t", "n_boot=5"], "an option of method bootstrap"),
        (["-t", "nsim"], "--test-option expects KEY=VALUE"),
        (["--fit-method", "magic"], "unknown method 'magic'"),
        (["--method", "score", "--fit-method", "agq"], "the score test fits no model"),
        (["--family", "poisson"], "apply to a formula"),
        (["--data", "/nonexistent.csv"], "no such file"),
    ],
)
def test_test_command_mistakes_are_one_line_and_exit_2(argv, needle, monkeypatch, capsys):
    """Each mistake is found before any fit (GLMM.fit refuses to run here)."""
    from bayesglmm import GLMM

    def no_fit(self, method="nuts", **options):
        raise AssertionError("fitted before the check")

    monkeypatch.setattr(GLMM, "fit", no_fit)
    assert main(["test", "salamander", "--term", "(1|Female)", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("bayesglmm: error:") and needle in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err + captured.out


def test_test_command_needs_a_term_only_with_several(monkeypatch, capsys):
    from bayesglmm import GLMM

    monkeypatch.setattr(GLMM, "fit", lambda self, **kw: pytest.fail("fitted before the check"))
    assert main(["test", "salamander"]) == 2
    err = capsys.readouterr().err
    assert "--term is needed: the model has several random terms ((1 | Female), (1 | Male))" in err
