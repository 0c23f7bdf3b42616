"""Parser for lme4-style model formulas.

Handles what the formula library (formulae) does not: ``cbind(s, f)`` responses,
``offset(...)``, nested grouping ``(1|a/b)`` and uncorrelated terms ``(x||g)``. The fixed
part and the within-term model matrices are left to formulae.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import FormulaError
from .spec import RandomTermSpec, ResponseSpec, Spec

#: covariance structures a term can declare with glmmTMB's syntax, ``ar1(time + 0 | g)``
STRUCTURES = ("ar1",)


@dataclass(frozen=True)
class StructuredTermSpec(RandomTermSpec):
    """A random-effect term with a structured covariance, glmmTMB's ``ar1(time + 0 | g)``.

    ``structure`` is ``"ar1"``: the effects of one level of ``group`` over the levels of
    the factor in ``expr`` (in their order) are ``N(0, sigma^2 R)``, ``R_st = rho^|s-t|``.
    """

    structure: str = "ar1"

    @property
    def label(self) -> str:
        return f"{self.structure}({self.expr} | {self.group})"


def _mask_strings(text: str) -> str:
    """``text`` with the inside of string literals blanked, so that a level such as
    ``"drug+"`` or ``"a|b"`` in ``relevel(trt, "a|b")`` is not read as formula syntax."""
    out, quote = [], None
    for ch in text:
        if quote:
            out.append(ch if ch == quote else " ")
            quote = None if ch == quote else quote
        else:
            out.append(ch)
            quote = ch if ch in "'\"" else None
    return "".join(out)


def _split_top(text: str, seps: str) -> list[tuple[str, str]]:
    """Split ``text`` at separators found outside parentheses and string literals.

    Returns (separator before the piece, piece) pairs; the first separator is ``""``.
    """
    pieces: list[tuple[str, str]] = []
    depth, start, sep = 0, 0, ""
    for i, ch in enumerate(_mask_strings(text)):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"unbalanced ')' at position {i} in {text!r}")
        elif depth == 0 and ch in seps:
            pieces.append((sep, text[start:i]))
            sep, start = ch, i + 1
    if depth != 0:
        raise FormulaError(f"unbalanced '(' in {text!r}")
    pieces.append((sep, text[start:]))
    return pieces


def _outer_parens(piece: str) -> str | None:
    """The inside of ``(...)`` when the parentheses enclose the whole piece."""
    piece = piece.strip()
    if not (piece.startswith("(") and piece.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(_mask_strings(piece)):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(piece) - 1:
            return None
    return piece[1:-1]


def _call_args(piece: str, fname: str) -> list[str] | None:
    m = re.fullmatch(rf"\s*{fname}\s*\((.*)\)\s*", piece, flags=re.S)
    if not m or _outer_parens("(" + m.group(1) + ")") is None:
        return None
    return [a.strip() for _, a in _split_top(m.group(1), ",")]


def _bar_position(inner: str) -> tuple[int, int] | None:
    """Position and width (1 or 2) of the top-level ``|`` or ``||`` in ``inner``."""
    depth = 0
    for i, ch in enumerate(_mask_strings(inner)):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and ch == "|":
            width = 2 if inner[i + 1 : i + 2] == "|" else 1
            return i, width
    return None


_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")


def _grouping(group: str, term: str) -> list[str]:
    """Expand ``a/b/c`` into ``a``, ``a:b``, ``a:b:c``; check each factor is a name."""
    group = group.strip()
    if not group:
        raise FormulaError(f"random-effect term {term} has no grouping factor after '|'")
    parts = [p.strip() for p in group.split("/")]
    out, prefix = [], []
    for part in parts:
        factors = [f.strip() for f in part.split(":")]
        for f in factors:
            if not _NAME.fullmatch(f):
                raise FormulaError(
                    f"grouping factor {f!r} in term {term} is not a column name; "
                    "use a/b for nesting and a:b for an interaction of factors"
                )
        prefix = prefix + factors
        out.append(":".join(prefix))
    return out


def _has_intercept(expr: str) -> bool:
    pieces = _split_top(expr, "+-")
    has = True
    for sep, p in pieces:
        p = p.strip()
        if p == "0" and sep in ("", "+"):
            has = False
        elif p == "1" and sep == "-":
            has = False
        elif p == "1" and sep in ("", "+"):
            has = True
    return has


def _expand_uncorrelated(expr: str, group: str) -> list[RandomTermSpec]:
    """lme4's ``(x || g)`` = ``(1 | g) + (0 + x | g)``: one term per formula piece."""
    out = []
    if _has_intercept(expr):
        out.append(RandomTermSpec("1", group, correlated=False))
    for sep, p in _split_top(expr, "+-"):
        p = p.strip()
        if p in ("", "0", "1") or sep == "-":
            continue
        out.append(RandomTermSpec(f"0 + {p}", group, correlated=False))
    return out


def _structure_call(text: str) -> tuple[str, str] | None:
    """(structure, inside) of a term such as ``ar1(time + 0 | g)``; None otherwise."""
    for name in STRUCTURES:
        m = re.fullmatch(rf"\s*{name}\s*\((.*)\)\s*", text, flags=re.S)
        if m and _outer_parens("(" + m.group(1) + ")") is not None:
            return name, m.group(1)
    return None


def _structured_term(structure: str, inner: str, text: str) -> StructuredTermSpec:
    bar = _bar_position(inner)
    if bar is None or bar[1] != 1:
        raise FormulaError(f"{text} needs the form {structure}(time + 0 | group) with one '|'")
    expr, group = inner[: bar[0]].strip(), inner[bar[0] + 1 :].strip()
    if not expr:
        raise FormulaError(f"random-effect term {text} has nothing before '|'")
    groups = _grouping(group, text)
    if len(groups) != 1:
        raise FormulaError(f"{text}: a structured term takes one grouping factor, not nesting")
    return StructuredTermSpec(expr, groups[0], correlated=True, structure=structure)


def parse_formula(formula: str, family: str = "binomial", link: str | None = None) -> Spec:
    """Parse an lme4-style formula into a :class:`~bayesglmm.spec.Spec`.

    Parameters
    ----------
    formula : str
        For example ``"Mate ~ 0 + Cross + (1|Female) + (1|Male)"`` or
        ``"cbind(incidence, size - incidence) ~ period + (1|herd)"``.
    family, link : str
        Stored in the spec; checked by :func:`bayesglmm.families.get_family`.

    Raises
    ------
    FormulaError
        With the offending part of the formula named.
    """
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError(f"formula must be a non-empty string, got {formula!r}")
    sides = _split_top(formula, "~")
    if len(sides) != 2:
        raise FormulaError(
            f"formula {formula!r} must have exactly one '~' with the response on its left"
        )
    lhs, rhs = sides[0][1].strip(), sides[1][1].strip()
    if not lhs:
        raise FormulaError(f"formula {formula!r} has no response on the left of '~'")
    if not rhs:
        raise FormulaError(f"formula {formula!r} has nothing on the right of '~'")

    cb = _call_args(lhs, "cbind")
    if cb is not None:
        if len(cb) != 2 or not all(cb):
            raise FormulaError(f"cbind() takes two arguments (successes, failures): {lhs!r}")
        response = ResponseSpec("cbind", cb[0], cb[1])
    else:
        response = ResponseSpec("column", lhs)

    fixed_pieces: list[str] = []
    random: list[RandomTermSpec] = []
    offsets: list[str] = []
    for sep, piece in _split_top(rhs, "+-"):
        text = piece.strip()
        if not text:
            if sep == "" and rhs.lstrip().startswith("-"):
                continue
            raise FormulaError(f"empty term next to {sep!r} in {rhs!r}")
        structure = _structure_call(text)
        if structure is not None:
            if sep == "-":
                raise FormulaError(f"a random-effect term cannot be subtracted: -{text}")
            random.append(_structured_term(*structure, text))
            continue
        inner = _outer_parens(text)
        bar = _bar_position(inner) if inner is not None else None
        if bar is not None:
            if sep == "-":
                raise FormulaError(f"a random-effect term cannot be subtracted: -{text}")
            pos, width = bar
            expr, group = inner[:pos].strip(), inner[pos + width :].strip()
            if not expr:
                raise FormulaError(f"random-effect term {text} has nothing before '|'")
            for g in _grouping(group, text):
                if width == 1:
                    random.append(RandomTermSpec(expr, g, correlated=True))
                else:
                    random.extend(_expand_uncorrelated(expr, g))
            continue
        if "|" in _mask_strings(text):
            raise FormulaError(
                f"'|' outside a parenthesised random-effect term in {text!r}; write (x | g)"
            )
        off = _call_args(text, "offset")
        if off is not None:
            if sep == "-" or len(off) != 1:
                raise FormulaError(f"offset() takes one expression and is added: {text!r}")
            offsets.append(off[0])
            continue
        fixed_pieces.append(f"{sep} {text}" if fixed_pieces or sep == "-" else text)
    fixed = " ".join(fixed_pieces).strip()
    if not fixed:
        fixed = "1"
    elif fixed.startswith("-"):
        fixed = "1 " + fixed
    seen = set()
    for t in random:
        key = (t.expr.replace(" ", ""), t.group)
        if key in seen:
            raise FormulaError(f"random-effect term ({t.expr} | {t.group}) appears twice")
        seen.add(key)
    return Spec(
        formula=formula,
        response=response,
        fixed=fixed,
        random=tuple(random),
        offsets=tuple(offsets),
        family=family,
        link=link,
    )
