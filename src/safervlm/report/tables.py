"""Result tables: safety and helpfulness per benchmark for each model (md, csv, tex).

Input is ``{model: {benchmark: score_judgments_output}}``; models keep their given order
(e.g. base, sft, grpo) and benchmarks their order of first appearance. Values are
fractions in [0, 1]; the markdown and LaTeX tables show percentages with one decimal,
the CSV keeps the fractions. The "average" row is the unweighted mean over benchmarks
(missing values skipped).

Scope (:data:`TABLE_CAPTION`, stated in ``table.md``): ``metrics.json``'s ``overall`` block,
i.e. attack ``none`` and items pooled. The seed table, the paired tests' ``none`` rows and
both safety/helpfulness figures show these same numbers.
"""

from __future__ import annotations

import logging
import math
import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm.io import write_text
from safervlm.report.markdown import (
    MISSING,
    SCOPE_ATTACK_NONE,
    SCOPE_AVERAGE,
    SCOPE_ITEMS,
    document,
    markdown_table,
)

logger = logging.getLogger(__name__)

TABLE_METRICS = ("safety", "helpfulness")
AVERAGE = "average"
TABLE_TITLE = "Safety and helpfulness"
TABLE_CAPTION = (
    f"Safety and helpfulness (%) per benchmark and model (unified rubric). Scope: {SCOPE_ATTACK_NONE}; "
    f"{SCOPE_ITEMS}; {SCOPE_AVERAGE}. Fractions in table.csv."
)


def _overall(m: Mapping[str, Any]) -> Mapping[str, Any]:
    """The overall block of a ``score_judgments`` output (or ``m`` itself if already flat)."""
    return m.get("overall", m)


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def build_long_table(
    metrics: Mapping[str, Mapping[str, Mapping[str, Any]]], metric_names: Sequence[str] = TABLE_METRICS
) -> pd.DataFrame:
    """One row per (model, benchmark, metric) with value, CI bounds (when present) and n."""
    rows = []
    for model, benches in metrics.items():
        for bench, m in benches.items():
            overall = _overall(m)
            for metric in metric_names:
                ci = overall.get(f"{metric}_ci") or [None, None]
                rows.append(
                    {
                        "model": model,
                        "benchmark": bench,
                        "metric": metric,
                        "value": _num(overall.get(metric)),
                        "ci_low": _num(ci[0]),
                        "ci_high": _num(ci[1]),
                        "n": overall.get("n"),
                    }
                )
    return pd.DataFrame(rows, columns=["model", "benchmark", "metric", "value", "ci_low", "ci_high", "n"])


def build_table(
    metrics: Mapping[str, Mapping[str, Mapping[str, Any]]], metric_names: Sequence[str] = TABLE_METRICS
) -> pd.DataFrame:
    """Wide table: rows = benchmarks then "average", columns = (model, metric) in given order.

    Args:
        metrics: ``{model: {benchmark: score_judgments output}}``.
        metric_names: Overall metrics to show per model.

    Returns:
        A frame indexed by benchmark with two-level columns ``(model, metric)``.
    """
    models = list(metrics)
    benchmarks: list[str] = []
    for benches in metrics.values():
        benchmarks += [b for b in benches if b not in benchmarks]
    columns = pd.MultiIndex.from_product([models, list(metric_names)], names=["model", "metric"])
    table = pd.DataFrame(index=pd.Index(benchmarks, name="benchmark"), columns=columns, dtype=float)
    for model in models:
        for bench, m in metrics[model].items():
            for metric in metric_names:
                table.loc[bench, (model, metric)] = _num(_overall(m).get(metric))
    table.loc[AVERAGE] = table.loc[benchmarks].mean(axis=0, skipna=True) if benchmarks else math.nan
    return table


def _flat_columns(df: pd.DataFrame) -> list[str]:
    if isinstance(df.columns, pd.MultiIndex):
        return [f"{model}/{metric}" for model, metric in df.columns]
    return [str(c) for c in df.columns]


def _pct(value: Any) -> str:
    return MISSING if value is None or pd.isna(value) else f"{100 * float(value):.1f}"


def to_markdown(df: pd.DataFrame) -> str:
    """Markdown table with percentages (one decimal) and "–" for missing values."""
    header = ["benchmark", *(c.replace("/", " ") for c in _flat_columns(df))]
    rows = [[str(bench), *(_pct(v) for v in row.to_numpy())] for bench, row in df.iterrows()]
    return markdown_table(header, rows)


def points(df: pd.DataFrame) -> pd.DataFrame:
    """(model, benchmark, safety, helpfulness) of every benchmark row of the wide table: the
    scatter's points, the table's own numbers (the average row left out)."""
    rows = [
        {"model": model, "benchmark": str(bench), "safety": df.loc[bench, (model, "safety")],
         "helpfulness": df.loc[bench, (model, "helpfulness")]}
        for model in dict.fromkeys(df.columns.get_level_values(0))
        for bench in df.index
        if bench != AVERAGE
    ]  # fmt: skip
    out = pd.DataFrame(rows, columns=["model", "benchmark", "safety", "helpfulness"])
    return out.dropna(subset=["safety", "helpfulness"]).reset_index(drop=True)


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_TEX_RE = re.compile("|".join(re.escape(k) for k in _TEX_SPECIAL))


def _tex_escape(text: Any) -> str:
    return _TEX_RE.sub(lambda m: _TEX_SPECIAL[m.group(0)], str(text))


def tex_caption(caption: str) -> str:
    """The caption as LaTeX comment lines above a tabular (its scope travels with the file)."""
    return "".join(f"% {line}\n" for line in textwrap.wrap(caption, 96))


def to_latex(df: pd.DataFrame) -> str:
    """A booktabs LaTeX tabular (models as multicolumn headers, percentages)."""
    cols = list(df.columns) if isinstance(df.columns, pd.MultiIndex) else [("", c) for c in df.columns]
    widths = {model: sum(1 for m, _ in cols if m == model) for model in dict.fromkeys(m for m, _ in cols)}
    spec = "l" + "r" * len(cols)
    top = " & ".join(["", *(rf"\multicolumn{{{w}}}{{c}}{{{_tex_escape(m)}}}" for m, w in widths.items())])
    sub = " & ".join(["benchmark", *(_tex_escape(metric) for _, metric in cols)])
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", top + r" \\", sub + r" \\", r"\midrule"]
    for bench, row in df.iterrows():
        if bench == AVERAGE:
            lines.append(r"\midrule")
        lines.append(" & ".join([_tex_escape(bench), *(_pct(v) for v in row.to_numpy())]) + r" \\")
    return "\n".join([*lines, r"\bottomrule", r"\end{tabular}"]) + "\n"


def write_tables(df: pd.DataFrame, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``table.md``, ``table.csv`` (fractions) and ``table.tex`` atomically.

    Returns:
        ``{"md": path, "csv": path, "tex": path}``.
    """
    out = Path(out_dir)
    flat = df.copy()
    flat.columns = _flat_columns(df)
    paths = {"md": out / "table.md", "csv": out / "table.csv", "tex": out / "table.tex"}
    write_text(document(TABLE_TITLE, TABLE_CAPTION, to_markdown(df)), paths["md"])
    write_text(flat.to_csv(index_label="benchmark"), paths["csv"])
    write_text(tex_caption(TABLE_CAPTION) + to_latex(df), paths["tex"])
    logger.info("wrote tables to %s", out)
    return paths
