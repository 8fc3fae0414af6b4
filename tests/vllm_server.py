"""A real server on 127.0.0.1 that answers like vLLM's OpenAI server with a reasoning parser.

It plays a *reasoning model* served by ``vllm serve MODEL --reasoning-parser deepseek_r1``
(tests and benchmarks of served generation). The shapes are vLLM's:

* ``POST /v1/chat/completions`` → ``{"id": "chatcmpl-…", "object": "chat.completion",
  "created", "model", "choices": [{"index": 0, "message": {"role": "assistant", "content",
  "reasoning" (newer vLLM) or "reasoning_content" (older; ``reasoning_field``), "tool_calls":
  [], …}, "logprobs": null, "finish_reason": "stop" | "length", "stop_reason": null}],
  "usage": {"prompt_tokens", "total_tokens", "completion_tokens", …}}``;
* ``GET /v1/models`` → ``{"object": "list", "data": [{"id", "object": "model", "created",
  "owned_by": "vllm", "root", "parent": null, "max_model_len", …}]}``;
* an unknown model → HTTP 404 ``{"error": {"message": "The model `x` does not exist.",
  "type": "NotFoundError", "param": null, "code": 404}}`` (``error_style="flat"``: the
  older top-level ``{"object": "error", "message", "type", "param", "code"}``);
* started with ``api_key``: every ``/v1`` request without ``Authorization: Bearer <key>``
  gets HTTP 401 ``{"error": "Unauthorized"}`` (vLLM's ``--api-key`` middleware).

The model's output for a question is scripted: ``script[question] = (reasoning, content)``,
else a default pair naming the question. It "generates" the reasoning, then the content, in
whitespace tokens, and honours ``max_tokens``: cut off inside the reasoning, the reply has
the partial reasoning and ``content: null``; inside the content, the partial content; both
with ``finish_reason: "length"``. With ``reasoning_field=None`` (no reasoning parser) the
whole output, ``<think>`` markers included, is the content.

Faults, per question, by a directive in its text: ``#fault=KIND*N`` makes the first N
requests fail with KIND (``N`` may be ``inf``): ``429`` (with ``Retry-After``), ``500``,
``503``, ``hang`` (sleep ``hang_seconds`` before answering) or ``truncated_body``.
``latency`` delays every completion. ``requests`` counts requests per question,
``bodies`` keeps every completion request, ``max_in_flight`` the highest concurrency seen.
"""

from __future__ import annotations

import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

from http_server_base import LocalServer, scripted_fault, send_json, send_truncated, user_parts


def default_output(question: str) -> tuple[str, str]:
    """The scripted (reasoning, content) of a question with no script entry."""
    return f"The user asks: {question} I should answer carefully.", f"Answer to: {question}"


def cut(text: str, budget: int) -> tuple[str, int, bool]:
    """``text`` cut at ``budget`` whitespace tokens: (kept text, tokens kept, was cut)."""
    tokens = text.split()
    if len(tokens) <= budget:
        return text, len(tokens), False
    return " ".join(tokens[:budget]), budget, True


class VLLMServer(LocalServer):
    """The server; use as a context manager. ``base_url`` ends in ``/v1``.

    Args:
        models: Served model names (``GET /v1/models`` lists them; others answer 404).
        reasoning_field: ``reasoning`` (vLLM ≥ 0.11), ``reasoning_content`` (older), ``both``
            (the transition releases), or None (no reasoning parser: markers in the content).
        api_key: Require ``Authorization: Bearer <api_key>``.
        latency: Seconds added to every completion.
        retry_after: The ``Retry-After`` of a 429 (seconds).
        hang_seconds: How long a ``hang`` fault sleeps.
        error_style: ``nested`` (``{"error": {...}}``) or ``flat`` (older vLLM).
    """

    def __init__(
        self,
        models: tuple[str, ...] = ("served-model",),
        reasoning_field: str | None = "reasoning",
        api_key: str | None = None,
        latency: float = 0.0,
        retry_after: float = 0.05,
        hang_seconds: float = 3.0,
        error_style: str = "nested",
    ) -> None:
        super().__init__()
        self.models = models
        self.reasoning_field = reasoning_field
        self.api_key = api_key
        self.latency = latency
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.error_style = error_style
        self.script: dict[str, tuple[str, str]] = {}
        self.bodies: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ replies
    def model_list(self) -> dict[str, Any]:
        """``GET /v1/models``'s body."""
        created = int(time.time())
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": "vllm", "root": m, "parent": None,
             "max_model_len": 32768, "permission": [{"id": f"modelperm-{uuid.uuid4().hex}",
             "object": "model_permission", "created": created, "allow_create_engine": False,
             "allow_sampling": True, "allow_logprobs": True, "allow_search_indices": False,
             "allow_view": True, "allow_fine_tuning": False, "organization": "*", "group": None,
             "is_blocking": False}]}
            for m in self.models
        ]  # fmt: skip
        return {"object": "list", "data": data}

    def error(self, message: str, err_type: str, code: int) -> dict[str, Any]:
        """vLLM's ErrorResponse body."""
        if self.error_style == "flat":
            return {"object": "error", "message": message, "type": err_type, "param": None, "code": code}
        return {"error": {"message": message, "type": err_type, "param": None, "code": code}}

    def on_get(self, h: BaseHTTPRequestHandler) -> None:
        """``GET /v1/models`` and ``/stats``; anything else is 404."""
        if not self.accept(h):
            return
        if h.path.rstrip("/") == "/v1/models":
            return send_json(h, 200, self.model_list())
        if h.path == "/stats":
            return send_json(h, 200, self.stats())
        send_json(h, 404, {"detail": "Not Found"})

    def accept(self, h: BaseHTTPRequestHandler) -> bool:
        """Whether the request may go on (with ``api_key``: it carries the key; else 401)."""
        if self.api_key is None or not h.path.startswith("/v1"):
            return True
        if h.headers.get("authorization", "") == f"Bearer {self.api_key}":
            return True
        send_json(h, 401, {"error": "Unauthorized"})
        return False

    def on_post(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        """Answer a chat completion (see the module docstring)."""
        parts, question = user_parts(body)
        self.bodies.append(body)
        attempt = self.count(question)
        if self.latency:
            time.sleep(self.latency)
        if body.get("model") not in self.models:
            msg = f"The model `{body.get('model')}` does not exist."
            return send_json(h, 404, self.error(msg, "NotFoundError", 404))
        fault = scripted_fault(question, attempt)
        if fault == "500":
            return send_json(
                h, 500, self.error("EngineCore encountered an issue.", "InternalServerError", 500)
            )
        if fault == "503":
            return send_json(h, 503, self.error("Service Unavailable", "ServiceUnavailableError", 503))
        if fault == "429":
            return send_json(h, 429, self.error("Too many requests", "RateLimitError", 429),
                              headers={"Retry-After": str(self.retry_after)})  # fmt: skip
        if fault == "hang":
            time.sleep(self.hang_seconds)
        payload = self.completion(body, question, parts)
        if fault == "truncated_body":
            return send_truncated(h, payload)
        return send_json(h, 200, payload)

    def completion(self, body: dict[str, Any], question: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        """The chat.completion body: the scripted output generated under ``max_tokens``."""
        reasoning, content = self.script.get(question, default_output(question))
        budget = int(body.get("max_tokens") or body.get("max_completion_tokens") or 1 << 30)
        # No reasoning parser: the raw text, markers and all, is the content.
        text = f"<think>\n{reasoning}\n</think>\n\n{content}" if reasoning else content
        out_reasoning: str | None = None
        out_content: str | None = None
        if self.reasoning_field is None:
            out_content, used, was_cut = cut(text, budget)
        else:
            out_reasoning, used, was_cut = cut(reasoning, budget)
            if not was_cut:
                out_content, more, was_cut = cut(content, budget - used)
                used += more
        message: dict[str, Any] = {"role": "assistant", "content": out_content, "refusal": None,
                                   "annotations": None, "audio": None, "function_call": None,
                                   "tool_calls": []}  # fmt: skip
        if self.reasoning_field in ("reasoning", "both"):
            message["reasoning"] = out_reasoning
        if self.reasoning_field in ("reasoning_content", "both"):
            message["reasoning_content"] = out_reasoning
        system = "".join(
            str(m["content"]) for m in body["messages"][:-1] if isinstance(m.get("content"), str)
        )
        images = sum(p["type"] == "image_url" for p in parts)
        prompt_tokens = len(system.split()) + len(question.split()) + 64 * images + 8  # + chat template
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "length" if was_cut else "stop",
                    "stop_reason": None,
                }
            ],  # fmt: skip
            "service_tier": None,
            "system_fingerprint": None,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + used,
                "completion_tokens": used,
                "prompt_tokens_details": None,
            },  # fmt: skip
            "prompt_logprobs": None,
            "kv_transfer_params": None,
        }


def main() -> None:
    """Serve in the foreground (``python tests/vllm_server.py --latency 0.2``); prints the base URL.

    ``GET /stats`` returns ``{"total": requests, "max_in_flight": n}``. Benchmarks run the
    server in its own process so it does not share the client's interpreter (GIL).
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--model", default="served-model")
    args = parser.parse_args()
    with VLLMServer(models=(args.model,), latency=args.latency) as srv:
        print(srv.base_url, flush=True)
        srv.wait()


if __name__ == "__main__":
    main()
