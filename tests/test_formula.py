import pytest

from bayesglmm.errors import FormulaError
from bayesglmm.model.formula import parse_formula


def test_crossed_intercepts():
    s = parse_formula("Mate ~ 0 + Cross + (1|Female) + (1|Male)")
    assert s.fixed == "0 + Cross"
    assert [(t.expr, t.group) for t in s.random] == [("1", "Female"), ("1", "Male")]
    assert s.response.kind == "column" and s.response.expr == "Mate"


def test_cbind_response_and_offset():
    s = parse_formula("cbind(incidence, size - incidence) ~ period + offset(log(size)) + (1|herd)")
    assert s.response.kind == "cbind"
    assert (s.response.expr, s.response.failures_expr) == ("incidence", "size - incidence")
    assert s.offsets == ("log(size)",)
    assert s.fixed == "period"


def test_nested_expands_like_lme4():
    s = parse_formula("y ~ x + (1|a/b/c)")
    assert [t.group for t in s.random] == ["a", "a:b", "a:b:c"]


def test_double_bar_is_uncorrelated_pieces():
    s = parse_formula("y ~ x + (1 + x || g)")
    assert [(t.expr, t.correlated) for t in s.random] == [("1", False), ("0 + x", False)]
    s = parse_formula("y ~ (0 + x || g)")
    assert [t.expr for t in s.random] == ["0 + x"]


def test_no_intercept_forms_kept_for_fixed_part():
    assert parse_formula("y ~ x - 1").fixed == "x - 1"
    assert parse_formula("y ~ (x|g)").fixed == "1"


def test_factor_calls_and_quoted_levels_pass_through():
    s = parse_formula('y ~ relevel(trt, "a|b") + C(f, levels=["x-y", "z+"]) + I(x^2) + (1|g)')
    assert s.fixed == 'relevel(trt, "a|b") + C(f, levels=["x-y", "z+"]) + I(x^2)'
    assert [t.group for t in s.random] == ["g"]
    s = parse_formula("y ~ x + (relevel(trt, 'p-1') | g)")
    assert s.fixed == "x" and s.random[0].expr == "relevel(trt, 'p-1')"


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("y ~ x | g", "outside a parenthesised"),
        ("y ~ (1|)", "no grouping factor"),
        ("y ~ x + (1|g", "unbalanced"),
        ("~ x", "no response"),
        ("y ~ x ~ z", "exactly one '~'"),
        ("cbind(a) ~ x", "two arguments"),
        ("y ~ (1|g) + (1|g)", "appears twice"),
        ("y ~ (1|g+h)", "not a column name"),
        ("y ~ x + - (1|g)", "empty term"),
        ("", "non-empty"),
    ],
)
def test_malformed_formulas(bad, fragment):
    with pytest.raises(FormulaError, match=fragment):
        parse_formula(bad)
