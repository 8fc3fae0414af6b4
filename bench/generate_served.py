"""Served generation throughput against the vLLM-shaped test server at a fixed latency.

For each concurrency c (``generate.concurrency``) the openai backend generates
``n = max(32, 8c)`` distinct responses (median of ``--repeats`` runs, each on fresh
questions) from ``tests/vllm_server.py`` (run in its own process, so server threads do not
compete with the client for the GIL), which answers every request after ``--latency``
seconds with a reasoning field, content, finish reason and usage. The ideal time is
``n * latency / c``; the reported figure is ideal / achieved time (1.0 = every request slot
busy all the time). Goal at 16 in flight and 200 ms: >= 0.85. Usage::

    .venv/bin/python bench/generate_served.py [--latency 0.2] [--concurrency 1 4 16 64]
        [--repeats 3] [--out bench/results/generate_served.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from safervlm.config import GenerateParams
from safervlm.models.generation import build_generator

SERVER = Path(__file__).resolve().parents[1] / "tests" / "vllm_server.py"
MODEL = "bench-model"


def run_once(base_url: str, c: int, n: int, tag: str) -> float:
    """Seconds to generate ``n`` responses at concurrency ``c`` (all must be complete)."""
    params = GenerateParams(backend="openai", base_url=base_url, served_model=MODEL, concurrency=c)
    gen = build_generator(MODEL, params)
    questions = [f"{tag} question {i}" for i in range(n)]
    start = time.perf_counter()
    out = gen.generate_records(questions, [None] * n, max_new_tokens=params.effective_max_new_tokens)
    elapsed = time.perf_counter() - start
    assert all(g.finish_reason == "stop" and g.reasoning for (g,) in out)
    return elapsed


def row(base_url: str, args: argparse.Namespace, c: int) -> dict[str, Any]:
    """The median of ``args.repeats`` runs at concurrency ``c``."""
    n = max(32, 8 * c)
    times = [run_once(base_url, c, n, f"c{c}-r{rep}") for rep in range(args.repeats)]
    elapsed = statistics.median(times)
    ideal = n * args.latency / c
    return {"concurrency": c, "requests": n, "times_s": times, "median_s": elapsed, "ideal_s": ideal,
            "req_per_s": n / elapsed, "ideal_req_per_s": c / args.latency,
            "ratio": ideal / elapsed}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the raw results as JSON here")
    args = parser.parse_args()
    cmd = [sys.executable, str(SERVER), "--latency", str(args.latency), "--model", MODEL]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    base_url = proc.stdout.readline().strip()
    try:
        run_once(base_url, 2, 2, "warm")  # imports and first connection
        rows = [row(base_url, args, c) for c in args.concurrency]
    finally:
        proc.terminate()
        proc.wait()
    print(f"latency {args.latency * 1000:.0f} ms per request")
    print("| concurrency | requests | time (s) | ideal (s) | req/s | ideal req/s | ideal / achieved |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['requests']} | {r['median_s']:.2f} | {r['ideal_s']:.2f} | "
              f"{r['req_per_s']:.1f} | {r['ideal_req_per_s']:.1f} | {r['ratio']:.2f} |")  # fmt: skip
    if args.out:
        meta = {"latency_s": args.latency, "repeats": args.repeats, "python": platform.python_version(),
                "machine": platform.machine(), "cpus": os.cpu_count()}  # fmt: skip
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
