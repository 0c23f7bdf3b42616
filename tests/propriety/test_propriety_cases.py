"""Cases with known verdicts: the literature and the tail argument against check_propriety.

Each case names its source. Notation: p(sigma^2) ∝ (sigma^2)^-(a+1) (Hobert & Casella 1996);
Jeffreys is a = 0, a uniform prior on the sd (HalfFlat) is a = -1/2. For the one-way
Gaussian model y_ij = mu + u_i + e_ij with q groups and a flat prior on mu,
t = rank(P_X' Z) = q - 1, and Hobert & Casella's (1996, Theorem 1) conditions read
(a) a < 0, (b) q > q - t - 2a, i.e. q - 1 + 2a > 0, (c) n + 2a + 2b - 1 > 0, necessary and
sufficient since r = 1 (the same conditions as Tan & Hobert 2009 state for this model).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, check_propriety
from bayesglmm import priors as P


def one_way_gaussian(q: int, per: int, seed: int, effect: float = 2.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(q), per)
    y = 1.0 + effect * rng.normal(size=q)[g] + rng.normal(size=q * per)
    return pd.DataFrame({"y": y, "g": g})


def binary_groups(groups: list[tuple[int, int]]) -> pd.DataFrame:
    """Rows (group, y) with the given (successes, failures) per group."""
    rows = []
    for g, (s, f) in enumerate(groups):
        rows += [(g, 1)] * s + [(g, 0)] * f
    return pd.DataFrame(rows, columns=["g", "y"])


SEPARATED = pd.DataFrame({"y": [0, 0, 0, 1, 1, 1], "x": [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0]})
QUASI = pd.DataFrame({"y": [0, 0, 1, 0, 1, 1], "x": [-2.0, -1.0, 0.0, 0.0, 1.0, 2.0]})
OVERLAP = pd.DataFrame({"y": [0, 1, 0, 1, 1, 0], "x": [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0]})
FLAT_BOTH = {"Intercept": P.Flat(), "x": P.Flat()}


def _gaussian(q, per, priors, seed=1):
    return GLMM("y ~ 1 + (1|g)", one_way_gaussian(q, per, seed), family="gaussian", priors=priors)


CASES = [
    (
        "one-way LMM, 1/sigma^2 on both variances",
        lambda: _gaussian(6, 4, {"Intercept": P.Flat(), "g": P.Jeffreys(), "sigma": P.Jeffreys()}),
        False,
        "Hobert & Casella (1996), Theorem 1, condition (a) fails: a = 0",
    ),
    (
        "one-way LMM, uniform on sd, 1/sigma^2 residual, 6 groups",
        lambda: _gaussian(6, 4, {"Intercept": P.Flat(), "g": P.HalfFlat(), "sigma": P.Jeffreys()}),
        True,
        "Hobert & Casella (1996), Theorem 1: a = -1/2, q - 1 + 2a = 4 > 0, (c) 22 > 0",
    ),
    (
        "one-way LMM, uniform on sd, only 2 groups",
        lambda: _gaussian(2, 5, {"Intercept": P.Flat(), "g": P.HalfFlat(), "sigma": P.Jeffreys()}),
        False,
        "Hobert & Casella (1996), Theorem 1 (b): q - 1 + 2a = 0; Gelman (2006): a uniform "
        "prior on the group sd needs at least 3 groups",
    ),
    (
        "one-way LMM, uniform on the variance (a = -1), 3 groups",
        lambda: _gaussian(
            3, 4, {"Intercept": P.Flat(), "g": P.PowerVariance(-1.0), "sigma": P.Jeffreys()}
        ),
        False,
        "Hobert & Casella (1996), Theorem 1 (b): q - 1 + 2a = 0",
    ),
    (
        "one-way LMM, uniform on the variance (a = -1), 4 groups",
        lambda: _gaussian(
            4, 4, {"Intercept": P.Flat(), "g": P.PowerVariance(-1.0), "sigma": P.Jeffreys()}
        ),
        True,
        "Hobert & Casella (1996), Theorem 1: q - 1 + 2a = 1 > 0, n + 2a + 2b - 1 = 13 > 0",
    ),
    (
        "one-way LMM, a = b = -1, n = 5: condition (c) fails",
        lambda: GLMM(
            "y ~ 1 + (1|g)",
            pd.DataFrame({"y": [0.3, 1.9, 4.2, 6.0, 6.8], "g": [0, 1, 2, 3, 3]}),
            family="gaussian",
            priors={
                "Intercept": P.Flat(),
                "g": P.PowerVariance(-1.0),
                "sigma": P.PowerVariance(-1.0),
            },
        ),
        False,
        "Hobert & Casella (1996), Theorem 1 (c): n + 2a + 2b - p = 5 - 2 - 2 - 1 = 0",
    ),
    (
        "flat logistic regression, completely separated data",
        lambda: GLMM("y ~ x", SEPARATED, priors=FLAT_BOTH),
        False,
        "Albert & Anderson (1984); Chen & Shao (2001): separation makes the flat-prior "
        "posterior improper",
    ),
    (
        "flat logistic regression, quasi-completely separated data",
        lambda: GLMM("y ~ x", QUASI, priors=FLAT_BOTH),
        False,
        "Albert & Anderson (1984); Chen & Shao (2001)",
    ),
    (
        "flat logistic regression, overlapping data",
        lambda: GLMM("y ~ x", OVERLAP, priors=FLAT_BOTH),
        True,
        "Chen & Shao (2001): no separation and X of full rank",
    ),
    (
        "flat binomial regression, cbind rows with 0 < y < n undo the separation",
        lambda: GLMM(
            "cbind(s, f) ~ x",
            pd.DataFrame(
                {"s": [0, 0, 1, 2, 3], "f": [3, 3, 2, 1, 0], "x": [-2.0, -1.0, 0.0, 1.0, 2.0]}
            ),
            priors=FLAT_BOTH,
        ),
        True,
        "Chen & Shao (2001) with each binomial row split into binary rows: the rows at x = 0 "
        "and x = 1 are successes and failures, so no line can move them",
    ),
    (
        "flat binomial regression, one mixed cbind row cannot stop quasi-separation",
        lambda: GLMM(
            "cbind(s, f) ~ x",
            pd.DataFrame(
                {"s": [0, 0, 1, 3, 3], "f": [3, 3, 2, 0, 0], "x": [-2.0, -1.0, 0.0, 1.0, 2.0]}
            ),
            priors=FLAT_BOTH,
        ),
        False,
        "Albert & Anderson (1984): quasi-complete separation by the line through x = 0",
    ),
    (
        "flat Poisson regression, a zero-count level with its own coefficient",
        lambda: GLMM(
            "y ~ 0 + C(k)",
            pd.DataFrame({"y": [0, 0, 0, 2, 5, 1, 3, 0], "k": list("aaabbbcc")}),
            family="poisson",
            priors={"C(k)": P.Flat()},
        ),
        False,
        "zero-count condition (bayesglmm.propriety.fixed): e^{-mu} -> 1 as beta_a -> -inf",
    ),
    (
        "flat Poisson regression, every level has a positive count",
        lambda: GLMM(
            "y ~ 0 + C(k)",
            pd.DataFrame({"y": [0, 1, 0, 2, 5, 1, 3, 0], "k": list("aaabbbcc")}),
            family="poisson",
            priors={"C(k)": P.Flat()},
        ),
        True,
        "zero-count condition (bayesglmm.propriety.fixed)",
    ),
    (
        "binomial random intercept, uniform on sd, one group with mixed responses",
        lambda: GLMM(
            "y ~ 1 + (1|g)",
            binary_groups([(2, 2), (3, 0), (0, 3), (2, 0)]),
            priors={"g": P.HalfFlat()},
        ),
        False,
        "tail argument: L ~ sigma^-m with m = 1, prior sigma^0: m + 2a = 0",
    ),
    (
        "binomial random intercept, uniform on sd, several groups with mixed responses",
        lambda: GLMM(
            "y ~ 1 + (1|g)",
            binary_groups([(2, 2), (1, 3), (2, 1), (3, 0)]),
            priors={"g": P.HalfFlat()},
        ),
        True,
        "tail argument: m = 3 groups with mixed responses, m + 2a = 2 > 0",
    ),
    (
        "binomial random intercept, 1/sigma^2 prior",
        lambda: GLMM(
            "y ~ 1 + (1|g)",
            binary_groups([(2, 2), (1, 3), (2, 1), (3, 0)]),
            priors={"g": P.Jeffreys()},
        ),
        False,
        "Natarajan & Kass (2000); Natarajan & McCulloch (1995): the likelihood is bounded "
        "away from zero as sigma^2 -> 0",
    ),
    (
        "Poisson random intercept, 1/sigma^2 prior",
        lambda: GLMM(
            "y ~ 1 + (1|g)",
            pd.DataFrame({"y": [0, 3, 1, 4, 2, 0, 5, 1], "g": [0, 0, 1, 1, 2, 2, 3, 3]}),
            family="poisson",
            priors={"g": P.Jeffreys()},
        ),
        False,
        "Natarajan & Kass (2000): the likelihood is bounded away from zero as sigma^2 -> 0",
    ),
    (
        "flat intercept, half-Cauchy sd, every group all-success or all-failure",
        lambda: GLMM(
            "y ~ 1 + (1|g)",
            binary_groups([(2, 0), (0, 2), (3, 0)]),
            priors={"Intercept": P.Flat(), "g": P.HalfCauchy(1.0)},
        ),
        False,
        "tail argument: the integral over the flat intercept grows like sigma while the "
        "half-Cauchy density decays like sigma^-2",
    ),
    (
        "binomial random intercept, uniform on sd, no group with mixed responses",
        lambda: GLMM(
            "y ~ 1 + (1|g)",
            binary_groups([(2, 0), (0, 2), (3, 0)]),
            priors={"g": P.HalfFlat()},
        ),
        False,
        "tail argument: every group all-success or all-failure, the likelihood "
        "tends to a positive constant as sigma -> inf (m = 0), prior sigma^0: m + 2a = -1",
    ),
    (
        "one-way LMM, uniform on sd, 3 groups",
        lambda: _gaussian(3, 5, {"Intercept": P.Flat(), "g": P.HalfFlat(), "sigma": P.Jeffreys()}),
        True,
        "Hobert & Casella (1996), Theorem 1: a = -1/2, q - 1 + 2a = 1 > 0, (c) n - 2 = 13 > 0; "
        "Gelman (2006): 3 groups are enough for a uniform prior on the group sd",
    ),
]


@pytest.mark.reference
@pytest.mark.parametrize("name, build, expected, source", CASES, ids=[c[0] for c in CASES])
def test_known_verdicts(name, build, expected, source):
    report = check_propriety(build())
    assert report.proper is expected, f"{name} ({source}):\n{report}"
    if expected is False:
        failed = [
            e
            for e in report.entries
            if e.met is False and e.kind in ("necessary", "necessary and sufficient")
        ]
        assert failed, report
        assert "fails" in report.reason
    json.dumps(report.to_dict())


def test_table_covers_both_verdicts_and_enough_cases():
    verdicts = [c[2] for c in CASES]
    assert len(CASES) >= 10 and verdicts.count(True) >= 5 and verdicts.count(False) >= 5


def test_every_case_runs_the_real_checks():
    """Every case has an improper prior, so check_propriety cannot take its shortcut for
    all-proper priors (which returns "proper" without looking at the data)."""
    for name, build, _, _ in CASES:
        model = build()
        assert model.priors.improper, name
        assert check_propriety(model).reason != "all priors are proper", name


def test_proper_priors_take_the_shortcut_and_one_improper_prior_does_not():
    """The shortcut itself: all-proper priors are proper whatever the data (the marginal
    density of the data is finite), even data that separate; one Flat prior on the same
    data sends the model through the separation check, which finds it improper."""
    proper = check_propriety(GLMM("y ~ x", SEPARATED))
    assert proper.proper is True and [e.condition for e in proper.entries] == [
        "every prior is proper"
    ]
    improper = check_propriety(GLMM("y ~ x", SEPARATED, priors={"x": P.Flat()}))
    assert improper.proper is False and improper.separation["kind"] == "complete"


def test_separating_direction_is_named():
    report = check_propriety(GLMM("y ~ x", SEPARATED, priors=FLAT_BOTH))
    sep = report.separation
    assert sep["kind"] == "complete"
    assert set(sep["direction"]) <= {"Intercept", "x"} and sep["direction"].get("x", 0) > 0
    quasi = check_propriety(GLMM("y ~ x", QUASI, priors=FLAT_BOTH)).separation
    assert quasi["kind"] == "quasi-complete"
    # the two rows at x = 0 (one success, one failure) cannot move
    assert 2 not in quasi["rows"] and 3 not in quasi["rows"]
    assert quasi["direction"] == {"x": 1.0}


def test_hobert_casella_conditions_are_quoted_for_the_one_way_model():
    report = check_propriety(
        _gaussian(6, 4, {"Intercept": P.Flat(), "g": P.HalfFlat(), "sigma": P.Jeffreys()})
    )
    frame = report.to_frame()
    hc = frame[frame["condition"].str.startswith("Hobert-Casella")]
    assert len(hc) == 2 and hc["met"].all()
    assert (hc["kind"] == "necessary and sufficient").all()  # r = 1
    assert "q_i = 6, q = 6, t = rank(P_X' Z) = 5" in hc["detail"].iloc[0]


def test_crossed_lmm_where_hobert_casella_b_is_only_sufficient():
    """Two crossed factors (3 x 3, two replicates), flat mean, uniform priors on both sd's.

    q = 6, t = rank(P_X' Z) = 4, so Hobert & Casella's (b), q_i > q - t - 2 a_i, reads
    3 > 2 + 1 and fails; with t < q and r > 1 it is only sufficient. The exact condition
    of bayesglmm.propriety.lmm, rank(P_X' Z_S) + 2 sum a_i > 0 for every subset S, holds
    (2 - 1 > 0 for each factor, 4 - 2 > 0 for both): the posterior is proper.
    """
    rng = np.random.default_rng(5)
    a, b = np.meshgrid(np.arange(3), np.arange(3))
    a, b = np.tile(a.ravel(), 2), np.tile(b.ravel(), 2)
    y = rng.normal(size=3)[a] + rng.normal(size=3)[b] + rng.normal(size=a.size)
    m = GLMM(
        "y ~ 1 + (1|a) + (1|b)",
        pd.DataFrame({"y": y, "a": a, "b": b}),
        family="gaussian",
        priors={"Intercept": P.Flat(), "a": P.HalfFlat(), "b": P.HalfFlat(), "sigma": P.Jeffreys()},
    )
    report = check_propriety(m)
    frame = report.to_frame()
    hc_b = frame[frame["condition"].str.contains("Hobert-Casella \\(b\\)")]
    assert (~hc_b["met"].astype(bool)).all() and (hc_b["kind"] == "sufficient").all()
    assert report.proper is True


def test_report_prints_and_tabulates():
    report = check_propriety(GLMM("y ~ x", SEPARATED, priors=FLAT_BOTH))
    text = str(report)
    assert "IMPROPER" in text and "Chen & Shao" in text and "x" in text
    frame = report.to_frame()
    assert list(frame.columns) == [
        "parameter",
        "prior",
        "condition",
        "met",
        "kind",
        "reference",
        "detail",
    ]
    assert frame.loc[0, "met"] is False


def test_cauchy_location_may_be_zero_or_negative_but_its_scale_must_be_positive(cbpp):
    """Cauchy's ``alpha`` is its location (PyMC's naming): Cauchy(0, 2.5) is the usual
    weakly informative prior on a coefficient and must not be refused; beta is the scale."""
    from bayesglmm.errors import PriorError

    f = "cbind(incidence, size - incidence) ~ period + (1|herd)"
    for loc in (0.0, -1.0):
        model = GLMM(f, cbpp, priors={"period": P.Cauchy(loc, 2.5)})
        assert check_propriety(model).proper
    with pytest.raises(PriorError, match="beta must be positive"):
        check_propriety(GLMM(f, cbpp, priors={"period": P.Cauchy(0.0, 0.0)}))
