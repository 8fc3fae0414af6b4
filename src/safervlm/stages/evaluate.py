"""Evaluation stages: attack, generate, judge, score, report, import-opensafemlrm.

Generation and judging import their library modules inside their functions (generation
needs torch, which the light stages should not load); scoring, the report and the
OpenSafeMLRM import use ``metrics`` and ``report``, imported here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm import __version__, tracking
from safervlm.config import GenerateParams
from safervlm.errors import InputError
from safervlm.evaluate.opensafemlrm import import_opensafemlrm
from safervlm.evaluate.score import score_judgments
from safervlm.io import read_json, read_parquet, write_json, write_parquet
from safervlm.metrics import Settings, analyse, outcomes_from_judgments
from safervlm.metrics.outcomes import official_source
from safervlm.report import (
    build_table,
    plot_blind_spots,
    plot_safety_helpfulness,
    plot_safety_vs_helpfulness,
    safety_helpfulness_points,
    write_analysis,
    write_tables,
)
from safervlm.schema import (
    JUDGE_STATUSES,
    JUDGMENT_COLUMNS,
    RESPONSE_COLUMNS,
    SAMPLE_COLUMNS,
    SCORE_COLUMNS,
)

log = logging.getLogger(__name__)


def generate_stage(
    model_path: str, model_name: str, data_path: str, out: str, params: GenerateParams, seed: int
) -> dict[str, Any]:
    """Generate one response per benchmark sample."""
    from safervlm.evaluate.generate import generate_responses

    samples = read_parquet(data_path, required=SAMPLE_COLUMNS)
    df = generate_responses(samples, model_path, model_name, params, seed=seed)
    write_parquet(df, out)
    bench = Path(data_path).stem
    summary = {
        "n": len(df),
        "mean_chars": float(df["response"].str.len().mean()) if len(df) else 0.0,
        "with_reasoning": float((df["reasoning"] != "").mean()) if len(df) else 0.0,
    }
    tracking.log_stage(
        "generate",
        params={
            **dataclasses.asdict(params),
            "model": model_name,
            "model_path": model_path,
            "benchmark": bench,
            "seed": seed,
        },
        metrics=summary,
        run_name=f"generate:{model_name}:{bench}",
    )
    return summary


def judge_stage(
    responses_path: str,
    out: str,
    judge_name: str,
    judge_params: dict[str, Any],
    data_path: str | None = None,
    cache: str | None = None,
) -> dict[str, Any]:
    """Judge every response; keep the judge prompt, raw reply, scores and status per sample.

    ``data_path`` (the benchmark parquet) supplies the images, joined on ``id``; ``cache`` is
    the SQLite reply cache of model judges. Every sample ends ``scored``, ``unscored`` (with
    a reason) or ``error``; the three counts add up to ``n``.
    """
    from safervlm.judge import build_judge, judge_frame

    df = read_parquet(responses_path, required=RESPONSE_COLUMNS)
    if data_path:
        images = read_parquet(data_path, required=["id", "image"])[["id", "image"]]
        if images["id"].duplicated().any():
            raise InputError("duplicate sample ids", path=data_path)
        df = df.merge(images, on="id", how="left", validate="one_to_one")
    judge = build_judge(judge_name, judge_params, cache)
    out_df = judge_frame(judge, df)
    out_df["judge"] = f"{judge.name}@{judge.version}"
    write_parquet(out_df, out)
    counts = out_df["judge_status"].value_counts()
    summary: dict[str, Any] = {
        "n": len(out_df),
        **{f"n_{s}": int(counts.get(s, 0)) for s in JUDGE_STATUSES},
        "n_suspected_injection": int(out_df["suspected_injection"].sum()),
        **{f"mean_{c}": float(out_df[c].mean()) for c in SCORE_COLUMNS},
        **{k: v for k, v in judge.stats.items() if isinstance(v, int)},
    }
    tracking.log_stage(
        "judge",
        params={
            "judge": judge_name,
            "judge_version": judge.version,
            "judge_params": json.dumps(judge_params, sort_keys=True),
            "rubrics": ",".join(sorted(set(out_df["rubric"]) - {""})),
            "cache": cache or "",
            "responses": responses_path,
        },
        metrics=summary,
        # results/eval/{model}/{bench}/responses.parquet: one run name per model and benchmark
        run_name=f"judge:{Path(responses_path).parent.parent.name}:{Path(responses_path).parent.name}",
    )
    return summary


def score_stage(judgments_path: str, out: str, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Aggregate judgments into metrics (means, ASR on reasoning/answer/full, CIs)."""
    df = read_parquet(judgments_path, required=JUDGMENT_COLUMNS)
    metrics = score_judgments(df, n_bootstrap=n_bootstrap, seed=seed)
    model = df["model"].iloc[0] if len(df) else "unknown"
    provenance = {
        "judgments": judgments_path,
        "judge": sorted(df["judge"].unique().tolist()),
        "git_commit": tracking.git_commit(),
        "config_hash": os.environ.get("SAFERVLM_CONFIG_HASH", "unknown"),
        "safervlm_version": __version__,
    }
    metrics = {"model": model, "provenance": provenance, **metrics}
    write_json(metrics, out)
    tracking.log_stage(
        "score",
        params={"judgments": judgments_path, "n_bootstrap": n_bootstrap},
        metrics={k: v for k, v in metrics.items() if k != "provenance"},
        artifacts=[out],
        run_name=f"score:{model}:{Path(judgments_path).parent.name}",
    )
    return metrics


def attack_stage(data_path: str, out: str, attacks: list[str], image_size: int) -> dict[str, Any]:
    """The benchmark under each configured attack (``data.transforms``), stacked."""
    from safervlm.data.transforms import apply_attacks

    samples = read_parquet(data_path, required=SAMPLE_COLUMNS)
    df = apply_attacks(samples, attacks, image_size=image_size)
    write_parquet(df, out)
    counts = {f"n_{a}": int(n) for a, n in df["attack"].value_counts().items()}
    bench = Path(data_path).stem
    tracking.log_stage(
        "attack",
        params={"benchmark": bench, "attacks": ",".join(attacks), "image_size": image_size},
        metrics={"n": len(df), **counts},
        run_name=f"attack:{bench}",
    )
    return {"n": len(df), **counts}


def _analysis_outputs(
    analysis: dict[str, pd.DataFrame], out_dir: str, sources: dict[str, str]
) -> list[str | Path]:
    """Analysis tables and the blind-spot heat map; returns the markdown/figure paths."""
    paths: list[str | Path] = list(write_analysis(analysis, out_dir, sources).values())
    heat = Path(out_dir) / "blind_spots.png"
    plot_blind_spots(analysis["blind_spots"], heat)
    return [*paths, heat]


def report_stage(
    metric_paths: list[str],
    out_dir: str,
    judgment_paths: list[str] | None = None,
    pairs: list[tuple[str, str]] | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Tables (md/csv/tex) and figures of every metric per benchmark and model.

    ``metric_paths`` are ``results/eval/{model}/{benchmark}/metrics.json`` files (the
    safety/helpfulness table); ``judgment_paths`` the matching ``judgments.parquet`` files,
    from which the SafeMLRM analysis (ASR r/a/f per attack and scenario, Reasoning Tax for
    ``pairs``, blind spots, self-correction, official metrics) is computed.
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
    tracking.log_stage(
        "report",
        params={
            "models": ",".join(metrics),
            "pairs": json.dumps(pairs or []),
            **dataclasses.asdict(settings),
        },
        artifacts=artifacts,
    )
    return table


def import_stage(
    root: str, out_dir: str, pairs: list[tuple[str, str]], settings: Settings, benchmark: str
) -> dict[str, pd.DataFrame]:
    """Re-analyse OpenSafeMLRM's published files with the same metrics code and tables."""
    outcomes = import_opensafemlrm(root, benchmark=benchmark, threshold=settings.threshold)
    models = set(outcomes["model"])
    unknown = sorted({m for pair in pairs for m in pair} - models)
    if unknown:
        raise InputError(f"--pair names models {unknown} not found; imported: {sorted(models)}", path=root)
    analysis = analyse(outcomes, pairs, settings)
    artifacts = _analysis_outputs(analysis, out_dir, {benchmark: "not available (imported)"})
    write_parquet(outcomes, Path(out_dir) / "outcomes.parquet")
    tracking.log_stage(
        "import_opensafemlrm",
        params={"root": root, "pairs": json.dumps(pairs), **dataclasses.asdict(settings)},
        metrics={"n": len(outcomes), "n_models": len(models)},
        artifacts=artifacts,
    )
    return analysis
