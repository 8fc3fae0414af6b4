"""The training pool: every configured source, capped, with categories mapped to one taxonomy.

Each source keeps its own label set (BeaverTails-V harm-category configs, SPA-VL
``class1``, VLGuard ``harmful_category``); :data:`LABEL_FIELDS` says where each source's
label and finer *subcategory* come from. A row becomes a taxonomy category by the first
step that applies:

1. the label is empty and the row is benign (``should_refuse`` False) → ``benign`` (when
   the taxonomy has it); nothing below can swallow these rows (VLGuard ``safe_safes``);
2. the first of the source's ``category_rules`` whose ``when`` matches the row → its
   ``category``. ``when`` holds any of ``subset``, ``label`` and ``subcategory`` (exact
   strings; ``""`` matches an empty value) and matches when all of them do;
3. the source's ``category_map`` names the label → the mapped category;
4. the label already is a taxonomy category (or ``other``) → itself;
5. otherwise → ``other``: *unmapped*, counted per source by label (``unmapped``) and by
   (subset, label, subcategory) (``unmapped_rows``) in the summary, and logged.

The source label is kept in the row's ``meta`` JSON as ``source_category``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm.config import CategoryRule, SourceSpec, from_dict
from safervlm.errors import ConfigError, InputError
from safervlm.schema import POOL_EXTRA, SAMPLE_COLUMNS
from safervlm.sources import list_sources, load_source

logger = logging.getLogger(__name__)

OTHER = "other"
BENIGN = "benign"

# source -> (where the row's label comes from, the meta field holding its subcategory or None);
# as the readers in safervlm.sources put them.
LABEL_FIELDS: dict[str, tuple[str, str | None]] = {
    "beavertails_v": ("`category` column (the harm-category config folder when null)", None),
    "spa_vl": ("`class1` column (harm domain)", "class2"),
    "vlguard_train": ("`harmful_category` of unsafe images (safe images carry none)", "harmful_subcategory"),
}
# How a row got its category (the summary's ``category_routes``).
ROUTES = ("benign", "rule", "category_map", "taxonomy", "unmapped")
_UNMAPPED_KEEP = 50  # rows of ``unmapped_rows`` kept per source (largest groups first)


def parse_rule(name: str, index: int, rule: CategoryRule, allowed: set[str]) -> None:
    """Check entry ``index`` of ``sources.<name>.category_rules`` against the source and taxonomy.

    Raises:
        ConfigError: naming ``sources.<name>.category_rules[<index>]``: an empty ``when``, a
            ``subcategory`` for a source whose rows carry none, or a category outside the
            taxonomy. (Keys and types are checked by :class:`SourceSpec`.)
    """
    where = f"sources.{name}.category_rules[{index}]"
    given = rule.when.model_dump(exclude_none=True)
    if not given:
        raise ConfigError(f"{where}.when names no condition; use subset, label and/or subcategory")
    if "subcategory" in given and LABEL_FIELDS.get(name, ("", None))[1] is None:
        raise ConfigError(f"{where}.when: {name} rows carry no subcategory to match")
    if rule.category not in allowed:
        raise ConfigError(
            f"{where} maps to category {rule.category!r}, which is not in curate.taxonomy {sorted(allowed)}"
        )


def parse_sources(sources: dict[str, Any], taxonomy: list[str]) -> dict[str, SourceSpec]:
    """Validate the ``sources`` section against the known sources and the taxonomy.

    Raises:
        ConfigError: an unknown source, a missing root, a bad key, a ``category_map``
            value outside the taxonomy (the message names source and label), or a bad
            ``category_rules`` entry (the message names source and rule index).
    """
    if not sources:
        raise ConfigError("config section 'sources' lists no training source")
    allowed = set(taxonomy) | {OTHER}
    specs: dict[str, SourceSpec] = {}
    for name, entry in sources.items():
        if name not in list_sources():
            raise ConfigError(f"unknown training source {name!r}; known sources: {', '.join(list_sources())}")
        rules = entry.get("category_rules") if isinstance(entry, dict) else None
        for i, rule in enumerate(rules if isinstance(rules, list) else []):
            if not isinstance(rule, dict):
                raise ConfigError(
                    f"sources.{name}.category_rules[{i}] must be a mapping {{when: {{...}}, category: ...}}, "
                    f"got {rule!r}"
                )
        spec = from_dict(SourceSpec, entry, section=f"sources.{name}")
        if not spec.root:
            raise ConfigError(f"sources.{name}.root is not set")
        for label, cat in spec.category_map.items():
            if cat not in allowed:
                raise ConfigError(
                    f"sources.{name}.category_map maps {label!r} to {cat!r}, which is not in "
                    f"curate.taxonomy {sorted(allowed)}"
                )
        for i, rule in enumerate(spec.category_rules):
            parse_rule(name, i, rule, allowed)
        specs[name] = spec
    return specs


def route_category(
    label: str,
    should_refuse: Any,
    spec: SourceSpec,
    taxonomy: set[str],
    *,
    subset: str = "",
    subcategory: str = "",
) -> tuple[str, str]:
    """``(category, route)`` of a row (module docstring steps; route is one of :data:`ROUTES`)."""
    if not label and should_refuse is False and BENIGN in taxonomy:
        return BENIGN, "benign"
    for rule in spec.category_rules:
        if rule.matches(subset, label, subcategory):
            return rule.category, "rule"
    if label in spec.category_map:
        return spec.category_map[label], "category_map"
    if label in taxonomy or label == OTHER:
        return label, "taxonomy"
    return OTHER, "unmapped"


def map_category(label: str, should_refuse: Any, spec: SourceSpec, taxonomy: set[str], **where: str) -> str:
    """The taxonomy category of a row (:func:`route_category` without the route)."""
    return route_category(label, should_refuse, spec, taxonomy, **where)[0]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _with_category(
    row: dict[str, Any], spec: SourceSpec, taxonomy: set[str], subcategory_field: str | None
) -> tuple[dict[str, Any], str, str]:
    """The row with its taxonomy category, the route taken and the row's subcategory."""
    label = str(row.get("category") or "")
    meta = json.loads(row["meta"]) if row.get("meta") else {}
    subcategory = _text(meta.get(subcategory_field)) if subcategory_field else ""
    category, route = route_category(
        label,
        row.get("should_refuse"),
        spec,
        taxonomy,
        subset=_text(row.get("subset")),
        subcategory=subcategory,
    )
    meta["source_category"] = label
    return (
        {**row, "category": category, "meta": json.dumps(meta, sort_keys=True, default=str)},
        route,
        subcategory,
    )


def build_pool(
    specs: dict[str, SourceSpec], taxonomy: list[str], seed: int = 0
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read every source (capped), map categories, and return the pool and its summary.

    Returns:
        ``(pool, summary)``: pool rows in ``SAMPLE_COLUMNS + POOL_EXTRA`` order (sources in
        config order, rows in file order); the summary holds counts per source, per
        category, per source and category, the unmapped labels per source (``unmapped``),
        the unmapped rows per source by (subset, label, subcategory) (``unmapped_rows``,
        largest groups first) and per source where its categories came from
        (``category_sources``: label and subcategory fields, rows carrying a label or
        subcategory, rows per route of :data:`ROUTES`).

    Raises:
        InputError: a bad source copy (from the readers) or ids repeated across sources.
    """
    tax = set(taxonomy)
    frames = []
    unmapped: dict[str, dict[str, int]] = {}
    unmapped_rows: dict[str, list[dict[str, Any]]] = {}
    provenance: dict[str, dict[str, Any]] = {}
    for name, spec in specs.items():
        rows = load_source(name, Path(str(spec.root)), spec.cap, seed=seed, configs=spec.configs)
        label_field, sub_field = LABEL_FIELDS.get(name, ("`category`", None))
        mapped_rows, missing, groups = [], Counter[str](), Counter[tuple[str, str, str]]()
        routes = Counter[str]()
        with_label = with_sub = 0
        for row in rows:
            new, route, sub = _with_category(row, spec, tax, sub_field)
            mapped_rows.append(new)
            routes[route] += 1
            label = str(row.get("category") or "")
            with_label += bool(label)
            with_sub += bool(sub)
            if route == "unmapped":
                missing[label] += 1
                groups[(_text(row.get("subset")), label, sub)] += 1
        provenance[name] = {
            "label_field": label_field,
            "subcategory_field": sub_field,
            "rows": len(rows),
            "with_label": with_label,
            "with_subcategory": with_sub,
            "n_rules": len(spec.category_rules),
            "routes": {r: routes.get(r, 0) for r in ROUTES},
            "unmapped_groups": len(groups),
        }
        if missing:
            unmapped[name] = dict(sorted(missing.items()))
            ordered = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))
            unmapped_rows[name] = [
                {"subset": s, "label": lab, "subcategory": sub, "n": n} for (s, lab, sub), n in ordered
            ][:_UNMAPPED_KEEP]
            logger.warning(
                "%s: %d rows match no category rule, have source labels outside curate.taxonomy and no "
                "category_map entry; they go to %r. By (subset, label, subcategory): %s",
                name,
                sum(missing.values()),
                OTHER,
                dict(ordered[:10]),
            )
        if rows and not with_label and not spec.category_rules:
            logger.warning(
                "%s: no row carries a source label (%s); its rows are %r unless benign or mapped by "
                "sources.%s.category_rules",
                name,
                label_field,
                OTHER,
                name,
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
        "unmapped_rows": unmapped_rows,
        "category_sources": provenance,
        "taxonomy": sorted(tax | {OTHER}),
        "seed": seed,
    }
    return pool, summary


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(values.astype(str).value_counts().items())}
