"""Step time of safety-aware vs plain GRPO at the same batch and a 25% unsafe rate.

Both runs use the real ``run_grpo`` (TRL ``GRPOTrainer``) with the same policy, prompts,
batch, group size and lengths. The judge is the reference judge with its safety scores
overridden so that exactly every fourth record of each call is unsafe: the safety-aware
rollout then reflects on and corrects 25% of the rows (the other scores, hence the reward,
stay the reference judge's). Step time is measured between ``on_step_begin`` and
``on_step_end`` as wall time and as the process's CPU time (all threads; robust to other
jobs on a shared machine); the first ``--warmup`` steps are dropped and medians reported.
The two variants alternate ``--repeats`` times to spread machine noise. Usage::

    .venv/bin/python bench/grpo_step.py --model results/checkpoints/sft \\
        --data results/data/qi_safe.parquet [--steps 8] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from safervlm.config import GRPOParams
from safervlm.judge import Judgment, register_judge
from safervlm.judge.reference import ReferenceJudge
from safervlm.train import grpo as grpo_module

UNSAFE_EVERY = 4  # every 4th record unsafe: a 25% unsafe rate


@register_judge("quarter_unsafe")
class QuarterUnsafeJudge(ReferenceJudge):
    """The reference judge with safety forced to 0 on every 4th record and 1 elsewhere."""

    name = "quarter_unsafe"

    def judge(self, records: list[dict[str, Any]]) -> list[Judgment]:
        out = super().judge(records)
        for i, jd in enumerate(out):
            s = 0.0 if i % UNSAFE_EVERY == 0 else 1.0
            jd.scores.update(safety=s, reasoning_safety=s, answer_safety=s)
            jd.unscored_reason = ""
        return out


class StepTimer(TrainerCallback):
    """Wall time and process CPU time (all threads) of each optimizer step."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []
        self._t0 = (0.0, 0.0)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._t0 = (time.perf_counter(), time.process_time())

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.times.append((time.perf_counter() - self._t0[0], time.process_time() - self._t0[1]))


def run_once(model: str, data: str, params: GRPOParams) -> tuple[list[tuple[float, float]], dict[str, Any]]:
    timer = StepTimer()
    original = grpo_module.SafetyAwareGRPOTrainer.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), timer]
        original(self, *args, **kwargs)

    grpo_module.SafetyAwareGRPOTrainer.__init__ = init  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            metrics = grpo_module.run_grpo(model, data, f"{tmp}/out", params, judge_name="quarter_unsafe")
    finally:
        grpo_module.SafetyAwareGRPOTrainer.__init__ = original  # type: ignore[method-assign]
    return timer.times, metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--num-generations", type=int, default=4)
    ap.add_argument("--max-completion-length", type=int, default=48)
    ap.add_argument("--reflection-max-tokens", type=int, default=32)
    ap.add_argument("--json", default=None, help="write the results here too")
    a = ap.parse_args()
    os.environ.setdefault("SAFERVLM_MLFLOW", "0")
    logging.basicConfig(level=logging.WARNING)
    base = {
        "max_steps": a.steps,
        "batch_size": a.batch_size,
        "num_generations": a.num_generations,
        "max_completion_length": a.max_completion_length,
        "reflection_max_tokens": a.reflection_max_tokens,
        "save_steps": 10_000,
    }
    times: dict[str, list[tuple[float, float]]] = {"plain": [], "safety_aware": []}
    rates: list[float] = []
    for _ in range(a.repeats):
        for variant in ("plain", "safety_aware"):
            params = GRPOParams(**base, safety_aware=variant == "safety_aware")  # type: ignore[arg-type]
            t, metrics = run_once(a.model, a.data, params)
            times[variant] += t[a.warmup :]
            if variant == "safety_aware":
                rates.append(metrics.get("mean_unsafe_rate", float("nan")))
    wall = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    result = {
        "config": base,
        "steps_timed_per_variant": len(times["plain"]),
        "median_step_wall_s": wall,
        "median_step_cpu_s": cpu,
        "ratio_wall": wall["safety_aware"] / wall["plain"],
        "ratio_cpu": cpu["safety_aware"] / cpu["plain"],
        "unsafe_rate": statistics.mean(rates),
        "all_steps": times,
    }
    print(json.dumps(result, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
