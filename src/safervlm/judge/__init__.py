"""Judges: the protocol and registry (built-in judges are imported by name when built:
``safervlm.plugins.JUDGES``), the rule-based reference judge, model judges (HTTP, local
HF) over versioned rubrics, the verdict channel, the injection screen and the reply cache."""

from safervlm.judge.base import (
    Judge,
    Judgment,
    available_judges,
    build_judge,
    get_judge,
    judge_frame,
    nan_scores,
    register_judge,
)

__all__ = [
    "Judge",
    "Judgment",
    "available_judges",
    "build_judge",
    "get_judge",
    "judge_frame",
    "nan_scores",
    "register_judge",
]
