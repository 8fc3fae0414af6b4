"""Two processes (torchrun, gloo on CPU) train what one process trains at twice the batch.

Each test runs the real ``safervlm sft|grpo`` entry point through ``equivalence_probe.py``
(which records per rank; see its docstring) once as 1 process with per-device batch 2b and
once under ``torchrun --standalone --nproc_per_node 2`` with per-device batch b, on the same
data and seed, and compares:

- exact: world size 2 over gloo and ``accelerator.num_processes == 2`` on both ranks; the rows
  of every step (SFT: examples; GRPO: dataset ids, rank 0's rows then rank 1's are the 1-process
  batch); every GRPO group in one process; the GRPO completions token for token, the mean
  reward per step and the corrections per step (rank 0 + rank 1 = 1 process); both ranks'
  final weights (DDP keeps replicas bit-identical);
- within tolerance: losses and weights. Sources of difference, all floating point: the
  gradient is reduced in another order (the 2-process gradient is the gloo all-reduce of two
  half-batch gradients); each rank pads its half-batch to its own longest row, so attention
  and the matmuls run on other shapes. The first step's losses agree to ~1e-6 (SFT: 5e-7 of
  6.4); AdamW then turns a gradient entry near zero into a step of up to ``lr`` whatever its
  size and sign, so a weight may differ by up to ``2 * lr`` per step: the weights are compared
  as the relative L2 distance to the 1-process update (measured: SFT 0.2%, GRPO 3-7%), and per
  entry against ``2 * steps * lr`` (measured: SFT 1.4e-3 at lr 3e-3; GRPO 2.8-3.0e-3 at lr 1e-3).

Sampling is made layout-independent by the probe (Gumbel-max keyed by each row's tokens):
TRL seeds every process differently (``set_seed(seed, device_specific=True)``) and HF
``generate`` draws one random stream per batch, so in a real 2-process run the completions,
hence rewards, corrections and weights, differ from a 1-process run by sampling noise, not
by a bug; the probe removes that one source so the rest can be compared.

TRL averages ``_log_metric`` values over processes, so in the logs ``rollout/corrected`` of a
2-process run is the per-process mean (half the step's total here); the rollout's own
history per rank carries the counts.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from safervlm.embedded.fixtures import build_fixtures
from safervlm.io import write_parquet
from safervlm.schema import POOL_EXTRA, SAMPLE_COLUMNS
from safervlm.sources import load_source

PROBE = Path(__file__).with_name("equivalence_probe.py")
DEEPSPEED = Path(__file__).resolve().parents[1] / "config" / "deepspeed"
STRATEGY_KEYS: dict[str, dict[str, str]] = {
    "ddp": {},
    "fsdp": {"strategy": "fsdp"},
    "zero2": {"strategy": "deepspeed", "deepspeed": str(DEEPSPEED / "zero2.json")},
    "zero3": {"strategy": "deepspeed", "deepspeed": str(DEEPSPEED / "zero3.json")},
}
BIN = Path(sys.executable).parent
FIRST_LOSS_TOL = 1e-5  # same batch, same weights: float reduction order and padding only
REL_WEIGHT_TOL = 0.15  # ||w_2proc - w_1proc|| / ||w_1proc - w_initial|| (measured 0.002-0.07)


@pytest.fixture(scope="module")
def train_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("equivalence")
    build_fixtures(root / "fx", seed=0, n_per_benchmark=4, n_train_per_source=16)
    rows = load_source("vlguard_train", root / "fx" / "train" / "vlguard")
    df = pd.DataFrame(rows, columns=SAMPLE_COLUMNS + POOL_EXTRA)
    assert df["question"].is_unique  # the probe's sampling keys rows by their tokens
    path = root / "train.parquet"
    write_parquet(df, path)
    return path


def _launch(nproc: int, record: Path, args: list[str], **env: str) -> list[dict[str, Any]]:
    """Run the probe (1 process, or torchrun with ``nproc``); the per-rank records."""
    torchrun = [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={nproc}"]
    cmd = [*(torchrun if nproc > 1 else [sys.executable]), str(PROBE), str(record), "--", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SAFERVLM_MLFLOW": "0", **env}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads((record / f"rank{r}.json").read_text()) for r in range(nproc)]
    for r, rec in enumerate(records):
        assert (rec["rank"], rec["world_size"], rec["num_processes"]) == (r, nproc, nproc)
        assert rec["backend"] == ("gloo" if nproc > 1 else None)
    return records


def _run_pair(
    tmp: Path, stage: str, params: dict[str, Any], b: int, extra: list[str], strategy: str = "ddp"
) -> tuple[Any, Any]:
    """(1-process record, 2-process records under ``strategy``) for ``stage`` at global batch ``2b``."""
    runs = {}
    for nproc, batch in ((1, 2 * b), (2, b)):
        keys = {**params, "batch_size": batch, **(STRATEGY_KEYS[strategy] if nproc == 2 else {})}
        args = [stage, "--params", json.dumps(keys), "--out", str(tmp / f"out{nproc}"), *extra]
        runs[nproc] = _launch(nproc, tmp / f"rec{nproc}", args, DS_ACCELERATOR="cpu")
    for rec in runs[2]:
        want = {"ddp": "MULTI_CPU", "fsdp": "FSDP"}.get(strategy, "DEEPSPEED")
        assert rec["distributed_type"] == f"DistributedType.{want}", rec["distributed_type"]
    return runs[1][0], runs[2]


def _history(rec: dict[str, Any], key: str) -> list[float]:
    return [h[key] for h in rec["log_history"] if key in h and "train_runtime" not in h]


def _check_weights(tmp: Path, steps: int, lr: float) -> dict[str, float]:
    """Both ranks equal; 2 processes within tolerance of 1 process. The measured distances."""
    one, r0, r1 = (load_file(tmp / f) for f in ("rec1/rank0.safetensors", "rec2/rank0.safetensors",
                                                 "rec2/rank1.safetensors"))  # fmt: skip
    init = load_file(tmp / "rec1/initial.safetensors")
    assert all(torch.equal(r0[k], r1[k]) for k in r0), "the ranks' (gathered) weights differ"
    diff = torch.cat([(one[k] - r0[k]).flatten() for k in one])
    update = torch.cat([(one[k] - init[k]).flatten() for k in one])
    rel = float(diff.norm() / update.norm())
    max_abs = float(diff.abs().max())
    print(f"weights vs 1 process: relative L2 {rel:.2e}, max abs {max_abs:.2e}")  # pytest -s: the figures
    assert rel < REL_WEIGHT_TOL, rel
    assert max_abs <= 2 * steps * lr, max_abs  # each run's AdamW step is at most lr, either sign
    return {"relative_l2": rel, "max_abs": max_abs}


@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "zero2", "zero3"])
def test_sft_two_processes_match_one(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path, strategy: str
) -> None:
    """16 examples, global batch 8: 2 steps; 1 process at batch 8 vs 2 at batch 4 (DDP, or
    FSDP2 with every parameter sharded over the two processes)."""
    params = {"epochs": 1, "warmup_steps": 0, "learning_rate": 3e-3}
    extra = ["--model", str(tiny_model_dir), "--data", str(train_parquet)]
    one, (r0, r1) = _run_pair(tmp_path, "sft", params, 4, extra, strategy)
    assert len(one["steps"]) == 2
    assert one["steps"] == [a + b for a, b in zip(r0["steps"], r1["steps"], strict=True)]
    loss1, loss2 = _history(one, "loss"), _history(r0, "loss")
    assert len(loss1) == len(loss2) == 2
    assert abs(loss1[0] - loss2[0]) < FIRST_LOSS_TOL
    assert all(math.isclose(a, b, rel_tol=1e-3) for a, b in zip(loss1, loss2, strict=True))
    _check_weights(tmp_path, 2, params["learning_rate"])


@pytest.mark.parametrize(
    ("safety_aware", "strategy"),
    [(False, "ddp"), (True, "ddp"), (True, "fsdp"), (True, "zero3")],
    ids=["plain-ddp", "safety_aware-ddp", "safety_aware-fsdp", "safety_aware-zero3"],
)
def test_grpo_two_processes_match_one(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path, safety_aware: bool, strategy: str
) -> None:
    """Groups of 4, global batch 8 (two groups): 1 process at batch 8 vs 2 at batch 4, 2 steps."""
    g, lr = 4, 1e-3
    params = {
        "max_steps": 2,
        "num_generations": g,
        "max_completion_length": 8,
        "reflection_max_tokens": 4,
        "learning_rate": lr,
        "safety_aware": safety_aware,
    }
    extra = ["--model", str(tiny_model_dir), "--data", str(train_parquet), "--judge", "content_hash"]
    one, (r0, r1) = _run_pair(tmp_path, "grpo", params, g, extra, strategy)
    # Same prompts per step; each rank's rows are whole groups (one prompt id per group of g).
    assert len(one["generation_ids"]) == 2
    assert one["generation_ids"] == [
        a + b for a, b in zip(r0["generation_ids"], r1["generation_ids"], strict=True)
    ]
    for rank in (r0, r1):
        for ids in rank["generation_ids"]:
            assert len(ids) % g == 0
            groups = [ids[i : i + g] for i in range(0, len(ids), g)]
            assert all(len(set(grp)) == 1 for grp in groups), ids
    # Same completions (probe's keyed sampling), hence the same rewards and corrections.
    assert one["completions"] == [a + b for a, b in zip(r0["completions"], r1["completions"], strict=True)]
    assert _history(one, "reward") == _history(r0, "reward")
    if safety_aware:
        per_step = [h["rollout/corrected"] for h in one["rollout"]]
        split = [
            a["rollout/corrected"] + b["rollout/corrected"]
            for a, b in zip(r0["rollout"], r1["rollout"], strict=True)
        ]
        assert per_step == split and sum(per_step) > 0, (per_step, split)
    loss1, loss2 = _history(one, "loss"), _history(r0, "loss")
    assert len(loss1) == len(loss2) == 2
    # GRPO's loss is ~0 at the first step (advantages sum to 0 per group): absolute tolerance.
    assert all(abs(a - b) < FIRST_LOSS_TOL for a, b in zip(loss1, loss2, strict=True))
    _check_weights(tmp_path, 2, lr)


@pytest.mark.parametrize(
    ("strategy", "mode"),
    [("zero3", "two_passes"), ("zero3", "one_continuation"), ("fsdp", "two_passes")],
)
def test_sharded_rollout_generates_with_gathered_parameters(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path, repo_root: Path, strategy: str, mode: str
) -> None:
    """ZeRO-3 on DeepSpeed's CPU accelerator, or FSDP2, over gloo: every parameter is sharded,
    the critique and correction passes gather them (ZeRO-3: ``gather_deepspeed3_params``; FSDP2:
    its forward hooks), and a process without an unsafe row joins the others' passes instead of
    leaving them waiting in the gather."""
    keys: dict[str, Any] = {"strategy": "fsdp"}
    if strategy == "zero3":
        pytest.importorskip("deepspeed")
        keys = {"strategy": "deepspeed", "deepspeed": str(repo_root / "config" / "deepspeed" / "zero3.json")}
    params = {
        "max_steps": 2,
        "batch_size": 4,
        "num_generations": 4,
        "max_completion_length": 8,
        "reflection_max_tokens": 4,
        "learning_rate": 1e-3,
        "critique_and_correction": mode,
        **keys,
    }
    args = ["grpo", "--params", json.dumps(params), "--out", str(tmp_path / "out"), "--judge", "content_hash"]
    args += ["--model", str(tiny_model_dir), "--data", str(train_parquet)]
    # Rank 1 judges every sample safe: it never has an unsafe row (the case that used to hang).
    r0, r1 = _launch(2, tmp_path / "rec", args, DS_ACCELERATOR="cpu", SAFERVLM_PROBE_ALL_SAFE_RANK="1")
    for rec in (r0, r1):
        kind = "DEEPSPEED" if strategy == "zero3" else "FSDP"
        assert rec["distributed_type"] == f"DistributedType.{kind}"
        assert rec["sharded"] == rec["n_parameters"] > 0
    corrected = [[h["rollout/corrected"] for h in rec["rollout"]] for rec in (r0, r1)]
    assert sum(corrected[0]) > 0 and sum(corrected[1]) == 0, corrected
    assert _history(r0, "loss") == _history(r1, "loss") and len(_history(r0, "loss")) == 2
