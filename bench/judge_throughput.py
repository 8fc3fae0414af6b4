"""HTTP judge throughput against the test chat-completions server at a fixed latency.

For each concurrency c the judge sends ``n = max(32, 8c)`` distinct requests (median of
``--repeats`` runs, each on fresh inputs) to
``tests/chat_server.py`` (run in its own process, so server threads do not compete with the
client for the GIL) with ``--latency`` seconds per request; the ideal throughput is
``c / latency`` requests/s, and the reported figure is achieved / ideal. Then the same
inputs are judged again with the reply cache: the second run must make 0 calls. Each verdict
channel (``structured``: ``response_format`` with the rubric's schema; ``envelope``: the
verdict inside a random per-request tag) is measured in the same run. Usage::

    .venv/bin/python bench/judge_throughput.py [--latency 0.2] [--concurrency 1 4 16 64]
        [--channels structured envelope]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from safervlm.judge import get_judge

SERVER = Path(__file__).resolve().parents[1] / "tests" / "chat_server.py"


def server_total(base_url: str) -> int:
    with urllib.request.urlopen(base_url + "/stats") as resp:
        return int(json.load(resp)["total"])


def records(n: int, tag: str) -> list[dict]:  # type: ignore[type-arg]
    return [
        {"id": f"{tag}{i}", "benchmark": "vlguard", "question": f"{tag} question {i}", "should_refuse": True,
         "image_objects": "[]", "reasoning": "I think.", "answer": "Sorry, no.",
         "response": "<think>I think.</think>Sorry, no."}
        for i in range(n)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels", nargs="+", default=["structured", "envelope"])
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "bench-key")
    print(f"latency {args.latency * 1000:.0f} ms per request")
    head = ["channel", "concurrency", "requests", "time (s)", "req/s", "ideal req/s", "achieved / ideal"]
    print("| " + " | ".join([*head, "calls on rerun"]) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    cmd = [sys.executable, str(SERVER), "--latency", str(args.latency)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    base_url = proc.stdout.readline().strip()
    try:
        run(base_url, args)
    finally:
        proc.terminate()
        proc.wait()


def run(base_url: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        warm = get_judge("openai", model="bench", base_url=base_url)  # imports and first connection
        warm.judge(records(2, "warm-"))
        for channel in args.channels:
            for c in args.concurrency:
                row(base_url, args, tmp, channel, c)


def row(base_url: str, args: argparse.Namespace, tmp: str, channel: str, c: int) -> None:
    n = max(32, 8 * c)
    params = {"model": "bench", "base_url": base_url, "concurrency": c, "cache": f"{tmp}/c.sqlite",
                  "verdict_channel": channel}  # fmt: skip
    times = []
    for rep in range(args.repeats):
        recs = records(n, f"{channel}-c{c}-r{rep}-")
        judge = get_judge("openai", **params)
        start = time.perf_counter()
        out = judge.judge(recs)
        times.append(time.perf_counter() - start)
        assert all(o.status == "scored" for o in out)
    elapsed = statistics.median(times)
    before = server_total(base_url)
    again = get_judge("openai", **params)
    again.judge(recs)
    rerun_calls = server_total(base_url) - before
    rate, ideal = n / elapsed, c / args.latency
    cells = [
        channel,
        c,
        n,
        f"{elapsed:.2f}",
        f"{rate:.1f}",
        f"{ideal:.1f}",
        f"{rate / ideal:.2f}",
        rerun_calls,
    ]
    print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
