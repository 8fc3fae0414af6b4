"""Seeds and judges as dimensions of the DAG: a reduced run with 2 seeds and 3 judges (the
reference judge, the HTTP judge against tests/chat_server.py and the local HF judge on a tiny
model) end to end, and the report's per-seed, per-judge, agreement and paired tables.
Slow (real Snakemake, a few minutes on 2 cores)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from chat_server import ChatServer
from helpers import BIN, ROOT, snakemake

pytestmark = pytest.mark.slow

BENCH = "figstep"
SEEDS = [0, 1]
KEY_ENV = "SAFERVLM_TEST_JUDGE_KEY"  # the local server needs none; the judge wants one set


def seeds_judges_config(tiny_model: Path, base_url: str) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["seeds"] = SEEDS
    cfg["fixtures"].update(n_per_benchmark=8, n_train_per_source=40)
    cfg["curate"].update(k_samples=2, max_new_tokens=12, min_instability=0.0, target_size=None)
    cfg["sft"].update(epochs=2)
    cfg["grpo"].update(max_steps=1, batch_size=8, max_completion_length=16)
    cfg["generate"].update(max_new_tokens=24)
    cfg["eval"].update(
        models=["sft", "grpo"],
        benchmarks=[BENCH],
        pairs=[],
        n_bootstrap=50,
        judges={
            "ref": {"name": "reference"},
            "api": {
                "name": "openai",
                "params": {"model": "judge", "base_url": base_url, "api_key_env": KEY_ENV},
            },
            "local": {"name": "hf", "params": {"model_path": str(tiny_model), "batch_size": 8}},
        },
    )
    cfg["mlflow"]["enabled"] = False
    return cfg


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return snakemake("-d", str(workdir), "--cores", "2", *args, "--configfile", str(workdir / "config.yaml"))


@pytest.fixture(scope="module")
def seeds_judges_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    workdir = tmp_path_factory.mktemp("seeds_judges")
    os.environ[KEY_ENV] = "unused"
    with ChatServer() as srv:
        (workdir / "config.yaml").write_text(
            yaml.safe_dump(seeds_judges_config(tiny_model_dir, srv.base_url), sort_keys=False)
        )
        r = run(workdir, "all")
        assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
        assert srv.total > 0  # the HTTP judge really judged
    return workdir


def test_each_seed_trains_and_each_judge_judges(seeds_judges_run: Path) -> None:
    results = seeds_judges_run / "results"
    for seed in SEEDS:
        for model in ("sft", "grpo"):
            assert (results / "seeds" / str(seed) / "checkpoints" / model).is_dir()
            for judge in ("ref", "api", "local"):
                df = pd.read_parquet(results / f"seeds/{seed}/eval/{model}/{BENCH}/judgments.{judge}.parquet")
                assert len(df) == 8
    # one seed's checkpoints differ from the other's (each seed really trains)
    a = (results / "seeds/0/checkpoints/sft/model.safetensors").read_bytes()
    b = (results / "seeds/1/checkpoints/sft/model.safetensors").read_bytes()
    assert a != b
    assert not (results / "eval").exists()  # nothing at the one-seed paths


def test_report_has_per_seed_per_judge_agreement_and_paired_tables(seeds_judges_run: Path) -> None:
    report = seeds_judges_run / "results" / "report"
    seeds = pd.read_csv(report / "seeds.csv")
    assert {"seed 0", "seed 1", "mean", "ci_low", "ci_high"} <= set(seeds.columns)
    row = seeds[(seeds["model"] == "grpo") & (seeds["benchmark"] == BENCH) & (seeds["metric"] == "safety")]
    assert len(row) == 1 and row["n_seeds"].item() == 2
    assert row["mean"].item() == pytest.approx((row["seed 0"].item() + row["seed 1"].item()) / 2)
    tests = pd.read_csv(report / "seed_tests.csv")
    assert {("sft", "grpo")} == set(zip(tests["a"], tests["b"], strict=True))
    judges = pd.read_csv(report / "judges.csv")
    assert {"ref", "api", "local", "range"} <= set(judges.columns)
    agreement = pd.read_csv(report / "agreement.csv")
    fleiss = agreement[agreement["statistic"] == "fleiss"]  # three judges: Fleiss' kappa over all
    assert set(fleiss["judges"]) == {3} and "Fleiss' κ" in (report / "judges.md").read_text()
    cohen = agreement[agreement["statistic"] == "cohen"]
    for _, row in fleiss.iterrows():
        # Items all three judges scored are among those each pair scored (the untrained local
        # judge scores few or none); kappa exists exactly where some were.
        pair_n = cohen[cohen["benchmark"] == row["benchmark"]]["n"]
        assert len(pair_n) == 3 and row["n"] <= pair_n.min(), (row, pair_n)
        assert (row["n"] > 0) == pd.notna(row["kappa"]) or row["percent"] in (0, 100), row
    agreement = agreement[agreement["statistic"] == "cohen"]
    pairs = {frozenset(p) for p in zip(agreement["judge_1"], agreement["judge_2"], strict=True)}
    assert pairs == {frozenset(p) for p in (("ref", "api"), ("ref", "local"), ("api", "local"))}
    both = agreement[agreement[["judge_1", "judge_2"]].apply(set, axis=1) == {"ref", "api"}]
    assert (both["n"] > 0).all()
    assert both["percent"].between(0, 100).all()
    paired = pd.read_csv(report / "paired.csv")
    # A judge with no scored pair of items (the untrained local judge may score none) has no test.
    assert set(paired["seed"]) == set(SEEDS) and {"ref", "api"} <= set(paired["judge"]) <= {
        "ref",
        "api",
        "local",
    }
    assert paired["mcnemar_p"].dropna().between(0, 1).all() and set(paired["attack"]) == {"none"}
    # seed intervals respect the range (clipped where Student-t runs past it)
    assert seeds[["ci_low", "ci_high"]].stack().between(0, 1).all()
    for name in ("seeds.md", "judges.md", "judge_sensitivity.md", "paired.md"):
        assert "|" in (report / name).read_text()
    for name in ("safety_seeds.png", "judge_agreement.png"):
        assert (report / name).stat().st_size > 1000
    # the main tables: the first seed and judge
    assert "grpo" in (report / "table.md").read_text()


def test_audit_reads_the_first_seed_and_judge(seeds_judges_run: Path) -> None:
    """`snakemake audit` on a multi-seed, multi-judge run audits the main tables' run (seed 0,
    judge "ref"): every report value recomputed from its judgments matches the report."""
    results = seeds_judges_run / "results"
    r = run(seeds_judges_run, "audit")
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    audit = json.loads((results / "audit" / "audit.json").read_text())
    assert audit["report_values"] > 0
    assert not [m for m in audit["mismatches"] if m.startswith("report.")]
    # The same audit on another judge's judgments disagrees with the report (it is the first
    # judge's): the audit really reads the file it is given, not judgments.parquet.
    other = subprocess.run(
        [str(BIN / "safervlm"), "audit", "--results", str(results / "seeds" / "0"),
         "--judgments-name", "judgments.local.parquet", "--expected",
         str(ROOT / "config" / "audit" / "published.yaml"),
         "--report-rates", str(results / "report" / "rates.csv"),
         "--out-dir", str(seeds_judges_run / "other")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert other.returncode == 0, other.stderr[-3000:]
    other_audit = json.loads((seeds_judges_run / "other" / "audit.json").read_text())
    assert [m for m in other_audit["mismatches"] if m.startswith("report.")]
    # A judgments name is a file name, never a path.
    bad = subprocess.run(
        [str(BIN / "safervlm"), "audit", "--results", str(results),
         "--judgments-name", "../judgments.parquet",
         "--expected", str(ROOT / "config" / "audit" / "published.yaml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode != 0 and "--judgments-name" in bad.stderr
