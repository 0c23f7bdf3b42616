"""The model specification: plain data parsed from a formula, no arrays and no PyMC."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResponseSpec:
    """Left-hand side of the formula.

    ``kind`` is ``"column"`` for ``y ~ ...`` (any expression of the data) and ``"cbind"`` for
    lme4's binomial form ``cbind(successes, failures) ~ ...``.
    """

    kind: str
    expr: str
    failures_expr: str | None = None

    @property
    def name(self) -> str:
        """A name for the response variable, used for the observed PyMC variable."""
        import re

        name = re.sub(r"\W+", "_", self.expr).strip("_")
        return name or "y"


@dataclass(frozen=True)
class RandomTermSpec:
    """One random-effect term ``(expr | group)``.

    ``expr`` is a formula right-hand side evaluated within the term (``"1"``, ``"x"``,
    ``"0 + x"``); ``group`` is a grouping factor or an interaction of factors (``"a:b"``);
    ``correlated`` is False for the pieces of an lme4 ``||`` term.
    """

    expr: str
    group: str
    correlated: bool = True

    @property
    def label(self) -> str:
        bar = "|" if self.correlated else "||"
        return f"({self.expr} {bar} {self.group})"


@dataclass(frozen=True)
class Spec:
    """A parsed GLMM: response, fixed part, offsets and random-effect terms.

    The fixed part is kept as a formula right-hand side for the formula library; random
    terms are already expanded (``a/b`` into ``a`` and ``a:b``; ``||`` into uncorrelated
    pieces).
    """

    formula: str
    response: ResponseSpec
    fixed: str
    random: tuple[RandomTermSpec, ...] = ()
    offsets: tuple[str, ...] = ()
    family: str = "binomial"
    link: str | None = None
    extra: dict = field(default_factory=dict, compare=False)
