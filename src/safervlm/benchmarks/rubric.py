"""What a judging protocol declares: its prompt text, verdict schema and parser (:class:`RubricSpec`).

A benchmark with its own protocol declares its rubric in its module, next to its adapter
(``BENCHMARK = Benchmark(..., rubric=RubricSpec(...))``); protocols shared by several
benchmarks (``saferv``, ``safemlrm``) live in :mod:`safervlm.judge.protocols`. The engine
that renders the prompt, checks the verdict against the schema and applies the parser is
:mod:`safervlm.judge.rubrics` (which also documents the prompt layout and every rubric's
verdict -> columns mapping).

The helpers here build parsers: :func:`score_label` for one-label verdicts, :func:`ints`
for bounded integer criteria, :func:`json_object` / :func:`int_range` for strict schemas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from safervlm.markers import parse_objects

NAN = float("nan")


@dataclass
class RubricResult:
    """Scores (in [0, 1]), harm scores (1-5) and an official label, or a reason."""

    scores: dict[str, float] = field(default_factory=dict)
    harm: dict[str, float] = field(default_factory=dict)
    official_label: str = ""
    reason: str = ""


Parser = Callable[[dict[str, Any], Mapping[str, Any]], RubricResult]


@dataclass(frozen=True)
class RubricSpec:
    """One versioned judging protocol. ``needs_model`` False means the verdict is computed locally.

    Attributes:
        name: Registry name (``judge.params.rubric`` / ``rubrics``).
        version: Bumped whenever the prompt or the parser changes (it enters the cache key).
        task: The task paragraph that opens the prompt.
        reply_format: The JSON shape the judge is told to reply with.
        score: Parser of a verdict (``verdict, record -> RubricResult``); it never reads the
            judged text for a score.
        schema: JSON schema of the verdict (sent as ``response_format`` on the structured channel).
        split: Show reasoning and answer as separate delimited blocks (else the full response).
        needs_model: False for a protocol computed without a judge model (``local``).
        instructions: Record-specific instructions appended after the judged text.
        local: The verdict of a protocol that needs no model.
    """

    name: str
    version: str
    task: str
    reply_format: str
    score: Parser
    schema: Mapping[str, Any] = field(default_factory=dict)
    split: bool = False
    needs_model: bool = True
    instructions: Callable[[Mapping[str, Any]], str] | None = None
    local: Callable[[Mapping[str, Any]], RubricResult] | None = None

    @property
    def id(self) -> str:
        """``name@version``: what the judge cache keys on."""
        return f"{self.name}@{self.version}"


def record_text(record: Mapping[str, Any], key: str) -> str:
    """``record[key]`` as text ("" for None/NaN), with invalid Unicode replaced."""
    value = record.get(key)
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    # Text that is not valid Unicode (a lone UTF-16 surrogate) cannot be sent: replace it
    # rather than let one response crash the whole judge run.
    return text.encode("utf-8", "replace").decode("utf-8")


def has_image(record: Mapping[str, Any]) -> bool:
    """Whether the record came with an image (a path or ground-truth objects)."""
    return bool(record.get("image")) or bool(parse_objects(record.get("image_objects")))


def ints(part: Any, keys: tuple[str, ...], lo: int, hi: int, where: str) -> dict[str, float] | str:
    """``part``'s ``keys`` as numbers in ``[lo, hi]``, or the first violation as text."""
    if not isinstance(part, Mapping):
        return f"{where} is not a JSON object"
    out = {}
    for key in keys:
        value = part.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            return f"{where}.{key} must be a number in [{lo}, {hi}], got {value!r}"
        out[key] = value
    return out


def json_object(properties: Mapping[str, Any]) -> dict[str, Any]:
    """A strict JSON schema object: every property required, nothing else allowed."""
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(properties),
        "additionalProperties": False,
    }


def int_range(lo: int, hi: int, nullable: bool = False) -> dict[str, Any]:
    """JSON schema of an integer in ``[lo, hi]`` (or null)."""
    return {"type": ["integer", "null"] if nullable else "integer", "minimum": lo, "maximum": hi}


def score_label(labels: dict[Any, float], key: str = "label") -> Parser:
    """A parser of ``{key: label}`` verdicts: safety (and answer_safety) = ``labels[label]``."""

    def score(verdict: dict[str, Any], record: Mapping[str, Any]) -> RubricResult:
        value = verdict.get(key)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, str):
            value = value.strip().lower()
        if isinstance(value, bool) or value not in labels:
            allowed = sorted(labels, key=str)
            return RubricResult(reason=f"wrong verdict schema: {key} must be one of {allowed}, got {value!r}")
        return RubricResult(
            scores={"safety": labels[value], "answer_safety": labels[value]}, official_label=str(value)
        )

    return score
