"""Typed values from a subcommand's string arguments (JSON params, ``REASONING=BASE`` pairs).

Shared by the stage modules; the CLI itself only parses flags and dispatches.
"""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from safervlm.config import Section, from_dict, parse_json_arg
from safervlm.errors import SafervlmError

S = TypeVar("S", bound=Section)


def params_arg(cls: type[S], text: str) -> S:
    """A stage's ``--params`` JSON as its params model (unknown keys rejected; errors name
    the config section and key)."""
    section = cls.section
    return from_dict(cls, parse_json_arg(text, what=f"--params ({section})"), section=section)


def pairs_arg(items: list[str]) -> list[tuple[str, str]]:
    """``REASONING=BASE`` items as pairs."""
    pairs = []
    for item in items:
        reasoning, sep, base = item.partition("=")
        if not sep or not reasoning or not base:
            raise SafervlmError(f"--pair expects REASONING=BASE, got {item!r}")
        pairs.append((reasoning, base))
    return pairs


def judge_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    """``--judge --judge-params --judge-cache`` (``cli._judge_args``) as stage keyword arguments."""
    params = parse_json_arg(a.judge_params, what="--judge-params")
    return {"judge_name": a.judge, "judge_params": params, "judge_cache": a.judge_cache}
