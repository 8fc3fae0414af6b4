"""Against a real Slurm cluster (`make slurm-up`, as root): the reduced DAG through
`--profile slurm`, a rerun after a node failure, and jobs Slurm kills for time or memory.

Without a cluster these tests skip, naming why; with SAFERVLM_REQUIRE_SLURM=1 (set by
.ci/run, which starts one) a missing cluster is a failure instead. The node failure is
made only on the cluster .ci/slurm-cluster manages, and only while no one else's job runs
there (it kills every job on the node).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import pytest
import torch
import yaml
from helpers import BIN, ROOT, RULES, snakemake
from test_e2e import reduced_config

pytestmark = pytest.mark.slow

GPU_RULES = {"sft", "grpo", "qi_score", "generate"}
# Done before sft starts: the node failure during sft must not make them run again.
BEFORE_SFT = ("fixtures", "pool", "prepare", "decontaminate", "tiny_model", "qi_score", "qi_select")
# Outputs that differ between any two runs: logs, timings, the tracking store.
VOLATILE_DIRS = {"logs", "benchmarks", "mlflow"}


def _cmd(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def _why_no_cluster() -> str | None:
    if shutil.which("sinfo") is None:
        return "no Slurm client (sinfo) on PATH"
    r = _cmd("sinfo", "-h", "-o", "%t")
    if r.returncode != 0:
        return f"no Slurm controller answers ({r.stderr.strip()[:200]})"
    if not re.search(r"^(idle|mix|alloc)", r.stdout, re.M):
        return f"no usable node (states: {' '.join(r.stdout.split())})"
    r = _cmd("sacct", "-n", "-X", "--starttime", "now")
    if r.returncode != 0:
        return f"no Slurm accounting, which the executor plugin needs ({r.stderr.strip()[:200]})"
    return None


@pytest.fixture(scope="module")
def slurm(no_slurm: Callable[[str], NoReturn]) -> None:
    why = _why_no_cluster()
    if why:
        no_slurm(f"no Slurm cluster: {why}. Start one with `make slurm-up` (root, Debian)")


def write_config(workdir: Path) -> Path:
    cfg = reduced_config()
    cfg["eval"]["benchmarks"] = ["vlguard"]
    # Training jobs run as many threads as their CPUs (rules/common.smk train_threads); the
    # local profile runs them on 2. The same thread count on both sides: float sums then
    # reduce in the same order, and a GRPO run samples the same tokens.
    for stage in ("sft", "grpo"):
        cfg[stage]["job"] = {**cfg[stage]["job"], "cpus_per_process": 2}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("local")
    config = write_config(workdir)
    r = snakemake(
        "--profile", str(ROOT / "workflow/profiles/local"), "-d", str(workdir), "all",
        "--configfile", str(config),
    )  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    return workdir


def sacct_jobs(workdir: Path, since: str) -> list[dict[str, Any]]:
    """Every Slurm job (requeued instances too) that ran in ``workdir``, with its rule."""
    fields = ["JobID", "Comment", "State", "Partition", "AllocTRES", "WorkDir"]
    r = _cmd("sacct", "-X", "-D", "-n", "-P", "--starttime", since, "-o", ",".join(fields))
    assert r.returncode == 0, r.stderr
    lines = [dict(zip(fields, line.split("|"), strict=True)) for line in r.stdout.splitlines()]
    rows: list[dict[str, Any]] = [row for row in lines if row["WorkDir"] == str(workdir)]
    for row in rows:
        m = re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", row["Comment"])
        row["rule"] = m.group(1) if m else ""
        row["rules"] = job_rules(row["rule"])
    return rows


def job_rules(name: str) -> list[str]:
    """The rules a Slurm job ran: its rule, or for a group job (named ``<group>_<rule>_<rule>…``
    by Snakemake) the profile's rules of that group."""
    groups: dict[str, str] = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())[
        "groups"
    ]
    group, _, rest = name.partition("_")
    if group in set(groups.values()):
        return [rule for rule, g in groups.items() if g == group and rule in rest.split("_")]
    return [name]


def running_job(workdir: Path, rule: str) -> tuple[str, str] | None:
    """(job id, node) of a running job of ``rule`` in ``workdir``."""
    r = _cmd("squeue", "-h", "-t", "RUNNING", "-o", "%i|%k|%N|%Z")
    for line in r.stdout.splitlines():
        jobid, comment, node, wd = line.split("|")
        if wd == str(workdir) and re.fullmatch(rf"rule_{rule}(_wildcards_.*)?", comment):
            return jobid, node
    return None


def others_jobs(workdir: Path) -> list[str]:
    """Jobs on the cluster that are not this test's (another session's, a user's)."""
    r = _cmd("squeue", "-h", "-o", "%i|%Z")
    return [line for line in r.stdout.splitlines() if line.split("|")[1] != str(workdir)]


def is_test_cluster() -> bool:
    """The cluster .ci/slurm-cluster set up: only there may a test bring the node down."""
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    return conf.is_file() and "# managed by safervlm .ci/slurm-cluster" in conf.read_text()


def set_node(node: str, state: str) -> None:
    _cmd("scontrol", "update", f"nodename={node}", f"state={state}", "reason=safervlm-test")


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_timings(v)
            for k, v in value.items()
            if not k.endswith(("_runtime", "_per_second", "_time", "_s"))  # rollout/<phase>_s too
        }
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _close(x: Any, y: Any) -> bool:
    """Equal structure, numbers equal to float32 rounding (rel. 1e-5)."""
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_close(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_close(u, v) for u, v in zip(x, y, strict=True))
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-7)
    return bool(x == y)


def _same_weights(a: Path, b: Path) -> bool:
    """The same tensors, to float32 rounding."""
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(torch.allclose(x[k], y[k], rtol=1e-4, atol=1e-5) for k in x)


def assert_same_outputs(a: Path, b: Path) -> int:
    """Every output file of run ``a`` exists in run ``b`` with the same content.

    Byte for byte, except the trained weights and their train logs: a training job run by
    Slurm and the same job run locally may differ in the last bits of float32 sums (CPU
    threads reduce in another order), so weights and logged losses are compared to float32
    rounding. Every response, judgment and metric computed from them must still be
    byte-identical.
    """
    n = 0
    for path in sorted((a / "results").rglob("*")):
        rel = path.relative_to(a / "results")
        if path.is_dir() or rel.parts[0] in VOLATILE_DIRS:
            continue
        other = b / "results" / rel
        assert other.is_file(), f"{rel} missing from the Slurm run"
        if path.name == "train_log.json":  # wall-clock throughput differs run to run
            same = _close(
                _without_timings(json.loads(path.read_text())),
                _without_timings(json.loads(other.read_text())),
            )
        elif path.suffix == ".safetensors":
            same = _same_weights(path, other)
        else:
            same = path.read_bytes() == other.read_bytes()
        assert same, f"{rel} differs between the local and the Slurm run"
        n += 1
    return n


def test_dag_through_slurm_resumes_after_node_failure_and_equals_local(
    slurm: None, local_run: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    # As typed: the profile by name, from the repository root (helpers run there).
    run = ("--profile", "slurm", "-d", str(tmp_path), "all")
    # 1. Sites with JobRequeue=0 (here: --slurm-no-requeue) report a node failure to
    #    Snakemake; bring the node down while sft runs. Only on the cluster of
    #    .ci/slurm-cluster, and only while no one else's job runs on it.
    may_down = is_test_cluster()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            snakemake, *run, "--slurm-no-requeue", "--retries", "0", "--configfile", str(config)
        )
        node = None
        why = "not the test cluster of .ci/slurm-cluster" if not may_down else "sft never seen running"
        try:
            deadline = time.time() + 900
            while node is None and not first.done() and time.time() < deadline:
                found = running_job(tmp_path, "sft")
                if found and may_down:
                    others = others_jobs(tmp_path)
                    if others:
                        why = f"others' jobs ran: {others}"
                    else:
                        node = found[1]
                        set_node(node, "down")
                time.sleep(0.5)
            r1 = first.result(timeout=900)
        finally:
            if node:
                set_node(node, "resume")
    out1 = r1.stdout + r1.stderr
    if node is None:
        assert r1.returncode == 0, out1[-4000:]
        assert os.environ.get("SAFERVLM_REQUIRE_SLURM") != "1", f"no node failure tested: {why}"
    else:
        assert r1.returncode != 0, out1[-4000:]
        assert "node failure" in out1 and "Error in rule sft" in out1, out1[-4000:]
    for _ in range(120):  # the node returns (ReturnToService)
        if _why_no_cluster() is None:
            break
        time.sleep(0.5)

    # 2. The rerun resumes: only sft and what follows it are left to do.
    r2 = snakemake(*run, "--configfile", str(config))
    out2 = r2.stdout + r2.stderr
    assert r2.returncode == 0, out2[-4000:]
    r3 = snakemake(*run, "--configfile", str(config))
    assert "Nothing to be done" in r3.stdout + r3.stderr

    jobs = sacct_jobs(tmp_path, since)
    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        for rule in job["rules"]:
            by_rule[rule].append(job)
    for rule in RULES:
        assert any(j["State"] == "COMPLETED" for j in by_rule[rule]), f"no completed {rule} job in sacct"
    # The profile groups the light per-benchmark and per-(model, benchmark) jobs: fewer
    # Slurm jobs than rule jobs, and GPU rules never in a group.
    grouped = [j for j in jobs if len(j["rules"]) > 1 or j["rules"] != [j["rule"]]]
    assert grouped and not any(set(j["rules"]) & GPU_RULES for j in grouped), grouped
    # Once each (the rerun after the node failure did not run them again); ungrouped ones
    # once per job: prepare once per configured benchmark, fixtures once per benchmark and source.
    per_rule = {"prepare": 8, "fixtures": 8 + 3}
    for rule in BEFORE_SFT:
        states = [j["State"] for j in by_rule[rule]]
        if any(j in grouped for j in by_rule[rule]):
            assert states and set(states) == {"COMPLETED"}, (rule, states)
        else:
            assert states == ["COMPLETED"] * per_rule.get(rule, 1), (rule, states)
    rerun = out2.split("Job stats:")[1].split("total")[0] if "Job stats:" in out2 else ""
    assert not set(re.findall(r"^(\w+)\s+\d+\s*$", rerun, re.M)) & set(BEFORE_SFT), rerun
    assert ("NODE_FAIL" in {j["State"] for j in by_rule["sft"]}) == (node is not None)
    for job in jobs:
        gpu = "gres/gpu=1" in job["AllocTRES"]
        if set(job["rules"]) & GPU_RULES:
            assert job["Partition"] == "gpu" and gpu, job
        else:
            assert job["Partition"] == "cpu" and not gpu, job

    assert assert_same_outputs(local_run, tmp_path) >= 20


def _copy_run(src: Path, dst: Path, **grpo: Any) -> Path:
    """A copy of run ``src`` (outputs, Snakemake's metadata, mtimes) under ``dst``, its config's
    grpo section updated with ``grpo``: the config file's path."""
    shutil.copytree(src, dst, symlinks=True)
    config = dst / "config.yaml"
    cfg = yaml.safe_load(config.read_text())
    cfg["grpo"].update(grpo)
    config.write_text(yaml.safe_dump(cfg))
    return config


def test_two_process_training_job_through_slurm_equals_local(
    slurm: None, local_run: Path, tmp_path: Path
) -> None:
    """`grpo.processes: 2` on a finished run: the slurm profile submits one grpo job asking for
    2 GPUs (from the config; the test cluster's GPUs are fake), train-launch starts the
    multi-GPU launch (`accelerate launch --multi_gpu --num_processes 2`, over gloo on this CPU
    node), both processes train and one writes; its weights equal a local 2-process run's
    (torchrun), and nothing but grpo ran."""
    grpo = {"processes": 2, "job": {"device": "gpu", "cpus_per_process": 1, "mem_mb": 6000, "runtime": 30}}
    target = "results/checkpoints/grpo"
    outs = {}
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    for where, profile in (("local", str(ROOT / "workflow/profiles/local")), ("slurm", "slurm")):
        workdir = tmp_path / where
        config = _copy_run(local_run, workdir, **grpo)
        r = snakemake("--profile", profile, "-d", str(workdir), target, "--configfile", str(config))
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-4000:]
        ran = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", out.split("Job stats:")[1].split("total")[0], re.M))
        assert ran == {"grpo": "1"}, ran
        log = (workdir / "results/logs/grpo.log").read_text()
        for rank in range(2):
            assert f"training process {rank} of 2 (MULTI_CPU)" in log, log[-3000:]
        assert json.loads((workdir / target / "train_log.json").read_text())["processes"] == 2
        outs[where] = workdir / target
    jobs = [j for j in sacct_jobs(tmp_path / "slurm", since) if j["rule"] == "grpo"]
    assert len(jobs) == 1 and jobs[0]["State"] == "COMPLETED", jobs
    assert jobs[0]["Partition"] == "gpu" and "gres/gpu=2" in jobs[0]["AllocTRES"], jobs
    # The same stage, two launch paths: the job's 2 GPUs -> the multi-GPU launch; locally, no GPU -> torchrun.
    launched = {w: (tmp_path / w / "results/logs/grpo.log").read_text() for w in outs}
    assert "train-launch: accelerate launch --multi_gpu --num_processes 2 " in launched["slurm"]
    assert "train-launch: torchrun --standalone --nproc_per_node 2 " in launched["local"]
    assert _same_weights(outs["local"] / "model.safetensors", outs["slurm"] / "model.safetensors")


KILLED = """
rule all:
    input:
        "hog.txt",
        "slow.txt",


rule hog:
    output:
        "hog.txt",
    shell:
        "python3 -c 'x = b\\"x\\" * (350 * 2**20); import time; time.sleep(5)' && touch {output}"


rule slow:
    output:
        "slow.txt",
    retries: 0
    shell:
        "sleep 150 && touch {output}"
"""


def error_block(out: str, rule: str) -> str:
    m = re.search(rf"Error in rule {rule}:\n(?:    .*\n)+", out)
    assert m, f"no error reported for rule {rule}:\n{out[-4000:]}"
    return m.group(0)


def slurm_log(block: str, rule: str) -> str:
    m = re.search(rf"(/\S+/\.snakemake/slurm_logs/rule_{rule}/\d+\.log)", block)
    assert m, f"the error for {rule} names no Slurm log:\n{block}"
    return Path(m.group(1)).read_text()


def test_jobs_killed_for_memory_or_time_name_rule_and_slurm_log(slurm: None, tmp_path: Path) -> None:
    """hog exceeds 400 MB (killed, then retried with 800: the profile's `attempt` bump);
    slow exceeds 1 minute (killed; its rule allows no retry)."""
    (tmp_path / "Snakefile").write_text(KILLED)
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "SAFERVLM_SLURM_MEM_MB": "400",
        "SAFERVLM_SLURM_RUNTIME": "1",
    }
    cmd = [str(BIN / "snakemake"), "--profile", "slurm", "-s", str(tmp_path / "Snakefile")]
    r = subprocess.run(
        [*cmd, "-d", str(tmp_path), "--keep-going"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-4000:]

    hog = error_block(out, "hog")
    assert "exceeded memory limit" in slurm_log(hog, "hog")
    assert re.search(r"rule hog:\n(?:    .*\n)*    resources: .*mem_mb=800\b", out), out[-4000:]
    assert (tmp_path / "hog.txt").exists(), "hog did not succeed on its retry with more memory"

    slow = error_block(out, "slow")
    assert "TIMEOUT" in slow
    assert "DUE TO TIME LIMIT" in slurm_log(slow, "slow")
    assert not (tmp_path / "slow.txt").exists()
