"""Resumable GRPO: a run killed with SIGKILL resumes from its last checkpoint and, on CPU with
a fixed seed, ends exactly where an uninterrupted run ends; a changed config starts afresh."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from helpers import ROOT, snakemake, snakemake_command, vlguard_train_parquet
from safetensors.torch import load_file

from safervlm.io import write_json
from safervlm.train.resume import MARKER, last_checkpoint, run_state_dir

PARAMS = {
    "max_steps": 6,
    "batch_size": 4,
    "num_generations": 2,
    "max_completion_length": 8,
    "reflection_max_tokens": 4,
    "save_steps": 1,
}


@pytest.fixture(scope="module")
def train_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vlguard_train_parquet(tmp_path_factory.mktemp("resume"))


def _cmd(model: Path, data: Path, out: Path, state: Path) -> list[str]:
    return [
        sys.executable, "-m", "safervlm.cli", "grpo", "--model", str(model), "--data", str(data),
        "--out", str(out), "--params", json.dumps(PARAMS), "--seed", "0", "--state-dir", str(state),
    ]  # fmt: skip


def _marker_step(state: Path) -> int:
    steps = [json.loads(m.read_text())["step"] for m in state.glob(f"*/{MARKER}") if m.stat().st_size]
    return max(steps, default=0)


def _history(out: Path) -> list[dict[str, float]]:
    log = json.loads((out / "train_log.json").read_text())
    return [h for h in log["log_history"] if "reward" in h]


@pytest.mark.slow
def test_killed_grpo_resumes_and_matches_an_uninterrupted_run(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "SAFERVLM_MLFLOW": "0"}
    out, state = tmp_path / "grpo", tmp_path / "grpo.partial"
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(
            _cmd(tiny_model_dir, train_parquet, out, state), stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 600
        while _marker_step(state) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]
    killed_at = _marker_step(state)
    assert 2 <= killed_at < PARAMS["max_steps"] and not out.exists()

    second = subprocess.run(
        _cmd(tiny_model_dir, train_parquet, out, state), capture_output=True, text=True, env=env
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from {state}" in second.stderr and f"checkpoint-{killed_at}" in second.stderr
    metrics = json.loads((out / "train_log.json").read_text())["metrics"]
    assert metrics["resumed_from_step"] == killed_at and metrics["steps"] == PARAMS["max_steps"]
    assert not any(state.iterdir())  # a finished run removes its state

    ref_out = tmp_path / "ref"
    ref = subprocess.run(
        _cmd(tiny_model_dir, train_parquet, ref_out, tmp_path / "ref.partial"),
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert "starting from step 0" in ref.stderr
    resumed, uninterrupted = _history(out), _history(ref_out)
    assert [h["step"] for h in resumed] == [h["step"] for h in uninterrupted] == list(range(1, 7))
    for a, b in zip(resumed, uninterrupted, strict=True):
        for key in ("reward", "rollout/unsafe_rate", "reward_components/safety", "loss"):
            assert a.get(key) == pytest.approx(b.get(key), abs=1e-6), (key, a["step"])
    w1, w2 = load_file(out / "model.safetensors"), load_file(ref_out / "model.safetensors")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def _grpo_job(snakemake_proc: subprocess.Popen[str]) -> psutil.Process | None:
    """The `safervlm grpo` process Snakemake started for the grpo job, if it runs."""
    try:
        children = psutil.Process(snakemake_proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for child in children:
        try:
            cmdline = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "grpo" in cmdline and "--state-dir" in cmdline and "bash" not in Path(cmdline[0]).name:
            return child
    return None


@pytest.mark.slow
def test_grpo_job_killed_under_snakemake_resumes_when_snakemake_reruns_it(tmp_path: Path) -> None:
    """SIGKILL the grpo job Snakemake runs; Snakemake fails the job but keeps the run state
    (it lives outside the job's output); the rerun resumes from the last checkpoint and ends
    where a run from step 0 ends (same log history, same weights)."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["fixtures"].update(n_per_benchmark=4, n_train_per_source=16)
    cfg["curate"].update(k_samples=2, max_new_tokens=8, min_instability=0.0, target_size=None)
    cfg["sft"].update(epochs=1)
    cfg["grpo"].update(PARAMS)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    args = ["-d", str(tmp_path), "--cores", "2", "--configfile", str(tmp_path / "config.yaml")]
    target = "results/checkpoints/grpo"
    out, state = tmp_path / target, tmp_path / f"{target}.partial"
    up = snakemake(*args[:-2], "results/checkpoints/sft", *args[-2:])
    assert up.returncode == 0, (up.stdout + up.stderr)[-4000:]

    cmd, env = snakemake_command(*args[:-2], target, *args[-2:])
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + 600
        while _marker_step(state) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        job = _grpo_job(proc)
        assert job is not None, (tmp_path / "first.log").read_text()[-3000:]
        job.send_signal(signal.SIGKILL)
        proc.wait(timeout=300)
    first = (tmp_path / "first.log").read_text()
    killed_at = _marker_step(state)
    assert proc.returncode != 0 and "Error in rule grpo" in first, first[-3000:]
    assert 2 <= killed_at < PARAMS["max_steps"], killed_at
    assert not out.exists()  # Snakemake removed the failed job's output ...
    assert list(state.glob(f"*/checkpoint-{killed_at}"))  # ... and left the run state alone

    second = snakemake(*args[:-2], target, *args[-2:])
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    job_log = (tmp_path / "results" / "logs" / "grpo.log").read_text()
    assert "resuming from" in job_log and f"checkpoint-{killed_at}" in job_log, job_log[-3000:]
    metrics = json.loads((out / "train_log.json").read_text())["metrics"]
    assert metrics["resumed_from_step"] == killed_at and metrics["steps"] == PARAMS["max_steps"]
    resumed, resumed_weights = _history(out), load_file(out / "model.safetensors")

    # The same job from step 0 (Snakemake reruns it; the finished run left no state behind).
    third = snakemake(*args[:-2], "--forcerun", "grpo", target, *args[-2:])
    assert third.returncode == 0, (third.stdout + third.stderr)[-4000:]
    assert "starting from step 0" in (tmp_path / "results" / "logs" / "grpo.log").read_text()
    uninterrupted = _history(out)
    assert [h["step"] for h in resumed] == [h["step"] for h in uninterrupted] == list(range(1, 7))
    for a, b in zip(resumed, uninterrupted, strict=True):
        for key in ("reward", "rollout/unsafe_rate", "reward_components/safety", "loss"):
            assert a.get(key) == pytest.approx(b.get(key), abs=1e-6), (key, a["step"])
    final = load_file(out / "model.safetensors")
    assert all(torch.equal(resumed_weights[k], final[k]) for k in final)


def test_changed_config_does_not_resume_a_stale_run(tmp_path: Path) -> None:
    root = tmp_path / "grpo.partial"
    old = run_state_dir(root, {"params": {"learning_rate": 1e-4}})
    (old / "checkpoint-3").mkdir()
    write_json({"checkpoint": "checkpoint-3", "step": 3}, old / MARKER)
    assert last_checkpoint(run_state_dir(root, {"params": {"learning_rate": 1e-4}})) == str(
        old / "checkpoint-3"
    )
    new = run_state_dir(root, {"params": {"learning_rate": 5e-5}})
    assert not old.exists() and last_checkpoint(new) is None


def test_a_checkpoint_written_halfway_is_not_resumed(tmp_path: Path) -> None:
    state = run_state_dir(tmp_path, {"k": 1})
    for step in (2, 4):
        (state / f"checkpoint-{step}").mkdir()
    write_json({"checkpoint": "checkpoint-2", "step": 2}, state / MARKER)  # checkpoint-4 never finished
    assert last_checkpoint(state) == str(state / "checkpoint-2")
    assert not (state / "checkpoint-4").exists()
