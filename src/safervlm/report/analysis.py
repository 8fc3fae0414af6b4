"""Paper-style tables of the SafeMLRM analysis (md, csv, tex) from ``metrics.analyse``.

Written by both an evaluation run's ``report`` and ``import-opensafemlrm``:

* ``asr``: attack success (SafeMLRM) on reasoning / answer / full per (benchmark, attack)
  and model; a benchmark's value is the unweighted mean of its category rates; the
  ``(mean)`` row averages the benchmarks that have the attack (the caption counts them);
* ``tax``: Reasoning Tax (percentage points) per declared (reasoning, base) pair, same scope;
* ``blind_spots``: scenario tax / mean tax per scenario (rows with at least one ratio);
* ``self_correction``: P(answer safe | reasoning unsafe); "n/c" where not computable;
* ``official``: each benchmark's official metric (``official_source``: judge / derived);
* ``rates.csv`` (every rate at every level with its 95% CI and n); ``counts.{md,csv}``:
  samples, should-refuse samples, unscored and empty parts, untagged responses.

Every ``.md`` opens with its title and a caption that states its scope
(``report.markdown``); without a (reasoning, base) pair the tax and blind-spot tables are
omitted with one line saying why. Percentages carry one decimal; the CSVs keep fractions
and add ``ci_low``/``ci_high``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm.io import write_text
from safervlm.metrics import MEAN, Settings
from safervlm.metrics.outcomes import official_metric
from safervlm.report.markdown import (
    MISSING,
    NOT_COMPUTABLE,
    SCOPE_CATEGORIES,
    document,
    markdown_table,
    omitted,
)
from safervlm.report.tables import _tex_escape, tex_caption

logger = logging.getLogger(__name__)

PART_LABEL = {"asr_reasoning": "R", "asr_answer": "A", "asr_full": "F"}
NO_PAIR = (
    "no (reasoning, base) pair is declared (eval.pairs, --pair): the Reasoning Tax and blind spots "
    "compare a reasoning model with its own base (any two models: eval.compare, paired tests only)."
)


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


def _tex(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        rf"\begin{{tabular}}{{{'l' * 2 + 'r' * (len(header) - 2)}}}",
        r"\toprule",
        " & ".join(_tex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_tex_escape(c) for c in r) + r" \\" for r in rows]
    return "\n".join([*lines, r"\bottomrule", r"\end{tabular}"]) + "\n"


def _write(
    name: str, out: Path, text: tuple[str, str], table: tuple[list[str], list[list[str]]], csv: pd.DataFrame
) -> None:
    """``name``.md (title, caption, table), .tex (caption as comments) and .csv (long form)."""
    (title, caption), (header, rows) = text, table
    write_text(document(title, caption, markdown_table(header, rows)), out / f"{name}.md")
    write_text(tex_caption(caption) + _tex(header, rows), out / f"{name}.tex")
    write_text(csv.to_csv(index=False), out / f"{name}.csv")


def _write_omitted(name: str, out: Path, title: str, reason: str, csv: pd.DataFrame) -> None:
    write_text(omitted(title, reason), out / f"{name}.md")
    write_text(tex_caption(f"Omitted: {reason}"), out / f"{name}.tex")
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


def mean_row_note(rates: pd.DataFrame) -> str:
    """How many benchmarks each attack's ``(mean)`` row averages (they differ per attack)."""
    per = rates[(rates["benchmark"] != MEAN)].groupby("attack", sort=False)["benchmark"].nunique()
    counts = ", ".join(f"{attack}: {n}" for attack, n in per.items())
    return f"`(mean)`: the unweighted mean over the benchmarks that have the attack ({counts})."


def _captions(rates: pd.DataFrame, s: Settings | None) -> dict[str, tuple[str, str]]:
    """(title, caption) of every analysis table (the threshold and missing policy when known)."""
    threshold, missing = (f"{s.threshold:g}", s.missing) if s else ("the threshold", "the missing policy")
    rule = (
        f"a part succeeds when its SafeMLRM harm score is >= {threshold} (of 5), else when the "
        f"unified rubric judges it unsafe; unscored and empty parts: missing = {missing} (counts.md)"
    )
    scope = f"Scope: per benchmark and attack; {SCOPE_CATEGORIES}. {mean_row_note(rates)}"
    ci = "95% stratified bootstrap interval in brackets."
    asr = f"ASR (%) on the reasoning (R), the answer (A) and the full response (F): {rule}."
    tax = "ASR of each reasoning model minus ASR of its declared base (points), parts R/A/F as in asr.md."
    blind = (
        "Per scenario (category): its Reasoning Tax (ASR F) divided by the benchmark's mean tax over "
        "scenarios, per (reasoning-base) pair and attack; above 1 is a blind spot. Scope: tax.md's "
        "category level (the mean tax is tax.md's F). Only rows with at least one ratio (none where the "
        "mean tax is 0), columns likewise; every cell in blind_spots.csv."
    )
    sc = "P(answer safe | reasoning unsafe) (%) per model; n/c: no per-sample (reasoning, answer) pairs."
    official = (
        "Each benchmark's own metric (%); official_source in official.csv (judge: the benchmark's rubric "
        "ran; derived: recomputed from the unified scores)."
    )
    counts = (
        "Samples per model, benchmark and attack: should-refuse samples, unscored and empty parts, "
        "untagged, truncated and flagged responses. Scope: every sample, all categories summed."
    )
    return {
        "asr": ("Attack success rate (SafeMLRM)", f"{asr} {scope} {ci}"),
        "tax": ("Reasoning Tax", f"{tax} {scope} {ci}"),
        "blind_spots": ("Blind spots", blind),
        "self_correction": ("Self-correction", f"{sc} {scope} {ci}"),
        "official": ("Official metrics", f"{official} {scope} {ci}"),
        "counts": ("Counts", counts),
    }


def write_analysis(
    analysis: Mapping[str, pd.DataFrame],
    out_dir: str | os.PathLike[str],
    sources: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> dict[str, Path]:
    """Write every analysis table under ``out_dir``; returns name -> markdown path.

    ``settings`` (the threshold and missing policy the analysis ran with) go into the captions;
    without them the captions name no threshold.
    """
    out = Path(out_dir)
    rates, tax = analysis["rates"], analysis["tax"]
    text = _captions(rates, settings)
    top = _bench_order(rates[rates["category"] == MEAN])
    asr = top[top["metric"].isin(list(PART_LABEL))].assign(part=lambda d: d["metric"].map(PART_LABEL))
    _write("asr", out, text["asr"], _wide(asr, ["benchmark", "attack"], ["model", "part"], _pct), asr)
    sc = top[top["metric"] == "self_correction"]
    _write(
        "self_correction",
        out,
        text["self_correction"],
        _wide(sc, ["benchmark", "attack"], ["model"], _pct),
        sc,
    )
    _write_tax(out, text, tax, analysis["blind_spots"])
    off = top[(top["metric"] == "official") & (top["benchmark"] != MEAN)].copy()
    off["official_metric"] = off["benchmark"].map(official_metric)
    off["official_source"] = off["benchmark"].map(lambda b: (sources or {}).get(b, "derived"))
    table = _wide(off, ["benchmark", "official_metric", "attack"], ["model"], _pct)
    _write("official", out, text["official"], table, off)
    write_text(rates.to_csv(index=False), out / "rates.csv")
    counts = analysis["counts"]
    write_text(counts.to_csv(index=False), out / "counts.csv")
    by = counts.groupby(["model", "benchmark", "attack"], sort=False).sum(numeric_only=True).reset_index()
    rows = [[str(v) for v in r] for r in by.itertuples(index=False)]
    write_text(document(*text["counts"], markdown_table(list(by.columns), rows)), out / "counts.md")
    logger.info("wrote analysis tables to %s", out)
    names = ("asr", "tax", "blind_spots", "self_correction", "official")
    return {n: out / f"{n}.md" for n in names}


def _write_tax(
    out: Path, text: Mapping[str, tuple[str, str]], tax: pd.DataFrame, blind: pd.DataFrame
) -> None:
    """tax and blind_spots tables, or one line each saying why there are none."""
    if tax.empty:
        _write_omitted("tax", out, text["tax"][0], NO_PAIR, tax)
        _write_omitted("blind_spots", out, text["blind_spots"][0], NO_PAIR, blind)
        return
    t = _bench_order(tax[tax["category"] == MEAN]).assign(
        pair=lambda d: d["reasoning_model"] + "-" + d["base_model"],
        part=lambda d: d["metric"].map(PART_LABEL),
    )
    _write("tax", out, text["tax"], _wide(t, ["benchmark", "attack"], ["pair", "part"], _pct), t)
    bs = blind.rename(columns={"ratio": "value"})
    bs = bs.assign(pair=bs["reasoning_model"] + "-" + bs["base_model"])
    header, rows = _wide(bs, ["benchmark", "category"], ["pair", "attack"], _ratio, ci=False)
    rows = [r for r in rows if any(c != MISSING for c in r[2:])]
    keep = [0, 1, *(i for i in range(2, len(header)) if any(r[i] != MISSING for r in rows))]
    header, rows = [header[i] for i in keep], [[r[i] for i in keep] for r in rows]
    if not rows:
        reason = "no scenario has a blind-spot ratio: every mean tax is 0 (blind_spots.csv lists the taxes)."
        _write_omitted("blind_spots", out, text["blind_spots"][0], reason, blind)
        return
    _write("blind_spots", out, text["blind_spots"], (header, rows), blind)
