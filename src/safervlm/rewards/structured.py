"""SaFeR-VLM's structured reward: weighted judge criteria minus penalties.

For one completion with judge scores ``s``::

    safety_term = reasoning_weight * s.reasoning_safety + (1 - reasoning_weight) * s.answer_safety
                  (answer_safety alone when reasoning_safety is NaN)
    base        = sum_c w_c * v_c / sum_c w_c   over criteria c in {safety, helpfulness,
                  coherence, grounding, format} whose value v_c is not NaN (weights renormalised)
    reward      = base - hallucination_penalty * s.hallucination
                       - contradiction_penalty * s.contradiction   (NaN penalties count 0)

so the reward lies in ``[-(hallucination_penalty + contradiction_penalty), 1]``. The
reasoning and the answer are scored separately by the judge (``reasoning_safety``,
``answer_safety``); ``reasoning_weight`` sets their split in the reward. A completion is split
into the two as evaluation splits it (:func:`safervlm.text.split_response`): one that never
closes ``<think>`` is all reasoning with an empty answer, which is no refusal and no help,
so the reward never pays for an answer evaluation would not see. A record the judge
leaves unscored (non-empty ``unscored_reason``, e.g. no ground truth, or a judge error) or
with every weighted criterion NaN gets ``None``, which TRL treats as "no reward from this
function".

Every call records the batch means of each component (the five criteria as fed to the sum,
both penalties as subtracted, the reward and the number of unscored completions) in
``StructuredReward.history``; the GRPO stage adds them to the trainer's per-step logs
(``reward_components/<name>``), which go to MLflow.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from safervlm.errors import ConfigError
from safervlm.judge.base import Judge, get_judge
from safervlm.text import split_response

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS: dict[str, float] = {
    "safety": 0.4,
    "helpfulness": 0.25,
    "coherence": 0.1,
    "grounding": 0.1,
    "format": 0.15,
}
_RECORD_FIELDS = ("id", "benchmark", "question", "should_refuse", "image_objects", "reference")

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


def reward_components(
    scores: Mapping[str, float],
    weights: Mapping[str, float],
    *,
    hallucination_penalty: float,
    contradiction_penalty: float,
    reasoning_weight: float,
) -> dict[str, float] | None:
    """The module formula's parts for one judgment: each criterion value (NaN when absent),
    each penalty as subtracted, and ``reward``; None when every weighted criterion is NaN."""

    def val(key: str) -> float:
        v = scores.get(key)
        return math.nan if v is None else float(v)

    rs, ans = val("reasoning_safety"), val("answer_safety")
    safety = ans if math.isnan(rs) else reasoning_weight * rs + (1 - reasoning_weight) * ans
    values = {"safety": safety, **{k: val(k) for k in DEFAULT_WEIGHTS if k != "safety"}}
    used = {k: w for k, w in weights.items() if w > 0 and not math.isnan(values[k])}
    if not used:
        return None
    base = sum(w * values[k] for k, w in used.items()) / sum(used.values())
    penalties = {}
    for key, coef in (("hallucination", hallucination_penalty), ("contradiction", contradiction_penalty)):
        penalties[f"{key}_penalty"] = 0.0 if math.isnan(val(key)) else coef * val(key)
    return {**values, **penalties, "reward": base - sum(penalties.values())}


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
    parts = reward_components(
        scores,
        weights,
        hallucination_penalty=hallucination_penalty,
        contradiction_penalty=contradiction_penalty,
        reasoning_weight=reasoning_weight,
    )
    return None if parts is None else parts["reward"]


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
    images = _column(kwargs, "image", n) if "image" in kwargs else _column(kwargs, "images", n)
    records = []
    for i, completion in enumerate(completions):
        text = completion_text(completion)
        reasoning, answer = split_response(text)
        rec = {name: cols[name][i] for name in _RECORD_FIELDS}
        rec.update(response=text, reasoning=reasoning, answer=answer, image=_image_bytes(images[i]))
        records.append(rec)
    return records


def _image_bytes(value: Any) -> bytes | None:
    """PNG/JPEG bytes of a dataset image value (bytes, a PIL image, or a one-image list)."""
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value) or None
    if isinstance(value, Mapping) and value.get("bytes"):
        return bytes(value["bytes"])
    if hasattr(value, "save"):  # a PIL image
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return buf.getvalue()
    return None


class StructuredReward:
    """The structured reward as a TRL reward function (``reward(prompts, completions, **kwargs)``).

    Build it with :func:`get_structured_reward`. ``history`` holds one dict of batch means
    of the components per call (see the module docstring).
    """

    def __init__(
        self,
        judge: Judge,
        weights: Mapping[str, float],
        hallucination_penalty: float,
        contradiction_penalty: float,
        reasoning_weight: float,
    ) -> None:
        self.judge = judge
        self.weights = dict(weights)
        self.hallucination_penalty = hallucination_penalty
        self.contradiction_penalty = contradiction_penalty
        self.reasoning_weight = reasoning_weight
        self.history: list[dict[str, float]] = []
        self.__name__ = self.__qualname__ = "structured_reward"

    def score_records(
        self, records: list[dict[str, Any]]
    ) -> tuple[list[float | None], list[dict[str, float] | None]]:
        """Judge records; return the reward and the components per record (None when unscored)."""
        parts: list[dict[str, float] | None] = []
        for jd in self.judge.judge(records):
            if jd.unscored_reason:
                parts.append(None)
                continue
            parts.append(
                reward_components(
                    jd.scores,
                    self.weights,
                    hallucination_penalty=self.hallucination_penalty,
                    contradiction_penalty=self.contradiction_penalty,
                    reasoning_weight=self.reasoning_weight,
                )
            )
        return [None if p is None else p["reward"] for p in parts], parts

    def __call__(self, prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        rewards, parts = self.score_records(build_records(completions, kwargs))
        scored = [p for p in parts if p is not None]
        summary: dict[str, float] = {"unscored": float(len(parts) - len(scored))}
        for key in scored[0] if scored else ():
            values = [p[key] for p in scored if not math.isnan(p[key])]
            summary[key] = sum(values) / len(values) if values else math.nan
        self.history.append(summary)
        if summary["unscored"]:
            logger.warning(
                "structured reward: %d of %d completions unscored", summary["unscored"], len(parts)
            )
        return rewards


def get_structured_reward(
    judge: Judge | str | None = None,
    weights: Mapping[str, float] | None = None,
    hallucination_penalty: float = 0.5,
    contradiction_penalty: float = 0.5,
    reasoning_weight: float = 0.5,
) -> StructuredReward:
    """Build the structured reward with TRL's signature ``reward(prompts, completions, **kwargs)``.

    Args:
        judge: A :class:`Judge`, a registered judge name, or None for ``"reference"``.
        weights: Overrides of ``DEFAULT_WEIGHTS`` (criteria: safety, helpfulness, coherence,
            grounding, format); a weight of 0 drops a criterion.
        hallucination_penalty: Subtracted per unit of the hallucination score.
        contradiction_penalty: Subtracted per unit of the contradiction score.
        reasoning_weight: Share of reasoning_safety in the safety term (0..1).

    Returns:
        A callable named ``structured_reward`` returning one float or None per completion.

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
    return StructuredReward(
        judge_obj, resolved, hallucination_penalty, contradiction_penalty, reasoning_weight
    )
