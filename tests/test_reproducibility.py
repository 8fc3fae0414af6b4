"""Reproducibility, end to end on a copy of this repository: a real DAG run pinned with DVC
(a local-directory remote), the rerun rules proven on the plans Snakemake makes, and an
auditor's fresh clone that restores the pins, reruns nothing upstream and audits the
numbers; a tampered judgment fails the strict audit, naming the cell.

Slow: one reduced DAG run (VLGuard only, three models) plus DVC and Snakemake calls.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import BIN, ROOT
from test_e2e import reduced_config

pytestmark = pytest.mark.slow

BENCHES = ["vlguard"]
MODELS = ["base", "sft", "grpo"]
HEAVY = {"sft", "grpo", "generate", "judge", "qi_score", "tiny_model"}  # training, generation, judging


def env_for(repo: Path) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(repo / "src")}
    for key in ("MLFLOW_TRACKING_URI", "SAFERVLM_MLFLOW", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(key, None)
    return env


def run(repo: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, cwd=repo, env=env_for(repo), capture_output=True, text=True, timeout=1800)
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)}\n{(r.stdout + r.stderr)[-5000:]}"
    return r


def smk(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(repo, str(BIN / "snakemake"), "--profile", "workflow/profiles/local", *args, check=check)


def plan(repo: Path, *args: str) -> Counter[str]:
    """Jobs per rule that `snakemake -n` plans (empty when there is nothing to do)."""
    r = smk(repo, "-n", *args)
    out = r.stdout + r.stderr
    if "Nothing to be done" in out:
        return Counter()
    table = out.split("Job stats:")[1].split("total")[0]
    jobs = Counter({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)})
    jobs.pop("all", None)
    return jobs


def copy_repo(dst: Path) -> None:
    """The working tree as the project's git would see it (tracked and new files)."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for f in filter(None, files):
        src = ROOT / f.decode()
        if src.is_file():
            (dst / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f.decode())


def git(repo: Path, *args: str) -> None:
    run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", *args)


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Repository A: a run of the reduced DAG, its numbers pinned, dvc-committed, pushed."""
    base = tmp_path_factory.mktemp("repro")
    repo, remote = base / "A", base / "remote"
    copy_repo(repo)
    cfg = reduced_config()
    cfg["eval"].update(benchmarks=BENCHES, models=MODELS, pairs=[["sft", "base"], ["grpo", "base"]])
    cfg["mlflow"]["experiment"] = "repro"
    (repo / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (repo / "config" / "audit" / "demo.yaml").unlink(missing_ok=True)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the code")
    smk(repo, "--cores", "2", "all")
    run(
        repo,
        str(BIN / "safervlm"),
        "audit",
        "--pin",
        "config/audit/demo.yaml",
        "--config",
        "config/config.yaml",
    )
    run(repo, str(BIN / "dvc"), "remote", "add", "-d", "local", str(remote))
    run(repo, str(BIN / "dvc"), "commit", "-f")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pin the run")
    run(repo, str(BIN / "dvc"), "push")
    return repo, remote


def test_dvc_lock_pins_every_artifact_family(pinned: tuple[Path, Path]) -> None:
    repo, remote = pinned
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    outs = {o["path"]: o["md5"] for st in lock.values() for o in st.get("outs", [])}
    for family in ("results/data", "results/models", "results/checkpoints", "results/report"):
        assert outs[family].endswith(".dir"), family
    for model in MODELS:
        for name in ("responses.parquet", "judgments.parquet", "metrics.json"):
            path = f"results/eval/{model}/vlguard/{name}"
            assert outs[path] == _md5(repo / path), path
    assert any(remote.rglob("*")), "dvc push stored nothing in the remote"


def _md5(path: Path) -> str:
    from safervlm.io import md5_file

    return md5_file(path)


def test_noop_rerun_plans_nothing(pinned: tuple[Path, Path]) -> None:
    assert plan(pinned[0], "all") == Counter()


def _override(repo: Path, name: str, section: str, values: dict) -> str:
    path = repo / name
    path.write_text(yaml.safe_dump({section: values}))
    return str(path)


def test_judge_param_change_reruns_judge_score_report_only(pinned: tuple[Path, Path]) -> None:
    repo = pinned[0]
    cfg = _override(
        repo, "judge_override.yaml", "judge", {"name": "reference", "params": {"min_answer_words": 6}}
    )
    jobs = plan(repo, "all", "--configfile", "config/config.yaml", cfg)
    n = len(MODELS) * len(BENCHES)
    assert jobs == Counter({"judge": n, "score": n, "report": 1, "mlflow_runs": 1}), jobs


def test_grpo_param_change_reruns_grpo_and_downstream_only(pinned: tuple[Path, Path]) -> None:
    repo = pinned[0]
    grpo = yaml.safe_load((repo / "config" / "config.yaml").read_text())["grpo"]
    cfg = _override(repo, "grpo_override.yaml", "grpo", {**grpo, "learning_rate": grpo["learning_rate"] * 2})
    jobs = plan(repo, "all", "--configfile", "config/config.yaml", cfg)
    n = len(BENCHES)  # only the grpo model is generated, judged and scored again
    assert jobs == Counter(
        {"grpo": 1, "generate": n, "judge": n, "score": n, "report": 1, "mlflow_runs": 1}
    ), jobs


def test_package_module_change_reruns_its_stage_and_downstream(pinned: tuple[Path, Path]) -> None:
    repo = pinned[0]
    module = repo / "src" / "safervlm" / "evaluate" / "score.py"  # the metrics module
    text, st = module.read_text(), module.stat()
    try:
        module.write_text(text + "\n# edited by test_reproducibility\n")
        jobs = plan(repo, "all")
    finally:
        module.write_text(text)
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert jobs == Counter({"score": len(MODELS) * len(BENCHES), "report": 1, "mlflow_runs": 1}), jobs
    assert plan(repo, "all") == Counter()


@pytest.fixture(scope="module")
def clone(pinned: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An auditor's fresh clone of A, with the pinned run restored from the DVC remote."""
    dst = tmp_path_factory.mktemp("auditor") / "B"
    run(pinned[0].parent, "git", "clone", "-q", str(pinned[0]), str(dst))
    assert not (dst / "results").exists()
    r = run(dst, "workflow/scripts/restore-pins")
    assert "up to date" in r.stdout + r.stderr
    return dst


def test_fresh_clone_after_pull_reruns_nothing(clone: Path) -> None:
    assert plan(clone, "all") == Counter()
    assert plan(clone, "audit") == Counter({"audit": 1})


def test_audit_from_pins_matches_every_demo_cell(clone: Path) -> None:
    before = plan(clone, "audit")
    assert not HEAVY & set(before)
    smk(clone, "--cores", "1", "audit")
    counts = json.loads((clone / "results/audit/audit.json").read_text())["counts"]
    demo = yaml.safe_load((clone / "config/audit/demo.yaml").read_text())["cells"]
    assert counts["mismatch"] == 0 and counts["match"] == len(demo) > 10, counts
    table = pd.read_csv(clone / "results/audit/audit.csv")
    cells = table[table["id"].str.startswith("demo.")]
    assert set(cells["verdict"]) == {"match"} and set(cells["pin"]) == {"pinned"}
    published = table[table["id"].str.startswith(("saferv.", "safemlrm."))]
    assert len(published) == 8 and set(published["verdict"]) == {"absent"}  # never "match"
    report = table[table["id"].str.startswith("report.rates")]
    assert len(report) > 50 and set(report["verdict"]) == {"match"}
    md = (clone / "results/audit/audit.md").read_text()
    assert "| `demo.grpo.vlguard.safety` |" in md and "**absent**" in md


def test_tampered_judgment_fails_the_strict_audit_naming_the_cell(clone: Path) -> None:
    path = clone / "results/eval/grpo/vlguard/judgments.parquet"
    original = path.read_bytes()
    audit = [str(BIN / "safervlm"), "audit", "--config", "config/config.yaml", "--strict"]
    try:
        df = pd.read_parquet(path)
        df.loc[0, "helpfulness"] = 1.0 - float(df.loc[0, "helpfulness"])
        df.to_parquet(path, index=False)
        r = run(clone, *audit, "--dvc-lock", "dvc.lock", check=False)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "demo.grpo.vlguard.helpfulness" in r.stderr
        assert "demo.sft.vlguard.helpfulness" not in r.stderr  # only the tampered model's cells
    finally:
        path.write_bytes(original)
    r = run(clone, *audit, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_restore_refuses_a_tree_that_differs_from_the_pins(pinned: tuple[Path, Path], tmp_path: Path) -> None:
    dst = tmp_path / "C"
    run(tmp_path, "git", "clone", "-q", str(pinned[0]), str(dst))
    cfg = dst / "config" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("seed: 0", "seed: 1"))
    r = run(dst, "workflow/scripts/restore-pins", check=False)
    assert r.returncode != 0
    assert "differs from dvc.lock" in r.stderr
    assert not (dst / ".snakemake" / "metadata").exists()  # nothing was marked up to date
