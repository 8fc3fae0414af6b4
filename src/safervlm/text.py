"""Splitting a model response into reasoning and answer."""

from __future__ import annotations

import re

_THINK_CLOSE = "</think>"
_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)


def split_response(response: str) -> tuple[str, str]:
    """Return ``(reasoning, answer)`` of a response.

    The reasoning is everything before the *last* ``</think>`` (an opening ``<think>``
    is stripped); the answer is what follows, or the content of ``<answer>`` tags where
    present. A response without ``</think>`` is all answer with empty reasoning.
    """
    text = response or ""
    idx = text.rfind(_THINK_CLOSE)
    if idx == -1:
        reasoning, answer = "", text
    else:
        reasoning, answer = text[:idx], text[idx + len(_THINK_CLOSE) :]
        reasoning = (
            reasoning.replace("<think>", "", 1) if reasoning.lstrip().startswith("<think>") else reasoning
        )
    m = _ANSWER_RE.search(answer)
    if m:
        answer = m.group(1)
    return reasoning.strip(), answer.strip()


def has_reasoning_format(response: str) -> bool:
    """True when the response is ``<think>…</think>`` followed by a non-empty answer."""
    text = (response or "").strip()
    if not text.startswith("<think>") or text.count("</think>") != 1:
        return False
    reasoning, answer = split_response(text)
    return bool(reasoning) and bool(answer)


def split_status(response: str) -> str:
    """How :func:`split_response` read a response: ``tagged``, ``untagged`` or ``empty``.

    ``untagged`` (no ``</think>`` and no ``<answer>``) is flagged in reports: the whole
    response counts as the answer and the reasoning is empty, never an arbitrary prefix.
    """
    text = (response or "").strip()
    if not text:
        return "empty"
    return "tagged" if _THINK_CLOSE in text or _ANSWER_RE.search(text) else "untagged"
