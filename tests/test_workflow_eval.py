"""The evaluation DAG is config-driven: any list of models, attacks and tax pairs (real Snakemake)."""

from __future__ import annotations

from pathlib import Path

import yaml
from helpers import ROOT, snakemake


def config(tmp_path: Path, **eval_keys: object) -> Path:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["eval"].update(benchmarks=["vlguard", "figstep"], **eval_keys)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_external_baseline_attacks_and_pairs_in_the_plan(tmp_path: Path) -> None:
    baseline = tmp_path / "models" / "r1"
    baseline.mkdir(parents=True)
    cfg = config(
        tmp_path,
        models=["base", "sft", "r1"],
        model_paths={"r1": str(baseline)},
        pairs=[["r1", "base"]],
        benchmark_attacks={"figstep": ["none", "vanilla"], "vlguard": ["none"]},
    )
    r = snakemake("-n", "-p", "-d", str(tmp_path), "--cores", "1", "--configfile", str(cfg))
    plan = r.stdout + r.stderr
    assert r.returncode == 0, plan[-3000:]
    assert (
        f"safervlm generate --model {baseline} --model-name r1 --data results/data/bench/vlguard.parquet"
        in plan
    )
    assert "--data results/data/attack/figstep.parquet" in plan  # only figstep is attacked
    assert "safervlm attack --data results/data/bench/figstep.parquet" in plan
    assert "--attacks none,vanilla" in plan and "attack/vlguard" not in plan
    assert "--pair r1=base" in plan
    assert "results/eval/grpo/" not in plan  # not listed, not evaluated


def test_model_without_a_path_or_missing_path_fails_naming_it(tmp_path: Path) -> None:
    r = snakemake("-n", "-d", str(tmp_path), "--configfile", str(config(tmp_path, models=["base", "llava"])))
    assert r.returncode != 0 and "eval.models names ['llava'] with no path" in r.stdout + r.stderr
    cfg = config(tmp_path, models=["base", "x"], model_paths={"x": "/no/such/model"}, pairs=[])
    r = snakemake("-n", "-d", str(tmp_path), "--configfile", str(cfg))
    assert r.returncode != 0 and "eval.model_paths.x: /no/such/model" in r.stdout + r.stderr
