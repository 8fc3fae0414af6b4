"""Whether a published cell and the judgments it is recomputed from share a judge protocol.

A number measured under one judge is no check of a number judged by another: a cell may
name the judge its number was measured with (``judge: {name, model, version}``, next to
the free-text ``protocol``). The judgments record the judge that produced them (their
``judge`` column, ``name@version``); a model judge's model is not in them, so it comes from
the run's config (``judge.params.model``) or ``safervlm audit --judge-model``. A cell whose
judge differs, or cannot be shown to be the same, is *not comparable*: its recomputed
number is reported, never compared. A cell that names no judge is compared as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safervlm.errors import InputError

NOT_COMPARABLE = "not comparable"


@dataclass(frozen=True)
class JudgeSpec:
    """The judge a published number was measured with."""

    name: str  # a judge registry name: openai, hf, reference
    model: str = ""  # the model behind it, e.g. gpt-5-nano ("" when any)
    version: str = ""  # the judge's version ("" when any)

    def text(self) -> str:
        """``name@version (model)``, as far as given."""
        out = self.name + (f"@{self.version}" if self.version else "")
        return out + (f" ({self.model})" if self.model else "")


def judge_spec_from(raw: Any, where: str, path: Path, index: int) -> JudgeSpec | None:
    """The ``judge`` of a cell: a name, or a mapping with ``name`` and optional ``model`` and
    ``version``; None when the cell names none."""
    if raw is None:
        return None
    if isinstance(raw, str) and raw.strip():
        return JudgeSpec(raw.strip())
    keys = ("name", "model", "version")
    if (
        not isinstance(raw, dict)
        or set(raw) - set(keys)
        or not isinstance(raw.get("name"), str)
        or not raw["name"].strip()
        or any(not isinstance(raw.get(k, ""), str) for k in keys)
    ):
        raise InputError(
            f"{where}: judge must be a name or a mapping of name (and model, version) to strings",
            path=path,
            record=index,
        )
    return JudgeSpec(*(str(raw.get(k, "")).strip() for k in keys))


def incomparable(spec: JudgeSpec | None, used: Iterable[str], judge_model: str = "") -> str:
    """Why judgments by the judges ``used`` (``name@version`` each) cannot check a number
    measured under ``spec``; "" when they can (or the cell names no judge).

    Args:
        spec: The cell's judge.
        used: The ``judge`` values of the cell's judgments.
        judge_model: The model of the judge that produced them ("" when not known).
    """
    if spec is None:
        return ""
    judges = sorted(set(used))
    by = ", ".join(judges) or "no named judge"
    names = {j.partition("@")[0] for j in judges}
    if names != {spec.name} or (spec.version and any(j.partition("@")[2] != spec.version for j in judges)):
        return f"the judgments are by {by}"
    if spec.model and not judge_model:
        return f"the judgments are by {by}, whose model is not known (--judge-model)"
    if spec.model and judge_model.strip().lower() != spec.model.lower():
        return f"the judgments are by {by} with model {judge_model}"
    return ""


def protocol_detail(protocol: str, spec: JudgeSpec | None, reason: str, value: float) -> str:
    """The detail of a not-comparable cell: its protocol, why not, the number not compared."""
    named = protocol or (spec.text() if spec else "")
    return f"protocol: {named}; {reason}; recomputed {value:.6g}, not compared"


def judge_model_of(judges: Mapping[str, Mapping[str, Any]], label: str) -> str:
    """The model of the judge ``label`` of a config's judges (``layout.run_judges``)."""
    params = (judges.get(label) or {}).get("params") or {}
    return str(params.get("model", "")) if isinstance(params, Mapping) else ""
