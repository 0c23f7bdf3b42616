"""Factors as R treats them: reference levels, level order, term order, factor responses.

The reference test fits ``MASS::bacteria`` (``tests/data/bacteria.csv``, provenance in
``tests/data/bacteria.README.md``) and compares with lme4's ``glmer`` and glmmTMB.
"""

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM
from bayesglmm.errors import DataError, FormulaError
from bayesglmm.model.factors import restore, rewrite

BACTERIA = Path(__file__).parent / "data" / "bacteria.csv"
BACTERIA_SHA256 = "6efd6734f76679c27c72719ad254da2b4954d687a7a48b61d7459f479bdb7ee1"
TRT = ["placebo", "drug", "drug+"]  # R's factor levels of MASS::bacteria$trt


@pytest.fixture
def frame():
    rng = np.random.default_rng(8)
    n = 120
    return pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "trt": rng.choice(TRT, n),
            "age": rng.normal(size=n),
            "ch": rng.normal(size=n),
            "urban": rng.choice(["rural", "urban"], n),
            "week": rng.integers(0, 12, n),
            "g": np.repeat(np.arange(12), 10),
        }
    )


def _design(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # factor-response messages
        return GLMM(formula, data, **kw).design


def _indicator(data, level):
    return (np.asarray(data["trt"]) == level).astype(float)


# --------------------------------------------------------------------------------------
# reference level and level order


def test_categorical_order_sets_the_reference(frame):
    strings = _design("y ~ trt + (1|g)", frame)
    assert strings.fixed_names == ["Intercept", "trt[drug+]", "trt[placebo]"]  # sorted: R
    for ordered in (False, True):
        cat = frame.assign(trt=pd.Categorical(frame.trt, TRT, ordered=ordered))
        d = _design("y ~ trt + (1|g)", cat)
        assert d.fixed_names == ["Intercept", "trt[drug]", "trt[drug+]"]
        np.testing.assert_array_equal(d.X[:, 1], _indicator(frame, "drug"))
        np.testing.assert_array_equal(d.X[:, 2], _indicator(frame, "drug+"))


def test_unused_categories_are_dropped(frame):
    cat = frame.assign(trt=pd.Categorical(frame.trt, ["none", *TRT]))  # 'none' never occurs
    cat[0] = pd.Categorical(frame.urban)  # an unused column with a non-string name
    assert _design("y ~ trt + (1|g)", cat).fixed_names == [
        "Intercept",
        "trt[drug]",
        "trt[drug+]",
    ]


def test_categorical_order_inside_interactions_and_random_slopes(frame):
    cat = frame.assign(trt=pd.Categorical(frame.trt, TRT))
    d = _design("y ~ trt*age + (1|g)", cat)
    assert d.fixed_names == [
        "Intercept",
        "trt[drug]",
        "trt[drug+]",
        "age",
        "trt[drug]:age",
        "trt[drug+]:age",
    ]
    np.testing.assert_allclose(d.X[:, 5], _indicator(frame, "drug+") * frame.age)
    # without the main effect every level gets a column, in level order (as in R)
    d = _design("y ~ age:trt + (1|g)", cat)
    assert d.fixed_names[1:] == ["age:trt[placebo]", "age:trt[drug]", "age:trt[drug+]"]
    d = _design("y ~ age + (trt|g)", cat)
    assert d.random[0].columns == ["Intercept", "trt[drug]", "trt[drug+]"]
    np.testing.assert_array_equal(d.random[0].X[:, 2], _indicator(frame, "drug+"))


@pytest.mark.parametrize(
    "term, prefix",
    [
        ('relevel(trt, "placebo")', 'relevel(trt, "placebo")'),
        ('C(trt, Treatment("placebo"))', 'C(trt, Treatment("placebo"))'),
        (
            "C(trt, levels=['placebo', 'drug', 'drug+'])",
            "C(trt, levels=['placebo', 'drug', 'drug+'])",
        ),
        (
            "factor(trt, levels=c('placebo', 'drug', 'drug+'))",
            "factor(trt, levels=c('placebo', 'drug', 'drug+'))",
        ),
    ],
)
def test_reference_named_in_the_formula(frame, term, prefix):
    d = _design(f"y ~ {term} + (1|g)", frame)
    assert d.fixed_names == ["Intercept", f"{prefix}[drug]", f"{prefix}[drug+]"]
    assert list(d.fixed_terms) == ["Intercept", prefix]
    np.testing.assert_array_equal(d.X[:, 1], _indicator(frame, "drug"))
    np.testing.assert_array_equal(d.X[:, 2], _indicator(frame, "drug+"))


def test_C_keeps_the_categorical_order_and_takes_explicit_levels(frame):
    cat = frame.assign(trt=pd.Categorical(frame.trt, TRT))
    assert _design("y ~ C(trt) + (1|g)", cat).fixed_names[1:] == ["C(trt)[drug]", "C(trt)[drug+]"]
    assert _design("y ~ C(trt) + (1|g)", frame).fixed_names[1:] == [
        "C(trt)[drug+]",
        "C(trt)[placebo]",
    ]
    d = _design("y ~ C(trt, levels=['drug+', 'drug', 'placebo']):age + (1|g)", cat)
    assert d.fixed_names[1].startswith("C(trt, levels=['drug+', 'drug', 'placebo'])[drug+]")
    assert _design("y ~ relevel(trt, 'drug+') + (1|g)", cat).fixed_names[1:] == [
        "relevel(trt, 'drug+')[placebo]",
        "relevel(trt, 'drug+')[drug]",
    ]


def test_unknown_reference_level_is_named(frame):
    with pytest.raises(FormulaError, match=r"reference level 'plcebo' is not a level.*placebo"):
        GLMM('y ~ relevel(trt, "plcebo") + (1|g)', frame)
    with pytest.raises(FormulaError, match=r"values \['placebo'\].*not among levels"):
        GLMM("y ~ factor(trt, levels=c('drug', 'drug+')) + (1|g)", frame)


def test_grouping_factor_levels_follow_R(frame):
    labels = [f"s{i}" for i in (5, 3, 1, 0, 2, 4, 6, 7, 8, 9, 10, 11)]
    cat = frame.assign(g=pd.Categorical("s" + frame.g.astype(str), labels))
    assert _design("y ~ age + (1|g)", cat).random[0].levels == labels  # category order
    strings = frame.assign(g="s" + frame.g.astype(str))
    assert _design("y ~ age + (1|g)", strings).random[0].levels[:4] == ["s0", "s1", "s10", "s11"]
    assert _design("y ~ age + (1|g)", frame).random[0].levels[:4] == ["0", "1", "2", "3"]
    # a:b as R's interaction factor: lexicographic in the levels of a, then of b
    two = cat.assign(h=pd.Categorical(np.tile(["z", "a"], 60), ["z", "a"]))
    t = _design("y ~ age + (1|g:h)", two).random[0]
    assert t.levels[:3] == ["s5:z", "s5:a", "s3:z"]
    assert t.levels[t.index[0]] == f"{two.g[0]}:{two.h[0]}"


# --------------------------------------------------------------------------------------
# R's column order and boolean transforms


def test_columns_in_R_term_order(frame):
    """R: colnames(model.matrix(~ age*ch + I(age^2) + urban, d)) is
    (Intercept) age ch I(age^2) urbanurban age:ch."""
    d = _design("y ~ age*ch + I(age^2) + urban + (1|g)", frame)
    assert d.fixed_names == ["Intercept", "age", "ch", "I(age ** 2)", "urban[urban]", "age:ch"]
    assert list(d.fixed_terms) == ["Intercept", "age", "ch", "I(age ** 2)", "urban", "age:ch"]
    np.testing.assert_allclose(d.X[:, 3], frame.age**2)
    np.testing.assert_allclose(d.X[:, 4], (frame.urban == "urban").astype(float))
    np.testing.assert_allclose(d.X[:, 5], frame.age * frame.ch)
    for term, sl in d.fixed_terms.items():
        assert all(n.startswith(term) or term == "Intercept" for n in d.fixed_names[sl])
    d = _design("y ~ age:ch:trt + urban:age + age + (1|g)", frame)
    assert [n.count(":") for n in d.fixed_names] == [0, 0, 1, 2, 2, 2]


def test_boolean_transform_is_an_indicator(frame):
    d = _design("y ~ I(week > 2) + (1|g)", frame)
    assert d.fixed_names == ["Intercept", "I(week > 2)"]
    np.testing.assert_array_equal(d.X[:, 1], (frame.week > 2).astype(float))


def test_R_power_outside_a_call_is_refused(frame):
    with pytest.raises(FormulaError, match=r"\(a \+ b\)\^2 .* not supported; write a\*b"):
        GLMM("y ~ (age + ch)^2 + (1|g)", frame)


def test_rewrite_round_trip():
    text = "C(trt, levels=['a', 'b]']):x + I(x^2) + C(C(h), Sum) + 'C(' + log(x)"
    out = rewrite(text)
    assert "[" not in out.replace("'b]'", "") and "x**2" in out
    assert "bgcat_(trt)" in out and "bgcat_(C(bgcat_(h)))" in out
    assert (
        restore("C(bgcat_(trt), levels=bglist_('a', 'b]'))[a]:x")
        == "C(trt, levels=['a', 'b]'])[a]:x"
    )


# --------------------------------------------------------------------------------------
# factor responses


def test_string_categorical_and_bool_responses(frame):
    yes = frame.assign(ans=np.where(frame.y == 1, "yes", "no"))
    with pytest.warns(
        UserWarning, match=r"'ans' has levels 'no' and 'yes': 'yes' counts as success"
    ):
        d = GLMM("ans ~ age + (1|g)", yes).design
    assert d.response_levels == {"failure": "no", "success": "yes"}
    np.testing.assert_array_equal(d.y, frame.y)
    flipped = yes.assign(ans=pd.Categorical(yes.ans, ["yes", "no"]))
    with pytest.warns(UserWarning, match=r"'no' counts as success"):
        d = GLMM("ans ~ age + (1|g)", flipped).design
    assert d.response_levels == {"failure": "yes", "success": "no"}
    np.testing.assert_array_equal(d.y, 1 - frame.y)
    unused = yes.assign(ans=pd.Categorical(yes.ans, ["maybe", "no", "yes"]))
    assert _design("ans ~ age + (1|g)", unused).response_levels["failure"] == "no"
    with pytest.warns(UserWarning, match=r"'b' has levels False and True: True counts"):
        d = GLMM("b ~ age + (1|g)", frame.assign(b=frame.y == 1)).design
    assert d.response_levels == {"failure": False, "success": True}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 0/1 response needs no message
        assert GLMM("y ~ age + (1|g)", frame).design.response_levels is None
    with pytest.raises(DataError, match=r"'trt' has 3 distinct values"):
        GLMM("trt ~ age + (1|g)", frame)


# --------------------------------------------------------------------------------------
# reference: MASS::bacteria against glmer and glmmTMB

# R 4.2.2, lme4 1.1.31:
#   glmer(y ~ trt + I(week > 2) + (1 | ID), family = binomial, data = bacteria)
GLMER = {
    "Intercept": 3.54794111719,
    "drug": -1.36665198009,
    "drug+": -0.78264125550,
    "I(week > 2)": -1.59848971499,
    "var(ID)": 1.5433741545,
    "loglik": -96.1307213641,
}
# glmmTMB 1.1.5 (TMB 1.9.2): glmmTMB(y ~ trt + I(week > 2) + (1 | ID), binomial, bacteria)
GLMMTMB = {
    "Intercept": 3.548093109015,
    "drug": -1.366729413903,
    "drug+": -0.782711704646,
    "I(week > 2)": -1.598532880907,
    "var(ID)": 1.54359382103,
    "loglik": -96.1306868179,
}
# glmer's deviance is a slightly different Laplace approximation from glmmTMB's: at
# glmmTMB's optimum glmer's own devfun gives logLik -96.1307213959, below its optimum
# -96.1307213641, and glmer's estimates sit up to 7.5e-5 (slopes) and 1.5e-4 (intercept)
# from glmmTMB's. Against glmer: 1e-4 on the treatment effects (its objective's offset
# plus bobyqa's default tolerance: rhoend = 1e-10 moves drug+ by 1e-5).
GLMER_TOL = 1e-4
# Against glmmTMB (the same objective as bayesglmm's Laplace): both optimizers' tolerance.
TMB_TOL = 1e-5
TMB_LOGLIK_TOL = 1e-6


@pytest.fixture(scope="module")
def bacteria():
    raw = BACTERIA.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == BACTERIA_SHA256, "tests/data/bacteria.csv changed"
    data = pd.read_csv(BACTERIA, dtype={"y": object, "trt": object, "ID": object})
    assert data.shape == (220, 6) and set(data.trt) == set(TRT)
    return data


def _laplace(formula, data):
    with pytest.warns(UserWarning, match=r"'y' has levels 'n' and 'y': 'y' counts as success"):
        model = GLMM(formula, data, family="binomial")
    assert model.design.response_levels == {"failure": "n", "success": "y"}
    return model.fit(method="laplace")


@pytest.mark.reference
@pytest.mark.parametrize(
    "formula, categorical",
    [
        ("y ~ trt + I(week > 2) + (1 | ID)", True),
        ('y ~ relevel(trt, "placebo") + I(week > 2) + (1 | ID)', False),
    ],
)
def test_bacteria_matches_glmer_with_placebo_as_reference(bacteria, formula, categorical):
    """R 4.2.2, lme4 1.1.31, MASS 7.3.58.2 (glmmTMB 1.1.5 for the exact Laplace optimum):

    fit <- glmer(y ~ trt + I(week > 2) + (1 | ID), family = binomial, data = bacteria)
    fixef(fit)   # 3.54794111719 -1.36665198009 -0.78264125550 -1.59848971499
    VarCorr(fit) # ID (Intercept) variance 1.5433741545; logLik(fit) -96.1307213641
    (the same with relevel(trt, "placebo") on the CSV read back with strings)
    """
    data = bacteria.assign(trt=pd.Categorical(bacteria.trt, TRT)) if categorical else bacteria
    fit = _laplace(formula, data)
    trt = "trt" if categorical else 'relevel(trt, "placebo")'
    names = ["Intercept", f"{trt}[drug]", f"{trt}[drug+]", "I(week > 2)"]
    assert list(fit.fixed_effects.index) == names
    assert fit.info["response"]["levels"] == {"failure": "n", "success": "y"}
    for level in ("drug", "drug+"):
        got = fit.fixed_effects[f"{trt}[{level}]"]
        assert got == pytest.approx(GLMER[level], abs=GLMER_TOL)
        assert got == pytest.approx(GLMMTMB[level], abs=TMB_TOL)
    np.testing.assert_allclose(
        fit.fixed_effects.to_numpy(),
        [GLMMTMB[k] for k in ("Intercept", "drug", "drug+", "I(week > 2)")],
        atol=TMB_TOL,
    )
    assert fit.variance_components["ID"] == pytest.approx(GLMMTMB["var(ID)"], abs=TMB_TOL)
    assert fit.variance_components["ID"] == pytest.approx(GLMER["var(ID)"], abs=1e-3)
    assert fit.loglik == pytest.approx(GLMMTMB["loglik"], abs=TMB_LOGLIK_TOL)
    assert fit.loglik >= GLMER["loglik"]  # glmer's approximation sits 3.5e-5 below


@pytest.mark.reference
def test_bacteria_with_string_levels_is_the_same_fit_reparametrized(bacteria):
    """Strings sort as R sorts them (drug < drug+ < placebo): drug is the reference, and the
    effects are glmmTMB's differences: placebo = -drug, drug+ = drug+ - drug."""
    fit = _laplace("y ~ trt + I(week > 2) + (1 | ID)", bacteria)
    assert list(fit.fixed_effects.index)[1:3] == ["trt[drug+]", "trt[placebo]"]
    assert fit.fixed_effects["trt[placebo]"] == pytest.approx(-GLMMTMB["drug"], abs=TMB_TOL)
    assert fit.fixed_effects["trt[drug+]"] == pytest.approx(
        GLMMTMB["drug+"] - GLMMTMB["drug"], abs=2 * TMB_TOL
    )
    assert fit.loglik == pytest.approx(GLMMTMB["loglik"], abs=TMB_LOGLIK_TOL)
