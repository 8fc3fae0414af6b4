"""``safervlm qi-score``: K sampled answers per pool prompt, judged, scored for quality and
instability."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from safervlm import tracking
from safervlm.config import QIScoreParams, parse_json_arg
from safervlm.curate.scoring import (
    answers_frame,
    check_score,
    qi_scores,
    sample_answers,
    score_answers,
)
from safervlm.errors import InputError
from safervlm.io import read_parquet, write_parquet
from safervlm.judge import build_judge
from safervlm.models.generation import HFGenerator
from safervlm.stages.args import judge_args, judge_kwargs, params_arg

log = logging.getLogger(__name__)


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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``safervlm qi-score`` (collected by :func:`safervlm.cli.build_parser`)."""
    for flag in ("--model", "--pool", "--out", "--samples"):
        p.add_argument(flag, required=True)
    p.add_argument("--params", default="{}", help="curate keys as JSON (k_samples, score, ...)")
    p.add_argument("--seed", type=int, default=0)
    judge_args(p)
    p.add_argument("--reward", default="structured", help="reward registry name (for score: reward)")
    p.add_argument("--reward-params", default="{}", help="reward parameters as JSON")


def main(a: argparse.Namespace) -> Any:
    """Run the stage from parsed arguments."""
    return qi_score_stage(
        a.model,
        a.pool,
        a.out,
        a.samples,
        params_arg(QIScoreParams, a.params),
        **judge_kwargs(a),
        reward=a.reward,
        reward_params=parse_json_arg(a.reward_params, what="--reward-params"),
        seed=a.seed,
    )
