"""Step time of 1 vs N training processes at the same global batch (ratio), SFT and plain GRPO,
per strategy (DDP, FSDP2, DeepSpeed ZeRO-3).

Runs the real ``safervlm sft|grpo`` console script once as 1 process (DDP: the baseline, run in
the same script) with per-device batch N·b and once per strategy under ``torchrun --standalone
--nproc_per_node N`` with batch b (gloo on CPU, NCCL on GPUs), on the tiny policy and the
embedded fixtures' training records, and reads ``train_runtime`` and the step count from each
run's ``train_log.json``. The ratio is N-process step time / 1-process step time (< 1: the extra
processes pay off). On CPU each process gets an equal share of the cores as OMP threads; runs are
repeated, interleaved, and the fastest of each configuration is kept. Usage::

    .venv/bin/python bench/train_processes.py [--steps 6] [--batch 8] --out bench/results/x.json
    # the GPU command (8 GPUs of one node): one process per GPU, every strategy
    .venv/bin/python bench/train_processes.py --processes 8 --batch 64 --strategies ddp,fsdp,zero3 \
        --out bench/results/train_processes_8gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from safervlm.embedded import world
from safervlm.embedded.fixtures import build_fixtures
from safervlm.embedded.tiny import TinyDims, build_tiny_model
from safervlm.io import write_parquet
from safervlm.schema import POOL_EXTRA, SAMPLE_COLUMNS
from safervlm.sources import load_source

BIN = Path(sys.executable).parent


def _inputs(root: Path) -> tuple[Path, Path]:
    texts = [world.response_for(t) for t in world.all_tasks()]
    texts += [tpl.format(task=t.text) for t in world.all_tasks() for tpl in world.TRAIN_TEMPLATES]
    dims = TinyDims(vocab_size=600, hidden_size=64, intermediate_size=128)
    build_tiny_model(root / "tiny", texts, seed=0, dims=dims)
    build_fixtures(root / "fx", seed=0, n_per_benchmark=4, n_train_per_source=64)
    rows = load_source("vlguard_train", root / "fx" / "train" / "vlguard")
    write_parquet(pd.DataFrame(rows, columns=SAMPLE_COLUMNS + POOL_EXTRA), root / "train.parquet")
    return root / "tiny", root / "train.parquet"


ZERO3 = Path(__file__).resolve().parents[1] / "config" / "deepspeed" / "zero3.json"
STRATEGY_KEYS: dict[str, dict[str, Any]] = {
    "ddp": {},
    "fsdp": {"strategy": "fsdp"},
    "zero3": {"strategy": "deepspeed", "deepspeed": str(ZERO3)},
}


def _run(
    nproc: int, stage: str, params: dict[str, Any], out: Path, model: Path, data: Path
) -> dict[str, float]:
    launcher = [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    cmd = [*launcher, str(BIN / "safervlm"), stage, "--model", str(model), "--data", str(data)]
    cmd += ["--out", str(out), "--params", json.dumps(params)]
    env = {
        **os.environ,
        "SAFERVLM_MLFLOW": "0",
        "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // nproc)),
    }
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)}\nfailed ({done.returncode}):\n{done.stderr[-4000:]}")
    wall = time.perf_counter() - t0
    history = json.loads((out / "train_log.json").read_text())["log_history"]
    summary = next(h for h in history if "train_runtime" in h)
    steps = max(h["step"] for h in history)
    return {"steps": steps, "train_runtime_s": summary["train_runtime"],
            "step_s": summary["train_runtime"] / steps, "wall_s": wall}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per run")
    ap.add_argument("--batch", type=int, default=8, help="global batch (rows per step)")
    ap.add_argument("--processes", type=int, default=2, help="N: processes of the multi-process runs")
    ap.add_argument("--strategies", default="ddp,fsdp", help=f"comma-separated, of {sorted(STRATEGY_KEYS)}")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each; the fastest is kept")
    ap.add_argument("--out", required=True, help="JSON results file")
    a = ap.parse_args()
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "batch": a.batch,
        "processes": a.processes,
        "repeats": a.repeats,
    }
    strategies = a.strategies.split(",")
    unknown = set(strategies) - set(STRATEGY_KEYS)
    if unknown:
        ap.error(f"unknown strategies {sorted(unknown)}; known: {sorted(STRATEGY_KEYS)}")
    with tempfile.TemporaryDirectory(prefix="bench-procs-") as tmp:
        root = Path(tmp)
        model, data = _inputs(root)
        n_records = len(pd.read_parquet(data))
        stages = {
            "sft": {"epochs": a.steps * a.batch / n_records, "warmup_steps": 0},
            "grpo_plain": {
                "max_steps": a.steps,
                "num_generations": 4,
                "max_completion_length": 16,
                "safety_aware": False,
            },  # fmt: skip
        }
        for name, params in stages.items():
            stage = name.split("_")[0]
            n = a.processes
            runs: dict[str, list[dict[str, float]]] = {}
            # Interleaved repeats, the fastest of each kept: a shared machine's load and the
            # first run's cold caches hit every configuration alike.
            for r in range(a.repeats):
                one_keys = {**params, "batch_size": a.batch}
                runs.setdefault("1_process", []).append(
                    _run(1, stage, one_keys, root / f"{name}-1-{r}", model, data)
                )
                for strategy in strategies:
                    keys = {**params, **STRATEGY_KEYS[strategy], "batch_size": a.batch // n}
                    out = root / f"{name}-{strategy}-{n}-{r}"
                    runs.setdefault(f"{n}_processes_{strategy}", []).append(
                        _run(n, stage, keys, out, model, data)
                    )
            best = {k: min(v, key=lambda run: run["step_s"]) for k, v in runs.items()}
            one = best["1_process"]["step_s"]
            results[name] = {k: {**v, "ratio_n_over_1": v["step_s"] / one} for k, v in best.items()}
            ddp = best.get(f"{n}_processes_ddp")
            for k, v in results[name].items():  # strategies against DDP at the same process count
                if ddp and k.startswith(f"{n}_processes_"):
                    v["ratio_vs_ddp"] = v["step_s"] / ddp["step_s"]
            print(name, json.dumps(results[name]))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
