"""Judges: the protocol and registry, the rule-based reference judge, model judges (HTTP, local
HF) over versioned rubrics, the injection-resistant reply parser and the reply cache."""

from safervlm.judge.base import (
    SCORE_MARKER,
    Judge,
    Judgment,
    available_judges,
    build_judge,
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
    "build_judge",
    "get_judge",
    "judge_frame",
    "nan_scores",
    "parse_scores",
    "register_judge",
]
