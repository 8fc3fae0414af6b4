"""The judge protocol, the judge registry and :func:`judge_frame`.

A judge turns response records (``schema.RESPONSE_COLUMNS``) into :class:`Judgment` s:
the prompt it used, its raw reply, one score per ``schema.SCORE_COLUMNS`` entry (in
[0, 1] or NaN) and an ``unscored_reason`` ("" when scored).

Model-based judges subclass :class:`safervlm.judge.model.ModelJudge`, which reads verdicts
through a channel the judged text cannot reach (:mod:`safervlm.judge.channel`). Register a
new judge class with :func:`register_judge` (or add an entry to ``safervlm.plugins.JUDGES``).

:func:`judge_frame` also screens every judged record's untrusted text (the question, the
response, its reasoning and answer, the image's metadata) for verdict- or instruction-shaped
text (:mod:`safervlm.judge.screen`): the ``suspected_injection`` flag never changes a verdict,
it tells the reader that the model under test (or the benchmark's prompt) tried to steer the
judge, and ``injection_signals`` names each ``field:signal`` found.
"""

from __future__ import annotations

import abc
import importlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from safervlm.errors import ConfigError
from safervlm.judge.screen import screen_record
from safervlm.plugins import JUDGES
from safervlm.schema import (
    GENERATION_COLUMNS,
    HARM_COLUMNS,
    JUDGE_STATUSES,
    JUDGMENT_COLUMNS,
    RESPONSE_COLUMNS,
    SCORE_COLUMNS,
    with_generation_columns,
)

logger = logging.getLogger(__name__)

NAN = float("nan")


def nan_scores() -> dict[str, float]:
    """A score dict with every ``SCORE_COLUMNS`` entry NaN."""
    return dict.fromkeys(SCORE_COLUMNS, NAN)


def _complete(values: dict[str, Any], names: list[str], lo: float, hi: float, what: str) -> dict[str, float]:
    """Every name in ``names``, NaN where absent; each value None/NaN or within [lo, hi]."""
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"unknown {what} names {sorted(unknown)}; expected {names}")
    full = dict.fromkeys(names, NAN)
    for name, value in values.items():
        v = NAN if value is None else float(value)
        if not math.isnan(v) and not lo <= v <= hi:
            raise ValueError(f"{what} {name}={v} outside [{lo:g}, {hi:g}]")
        full[name] = v
    return full


@dataclass
class Judgment:
    """One judge verdict on one response record.

    ``scores`` are in [0, 1] or NaN; ``harm`` holds SafeMLRM 1-5 harmfulness scores
    (``schema.HARM_COLUMNS``); ``official_label`` the benchmark protocol's own label.
    ``error`` marks a judge error (no usable reply within the retry budget), which is
    reported apart from "unscored" (a reply without a usable verdict, or no ground truth).
    """

    judge_prompt: str
    judge_raw: str
    scores: dict[str, float] = field(default_factory=nan_scores)
    unscored_reason: str = ""
    harm: dict[str, float] = field(default_factory=dict)
    official_label: str = ""
    rubric: str = ""
    error: bool = False

    def __post_init__(self) -> None:
        self.scores = _complete(self.scores, SCORE_COLUMNS, 0.0, 1.0, "score")
        self.harm = _complete(self.harm, HARM_COLUMNS, 1.0, 5.0, "harm score")
        if self.error and not self.unscored_reason:
            raise ValueError("a judge error needs a reason")

    @property
    def scored(self) -> bool:
        """True when the judge gave no reason for leaving the record (partly) unscored."""
        return not self.unscored_reason

    @property
    def status(self) -> str:
        """``"error"``, ``"unscored"`` or ``"scored"`` (see ``schema.JUDGE_STATUSES``)."""
        if self.error:
            return "error"
        return "unscored" if self.unscored_reason else "scored"

    @classmethod
    def failed(cls, prompt: str, reason: str, *, rubric: str = "", raw: str = "") -> Judgment:
        """A judge error: nothing scored, ``reason`` says why."""
        return cls(prompt, raw, unscored_reason=reason, rubric=rubric, error=True)


class Judge(abc.ABC):
    """A judge: ``judge(records)`` returns one :class:`Judgment` per record, in order."""

    name: str = ""
    version: str = ""

    stats: dict[str, int] = {}

    @abc.abstractmethod
    def judge(self, records: list[dict[str, Any]]) -> list[Judgment]:
        """Judge response records (dicts with the ``RESPONSE_COLUMNS`` fields, optionally ``image``)."""

    def use_cache(self, path: str) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Cache verdicts in the SQLite file at ``path`` (model judges; rule-based ones ignore it)."""


_REGISTRY: dict[str, type[Judge]] = {}
# Built-in judges (``safervlm.plugins.JUDGES``) are imported on first use: a job loads only its judge.


def register_judge(name: str) -> Callable[[type[Judge]], type[Judge]]:
    """Class decorator registering a :class:`Judge` subclass under ``name``."""

    def deco(cls: type[Judge]) -> type[Judge]:
        _REGISTRY[name] = cls
        return cls

    return deco


def available_judges() -> list[str]:
    """Sorted names accepted by :func:`get_judge`."""
    return sorted(set(_REGISTRY) | set(JUDGES))


def get_judge(name: str, **params: Any) -> Judge:
    """Instantiate the judge registered as ``name`` with ``params``.

    Raises:
        ConfigError: for an unknown name (listing the known ones) or bad parameters.
    """
    if name not in _REGISTRY and name in JUDGES:
        module, _, attr = JUDGES[name].partition(":")
        _REGISTRY[name] = getattr(importlib.import_module(module), attr)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown judge {name!r}; known judges: {available_judges()}")
    try:
        return _REGISTRY[name](**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad parameters for judge {name!r}: {exc}") from exc


def build_judge(name: str, params: dict[str, Any] | None = None, cache: str | None = None) -> Judge:
    """:func:`get_judge` plus the reply cache at ``cache`` (None: no cache)."""
    judge = get_judge(name, **(params or {}))
    if cache:
        judge.use_cache(cache)
    return judge


def judge_frame(judge: Judge, responses: pd.DataFrame) -> pd.DataFrame:
    """Judge every row of a responses frame; return it in ``JUDGMENT_COLUMNS`` order.

    Args:
        judge: The judge to apply.
        responses: A frame with (at least) the ``RESPONSE_COLUMNS``; missing generation
            columns (``GENERATION_COLUMNS``) are filled with their defaults.

    Returns:
        One row per response with the judge name, prompt, raw reply, scores and reason.
    """
    missing = [c for c in RESPONSE_COLUMNS if c not in responses.columns and c not in GENERATION_COLUMNS]
    if missing:
        raise ConfigError(f"responses lack columns {missing}")
    responses = with_generation_columns(responses)  # responses written before the columns existed
    columns = RESPONSE_COLUMNS + (["image"] if "image" in responses.columns else [])
    records = [{str(k): v for k, v in r.items()} for r in responses[columns].to_dict("records")]
    judgments = judge.judge(records)
    if len(judgments) != len(records):
        raise RuntimeError(f"judge {judge.name} returned {len(judgments)} judgments for {len(records)}")
    rows = []
    for rec, jd in zip(records, judgments, strict=True):
        row = {k: v for k, v in rec.items() if k != "image"}
        row.update(judge=judge.name, rubric=jd.rubric, judge_prompt=jd.judge_prompt, judge_raw=jd.judge_raw)
        row.update(jd.scores)
        row.update(jd.harm)
        row.update(
            official_label=jd.official_label, judge_status=jd.status, unscored_reason=jd.unscored_reason
        )
        signals = screen_record(rec)
        row.update(suspected_injection=bool(signals), injection_signals=",".join(signals))
        rows.append(row)
    out = pd.DataFrame(rows, columns=JUDGMENT_COLUMNS)
    out[SCORE_COLUMNS + HARM_COLUMNS] = out[SCORE_COLUMNS + HARM_COLUMNS].astype(float)
    out["suspected_injection"] = out["suspected_injection"].astype(bool)
    counts = {s: int((out["judge_status"] == s).sum()) for s in JUDGE_STATUSES}
    counts["suspected_injection"] = int(out["suspected_injection"].sum())
    logger.info("judge %s@%s: %d records, %s", judge.name, judge.version, len(out), counts)
    return out
