"""Linear mixed models: Hobert & Casella's (1996) conditions and their exact form.

Model: :math:`y = X\\beta + \\sum_{i=1}^r Z_i u_i + e`, :math:`u_i \\sim N(0, \\sigma_i^2
I_{q_i})`, :math:`e \\sim N(0, \\sigma_e^2 I_n)`, flat prior on :math:`\\beta` (``p``
columns of full rank), :math:`p(\\sigma_i^2) \\propto (\\sigma_i^2)^{-(a_i+1)}`,
:math:`p(\\sigma_e^2) \\propto (\\sigma_e^2)^{-(b+1)}`. With :math:`q = \\sum q_i`,
:math:`t = \\operatorname{rank}(P_X^\\perp Z)` and
:math:`\\mathrm{SSE} = \\|(I - P_{[X\\,Z]})y\\|^2 > 0`, Hobert & Casella (1996, Theorem 1)
give the conditions

(a) :math:`a_i < 0` for every :math:`i`;
(b) :math:`q_i > q - t - 2a_i` for every :math:`i`;
(c) :math:`n + 2\\sum_i a_i + 2b - p > 0`

for a proper posterior. As derived below they are necessary and sufficient when
:math:`t = q` or :math:`r = 1`, and sufficient otherwise (for the one-way model, ``r = 1``,
``t = q - 1``, they are the conditions Tan & Hobert (2009) state).

**Exact form used for the verdict** (derived here; it reduces to (a)-(c) when
:math:`t = q` or :math:`r = 1`). Integrating :math:`\\beta` out leaves the restricted
likelihood of :math:`w = K^\\top y` (:math:`K` an orthonormal basis of
:math:`\\operatorname{col}(X)^\\perp`), :math:`w \\sim N(0, \\sigma_e^2 \\Sigma_1(u))` with
:math:`\\Sigma_1(u) = I + \\sum_i u_i W_i W_i^\\top`, :math:`W_i = K^\\top Z_i`,
:math:`u_i = \\sigma_i^2/\\sigma_e^2`. Integrating :math:`\\sigma_e^2` gives
:math:`\\Gamma(k)\\,2^k \\int Q(u)^{-k} |\\Sigma_1(u)|^{-1/2} \\prod_i u_i^{-(a_i+1)}\\,du`
with :math:`k = (n-p)/2 + \\sum a_i + b` and :math:`\\mathrm{SSE} \\le Q(u) \\le \\|w\\|^2`,
so the posterior is proper iff :math:`k > 0` (condition (c)) and
:math:`J = \\int |\\Sigma_1(u)|^{-1/2} \\prod u_i^{-(a_i+1)} du < \\infty`. By Cauchy-Binet,
:math:`|\\Sigma_1(u)|` is a polynomial with positive coefficients whose exponent vectors
are the independent column sets of :math:`[W_1 \\ldots W_r]` counted per block; their convex
hull is the polymatroid :math:`\\{x \\ge 0 : \\sum_{i \\in S} x_i \\le \\rho(S)\\}` with
:math:`\\rho(S) = \\operatorname{rank}(P_X^\\perp Z_S)`. In logarithmic coordinates
:math:`J < \\infty` iff :math:`-2a` lies in its interior:

(a) :math:`a_i < 0`, and (b*) :math:`\\rho(S) + 2\\sum_{i \\in S} a_i > 0` for every
non-empty :math:`S \\subseteq \\{1..r\\}`.

(b) implies (b*) because :math:`\\rho(S) \\ge t - q + q_S`; with :math:`t = q` or
:math:`r = 1` they coincide.

**Generalisations used here** (same argument): components with *proper* priors, and
fixed effects with proper priors, only enlarge :math:`|\\Sigma|` and shift :math:`y`, so the
bound :math:`L \\le c\\,|\\sigma_e^2 I + \\sum_{i\\,\\mathrm{improper}} \\sigma_i^2
W_iW_i^\\top|^{-1/2} e^{-\\mathrm{SSE}/2\\sigma_e^2}` still holds with :math:`X` replaced by
the flat columns :math:`X_F` (``p`` by :math:`p_F`) in :math:`K` and :math:`\\rho`, and the
lower bounds behind necessity hold with the proper parameters in a bounded set. With a
proper prior on :math:`\\sigma_e^2`, the posterior is proper iff (a) and (b*) hold,
provided :math:`k_0 = (n - p_F)/2 + \\sum a_i \\ge 0` (then the :math:`\\sigma_e^2`-marginal is
bounded); otherwise it is left undecided.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import lsqr

from ..model.design import Design
from ..model.prior_set import PriorSet
from .cones import DENSE_ENTRIES, TooLargeError, matrix_rank
from .report import ProprietyEntry
from .variance import MAX_SUBSET_COMPONENTS, REF_AT_ZERO, Component, tail_rate

REF_HC = (
    "Hobert & Casella (1996), JASA 91:1461-1473, Theorem 1 "
    "('The effect of improper priors on Gibbs sampling in hierarchical linear mixed models')"
)
REF_HC_EXACT = "exact form derived in bayesglmm.propriety.lmm (reduces to Hobert & Casella 1996)"
#: SSE below this fraction of ||y - mean(y)||^2 (or of ||y||^2) counts as zero: an exact fit
SSE_ZERO = 1e-10


def residual_ss(design: Design) -> float:
    """SSE = ||(I - P_[X Z]) y||^2, the residual sum of squares of the full fixed fit."""
    M = sp.hstack([sp.csr_matrix(design.X), design.Z], format="csr")
    y = design.y - design.offset
    if M.shape[0] * M.shape[1] <= DENSE_ENTRIES:
        coef, *_ = np.linalg.lstsq(M.toarray(), y, rcond=None)
        r = y - M @ coef
    else:
        coef = lsqr(M, y, atol=1e-14, btol=1e-14, iter_lim=20 * M.shape[1])[0]
        r = y - M @ coef
    return float(r @ r)


def check_lmm(design: Design, priors: PriorSet, flat_cols: np.ndarray, comps: list[Component]):
    """Entries and verdict for a Gaussian identity-link model.

    Returns ``(entries, decided, notes)`` where ``decided`` is True when the conditions
    that are sufficient hold (failed necessary conditions are marked in the entries).
    """
    notes: list[str] = []
    entries: list[ProprietyEntry] = []
    X_F = design.X[:, flat_cols]
    n, p_F = design.n, int(flat_cols.size)
    improper = [c for c in comps if c.tails.improper]
    sigma_prior = priors.dispersion["sigma"]
    res_tails = sigma_prior.tails()
    b = res_tails.a0 if res_tails.improper else None
    if res_tails.improper and b is None:
        notes.append(f"prior {sigma_prior.describe()} on sigma: tails unknown")
        return entries, False, notes

    y_scale = float(np.sum((design.y - design.y.mean()) ** 2)) or float(design.y @ design.y)
    sse = residual_ss(design)
    sse_pos = sse > SSE_ZERO * max(y_scale, 1e-300)

    if any(c.a0 is None for c in improper):
        notes.append("an improper variance prior that is not a power law: not covered")
        return entries, False, notes
    a = {c.parameter: c.a0 for c in improper}
    decided = True
    for c in improper:
        entries.append(
            ProprietyEntry(
                c.parameter,
                c.prior.describe(),
                "(a) a < 0 (integrable at sigma^2 = 0)",
                c.a0 < 0,
                "necessary",
                REF_AT_ZERO,
                f"a = {c.a0:g}",
            )
        )
    # (b*) over all subsets of improper components
    if len(improper) > MAX_SUBSET_COMPONENTS:
        notes.append(f"{len(improper)} improper variance components: too many subsets")
        decided = False
    subsets = (
        []
        if not improper or len(improper) > MAX_SUBSET_COMPONENTS
        else [s for r in range(1, len(improper) + 1) for s in itertools.combinations(improper, r)]
    )
    rho: dict[tuple, int] = {}
    signs = np.zeros(n, dtype=np.int64)
    for S in subsets:
        try:
            rho[S] = tail_rate(design, X_F, list(S), signs)
        except TooLargeError as err:
            notes.append(f"rank for {', '.join(c.parameter for c in S)}: {err}")
            decided = False
            continue
        total = rho[S] + 2.0 * sum(a[c.parameter] for c in S)
        entries.append(
            ProprietyEntry(
                " + ".join(c.parameter for c in S),
                ", ".join(c.prior.describe() for c in S),
                "(b*) rank(P_XF' Z_S) + 2*sum(a_i, i in S) > 0",
                total > 0,
                "necessary and sufficient",
                REF_HC_EXACT,
                f"rank(P_XF' Z_S) = {rho[S]}, value {total:g}",
            )
        )
    sum_a = sum(a.values())
    if not sse_pos:
        if b is not None and b >= 0:
            entries.append(
                ProprietyEntry(
                    "sigma",
                    sigma_prior.describe(),
                    "residual prior integrable at 0 when the data fit [X Z] exactly (SSE = 0)",
                    False,
                    "necessary",
                    REF_AT_ZERO,
                    f"SSE = {sse:.3g}, b = {b:g}",
                )
            )
        notes.append(
            "SSE = 0: y lies in the column space of [X Z]; the residual variance "
            "is not identified and no sufficient condition is implemented"
        )
        return entries, False, notes
    if b is not None:
        k2 = n - p_F + 2.0 * sum_a + 2.0 * b
        entries.append(
            ProprietyEntry(
                "sigma",
                sigma_prior.describe(),
                "(c) n - p_F + 2*sum(a_i) + 2b > 0",
                k2 > 0,
                "necessary and sufficient",
                REF_HC if p_F == design.p else REF_HC_EXACT,
                f"n = {n}, p_F = {p_F}, sum(a) = {sum_a:g}, b = {b:g}: value {k2:g}",
            )
        )
    elif improper:
        k0 = n - p_F + 2.0 * sum_a
        if k0 < 0:
            notes.append(
                f"proper prior on sigma with n - p_F + 2*sum(a) = {k0:g} < 0: the "
                "sigma^2 marginal grows and the prior's moments would decide"
            )
            decided = False
    entries.append(
        ProprietyEntry(
            "data",
            "",
            "SSE = ||(I - P_[X Z]) y||^2 > 0",
            True,
            "assumption",
            REF_HC,
            f"SSE = {sse:.6g}",
        )
    )
    if (
        improper
        and p_F == design.p
        and b is not None
        and all(not c.correlated for c in comps)
        and len(improper) == len(comps)
    ):
        entries += _hobert_casella(design, improper, b, sum_a)
    return entries, decided, notes


def _hobert_casella(design: Design, comps: list[Component], b: float, sum_a: float):
    """Conditions (a)-(c) exactly as Hobert & Casella (1996, Theorem 1) state them."""
    n, p = design.n, design.p
    Z = sp.hstack([c.Z for c in comps], format="csr")
    q = Z.shape[1]
    try:
        t = matrix_rank(sp.hstack([sp.csr_matrix(design.X), Z], format="csr")) - p
    except TooLargeError:
        return []
    r = len(comps)
    iff = t == q or r == 1
    kind = "necessary and sufficient" if iff else "sufficient"
    out = []
    for c in comps:
        out.append(
            ProprietyEntry(
                c.parameter,
                c.prior.describe(),
                "Hobert-Casella (b): q_i > q - t - 2 a_i",
                c.q > q - t - 2.0 * c.a0,
                kind,
                REF_HC,
                f"q_i = {c.q}, q = {q}, t = rank(P_X' Z) = {t}, a_i = {c.a0:g}"
                + ("" if iff else "; t < q and r > 1: (b) is only sufficient, (b*) decides"),
            )
        )
    out.append(
        ProprietyEntry(
            "all",
            "",
            "Hobert-Casella (c): n + 2*sum(a_i) + 2b - p > 0",
            n + 2.0 * sum_a + 2.0 * b - p > 0,
            "necessary and sufficient",
            REF_HC,
            f"n = {n}, p = {p}, sum(a) = {sum_a:g}, b = {b:g}",
        )
    )
    return out
