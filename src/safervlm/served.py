"""OpenAI-compatible endpoints: retries, reading replies, and the preflight check.

Shared by served generation (:class:`safervlm.models.generation.OpenAIGenerator`) and the
HTTP judge (:mod:`safervlm.judge.http`), so both retry the same statuses on the same
schedule, and light enough (no torch) for the judge stage and the Snakefile to import.

Retries: 429, 408/409, 5xx, timeouts, connection errors and unreadable bodies are retried
with exponential backoff and full jitter (``base * 2**(attempt-1)``, capped), or after the
server's ``Retry-After`` / ``retry-after-ms`` (also capped). Other 4xx are not retried.

Preflight (:func:`endpoint_error`, :func:`preflight_errors`): before any job runs, the
Snakefile (``onstart``) and ``safervlm preflight`` check each served endpoint once:
``GET {base_url}/models`` answers, lists the served model, and the key variable is set when
one is declared. Each failure is one line naming the model, the URL and the cause.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from safervlm.config import GenerateParams, from_dict
from safervlm.errors import ConfigError, EndpointError
from safervlm.schema import Generation

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
PREFLIGHT_TIMEOUT = 10.0


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds a server asked to wait (``retry-after-ms``, or ``retry-after`` seconds/HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else max(0.0, parsed.timestamp() - time.time())


def backoff_delay(attempt: int, exc: BaseException, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry ``attempt + 1``: the server's ``Retry-After`` if it sent
    one, else full-jitter exponential backoff; both capped at ``cap``."""
    asked = retry_after_seconds(getattr(getattr(exc, "response", None), "headers", None))
    if asked is not None:
        return min(asked, cap)
    return rng.uniform(0, min(cap, base * 2 ** (attempt - 1)))


def retryable(exc: BaseException) -> bool:
    """True for an openai error worth retrying (``RETRY_STATUSES``, connection, timeout,
    unreadable body) or a ``ValueError`` from reading a reply."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRY_STATUSES
    return isinstance(exc, openai.APIConnectionError | openai.APIResponseValidationError | ValueError)


def describe_error(exc: BaseException) -> str:
    """The exception type and HTTP status, e.g. ``InternalServerError (HTTP 500)`` (no secrets)."""
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status is not None else "")


def server_message(exc: BaseException, limit: int = 200) -> str:
    """The server's own error message (vLLM's ``{"error": {"message"}}`` or its older
    ``{"object": "error", "message"}``; a connection error's cause), on one line."""
    body = getattr(exc, "body", None)
    message: Any = None
    if isinstance(body, Mapping):
        inner = body.get("error")
        message = inner.get("message") if isinstance(inner, Mapping) else body.get("message")
    if message is None and exc.__cause__ is not None:
        message = f"{type(exc.__cause__).__name__}: {exc.__cause__}"
    text = " ".join(str(message or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tokens(usage: Any, key: str) -> int:
    value = usage.get(key) if isinstance(usage, Mapping) else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else -1


def parse_chat_completion(raw: str) -> Generation:
    """The first choice of a chat-completions JSON body: content, the reasoning field
    (``reasoning``, else vLLM's older ``reasoning_content``), finish reason and usage.

    Raises:
        ValueError: an unreadable body (cut off, not JSON, no choices): retried like a 5xx.
    """
    try:
        data = json.loads(raw)
        choice = data["choices"][0]
        message = choice["message"]
        content = message.get("content")
        reasoning = message.get("reasoning") or message.get("reasoning_content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ValueError(f"unreadable chat-completions body ({type(exc).__name__})") from exc
    if not isinstance(content, str | None) or not isinstance(reasoning, str | None):
        raise ValueError("reply content is not text")
    usage = data.get("usage")
    return Generation(
        content=(content or "").strip(),
        reasoning=reasoning,
        finish_reason=str(choice.get("finish_reason") or ""),
        prompt_tokens=_tokens(usage, "prompt_tokens"),
        completion_tokens=_tokens(usage, "completion_tokens"),
    )


def api_key(params: GenerateParams, env: Mapping[str, str] | None = None) -> str | None:
    """The key from ``params.api_key_env``; None when no variable is declared.

    Raises:
        EndpointError: a variable is declared but not set (never a silent ``Bearer EMPTY``).
    """
    if not params.api_key_env:
        return None
    key = (os.environ if env is None else env).get(params.api_key_env, "")
    if not key:
        raise EndpointError(
            f"environment variable {params.api_key_env} (api_key_env) is not set: export the key "
            "there (for an unauthenticated local server, any non-empty value)"
        )
    return key


def model_section(generate: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One model's ``generate`` keys: the section's, then that model's overrides (what the
    ``generate`` rule passes as ``--params``)."""
    section = {k: v for k, v in generate.items() if k != "models"}
    return {**section, **(generate.get("models") or {}).get(name, {})}


def model_params(generate: Mapping[str, Any], name: str) -> GenerateParams:
    """One model's generate params (:func:`model_section`), validated."""
    return from_dict(GenerateParams, model_section(generate, name), section=f"generate.models.{name}")


def endpoint_error(
    name: str,
    params: GenerateParams,
    timeout: float = PREFLIGHT_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """None when the endpoint of served model ``name`` is usable; else one line saying why.

    Checks, in order: ``base_url`` is set, the key variable is set when declared,
    ``GET {base_url}/models`` answers 200 with a model list, and the list has the served
    model (``served_model``, else ``name``).
    """
    served = params.served_model or name
    where = f"served model {name!r} ({served} at {params.base_url})"
    if not params.base_url:
        return f"served model {name!r}: generate.base_url is not set (e.g. http://host:8000/v1)"
    try:
        key = api_key(params, env)
    except EndpointError as exc:
        return f"{where}: {exc}"
    url = params.base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            listed = [str(m.get("id")) for m in json.load(resp).get("data", []) if isinstance(m, dict)]
    except urllib.error.HTTPError as exc:
        hint = " (the key was refused)" if exc.code in (401, 403) else ""
        return f"{where}: GET {url} answered HTTP {exc.code}{hint}"
    except (OSError, ValueError, AttributeError) as exc:
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        return f"{where}: {url} does not answer ({reason})"
    if served not in listed:
        return f"{where}: the server does not serve {served!r} (it serves {sorted(listed)})"
    return None


def preflight_errors(
    generate: Mapping[str, Any], models: Iterable[str], timeout: float = PREFLIGHT_TIMEOUT
) -> list[str]:
    """:func:`endpoint_error` of every model of ``models`` whose backend is ``openai``,
    each distinct endpoint (URL, served name, key variable) checked once."""
    errors: list[str] = []
    seen: set[tuple[Any, ...]] = set()
    for name in dict.fromkeys(models):
        try:
            params = model_params(generate, name)
        except ConfigError as exc:
            errors.append(f"served model {name!r}: {exc}")
            continue
        key = (params.base_url, params.served_model or name, params.api_key_env)
        if params.backend != "openai" or key in seen:
            continue
        seen.add(key)
        why = endpoint_error(name, params, timeout)
        if why:
            errors.append(why)
        else:
            logger.info("served model %r: %s answers and serves %s", name, params.base_url, key[1])
    return errors
