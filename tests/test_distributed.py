"""Training with several processes on CPU, through the real launcher (workflow/scripts/train-launch):
`processes: 2` starts two processes over gloo; each sees a world of 2; the main process alone
writes the policy, its train log and the one MLflow run; a 2-process GRPO run killed after a
checkpoint resumes to the weights of an uninterrupted one; the judge cache takes N writers."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from helpers import BIN, ROOT, snakemake, vlguard_train_parquet
from safetensors.torch import load_file

from safervlm.judge.cache import JudgeCache
from safervlm.train.resume import MARKER

LAUNCH = ROOT / "workflow" / "scripts" / "train-launch"
PROCESSES = 2
GRPO = {
    "max_steps": 4,
    "batch_size": 4,  # per process: 8 completions a step over both processes
    "num_generations": 2,
    "max_completion_length": 8,
    "reflection_max_tokens": 4,
    "save_steps": 1,
}


@pytest.fixture(scope="module")
def train_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vlguard_train_parquet(tmp_path_factory.mktemp("distributed"))


def _env(**extra: str) -> dict[str, str]:
    """No GPU, no Slurm, no MLflow (unless ``extra`` turns it on), the venv's tools first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_", "MLFLOW_"))}
    env.update(PATH=f"{BIN}:{env['PATH']}", CUDA_VISIBLE_DEVICES="", SAFERVLM_MLFLOW="0")
    env.pop("SAFERVLM_LAUNCH_ECHO", None)
    return {**env, **extra}


def _launch(stage: str, *args: str) -> list[str]:
    return [str(LAUNCH), "--processes", str(PROCESSES), "safervlm", stage, *args]


def _grpo_cmd(model: Path, data: Path, out: Path, state: Path, strategy: str = "ddp") -> list[str]:
    return _launch(
        "grpo", "--model", str(model), "--data", str(data), "--out", str(out),
        "--params", json.dumps({**GRPO, "strategy": strategy}), "--seed", "0", "--state-dir", str(state),
    )  # fmt: skip


def _assert_world(log: str) -> None:
    """Each of the processes logged its rank in a world of ``PROCESSES``."""
    for rank in range(PROCESSES):
        assert f"training process {rank} of {PROCESSES} (MULTI_CPU)" in log, log[-3000:]


def _assert_complete(out: Path) -> dict[str, object]:
    """The output folder holds a loadable policy, its processor and the train log: its log."""
    from transformers import AutoConfig, AutoProcessor

    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_log.json"):
        assert (out / name).is_file(), (name, sorted(p.name for p in out.iterdir()))
    assert AutoConfig.from_pretrained(out) is not None and AutoProcessor.from_pretrained(out) is not None
    assert load_file(out / "model.safetensors")
    log: dict[str, object] = json.loads((out / "train_log.json").read_text())
    assert log["processes"] == PROCESSES
    return log


def _runs(uri: str, experiment: str) -> list[object]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else list(client.search_runs([exp.experiment_id]))


@pytest.mark.slow
def test_two_process_sft_writes_one_complete_policy_and_one_mlflow_run(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path
) -> None:
    uri, out = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "sft"
    env = _env(
        SAFERVLM_MLFLOW="1", MLFLOW_TRACKING_URI=uri, MLFLOW_EXPERIMENT_NAME="distributed",
        SAFERVLM_MLFLOW_ARTIFACTS=str(tmp_path / "artifacts"),
    )  # fmt: skip
    params = {"epochs": 1, "batch_size": 4, "warmup_steps": 0}
    cmd = _launch("sft", "--model", str(tiny_model_dir), "--data", str(train_parquet), "--out", str(out),
                  "--params", json.dumps(params), "--seed", "0")  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    _assert_world(r.stderr)
    log = _assert_complete(out)
    # 16 examples, 4 per process and step, 2 processes: 2 steps.
    assert log["metrics"]["steps"] == 2  # type: ignore[index]
    runs = _runs(uri, "distributed")
    assert len(runs) == 1 and runs[0].data.tags["stage"] == "sft"  # type: ignore[attr-defined]
    assert r.stderr.count("MLflow run") == 1


@pytest.fixture(scope="module", params=["ddp", "fsdp"])
def grpo_reference(
    request: pytest.FixtureRequest,
    tiny_model_dir: Path,
    train_parquet: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, str, str]:
    """An uninterrupted 2-process safety-aware GRPO run (DDP, or FSDP2 with its parameters
    sharded): its output folder, its log and the strategy."""
    strategy: str = request.param
    root = tmp_path_factory.mktemp(f"grpo2-{strategy}")
    out = root / "grpo"
    r = subprocess.run(
        _grpo_cmd(tiny_model_dir, train_parquet, out, root / "grpo.partial", strategy),
        capture_output=True, text=True, env=_env(), timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    if strategy == "fsdp":
        assert r.stderr.count("strategy check: {'strategy': 'fsdp', 'processes': 2, 'sharded': '56/56'}") == 2
    return out, r.stderr, strategy


@pytest.mark.slow
def test_two_process_safety_aware_grpo_corrects_and_writes_one_policy(
    grpo_reference: tuple[Path, str, str],
) -> None:
    out, stderr, _ = grpo_reference
    _assert_world(stderr)
    assert "starting from step 0" in stderr
    log = _assert_complete(out)
    history = [h for h in log["log_history"] if "reward" in h]  # type: ignore[attr-defined]
    assert [h["step"] for h in history] == list(range(1, GRPO["max_steps"] + 1))
    metrics = log["metrics"]
    assert metrics["steps"] == GRPO["max_steps"]  # type: ignore[index]
    # The rollout judged every step's samples and corrected the unsafe ones.
    assert all("rollout/unsafe_rate" in h and "rollout/correction_success" in h for h in history)
    assert metrics["mean_unsafe_rate"] > 0  # type: ignore[index]
    assert not any((out.parent / "grpo.partial").iterdir())  # the main process removed the run state


def _marker_step(state: Path) -> int:
    steps = [json.loads(m.read_text())["step"] for m in state.glob(f"*/{MARKER}") if m.stat().st_size]
    return max(steps, default=0)


def _kill_tree(pid: int) -> None:
    """SIGKILL the launcher and every process under it (torchrun starts its workers in a session
    of their own, so killing the launcher's process group would leave them training)."""
    launcher = psutil.Process(pid)
    procs = [*launcher.children(recursive=True), launcher]
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=60)


@pytest.mark.slow
def test_killed_two_process_grpo_resumes_to_the_uninterrupted_weights(
    tiny_model_dir: Path, train_parquet: Path, grpo_reference: tuple[Path, str, str], tmp_path: Path
) -> None:
    """Also under FSDP2, whose checkpoints hold the gathered model and the sharded optimizer state."""
    ref_out, _, strategy = grpo_reference
    out, state = tmp_path / "grpo", tmp_path / "grpo.partial"
    cmd = _grpo_cmd(tiny_model_dir, train_parquet, out, state, strategy)
    with open(tmp_path / "first.log", "w") as first:
        proc = subprocess.Popen(
            cmd, stdout=first, stderr=subprocess.STDOUT, env=_env(), start_new_session=True
        )
        deadline = time.monotonic() + 600
        while _marker_step(state) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        _kill_tree(proc.pid)
        proc.wait()
    killed_at = _marker_step(state)
    assert 2 <= killed_at < GRPO["max_steps"] and not out.exists(), (tmp_path / "first.log").read_text()[
        -3000:
    ]

    second = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert second.returncode == 0, second.stderr[-4000:]
    assert second.stderr.count(f"resuming from {state}") == PROCESSES  # each process resumes ...
    assert f"checkpoint-{killed_at}" in second.stderr  # ... from the same checkpoint
    log = _assert_complete(out)
    assert log["metrics"]["resumed_from_step"] == killed_at  # type: ignore[index]
    w1, w2 = load_file(out / "model.safetensors"), load_file(ref_out / "model.safetensors")
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)


def _hammer(path: str, worker: int, n: int) -> None:
    """``n`` puts and reads back of keys of its own and of a shared set, through its own connection."""
    cache = JudgeCache(path)
    for i in range(n):
        own, shared = f"w{worker}-{i}", f"shared-{i % 20}"
        cache.put(own, "judge", "rubric@1", f"reply {worker} {i}", f"tag{worker}")
        cache.put(shared, "judge", "rubric@1", f"shared reply {i % 20}", "tag")
        assert cache.get(own) == (f"reply {worker} {i}", f"tag{worker}")
        assert cache.get(shared) == (f"shared reply {i % 20}", "tag")
    cache.close()


def test_judge_cache_keeps_every_entry_with_many_writers(tmp_path: Path) -> None:
    workers, n = 4, 200
    path = str(tmp_path / "judge_cache.sqlite")
    ctx = multiprocessing.get_context("fork")  # each worker opens its own connection after the fork
    procs = [ctx.Process(target=_hammer, args=(path, w, n)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * workers
    cache = JudgeCache(path)
    assert cache.count() == workers * n + 20
    for w in range(workers):
        for i in range(n):
            assert cache.get(f"w{w}-{i}") == (f"reply {w} {i}", f"tag{w}")
    cache.close()


def _echo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LAUNCH), *args], capture_output=True, text=True, env={**_env(SAFERVLM_LAUNCH_ECHO="1"), **env}
    )


def test_launcher_starts_n_cpu_processes_with_torchrun_and_checks_n_against_gpus() -> None:
    cpu = _echo("--processes", "2", "safervlm", "sft", "--x", "1")
    assert cpu.returncode == 0, cpu.stderr
    assert cpu.stdout.split()[:4] == ["torchrun", "--standalone", "--nproc_per_node", "2"]
    assert cpu.stdout.split()[4].endswith("/safervlm") and cpu.stdout.split()[5:] == ["sft", "--x", "1"]
    assert _echo("safervlm", "sft").stdout == "safervlm sft\n"  # the default: the command itself
    gpus = _echo("--deepspeed", "ds.json", "--processes", "2", "safervlm", "sft", CUDA_VISIBLE_DEVICES="0,1")
    assert gpus.returncode == 0 and gpus.stdout.startswith("accelerate launch --multi_gpu --num_processes 2 ")
    wrong = _echo("--processes", "3", "safervlm", "sft", CUDA_VISIBLE_DEVICES="0,1")
    assert wrong.returncode == 2 and "processes: 3, but the job holds 2 GPU(s)" in wrong.stderr
    assert _echo("--processes", "0", "safervlm", "sft").returncode == 2


def test_processes_reaches_the_launcher_only(tmp_path: Path) -> None:
    """`processes` is the launcher's: the job's command gets --processes, the stage's params do not,
    and a job with the default 1 keeps the command line it had."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["sft"]["processes"] = 2
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "-p", "--forceall", "results/checkpoints/grpo", "-d", str(tmp_path),
                  "--configfile", str(tmp_path / "config.yaml"))  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    lines = [line for line in r.stdout.splitlines() if "$SAFERVLM_TRAIN_LAUNCH" in line]
    sft = next(line for line in lines if "safervlm sft" in line)
    grpo = next(line for line in lines if "safervlm grpo" in line)
    assert '"$SAFERVLM_TRAIN_LAUNCH" --processes 2 safervlm sft' in sft
    assert '"$SAFERVLM_TRAIN_LAUNCH"  safervlm grpo' in grpo  # no options: as before
    for line in (sft, grpo):  # nor the job's shape
        assert not {'"processes"', '"nodes"', '"job"'} & set(
            re.findall(r'"\w+"', line.split("--params", 1)[1])
        )
