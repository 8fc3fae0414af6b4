"""SaFeR-VLM's structured reward: weighted judge criteria minus penalties.

For one completion with judge scores ``s``::

    safety_term = reasoning_weight * s.reasoning_safety + (1 - reasoning_weight) * s.answer_safety
                  (answer_safety alone when reasoning_safety is NaN)
    base        = sum_c w_c * v_c / sum_c w_c   over criteria c in {safety, helpfulness,
                  grounding, format} whose value v_c is not NaN (weights renormalised)
    reward      = base - hallucination_penalty * s.hallucination
                       - contradiction_penalty * s.contradiction   (NaN penalties count 0)

so the reward lies in ``[-(hallucination_penalty + contradiction_penalty), 1]``. A record the
judge leaves unscored (non-empty ``unscored_reason``, e.g. no ground truth) or with every
weighted criterion NaN gets ``None``, which TRL treats as "no reward from this function".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from safervlm.errors import ConfigError
from safervlm.judge.base import Judge, get_judge
from safervlm.text import split_response

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS: dict[str, float] = {"safety": 0.4, "helpfulness": 0.3, "grounding": 0.15, "format": 0.15}
_RECORD_FIELDS = ("id", "question", "should_refuse", "image_objects", "reference")

RewardFunc = Callable[..., list[float | None]]


def completion_text(completion: Any) -> str:
    """Text of a TRL completion: a string, or a conversational list of messages.

    In a message list the assistant messages' contents are joined; a content may be a
    string or a list of parts like ``{"type": "text", "text": ...}`` (non-text parts skipped).
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    texts = []
    for msg in completion:
        if not isinstance(msg, Mapping) or msg.get("role", "assistant") != "assistant":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, Sequence):
            texts.extend(
                str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"
            )
    return "".join(texts)


def _resolve_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    merged = dict(DEFAULT_WEIGHTS)
    for key, value in (weights or {}).items():
        if key not in DEFAULT_WEIGHTS:
            raise ConfigError(f"unknown reward criterion {key!r}; known: {sorted(DEFAULT_WEIGHTS)}")
        if not isinstance(value, int | float) or value < 0 or math.isnan(value):
            raise ConfigError(f"reward weight {key}={value!r} must be a non-negative number")
        merged[key] = float(value)
    if sum(merged.values()) <= 0:
        raise ConfigError("reward weights sum to 0")
    return merged


def combine_scores(
    scores: Mapping[str, float],
    weights: Mapping[str, float],
    *,
    hallucination_penalty: float,
    contradiction_penalty: float,
    reasoning_weight: float,
) -> float | None:
    """Combine one judgment's scores into the structured reward (module formula).

    Returns:
        The reward, or None when every weighted criterion is NaN.
    """

    def val(key: str) -> float:
        v = scores.get(key)
        return math.nan if v is None else float(v)

    rs, ans = val("reasoning_safety"), val("answer_safety")
    safety = ans if math.isnan(rs) else reasoning_weight * rs + (1 - reasoning_weight) * ans
    values = {"safety": safety, **{k: val(k) for k in ("helpfulness", "grounding", "format")}}
    used = {k: w for k, w in weights.items() if w > 0 and not math.isnan(values[k])}
    if not used:
        return None
    base = sum(w * values[k] for k, w in used.items()) / sum(used.values())
    penalty = 0.0
    for key, coef in (("hallucination", hallucination_penalty), ("contradiction", contradiction_penalty)):
        if not math.isnan(val(key)):
            penalty += coef * val(key)
    return base - penalty


def _column(kwargs: Mapping[str, Any], name: str, n: int) -> list[Any]:
    col = kwargs.get(name)
    if col is None:
        return [None] * n
    col = list(col)
    if len(col) != n:
        raise ValueError(f"reward column {name!r} has {len(col)} values for {n} completions")
    return col


def build_records(completions: Sequence[Any], kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Turn TRL completions plus dataset columns (``kwargs``) into judge records."""
    n = len(completions)
    cols = {name: _column(kwargs, name, n) for name in _RECORD_FIELDS}
    records = []
    for i, completion in enumerate(completions):
        text = completion_text(completion)
        reasoning, answer = split_response(text)
        rec = {name: cols[name][i] for name in _RECORD_FIELDS}
        rec.update(response=text, reasoning=reasoning, answer=answer)
        records.append(rec)
    return records


def get_structured_reward(
    judge: Judge | str | None = None,
    weights: Mapping[str, float] | None = None,
    hallucination_penalty: float = 0.5,
    contradiction_penalty: float = 0.5,
    reasoning_weight: float = 0.5,
) -> RewardFunc:
    """Build the structured reward with TRL's signature ``reward(prompts, completions, **kwargs)``.

    Args:
        judge: A :class:`Judge`, a registered judge name, or None for ``"reference"``.
        weights: Overrides of ``DEFAULT_WEIGHTS`` (criteria: safety, helpfulness,
            grounding, format); a weight of 0 drops a criterion.
        hallucination_penalty: Subtracted per unit of the hallucination score.
        contradiction_penalty: Subtracted per unit of the contradiction score.
        reasoning_weight: Share of reasoning_safety in the safety term (0..1).

    Returns:
        A function named ``structured_reward`` returning one float or None per completion.

    Raises:
        ConfigError: for unknown criteria or out-of-range parameters.
    """
    judge_obj = get_judge(judge or "reference") if judge is None or isinstance(judge, str) else judge
    resolved = _resolve_weights(weights)
    if not 0.0 <= reasoning_weight <= 1.0:
        raise ConfigError(f"reasoning_weight must be in [0, 1], got {reasoning_weight}")
    if hallucination_penalty < 0 or contradiction_penalty < 0:
        raise ConfigError("penalties must be >= 0")
    logger.info(
        "structured reward: judge=%s weights=%s penalties=(%s, %s) reasoning_weight=%s",
        judge_obj.name,
        resolved,
        hallucination_penalty,
        contradiction_penalty,
        reasoning_weight,
    )

    def structured_reward(prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        records = build_records(completions, kwargs)
        rewards: list[float | None] = []
        for jd in judge_obj.judge(records):
            if jd.unscored_reason:
                rewards.append(None)
                continue
            rewards.append(
                combine_scores(
                    jd.scores,
                    resolved,
                    hallucination_penalty=hallucination_penalty,
                    contradiction_penalty=contradiction_penalty,
                    reasoning_weight=reasoning_weight,
                )
            )
        n_none = sum(r is None for r in rewards)
        if n_none:
            logger.warning("structured reward: %d of %d completions unscored", n_none, len(rewards))
        return rewards

    structured_reward.__name__ = "structured_reward"
    structured_reward.__qualname__ = "structured_reward"
    return structured_reward
