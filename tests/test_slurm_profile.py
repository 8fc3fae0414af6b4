"""The Slurm profile without a cluster: the name lookup, the planned resources of the paper
run (GPU requests for GPU rules only), the retry bumps, and the training launcher.

Only the multi-node launch runs a Slurm command (scontrol): without a Slurm client it
skips (fails under SAFERVLM_REQUIRE_SLURM=1); everything else runs anywhere."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import BIN, ROOT, RULES, snakemake

from safervlm.workflow_support import launcher_env

PROFILE = ROOT / "workflow" / "profiles" / "slurm"
LAUNCH = ROOT / "workflow" / "scripts" / "train-launch"
GPU_RULES = {"sft", "grpo", "qi_score", "generate"}
TRAIN_RULES = {"sft", "grpo"}
# Not in the paper run: fixtures and tiny_model (real data and model), grpo_compare (the
# paper evaluates base, SFT and safety-aware GRPO only, not the plain-GRPO ablation).
CPU_RULES = set(RULES) - GPU_RULES - {"fixtures", "tiny_model", "grpo_compare"}


def paper_config(tmp_path: Path, judge: str = "reference") -> Path:
    """config/paper.yaml with every input path pointed at an (empty) folder that exists."""
    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    for section in ("benchmarks", "sources"):
        for name, entry in cfg[section].items():
            entry["root"] = str(tmp_path / section / name)
            Path(entry["root"]).mkdir(parents=True)
    cfg["base_model"]["path"] = str(tmp_path / "model")
    (tmp_path / "model").mkdir()
    for stage in ("sft", "grpo"):
        cfg[stage]["deepspeed"] = str(ROOT / cfg[stage]["deepspeed"])
    cfg["judge"]["name"] = judge
    for section in ("judge", "reward_judge"):  # local judge models (the paper's GRM) must exist
        if cfg[section]["name"] == "hf":
            cfg[section]["params"]["model_path"] = str(tmp_path / f"{section}_model")
            (tmp_path / f"{section}_model").mkdir()
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def planned_resources(out: str) -> dict[str, dict[str, str]]:
    """Rule name -> resources of its first job, from a dry run's job listing."""
    plan: dict[str, dict[str, str]] = {}
    # A group job's rules are listed indented under it (the slurm profile's `groups`).
    for block in re.split(r"\n(?=[ \t]*(?:local)?rule \w+:)", out):
        m = re.match(r"\s*(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if m and res and m.group(1) not in plan:
            plan[m.group(1)] = dict(kv.split("=", 1) for kv in res.group(1).split(", "))
    return plan


def test_profile_name_resolves_to_this_checkout() -> None:
    """`--profile slurm` from the repository root finds workflow/profiles/slurm (make profiles)."""
    from snakemake.cli import get_profile_dir

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        found = get_profile_dir("slurm")
    finally:
        os.chdir(cwd)
    assert found is not None, "no profile named 'slurm': run `make profiles` (part of `make install`)"
    profile_dir = Path(found[0])
    if not str(profile_dir.resolve()).endswith("workflow/profiles/slurm"):
        pytest.skip(f"your own profile {profile_dir} shadows the name 'slurm'")
    assert (profile_dir / "config.yaml").read_text() == (PROFILE / "config.yaml").read_text()


@pytest.mark.parametrize("judge", ["reference", "hf"])
def test_paper_plan_requests_gpus_for_gpu_rules_only(judge: str, tmp_path: Path) -> None:
    # The README's command (by path here; the name is tested above), --configfile last.
    r = snakemake(
        "--profile", str(PROFILE), "-n", "all", "-d", str(tmp_path),
        "--configfile", str(paper_config(tmp_path, judge)),
    )  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    plan = planned_resources(r.stdout + r.stderr)
    gpu_rules = GPU_RULES | ({"judge"} if judge == "hf" else set())
    assert gpu_rules | CPU_RULES <= set(plan), sorted(plan)
    for rule in gpu_rules:
        res = plan[rule]
        # Training: the config's processes (config/paper.yaml: 8 GPUs on one node).
        assert res.get("gpu") == ("8" if rule in TRAIN_RULES else "1"), (rule, res)
        assert int(res["cpus_per_gpu"]) >= 4 and int(res["mem_mb"]) >= 16000, (rule, res)
        assert int(res["runtime"]) >= 60, (rule, res)
    for rule in CPU_RULES - gpu_rules:
        res = plan[rule]
        assert res.get("gpu", "0") == "0" and "gres" not in res, (rule, res)
        assert "tasks" not in res, (rule, res)
    assert "tasks" not in plan["sft"]  # would run the rule once per GPU


def test_gpu_rules_get_more_memory_and_time_on_each_retry() -> None:
    text = (PROFILE / "config.yaml").read_text()
    profile = yaml.safe_load(text)
    assert profile["retries"] >= 1
    assert not TRAIN_RULES & set(profile["set-resources"])  # theirs come from the config
    for rule in GPU_RULES - TRAIN_RULES:
        res = profile["set-resources"][rule]
        for key in ("mem_mb", "runtime"):
            first, second = (eval(str(res[key]), {"attempt": a}) for a in (1, 2))
            assert second > first, (rule, key, res[key])


def _plan_with(tmp_path: Path, **sections: dict[str, object]) -> tuple[dict[str, dict[str, str]], str]:
    """The slurm profile's dry-run plan of the paper run with ``sections`` merged in."""
    path = paper_config(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    for name, keys in sections.items():
        cfg[name].update(keys)
    path.write_text(yaml.safe_dump(cfg))
    r = snakemake(
        "--profile", str(PROFILE), "-n", "-p", "all", "-d", str(tmp_path), "--configfile", str(path)
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    return planned_resources(out), out


def test_two_node_zero3_is_config_only(tmp_path: Path) -> None:
    """From the paper run to 2 nodes x 8 GPUs with ZeRO-3 by editing the grpo section only: the
    job requests 2 nodes with 8 GPUs each (one launcher task per node, srun), the config's
    memory and CPUs; the command line carries the ZeRO-3 config and 16 processes."""
    zero3 = str(ROOT / "config" / "deepspeed" / "zero3.json")
    grpo = {"processes": 16, "nodes": 2, "strategy": "deepspeed", "deepspeed": zero3,
            "job": {"device": "gpu", "cpus_per_process": 6, "mem_mb": 900000, "runtime": 2000}}  # fmt: skip
    plan, out = _plan_with(tmp_path, grpo=grpo)
    res = plan["grpo"]
    assert {k: res.get(k) for k in ("nodes", "gres", "mpi", "tasks", "tasks_per_gpu", "cpus_per_gpu")} == {
        "nodes": "2", "gres": "gpu:8", "mpi": "srun", "tasks": "2", "tasks_per_gpu": "0", "cpus_per_gpu": "6",
    }  # fmt: skip
    assert res["mem_mb"] == "900000" and res["runtime"] == "2000" and "gpu" not in res, res
    assert f'"$SAFERVLM_TRAIN_LAUNCH" --deepspeed {zero3} --processes 16 safervlm grpo' in out
    assert plan["sft"]["gpu"] == "8" and "nodes" not in plan["sft"]  # sft untouched


def test_cpu_training_job_asks_for_cores_not_gpus(tmp_path: Path) -> None:
    plan, out = _plan_with(tmp_path, sft={"processes": 2, "job": {"device": "cpu", "cpus_per_process": 3}})
    res = plan["sft"]
    assert res["cpus_per_task"] == "6" and "gpu" not in res and "gres" not in res, res


def launch(*args: str, echo: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """Run train-launch outside any Slurm job or GPU setting, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_"))}
    clean["PATH"] = f"{BIN}:{clean['PATH']}"
    clean["SAFERVLM_LAUNCH_ECHO"] = "1" if echo else "0"
    return subprocess.run([str(LAUNCH), *args], capture_output=True, text=True, env={**clean, **env})


def test_launch_without_gpus_runs_the_plain_command() -> None:
    r = launch("safervlm", "sft", "--params", '{"a": 1}', CUDA_VISIBLE_DEVICES="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("safervlm sft --params ")
    # Really runs it (exec), exit status included.
    assert launch("sh", "-c", "exit 3", echo=False, CUDA_VISIBLE_DEVICES="").returncode == 3


def test_launch_one_process_per_gpu_of_the_allocation() -> None:
    r = launch("--deepspeed", "config/deepspeed/zero2.json", "safervlm", "sft", "--x", "1",
               SLURM_GPUS_ON_NODE="4", SLURM_JOB_ID="1234")  # fmt: skip
    assert r.returncode == 0, r.stderr
    cmd = r.stdout.split()
    assert cmd[:3] == ["accelerate", "launch", "--multi_gpu"]
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    assert cmd[cmd.index("--num_machines") + 1] == "1"
    assert cmd[cmd.index("--deepspeed_config_file") + 1] == "config/deepspeed/zero2.json"
    assert cmd[-4].endswith("/safervlm") and cmd[-3:] == ["sft", "--x", "1"]
    assert launch("safervlm", "sft", CUDA_VISIBLE_DEVICES="0,1").stdout.count("--num_processes 2") == 1


@pytest.mark.slurm_client("scontrol")  # the launcher finds the head node with it
def test_launch_across_nodes_starts_one_launcher_per_node() -> None:
    r = launch("safervlm", "grpo", SLURM_GPUS_ON_NODE="4", SLURM_JOB_NUM_NODES="2",
               SLURM_JOB_NODELIST="localhost")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("srun --ntasks=2 --ntasks-per-node=1 ")
    assert "--num_processes\\ 8" in r.stdout and "--num_machines\\ 2" in r.stdout
    assert "--machine_rank\\ \\$SLURM_NODEID" in r.stdout


def test_training_rules_use_the_launcher(tmp_path: Path) -> None:
    r = snakemake("-n", "-p", "all", "-d", str(tmp_path), "--configfile", str(paper_config(tmp_path)))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    zero2 = ROOT / "config" / "deepspeed" / "zero2.json"
    for stage in ("sft", "grpo"):
        # The launcher's path comes through the environment (a moved checkout reruns nothing).
        assert f'"$SAFERVLM_TRAIN_LAUNCH" --deepspeed {zero2} --processes 8 safervlm {stage} --model' in out
    assert launcher_env(ROOT) == {"SAFERVLM_TRAIN_LAUNCH": str(LAUNCH)}
