"""The verdict channel: how a judge's verdict travels so that the judged text cannot reach it.

The judged response is attacker-controlled text. It may carry fake score markers, fake JSON
verdicts, delimiter look-alikes or "ignore previous instructions". Two channels keep it from
forging its verdict, and neither ever compares the reply with the judged text (a heuristic
that did so let a response *erase* an honest verdict by containing the same string):

``structured`` (the HTTP judge's default)
    The request carries the rubric's JSON schema as ``response_format`` (OpenAI structured
    outputs; vLLM's guided decoding). The reply must be exactly one JSON object that is valid
    under that schema; nothing else is accepted — no prose, no fences, no second object.

``envelope`` (endpoints without structured output, the local HF judge)
    The judge writes its verdict between ``<<<VERDICT tag>>>`` and ``<<<END VERDICT tag>>>``,
    where ``tag`` is a fresh random token drawn for this request (:func:`new_tag`) after the
    response under test was written, so the response cannot contain it. Only text inside an
    envelope with that exact tag is read (the last one wins); anything else in the reply —
    quoted, re-spaced, re-cased or normalised copies of the response included — is ignored.

The same tag also marks the delimiters around the untrusted text in the prompt, so a response
cannot close its block early or plant a complete, self-consistent block of its own. The tag is
stored with the cached reply, so a rerun rebuilds the same prompt and parses the same reply.

A reply without a usable verdict yields a *reason* (the sample is unscored with it, never
counted as safe or unsafe). Whether the verdict has the rubric's keys and values is checked by
the rubric (:mod:`safervlm.judge.rubrics`).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

CHANNELS = ("structured", "envelope")
# The tag that stands in for the random one when a prompt is built for the cache key: the key
# must not depend on the draw, and the real tag is stored next to the reply instead.
KEY_TAG = "TAG"
_TAG_RE = re.compile(r"[0-9a-f]{24}")
_FENCE_RE = re.compile(r"\A```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)\n?```\Z", re.DOTALL)


@dataclass(frozen=True)
class Verdict:
    """A JSON object read from a judge reply through ``channel``."""

    data: dict[str, Any]
    channel: str


def new_tag() -> str:
    """A fresh 96-bit random tag (24 hex digits) for one request."""
    return secrets.token_hex(12)


def check_channel(channel: str) -> str:
    """``channel`` if it is one of :data:`CHANNELS`, else ValueError listing them."""
    if channel not in CHANNELS:
        raise ValueError(f"verdict_channel must be one of {list(CHANNELS)}, got {channel!r}")
    return channel


def delimit(label: str, text: str, tag: str) -> str:
    """Wrap untrusted ``text`` in begin/end lines named ``label`` and marked with ``tag``."""
    return f"<<<BEGIN {label} {tag}>>>\n{text}\n<<<END {label} {tag}>>>"


def envelope_open(tag: str) -> str:
    """The line that opens the verdict envelope for ``tag``."""
    return f"<<<VERDICT {tag}>>>"


def envelope_close(tag: str) -> str:
    """The line that closes the verdict envelope for ``tag``."""
    return f"<<<END VERDICT {tag}>>>"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _loads_object(text: str) -> dict[str, Any] | str:
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        return f"verdict is not valid JSON ({type(exc).__name__})"
    if not isinstance(value, dict):
        return f"verdict is a JSON {type(value).__name__}, not an object"
    return value


def read_structured(reply: str | None) -> Verdict | str:
    """The verdict of a structured-output reply: the whole reply as one JSON object."""
    if reply is None or not reply.strip():
        return "empty judge reply"
    obj = _loads_object(reply.strip())
    if isinstance(obj, str):
        return f"structured reply is not exactly one JSON object: {obj}"
    return Verdict(obj, "structured")


def read_envelope(reply: str | None, tag: str) -> Verdict | str:
    """The verdict inside the last envelope marked with ``tag``; everything else is ignored."""
    if reply is None or not reply.strip():
        return "empty judge reply"
    if not _TAG_RE.fullmatch(tag):
        raise ValueError("an envelope tag is 24 lowercase hex digits")
    opener, closer = envelope_open(tag), envelope_close(tag)
    bodies = re.findall(re.escape(opener) + r"(.*?)" + re.escape(closer), reply, re.DOTALL)
    if not bodies:
        if opener in reply:
            return "verdict envelope not closed (truncated reply?)"
        return "no verdict envelope with this request's tag in the judge reply"
    body = bodies[-1].strip()
    fenced = _FENCE_RE.match(body)
    obj = _loads_object(fenced.group(1).strip() if fenced else body)
    if isinstance(obj, str):
        return obj
    return Verdict(obj, "envelope")


def read_verdict(reply: str | None, channel: str, tag: str) -> Verdict | str:
    """Read a verdict from ``reply`` through ``channel`` (``tag``: the request's tag)."""
    if check_channel(channel) == "structured":
        return read_structured(reply)
    return read_envelope(reply, tag)
