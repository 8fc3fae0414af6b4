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
from safervlm.report.analysis import write_analysis
from safervlm.report.figures import (
    plot_blind_spots,
    plot_judge_agreement,
    plot_safety_helpfulness,
    plot_safety_vs_helpfulness,
    plot_seed_safety,
)
from safervlm.report.robustness import Run
from safervlm.report.robustness_md import tax_tests_md, write_robustness
from safervlm.report.tables import build_table, points, write_tables
from safervlm.schema import JUDGMENT_COLUMNS
from safervlm.stages.args import analysis_args, many, pairs_arg


def analysis_settings(a: argparse.Namespace) -> Settings:
    """The SafeMLRM analysis settings from ``--threshold --missing --n-bootstrap --seed``
    (no ``--threshold``: :data:`~safervlm.metrics.asr.ASR_THRESHOLD`)."""
    try:
        threshold = ASR_THRESHOLD if a.threshold is None else a.threshold
        return Settings(threshold=threshold, missing=a.missing, n_bootstrap=a.n_bootstrap, seed=a.seed)
    except ValueError as exc:
        raise SafervlmError(str(exc)) from exc


def _figure(path: Path, drawn: bool) -> list[str | Path]:
    """``[path]`` when the figure was drawn; else removes a stale copy (a degenerate dimension
    leaves the figure out: its table says why) and returns nothing."""
    if drawn:
        return [path]
    path.unlink(missing_ok=True)
    return []


def _analysis_outputs(
    analysis: dict[str, pd.DataFrame], out_dir: str, sources: dict[str, str], settings: Settings | None = None
) -> list[str | Path]:
    """Analysis tables and, with a (reasoning, base) pair, the blind-spot figure; returns the
    markdown/figure paths."""

    paths: list[str | Path] = list(write_analysis(analysis, out_dir, sources, settings).values())
    heat = Path(out_dir) / "blind_spots.png"
    pairs = not analysis["tax"].empty
    if pairs:
        plot_blind_spots(analysis["blind_spots"], analysis["tax"], heat)
    return [*paths, *_figure(heat, pairs)]


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
    """The seed, judge, agreement and paired tables and their figures; returns their paths.

    The seed figure needs two or more seeds, the agreement figure two or more judges.
    """
    metrics: dict[Run, dict[str, Any]] = {}
    for run, path in run_items(metric_runs, "--run-metrics"):
        metrics.setdefault(run, {})[f"{path.parent.parent.name}/{path.parent.name}"] = read_json(path)
    parts: dict[Run, list[pd.DataFrame]] = {}
    for run, path in run_items(judgment_runs, "--run-judgments"):
        parts.setdefault(run, []).append(read_parquet(path, required=JUDGMENT_COLUMNS))
    judgments = {run: pd.concat(dfs, ignore_index=True) for run, dfs in parts.items()}
    frames = write_robustness(
        metrics, judgments, out_dir, compare, tax_pairs, settings.n_bootstrap, settings.seed, settings
    )
    out = Path(out_dir)
    tax = out / "tax.md"
    tests = tax_tests_md(frames["paired"])
    if tax.exists() and tests:  # the Reasoning Tax table was written: it gains its paired tests
        write_text(tax.read_text() + tests, tax)
    n_seeds, n_judges = len({s for s, _ in metrics}), len({j for _, j in metrics})
    if n_seeds > 1:
        plot_seed_safety(frames["seeds"], out / ROBUSTNESS_FIGURES[0])
    if n_judges > 1:
        plot_judge_agreement(frames["agreement"], out / ROBUSTNESS_FIGURES[1])
    figures = [
        *_figure(out / ROBUSTNESS_FIGURES[0], n_seeds > 1),
        *_figure(out / ROBUSTNESS_FIGURES[1], n_judges > 1),
    ]
    return [*(out / f"{n}.md" for n in ROBUSTNESS_TABLES), *figures]


def append_sections(target: Path, sections: Sequence[str | Path]) -> bool:
    """Append each existing markdown file of ``sections`` (each opens with its own heading) to
    ``target`` when ``target`` exists (seeds.md gains grpo_compare's learning curves, so it
    stays self-contained); returns whether anything was appended."""
    texts = [Path(p).read_text() for p in sections if Path(p).is_file()]
    if not texts or not target.is_file():
        return False
    write_text(
        target.read_text().rstrip("\n") + "\n\n" + "\n".join(t.rstrip("\n") + "\n" for t in texts), target
    )
    return True


def report_stage(
    metric_paths: list[str],
    out_dir: str,
    judgment_paths: list[str] | None = None,
    pairs: list[tuple[str, str]] | None = None,
    settings: Settings | None = None,
    runs: tuple[Sequence[str], Sequence[str]] = ((), ()),
    compare: Sequence[tuple[str, str]] = (),
    seeds_append: Sequence[str] = (),
) -> pd.DataFrame:
    """Tables (md/csv/tex) and figures of every metric per benchmark and model.

    ``metric_paths`` are ``results/eval/{model}/{benchmark}/metrics.json`` files (the
    safety/helpfulness table); ``judgment_paths`` the matching ``judgments.parquet`` files,
    from which the SafeMLRM analysis (ASR r/a/f per attack and scenario, Reasoning Tax for
    ``pairs``, blind spots, self-correction, official metrics) is computed. ``runs``:
    ``SEED:JUDGE=path`` metrics and judgments of every seed and judge, for the seed, judge
    and paired tables (``compare``: model pairs compared item by item - any two models;
    ``pairs``: (reasoning, base) pairs, also the Reasoning Tax and blind spots).
    ``seeds_append``: markdown sections appended to seeds.md (grpo_compare's learning curves).
    """
    settings = settings or Settings()
    metrics: dict[str, dict[str, Any]] = {}
    for p in metric_paths:
        path = Path(p)
        metrics.setdefault(path.parent.parent.name, {})[path.parent.name] = read_json(path)
    unknown = sorted({m for p in [*(pairs or []), *compare] for m in p} - set(metrics))
    if unknown:
        raise SafervlmError(
            f"--pair/--compare name {unknown}, which have no metrics (evaluated: {sorted(metrics)})"
        )
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
        artifacts += _analysis_outputs(analysis, out_dir, sources, settings)
        scatter = Path(out_dir) / "safety_vs_helpfulness.png"
        plot_safety_vs_helpfulness(points(table), scatter)  # table.md's numbers, as the bars
        artifacts.append(scatter)
    if runs[0] and runs[1]:
        artifacts += robustness_outputs(runs[0], runs[1], out_dir, compare, pairs or [], settings)
        append_sections(Path(out_dir) / "seeds.md", seeds_append)  # just written: appended once
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm report`` (collected by :func:`safervlm.cli.build_parser`)."""
    many(p, "--metrics", nargs="+", required=True, help="results/eval/{model}/{bench}/metrics.json")
    many(p, "--judgments", nargs="*", default=[], help="judgments.parquet files (SafeMLRM analysis)")
    p.add_argument("--out-dir", required=True)
    analysis_args(p)
    many(
        p,
        "--run-metrics",
        nargs="*",
        default=[],
        metavar="SEED:JUDGE=PATH",
        help="metrics.json of every seed and judge (seed, judge and paired tables)",
    )
    many(
        p,
        "--run-judgments",
        nargs="*",
        default=[],
        metavar="SEED:JUDGE=PATH",
        help="judgments.parquet of every seed and judge, likewise",
    )
    many(p, "--compare", nargs="*", default=[], metavar="A=B", help="model pairs compared per item (b - a)")
    many(
        p,
        "--seeds-append",
        nargs="*",
        default=[],
        metavar="MD",
        help="markdown sections appended to seeds.md (grpo_compare's learning curves)",
    )


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
        seeds_append=a.seeds_append,
    )
