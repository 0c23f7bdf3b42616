"""Improper priors on variance components: the tail argument.

Write the prior of a variance as :math:`p(\\sigma^2) \\propto (\\sigma^2)^{-(a+1)}` near 0
and near infinity (each prior's :meth:`~bayesglmm.model.priors.Prior.tails`), and let
:math:`L(\\sigma^2)` be the likelihood with the random effects integrated out.

**At 0** (Hobert & Casella 1996; Natarajan & Kass 2000). As :math:`\\sigma^2 \\to 0` the
random effects vanish and :math:`L` tends to the likelihood without them, which is positive:
:math:`L` is bounded away from zero near 0 (for every value of the other parameters, so
also after integrating them, by Fatou's lemma). The posterior is then proper only if the
prior is integrable at 0: :math:`a < 0`. A 1/sigma^2 (Jeffreys, ``a = 0``) prior on any
variance component gives an improper posterior, whatever the data.

**At infinity** (derived here). Let :math:`C_S` be the cone of
:mod:`~bayesglmm.propriety.cones` on the columns :math:`[X_F \\; Z_S]` (flat fixed effects
and the random-effect columns of a set :math:`S` of variance components), and
:math:`\\rho(S) = q_S - \\dim C_S`. Scaling every variance in :math:`S` by :math:`s \\to
\\infty`, the likelihood is non-decreasing along :math:`C_S`, so on a thickened copy of
:math:`C_S` it stays above a constant, and that set carries normal mass
:math:`\\gtrsim s^{(\\dim C_S - q_S)/2}` once the flat fixed effects are integrated out. Hence
:math:`L \\gtrsim s^{-\\rho(S)/2}` and the posterior is improper unless

.. math:: \\rho(S) + 2 \\sum_{i \\in S} a_i > 0.

For a random intercept with proper priors on the fixed effects, :math:`\\rho` is the number
:math:`m` of groups whose responses are not all equal (binomial groups with both successes
and failures; count groups with a positive count): each such group's integral over its
effect is finite, :math:`\\int \\prod_{j \\in g} f(y_j \\mid \\eta_j + b)\\, \\phi_\\sigma(b)\\,db
\\approx \\phi(0)\\sigma^{-1} I_g`, while a group with all-equal responses contributes a
constant. With flat fixed effects the rate is slower: a flat intercept absorbs one group
(:math:`\\rho = m - 1` in the one-way model), just as :math:`t = \\operatorname{rank}
(P_X^\\perp Z)` replaces :math:`q` in Hobert & Casella's Gaussian conditions. For Gaussian
rows (every row an equality) :math:`\\rho(S) = \\operatorname{rank}[X_F\\;Z_S] - p_F`.

**Sufficient condition** (binomial and Poisson, proper fixed-effect priors, improper
priors on random intercepts). Given everything else, the groups of one term are
independent, and for a group with mixed responses
:math:`\\int f_g(b)\\phi_\\sigma(b)\\,db \\le (2\\pi\\sigma^2)^{-1/2} I_g`, with
:math:`I_g = \\int f_g(b)\\,db` bounded by a constant when the group has a row with
:math:`0 < y < n` (binomial) or a positive count (Poisson, :math:`\\int e^{-e^\\eta}
e^{y\\eta}/y!\\,d\\eta = 1/y`), or by :math:`C(1 + |\\eta_j - \\eta_k|)` through a success row
:math:`j` and a failure row :math:`k`. Taking the minimum over the improper components and
interpolating, :math:`L \\le \\prod_i (C_i\\,\\sigma_i^{-m_i})^{\\theta_i}` for weights
:math:`\\theta_i \\ge 0` summing to one, which is integrable at infinity if
:math:`\\sum_i (-2a_i)/m_i < 1` (for one component: :math:`m + 2a > 0`), provided the
:math:`C_i` have finite expectation under the proper priors (the differences
:math:`\\eta_j - \\eta_k` must not involve improper parameters, and their moments of order
:math:`m` must be finite).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..model.design import Design, RandomTerm
from ..model.prior_set import PriorSet
from ..model.priors import Prior, Tails
from .cones import TooLargeError, matrix_rank, recession_cone
from .report import ProprietyEntry

REF_AT_ZERO = "Hobert & Casella (1996), JASA 91:1461-1473; Natarajan & Kass (2000), JASA 95:227-237"
REF_TAIL = (
    "tail argument derived in bayesglmm.propriety.variance (the Gaussian case is "
    "Hobert & Casella 1996)"
)
#: largest number of variance components whose subsets are all examined (2^k - 1 LPs)
MAX_SUBSET_COMPONENTS = 6
#: success/failure row pairs examined per group when looking for a bounded witness
MAX_PAIRS = 400


@dataclass(eq=False)
class Component:
    """One variance component: a column of a random-effect term and the prior on its sd."""

    parameter: str
    name: str
    term: RandomTerm
    column: int
    prior: Prior
    tails: Tails

    @property
    def correlated(self) -> bool:
        return self.term.correlated

    @property
    def q(self) -> int:
        return self.term.n_levels

    @property
    def Z(self) -> sp.csc_matrix:
        k = self.term.n_columns
        return self.term.Z[:, self.column :: k]

    @property
    def a0(self) -> float | None:
        return self.tails.a0

    @property
    def a_inf(self) -> float:
        return self.tails.a_inf


def components(design: Design, priors: PriorSet) -> list[Component]:
    out = []
    for t in design.random:
        for j, prior in enumerate(priors.random_sd[t.name]):
            param = t.name if t.n_columns == 1 else f"{t.name}[{t.columns[j]}]"
            out.append(Component(param, t.component_names[j], t, j, prior, prior.tails()))
    return out


def at_zero_entries(comps: list[Component]) -> list[ProprietyEntry]:
    """Integrability at sigma^2 -> 0 for every improper variance prior."""
    out = []
    for c in comps:
        if not c.tails.improper or c.a0 is None:
            continue
        out.append(
            ProprietyEntry(
                c.parameter,
                c.prior.describe(),
                "a < 0: the prior must be integrable at sigma^2 = 0, where the marginal "
                "likelihood stays bounded away from zero",
                c.a0 < 0,
                "necessary",
                REF_AT_ZERO,
                f"p(sigma^2) ~ (sigma^2)^-(a+1) near 0 with a = {c.a0:g}",
            )
        )
    return out


def tail_rate(design: Design, X_F: np.ndarray, comps: list[Component], signs: np.ndarray) -> int:
    """rho(S) = q_S - dim C_S for the components in ``comps`` (see the module docstring)."""
    Z = sp.hstack([c.Z for c in comps], format="csr")
    q_S = Z.shape[1]
    M = sp.hstack([sp.csr_matrix(X_F), Z], format="csr") if X_F.shape[1] else Z
    p_F = X_F.shape[1]
    if np.all(signs == 0):
        return matrix_rank(M) - p_F
    cone = recession_cone(M, signs)
    return q_S - cone.dim


def mixed_groups(design: Design, comp: Component) -> tuple[int, int]:
    """(groups with responses not all equal, groups) for a random-intercept component."""
    idx = comp.term.index
    y = design.y
    if design.family.has_trials:
        n = design.trials if design.trials is not None else np.ones_like(y)
        succ = np.bincount(idx, weights=y, minlength=comp.q)
        fail = np.bincount(idx, weights=n - y, minlength=comp.q)
        return int(((succ > 0) & (fail > 0)).sum()), comp.q
    if not design.family.discrete:  # a continuous response: no group is all equal
        return comp.q, comp.q
    pos = np.bincount(idx, weights=(y > 0).astype(float), minlength=comp.q)
    return int((pos > 0).sum()), comp.q


def tail_entries(
    design: Design, X_F: np.ndarray, comps: list[Component], signs: np.ndarray
) -> tuple[list[ProprietyEntry], list[str]]:
    """Necessary tail conditions rho(S) + 2 sum a_inf > 0 over subsets of heavy components."""
    heavy = [c for c in comps if math.isfinite(c.a_inf) and not c.correlated]
    if not design.family.discrete:
        heavy = [c for c in heavy if c.tails.improper]
    entries: list[ProprietyEntry] = []
    notes: list[str] = []
    if not heavy:
        return entries, notes
    if len(heavy) > MAX_SUBSET_COMPONENTS:
        subsets = [(c,) for c in heavy] + [tuple(heavy)]
        notes.append(
            f"{len(heavy)} heavy-tailed variance components: only single "
            "components and all of them jointly were examined"
        )
    else:
        subsets = [s for r in range(1, len(heavy) + 1) for s in itertools.combinations(heavy, r)]
    for S in subsets:
        try:
            rho = tail_rate(design, X_F, list(S), signs)
        except TooLargeError as err:
            notes.append(
                f"tail condition for {', '.join(c.parameter for c in S)} not evaluated: {err}"
            )
            continue
        total = rho + 2.0 * sum(c.a_inf for c in S)
        q_S = sum(c.q for c in S)
        detail = (
            f"the marginal likelihood decays like (sigma^2)^(-rho/2) with rho = {rho} "
            f"(q = {q_S} effects); rho + 2*sum(a) = {total:g}"
        )
        if len(S) == 1 and X_F.shape[1] == 0 and S[0].term.is_intercept_only:
            m, q = mixed_groups(design, S[0])
            detail += f"; {m} of {q} groups have responses that are not all equal"
        names = " + ".join(c.parameter for c in S)
        prior = ", ".join(c.prior.describe() for c in S)
        what = "this variance grows" if len(S) == 1 else "these variances grow jointly"
        entries.append(
            ProprietyEntry(
                names,
                prior,
                f"tail at sigma^2 -> infinity: rho + 2*sum(a) > 0, rho = decay rate of the "
                f"marginal likelihood as {what}",
                total > 0,
                "necessary",
                REF_TAIL,
                detail,
            )
        )
    return entries, notes


# --------------------------------------------------------------------------------------
# sufficient condition for binomial / Poisson models


def _row_key(design: Design, row: int, other: list[RandomTerm]) -> tuple:
    return (
        design.X[row].tobytes(),
        float(design.offset[row]),
        tuple((int(t.index[row]), t.X[row].tobytes()) for t in other),
    )


def _involved(design: Design, j: int, k: int, other: list[RandomTerm]) -> tuple[list, list]:
    """Fixed terms and random terms whose parameters enter eta_j - eta_k."""
    fixed = [
        term
        for term, sl in design.fixed_terms.items()
        if not np.array_equal(design.X[j, sl], design.X[k, sl])
    ]
    rand = [t for t in other if t.index[j] != t.index[k] or not np.array_equal(t.X[j], t.X[k])]
    return fixed, rand


def discrete_sufficient(design: Design, priors: PriorSet, comps: list[Component]):
    """Sufficient condition for improper random-intercept priors (binomial/Poisson).

    Returns ``(entries, decided, notes)``; ``decided`` is True when the condition holds.
    """
    improper = [c for c in comps if c.tails.improper]
    notes: list[str] = []
    trials = design.family.has_trials
    bad = [c.parameter for c in improper if c.correlated or not c.term.is_intercept_only]
    if bad:
        notes.append(
            f"improper priors on {', '.join(bad)}: the sufficient condition covers "
            "random intercepts only"
        )
        return [], False, notes
    if any(c.a0 is None or c.a0 >= 0 for c in improper):
        return [], False, notes
    sd_moments = {
        c.term.name: min((d.tails.moments for d in comps if d.term is c.term), default=math.inf)
        for c in comps
    }
    improper_terms = {c.term.name for c in improper}
    y = design.y
    n = design.trials if design.trials is not None else np.ones_like(y)
    entries, ratios = [], []
    for c in improper:
        other = [t for t in design.random if t is not c.term]
        unbounded: list[tuple[int, int]] = []
        m = 0
        for g in range(c.q):
            rows = np.flatnonzero(c.term.index == g)
            if not trials:  # counts: a group with a positive count
                m += bool(np.any(y[rows] > 0))
                continue
            succ = rows[y[rows] > 0]
            fail = rows[y[rows] < n[rows]]
            if succ.size == 0 or fail.size == 0:
                continue
            m += 1
            if np.any((y[rows] > 0) & (y[rows] < n[rows])):
                continue
            keys_s = {_row_key(design, j, other) for j in succ}
            if any(_row_key(design, k, other) in keys_s for k in fail):
                continue
            unbounded.append((succ, fail))
        m_u = len(unbounded)
        ok = m > 0
        why = ""
        for succ, fail in unbounded:
            found = False
            for j, k in itertools.islice(itertools.product(succ, fail), MAX_PAIRS):
                fixed, rand = _involved(design, j, k, other)
                if any(t.name in improper_terms for t in rand):
                    continue
                orders = [priors.fixed[f].tails().moments for f in fixed]
                orders += [sd_moments[t.name] for t in rand]
                if all(o > m_u for o in orders):
                    found = True
                    break
            if not found:
                ok = False
                why = (
                    f"; a group's success and failure rows differ in parameters whose "
                    f"priors are improper or lack moments of order {m_u}"
                )
                break
        ratio = -2.0 * c.a0 / m if m > 0 else math.inf
        ratios.append(ratio)
        entries.append(
            ProprietyEntry(
                c.parameter,
                c.prior.describe(),
                "groups with mixed responses bound the likelihood by C*sigma^-m with E[C] finite",
                ok,
                "assumption",
                REF_TAIL,
                f"m = {m} of {c.q} groups have responses that are not all equal; {m_u} of them "
                f"need a moment bound{why}",
            )
        )
    total = sum(ratios)
    if all(e.met for e in entries):
        names = ", ".join(c.parameter for c in improper)
        entries.append(
            ProprietyEntry(
                names,
                ", ".join(c.prior.describe() for c in improper),
                "sum over improper components of -2a/m < 1 (one component: m + 2a > 0)",
                total < 1,
                "sufficient",
                REF_TAIL,
                f"sum(-2a/m) = {total:.4g}",
            )
        )
    decided = bool(entries) and all(e.met for e in entries)
    return entries, decided, notes
