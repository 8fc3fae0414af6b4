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
    envelope with that exact tag is read; anything else in the reply — quoted, re-spaced,
    re-cased or normalised copies of the response included — is ignored. All tagged text is
    the judge's own, so the rule for several tagged spans only has to be fair to the judge:
    the verdict is the *valid* one (a body that is a JSON object the rubric can score), so a
    judge that restates the envelope lines in its prose ("my verdict is between the line
    ``<<<VERDICT t>>>`` and the line ``<<<END VERDICT t>>>``") is still scored. Several valid
    verdicts that are equal count as one; valid verdicts that disagree leave the sample
    unscored with that reason. A span's body is the text after the *last* opener before its
    closer, so an opener mentioned earlier in the prose never swallows the verdict.

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
from collections.abc import Callable
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


def _envelope_bodies(reply: str, tag: str) -> list[str]:
    """The body of every tagged span: the text between a closer and the last opener before it."""
    opener, closer = re.escape(envelope_open(tag)), re.escape(envelope_close(tag))
    return re.findall(opener + r"((?:(?!" + opener + r").)*?)" + closer, reply, re.DOTALL)


def _body_object(body: str) -> dict[str, Any] | str:
    body = body.strip()
    fenced = _FENCE_RE.match(body)
    return _loads_object(fenced.group(1).strip() if fenced else body)


def read_envelope(
    reply: str | None, tag: str, fits: Callable[[dict[str, Any]], bool] | None = None
) -> Verdict | str:
    """The verdict in the envelopes marked with ``tag``; everything else is ignored.

    Args:
        reply: The judge's reply.
        tag: The request's tag (24 lowercase hex digits).
        fits: Whether a JSON object is a verdict the rubric can score (None: any object is).

    Returns:
        The valid verdict (several equal ones count as one); when no span is valid, the last
        span's object (the rubric then says what is wrong with it) or its parse error; else
        the reason there is none: no envelope, an unclosed one, valid verdicts that disagree.
    """
    if reply is None or not reply.strip():
        return "empty judge reply"
    if not _TAG_RE.fullmatch(tag):
        raise ValueError("an envelope tag is 24 lowercase hex digits")
    bodies = _envelope_bodies(reply, tag)
    if not bodies:
        if envelope_open(tag) in reply:
            return "verdict envelope not closed (truncated reply?)"
        return "no verdict envelope with this request's tag in the judge reply"
    parsed = [_body_object(b) for b in bodies]
    valid = [p for p in parsed if isinstance(p, dict) and (fits is None or fits(p))]
    if not valid:  # the last span decides, as before: its parse error, or the rubric's reason
        last = parsed[-1]
        return last if isinstance(last, str) else Verdict(last, "envelope")
    distinct = {json.dumps(v, sort_keys=True) for v in valid}
    if len(distinct) > 1:
        return f"valid verdicts that disagree ({len(distinct)} different ones in the reply's envelopes)"
    return Verdict(valid[-1], "envelope")


def read_verdict(
    reply: str | None, channel: str, tag: str, fits: Callable[[dict[str, Any]], bool] | None = None
) -> Verdict | str:
    """Read a verdict from ``reply`` through ``channel`` (``tag``: the request's tag; ``fits``:
    see :func:`read_envelope`; the structured channel's one object is checked by the rubric)."""
    if check_channel(channel) == "structured":
        return read_structured(reply)
    return read_envelope(reply, tag, fits)
