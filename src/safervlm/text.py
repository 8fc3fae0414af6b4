"""Splitting a model response into reasoning and answer.

Two sources of reasoning:

* **markers** in the text (``<think>…</think>`` by default; a model family with other
  markers passes its own ``open_tag``/``close_tag``): :func:`split_response`;
* a **field** of a served reply: an OpenAI-compatible server with a reasoning parser
  (``vllm serve --reasoning-parser …``) returns the chain of thought in
  ``message.reasoning`` (``reasoning_content`` in older vLLM) and the answer in ``content``:
  :func:`split_reply`, which also says which source the reasoning came from.

Malformed text is split honestly, never with a literal marker left in either part:

* an opening marker that is never closed (the generation was cut off while reasoning)
  makes everything the model wrote reasoning, with an *empty* answer (SafeMLRM counts an
  empty answer as missing, ``eval.safemlrm.missing``), never an answer that starts with
  ``<think>``. That is read from a marker that opens the text or a later block; a marker
  inside untagged text counts only when the generation is known to be cut off
  (``truncated``), so stray tokens of an untrained model stay where they were;
* several think blocks: the reasoning is everything before the *last* closing marker with
  the markers removed (the blocks and any text between them, joined by blank lines); the
  answer is what follows the last closing marker.
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)


def _strip_markers(text: str, open_tag: str, close_tag: str) -> str:
    """``text`` without the markers: its non-empty pieces, stripped, joined by blank lines."""
    pieces = re.split(f"{re.escape(open_tag)}|{re.escape(close_tag)}", text)
    return "\n\n".join(p.strip() for p in pieces if p.strip())


def _answer_of(text: str) -> str:
    """The answer in the text after the reasoning: inside ``<answer>`` tags where present."""
    m = _ANSWER_RE.search(text)
    return (m.group(1) if m else text).strip()


def _unclosed(text: str, open_tag: str, close_tag: str, truncated: bool = False) -> bool:
    """The model was still reasoning when it stopped: an opening marker with no closing one
    after it, that opens the text or a second block (after a closing marker), or anywhere
    in a generation known to be ``truncated``. A marker that appears inside untagged text
    of a generation not known to be cut off is not read as reasoning (it stays in the answer)."""
    idx = text.rfind(close_tag)
    if open_tag not in (text if idx == -1 else text[idx + len(close_tag) :]):
        return False
    return truncated or idx != -1 or text.lstrip().startswith(open_tag)


def split_response(
    response: str, open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE, truncated: bool = False
) -> tuple[str, str]:
    """Return ``(reasoning, answer)`` of a response (module docstring for malformed text).

    The reasoning is everything before the *last* ``close_tag`` (an opening ``open_tag``
    is stripped); the answer is what follows, or the content of ``<answer>`` tags where
    present. A response without either marker is all answer with empty reasoning; one cut
    off while reasoning (an ``open_tag`` never closed that opens the text or a later block,
    or anywhere when ``truncated``) is all reasoning with an empty answer.

    Args:
        response: The model's text.
        open_tag: The opening reasoning marker of the model family.
        close_tag: The closing reasoning marker of the model family.
        truncated: The generation is known to have hit its token budget.
    """
    text = response or ""
    if _unclosed(text, open_tag, close_tag, truncated):
        return _strip_markers(text, open_tag, close_tag), ""
    idx = text.rfind(close_tag)
    if idx == -1:
        reasoning, answer = "", text
    else:
        # For one block (with or without its opening marker) this is the reasoning text
        # itself, stripped; several blocks lose their markers and keep their contents.
        reasoning = _strip_markers(text[:idx], open_tag, close_tag)
        answer = text[idx + len(close_tag) :]
    return reasoning.strip(), _answer_of(answer)


def split_response_v1(response: str) -> tuple[str, str]:
    """The first split, which QI scoring (``curate/scoring.py``) still reads with: the
    reasoning is everything before the last ``</think>`` (one leading ``<think>`` stripped,
    other markers left in), an unclosed ``<think>`` leaves all text as the answer.

    GRPO's structured reward and the format criterion read with :func:`split_response`,
    as evaluation does: with this split a response that never closed ``<think>`` was
    rewarded as an answer (a refusal phrase anywhere in it counted as a safe refusal, and
    its empty reasoning dropped the coherence criterion and the contradiction penalty),
    while evaluation scores it as reasoning with no answer."""
    text = response or ""
    idx = text.rfind(THINK_CLOSE)
    if idx == -1:
        reasoning, answer = "", text
    else:
        reasoning, answer = text[:idx], text[idx + len(THINK_CLOSE) :]
        if reasoning.lstrip().startswith(THINK_OPEN):
            reasoning = reasoning.replace(THINK_OPEN, "", 1)
    return reasoning.strip(), _answer_of(answer)


def split_reply(
    content: str | None,
    reasoning_field: str | None,
    open_tag: str = THINK_OPEN,
    close_tag: str = THINK_CLOSE,
    truncated: bool = False,
) -> tuple[str, str, str]:
    """Split a served reply into ``(reasoning, answer, reasoning_source)``.

    The reasoning field wins when it is non-empty (``reasoning_source`` ``"field"``). If the
    content *also* carries markers (a second think block the server's parser left in the
    content), the content is split as text and its reasoning appended to the field's, so
    no marker reaches the answer and no reasoning is dropped. Without a field (None or
    empty) the content is split by its markers (``"markers"`` when it had any, else
    ``"none"``: all answer, no reasoning).

    Args:
        content: ``message.content`` (None when the server sent null).
        reasoning_field: ``message.reasoning`` / ``reasoning_content``, or None.
        open_tag: The opening reasoning marker of the model family.
        close_tag: The closing reasoning marker of the model family.
        truncated: The generation hit its token budget (``finish_reason`` ``length``).
    """
    text = content or ""
    # Some servers keep the markers inside the field: never leave them in the reasoning.
    field = _strip_markers(reasoning_field or "", open_tag, close_tag)
    marked = open_tag in text or close_tag in text
    reasoning, answer = split_response(text, open_tag, close_tag, truncated)
    if field:
        return "\n\n".join(p for p in (field, reasoning) if p), answer, "field"
    return reasoning, answer, "markers" if marked else "none"


def join_reply(
    content: str | None,
    reasoning_field: str | None,
    truncated: bool = False,
    open_tag: str = THINK_OPEN,
    close_tag: str = THINK_CLOSE,
) -> str:
    """The full response of a served reply, as one text: the reasoning field (if any) put
    back between the markers ahead of the content, so that splitting it with
    :func:`split_response` gives what :func:`split_reply` gives.

    A reply cut off while reasoning (``truncated`` with an empty content) keeps its opening
    marker unclosed, as the model wrote it.
    """
    text = content or ""
    field = _strip_markers(reasoning_field or "", open_tag, close_tag)
    if not field:
        return text.strip()
    if truncated and not text.strip():
        return f"{open_tag}\n{field}"
    return f"{open_tag}\n{field}\n{close_tag}\n\n{text.strip()}".rstrip()


def has_reasoning_format(response: str) -> bool:
    """True when the response is ``<think>…</think>`` followed by a non-empty answer.

    This is the structured reward's format criterion (through the reference judge); it reads
    the text with :func:`split_response`, the split evaluation and the reward use, so a
    second, unclosed block after the answer (which leaves no answer) is not the format.
    """
    text = (response or "").strip()
    if not text.startswith(THINK_OPEN) or text.count(THINK_CLOSE) != 1:
        return False
    reasoning, answer = split_response(text)
    return bool(reasoning) and bool(answer)


def split_status(response: str) -> str:
    """How :func:`split_response` read a response: ``tagged``, ``unclosed``, ``untagged`` or ``empty``.

    ``untagged`` (no ``</think>``, no ``<think>`` and no ``<answer>``) is flagged in reports:
    the whole response counts as the answer and the reasoning is empty, never an arbitrary
    prefix. ``unclosed`` (a ``<think>`` after the last ``</think>``, or with none: cut off
    while reasoning) is all reasoning with an empty answer.
    """
    text = (response or "").strip()
    if not text:
        return "empty"
    if _unclosed(text, THINK_OPEN, THINK_CLOSE):
        return "unclosed"
    return "tagged" if THINK_CLOSE in text or _ANSWER_RE.search(text) else "untagged"
