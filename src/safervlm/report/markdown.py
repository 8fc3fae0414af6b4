"""Markdown for every report table: aligned columns, a title and a caption that states the scope.

Every ``.md`` the report writes is a small document: ``# title``, one caption paragraph that
says what the numbers are (benchmark, attack set, pooling: items or category means, what an
average row averages), then the table(s). A table that a degenerate dimension makes empty
(one seed, one judge, no model pair) is *omitted*: the document then holds its title and
one line saying why (:func:`omitted`), never an empty table.

Cells are padded so the columns line up in plain text too (a terminal, the HTML report's
literal include); columns whose cells are all numbers are right-aligned.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

MISSING = "–"
NOT_COMPUTABLE = "n/c"
OMITTED = "Omitted:"
# A cell that reads as a number (optionally signed, with an interval or a marker after it).
_NUMERIC = re.compile(r"^[-+−]?\d")


def _numeric_column(cells: Sequence[str]) -> bool:
    """Every cell a number (or missing); a column of missing cells only is a value column too."""
    values = [c for c in cells if c not in (MISSING, NOT_COMPUTABLE, "")]
    return bool(cells) and all(_NUMERIC.match(c) for c in values)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-markdown table with every column padded to one width (numbers right-aligned)."""
    cols = list(zip(*[list(header), *map(list, rows)], strict=True)) if rows else [(h,) for h in header]
    widths = [max(3, *(len(c) for c in col)) for col in cols]
    right = [_numeric_column(col[1:]) for col in cols]

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 1) + ":") if r else "-" * (w + 2) for w, r in zip(widths, right, strict=True)
    )
    return "\n".join([line(header), rule + "|", *(line(r) for r in rows)]) + "\n"


def document(title: str, caption: str, body: str) -> str:
    """``# title``, the caption paragraph, then the body (tables and sections)."""
    return f"# {title}\n\n{caption.strip()}\n\n{body.lstrip()}"


def omitted(title: str, reason: str) -> str:
    """A table left out for a degenerate dimension: its title and one line saying why."""
    return f"# {title}\n\n{OMITTED} {reason.strip()}\n"


def pct(v: Any, signed: bool = False) -> str:
    """A fraction as a percentage with one decimal (``–`` for None/NaN)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    return f"{100 * float(v):+.1f}" if signed else f"{100 * float(v):.1f}"


def interval(low: Any, high: Any, signed: bool = False, clipped: bool = False) -> str:
    """``[low, high]`` in percent; ``‡`` marks an interval clipped to the quantity's range."""
    if low is None or (isinstance(low, float) and math.isnan(low)):
        return MISSING
    return f"[{pct(low, signed)}, {pct(high, signed)}]" + ("‡" if clipped else "")


def pvalue(v: Any) -> str:
    """A p-value: three decimals, or scientific below 0.001 (``–`` when undefined)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    return f"{v:.3f}" if v >= 0.001 else f"{v:.1e}"


# Scope phrases: every table and figure says which of these its numbers are.
SCOPE_ITEMS = "items pooled (each value is the mean over the benchmark's samples)"
SCOPE_CATEGORIES = (
    "category means (each benchmark's value is the unweighted mean of its scenario rates, as in SafeMLRM)"
)
SCOPE_ATTACK_NONE = "attack `none` (each benchmark as given; attacked copies are in asr.md and paired.md)"
SCOPE_AVERAGE = "`average`: the unweighted mean over benchmarks"
