"""The training pool: every configured source, capped, with categories mapped to one taxonomy.

Each source keeps its own label set (BeaverTails-V harm-category configs, SPA-VL
``class1``, VLGuard ``harmful_category``). A row's source label becomes a taxonomy
category by the first rule that applies:

1. the source's ``category_map`` names the label → the mapped category;
2. the label already is a taxonomy category → itself;
3. the label is empty and the row is benign (``should_refuse`` False) → ``benign``
   (when the taxonomy has it);
4. otherwise → ``other`` (counted per source and label, and logged as a warning).

The source label is kept in the row's ``meta`` JSON as ``source_category``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm.config import from_dict
from safervlm.data.sources import list_sources, load_source
from safervlm.errors import ConfigError, InputError
from safervlm.schema import POOL_EXTRA, SAMPLE_COLUMNS

logger = logging.getLogger(__name__)

OTHER = "other"
BENIGN = "benign"


@dataclass
class PoolParams:
    """Pool settings (keys of the ``curate`` config section)."""

    taxonomy: list[str] = field(default_factory=lambda: [BENIGN])


@dataclass
class SourceSpec:
    """One entry of the ``sources`` config section."""

    root: str | None = None
    cap: int | None = None
    configs: list[str] | None = None
    category_map: dict[str, str] = field(default_factory=dict)


def parse_sources(sources: dict[str, Any], taxonomy: list[str]) -> dict[str, SourceSpec]:
    """Validate the ``sources`` section against the known sources and the taxonomy.

    Raises:
        ConfigError: an unknown source, a missing root, a bad key, or a ``category_map``
            value outside the taxonomy (the message names source and label).
    """
    if not sources:
        raise ConfigError("config section 'sources' lists no training source")
    allowed = set(taxonomy) | {OTHER}
    specs: dict[str, SourceSpec] = {}
    for name, entry in sources.items():
        if name not in list_sources():
            raise ConfigError(f"unknown training source {name!r}; known sources: {', '.join(list_sources())}")
        spec = from_dict(SourceSpec, entry, section=f"sources.{name}")
        if not spec.root:
            raise ConfigError(f"sources.{name}.root is not set")
        for label, cat in spec.category_map.items():
            if cat not in allowed:
                raise ConfigError(
                    f"sources.{name}.category_map maps {label!r} to {cat!r}, which is not in "
                    f"curate.taxonomy {sorted(allowed)}"
                )
        specs[name] = spec
    return specs


def map_category(label: str, should_refuse: Any, spec: SourceSpec, taxonomy: set[str]) -> str:
    """The taxonomy category of a row with source label ``label`` (module docstring rules)."""
    if label in spec.category_map:
        return spec.category_map[label]
    if label in taxonomy:
        return label
    if not label and should_refuse is False and BENIGN in taxonomy:
        return BENIGN
    return OTHER


def _with_category(row: dict[str, Any], spec: SourceSpec, taxonomy: set[str]) -> tuple[dict[str, Any], bool]:
    label = str(row.get("category") or "")
    category = map_category(label, row.get("should_refuse"), spec, taxonomy)
    meta = json.loads(row["meta"]) if row.get("meta") else {}
    meta["source_category"] = label
    mapped = category != OTHER or label == OTHER or label in spec.category_map
    return {**row, "category": category, "meta": json.dumps(meta, sort_keys=True, default=str)}, mapped


def build_pool(
    specs: dict[str, SourceSpec], taxonomy: list[str], seed: int = 0
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read every source (capped), map categories, and return the pool and its summary.

    Returns:
        ``(pool, summary)``: pool rows in ``SAMPLE_COLUMNS + POOL_EXTRA`` order (sources in
        config order, rows in file order); the summary holds counts per source, per
        category, per source and category, and the unmapped labels per source.

    Raises:
        InputError: a bad source copy (from the readers) or ids repeated across sources.
    """
    tax = set(taxonomy)
    frames = []
    unmapped: dict[str, dict[str, int]] = {}
    for name, spec in specs.items():
        rows = load_source(name, Path(str(spec.root)), spec.cap, seed=seed, configs=spec.configs)
        mapped_rows, missing = [], Counter[str]()
        for row in rows:
            new, ok = _with_category(row, spec, tax)
            mapped_rows.append(new)
            if not ok:
                missing[str(row.get("category") or "")] += 1
        if missing:
            unmapped[name] = dict(sorted(missing.items()))
            logger.warning(
                "%s: %d rows have source labels outside curate.taxonomy and no category_map entry; "
                "they go to %r: %s",
                name,
                sum(missing.values()),
                OTHER,
                dict(missing.most_common(10)),
            )
        frames.append(pd.DataFrame(mapped_rows, columns=SAMPLE_COLUMNS + POOL_EXTRA))
    pool = pd.concat(frames, ignore_index=True)
    dup = pool["id"].duplicated()
    if dup.any():
        raise InputError("id repeated across training sources", record=pool.loc[dup, "id"].iloc[0])
    summary = {
        "n": len(pool),
        "by_source": {n: int((pool["source"] == n).sum()) for n in specs},
        "by_category": _counts(pool["category"]),
        "by_source_category": {n: _counts(pool.loc[pool["source"] == n, "category"]) for n in specs},
        "caps": {n: s.cap for n, s in specs.items()},
        "unmapped": unmapped,
        "taxonomy": sorted(tax | {OTHER}),
        "seed": seed,
    }
    return pool, summary


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(values.astype(str).value_counts().items())}
