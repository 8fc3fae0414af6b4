"""The audit's outputs: ``audit.md`` for people, ``audit.csv`` and ``audit.json`` for tools."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
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


def write_audit(
    result: AuditResult, out_dir: str | os.PathLike[str], expectations: Sequence[str | os.PathLike[str]]
) -> dict[str, Path]:
    """Write ``audit.md``, ``audit.csv`` (cells, then the report's values) and ``audit.json``.

    Returns:
        ``{"md": path, "csv": path, "json": path}``.
    """
    out = Path(out_dir)
    paths = {"md": out / "audit.md", "csv": out / "audit.csv", "json": out / "audit.json"}
    write_text(to_markdown(result, expectations), paths["md"])
    with atomic_path(paths["csv"]) as tmp:
        pd.concat([result.cells, result.report], ignore_index=True).to_csv(tmp, index=False)
    write_json(
        {"counts": result.counts(), "mismatches": result.mismatches, "report_values": len(result.report)},
        paths["json"],
    )
    return paths
