"""Curation stages: decontamination, QI scoring (K sampled answers judged), QI selection."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm import tracking
from safervlm.config import CurateParams
from safervlm.curate import datasheet, decontaminate, qi_scores, qi_select
from safervlm.io import read_parquet, write_json, write_parquet, write_text
from safervlm.judge import get_judge
from safervlm.rewards import get_reward

log = logging.getLogger(__name__)


def decontaminate_stage(
    pool_path: str, eval_paths: list[str], out: str, report_path: str, params: CurateParams
) -> dict[str, Any]:
    """Drop pool rows that overlap any evaluation benchmark (text n-grams or identical image)."""
    pool = read_parquet(pool_path, required=["id", "question", "image"])
    evals = [read_parquet(p, required=["id", "question", "image"]) for p in eval_paths]
    clean, report = decontaminate(pool, evals, ngram=params.ngram)
    report = {
        **report,
        "eval_sets": [Path(p).stem for p in eval_paths],
        "n_in": len(pool),
        "n_out": len(clean),
    }
    write_parquet(clean, out)
    write_json(report, report_path)
    tracking.log_stage(
        "decontaminate",
        params={"ngram": params.ngram},
        metrics={"n_in": len(pool), "n_out": len(clean)},
        artifacts=[report_path],
    )
    return report


def qi_score_stage(
    model_path: str,
    pool_path: str,
    out: str,
    params: CurateParams,
    judge_name: str,
    judge_params: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Sample K answers per prompt from the base policy, reward each, and score quality/instability."""
    from safervlm.evaluate.generate import HFGenerator

    pool = read_parquet(pool_path, required=["id", "question", "image", "should_refuse", "image_objects"])
    gen = HFGenerator(model_path)
    samples = gen.generate(
        pool["question"].tolist(),
        pool["image"].tolist(),
        max_new_tokens=params.max_new_tokens,
        do_sample=True,
        temperature=params.temperature,
        num_samples=params.k_samples,
        batch_size=params.batch_size,
        seed=seed,
    )
    reward = get_reward("structured", judge=get_judge(judge_name, **judge_params))
    rows = []
    for (_, rec), completions in zip(pool.iterrows(), samples, strict=True):
        k = len(completions)
        cols = {c: [rec[c]] * k for c in ("question", "should_refuse", "image_objects", "reference")}
        for j, (c, r) in enumerate(
            zip(completions, reward([rec["question"]] * k, completions, **cols), strict=True)
        ):
            rows.append({"id": rec["id"], "sample_idx": j, "completion": c, "reward": r})
    per_sample = pd.DataFrame(rows)
    scores = qi_scores(per_sample[["id", "sample_idx", "reward"]])
    write_parquet(scores, out)
    write_parquet(per_sample, Path(out).with_suffix(".samples.parquet"))
    summary = {
        "n_prompts": len(scores),
        "quality_mean": float(scores["quality"].mean()),
        "instability_mean": float(scores["instability"].mean()),
    }
    tracking.log_stage(
        "qi_score",
        params={**dataclasses.asdict(params), "model": model_path, "judge": judge_name},
        metrics=summary,
    )
    return summary


def qi_select_stage(
    scores_path: str, pool_path: str, out: str, datasheet_path: str, params: CurateParams, seed: int
) -> dict[str, Any]:
    """Keep the quality–instability box (QI-Safe) and write its datasheet."""
    scores = read_parquet(scores_path, required=["id", "quality", "instability"])
    pool = read_parquet(pool_path, required=["id"])
    lo, hi = params.quality_range
    selected = qi_select(
        scores,
        pool,
        quality_range=(lo, hi),
        min_instability=params.min_instability,
        max_samples=params.max_samples,
        min_samples=params.min_samples,
        seed=seed,
    )
    sheet = datasheet(selected, pool, scores, dataclasses.asdict(params))
    write_parquet(selected, out)
    write_text(sheet, datasheet_path)
    tracking.log_stage(
        "qi_select",
        params=dataclasses.asdict(params),
        metrics={"n_pool": len(pool), "n_selected": len(selected)},
        artifacts=[datasheet_path],
    )
    return {"n_pool": len(pool), "n_selected": len(selected)}
