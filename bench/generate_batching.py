"""Batched vs one-at-a-time generation with the HF backend, measured in one process.

The baseline (batch size 1) and the batched run use the same model, prompts and greedy
settings; the script checks both produce the same responses and reports the speed-up as
a ratio. Usage::

    .venv/bin/python bench/generate_batching.py [--model results/checkpoints/sft] [--n 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from safervlm.benchmarks import load_benchmark
from safervlm.embedded.fixtures import build_fixtures
from safervlm.models.generation import HFGenerator


def best_of(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="results/checkpoints/sft", help="a trained policy folder")
    parser.add_argument("--n", type=int, default=64, help="prompts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_fixtures(Path(tmp), seed=1, n_per_benchmark=args.n, n_train_per_source=4)
        samples = pd.DataFrame([s.to_row() for s in load_benchmark("vlguard", Path(tmp) / "vlguard")])
    samples = samples.head(args.n)
    gen = HFGenerator(args.model)
    questions, images = samples["question"].tolist(), samples["image"].tolist()
    out = {}

    def run(bs: int) -> None:
        out[bs] = gen.generate(questions, images, max_new_tokens=args.max_new_tokens, batch_size=bs)

    t1 = best_of(lambda: run(1), args.repeats)
    tb = best_of(lambda: run(args.batch_size), args.repeats)
    same = sum(a == b for a, b in zip(out[1], out[args.batch_size], strict=True))
    print(f"prompts: {len(questions)}, max_new_tokens: {args.max_new_tokens}, model: {args.model}")
    print(f"batch size 1 (baseline): {t1:.2f} s ({len(questions) / t1:.1f} prompts/s)")
    print(f"batch size {args.batch_size}: {tb:.2f} s ({len(questions) / tb:.1f} prompts/s)")
    print(f"speed-up: {t1 / tb:.2f}x; identical responses: {same}/{len(questions)}")


if __name__ == "__main__":
    main()
