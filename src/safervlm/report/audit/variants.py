"""The distinct definition variants of a source cell.

A cell lists options per dimension (``report.audit.definitions``); their product holds
combinations that name the same number, because some dimensions cannot change the value of
some quantities. Each combination is reduced to its *effective* definition, and
combinations with the same one are a single variant (the first in YAML order; its label
names only the dimensions that matter for it):

* ``aggregate`` (over pairs) changes only a quotient (``relative``, ``ratio``,
  ``tax_ratio``) over several pairs: a mean of differences is the difference of the means,
  and a rate or a self-correction share is averaged over the reasoning models either way;
* ``pooling: per_scenario`` (the quantity per scenario, then the mean over scenarios) is
  ``macro`` for a rate, a difference and self-correction (means are linear); pooling does
  not apply to a cell naming one scenario;
* the base models' setting (an ``attack`` option ``A vs B``) and the base models themselves
  (``pairs`` sets with the same reasoning models) do not enter a rate or self-correction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from safervlm.metrics import MEAN
from safervlm.report.audit.definitions import DIMENSIONS, SourceCell

USES_BASE = ("difference", "relative", "ratio", "tax_ratio")
QUOTIENTS = ("relative", "ratio", "tax_ratio")
LINEAR = ("rate", "difference", "self_correction")


@dataclass(frozen=True)
class Variant:
    """One distinct definition: what to compute (every field concrete) and its label."""

    label: str
    pairs: tuple[tuple[str, str], ...]
    attack: tuple[str, str]  # (the reasoning models' setting, the base models')
    threshold: float
    denominator: str
    pooling: str  # macro | pooled | per_scenario ("macro" for a cell naming a scenario)
    quantity: str
    aggregate: str


Option = tuple[str, Any]  # (label, value)
_Rule = Callable[[SourceCell, dict[str, Option]], tuple[Option | None, str]]


def _aggregate(cell: SourceCell, v: dict[str, Option]) -> tuple[Option | None, str]:
    quantity = v["quantity"][1]
    if quantity not in QUOTIENTS:
        return None, f"aggregate cannot change a {quantity}"
    if len(v["pairs"][1]) == 1:
        return None, "aggregate cannot change a value over one pair"
    return v["aggregate"], ""


def _pooling(cell: SourceCell, v: dict[str, Option]) -> tuple[Option | None, str]:
    if cell.category != MEAN:
        return None, "pooling does not apply to one scenario"
    quantity = v["quantity"][1]
    if v["pooling"][1] == "per_scenario" and quantity in LINEAR:
        return ("macro", "macro"), f"pooling per_scenario is macro for a {quantity}"
    return v["pooling"], ""


def _attack(cell: SourceCell, v: dict[str, Option]) -> tuple[Option | None, str]:
    quantity = v["quantity"][1]
    reasoning, base = v["attack"][1]
    if quantity not in USES_BASE and base != reasoning:
        return (reasoning, (reasoning, reasoning)), f"the base models' setting cannot change a {quantity}"
    return v["attack"], ""


def _pairs(cell: SourceCell, v: dict[str, Option]) -> tuple[Option | None, str]:
    quantity = v["quantity"][1]
    if quantity in USES_BASE:
        return v["pairs"], ""
    models = tuple(r for r, _ in v["pairs"][1])
    return (v["pairs"][0], models), f"pair sets with the same reasoning models are one for a {quantity}"


RULES: dict[str, _Rule] = {"aggregate": _aggregate, "pooling": _pooling, "attack": _attack, "pairs": _pairs}


def _key(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_key(x) for x in value)
    return value


def _effective(cell: SourceCell, v: dict[str, Option]) -> tuple[dict[str, Option | None], list[str]]:
    """The effective option per dimension (None: cannot matter) and why any was reduced."""
    out: dict[str, Option | None] = dict(v)
    why = []
    for dim, rule in RULES.items():
        option, reason = rule(cell, v)
        if option != v[dim] and dim in cell.varied():
            why.append(reason)
        out[dim] = option
    return out, why


def _label(cell: SourceCell, eff: dict[str, Option | None]) -> str:
    parts = []
    for dim in cell.varied():
        option = eff[dim]
        if option is not None:
            parts.append(f"{dim}{'' if option[0].startswith('>') else '='}{option[0]}")
    return ", ".join(parts) or "as stated"


def distinct_variants(cell: SourceCell) -> tuple[list[Variant], list[str]]:
    """The cell's distinct variants, in YAML order, and why combinations were merged.

    Returns:
        (variants, reasons): one :class:`Variant` per distinct effective definition; the
        reasons (each once) that made two combinations one.
    """
    seen: dict[Any, Variant] = {}
    reasons: dict[str, None] = {}
    for v in cell.combinations():
        eff, why = _effective(cell, v)
        key = tuple((d, None if eff[d] is None else _key(eff[d][1])) for d in DIMENSIONS)  # type: ignore[index]
        if key in seen:
            reasons.update(dict.fromkeys(why))
            continue
        seen[key] = Variant(
            label=_label(cell, eff),
            pairs=tuple((str(a), str(b)) for a, b in v["pairs"][1]),
            attack=eff["attack"][1] if eff["attack"] else v["attack"][1],
            threshold=float(v["threshold"][1]),
            denominator=str(v["denominator"][1]),
            pooling=str(eff["pooling"][1]) if eff["pooling"] else "macro",
            quantity=str(v["quantity"][1]),
            aggregate=str(v["aggregate"][1]),
        )
    return list(seen.values()), list(reasons)
