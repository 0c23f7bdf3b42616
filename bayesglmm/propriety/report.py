"""The propriety report: a verdict, and one line per condition checked."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

#: how a condition bears on the verdict
KINDS = ("necessary and sufficient", "necessary", "sufficient", "assumption")


@dataclass
class ProprietyEntry:
    """One condition applied to one parameter (or set of parameters).

    Attributes
    ----------
    parameter : str
        ``"Intercept"``, ``"1|Female"``, ``"sigma"``, ``"fixed effects"``, ...
    prior : str
        The prior, as :meth:`bayesglmm.priors.Prior.describe` writes it.
    condition : str
        The condition, in words and symbols.
    met : bool or None
        Whether the data and priors meet it; None when it could not be evaluated.
    kind : str
        ``"necessary"`` (failing it makes the posterior improper), ``"sufficient"``,
        ``"necessary and sufficient"`` or ``"assumption"`` (a premise of the theorem used).
    reference : str
        Where the condition comes from.
    detail : str
        The numbers behind ``met`` (counts, ranks, the separating direction).
    """

    parameter: str
    prior: str
    condition: str
    met: bool | None
    kind: str
    reference: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


@dataclass
class ProprietyReport:
    """Whether the posterior of a GLMM exists, and why.

    Attributes
    ----------
    proper : bool or None
        True: the posterior is proper; False: it is improper (no probability distribution
        exists, and no sampler can approximate one); None: not decided.
    reason : str
        One sentence: the failed condition, what was proved, or what is missing.
    entries : list of ProprietyEntry
        Every condition applied, for each parameter with an improper (or, where it
        matters, heavy-tailed) prior.
    formula, family : str
    separation : dict or None
        When the fixed effects with flat priors are separated: ``kind``
        (``"complete"``/``"quasi-complete"``), ``direction`` (column name -> coefficient)
        and ``rows`` (data row labels moved strictly by it).
    notes : list of str
        Why parts of the model could not be decided.
    """

    proper: bool | None
    reason: str
    entries: list[ProprietyEntry] = field(default_factory=list)
    formula: str = ""
    family: str = ""
    separation: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {True: "proper", False: "improper", None: "undecided"}[self.proper]

    def to_frame(self) -> pd.DataFrame:
        """One row per condition: parameter, prior, condition, met, kind, reference."""
        cols = ["parameter", "prior", "condition", "met", "kind", "reference", "detail"]
        rows = [[getattr(e, c) for c in cols] for e in self.entries]
        frame = pd.DataFrame(rows, columns=cols)
        frame["met"] = frame["met"].astype(object)
        return frame

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (stored in ``FitResult.info["details"]["propriety"]``)."""
        out = {
            "proper": self.proper,
            "verdict": self.verdict,
            "reason": self.reason,
            "formula": self.formula,
            "family": self.family,
            "entries": [asdict(e) for e in self.entries],
            "notes": list(self.notes),
        }
        if self.separation is not None:
            sep = dict(self.separation)
            sep["direction"] = {str(k): float(v) for k, v in sep["direction"].items()}
            sep["rows"] = [r if isinstance(r, int | str) else str(r) for r in sep["rows"]]
            out["separation"] = sep
        return out

    def __str__(self) -> str:
        lines = [f"Posterior propriety: {self.verdict.upper()}"]
        if self.formula:
            lines.append(f"  model: {self.formula} ({self.family})")
        lines.append(f"  {self.reason}")
        mark = {True: "yes", False: "NO", None: "?"}
        for e in self.entries:
            prior = f" ~ {e.prior}" if e.prior else ""
            lines.append(f"  - {e.parameter}{prior}: [{mark[e.met]}] {e.condition}")
            lines.append(f"      ({e.kind}; {e.reference})")
            if e.detail:
                lines.append(f"      {e.detail}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:  # notebooks show the table
        head = f"<p><b>Posterior propriety: {self.verdict}</b> &mdash; {self.reason}</p>"
        return head + self.to_frame().to_html(index=False)
