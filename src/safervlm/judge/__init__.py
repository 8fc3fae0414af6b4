"""Judges: the protocol and registry, the rule-based reference judge, model judges (HTTP, local
HF) over versioned rubrics, the verdict channel, the injection screen and the reply cache."""

from typing import Any

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


def __getattr__(name: str) -> Any:
    # The reference judge is imported on first use, like every other judge (base._LAZY):
    # modules that only need markers or the protocol do not load (and depend on) it.
    if name == "ReferenceJudge":
        from safervlm.judge.reference import ReferenceJudge

        return ReferenceJudge
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Judge",
    "Judgment",
    "ReferenceJudge",
    "available_judges",
    "build_judge",
    "get_judge",
    "judge_frame",
    "nan_scores",
    "register_judge",
]
