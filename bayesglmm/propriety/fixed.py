"""Flat priors on fixed effects: separation (binomial) and the zero-count condition (counts).

Let :math:`X_F` be the columns of ``X`` whose coefficients have flat priors (the other
columns, with proper priors, act as offsets), and :math:`C` the cone of
:mod:`~bayesglmm.propriety.cones` built on :math:`X_F`.

**Binary and binomial responses** (logit, probit, cloglog). Chen & Shao (2001) show that
for a binary regression with a flat prior on :math:`\\beta` and a full-rank ``X`` the
posterior is proper if and only if there is a vector :math:`a` with all :math:`a_i > 0`
and :math:`\\sum_i a_i (2y_i - 1) x_i = 0`; by Stiemke's alternative this is the absence
of :math:`d \\ne 0` with :math:`(2y_i-1)\\,x_i^\\top d \\ge 0` for all rows, i.e. no complete
or quasi-complete separation (Albert & Anderson 1984). A binomial row with
:math:`0 < y < n` is a success and a failure at once. So the condition is
:math:`C = \\{0\\}`.

**Poisson and negative-binomial responses** (log link), derived here. A row with
:math:`y_i > 0` has likelihood :math:`e^{-\\mu}\\mu^{y}/y!`, which tends to 0 both as
:math:`\\eta_i \\to -\\infty` and as :math:`\\eta_i \\to \\infty`; a row with
:math:`y_i = 0` has likelihood :math:`e^{-\\mu} \\to 1` as :math:`\\eta_i \\to -\\infty`.
Hence

* *necessary*: if some :math:`d \\ne 0` has :math:`x_i^\\top d = 0` for every row with
  :math:`y_i > 0` and :math:`x_i^\\top d \\le 0` for every row with :math:`y_i = 0`, the
  likelihood is non-decreasing along :math:`d` and a flat prior on its span is not
  integrable: the posterior is improper;
* *sufficient*: otherwise :math:`h(d) = \\max(\\max_{y_i>0} |x_i^\\top d|,
  \\max_{y_i=0} x_i^\\top d)` is positive on the unit sphere, so :math:`h(d) \\ge c\\|d\\|`;
  with :math:`L_i(\\eta) \\le C e^{-|\\eta|}` (:math:`y_i>0`) and
  :math:`L_i(\\eta) \\le C e^{-\\eta_+}` (:math:`y_i=0`), the likelihood is at most
  :math:`C \\exp\\{-(c\\|\\beta\\| - \\|o\\|_\\infty)_+\\}` for any offset :math:`o`, whose
  integral over :math:`\\beta` grows only like :math:`(1 + \\|o\\|_\\infty)^{p_F}`.

This is the zero-count analogue of separation; for the existence of the maximum-likelihood
estimate in log-linear models the same geometry appears in Haberman (1974). The same
polynomial bound holds for the binomial case with :math:`F(s_i\\eta_i)` in place of the
Poisson terms (the logistic, normal and Gumbel tails are exponential or lighter).

**With random effects and proper priors elsewhere.** The offset :math:`o` then collects
:math:`X_P\\beta_P + Zb`; integrating the bound :math:`(1 + \\|o\\|_\\infty)^{p_F}` needs the
proper priors (on :math:`\\beta_P` and on the standard deviations) to have finite moments of
order :math:`p_F`. Half-normal, exponential, gamma and normal priors have all moments; a
half-Cauchy does not, and the posterior can then be improper even without separation
(flat intercept, half-Cauchy sd, every group all-success or all-failure: the integral over
the intercept grows like :math:`\\sigma`). Those cases are left undecided unless a necessary
condition fails.
"""

from __future__ import annotations

import numpy as np

from ..model.design import Design
from ..model.prior_set import PriorSet
from .cones import recession_cone
from .report import ProprietyEntry

REF_CHEN_SHAO = (
    "Chen & Shao (2001), Proc. Amer. Math. Soc. 129:293-302; separation as in "
    "Albert & Anderson (1984), Biometrika 71:1-10"
)
REF_ZERO_COUNT = (
    "zero-count condition derived in bayesglmm.propriety.fixed (cf. Haberman 1974 for the "
    "MLE of log-linear models)"
)
#: binomial links whose inverse is a cdf on the real line with exponential-or-lighter tails
BINOMIAL_LINKS = ("logit", "probit", "cloglog")
#: a direction's coefficient below this (after scaling to max-norm 1) is reported as zero
DIRECTION_ZERO = 1e-8


def row_signs(design: Design) -> np.ndarray | None:
    """Per-row constraint of the cone (see :mod:`~bayesglmm.propriety.cones`), or None.

    None when the family/link pair is not covered by the arguments in this package. The
    beta-binomial (logit) rows constrain as the binomial's: at any precision ``phi`` a row's
    probability tends to 1 as its mean goes to the end of the support where ``y`` sits
    (``y = n``: ``mu -> 1``; ``y = 0``: ``mu -> 0``) and to 0 at the other end, so the
    separation condition (necessary) is the binomial one; :mod:`.check` proves no
    sufficient condition for it.
    """
    fam, link = design.family.name, design.family.link.name
    y = design.y
    if (fam == "binomial" and link in BINOMIAL_LINKS) or (fam, link) == ("betabinomial", "logit"):
        n = design.trials if design.trials is not None else np.ones_like(y)
        signs = np.zeros(y.shape[0], dtype=np.int64)
        signs[(y == n) & (n > 0)] = 1
        signs[(y == 0) & (n > 0)] = -1
        signs[n == 0] = 2
        return signs
    if fam in ("poisson", "negative_binomial") and link == "log":
        return np.where(y == 0, -1, 0).astype(np.int64)
    if fam == "gaussian" and link == "identity":
        return np.zeros(y.shape[0], dtype=np.int64)
    return None


def flat_columns(design: Design, priors: PriorSet) -> np.ndarray:
    """Indices of the columns of X whose coefficients have a flat prior."""
    cols: list[int] = []
    for term, sl in design.fixed_terms.items():
        if priors.fixed[term].flat:
            cols.extend(range(sl.start, sl.stop))
    return np.asarray(cols, dtype=np.int64)


def describe_direction(design: Design, cols: np.ndarray, direction: np.ndarray) -> dict:
    names = [design.fixed_names[j] for j in cols]
    return {
        n: round(float(v), 6)
        for n, v in zip(names, direction, strict=True)
        if abs(v) > DIRECTION_ZERO
    }


def check_fixed(design: Design, priors: PriorSet, signs: np.ndarray | None):
    """Entries for the flat fixed-effect priors, the separation record, and the cone.

    Returns ``(entries, separation, cone)``; ``cone`` is None when no column is flat or the
    family is not covered.
    """
    cols = flat_columns(design, priors)
    if cols.size == 0:
        return [], None, None
    terms = [t for t in design.fixed_terms if priors.fixed[t].flat]
    param = ", ".join(terms)
    fam, link = design.family.name, design.family.link.name
    if not design.family.discrete:
        # Gaussian fixed effects are handled with the variance components (lmm.py): with a
        # full-rank X (checked when the design was built) they integrate out exactly.
        return [], None, None
    if signs is None:
        entry = ProprietyEntry(
            param,
            "Flat()",
            f"flat fixed effects with the {fam}/{link} likelihood",
            None,
            "necessary and sufficient",
            "no result implemented for this family and link",
            "not decided",
        )
        return [entry], None, None
    cone = recession_cone(design.X[:, cols], signs)
    if design.family.has_trials:
        condition = (
            "no complete or quasi-complete separation in the columns with flat priors "
            "(rows with 0 < y < n count as a success and a failure)"
        )
        ref = REF_CHEN_SHAO
    else:
        condition = (
            "no direction d != 0 with x_i'd = 0 on every row with y > 0 and x_i'd <= 0 on "
            "every row with y = 0"
        )
        ref = REF_ZERO_COUNT
    separation = None
    if cone.trivial:
        detail = f"linear program over {cone.n_rows} rows and {cols.size} flat column(s): none"
    else:
        direction = describe_direction(design, cols, cone.direction)
        rows = [design.row_labels[i] for i in cone.strict_rows]
        n_moving = len(rows)
        kind = "complete" if n_moving == cone.n_rows else "quasi-complete"
        if not design.family.has_trials:
            kind = "zero-count"
        rows_py = [r.item() if hasattr(r, "item") else r for r in rows]
        separation = {"kind": kind, "direction": direction, "rows": rows_py}
        shown = ", ".join(f"{v:+.3g}*{k}" for k, v in direction.items())
        towards = "their observed responses" if design.family.has_trials else "zero"
        detail = (
            f"{kind} separation along d = ({shown}): the likelihood never decreases along d "
            f"and tends to its supremum; d moves {n_moving} of {cone.n_rows} rows towards "
            f"{towards} and leaves the rest unchanged"
        )
    entry = ProprietyEntry(param, "Flat()", condition, cone.trivial, "necessary", ref, detail)
    return [entry], separation, cone
