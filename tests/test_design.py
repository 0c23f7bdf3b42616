"""Design building: columns, Z blocks, levels, and a clear error for every kind of bad input."""

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM
from bayesglmm.errors import DataError, FamilyError, FormulaError


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "count": rng.poisson(3, n),
            "s": rng.integers(0, 5, n),
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "f": rng.choice(["lo", "mid", "hi"], n),
            "g": np.repeat(np.arange(6), 10),
            "h": np.tile(np.arange(10), 6),
            "t": rng.uniform(1, 3, n),
        }
    ).assign(n=lambda d: d.s + 3)


def test_salamander_design(salamander):
    d = GLMM("Mate ~ 0 + Cross + (1|Female) + (1|Male)", salamander).design
    assert d.fixed_names == ["Cross[RR]", "Cross[RW]", "Cross[WR]", "Cross[WW]"]
    assert d.X.shape == (360, 4) and d.Z.shape == (360, 120)
    assert d.component_names == ["Female", "Male"]
    assert d.fixed_coords("Cross") == ["RR", "RW", "WR", "WW"]
    # integer ids are grouping levels, named as strings in numeric order
    assert d.random[0].levels[:3] == ["1", "2", "3"] and d.random[0].n_levels == 60
    assert d.is_bernoulli and np.all(d.trials == 1)
    # each row hits exactly one Female and one Male column
    assert np.all(np.asarray(d.Z.sum(axis=1)).ravel() == 2)


def test_cbind_and_intercept_forms(cbpp):
    d = GLMM("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp).design
    assert d.fixed_names == ["Intercept", "period[2]", "period[3]", "period[4]"]
    np.testing.assert_array_equal(d.trials, cbpp["size"].to_numpy())
    np.testing.assert_array_equal(d.y, cbpp["incidence"].to_numpy())
    d0 = GLMM("cbind(incidence, size - incidence) ~ period - 1 + (1|herd)", cbpp).design
    assert "Intercept" not in d0.fixed_names and len(d0.fixed_names) == 4


def test_interactions_transforms_and_offset(frame):
    m = GLMM(
        "count ~ x*f + log(t) + I(x**2) + C(h) + offset(log(t)) + (1|g)", frame, family="poisson"
    )
    names = m.design.fixed_names
    # R's order: main effects in formula order, then the interaction; f's levels sorted
    assert names[:6] == ["Intercept", "x", "f[lo]", "f[mid]", "log(t)", "I(x ** 2)"]
    assert names[-2:] == ["x:f[lo]", "x:f[mid]"]
    assert list(m.design.fixed_terms) == [
        "Intercept",
        "x",
        "f",
        "log(t)",
        "I(x ** 2)",
        "C(h)",
        "x:f",
    ]
    for term, sl in m.design.fixed_terms.items():
        assert all(term == "Intercept" or n.startswith(term) for n in names[sl])
    np.testing.assert_allclose(m.design.offset, np.log(frame.t))


def test_random_slopes_nested_and_uncorrelated(frame):
    d = GLMM("y ~ x + (x|g) + (1|g:h)", frame).design
    t = d.random[0]
    assert t.columns == ["Intercept", "x"] and t.correlated
    assert t.Z.shape == (60, 12)
    # level-major layout: column 2*level + j
    row = 13
    lvl = t.index[row]
    assert t.Z[row, 2 * lvl] == 1.0 and t.Z[row, 2 * lvl + 1] == pytest.approx(frame.x[row])
    assert d.random[1].group == "g:h" and d.random[1].n_levels == 60
    du = GLMM("y ~ x + (x||g)", frame).design
    assert [t.component_names for t in du.random] == [["g"], ["g|x"]]
    assert not any(t.correlated for t in du.random)
    dn = GLMM("y ~ x + (1|g/h)", frame).design
    assert [t.group for t in dn.random] == ["g", "g:h"]


def test_families_and_links(frame):
    assert GLMM("y ~ x + (1|g)", frame, link="probit").family.link.name == "probit"
    assert GLMM("count ~ x + (1|g)", frame, family="poisson").family.link.name == "log"
    assert GLMM("x ~ z + (1|g)", frame, family="gaussian").family.link.name == "identity"
    nb = GLMM("count ~ x + (1|g)", frame, family="negative_binomial")
    assert nb.family.has_dispersion and nb.family.link.name == "log"
    assert GLMM("y ~ x + (1|g)", frame, link="cloglog").family.link.name == "cloglog"


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "formula, kwargs, error, fragment",
    [
        ("y ~ nosuch + (1|g)", {}, FormulaError, "unknown column 'nosuch'"),
        ("y ~ x + (1|nosuch)", {}, FormulaError, "unknown column 'nosuch'"),
        ("Y ~ x + (1|g)", {}, FormulaError, "did you mean 'y'"),
        ("y ~ x + (1|g)", {"family": "gamma"}, FamilyError, "unknown family"),
        ("y ~ x + (1|g)", {"link": "sqrt"}, FamilyError, "unknown link"),
        ("count ~ x + (1|g)", {"family": "poisson", "link": "logit"}, FamilyError, "does not take"),
        ("count ~ x + (1|g)", {}, DataError, "not 0 or 1"),
        ("cbind(s, s - n) ~ x + (1|g)", {}, DataError, "negative"),
        ("y ~ x + (1|g", {}, FormulaError, "unbalanced"),
        ("y ~ x | g", {}, FormulaError, "parenthesised"),
    ],
)
def test_bad_input_is_named(frame, formula, kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        GLMM(formula, frame, **kwargs)


def test_response_outside_support(frame):
    bad = frame.assign(y=frame.y.where(frame.index != 7, 2))
    with pytest.raises(DataError, match=r"not 0 or 1.*rows 7;"):
        GLMM("y ~ x + (1|g)", bad)
    neg = frame.assign(count=frame["count"].where(frame.index != 3, -1))
    with pytest.raises(DataError, match="negative"):
        GLMM("count ~ x + (1|g)", neg, family="poisson")
    over = frame.assign(s=frame.s.where(frame.index != 5, 99))
    with pytest.raises(DataError, match="more successes than trials"):
        GLMM("cbind(s, n - s) ~ x + (1|g)", over.assign(n=frame.n))


def test_missing_values_reported_and_dropped_on_request(frame):
    bad = frame.copy()
    bad.loc[[4, 9], "x"] = np.nan
    bad.loc[11, "g"] = np.nan
    with pytest.raises(DataError, match=r"3 row\(s\).*'x': 2 \(rows 4, 9\).*'g': 1 \(rows 11\)"):
        GLMM("y ~ x + (1|g)", bad)
    with pytest.warns(UserWarning, match="dropped 3 row"):
        m = GLMM("y ~ x + (1|g)", bad, dropna=True)
    assert m.design.n == 57 and m.design.dropped_rows == [4, 9, 11]
    # a column the model does not use may have missing values
    GLMM("y ~ x + (1|g)", frame.assign(unused=np.nan))


def test_degenerate_designs(frame):
    with pytest.raises(DataError, match="only one level"):
        GLMM("y ~ x + (1|one)", frame.assign(one=1))
    with pytest.raises(DataError, match="'c' is constant"):
        GLMM("y ~ x + c + (1|g)", frame.assign(c=2.0))
    with pytest.raises(DataError, match=r"rank deficient.*'x2'|rank deficient.*'x'"):
        GLMM("y ~ x + x2 + (1|g)", frame.assign(x2=2 * frame.x))
    with pytest.raises(DataError, match="rank deficient"):
        GLMM(
            "y ~ f + lo + (1|g)",
            frame.assign(
                lo=(frame.f == "lo").astype(float),
            ),
        )
    with pytest.raises(DataError, match="cannot separate it from the residual"):
        GLMM("x ~ z + (1|row)", frame.assign(row=np.arange(60)), family="gaussian")


def test_binary_response_forms(frame):
    yes = frame.assign(ans=np.where(frame.y == 1, "yes", "no"))
    with pytest.warns(UserWarning, match="'yes' counts as success"):
        d = GLMM("ans ~ x + (1|g)", yes).design
    np.testing.assert_array_equal(d.y, (yes.ans == "yes").astype(float))  # 'no' < 'yes'
    assert d.response_levels == {"failure": "no", "success": "yes"}
    with pytest.raises(DataError, match="3 distinct values"):
        GLMM("f ~ x + (1|g)", frame)
    with pytest.warns(UserWarning, match="True counts as success"):
        d = GLMM("b ~ x + (1|g)", frame.assign(b=frame.y.astype(bool))).design
    np.testing.assert_array_equal(d.y, frame.y)
    assert GLMM("y ~ x + (1|g)", frame).design.response_levels is None


def test_data_must_be_a_frame():
    with pytest.raises(DataError, match="pandas DataFrame"):
        GLMM("y ~ x + (1|g)", {"y": [1, 0]})


def test_model_without_fixed_effects(frame):
    d = GLMM("y ~ 0 + (1|g)", frame).design
    assert d.X.shape == (60, 0) and d.fixed_names == [] and d.fixed_terms == {}
