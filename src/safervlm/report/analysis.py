"""Paper-style tables of the SafeMLRM analysis (md, csv, tex) from ``metrics.analyse``.

Written by both an evaluation run's ``report`` and ``import-opensafemlrm``:

* ``asr``: ASR on reasoning / answer / full per (benchmark, attack) and model, the
  scenario average as in SafeMLRM; the ``(mean)`` row averages benchmarks;
* ``tax``: Reasoning Tax (percentage points) per declared (reasoning, base) pair;
* ``blind_spots``: scenario tax / mean tax per scenario (drawn: only the cells with a ratio);
* ``self_correction``: P(answer safe | reasoning unsafe); "n/c" where not computable;
* ``official``: each benchmark's official metric (``official_source``: judge / derived);
* ``rates.csv`` (every rate at every level with its 95% CI and n); ``counts.{md,csv}``:
  samples, should-refuse samples, unscored and empty parts, untagged responses.

Percentages carry one decimal; the CSVs keep fractions and add ``ci_low``/``ci_high``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm.io import write_text
from safervlm.metrics import MEAN
from safervlm.metrics.outcomes import official_metric
from safervlm.report.tables import MISSING, _tex_escape

logger = logging.getLogger(__name__)

NOT_COMPUTABLE = "n/c"
PART_LABEL = {"asr_reasoning": "R", "asr_answer": "A", "asr_full": "F"}


def _pct(v: Any) -> str:
    return MISSING if v is None or pd.isna(v) else f"{100 * float(v):.1f}"


def _ratio(v: Any) -> str:
    return MISSING if v is None or pd.isna(v) else f"{float(v):.2f}"


def _cell(value: Any, low: Any, high: Any, fmt: Callable[[Any], str]) -> str:
    if value is None or pd.isna(value):
        return MISSING
    if low is None or pd.isna(low):
        return fmt(value)
    return f"{fmt(value)} [{fmt(low)}, {fmt(high)}]"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-markdown table (every report table's markdown)."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _tex(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        rf"\begin{{tabular}}{{{'l' * 2 + 'r' * (len(header) - 2)}}}",
        r"\toprule",
        " & ".join(_tex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_tex_escape(c) for c in r) + r" \\" for r in rows]
    return "\n".join([*lines, r"\bottomrule", r"\end{tabular}"]) + "\n"


def _write(name: str, out: Path, header: list[str], rows: list[list[str]], csv: pd.DataFrame) -> None:
    write_text(markdown_table(header, rows), out / f"{name}.md")
    write_text(_tex(header, rows), out / f"{name}.tex")
    write_text(csv.to_csv(index=False), out / f"{name}.csv")


def _wide(
    long: pd.DataFrame, index: list[str], columns: list[str], fmt: Callable[[Any], str], ci: bool = True
) -> tuple[list[str], list[list[str]]]:
    """Rows = unique ``index`` tuples (given order), one column per unique ``columns`` tuple."""
    cols = list(dict.fromkeys(long[columns].itertuples(index=False, name=None)))
    rows_keys = list(dict.fromkeys(long[index].itertuples(index=False, name=None)))
    cells = {
        (tuple(r[index]), tuple(r[columns])): NOT_COMPUTABLE
        if not bool(r.get("computable", True))
        else _cell(r["value"], r.get("ci_low") if ci else None, r.get("ci_high"), fmt)
        for _, r in long.iterrows()
    }
    header = [*index, *(" ".join(map(str, c)) for c in cols)]
    rows = [[*map(str, k), *(cells.get((k, c), MISSING) for c in cols)] for k in rows_keys]
    return header, rows


def _bench_order(df: pd.DataFrame) -> pd.DataFrame:
    """Benchmarks in order of appearance with the (mean) row last."""
    return pd.concat([df[df["benchmark"] != MEAN], df[df["benchmark"] == MEAN]])


def write_analysis(
    analysis: Mapping[str, pd.DataFrame],
    out_dir: str | os.PathLike[str],
    sources: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write every analysis table under ``out_dir``; returns name -> markdown path."""
    out = Path(out_dir)
    rates, tax = analysis["rates"], analysis["tax"]
    top = _bench_order(rates[rates["category"] == MEAN])
    asr = top[top["metric"].isin(list(PART_LABEL))].assign(part=lambda d: d["metric"].map(PART_LABEL))
    _write("asr", out, *_wide(asr, ["benchmark", "attack"], ["model", "part"], _pct), asr)
    sc = top[top["metric"] == "self_correction"]
    _write("self_correction", out, *_wide(sc, ["benchmark", "attack"], ["model"], _pct), sc)
    t = _bench_order(tax[tax["category"] == MEAN]).assign(
        pair=lambda d: d["reasoning_model"] + "-" + d["base_model"],
        part=lambda d: d["metric"].map(PART_LABEL),
    )
    _write("tax", out, *_wide(t, ["benchmark", "attack"], ["pair", "part"], _pct), t)
    bs = analysis["blind_spots"].rename(columns={"ratio": "value"})
    bs = bs.assign(pair=bs["reasoning_model"] + "-" + bs["base_model"])
    _write(
        "blind_spots",
        out,
        *_wide(bs, ["benchmark", "category"], ["pair", "attack"], _ratio, ci=False),
        analysis["blind_spots"],
    )
    off = top[(top["metric"] == "official") & (top["benchmark"] != MEAN)].copy()
    off["official_metric"] = off["benchmark"].map(official_metric)
    off["official_source"] = off["benchmark"].map(lambda b: (sources or {}).get(b, "derived"))
    _write("official", out, *_wide(off, ["benchmark", "official_metric", "attack"], ["model"], _pct), off)
    write_text(rates.to_csv(index=False), out / "rates.csv")
    counts = analysis["counts"]
    write_text(counts.to_csv(index=False), out / "counts.csv")
    by = counts.groupby(["model", "benchmark", "attack"], sort=False).sum(numeric_only=True).reset_index()
    rows = [[str(v) for v in r] for r in by.itertuples(index=False)]
    write_text(markdown_table(list(by.columns), rows), out / "counts.md")
    logger.info("wrote analysis tables to %s", out)
    names = ("asr", "tax", "blind_spots", "self_correction", "official")
    return {n: out / f"{n}.md" for n in names}


def safety_helpfulness_points(rates: pd.DataFrame, attack: str) -> pd.DataFrame:
    """(model, benchmark, safety, helpfulness) at the benchmark level for one attack."""
    top = rates[(rates["category"] == MEAN) & (rates["attack"] == attack)]
    wide = top[top["metric"].isin(["safety", "helpfulness"])].pivot_table(
        index=["model", "benchmark"], columns="metric", values="value", sort=False, dropna=False
    )
    return wide.reset_index().dropna(subset=[c for c in ("safety", "helpfulness") if c in wide.columns])
