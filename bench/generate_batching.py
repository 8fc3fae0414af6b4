"""Evaluation generation with the HF backend: one at a time vs batched, and the generate options.

Every variant uses the same model, prompts and greedy settings in one process; the script
checks all produce the same responses and reports each time as a ratio to the baseline (the
first of ``--variants``; by default ``bs1``, batch size 1). Variants: ``bs1``, ``batched``
(``--batch-size``, dynamic KV cache: the old default), ``static``
(``generate.cache_implementation: static``) and, with ``--compile``, ``compiled`` (static
cache + ``generate.compile``; its first call, which compiles, is reported separately). The
variants run interleaved, ``--repeats`` rounds, and the median of each is reported (and the
best-of ratio), so machine noise spreads over all of them. Usage::

    .venv/bin/python bench/generate_batching.py [--model results/checkpoints/sft] [--n 64] [--compile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm.benchmarks import load_benchmark
from safervlm.embedded.fixtures import build_fixtures
from safervlm.models.generation import HFGenerator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="results/checkpoints/sft", help="a trained policy folder")
    parser.add_argument("--n", type=int, default=64, help="prompts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time static cache + compile")
    parser.add_argument(
        "--variants", default="bs1,batched,static", help="subset to time (the first is the baseline)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_fixtures(Path(tmp), seed=1, n_per_benchmark=args.n, n_train_per_source=4)
        samples = pd.DataFrame([s.to_row() for s in load_benchmark("vlguard", Path(tmp) / "vlguard")])
    samples = samples.head(args.n)
    questions, images = samples["question"].tolist(), samples["image"].tolist()
    names = args.variants.split(",") + (["compiled"] if args.compile else [])
    options: dict[str, dict[str, Any]] = {"static": {"cache_implementation": "static"}}
    options["compiled"] = {"cache_implementation": "static", "compile": True}
    gens = {name: HFGenerator(args.model, **options.get(name, {})) for name in names}
    sizes = {name: 1 if name == "bs1" else args.batch_size for name in gens}
    out: dict[str, list[list[str]]] = {}
    times: dict[str, list[float]] = {name: [] for name in gens}
    print(f"load before: {os.getloadavg()}")
    if args.compile:
        start = time.perf_counter()
        gens["compiled"].generate(
            questions, images, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
        )
        print(f"compiled: first call (compiles) {time.perf_counter() - start:.2f} s")
    for _ in range(args.repeats):
        for name, gen in gens.items():
            start = time.perf_counter()
            out[name] = gen.generate(
                questions, images, max_new_tokens=args.max_new_tokens, batch_size=sizes[name]
            )
            times[name].append(time.perf_counter() - start)
    print(f"load after: {os.getloadavg()}")
    print(f"prompts: {len(questions)}, max_new_tokens: {args.max_new_tokens}, model: {args.model}")
    first = names[0]
    base = statistics.median(times[first])
    for name, ts in times.items():
        t = statistics.median(ts)
        same = sum(a == b for a, b in zip(out[first], out[name], strict=True))
        print(
            f"{name:8s} batch {sizes[name]:3d}: median {t:.2f} s ({len(questions) / t:.1f} prompts/s), "
            f"{base / t:.2f}x {first} (best of: {min(times[first]) / min(ts):.2f}x); "
            f"identical to {first}: {same}/{len(questions)}; all: {[round(x, 2) for x in ts]}"
        )


if __name__ == "__main__":
    main()
