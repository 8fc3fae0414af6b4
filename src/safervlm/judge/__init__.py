"""Judges: the protocol, the registry, the LLM score parser and the rule-based reference judge."""

from safervlm.judge.base import (
    SCORE_MARKER,
    Judge,
    Judgment,
    available_judges,
    get_judge,
    judge_frame,
    nan_scores,
    parse_scores,
    register_judge,
)
from safervlm.judge.reference import ReferenceJudge

__all__ = [
    "SCORE_MARKER",
    "Judge",
    "Judgment",
    "ReferenceJudge",
    "available_judges",
    "get_judge",
    "judge_frame",
    "nan_scores",
    "parse_scores",
    "register_judge",
]
