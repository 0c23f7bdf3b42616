"""Bad input raises the package's own error naming the file, argument or column at fault:
damaged result files, wrong argument types, bad data and formulas, and the CLI's --out."""

from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm import (
    BayesGLMMError,
    DataError,
    FitResult,
    FormulaError,
    OptionError,
    ResultFileError,
)
from bayesglmm.cli import draws_at_random, main

CBPP = "cbind(incidence, size - incidence) ~ period + (1|herd)"


@pytest.fixture(scope="module")
def cbpp_model(cbpp):
    return bg.GLMM(CBPP, cbpp, family="binomial")


@pytest.fixture(scope="module")
def fit(cbpp_model):
    return cbpp_model.fit(method="laplace")


@pytest.fixture
def saved(fit, tmp_path):
    return fit.save(tmp_path / "fit.zip")


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _with_payload(saved, tmp_path, change):
    members = _members(saved)
    payload = json.loads(members["result.json"])
    change(payload)
    members["result.json"] = json.dumps(payload).encode()
    return _write(tmp_path / "changed.zip", members)


def _load_error(path) -> str:
    with pytest.raises(ResultFileError) as info:
        FitResult.load(path)
    msg = str(info.value)
    assert str(path) in msg  # the file is named
    return msg


# --------------------------------------------------------------------------------------
# damaged result files


def test_result_file_error_is_the_package_error_and_a_value_error():
    assert issubclass(bg.ResultFileError, BayesGLMMError)
    assert issubclass(bg.ResultFileError, ValueError)
    assert "ResultFileError" in bg.__all__


def test_an_intact_file_loads(fit, saved):
    back = FitResult.load(saved)
    pd.testing.assert_frame_equal(back.table, fit.table)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.1])
def test_a_truncated_zip_is_named(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * keep)])
    assert "not a readable zip" in _load_error(saved)


def test_an_empty_file_is_named(tmp_path):
    path = tmp_path / "empty.zip"
    path.write_bytes(b"")
    assert "zip" in _load_error(path)


def test_a_text_file_is_not_a_result(tmp_path):
    path = tmp_path / "notes.zip"
    path.write_text("estimate,std_error\n1,2\n")
    assert "not a readable zip" in _load_error(path)


def test_a_zip_without_the_result_is_named(saved, tmp_path):
    members = _members(saved)
    del members["result.json"]
    members["other.txt"] = b"x"
    msg = _load_error(_write(tmp_path / "noresult.zip", members))
    assert "no result.json" in msg and "other.txt" in msg


def test_corrupt_json_is_named(saved, tmp_path):
    members = _members(saved)
    members["result.json"] = members["result.json"][:-40]
    msg = _load_error(_write(tmp_path / "cut.zip", members))
    assert "result.json is not valid JSON" in msg


def test_json_that_is_not_an_object_is_named(saved, tmp_path):
    members = {"result.json": b"[1, 2, 3]"}
    msg = _load_error(_write(tmp_path / "list.zip", members))
    assert "result.json holds a list" in msg


@pytest.mark.parametrize(
    "field",
    ["method", "formula", "table", "fixed_effects", "converged", "info", "nobs", "loglik"],
)
def test_a_missing_field_is_named(saved, tmp_path, field):
    path = _with_payload(saved, tmp_path, lambda p: p.pop(field))
    msg = _load_error(path)
    assert f"field {field!r} is missing" in msg


def test_a_missing_or_other_format_version_is_named(saved, tmp_path):
    msg = _load_error(_with_payload(saved, tmp_path, lambda p: p.pop("format_version")))
    assert "'format_version' is missing" in msg

    def other(p):
        p["format_version"] = 99

    msg = _load_error(_with_payload(saved, tmp_path, other))
    assert "result format 99" in msg


@pytest.mark.parametrize(
    ("field", "value", "want"),
    [
        ("nobs", "forty", "an integer"),
        ("n_params", 2.5, "an integer"),
        ("converged", "yes", "true or false"),
        ("loglik", "high", "a number or null"),
        ("method", 3, "a string"),
        ("info", [], "an object"),
        ("fixed_effects", [1, 2], "an object"),
        ("table", "a table", "an object"),
    ],
)
def test_a_field_of_the_wrong_type_is_named(saved, tmp_path, field, value, want):
    def change(p):
        p[field] = value

    msg = _load_error(_with_payload(saved, tmp_path, change))
    assert field in msg and want in msg


def test_text_among_the_estimates_is_named(saved, tmp_path):
    def change(p):
        p["fixed_effects"]["values"][0] = "abc"

    msg = _load_error(_with_payload(saved, tmp_path, change))
    assert "fixed_effects.values" in msg


def test_a_table_row_of_the_wrong_length_is_named(saved, tmp_path):
    def change(p):
        p["table"]["data"][1] = p["table"]["data"][1][:3]

    msg = _load_error(_with_payload(saved, tmp_path, change))
    assert "row 1 of field 'table'" in msg


def test_text_in_a_numeric_table_column_is_named(saved, tmp_path):
    def change(p):
        p["table"]["data"][0][0] = "oops"

    msg = _load_error(_with_payload(saved, tmp_path, change))
    assert "column 'estimate'" in msg and "'oops'" in msg


def test_a_damaged_random_effects_frame_is_named(saved, tmp_path):
    def change(p):
        key = next(iter(p["random_effects"]))
        p["random_effects"][key].pop("columns")

    msg = _load_error(_with_payload(saved, tmp_path, change))
    assert "random_effects" in msg and "columns" in msg


def _bayes_file(tmp_path):
    import arviz as az

    fe = pd.Series({"Intercept": 1.0})
    table = pd.DataFrame({"estimate": [1.0]}, index=pd.Index(["Intercept"], name="parameter"))
    idata = az.from_dict(posterior={"x": np.random.default_rng(0).normal(size=(2, 200))})
    result = FitResult(
        method="nuts",
        formula="y ~ 1 + (1|g)",
        family="binomial",
        link="logit",
        fixed_effects=fe,
        fixed_effects_se=fe,
        variance_components=pd.Series({"g": 0.3}),
        table=table,
        idata=idata,
    )
    return result.save(tmp_path / "nuts.zip")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_idata_is_named(tmp_path, damage):
    path = _bayes_file(tmp_path)
    assert FitResult.load(path).idata is not None  # intact, it loads
    members = _members(path)
    nc = members["idata.nc"]
    members["idata.nc"] = nc[: len(nc) // 3] if damage == "truncate" else b"\x00garbage" * 50
    msg = _load_error(_write(tmp_path / "damaged.zip", members))
    assert "idata.nc" in msg and "damaged" in msg


def test_a_missing_file_is_still_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        FitResult.load(tmp_path / "nothing.zip")


# --------------------------------------------------------------------------------------
# wrong argument types


def test_compare_names_the_entry_that_is_not_a_fit(fit):
    with pytest.raises(OptionError) as info:
        bg.compare([fit, "x"])
    msg = str(info.value)
    assert "results[1]" in msg and "str" in msg and "loaded from a file" not in msg


def test_compare_names_the_label_of_a_bad_dict_entry(fit):
    with pytest.raises(OptionError, match=r"results\['b'\] is a int"):
        bg.compare({"a": fit, "b": 3})


def test_compare_with_a_model_in_the_list_says_how_to_compare_a_model(fit, cbpp_model):
    with pytest.raises(OptionError) as info:
        bg.compare([fit, cbpp_model])
    assert "results[1] is a GLMM" in str(info.value) and "methods=" in str(info.value)


def test_sensitivity_given_a_fit_asks_for_its_model(fit):
    with pytest.raises(OptionError) as info:
        bg.sensitivity(fit)
    msg = str(info.value)
    assert "model must be a GLMM" in msg and "fit.model" in msg


def test_sensitivity_given_text_names_the_argument():
    with pytest.raises(OptionError, match="model must be a GLMM, got a str"):
        bg.sensitivity("salamander")


@pytest.mark.parametrize("bad", ["x", None, 3.0])
def test_powerscale_names_its_argument(bad):
    with pytest.raises(OptionError) as info:
        bg.powerscale(bad)
    msg = str(info.value)
    assert "result must be a FitResult" in msg and type(bad).__name__ in msg


def test_ebp_names_a_result_that_is_not_a_fit():
    with pytest.raises(OptionError) as info:
        bg.ebp("notafit")
    msg = str(info.value)
    assert "result must be a FitResult" in msg and "'notafit'" in msg
    assert "loaded from a file" not in msg


@pytest.mark.parametrize("n_quad", [-1, 0, 2.5, "5"])
def test_ebp_names_a_bad_n_quad(fit, n_quad):
    with pytest.raises(OptionError, match="n_quad"):
        bg.ebp(fit, n_quad=n_quad)


# --------------------------------------------------------------------------------------
# data and formulas


@pytest.fixture
def data(cbpp):
    d = cbpp.copy()
    d["x"] = np.random.default_rng(0).normal(size=len(d))
    return d


XFORMULA = "cbind(incidence, size - incidence) ~ x + (1|herd)"


def test_duplicate_column_names_are_named(data):
    dup = pd.concat([data, data[["x"]]], axis=1)
    with pytest.raises(DataError) as info:
        bg.GLMM(XFORMULA, dup, family="binomial")
    msg = str(info.value)
    assert "2 columns named 'x'" in msg and "unrecognized type" not in msg


def test_a_duplicate_the_model_does_not_use_is_harmless(data):
    dup = pd.concat([data, data[["x"]]], axis=1)
    model = bg.GLMM(CBPP, dup, family="binomial")
    assert model.design.fixed_names[0] == "Intercept"


def test_text_in_a_numeric_column_names_column_row_and_value(data):
    bad = data.copy()
    bad["x"] = bad["x"].astype(object)
    bad.loc[5, "x"] = "abc"
    with pytest.raises(DataError) as info:
        bg.GLMM(XFORMULA, bad, family="binomial")
    msg = str(info.value)
    assert "column 'x'" in msg and "row 5" in msg and "'abc'" in msg


def test_text_in_the_response_is_named(data):
    bad = data.copy()
    bad["y"] = bad["incidence"].astype(object)
    bad.loc[7, "y"] = "n/a"
    with pytest.raises(DataError) as info:
        bg.GLMM("y ~ period + (1|herd)", bad, family="poisson")
    msg = str(info.value)
    assert "column 'y'" in msg and "row 7" in msg and "'n/a'" in msg


def test_a_text_factor_is_still_a_factor(data):
    d = data.copy()
    d["p"] = d["period"].astype(str)
    model = bg.GLMM("cbind(incidence, size - incidence) ~ p + (1|herd)", d, family="binomial")
    assert len(model.design.fixed_names) == 4


def test_an_overflowing_covariate_is_named_not_called_rank_deficient(data):
    big = data.copy()
    big["x"] = big["x"] * 1e300
    with pytest.raises(DataError) as info:
        bg.GLMM(XFORMULA, big, family="binomial")
    msg = str(info.value)
    assert "column 'x' has values up to" in msg and "rescale" in msg
    assert "rank deficient" not in msg


def test_an_infinite_covariate_names_column_and_row(data):
    bad = data.copy()
    bad.loc[11, "x"] = np.inf
    with pytest.raises(DataError) as info:
        bg.GLMM(XFORMULA, bad, family="binomial")
    msg = str(info.value)
    assert "'x' is inf at row 11" in msg


def test_text_after_a_missing_value_is_named(data):
    bad = data.copy()
    bad["x"] = bad["x"].astype(object)
    bad.loc[2, "x"] = None
    bad.loc[9, "x"] = "1,5"
    with pytest.raises(DataError) as info:
        bg.GLMM(XFORMULA, bad, family="binomial", dropna=True)
    msg = str(info.value)
    assert "column 'x'" in msg and "row 9" in msg and "'1,5'" in msg


def test_an_unknown_function_is_named_with_its_term(data):
    f = "cbind(incidence, size - incidence) ~ period + foo(x) + (1|herd)"
    with pytest.raises(FormulaError) as info:
        bg.GLMM(f, data, family="binomial")
    msg = str(info.value)
    assert "unknown function 'foo' in term 'foo(x)'" in msg and "scale" in msg and "log" in msg


def test_an_unknown_function_in_a_random_term_is_named(data):
    f = "cbind(incidence, size - incidence) ~ period + (bar(x) | herd)"
    with pytest.raises(FormulaError, match=r"unknown function 'bar' in term 'bar\(x\)'"):
        bg.GLMM(f, data, family="binomial")


def test_known_functions_still_work(data):
    f = "cbind(incidence, size - incidence) ~ scale(x) + log(size) + np.sin(x) + (1|herd)"
    model = bg.GLMM(f, data, family="binomial")
    assert model.design.fixed_names == ["Intercept", "scale(x)", "log(size)", "np.sin(x)"]


def test_huge_counts_name_the_response_scale_not_separation(seeds):
    d = seeds.copy()
    d["yy"] = d["germ"] * 10**6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bg.GLMM("yy ~ x1 + x2 + (1|plate)", d, family="poisson").fit(method="laplace")
    text = [str(w.message) for w in caught]
    assert not any("separation" in t for t in text)
    scale = [t for t in text if "counts up to" in t]
    assert scale and "'yy'" in scale[0] and "Intercept" in scale[0]


# --------------------------------------------------------------------------------------
# CLI


def test_cli_refuses_an_out_it_cannot_create_before_fitting(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "results"
    assert main(["fit", "cbpp", "--method", "laplace", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("bayesglmm: error: --out") and str(out) in err
    assert len(err.splitlines()) == 1 and "unexpected" not in err
    assert "FitResult(" not in captured.out  # nothing was fitted


def test_cli_refuses_an_out_that_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["compare", "cbpp", "--methods", "laplace", "--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "is a file" in err and str(blocker) in err


def test_cli_prints_no_seed_for_a_deterministic_method(tmp_path, capsys):
    code = main(["fit", "cbpp", "--method", "laplace", "--no-plots", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "random seed" not in out and "FitResult(method='laplace'" in out


@pytest.mark.parametrize(
    ("method", "seeded"),
    [("laplace", False), ("pql", False), ("agq", False), ("nuts", True), ("mcem", True)],
)
def test_the_seed_is_printed_for_methods_that_draw(method, seeded):
    assert draws_at_random(method) is seeded
