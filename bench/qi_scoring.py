"""QI scoring throughput: one batched generate with ``num_return_sequences=K`` versus K
separate sampling passes over the pool, measured in one process, alternating the two in each round.

Both runs score the same training prompts with the same tiny policy, sampling settings
and reference judge; only how the K answers per prompt are sampled differs. Throughput is
prompts per second of the whole QI scoring (sampling, judging, reward, aggregation); the
script reports the speed-up of the batched run over the baseline as a ratio. Usage::

    .venv/bin/python bench/qi_scoring.py [--model results/models/base] [--n 64] [--k 4]

Without ``--model`` it builds the embedded default's tiny model (``TinyDims()``) offline.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from safervlm.curate.scoring import QIScoreParams, answers_frame, qi_scores, sample_answers, score_answers
from safervlm.embedded import world
from safervlm.embedded.fixtures import build_fixtures
from safervlm.embedded.tiny import TinyDims, build_tiny_model
from safervlm.judge import get_judge
from safervlm.models.generation import HFGenerator
from safervlm.sources import load_source


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def training_prompts(tmp: Path, n: int) -> pd.DataFrame:
    build_fixtures(tmp / "fx", seed=1, n_per_benchmark=4, n_train_per_source=max(4, n // 2))
    rows = load_source("vlguard_train", tmp / "fx" / "train" / "vlguard")
    rows += load_source("spa_vl", tmp / "fx" / "train" / "spa_vl")
    return pd.DataFrame(rows).head(n).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="a policy folder (default: build the tiny model)")
    parser.add_argument("--n", type=int, default=64, help="prompts")
    parser.add_argument("--k", type=int, default=4, help="sampled answers per prompt")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        pool = training_prompts(tmp, args.n)
        model = args.model
        if model is None:
            model = str(tmp / "tiny")
            texts = pool["question"].tolist() + pool["response"].tolist()
            build_tiny_model(
                model, texts + [world.response_for(t) for t in world.all_tasks()], dims=TinyDims()
            )
        gen = HFGenerator(model)
        judge = get_judge("reference")
        params = QIScoreParams(
            k_samples=args.k, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
        )
        out: dict[str, pd.DataFrame] = {}

        def score(name: str, answers: list[list[str]]) -> None:
            scored = score_answers(answers_frame(pool, answers, "tiny"), judge)
            out[name] = qi_scores(scored, pool)

        def batched() -> None:
            score("batched", sample_answers(gen, pool, params, seed=0))

        def k_calls() -> None:  # the baseline: K passes, one answer per prompt each
            passes = [
                gen.generate(
                    pool["question"].tolist(),
                    pool["image"].tolist(),
                    max_new_tokens=args.max_new_tokens,
                    do_sample=True,
                    temperature=params.temperature,
                    num_samples=1,
                    batch_size=args.batch_size,
                    seed=j,
                )
                for j in range(args.k)
            ]
            score("k_calls", [[p[i][0] for p in passes] for i in range(len(pool))])

        gen.generate(pool["question"].tolist()[:2], pool["image"].tolist()[:2], max_new_tokens=4)  # warm-up
        # Alternate the two in each round (the machine is shared): medians and the median ratio.
        rounds = [(timed(k_calls), timed(batched)) for _ in range(args.repeats)]
    t_base = statistics.median(r[0] for r in rounds)
    t_batched = statistics.median(r[1] for r in rounds)
    ratio = statistics.median(r[0] / r[1] for r in rounds)
    n = len(pool)
    print(f"prompts: {n}, K: {args.k}, max_new_tokens: {args.max_new_tokens}, batch size: {args.batch_size}")
    print(f"model: {args.model or 'tiny (TinyDims defaults, built offline)'}")
    for name, t in (
        ("K separate calls (baseline)", t_base),
        ("one batched generate, K per prompt", t_batched),
    ):
        print(f"{name}: {t:.2f} s ({n / t:.1f} prompts/s)")
    print(f"speed-up (median of per-round ratios, {args.repeats} rounds): {ratio:.2f}x")
    for name, frame in out.items():
        print(
            f"{name}: scored prompts {int(frame['quality'].notna().sum())}/{n}, "
            f"mean instability {frame['instability'].mean():.3f}"
        )


if __name__ == "__main__":
    main()
