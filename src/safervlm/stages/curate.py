"""Curation stages before selection: decontamination and QI scoring (K sampled answers, judged)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from safervlm import tracking
from safervlm.curate.decontaminate import DecontaminateParams, decontaminate
from safervlm.curate.scoring import (
    QIScoreParams,
    answers_frame,
    check_score,
    qi_scores,
    sample_answers,
    score_answers,
)
from safervlm.errors import InputError
from safervlm.io import read_parquet, write_json, write_parquet
from safervlm.judge import build_judge

log = logging.getLogger(__name__)

_EVAL_COLUMNS = ["id", "question", "image"]


def decontaminate_stage(
    pool_path: str, eval_paths: list[str], out: str, report_path: str, params: DecontaminateParams
) -> dict[str, Any]:
    """Drop pool rows that duplicate any evaluation benchmark (exact/near text, near image).

    Benchmarks are named after their parquet files (``results/data/bench/{name}.parquet``).

    Raises:
        InputError: a missing column, an undecodable image, or nothing left after filtering.
    """
    pool = read_parquet(pool_path, required=[*_EVAL_COLUMNS, "source"])
    paths = {Path(p).stem: str(p) for p in eval_paths}
    evals = {name: read_parquet(p, required=_EVAL_COLUMNS) for name, p in paths.items()}
    clean, report = decontaminate(pool, evals, params, pool_path=pool_path, eval_paths=paths)
    if clean.empty:
        raise InputError(
            f"decontamination removed all {len(pool)} pool rows {report['removed_by_reason']}; "
            "nothing is left to curate",
            path=pool_path,
        )
    write_parquet(clean, out)
    write_json(report, report_path)
    tracking.log_stage(
        "decontaminate",
        params={**params.model_dump(), "eval_sets": sorted(paths)},
        metrics={k: report[k] for k in ("n_pool", "n_removed", "n_kept", "removed_by_reason")}
        | {"removed_by_benchmark": report["removed_by_benchmark"]},
        artifacts=[report_path],
    )
    return report


def qi_score_stage(
    model_path: str,
    pool_path: str,
    out: str,
    samples_out: str,
    params: QIScoreParams,
    *,
    judge_name: str,
    judge_params: dict[str, Any],
    judge_cache: str | None = None,
    reward: str,
    reward_params: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Sample K answers per prompt (one batched generate), judge each, score quality/instability.

    Writes per-prompt scores to ``out`` and every answer with its judgment and score to
    ``samples_out``.
    """
    from safervlm.evaluate.generate import HFGenerator  # torch: only this stage needs it

    check_score(params.score)
    judge = build_judge(judge_name, judge_params, judge_cache)
    pool = read_parquet(
        pool_path,
        required=[
            "id",
            "question",
            "image",
            "should_refuse",
            "image_objects",
            "reference",
            "category",
            "source",
        ],
    )
    if pool.empty:
        raise InputError("the decontaminated pool is empty: nothing to score", path=pool_path)
    gen = HFGenerator(model_path)
    start = time.perf_counter()
    answers = sample_answers(gen, pool, params, seed)
    gen_s = time.perf_counter() - start
    responses = answers_frame(pool, answers, model=Path(model_path).name)
    scored = score_answers(responses, judge, params.score, reward, reward_params)
    judge_s = time.perf_counter() - start - gen_s
    scores = qi_scores(scored, pool)
    write_parquet(scores, out)
    write_parquet(scored, samples_out)
    n_prompts_scored = int(scores["quality"].notna().sum())
    summary = {
        "n_prompts": len(scores),
        "n_prompts_scored": n_prompts_scored,
        "n_answers": len(scored),
        "n_answers_unscored": int(scored["score"].isna().sum()),
        "quality_mean": float(scores["quality"].mean()) if n_prompts_scored else None,
        "instability_mean": float(scores["instability"].mean()) if n_prompts_scored else None,
        "generate_s": round(gen_s, 3),
        "judge_s": round(judge_s, 3),
        "prompts_per_s": round(len(scores) / max(gen_s + judge_s, 1e-9), 3),
    }
    if not n_prompts_scored:
        log.warning("qi_score: no prompt has >= 2 scored answers; qi_select will find nothing to select")
    tracking.log_stage(
        "qi_score",
        params={**params.model_dump(), "model": model_path, "judge": judge_name, "seed": seed}
        | ({"reward": reward, "reward_params": reward_params} if params.score == "reward" else {}),
        metrics=summary,
    )
    return summary
