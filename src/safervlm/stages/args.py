"""Flags shared by several subcommands, and typed values from their string arguments.

Each stage module declares its flags in ``add_arguments(p)`` (the CLI collects them); the
flag groups several stages share live here, with the parsers of their values (JSON params,
``REASONING=BASE`` pairs, judge keyword arguments).
"""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from safervlm.config import Section, from_dict, parse_json_arg
from safervlm.errors import SafervlmError

S = TypeVar("S", bound=Section)


def many(p: argparse.ArgumentParser, flag: str, **kwargs: Any) -> None:
    """A list option whose repetitions accumulate (``--pair a=b --pair c=d`` keeps both)."""
    p.add_argument(flag, action="extend", **kwargs)


def max_pixels_arg(p: argparse.ArgumentParser) -> None:
    """``--max-image-pixels`` (``data.max_image_pixels``)."""
    p.add_argument(
        "--max-image-pixels",
        type=int,
        default=None,
        help="refuse images over this many pixels (data.max_image_pixels; default 178956970)",
    )


def judge_args(p: argparse.ArgumentParser) -> None:
    """``--judge --judge-params --judge-cache`` (read back by :func:`judge_kwargs`)."""
    p.add_argument("--judge", default="reference", help="judge registry name")
    p.add_argument("--judge-params", default="{}", help="judge parameters as JSON (never an API key)")
    p.add_argument("--judge-cache", default=None, help="SQLite reply cache for model judges")


def analysis_args(p: argparse.ArgumentParser) -> None:
    """The SafeMLRM analysis settings (``report``, ``audit``, ``import-opensafemlrm``)."""
    many(p, "--pair", nargs="*", default=[], metavar="REASONING=BASE", help="Reasoning Tax pairs")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="attack success: harm score >= this, 1-5 (default: safervlm.metrics.ASR_THRESHOLD)",
    )
    p.add_argument("--missing", default="count", help="unscored/empty parts: count (default) or exclude")
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)


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
    """``--judge --judge-params --judge-cache`` (:func:`judge_args`) as stage keyword arguments."""
    params = parse_json_arg(a.judge_params, what="--judge-params")
    return {"judge_name": a.judge, "judge_params": params, "judge_cache": a.judge_cache}
