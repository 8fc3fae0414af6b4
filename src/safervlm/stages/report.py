"""``safervlm report``: tables and figures across models and benchmarks, and the SafeMLRM
analysis (ASR r/a/f, Reasoning Tax, blind spots, self-correction, official metrics)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm import tracking
from safervlm.errors import SafervlmError
from safervlm.io import read_json, read_parquet, write_text
from safervlm.metrics import Settings, analyse, outcomes_from_judgments
from safervlm.metrics.asr import ASR_THRESHOLD
from safervlm.metrics.outcomes import official_source
from safervlm.report.analysis import safety_helpfulness_points, write_analysis
from safervlm.report.figures import (
    plot_blind_spots,
    plot_judge_agreement,
    plot_safety_helpfulness,
    plot_safety_vs_helpfulness,
    plot_seed_safety,
)
from safervlm.report.robustness import Run, tax_tests_md, write_robustness
from safervlm.report.tables import build_table, write_tables
from safervlm.schema import JUDGMENT_COLUMNS
from safervlm.stages.args import pairs_arg


def analysis_settings(a: argparse.Namespace) -> Settings:
    """The SafeMLRM analysis settings from ``--threshold --missing --n-bootstrap --seed``
    (no ``--threshold``: :data:`~safervlm.metrics.asr.ASR_THRESHOLD`)."""
    try:
        threshold = ASR_THRESHOLD if a.threshold is None else a.threshold
        return Settings(threshold=threshold, missing=a.missing, n_bootstrap=a.n_bootstrap, seed=a.seed)
    except ValueError as exc:
        raise SafervlmError(str(exc)) from exc


def _analysis_outputs(
    analysis: dict[str, pd.DataFrame], out_dir: str, sources: dict[str, str]
) -> list[str | Path]:
    """Analysis tables and the blind-spot figure; returns the markdown/figure paths."""

    paths: list[str | Path] = list(write_analysis(analysis, out_dir, sources).values())
    heat = Path(out_dir) / "blind_spots.png"
    plot_blind_spots(analysis["blind_spots"], heat)
    return [*paths, heat]


ROBUSTNESS_TABLES = ("seeds", "judges", "judge_sensitivity", "paired")
ROBUSTNESS_FIGURES = ("safety_seeds.png", "judge_agreement.png")


def run_items(items: Sequence[str], flag: str) -> list[tuple[Run, Path]]:
    """``SEED:JUDGE=path`` items as ((seed, judge), path)."""
    out = []
    for item in items:
        key, sep, path = item.partition("=")
        seed, colon, judge = key.partition(":")
        if not sep or not colon or not judge or not path or not seed.lstrip("-").isdigit():
            raise SafervlmError(f"{flag} expects SEED:JUDGE=PATH, got {item!r}")
        out.append(((int(seed), judge), Path(path)))
    return out


def robustness_outputs(
    metric_runs: Sequence[str],
    judgment_runs: Sequence[str],
    out_dir: str,
    compare: Sequence[tuple[str, str]],
    tax_pairs: Sequence[tuple[str, str]],
    settings: Settings,
) -> list[str | Path]:
    """The seed, judge, agreement and paired tables and their figures; returns their paths."""
    metrics: dict[Run, dict[str, Any]] = {}
    for run, path in run_items(metric_runs, "--run-metrics"):
        metrics.setdefault(run, {})[f"{path.parent.parent.name}/{path.parent.name}"] = read_json(path)
    parts: dict[Run, list[pd.DataFrame]] = {}
    for run, path in run_items(judgment_runs, "--run-judgments"):
        parts.setdefault(run, []).append(read_parquet(path, required=JUDGMENT_COLUMNS))
    judgments = {run: pd.concat(dfs, ignore_index=True) for run, dfs in parts.items()}
    frames = write_robustness(
        metrics, judgments, out_dir, compare, tax_pairs, settings.n_bootstrap, settings.seed
    )
    out = Path(out_dir)
    tax = out / "tax.md"
    if tax.exists():  # the SafeMLRM tables were written: the tax table gains its p-values
        write_text(tax.read_text() + tax_tests_md(frames["paired"]), tax)
    plot_seed_safety(frames["seeds"], out / ROBUSTNESS_FIGURES[0])
    plot_judge_agreement(frames["agreement"], out / ROBUSTNESS_FIGURES[1])
    return [*(out / f"{n}.md" for n in ROBUSTNESS_TABLES), *(out / f for f in ROBUSTNESS_FIGURES)]


def report_stage(
    metric_paths: list[str],
    out_dir: str,
    judgment_paths: list[str] | None = None,
    pairs: list[tuple[str, str]] | None = None,
    settings: Settings | None = None,
    runs: tuple[Sequence[str], Sequence[str]] = ((), ()),
    compare: Sequence[tuple[str, str]] = (),
) -> pd.DataFrame:
    """Tables (md/csv/tex) and figures of every metric per benchmark and model.

    ``metric_paths`` are ``results/eval/{model}/{benchmark}/metrics.json`` files (the
    safety/helpfulness table); ``judgment_paths`` the matching ``judgments.parquet`` files,
    from which the SafeMLRM analysis (ASR r/a/f per attack and scenario, Reasoning Tax for
    ``pairs``, blind spots, self-correction, official metrics) is computed. ``runs``:
    ``SEED:JUDGE=path`` metrics and judgments of every seed and judge, for the seed, judge
    and paired tables (``compare``: model pairs compared item by item).
    """
    settings = settings or Settings()
    metrics: dict[str, dict[str, Any]] = {}
    for p in metric_paths:
        path = Path(p)
        metrics.setdefault(path.parent.parent.name, {})[path.parent.name] = read_json(path)
    table = build_table(metrics)
    write_tables(table, out_dir)
    plot_safety_helpfulness(table, Path(out_dir) / "safety_helpfulness.png")
    artifacts: list[str | Path] = [
        Path(out_dir) / n for n in ("table.md", "table.csv", "safety_helpfulness.png")
    ]
    if judgment_paths:
        judgments = pd.concat([read_parquet(p, required=JUDGMENT_COLUMNS) for p in judgment_paths])
        sources = {str(b): official_source(part) for b, part in judgments.groupby("benchmark")}
        analysis = analyse(outcomes_from_judgments(judgments, settings.threshold), pairs or [], settings)
        artifacts += _analysis_outputs(analysis, out_dir, sources)
        scatter = Path(out_dir) / "safety_vs_helpfulness.png"
        plot_safety_vs_helpfulness(safety_helpfulness_points(analysis["rates"], "none"), scatter)
        artifacts.append(scatter)
    if runs[0] and runs[1]:
        artifacts += robustness_outputs(runs[0], runs[1], out_dir, compare, pairs or [], settings)
    tracking.log_stage(
        "report",
        params={
            "models": ",".join(metrics),
            "pairs": json.dumps(pairs or []),
            "compare": json.dumps(list(compare)),
            **dataclasses.asdict(settings),
        },
        artifacts=artifacts,
    )
    return table


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return report_stage(
        a.metrics,
        a.out_dir,
        a.judgments,
        pairs_arg(a.pair),
        analysis_settings(a),
        runs=(a.run_metrics, a.run_judgments),
        compare=pairs_arg(a.compare),
    )
