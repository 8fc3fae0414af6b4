"""The audit's outputs: ``audit.md`` for people, ``audit.csv`` and ``audit.json`` for tools."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm.io import atomic_path, write_json, write_text
from safervlm.report.audit.recompute import VERDICTS, AuditResult


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def to_markdown(result: AuditResult, expectations: Sequence[str | os.PathLike[str]]) -> str:
    """``audit.md``: the verdict counts, one table row per cell, the report's mismatches."""
    counts = result.counts()
    lines = [
        "# Audit",
        "",
        "Every number recomputed from the per-sample judgments "
        "(`eval/{model}/{benchmark}/judgments.parquet`) and compared with the expected value.",
        f"Expectations: {', '.join(f'`{p}`' for p in expectations)}.",
        "",
        "Cells: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".",
        "",
        "| cell | source | expected | recomputed | tolerance | verdict | artifact md5 | pin | detail |",
        "|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for r in result.cells.to_dict("records"):
        md5 = str(r["artifact_md5"])[:12] or "–"
        lines.append(
            f"| `{r['id']}` | {r['source']} | {_fmt(r['expected'])} | {_fmt(r['recomputed'])} "
            f"| {_fmt(r['tolerance'])} | **{r['verdict']}** | `{md5}` | {r['pin'] or '–'} | {r['detail']} |"
        )
    lines += _released(result)
    rep = result.report
    lines += ["", "## The report's rates, recomputed", ""]
    if rep.empty:
        lines.append("No `rates.csv` to cross-check.")
    else:
        bad = rep[rep["verdict"] != "match"]
        lines.append(f"{len(rep)} values in `rates.csv`: {len(rep) - len(bad)} match, {len(bad)} mismatch.")
        for r in bad.to_dict("records"):
            lines.append(f"- `{r['id']}`: reported {_fmt(r['expected'])}, recomputed {_fmt(r['recomputed'])}")
    return "\n".join(lines) + "\n"


def _range(r: Mapping[Any, Any]) -> str:
    low, high = r["low"], r["high"]
    if isinstance(low, float) and math.isnan(low):
        return "–"
    return _fmt(low) if low == high else f"{_fmt(low)} … {_fmt(high)}"


def _released(result: AuditResult) -> list[str]:
    """Cells recomputed from imported releases: range, verdict, variants, provenance."""
    if result.variants.empty:
        return []
    lines = [
        "",
        "## Published numbers recomputed from released artifacts",
        "",
        "Each cell under every distinct definition variant its YAML lists (`report.audit.sources`; "
        "combinations that cannot differ, e.g. the aggregate of a difference, are one variant); the "
        "range is over the variants that give a value (for a quantity the artifact cannot give: the "
        "bounds it allows, over the pairs that allow them; the pairs left out are named).",
        "",
        "| cell | published | recomputed (range) | verdict | reproducing variants | closest variant "
        "| artifact |",
        "|---|---:|---|---|---|---|---|",
    ]
    ids = set(result.variants["id"])
    rows = [r for r in result.cells.to_dict("records") if r["id"] in ids]
    for r in rows:
        lines.append(
            f"| `{r['id']}` | {_fmt(r['expected'])} | {_range(r)} | **{r['verdict']}** "
            f"| {r['reproducing'] or '–'} | {r['closest'] or '–'} | {r['provenance'] or '–'} |"
        )
    for r in rows:
        part = result.variants[result.variants["id"] == r["id"]]
        lines += ["", f"### `{r['id']}`: {r['description']}", "", f"{r['verdict']}: {r['detail']}", ""]
        lines += ["| variant | value | bounds | note |", "|---|---:|---|---|"]
        for v in part.to_dict("records"):
            bounds = "–" if not math.isnan(v["low"]) and v["low"] == v["value"] else _range(v)
            lines.append(f"| {v['variant']} | {_fmt(v['value'])} | {bounds} | {v['note'] or ''} |")
    return lines


def write_audit(
    result: AuditResult, out_dir: str | os.PathLike[str], expectations: Sequence[str | os.PathLike[str]]
) -> dict[str, Path]:
    """Write ``audit.md``, ``audit.csv`` (cells, then the report's values) and ``audit.json``.

    Returns:
        ``{"md": path, "csv": path, "json": path, "variants": path}`` (``audit_variants.csv``:
        every definition variant of the cells recomputed from imported releases).
    """
    out = Path(out_dir)
    paths = {
        "md": out / "audit.md",
        "csv": out / "audit.csv",
        "json": out / "audit.json",
        "variants": out / "audit_variants.csv",
    }
    write_text(to_markdown(result, expectations), paths["md"])
    with atomic_path(paths["variants"]) as tmp:
        result.variants.to_csv(tmp, index=False)
    with atomic_path(paths["csv"]) as tmp:
        pd.concat([result.cells, result.report], ignore_index=True).to_csv(tmp, index=False)
    write_json(
        {"counts": result.counts(), "mismatches": result.mismatches, "report_values": len(result.report)},
        paths["json"],
    )
    return paths
