"""Evaluation stages: generate, judge, score, report."""

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
from safervlm.evaluate.score import score_judgments
from safervlm.io import read_json, read_parquet, write_json, write_parquet
from safervlm.judge import build_judge, judge_frame
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
        run_name=f"judge:{Path(responses_path).parent.name}",
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
        run_name=f"score:{model}",
    )
    return metrics


def report_stage(metric_paths: list[str], out_dir: str) -> pd.DataFrame:
    """Tables (md/csv/tex) and a figure of safety and helpfulness per benchmark and model.

    ``metric_paths`` are ``results/eval/{model}/{benchmark}/metrics.json`` files.
    """
    from safervlm.report import build_table, plot_safety_helpfulness, write_tables

    metrics: dict[str, dict[str, Any]] = {}
    for p in metric_paths:
        path = Path(p)
        metrics.setdefault(path.parent.parent.name, {})[path.parent.name] = read_json(path)
    table = build_table(metrics)
    write_tables(table, out_dir)
    plot_safety_helpfulness(table, Path(out_dir) / "safety_helpfulness.png")
    tracking.log_stage(
        "report",
        params={"models": ",".join(metrics)},
        artifacts=[Path(out_dir) / n for n in ("table.md", "table.csv", "safety_helpfulness.png")],
    )
    return table
