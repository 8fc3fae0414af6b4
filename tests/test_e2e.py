"""End to end: the whole DAG on a reduced embedded default, then a no-op rerun and a
targeted rerun after a params change. Slow (a few minutes on 2 cores)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import ROOT, RULES, snakemake
from PIL import Image

BENCHES = ["vlguard", "mssbench", "figstep"]

pytestmark = pytest.mark.slow


def reduced_config() -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["fixtures"].update(n_per_benchmark=8, n_train_per_source=60)
    cfg["curate"].update(k_samples=2, max_new_tokens=16, min_instability=0.0, target_size=None)
    cfg["sft"].update(epochs=3)
    cfg["grpo"].update(max_steps=2, batch_size=8, max_completion_length=24)
    cfg["generate"].update(max_new_tokens=40)
    cfg["eval"].update(benchmarks=BENCHES, n_bootstrap=50)
    cfg["mlflow"]["experiment"] = "e2e"
    return cfg


def smk(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # --configfile last: it takes several values. Tracking on: a test checks the MLflow runs.
    return snakemake(
        "-d", str(workdir), "--cores", "2", *args, "--configfile", str(workdir / "config.yaml"), tracking=True
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("e2e")
    (workdir / "config.yaml").write_text(yaml.safe_dump(reduced_config()))
    r = smk(workdir, "all")
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    return workdir


def test_report_table_and_figure(run_dir: Path) -> None:
    table = (run_dir / "results/report/table.md").read_text()
    for bench in BENCHES:
        assert bench in table
    for model in ("base", "sft", "grpo_plain", "grpo"):
        assert f"{model} safety" in table
    csv = pd.read_csv(run_dir / "results/report/table.csv")
    assert len(csv) == len(BENCHES) + 1  # + average
    with Image.open(run_dir / "results/report/safety_helpfulness.png") as img:
        assert img.size[0] > 100 and img.size[1] > 100
    avg = csv.set_index(csv.columns[0]).loc["average"]
    # The tiny model really learns: SFT is safer than the untrained base without refusing
    # everything (helpfulness also rises).
    assert avg["sft/safety"] > avg["base/safety"] + 0.2
    assert avg["sft/helpfulness"] > avg["base/helpfulness"]


def test_safemlrm_analysis_in_the_report(run_dir: Path) -> None:
    report = run_dir / "results/report"
    asr = (report / "asr.md").read_text()
    assert asr.splitlines()[0].startswith("| benchmark | attack | base R | base A | base F | sft R")
    for bench in BENCHES:
        assert f"| {bench} | none |" in asr
    for attack in ("vanilla", "typo", "sd_typo", "figstep"):  # the embedded default attacks vlguard
        assert f"| vlguard | {attack} |" in asr
    assert "| (mean) | none |" in asr
    tax = pd.read_csv(report / "tax.csv")
    pairs = {("sft", "base"), ("grpo_plain", "base"), ("grpo", "base")}
    assert pairs == set(zip(tax.reasoning_model, tax.base_model, strict=True))
    rates = pd.read_csv(report / "rates.csv")
    assert set(rates["metric"]) >= {"safety", "helpfulness", "official", "asr_reasoning", "asr_answer",
                                    "asr_full", "self_correction"}  # fmt: skip
    top = rates[(rates.category == "(mean)") & (rates.attack == "none") & (rates.benchmark != "(mean)")]
    models = ["base", "grpo", "grpo_plain", "sft"]
    assert top.groupby("model")["benchmark"].nunique().to_dict() == dict.fromkeys(models, 3)
    defined = top.dropna(subset=["value"])  # e.g. no self-correction without unsafe reasoning
    assert len(defined) >= 3 * 3 * 5
    assert (defined["ci_low"] <= defined["value"] + 1e-9).all()
    assert (defined["value"] <= defined["ci_high"] + 1e-9).all()
    for name in ("blind_spots.png", "safety_vs_helpfulness.png"):
        with Image.open(report / name) as img:
            assert img.size[0] > 100
    official = (report / "official.md").read_text()
    assert "| vlguard | asr_keywords | none |" in official and "| figstep | asr | none |" in official
    attacked = pd.read_parquet(run_dir / "results/eval/sft/vlguard/judgments.parquet")
    plain = attacked[~attacked["id"].str.contains("::")]
    # every should-refuse sample once per attack; benign samples only as given
    assert attacked["id"].str.endswith("::figstep").sum() == plain["should_refuse"].astype(bool).sum()


def test_per_sample_records_between_stages(run_dir: Path) -> None:
    j = pd.read_parquet(run_dir / "results/eval/sft/vlguard/judgments.parquet")
    assert {"judge_prompt", "judge_raw", "safety", "reasoning_safety", "answer_safety"} <= set(j.columns)
    assert len(j) == len(pd.read_parquet(run_dir / "results/data/attack/vlguard.parquet"))
    assert (~j["id"].str.contains("::")).sum() == len(
        pd.read_parquet(run_dir / "results/data/bench/vlguard.parquet")
    )
    metrics = json.loads((run_dir / "results/eval/sft/vlguard/metrics.json").read_text())
    assert metrics["model"] == "sft"
    assert (run_dir / "results/checkpoints/grpo/model.safetensors").exists()
    assert (run_dir / "results/data/qi_safe.datasheet.md").read_text().startswith("#")


def test_every_stage_logged_to_mlflow(run_dir: Path) -> None:
    db = run_dir / "results/mlflow/mlflow.db"
    con = sqlite3.connect(db)
    rows = con.execute(
        "select t.value, count(*) from tags t join runs r on r.run_uuid = t.run_uuid "
        "where t.key = 'stage' group by t.value"
    ).fetchall()
    stages = dict(rows)
    for stage in RULES:
        assert stage in stages, f"no MLflow run for {stage}: {stages}"
    assert stages["generate"] == 4 * len(BENCHES)  # base, sft, grpo_plain, grpo
    tags = dict(
        con.execute("select key, value from tags where key in ('git_commit', 'config_hash')").fetchall()
    )
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", tags["git_commit"]), tags["git_commit"]
    assert len(tags["config_hash"]) == 12
    n_step_metrics = con.execute(
        "select count(*) from metrics m join tags t on t.run_uuid = m.run_uuid "
        "where t.key = 'stage' and t.value = 'sft' and m.key = 'loss'"
    ).fetchone()[0]
    assert n_step_metrics >= 2  # per-step training loss


def test_rerun_does_nothing(run_dir: Path) -> None:
    r = smk(run_dir, "all")
    assert r.returncode == 0
    assert "Nothing to be done" in r.stdout + r.stderr


def test_params_change_reruns_only_dependents(run_dir: Path) -> None:
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg["grpo"]["learning_rate"] = 5e-5
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = smk(run_dir, "-n", "all")
    plan = r.stdout + r.stderr
    assert r.returncode == 0
    assert "rule grpo:" in plan
    for untouched in ("rule sft:", "rule fixtures:", "rule prepare:", "rule qi_score:"):
        assert untouched not in plan
    assert "results/eval/base/" not in plan.split("Job stats")[0].replace("results/models/base", "")
