"""The HTTP plumbing of the tests' OpenAI-compatible servers (``chat_server.py``,
``vllm_server.py``): a threaded server on 127.0.0.1 with a large backlog, a quiet keep-alive
handler, JSON replies, request and concurrency counts, scripted faults, and start/stop as a
context manager.

A server subclasses :class:`LocalServer` and implements :meth:`LocalServer.on_post` (and
:meth:`LocalServer.on_get` where it answers more than ``/stats``).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

_FAULT_RE = re.compile(r"#fault=(\w+)\*(\d+|inf)")


def send_raw(
    h: BaseHTTPRequestHandler, status: int, raw: bytes, headers: dict[str, str] | None = None
) -> None:
    """Reply ``raw`` as ``application/json`` with ``status`` and extra ``headers``."""
    try:
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(raw)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(raw)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
        pass


def send_json(
    h: BaseHTTPRequestHandler, status: int, obj: Any, headers: dict[str, str] | None = None
) -> None:
    """Reply ``obj`` as JSON with ``status`` and extra ``headers``."""
    send_raw(h, status, json.dumps(obj).encode(), headers)


def send_truncated(h: BaseHTTPRequestHandler, obj: Any) -> None:
    """HTTP 200 whose JSON body (``obj``) is cut in half."""
    raw = json.dumps(obj).encode()
    send_raw(h, 200, raw[: len(raw) // 2])


def user_parts(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The last message's content parts (a string content as one text part) and their text."""
    user = body["messages"][-1]["content"]
    parts = [{"type": "text", "text": user}] if isinstance(user, str) else user
    return parts, "".join(p.get("text", "") for p in parts if p["type"] == "text")


def scripted_fault(text: str, attempt: int) -> str | None:
    """The fault ``#fault=KIND*N`` in ``text`` scripts for this attempt (the first N fail)."""
    m = _FAULT_RE.search(text)
    if not m:
        return None
    limit = math.inf if m.group(2) == "inf" else int(m.group(2))
    return m.group(1) if attempt <= limit else None


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # the default backlog of 5 drops connects under concurrency
    daemon_threads = True


class LocalServer:
    """A server on a free port of 127.0.0.1; use as a context manager. ``base_url`` ends in ``/v1``.

    ``requests`` counts requests per item (see :meth:`count`), ``total`` all of them,
    ``max_in_flight`` the highest concurrency seen.
    """

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.total = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # one reply = two writes; avoid the 40 ms delayed-ACK stall

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                server.on_get(self)

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                if not server.accept(self):
                    return
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server.on_post(self, json.loads(raw))
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def wait(self) -> None:
        """Serve until interrupted (Ctrl-C): the servers' foreground mode."""
        with contextlib.suppress(KeyboardInterrupt):
            self._thread.join()

    def stats(self) -> dict[str, int]:
        """``GET /stats``'s body."""
        return {"total": self.total, "max_in_flight": self.max_in_flight}

    def count(self, item: str) -> int:
        """Count a request for ``item``; return its attempt number (1 for the first)."""
        with self._lock:
            self.requests[item] += 1
            self.total += 1
            return self.requests[item]

    def accept(self, h: BaseHTTPRequestHandler) -> bool:
        """Whether to handle a POST (else it has been answered); default: all."""
        return True

    def on_get(self, h: BaseHTTPRequestHandler) -> None:
        """Answer a GET: the stats on any path."""
        send_json(h, 200, self.stats())

    def on_post(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        """Answer a POST whose JSON body is ``body``."""
        raise NotImplementedError
