"""``bayesglmm.compare(model, methods=[...])``: plan, fits, tidy and wide tables, forest plot.

Reference values: the salamander spec (``models/salamander.toml``) carries lme4's Laplace
estimates, ``glmer(Mate ~ 0 + Cross + (1|Female) + (1|Male), family = binomial,
data = salamander)`` (R 4.2.2, lme4 1.1-31), which our Laplace fit reproduces.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm import GLMM, BayesGLMMError, MethodError, OptionError
from bayesglmm.analysis.comparison import TIDY_COLUMNS, Comparison, plan_methods
from bayesglmm.analysis.specs import load_spec, spec_of
from bayesglmm.options import known_options

#: few draws and small Monte Carlo sizes: these tests check the plumbing, not the estimates
FAST = {
    "nuts": {"draws": 100, "tune": 150, "chains": 2, "cores": 1},
    "gibbs": {"draws": 100, "tune": 100, "chains": 1},
    "mcem": {"mc_size": 50, "mc_max": 100, "max_iter": 5},
    "mcnr": {"mc_size": 50, "mc_max": 100, "max_iter": 5},
    "sml": {"mc_size": 50, "max_iter": 5},
    "ee": {"n_sim": 50},
    "ee2": {"n_sim": 50},
    "kuk": {"n_sim": 4, "max_iter": 2, "max_workers": 1},
}
SALAMANDER_PARAMS = [
    "Cross[RR]",
    "Cross[RW]",
    "Cross[WR]",
    "Cross[WW]",
    "var(Female)",
    "var(Male)",
]
#: methods that cannot fit the crossed binomial salamander model, and a word of each reason
NOT_FOR_SALAMANDER = {
    "agq": "crossed",
    "mbp": "crossed",
    "gee": "one clustering factor",
    "lmm": "Gaussian",
}
#: lme4's Laplace fit (module docstring) and ours agree to this (the optimizers' tolerance)
LAPLACE_TOL = 1e-3


@pytest.fixture(scope="module")
def model(salamander):
    return load_spec("salamander").build(data=salamander)


@pytest.mark.slow
def test_every_method_on_salamander_one_row_each_and_the_plot_renders(model, tmp_path):
    """Every registered method, one row per method and parameter, and the plot renders."""
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    methods = [(m, FAST.get(m, {})) for m in bg.available_methods()]
    with pytest.warns():  # short chains and Monte Carlo runs warn; that is not checked here
        cmp = bg.compare(model, methods, random_seed=1, progressbar=False)
    assert isinstance(cmp, Comparison)
    fitted = [m for m in bg.available_methods() if m not in NOT_FOR_SALAMANDER]
    assert list(cmp.fits) == fitted and set(cmp.skipped) == set(NOT_FOR_SALAMANDER)
    for m, word in NOT_FOR_SALAMANDER.items():
        assert word in cmp.skipped[m], cmp.skipped[m]

    tidy = cmp.tidy
    assert list(tidy.columns) == list(TIDY_COLUMNS)
    rows = tidy[tidy["parameter"].notna()]
    assert not rows.duplicated(["method", "parameter"]).any()
    assert len(rows) == len(fitted) * len(SALAMANDER_PARAMS)
    for m in fitted:
        assert rows.loc[rows["method"] == m, "parameter"].tolist() == SALAMANDER_PARAMS
        fit = cmp[m]
        got = rows[rows["method"] == m].set_index("parameter")
        np.testing.assert_array_equal(got["estimate"], fit.table["estimate"])
        np.testing.assert_array_equal(got["std_error"], fit.table["std_error"], strict=False)
        assert (got["kind"] == fit.kind).all() and (got["seconds"] > 0).all()
    skipped = tidy[tidy["parameter"].isna()].set_index("method")
    assert set(skipped.index) == set(NOT_FOR_SALAMANDER)
    assert skipped["note"].str.startswith("not applicable: ").all()
    assert skipped["estimate"].isna().all()
    # the Bayesian ones report posterior sds and intervals; the shared seed reached them
    for m in ("nuts", "gibbs"):
        assert rows.loc[rows["method"] == m, ["std_error", "lower", "upper"]].notna().all().all()
        assert cmp[m].info["options"]["random_seed"] == 1
    for m in fitted:  # the shared seed went where it is an option, and nowhere else
        assert ("random_seed" in cmp[m].info["options"]) == ("random_seed" in known_options(m))

    wide = cmp.table
    failed = [m for m in fitted if not cmp[m].converged]  # short runs: marked, not hidden
    marked = [f"{m} [not converged]" if m in failed else m for m in fitted]
    assert list(wide.columns) == marked and wide.index[-1] == "logLik"
    assert (rows["converged"] == rows["method"].map(lambda m: cmp[m].converged)).all()
    ref = cmp.wide()["Laplace (glmer)"]
    np.testing.assert_allclose(wide["laplace"], ref.loc[wide.index], atol=LAPLACE_TOL, rtol=0)
    assert set(cmp.overview.index) == set(bg.available_methods())

    path = tmp_path / "forest.png"
    fig = cmp.plot(path)
    legend = [t.get_text() for t in fig.legends[0].texts]
    plt.close(fig)
    assert legend == marked + ["Laplace (glmer)", "MCEM (Booth & Hobert 1999)", "MCEM (mcemGLM)"]
    _check_png(path, mpimg)


def _check_png(path, mpimg) -> None:
    """The file opens as an image of plausible size that is not blank."""
    img = mpimg.imread(path)
    height, width = img.shape[:2]
    assert width >= 600 and height >= 300, img.shape
    grey = img[..., :3].mean(axis=2)
    assert grey.std() > 0.05, "the image is (nearly) one colour"
    assert (grey < 0.5).mean() > 0.002, "almost nothing dark is drawn"


@pytest.mark.parametrize(
    ("methods", "kwargs", "error", "needle"),
    [
        (["laplace", "magic"], {}, MethodError, "unknown method 'magic'; available: agq"),
        (["laplace", ("nuts", {"draws": 0})], {}, OptionError, "draws must be a positive"),
        (
            ["pql", ("nuts", {"drawz": 10})],
            {},
            OptionError,
            "unknown option 'drawz' for method 'nuts' (did you mean 'draws'?)",
        ),
        (["laplace", ("laplace", {"max_iter": "x"})], {}, OptionError, "laplace: max_iter"),
        (["laplace", ("nuts", 3)], {}, MethodError, "methods[1] must be a method name"),
        ([], {}, MethodError, "methods must be 'all'"),
        (["laplace"], {"random_seed": -1}, OptionError, "random_seed must be an integer >= 0"),
        (["laplace"], {"progressbar": "yes"}, OptionError, "progressbar must be True or False"),
        ({"a": "laplace", "b": ("pql", {"reml": 1})}, {}, OptionError, "reml must be True"),
        (
            ["laplace"],
            {"references": {"R": {"Cross[XX]": 1.0}}},
            BayesGLMMError,
            "reference 'R' names 'Cross[XX]', not a parameter of the model",
        ),
    ],
)
def test_bad_methods_and_options_are_refused_before_anything_fits(
    model, monkeypatch, methods, kwargs, error, needle
):
    def no_fit(self, method="nuts", **options):
        raise AssertionError(f"{method} was fitted before the check")

    monkeypatch.setattr(GLMM, "fit", no_fit)
    with pytest.raises(error) as info:
        bg.compare(model, methods, **kwargs)
    message = str(info.value)
    assert needle in message and "\n" not in message, message


def test_a_method_that_does_not_apply_is_a_note_unless_asked_alone(model):
    cmp = bg.compare(model, ["laplace", "gee", ("pql", {"reml": False}), "pql"])
    assert list(cmp.fits) == ["laplace", "pql", "pql (2)"] and list(cmp.skipped) == ["gee"]
    assert cmp.order == ["laplace", "gee", "pql", "pql (2)"]
    assert cmp["pql"].info["options"]["reml"] is False
    assert cmp.tidy["method"].drop_duplicates().tolist() == cmp.order  # rows in asked order
    with pytest.raises(KeyError, match="one clustering factor"):
        cmp["gee"]
    assert "gee: not applicable: GEE needs one clustering factor" in repr(cmp)
    for alone in ("gee", ["gee"]):
        with pytest.raises(MethodError, match="GEE needs one clustering factor"):
            bg.compare(model, alone)


def test_dict_labels_references_and_the_fits_form_are_kept(model, salamander):
    cmp = bg.compare(
        model,
        {"Laplace": "laplace", "PQL (ML)": ("pql", {"reml": False})},
        references={"mine": {"Cross[RR]": 1.0, "var(Male)": 1.1}},
    )
    assert list(cmp.fits) == ["Laplace", "PQL (ML)"]
    wide = cmp.wide()
    assert wide.loc["Cross[RR]", "mine"] == 1.0 and np.isnan(wide.loc["Cross[RW]", "mine"])
    # the table of finished fits is today's compare, labels, order and marks included
    pd.testing.assert_frame_equal(cmp.table, bg.compare(cmp.fits))
    assert bg.compare([cmp["Laplace"], cmp["Laplace"]]).columns.tolist() == [
        "laplace",
        "laplace (2)",
    ]
    with pytest.raises(BayesGLMMError, match="methods= applies when comparing a model"):
        bg.compare(cmp.fits, methods=["laplace"])
    # references come with a model built from a spec on the spec's own data, else not
    assert spec_of(model) is not None
    assert list(bg.compare(model, ["laplace"]).references) == [
        "Laplace (glmer)",
        "MCEM (Booth & Hobert 1999)",
        "MCEM (mcemGLM)",
    ]
    assert not bg.compare(model, ["laplace"], references=False).references
    other = salamander.assign(Mate=1 - salamander["Mate"])
    flipped = load_spec("salamander").build(data=other)
    assert spec_of(flipped) is None and not bg.compare(flipped, ["laplace"]).references
    plain = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander)
    assert not bg.compare(plain, ["laplace"]).references
    assert list(bg.compare(plain, ["laplace"], references="salamander").references)


def test_marks_reach_the_tidy_notes_and_from_fits(cbpp):
    """GEE beside conditional fits is marked marginal, in the wide and the tidy table."""
    model = load_spec("cbpp").build(data=cbpp)
    cmp = bg.compare(model, ["laplace", "gee", "agq"])
    assert not cmp.skipped  # one grouping factor: GEE and quadrature apply
    assert "gee [marginal]" in cmp.table.columns
    notes = cmp.tidy.groupby("method")["note"].first()
    assert notes["gee"].startswith("marginal: ") and notes["laplace"] == ""
    again = Comparison.from_fits(cmp.fits, references="cbpp")
    pd.testing.assert_frame_equal(again.table, cmp.table)
    assert list(again.references) == ["Laplace (glmer)", "AGQ (glmer, nAGQ = 25)"]


def test_plan_puts_shared_options_only_where_they_belong():
    plan = plan_methods(["lmm", "nuts", "gee"], random_seed=3, progressbar=False)
    opts = {p.label: p.options for p in plan}
    for m, given in opts.items():  # each shared option where the method takes it, only there
        known = known_options(m)
        expect = {k: v for k, v in (("progressbar", False), ("random_seed", 3)) if k in known}
        assert given == expect, m
    assert opts["nuts"] == {"progressbar": False, "random_seed": 3} and opts["gee"] == {}
    assert [p.method for p in plan_methods("all")] == bg.available_methods()
