"""Step time of 1 vs 2 training processes at the same global batch (ratio), SFT and plain GRPO.

Runs the real ``safervlm sft|grpo`` console script once as 1 process with per-device batch 2b
and once under ``torchrun --standalone --nproc_per_node 2`` with batch b (DDP over gloo on CPU,
NCCL on GPUs), on the tiny policy and the embedded fixtures' training records, and reads
``train_runtime`` and the step count from each run's ``train_log.json``. The ratio is
2-process step time / 1-process step time (< 1: the second process pays off). Each process gets
``--threads`` OMP threads (1 by default: on a shared machine more threads than free cores make
the timings meaningless). Usage::

    .venv/bin/python bench/train_processes.py [--steps 6] [--batch 8] --out bench/results/x.json
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


def _run(
    nproc: int, stage: str, params: dict[str, Any], out: Path, model: Path, data: Path, threads: int
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
    subprocess.run(cmd, env=env, check=True, capture_output=True)
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
    ap.add_argument("--threads", type=int, default=1, help="OMP threads per process (same in both runs)")
    ap.add_argument("--out", required=True, help="JSON results file")
    a = ap.parse_args()
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "batch": a.batch,
        "threads_per_process": a.threads,
    }
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
            runs = {
                n: _run(
                    n,
                    stage,
                    {**params, "batch_size": a.batch // n},
                    root / f"{name}{n}",
                    model,
                    data,
                    a.threads,
                )
                for n in (1, 2)
            }
            results[name] = {"1_process": runs[1], "2_processes": runs[2],
                             "ratio_2_over_1": runs[2]["step_s"] / runs[1]["step_s"]}  # fmt: skip
            print(name, json.dumps(results[name]))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
