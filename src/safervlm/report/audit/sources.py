"""Cells recomputed from an imported third-party release, under every definition variant.

A *source cell* names an imported artifact (``artifact: opensafemlrm``, a folder pinned by
``safervlm import-artifact`` / ``dvc import``) instead of models to evaluate. Papers leave
definitions open, so the cell lists, as data, the variants of each definition it could
mean (``variants:``); a dimension given as a plain key is fixed. Dimensions:

``pairs``
    (reasoning model, base model) lists; under ``variants`` a mapping name -> pair list.
``attack``
    the release's setting: ``baseline`` (plain) or ``jailbreak_method``; a mixed setting
    ``A vs B`` reads the reasoning models under ``A`` and their base models under ``B``
    (e.g. ``jailbreak_method vs baseline``: reasoning models under jailbreak minus base
    models on plain queries).
``threshold``
    attack success: harm score >= threshold (4, or 5 i.e. "= 5" on the 1-5 scale).
``denominator``
    ``all`` (empty and refused parts count, never as successes), ``scored`` (empty parts
    left out), ``answered`` (empty and keyword-refused parts left out).
``pooling``
    ``macro`` (the quantity of the unweighted means over scenarios), ``pooled`` (every
    sample together) or ``per_scenario`` (the quantity per scenario, then the unweighted
    mean over scenarios: e.g. the mean of per-scenario ratios); only for
    ``category: (mean)``.
``quantity``
    ``rate`` (the reasoning models'), ``difference`` (reasoning minus base, points),
    ``relative`` ((reasoning - base) / base), ``ratio`` (reasoning / base: the abstract's
    "N x higher attack rates", a ratio of attack rates), ``tax_ratio`` (our blind-spot
    ratio, ``metrics.blind_spots``: the scenario's Reasoning Tax over the mean tax over
    scenarios; a different quantity, kept apart by name), ``self_correction`` (the
    reasoning models').
``aggregate``
    over pairs: ``mean_of_ratios`` (the quantity per pair, then the mean) or
    ``ratio_of_means`` (the quantity of the pairs' mean rates).

Combinations that cannot differ (e.g. ``aggregate`` for a difference) are one variant
(``report.audit.variants``). Every variant goes through the one metrics path
(``evaluate.opensafemlrm`` -> ``metrics``). Verdicts: ``reproduced`` (some variant within
tolerance), ``not reproduced`` (none; the closest is named), ``not computable`` (no variant
gives a value: self-correction from histograms reports the Fréchet bounds the marginals
allow, over the reasoning models that have a reasoning/answer split, naming those left
out), ``absent`` (not imported).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm.evaluate.opensafemlrm import import_opensafemlrm
from safervlm.metrics import MEAN, Settings, analyse
from safervlm.metrics.bounds import self_correction_bounds
from safervlm.report.audit.artifacts import dvc_pin_status, dvc_provenance
from safervlm.report.audit.definitions import (
    BENCHMARK,
    DENOMINATORS,
    NOT_PAIRED,
    POOLED,
    SourceCell,
    audit_row,
)
from safervlm.report.audit.quantities import ReleaseRates, combine, mean_of, per_scenario
from safervlm.report.audit.variants import USES_BASE, Variant, distinct_variants

# --- recomputation --------------------------------------------------------------------


class _Release:
    """One imported release, analysed once per (threshold, denominator, pooling)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[tuple[float, str, str], tuple[ReleaseRates, pd.DataFrame]] = {}

    def tables(self, threshold: float, denominator: str, pooling: str) -> tuple[ReleaseRates, pd.DataFrame]:
        """(rates, self-correction bounds) of one setting; ``pooling`` macro or pooled."""
        key = (threshold, denominator, pooling)
        if key not in self._cache:
            missing, refused = DENOMINATORS[denominator]
            outcomes = import_opensafemlrm(self.root, BENCHMARK, threshold, refused)
            if pooling == "pooled":
                outcomes = outcomes.assign(category=POOLED)
            settings = Settings(threshold=threshold, missing=missing, n_bootstrap=0)
            rates = analyse(outcomes, (), settings)["rates"]
            self._cache[key] = (ReleaseRates(rates), self_correction_bounds(outcomes))
        return self._cache[key]


def _left_out(sel: pd.DataFrame, model: str) -> str:
    """Why ``model`` gives no self-correction bounds (``sel``: the bounds of one setting)."""
    if model not in sel.index:
        return f"{model} (not in this setting)"
    if int(sel["n_reasoning"].get(model, 0)) == 0:
        return f"{model} (no reasoning/answer split: every reasoning part is empty)"
    return f"{model} (no unsafe reasoning)"


def _bounds(cell: SourceCell, bounds: pd.DataFrame, v: Variant, category: str) -> dict[str, Any]:
    """Self-correction from histograms: the mean of the Fréchet bounds over the reasoning
    models that have them; the pairs left out are named."""
    sel = bounds[(bounds["attack"] == v.attack[0]) & (bounds["category"] == category)].set_index("model")
    kept, left = [], []
    for a, _ in v.pairs:
        low, high = (float(sel[c].get(a, math.nan)) for c in ("low", "high"))
        if math.isnan(low):
            left.append(_left_out(sel, a))
        else:
            kept.append((low, high))
    note = NOT_PAIRED
    if left:
        note += f"; bounds over {len(kept)} of {len(v.pairs)} pairs, left out: " + ", ".join(left)
    if not kept:
        return {"low": math.nan, "high": math.nan, "note": note}
    low, high = mean_of([lo for lo, _ in kept]) * cell.scale, mean_of([hi for _, hi in kept]) * cell.scale
    return {"low": low, "high": high, "note": note, "left_out": left}


def _not_computable(cell: SourceCell, rows: pd.DataFrame, low: float, high: float) -> str:
    """The detail of a cell no variant gives a value for: why, and (for bounds) the pairs left
    out of them (in how many of the bounded variants) and where the published number lies."""
    bounded = rows.dropna(subset=["low"])
    notes = dict.fromkeys(n for n in rows.loc[rows["low"].isna(), "note"] if n)
    if bounded.empty:
        return "; ".join(notes)
    notes[NOT_PAIRED] = None
    counts: dict[str, int] = {}
    for left in bounded["left_out"]:
        for entry in left if isinstance(left, list) else []:
            counts[entry] = counts.get(entry, 0) + 1
    if counts:
        n = len(bounded)
        parts = [f"{e}{'' if k == n else f' in {k} of {n} variants'}" for e, k in counts.items()]
        notes["left out of the bounds: " + ", ".join(parts)] = None
    inside = "inside" if low <= cell.expected <= high else "outside"
    notes[f"the marginals allow [{low:.4g}, {high:.4g}] ({inside})"] = None
    return "; ".join(notes)


def _label_out(cell: SourceCell, v: Variant) -> dict[str, Any]:
    return {"id": cell.id, "variant": v.label, "value": math.nan, "low": math.nan, "high": math.nan}


def _variant(cell: SourceCell, release: _Release, v: Variant) -> dict[str, Any]:
    """The value (or bounds) of one variant, on the cell's scale, and a note where none."""
    (ra, ba), quantity = v.attack, v.quantity
    pooled = v.pooling == "pooled"
    category = POOLED if pooled else cell.category
    look, bounds = release.tables(v.threshold, v.denominator, "pooled" if pooled else "macro")
    out = _label_out(cell, v)
    uses_base = quantity in USES_BASE
    models = {m for p in v.pairs for m in (p if uses_base else p[:1])}
    if models - look.models:
        return {**out, "note": f"models {sorted(models - look.models)} not in the release"}
    metric = "self_correction" if quantity == "self_correction" else cell.metric
    r = [look.rate(a, ra, category, metric) for a, _ in v.pairs]
    b = [look.rate(base, ba, category, metric) for _, base in v.pairs]
    if quantity == "self_correction" and any(math.isnan(x) for x in r):
        return {**out, **_bounds(cell, bounds, v, category)}
    if any(math.isnan(x) for x in r) or (uses_base and any(math.isnan(x) for x in b)):
        return {**out, "note": f"no {metric} rate for {ra if ra == ba else f'{ra}/{ba}'}/{category}"}
    note = ""
    if v.pooling == "per_scenario":
        value, note = per_scenario(look, v, metric)
    elif quantity == "tax_ratio":
        # the scenario's tax over the mean tax (metrics.blind_spots): r, b at the scenario,
        # rm, bm at the unweighted mean over scenarios
        rm = [look.rate(a, ra, MEAN, metric) for a, _ in v.pairs]
        bm = [look.rate(base, ba, MEAN, metric) for _, base in v.pairs]
        taxes = [x - y for x, y in zip(r, b, strict=True)]
        means = [x - y for x, y in zip(rm, bm, strict=True)]
        value = combine("ratio", v.aggregate, taxes, means)
    else:
        value = combine(quantity, v.aggregate, r, b)
    value *= cell.scale
    if math.isnan(value):
        note = "division by 0 (a base rate or the mean tax)"
    return {**out, "value": value, "low": value, "high": value, "note": note}


def _merged(n_combinations: int, n_variants: int, reasons: list[str]) -> str:
    """What the variant count means: combinations listed, distinct ones, and why merged."""
    if n_combinations == n_variants:
        return ""
    return f"; {n_combinations} combinations, {n_variants} distinct ({'; '.join(reasons)})"


def _verdict(cell: SourceCell, rows: pd.DataFrame, merged: str = "") -> dict[str, Any]:
    """Verdict, range, reproducing and closest variants; ``merged`` (:func:`_merged`) is
    appended to the detail."""
    values = rows.dropna(subset=["value"])
    bounded = rows.dropna(subset=["low"])
    out: dict[str, Any] = {
        "recomputed": math.nan,
        "low": math.nan,
        "high": math.nan,
        "reproducing": "",
        "closest": "",
    }
    if not bounded.empty:
        out["low"], out["high"] = float(bounded["low"].min()), float(bounded["high"].max())
    if values.empty:
        detail = _not_computable(cell, rows, out["low"], out["high"])
        return {**out, "verdict": "not computable", "detail": detail + merged}
    off = (values["value"] - cell.expected).abs()
    hits = values[off <= cell.tolerance]
    best = values.iloc[int(off.to_numpy().argmin())]
    out["closest"] = f"{best['variant']}: {best['value']:.6g}"
    out["recomputed"] = float(best["value"])
    if not hits.empty:
        return {
            **out,
            "verdict": "reproduced",
            "reproducing": "; ".join(hits["variant"]),
            "detail": f"{len(hits)} of {len(rows)} variants within {cell.tolerance:g}{merged}",
        }
    return {
        **out,
        "verdict": "not reproduced",
        "detail": f"no variant of {len(rows)} within {cell.tolerance:g}; "
        f"closest off by {best['value'] - cell.expected:+.6g}{merged}",
    }


def audit_source_cells(
    cells: Sequence[SourceCell], artifacts: Mapping[str, str | os.PathLike[str]]
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """One row per source cell (verdict, range, reproducing and closest variants, provenance)
    and one row per (cell, variant).

    ``artifacts`` maps an artifact name to its imported folder; its ``<folder>.dvc`` file (as
    ``dvc import`` writes it) gives the provenance.
    """
    releases: dict[str, _Release] = {}
    pins: dict[str, str] = {}
    rows, variants = [], []
    for cell in cells:
        row = audit_row(cell)
        folder = artifacts.get(cell.artifact)
        if folder is None or not Path(folder).is_dir():
            row["detail"] = f"artifact {cell.artifact!r} not imported (safervlm import-artifact)"
            rows.append(row)
            continue
        dvc_file = Path(f"{folder}.dvc")
        prov = dvc_provenance(dvc_file)
        row["provenance"], row["artifact_md5"] = prov["text"], prov["md5"]
        if cell.artifact not in pins:  # once per release: dvc status takes a second
            pins[cell.artifact] = dvc_pin_status(dvc_file)
        row["pin"] = pins[cell.artifact]
        release = releases.setdefault(cell.artifact, _Release(Path(folder)))
        distinct, reasons = distinct_variants(cell)
        table = pd.DataFrame([_variant(cell, release, v) for v in distinct])
        variants.append(table)
        merged = _merged(len(cell.combinations()), len(distinct), reasons)
        rows.append({**row, **_verdict(cell, table, merged)})
    cols = ["id", "variant", "value", "low", "high", "note"]
    return rows, (pd.concat(variants, ignore_index=True)[cols] if variants else pd.DataFrame(columns=cols))
