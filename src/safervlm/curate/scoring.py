"""QI scoring: K sampled answers per prompt from the base policy, each judged, then
quality (mean score) and instability (spread) per prompt.

Sampling is one batched ``generate`` per batch of prompts with ``num_return_sequences=K``
(not K passes over the pool). Every answer goes through the configured judge once
(:func:`safervlm.judge.judge_frame`); its per-answer *score* is either one of the judge's
score columns (``score: safety`` …) or ``score: reward``, the training reward (the
``grpo.reward`` registry entry) computed from those same judgments, so the judge is never
asked twice. Quality is the mean and instability the population standard deviation
(``ddof=0``) of a prompt's non-null scores; a prompt with fewer than two scored answers has
neither (NaN) and is never selected. Every answer, judgment and score is kept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Protocol

import pandas as pd

from safervlm.config import QIScoreParams
from safervlm.errors import ConfigError, InputError
from safervlm.judge import Judge, Judgment, judge_frame
from safervlm.rewards import get_reward
from safervlm.schema import GENERATION_COLUMNS, RESPONSE_COLUMNS, SCORE_COLUMNS, with_generation_columns
from safervlm.text import split_response_v1

logger = logging.getLogger(__name__)

REWARD = "reward"
PROMPT_FIELDS = ["id", "source", "category", "should_refuse"]
SCORE_FIELDS = ["quality", "instability", "n_samples", "n_scored"]


class Generator(Protocol):
    """What QI scoring needs of a policy (``safervlm.evaluate.generate.HFGenerator``)."""

    def generate(
        self,
        questions: Sequence[str],
        images: Sequence[bytes | None],
        *,
        max_new_tokens: int = ...,
        do_sample: bool = ...,
        temperature: float = ...,
        num_samples: int = ...,
        batch_size: int = ...,
        seed: int = ...,
    ) -> list[list[str]]: ...


def check_score(score: str) -> None:
    """Raise ConfigError unless ``score`` is ``reward`` or a judge score column."""
    if score != REWARD and score not in SCORE_COLUMNS:
        raise ConfigError(f"curate.score must be {REWARD!r} or one of {SCORE_COLUMNS}, got {score!r}")


def sample_answers(gen: Generator, pool: pd.DataFrame, params: QIScoreParams, seed: int) -> list[list[str]]:
    """K sampled answers per pool row, in pool order: one batched generate per batch."""
    if params.k_samples < 2:
        raise ConfigError(f"curate.k_samples must be >= 2 to measure instability, got {params.k_samples}")
    images = [bytes(b) if isinstance(b, bytes | bytearray) else None for b in pool["image"]]
    return gen.generate(
        pool["question"].astype(str).tolist(),
        images,
        max_new_tokens=params.max_new_tokens,
        do_sample=True,
        temperature=params.temperature,
        num_samples=params.k_samples,
        batch_size=params.batch_size,
        seed=seed,
    )


def answers_frame(pool: pd.DataFrame, answers: list[list[str]], model: str) -> pd.DataFrame:
    """One response record (``RESPONSE_COLUMNS`` + ``sample_idx``) per sampled answer."""
    if len(answers) != len(pool):
        raise ValueError(f"{len(answers)} answer lists for {len(pool)} prompts")
    base = pool.reindex(columns=RESPONSE_COLUMNS).drop(columns=["model", "response", "reasoning", "answer",
                                                                *GENERATION_COLUMNS])  # fmt: skip
    rows = []
    for rec, texts in zip(base.to_dict("records"), answers, strict=True):
        for j, text in enumerate(texts):
            reasoning, answer = split_response_v1(text)
            rows.append(
                {
                    **rec,
                    "model": model,
                    "response": text,
                    "reasoning": reasoning,
                    "answer": answer,
                    "sample_idx": j,
                }
            )
    core = [c for c in RESPONSE_COLUMNS if c not in GENERATION_COLUMNS]  # how they ended is not known here
    frame = with_generation_columns(pd.DataFrame(rows, columns=[*core, "sample_idx"]))
    return frame[[*RESPONSE_COLUMNS, "sample_idx"]]


class RecordedJudge(Judge):
    """Returns judgments already made, in order: lets a reward reuse them without re-judging."""

    def __init__(self, judgments: list[Judgment], name: str) -> None:
        self._judgments = judgments
        self.name = name
        self.version = "recorded"

    def judge(self, records: list[dict[str, Any]]) -> list[Judgment]:
        if len(records) != len(self._judgments):
            raise RuntimeError(f"{len(records)} records for {len(self._judgments)} recorded judgments")
        return list(self._judgments)


def _recorded(judgments: pd.DataFrame) -> list[Judgment]:
    out = []
    for rec in judgments.to_dict("records"):
        scores = {c: (math.nan if pd.isna(rec[c]) else float(rec[c])) for c in SCORE_COLUMNS}
        out.append(Judgment(rec["judge_prompt"], rec["judge_raw"], scores, rec["unscored_reason"]))
    return out


def score_answers(
    responses: pd.DataFrame,
    judge: Judge,
    score: str = REWARD,
    reward: str = "structured",
    reward_params: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Judge every answer once and add its ``score`` column (module docstring).

    Returns:
        The judgments (``JUDGMENT_COLUMNS``) plus ``sample_idx`` and ``score`` (NaN when
        unscored), in the order of ``responses``.
    """
    check_score(score)
    judged = judge_frame(judge, responses)
    judged.insert(list(judged.columns).index("model"), "sample_idx", responses["sample_idx"].to_numpy())
    if score != REWARD:
        judged["score"] = judged[score].astype(float)
        return judged
    fn = get_reward(reward, judge=RecordedJudge(_recorded(judged), judge.name), **(reward_params or {}))
    cols = {c: judged[c].tolist() for c in ("id", "question", "should_refuse", "image_objects", "reference")}
    values = fn(judged["question"].tolist(), judged["response"].tolist(), **cols)
    judged["score"] = [math.nan if v is None else float(v) for v in values]
    return judged


def qi_scores(scored: pd.DataFrame, pool: pd.DataFrame) -> pd.DataFrame:
    """Per-prompt quality, instability, n_samples and n_scored, in pool order.

    Args:
        scored: One row per answer with ``id`` and ``score`` (NaN = unscored).
        pool: The prompts (``id``, ``source``, ``category``, ``should_refuse``).

    Raises:
        InputError: an answer's id is not in the pool.
    """
    unknown = set(scored["id"]) - set(pool["id"])
    if unknown:
        raise InputError("scored answers for ids not in the pool", record=sorted(unknown)[0])
    grouped = scored.groupby("id", sort=False)["score"]
    stats = pd.DataFrame(
        {
            "mean": grouped.mean(),
            "std": grouped.std(ddof=0),
            "n_samples": grouped.size(),
            "n_scored": grouped.count(),
        }
    )
    out = pool.reindex(columns=PROMPT_FIELDS).merge(stats, left_on="id", right_index=True, how="left")
    enough = out["n_scored"].fillna(0) >= 2
    out["quality"] = out["mean"].where(enough)
    out["instability"] = out["std"].where(enough)
    out["n_samples"] = out["n_samples"].fillna(0).astype("int64")
    out["n_scored"] = out["n_scored"].fillna(0).astype("int64")
    return out[[*PROMPT_FIELDS, *SCORE_FIELDS]].reset_index(drop=True)
