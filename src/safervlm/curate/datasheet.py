"""The QI-Safe datasheet: what went in, what decontamination removed, what the box kept.

:func:`build_datasheet` gathers the numbers into one JSON-able dict; :func:`render_markdown`
writes it for people; :func:`plot_datasheet` draws the QI scatter with the box and the
category histogram before (decontaminated pool) and after (selection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

_DECIMALS = 4


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(values.astype(str).value_counts().items())}


def _stats(frame: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for col in ("quality", "instability"):
        s = frame[col].dropna() if col in frame.columns else pd.Series(dtype=float)
        vals = {"mean": s.mean(), "min": s.min(), "max": s.max()} if len(s) else {}
        out[col] = {k: round(float(vals[k]), _DECIMALS) if vals else None for k in ("mean", "min", "max")}
    return out


def build_datasheet(
    *,
    selected: pd.DataFrame,
    clean: pd.DataFrame,
    scores: pd.DataFrame,
    info: dict[str, Any],
    pool_summary: dict[str, Any],
    decontamination: dict[str, Any],
    params: dict[str, Any],
    sha256: str,
) -> dict[str, Any]:
    """All datasheet numbers as a JSON-able dict (counts per source, benchmark, category)."""
    removed_by_source = {s: sum(r.values()) for s, r in decontamination.get("removed_by_source", {}).items()}
    sources = {
        name: {
            "pool": int(n),
            "removed_by_decontamination": int(removed_by_source.get(name, 0)),
            "clean": int((clean["source"] == name).sum()),
            "selected": int((selected["source"] == name).sum()),
        }
        for name, n in pool_summary.get("by_source", {}).items()
    }
    scored = scores.dropna(subset=["quality", "instability"])
    cats = sorted(set(pool_summary.get("by_category", {})) | set(clean["category"].astype(str)))
    before, after = _counts(clean["category"]), _counts(selected["category"])
    pool_cats = pool_summary.get("by_category", {})
    return {
        "name": "QI-Safe",
        "qi_safe_sha256": sha256,
        "params": params,
        "sources": sources,
        "decontamination": {
            k: decontamination.get(k)
            for k in ("n_pool", "n_removed", "n_kept", "removed_by_reason", "removed_by_benchmark", "params")
        },
        "qi": info,
        "categories": {
            c: {"pool": int(pool_cats.get(c, 0)), "clean": before.get(c, 0), "selected": after.get(c, 0)}
            for c in cats
        },
        "should_refuse": {
            "clean": _counts(clean["should_refuse"].astype("string").fillna("unknown")),
            "selected": _counts(selected["should_refuse"].astype("string").fillna("unknown")),
        },
        "score_stats": {"scored": _stats(scored), "selected": _stats(selected)},
        "category_sources": pool_summary.get("category_sources", {}),
        "unmapped_rows": pool_summary.get("unmapped_rows", {}),
    }


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "(empty)" if not text else text.replace("|", "\\|")


def _category_sections(sheet: dict[str, Any]) -> list[str]:
    """Where each source's categories come from, and its rows that fell to ``other``."""
    prov, unmapped = sheet.get("category_sources") or {}, sheet.get("unmapped_rows") or {}
    if not prov and not unmapped:
        return []
    lines = ["## Where categories come from", ""]
    lines += [
        "Each row's category comes from the first step that applies: benign (no harm label, benign "
        "request), a `category_rules` entry (by subset, label, subcategory), `category_map` (by label), "
        "the label being a taxonomy name; otherwise it is `other` (unmapped).",
        "",
    ]
    routes = ("benign", "rule", "category_map", "taxonomy", "unmapped")
    lines += _table(
        [
            "source",
            "label from",
            "subcategory from",
            "rows",
            "with label",
            "with subcategory",
            "benign",
            "by rule",
            "by category_map",
            "taxonomy name",
            "other (unmapped)",
        ],
        [
            [
                s,
                p["label_field"],
                p["subcategory_field"] or "—",
                p["rows"],
                p["with_label"],
                p["with_subcategory"],
                *(p["routes"].get(r, 0) for r in routes),
            ]
            for s, p in prov.items()
        ],
    )
    notes = [
        f"- {s}: no row carries a source label ({p['label_field']}); its {p['rows']} rows are `other` "
        f"unless benign or mapped by `sources.{s}.category_rules` (e.g. by subset)."
        for s, p in prov.items()
        if p["rows"] and not p["with_label"]
    ]
    lines += [*notes, ""] if notes else []
    lines += ["## Unmapped rows per source", ""]
    if not any(unmapped.values()):
        return [*lines, "None: every pool row got a taxonomy category (or an explicit `other`).", ""]
    lines += [
        "Rows that went to `other` because no rule, `category_map` entry or taxonomy name covers them; "
        "add `category_rules` or `category_map` entries for the ones that have a taxonomy category.",
        "",
    ]
    lines += _table(
        ["source", "subset", "label", "subcategory", "rows"],
        [
            [s, _cell(g["subset"]), _cell(g["label"]), _cell(g["subcategory"]), g["n"]]
            for s, groups in unmapped.items()
            for g in groups
        ],
    )
    for s, groups in unmapped.items():
        total = prov.get(s, {}).get("unmapped_groups", len(groups))
        if total > len(groups):
            lines += [f"- {s}: the {len(groups)} largest of {total} groups are shown.", ""]
    return lines


def render_markdown(sheet: dict[str, Any], figure_name: str) -> str:
    """The datasheet as markdown (tables of the dict from :func:`build_datasheet`)."""
    qi, dec, box = sheet["qi"], sheet["decontamination"], sheet["qi"]["box"]
    lines = ["# QI-Safe datasheet", "", f"- `qi_safe.parquet` sha256: `{sheet['qi_safe_sha256']}`"]
    lines += [f"- {k}: `{v}`" for k, v in sorted(sheet["params"].items())]
    lines += ["", "## Sources", ""]
    lines += _table(
        ["source", "pool", "removed by decontamination", "clean", "selected"],
        [[s, *v.values()] for s, v in sheet["sources"].items()],
    )
    lines += ["## Decontamination", "", f"Removed {dec['n_removed']} of {dec['n_pool']} pool rows.", ""]
    reasons = list(dec["removed_by_reason"])
    lines += _table(
        ["benchmark", *reasons, "total"],
        [[b, *r.values(), sum(r.values())] for b, r in dec["removed_by_benchmark"].items()]
        + [["**total**", *dec["removed_by_reason"].values(), dec["n_removed"]]],
    )
    lines += ["## Quality–instability selection", ""]
    lines += [
        f"- box: quality in [{box['quality_range'][0]}, {box['quality_range'][1]}], "
        f"instability >= {box['min_instability']}",
        f"- scored prompts: {qi['n_scored']} (unscored: {qi['n_unscored']})",
        f"- in the box: {qi['n_in_box']}; target size: {qi['target_size']}; selected: {qi['n_selected']} "
        f"({qi['allocation']} allocation by category, seed {qi['seed']})",
        "",
        f"![QI scatter and categories]({figure_name})",
        "",
    ]
    stats = sheet["score_stats"]
    lines += _table(
        ["set", "field", "mean", "min", "max"],
        [[s, f, *stats[s][f].values()] for s in ("scored", "selected") for f in ("quality", "instability")],
    )
    lines += ["## Categories", ""]
    lines += _table(
        ["category", "pool", "clean", "selected"], [[c, *v.values()] for c, v in sheet["categories"].items()]
    )
    lines += _category_sections(sheet)
    lines += ["## Refusal balance (should_refuse)", ""]
    values = sorted(set(sheet["should_refuse"]["clean"]) | set(sheet["should_refuse"]["selected"]))
    lines += _table(
        ["should_refuse", "clean", "selected"],
        [
            [v, sheet["should_refuse"]["clean"].get(v, 0), sheet["should_refuse"]["selected"].get(v, 0)]
            for v in values
        ],
    )
    return "\n".join(lines)


def plot_datasheet(
    scores: pd.DataFrame, selected: pd.DataFrame, sheet: dict[str, Any], path: str | Path
) -> None:
    """QI scatter (selected highlighted, box drawn) and category histogram before/after, as PNG."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    scored = scores.dropna(subset=["quality", "instability"])
    chosen = scored["id"].isin(set(selected["id"]))
    ax1.scatter(
        scored.loc[~chosen, "quality"],
        scored.loc[~chosen, "instability"],
        s=8,
        c="0.6",
        alpha=0.6,
        label="not selected",
    )
    ax1.scatter(
        scored.loc[chosen, "quality"],
        scored.loc[chosen, "instability"],
        s=10,
        c="tab:red",
        alpha=0.8,
        label="QI-Safe",
    )
    box = sheet["qi"]["box"]
    lo, hi = box["quality_range"]
    top = (
        max(float(scored["instability"].max()) if len(scored) else 0.0, box["min_instability"]) * 1.05 + 1e-3
    )
    ax1.add_patch(
        Rectangle(
            (lo, box["min_instability"]),
            hi - lo,
            top - box["min_instability"],
            fill=False,
            ec="tab:blue",
            lw=1.5,
            ls="--",
            label="box",
        )
    )
    ax1.set(
        xlabel="quality (mean score over K answers)",
        ylabel="instability (std over K answers)",
        title=f"QI scores ({len(scored)} prompts, {int(chosen.sum())} selected)",
    )
    ax1.legend(loc="upper right", fontsize=8)
    cats = list(sheet["categories"])
    ys = range(len(cats))
    ax2.barh(
        [y + 0.2 for y in ys],
        [sheet["categories"][c]["clean"] for c in cats],
        height=0.4,
        color="0.6",
        label="before (decontaminated pool)",
    )
    ax2.barh(
        [y - 0.2 for y in ys],
        [sheet["categories"][c]["selected"] for c in cats],
        height=0.4,
        color="tab:red",
        label="after (QI-Safe)",
    )
    ax2.set_yticks(list(ys), cats, fontsize=8)
    ax2.set(xlabel="prompts", title="categories before and after selection")
    ax2.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
