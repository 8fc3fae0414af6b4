"""LLM rubric judge over any OpenAI-compatible chat-completions endpoint.

Works with OpenAI (e.g. ``gpt-4o-mini``) and with a vLLM server hosting a reward model
(``base_url: http://host:8000/v1``). Requests are sent with the official ``openai`` client
(``AsyncOpenAI``, its own retries off) through its raw request path (``client.post`` on
``/chat/completions``: its transport, auth and HTTP errors, without re-walking typed params
per request), temperature 0, the image as a base64 data URL, at most ``concurrency`` in flight.

Retries: 429, 408/409, 5xx, timeouts, connection errors and unreadable response bodies are
retried with exponential backoff and full jitter (``backoff_base * 2**(attempt-1)``, capped
at ``backoff_max``), or after the server's ``Retry-After`` / ``retry-after-ms`` when it sends
one (also capped). Each request gets at most ``max_attempts`` attempts and the whole run at
most ``retry_budget`` retries; past either the sample is recorded as a judge error. Other
4xx statuses are not retried.

Verdict channel (``verdict_channel``, see :mod:`safervlm.judge.channel`): ``structured`` (the
default) sends the rubric's JSON schema as ``response_format`` (``{"type": "json_schema",
"json_schema": {"name", "schema", "strict": true}}``, accepted by OpenAI and by vLLM's server)
and accepts only a reply that is exactly one schema-valid object. An endpoint that rejects
``response_format`` answers HTTP 400: every sample is then a judge error whose reason names
the fallback, ``verdict_channel: envelope`` (the verdict inside an envelope marked with a
random per-request tag).

Secrets: the API key is read from the environment variable named by ``api_key_env``
(default ``OPENAI_API_KEY``) and nowhere else; a key passed as a parameter is refused.
It is never put in params, logs or error messages (errors carry the exception type and
HTTP status only).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import time
from typing import Any

from safervlm.errors import ConfigError
from safervlm.judge.model import CallError, ModelJudge, OnReply, Request
from safervlm.schema import image_data_url
from safervlm.served import RETRY_STATUSES, backoff_delay, describe_error, retry_after_seconds, retryable

logger = logging.getLogger(__name__)

SECRET_PARAMS = ("api_key", "key", "token", "authorization")
# The retry statuses and Retry-After reading are shared with served generation (safervlm.served).
__all__ = ["RETRY_STATUSES", "OpenAIJudge", "reply_text", "retry_after_seconds"]


def reply_text(raw: str) -> str:
    """The first choice's message content of a chat-completions JSON body.

    Raises:
        ValueError: an unreadable body (cut off, not JSON, no choices): retried like a 5xx.
    """
    try:
        data = json.loads(raw)
        content = data["choices"][0]["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ValueError(f"unreadable chat-completions body ({type(exc).__name__})") from exc
    if content is not None and not isinstance(content, str):
        raise ValueError("reply content is not text")
    return content or ""


class OpenAIJudge(ModelJudge):
    """Rubric judge over an OpenAI-compatible endpoint (module docstring for behaviour).

    Args:
        model: Model name sent to the endpoint.
        base_url: Endpoint, e.g. ``http://127.0.0.1:8000/v1``; None → ``OPENAI_BASE_URL`` or OpenAI.
        api_key_env: Name of the environment variable holding the key.
        concurrency: Requests in flight at once.
        timeout: Seconds per attempt.
        max_attempts: Attempts per request (1 = no retry).
        retry_budget: Retries allowed over the whole run.
        backoff_base, backoff_max: Backoff schedule in seconds.
        max_tokens: Reply length cap.
        seed: Passed to the endpoint when set (best-effort determinism).
        rubric, rubrics, cache: See :class:`safervlm.judge.model.ModelJudge`.
        verdict_channel: ``structured`` (``response_format`` with the rubric's schema) or
            ``envelope`` (for endpoints without structured output).
    """

    name = "openai"
    version = "2.0"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 60.0,
        max_attempts: int = 6,
        retry_budget: int = 1000,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_tokens: int = 512,
        seed: int | None = None,
        rubric: str = "saferv",
        rubrics: dict[str, str] | None = None,
        cache: str | None = None,
        verdict_channel: str = "structured",
        **unknown: Any,
    ) -> None:
        secret = [k for k in unknown if k.lower() in SECRET_PARAMS]
        if secret:
            raise ConfigError(
                f"judge parameter {secret[0]!r} is not accepted: the API key comes only from the "
                f"environment variable named by api_key_env (now {api_key_env!r})"
            )
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        super().__init__(rubric=rubric, rubrics=rubrics, cache=cache, verdict_channel=verdict_channel)
        checks = {
            "concurrency": concurrency >= 1,
            "timeout": timeout > 0,
            "max_attempts": max_attempts >= 1,
            "retry_budget": retry_budget >= 0,
            "backoff_base": backoff_base >= 0,
            "backoff_max": backoff_max >= 0,
            "max_tokens": max_tokens >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"out-of-range parameters: {bad}")
        if not os.environ.get(api_key_env):
            raise ConfigError(
                f"environment variable {api_key_env} is not set: export the API key there "
                "(for an unauthenticated local server, any non-empty value)"
            )
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.api_key_env = api_key_env
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.max_attempts = int(max_attempts)
        self.retry_budget = int(retry_budget)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.max_tokens = int(max_tokens)
        self.seed = seed
        self._budget_left = self.retry_budget
        self._rng = random.Random()

    @property
    def judge_id(self) -> str:
        """``openai:<model>`` (the endpoint URL is not part of it: a moved server keeps its cache)."""
        return f"openai:{self.model}"

    def __repr__(self) -> str:
        return (
            f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"
        )

    def _messages(self, request: Request) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
        if request.image:
            content.append({"type": "image_url", "image_url": {"url": image_data_url(request.image)}})
        return [{"role": "system", "content": request.system}, {"role": "user", "content": content}]

    def _delay(self, attempt: int, exc: BaseException) -> float:
        return backoff_delay(attempt, exc, self.backoff_base, self.backoff_max, self._rng)

    @staticmethod
    def _retryable(exc: BaseException) -> bool:
        return retryable(exc)

    async def _one(
        self, client: Any, sem: asyncio.Semaphore, request: Request, on_reply: OnReply
    ) -> str | CallError:
        import openai

        body: dict[str, Any] = {
            "model": self.model,
            "messages": self._messages(request),
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if request.channel == "structured":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.rubric.name, "schema": request.rubric.schema, "strict": True},
            }
        attempt = 0
        while True:
            attempt += 1
            try:
                async with sem:
                    self.stats["calls"] += 1
                    # The client's documented raw-request path: the same transport, auth and
                    # HTTP errors as chat.completions.create, without its per-request walk over
                    # the typed params and the response models (half the client's CPU per request).
                    raw = await client.post("/chat/completions", body=body, cast_to=str)
                text = reply_text(raw)
                on_reply(request, text)
                return text
            except (openai.OpenAIError, ValueError) as exc:
                if not self._retryable(exc):
                    hint = ""
                    if request.channel == "structured" and getattr(exc, "status_code", None) in (400, 422):
                        hint = (
                            "; if the endpoint does not accept response_format json_schema, "
                            "set judge.params.verdict_channel: envelope"
                        )
                    return CallError(f"judge error: {describe_error(exc)} is not retried{hint}")
                if attempt >= self.max_attempts:
                    return CallError(f"judge error: {describe_error(exc)} after {attempt} attempts")
                if self._budget_left <= 0:
                    return CallError(
                        f"judge error: {describe_error(exc)}; run retry budget ({self.retry_budget}) spent"
                    )
                self._budget_left -= 1
                self.stats["retries"] += 1
                delay = self._delay(attempt, exc)
                logger.debug("retrying after %s in %.2fs (attempt %d)", describe_error(exc), delay, attempt)
                await asyncio.sleep(delay)

    async def _run(self, requests: list[Request], on_reply: OnReply) -> list[str | CallError]:
        import openai

        client = openai.AsyncOpenAI(
            api_key=os.environ[self.api_key_env], base_url=self.base_url, max_retries=0, timeout=self.timeout
        )
        sem = asyncio.Semaphore(self.concurrency)
        async with client:
            return list(await asyncio.gather(*(self._one(client, sem, r, on_reply) for r in requests)))

    def _complete(self, requests: list[Request], on_reply: OnReply) -> list[str | CallError]:
        started = time.monotonic()
        replies = asyncio.run(self._run(requests, on_reply))
        elapsed = time.monotonic() - started
        logger.info(
            "%d requests in %.1fs (%.1f/s), %d calls, %d retries, budget left %d",
            len(requests),
            elapsed,
            len(requests) / elapsed if elapsed else math.inf,
            self.stats["calls"],
            self.stats["retries"],
            self._budget_left,
        )
        return replies
