"""Step time of safety-aware vs plain GRPO at the same batch and a 25% unsafe rate.

Variants (``--variants``, run interleaved in each repeat): ``plain``, ``safety_aware`` (critique
and correction as two passes, the reference) and ``one_continuation``
(``critique_and_correction: one_continuation``), and ``plain_compiled`` / ``compiled`` (plain /
safety-aware with ``grpo.cache_implementation: static`` and ``grpo.compile``: decoding with a
compiled forward; put the two compilations in ``--warmup``); each at every ``--steps-per-generation``
value (1 = one generation batch per optimizer step, the default; k > 1 = one generation batch
of k steps' rows, reused for k steps). Ratios are against ``plain`` at the same value, on mean
step times (with k > 1 only every k-th step generates, so the median would hide it).
Generated tokens (every ``generate`` call's new non-padding tokens: samples, critiques,
bridges, corrections) are counted per step.

Both runs use the real ``run_grpo`` (TRL ``GRPOTrainer``) with the same policy, prompts,
batch, group size and lengths. The judge is the reference judge with its safety scores
overridden so that exactly every fourth record of each call is unsafe: the safety-aware
rollout then reflects on and corrects 25% of the rows (the other scores, hence the reward,
stay the reference judge's). Step time is measured between ``on_step_begin`` and
``on_step_end`` as wall time and as the process's CPU time (all threads; robust to other
jobs on a shared machine); the first ``--warmup`` steps are dropped and medians reported.
The two variants alternate ``--repeats`` times to spread machine noise. Per step it also
reports tokens (prompt + completion, TRL's ``num_tokens``) per second and, on a GPU, the
peak memory of the run. Usage::

    # the embedded default's SFT checkpoint on CPU
    .venv/bin/python bench/grpo_step.py --model results/checkpoints/sft \\
        --data results/data/qi_safe.parquet [--steps 8] [--batch-size 16]
    # a Qwen2.5-VL-3B-shaped policy with random weights on one GPU, full and LoRA
    python bench/grpo_step.py --shape qwen2.5-vl-3b --data qi_safe.parquet --lora both \\
        --max-completion-length 128 --reflection-max-tokens 64
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationMixin, TrainerCallback

from safervlm.config import GRPOParams
from safervlm.embedded.tiny import SHAPES, build_tiny_model
from safervlm.io import read_parquet
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


GENERATED = [0]  # new non-padding tokens of every generate call since the last step boundary
_generate = GenerationMixin.generate


def _counting_generate(self: Any, *args: Any, **kwargs: Any) -> Any:
    out = _generate(self, *args, **kwargs)
    prompt = kwargs.get("input_ids", args[0] if args else None)
    if isinstance(out, torch.Tensor) and prompt is not None:
        pad_id = self.generation_config.pad_token_id
        GENERATED[0] += int((out[:, prompt.shape[1] :] != pad_id).sum())
    return out


GenerationMixin.generate = _counting_generate  # type: ignore[method-assign]


class StepTimer(TrainerCallback):
    """Wall and process CPU time of each optimizer step, its tokens, and the run's peak GPU memory."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []
        self.tokens: list[float] = []  # prompt + completion tokens of each step (TRL's num_tokens)
        self.completion_tokens: list[float] = []
        self.generated: list[int] = []  # tokens generated in each step (every generate call)
        self.phases: dict[str, list[float]] = {}  # rollout/<phase>_s per step (safety-aware only)
        self.peak_gb = float("nan")
        self._t0 = (0.0, 0.0)
        self._seen_tokens = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        _sync()
        GENERATED[0] = 0
        self._t0 = (time.perf_counter(), time.process_time())

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        _sync()
        self.times.append((time.perf_counter() - self._t0[0], time.process_time() - self._t0[1]))
        self.generated.append(GENERATED[0])

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if logs and "num_tokens" in logs:
            self.tokens.append(logs["num_tokens"] - self._seen_tokens)
            self._seen_tokens = logs["num_tokens"]
            rows = args.per_device_train_batch_size * args.gradient_accumulation_steps
            self.completion_tokens.append(logs.get("completions/mean_length", float("nan")) * rows)
            for key, value in logs.items():
                if key.startswith("rollout/") and key.endswith("_s"):
                    self.phases.setdefault(key.removeprefix("rollout/"), []).append(value)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if torch.cuda.is_available():
            self.peak_gb = torch.cuda.max_memory_allocated() / 2**30


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_once(model: str, data: str, params: GRPOParams) -> tuple[StepTimer, dict[str, Any]]:
    timer = StepTimer()
    if params.compile:
        torch._dynamo.reset()  # each run compiles afresh (as a training process would), never past
        # dynamo's recompile limit, after which it would silently decode in eager mode
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
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return timer, metrics


def build_shape(name: str, data: str, out: str) -> int:
    """A policy of the named shape with random weights (on the GPU in bf16 when there is one)."""
    texts = read_parquet(data, required=["question"])["question"].tolist()
    cuda = torch.cuda.is_available()
    return build_tiny_model(
        out,
        texts,
        dims=SHAPES[name],
        device="cuda" if cuda else "cpu",
        dtype="bfloat16" if cuda else "float32",
    )


def summarize(timers: list[StepTimer], warmup: int) -> dict[str, float]:
    """Medians over the timed steps (first ``warmup`` of each run dropped) of one variant."""
    times = [t for tm in timers for t in tm.times[warmup:]]
    tokens = [t for tm in timers for t in tm.tokens[warmup:]]
    completion = [t for tm in timers for t in tm.completion_tokens[warmup:]]
    wall = statistics.median(w for w, _ in times)
    generated = [g for tm in timers for g in tm.generated[warmup:]]
    return {
        "steps_timed": len(times),
        "step_wall_s": wall,
        "step_cpu_s": statistics.median(c for _, c in times),
        "step_wall_mean_s": statistics.mean(w for w, _ in times),
        "step_cpu_mean_s": statistics.mean(c for _, c in times),
        "generated_tokens_per_step": statistics.mean(generated),
        "generated_tokens_per_s": sum(generated) / sum(w for w, _ in times),
        "tokens_per_step": statistics.median(tokens) if tokens else float("nan"),
        "tokens_per_s": statistics.median(tokens) / wall if tokens else float("nan"),
        "completion_tokens_per_s": statistics.median(completion) / wall if completion else float("nan"),
        "peak_gpu_gb": max(tm.peak_gb for tm in timers),
        **{
            f"median_{phase}": statistics.median(v)
            for phase in sorted({p for tm in timers for p in tm.phases})
            if (v := [x for tm in timers for x in tm.phases.get(phase, [])[warmup:]])
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a policy folder (e.g. results/checkpoints/sft)")
    src.add_argument("--shape", choices=sorted(SHAPES), help="build a random-weight policy of this shape")
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--num-generations", type=int, default=4)
    ap.add_argument("--max-completion-length", type=int, default=48)
    ap.add_argument("--reflection-max-tokens", type=int, default=32)
    ap.add_argument("--lora", choices=["off", "on", "both"], default="off")
    ap.add_argument("--dtype", default=None, help="policy dtype (default: bfloat16 on a GPU, else float32)")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--json", default=None, help="write the results here too")
    ap.add_argument("--variants", default="plain,safety_aware,one_continuation")
    ap.add_argument("--steps-per-generation", default="1", help="comma-separated values, e.g. 1,4")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)  # on a shared CPU, fewer threads spin less against other jobs
    os.environ.setdefault("SAFERVLM_MLFLOW", "0")
    logging.basicConfig(level=logging.WARNING)
    cuda = torch.cuda.is_available()
    base: dict[str, Any] = {
        "max_steps": a.steps,
        "batch_size": a.batch_size,
        "num_generations": a.num_generations,
        "max_completion_length": a.max_completion_length,
        "reflection_max_tokens": a.reflection_max_tokens,
        "save_steps": 10_000,
        "learning_rate": 1e-6,
        "dtype": a.dtype or ("bfloat16" if cuda else "float32"),
        "gradient_checkpointing": a.gradient_checkpointing,
    }
    device = torch.cuda.get_device_name() if cuda else "cpu"
    result: dict[str, Any] = {"config": base, "device": device, "shape": a.shape, "model": a.model}
    result["torch_threads"] = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="grpo-bench-") as tmp:
        model = a.model
        if a.shape:
            model = f"{tmp}/policy"
            t0 = time.perf_counter()
            result["parameters"] = build_shape(a.shape, a.data, model)
            result["build_s"] = time.perf_counter() - t0
        variants = a.variants.split(",")
        spgs = [int(k) for k in a.steps_per_generation.split(",")]
        result["load_before"] = os.getloadavg()
        for lora in {"off": [False], "on": [True], "both": [False, True]}[a.lora]:
            timers: dict[str, list[StepTimer]] = {}
            rates: dict[str, list[float]] = {}
            for _ in range(a.repeats):
                for spg in spgs:
                    for variant in variants:
                        name = f"{variant}@spg{spg}"
                        compiled = variant in ("plain_compiled", "compiled")
                        params = GRPOParams(
                            **base,
                            lora=lora,
                            safety_aware=variant not in ("plain", "plain_compiled"),
                            steps_per_generation=spg,
                            critique_and_correction=(
                                "one_continuation" if variant == "one_continuation" else "two_passes"
                            ),
                            cache_implementation="static" if compiled else "dynamic",
                            compile=compiled,
                        )
                        timer, metrics = run_once(model, a.data, params)
                        timers.setdefault(name, []).append(timer)
                        rates.setdefault(name, []).append(metrics.get("mean_unsafe_rate", float("nan")))
            summary = {k: summarize(v, a.warmup) for k, v in timers.items()}
            ratios = {
                name: {
                    "ratio_wall_mean": s["step_wall_mean_s"] / summary[f"plain@{at}"]["step_wall_mean_s"],
                    "ratio_cpu_mean": s["step_cpu_mean_s"] / summary[f"plain@{at}"]["step_cpu_mean_s"],
                    "ratio_wall_median": s["step_wall_s"] / summary[f"plain@{at}"]["step_wall_s"],
                    "ratio_cpu_median": s["step_cpu_s"] / summary[f"plain@{at}"]["step_cpu_s"],
                    "unsafe_rate": statistics.mean(rates[name]),
                }
                for name, s in summary.items()
                if (at := name.split("@")[1]) and f"plain@{at}" in summary
            }
            result["lora" if lora else "full"] = {
                **summary,
                "ratios_vs_plain": ratios,
                "all_steps": {k: [tm.times for tm in v] for k, v in timers.items()},
            }
            result["load_after"] = os.getloadavg()
            print(json.dumps({k: v for k, v in result.items()}, indent=2, default=str), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
