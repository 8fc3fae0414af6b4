"""Cells recomputed from an imported third-party release, under every definition variant.

A *source cell* names an imported artifact (``artifact: opensafemlrm``, a folder pinned by
``safervlm import-artifact`` / ``dvc import``) instead of models to evaluate. Papers leave
definitions open, so the cell lists, as data, the variants of each definition it could
mean (``variants:``); a dimension given as a plain key is fixed. Dimensions:

``pairs``
    (reasoning model, base model) lists; under ``variants`` a mapping name -> pair list.
``attack``
    the release's setting: ``baseline`` (plain) or ``jailbreak_method``.
``threshold``
    attack success: harm score >= threshold (4, or 5 i.e. "= 5" on the 1-5 scale).
``denominator``
    ``all`` (empty and refused parts count, never as successes), ``scored`` (empty parts
    left out), ``answered`` (empty and keyword-refused parts left out).
``pooling``
    ``macro`` (unweighted mean over scenarios) or ``pooled`` (every sample together); only
    for ``category: (mean)``.
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

Every variant goes through the one metrics path (``evaluate.opensafemlrm`` -> ``metrics``).
Verdicts: ``reproduced`` (some variant within tolerance), ``not reproduced`` (none; the
closest is named), ``not computable`` (no variant gives a value: self-correction from
histograms reports the Fréchet bounds the marginals allow), ``absent`` (not imported).
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

# --- recomputation --------------------------------------------------------------------


class _Release:
    """One imported release, analysed once per (threshold, denominator, pooling)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[tuple[float, str, str], tuple[dict[tuple[str, ...], float], pd.DataFrame]] = {}

    def tables(
        self, threshold: float, denominator: str, pooling: str
    ) -> tuple[dict[tuple[str, ...], float], pd.DataFrame]:
        """(rates by (model, attack, category, metric), self-correction bounds) of one setting."""
        key = (threshold, denominator, pooling)
        if key not in self._cache:
            missing, refused = DENOMINATORS[denominator]
            outcomes = import_opensafemlrm(self.root, BENCHMARK, threshold, refused)
            if pooling == "pooled":
                outcomes = outcomes.assign(category=POOLED)
            rates = analyse(outcomes, (), Settings(threshold=threshold, missing=missing, n_bootstrap=0))[
                "rates"
            ]
            look: dict[tuple[str, ...], float] = {
                (str(r["model"]), str(r["attack"]), str(r["category"]), str(r["metric"])): float(r["value"])
                for r in rates[rates["benchmark"] == BENCHMARK].to_dict("records")
            }
            self._cache[key] = (look, self_correction_bounds(outcomes))
        return self._cache[key]


def _combine(quantity: str, aggregate: str, r: list[float], b: list[float]) -> float:
    def one(x: float, y: float) -> float:
        if quantity in ("rate", "self_correction"):
            return x
        if quantity == "difference":
            return x - y
        if y == 0:
            return math.nan  # a ratio over a base rate of 0 is undefined
        return (x - y) / y if quantity == "relative" else x / y

    if aggregate == "ratio_of_means":
        return one(sum(r) / len(r), sum(b) / len(b))
    return sum(one(x, y) for x, y in zip(r, b, strict=True)) / len(r)


def _variant(cell: SourceCell, release: _Release, v: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """The value (or bounds) of one variant, on the cell's scale, and a note where none."""
    pairs, attack, quantity = v["pairs"][1], v["attack"][1], v["quantity"][1]
    pooling = v["pooling"][1] if cell.category == MEAN else "macro"
    category = POOLED if pooling == "pooled" else cell.category
    look, bounds = release.tables(v["threshold"][1], v["denominator"][1], pooling)
    label = (
        ", ".join(f"{d}{'' if v[d][0].startswith('>') else '='}{v[d][0]}" for d in cell.varied())
        or "as stated"
    )
    out: dict[str, Any] = {
        "id": cell.id,
        "variant": label,
        "value": math.nan,
        "low": math.nan,
        "high": math.nan,
    }
    models = (
        {m for p in pairs for m in p}
        if quantity not in ("rate", "self_correction")
        else {a for a, _ in pairs}
    )
    known = {m for m, *_ in look}
    if models - known:
        return {**out, "note": f"models {sorted(models - known)} not in the release"}
    metric = "self_correction" if quantity == "self_correction" else cell.metric
    r = [look.get((a, attack, category, metric), math.nan) for a, _ in pairs]
    b = [look.get((base, attack, category, metric), math.nan) for _, base in pairs]
    if quantity == "self_correction" and any(math.isnan(x) for x in r):
        sel = bounds[(bounds["attack"] == attack) & (bounds["category"] == category)].set_index("model")
        lows = [float(sel["low"].get(a, math.nan)) for a, _ in pairs]
        highs = [float(sel["high"].get(a, math.nan)) for a, _ in pairs]
        low, high = sum(lows) / len(lows) * cell.scale, sum(highs) / len(highs) * cell.scale
        return {**out, "low": low, "high": high, "note": NOT_PAIRED}
    if any(math.isnan(x) for x in r) or (
        quantity not in ("rate", "self_correction") and any(math.isnan(x) for x in b)
    ):
        return {**out, "note": f"no {metric} rate for {attack}/{category}"}
    if quantity == "tax_ratio":
        # the scenario's tax over the mean tax (metrics.blind_spots): r, b at the scenario,
        # rm, bm at the unweighted mean over scenarios
        rm = [look.get((a, attack, MEAN, metric), math.nan) for a, _ in pairs]
        bm = [look.get((base, attack, MEAN, metric), math.nan) for _, base in pairs]
        taxes = [x - y for x, y in zip(r, b, strict=True)]
        means = [x - y for x, y in zip(rm, bm, strict=True)]
        value = _combine("ratio", v["aggregate"][1], taxes, means) * cell.scale
    else:
        value = _combine(quantity, v["aggregate"][1], r, b) * cell.scale
    return {
        **out,
        "value": value,
        "low": value,
        "high": value,
        "note": "" if not math.isnan(value) else "division by 0 (a base rate or the mean tax)",
    }


def _verdict(cell: SourceCell, rows: pd.DataFrame) -> dict[str, Any]:
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
        notes = "; ".join(dict.fromkeys(n for n in rows["note"] if n))
        inside = "inside" if out["low"] <= cell.expected <= out["high"] else "outside"
        extra = (
            f"; the marginals allow [{out['low']:.4g}, {out['high']:.4g}] ({inside})"
            if not bounded.empty
            else ""
        )
        return {**out, "verdict": "not computable", "detail": notes + extra}
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
            "detail": f"{len(hits)} of {len(rows)} variants within {cell.tolerance:g}",
        }
    return {
        **out,
        "verdict": "not reproduced",
        "detail": f"no variant of {len(rows)} within {cell.tolerance:g}; "
        f"closest off by {best['value'] - cell.expected:+.6g}",
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
        table = pd.DataFrame([_variant(cell, release, v) for v in cell.variants()])
        variants.append(table)
        rows.append({**row, **_verdict(cell, table)})
    cols = ["id", "variant", "value", "low", "high", "note"]
    return rows, (pd.concat(variants, ignore_index=True)[cols] if variants else pd.DataFrame(columns=cols))
