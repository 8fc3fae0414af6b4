"""Content-addressed SQLite cache of judge replies.

Key = SHA-256 over (judge id, rubric ``name@version``, system + user prompt built with the
placeholder tag and the verdict channel, SHA-256 of the image bytes, response text). The value
is the judge's *raw reply* and the random tag the request carried (see
:mod:`safervlm.judge.channel`): parsing runs again on every read with that tag, so a parser fix
never needs new calls and a rerun rebuilds the very prompt that was sent; a rubric version bump
misses every old entry of that rubric and no other. Only replies are stored; judge errors (no reply
within the retry budget) are not, so a rerun retries exactly those.

Each reply is committed as it arrives (WAL journal, so several judge jobs can share one
file): a judge stage killed halfway finds everything it already paid for.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any


def image_digest(image: Any) -> str:
    """SHA-256 hex of image bytes ("" for no image)."""
    if image is None or not isinstance(image, bytes | bytearray | memoryview):
        return ""
    return hashlib.sha256(bytes(image)).hexdigest()


def cache_key(judge_id: str, rubric_id: str, prompt: str, image_sha: str, response: str) -> str:
    """The content address of one judge call (``prompt`` built with the placeholder tag)."""
    blob = json.dumps([judge_id, rubric_id, prompt, image_sha, response], ensure_ascii=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    """A judge-reply cache in one SQLite file (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=60000")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, judge TEXT NOT NULL, "
            "rubric TEXT NOT NULL, reply TEXT NOT NULL, created REAL NOT NULL, tag TEXT NOT NULL DEFAULT '')"
        )
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(replies)")}
        if "tag" not in columns:  # a cache file written before the verdict channel had tags
            self._conn.execute("ALTER TABLE replies ADD COLUMN tag TEXT NOT NULL DEFAULT ''")
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> tuple[str, str] | None:
        """The cached ``(reply, tag)`` for ``key``, counting a hit or a miss."""
        with self._lock:
            row = self._conn.execute("SELECT reply, tag FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return str(row[0]), str(row[1])

    def put(self, key: str, judge_id: str, rubric_id: str, reply: str, tag: str) -> None:
        """Store one reply and the tag its request carried (committed immediately)."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO replies (key, judge, rubric, reply, created, tag) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, judge_id, rubric_id, reply, time.time(), tag),
            )

    def count(self, judge_id: str | None = None, rubric_id: str | None = None) -> int:
        """Number of stored replies, optionally for one judge and/or rubric."""
        sql, args = "SELECT COUNT(*) FROM replies WHERE 1=1", list[str]()
        if judge_id is not None:
            sql, args = sql + " AND judge = ?", [*args, judge_id]
        if rubric_id is not None:
            sql, args = sql + " AND rubric = ?", [*args, rubric_id]
        with self._lock:
            return int(self._conn.execute(sql, args).fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
