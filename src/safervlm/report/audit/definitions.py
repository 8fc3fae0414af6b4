"""Source cells: published numbers that name an imported third-party release, and the
definition variants to recompute them under (read from ``config/audit/*.yaml``; the
dimensions are described in ``report.audit.sources``, the distinct variants they give in
``report.audit.variants``)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safervlm.errors import InputError
from safervlm.metrics import MEAN, RATE_METRICS

BENCHMARK = "opensafemlrm"
POOLED = "(pooled)"
QUANTITIES = ("rate", "difference", "relative", "ratio", "tax_ratio", "self_correction")
# denominator -> (missing policy of metrics.Settings, refused policy of the importer)
DENOMINATORS = {"all": ("count", "count"), "scored": ("exclude", "count"), "answered": ("exclude", "exclude")}
POOLINGS = ("macro", "pooled", "per_scenario")
AGGREGATES = ("mean_of_ratios", "ratio_of_means")
DIMENSIONS = ("pairs", "attack", "threshold", "denominator", "pooling", "quantity", "aggregate")
DEFAULTS: dict[str, Any] = {
    "attack": "baseline",
    "threshold": 4.0,
    "denominator": "all",
    "pooling": "macro",
    "aggregate": "mean_of_ratios",
}
ALLOWED: dict[str, Sequence[str]] = {
    "denominator": tuple(DENOMINATORS),
    "pooling": POOLINGS,
    "quantity": QUANTITIES,
    "aggregate": AGGREGATES,
}
SOURCE_VERDICTS = ("reproduced", "not reproduced", "not computable")
# An attack option "REASONING_SETTING vs BASE_SETTING": the reasoning models read under one
# setting, their base models under another (e.g. jailbreak_method vs baseline).
VERSUS = " vs "
NOT_PAIRED = "needs per-sample (reasoning, answer) pairs; the release has only histograms"


@dataclass
class SourceCell:
    """One published number and the definition variants to recompute it under."""

    id: str
    source: str
    description: str
    artifact: str
    metric: str
    expected: float
    tolerance: float
    category: str = MEAN
    scale: float = 1.0
    protocol: str = ""
    options: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)  # dimension -> (label, value)

    def combinations(self) -> list[dict[str, tuple[str, Any]]]:
        """Every combination of the dimensions' options, in YAML order (``report.audit.variants``
        keeps the distinct ones)."""
        dims = list(self.options)
        return [dict(zip(dims, combo, strict=True)) for combo in itertools.product(*self.options.values())]

    def varied(self) -> list[str]:
        """The dimensions with more than one option (those a variant's label names)."""
        return [d for d, opts in self.options.items() if len(opts) > 1]


def _pairs(value: Any, where: str, path: Path, index: int) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not value or any(not isinstance(p, list) or len(p) != 2 for p in value):
        raise InputError(
            f"{where}: pairs must be a non-empty list of [reasoning, base]", path=path, record=index
        )
    return [(str(a), str(b)) for a, b in value]


def _options(raw: Mapping[str, Any], where: str, path: Path, index: int) -> dict[str, list[tuple[str, Any]]]:
    variants = raw.get("variants") or {}
    if not isinstance(variants, dict) or set(variants) - set(DIMENSIONS):
        raise InputError(
            f"{where}: variants must map some of {DIMENSIONS} to options", path=path, record=index
        )
    out: dict[str, list[tuple[str, Any]]] = {}
    for dim in DIMENSIONS:
        if dim == "pairs":
            named = variants.get("pairs") or {"pairs": raw.get("pairs")}
            if not isinstance(named, dict):
                raise InputError(
                    f"{where}: variants.pairs must map names to pair lists", path=path, record=index
                )
            out[dim] = [(str(k), _pairs(v, where, path, index)) for k, v in named.items()]
            continue
        values = variants.get(dim, [raw.get(dim, DEFAULTS.get(dim))])
        if not isinstance(values, list) or not values or values == [None]:
            raise InputError(
                f"{where}: {dim} must be given (or a non-empty variants list)", path=path, record=index
            )
        if dim == "threshold":
            try:
                values = [float(v) for v in values]
            except (TypeError, ValueError) as exc:
                raise InputError(f"{where}: threshold: {exc}", path=path, record=index) from exc
            if any(not 1.0 <= v <= 5.0 for v in values):
                raise InputError(f"{where}: threshold must be in [1, 5]", path=path, record=index)
            out[dim] = [(f">={v:g}", v) for v in values]
            continue
        if dim == "attack":
            out[dim] = [_attack(v, where, path, index) for v in values]
            continue
        bad = [v for v in values if dim in ALLOWED and v not in ALLOWED[dim]]
        if bad:
            raise InputError(
                f"{where}: {dim} {bad[0]!r} is not one of {ALLOWED[dim]}", path=path, record=index
            )
        out[dim] = [(str(v), str(v)) for v in values]
    return out


def _attack(value: Any, where: str, path: Path, index: int) -> tuple[str, tuple[str, str]]:
    """(label, (reasoning models' setting, base models' setting)) of one attack option."""
    text = str(value).strip()
    reasoning, sep, base = (part.strip() for part in text.partition(VERSUS))
    if not reasoning or (sep and not base):
        raise InputError(
            f"{where}: attack {value!r} must be a setting or 'REASONING{VERSUS}BASE'", path=path, record=index
        )
    if sep and base != reasoning:
        return f"{reasoning}{VERSUS}{base}", (reasoning, base)
    return reasoning, (reasoning, reasoning)


def source_cell_from(raw: Mapping[str, Any], path: Path, index: int, source: str) -> SourceCell:
    """A validated :class:`SourceCell` from one YAML mapping that has ``artifact``."""
    where = f"cell {raw.get('id', index)!r}"
    for key in ("id", "expected", "metric"):
        if key not in raw:
            raise InputError(f"{where} has no {key!r}", path=path, record=index)
    if raw["metric"] not in RATE_METRICS:
        raise InputError(
            f"{where}: metric {raw['metric']!r} is not one of {RATE_METRICS}", path=path, record=index
        )
    try:
        numbers = [float(raw["expected"]), float(raw.get("tolerance", 0.0)), float(raw.get("scale", 1.0))]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}", path=path, record=index) from exc
    options = _options(raw, where, path, index)
    category = str(raw.get("category", MEAN))
    if category == MEAN and any(q == "tax_ratio" for _, q in options["quantity"]):
        raise InputError(
            f"{where}: quantity tax_ratio needs a category (a scenario)", path=path, record=index
        )
    return SourceCell(
        id=str(raw["id"]),
        source=str(raw.get("source", source)),
        description=str(raw.get("description", "")),
        artifact=str(raw["artifact"]),
        metric=str(raw["metric"]),
        expected=numbers[0],
        tolerance=numbers[1],
        category=category,
        scale=numbers[2],
        protocol=str(raw.get("protocol", "")),
        options=options,
    )


def audit_row(cell: Any) -> dict[str, Any]:
    """A cell's row of the audit table before anything is recomputed: verdict ``absent``.

    The same columns for cells recomputed from judgments and for cells naming an imported
    release (``low`` … ``provenance`` are only filled for the latter).
    """
    return {
        "id": cell.id,
        "source": cell.source,
        "description": cell.description,
        "expected": cell.expected,
        "recomputed": math.nan,
        "tolerance": cell.tolerance,
        "verdict": "absent",
        "artifact_md5": "",
        "pin": "",
        "detail": "",
        "low": math.nan,
        "high": math.nan,
        "reproducing": "",
        "closest": "",
        "provenance": "",
        "protocol": cell.protocol,
    }
