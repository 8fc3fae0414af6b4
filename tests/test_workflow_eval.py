"""The evaluation DAG is config-driven: any list of models, attacks and tax pairs (real Snakemake)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from chat_server import ChatServer, honest_verdict
from helpers import ROOT, snakemake
from vllm_server import VLLMServer


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


TRAINING_OR_CURATION = ("pool", "decontaminate", "qi_score", "qi_select", "sft", "grpo", "tiny_model")


def eval_only_config(tmp_path: Path, **eval_keys: object) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "eval.yaml").read_text())
    cfg["eval"].update(eval_keys)
    return cfg


def planned_rules(plan: str) -> set[str]:
    return set(re.findall(r"^(?:local)?rule (\w+):", plan, flags=re.MULTILINE))


def test_eval_only_config_plans_no_curation_or_training(tmp_path: Path) -> None:
    r = snakemake(
        "-n", "-p", "-d", str(tmp_path), "--cores", "1", "--configfile", str(ROOT / "config" / "eval.yaml")
    )
    plan = r.stdout + r.stderr
    assert r.returncode == 0, plan[-3000:]
    rules = planned_rules(plan)
    assert {"generate", "judge", "score", "report"} <= rules, rules
    assert not rules & set(TRAINING_OR_CURATION), sorted(rules & set(TRAINING_OR_CURATION))
    # every configured benchmark, the served model by name (no local folder)
    assert plan.count("rule generate:") == 8
    assert "safervlm generate --model served --model-name served" in plan


@pytest.mark.slow
def test_eval_only_runs_a_checkpoint_and_a_served_model(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evaluate-only DAG against tests/chat_server.py as the served model, next to a local
    checkpoint: responses from the endpoint, the report with the paired tables."""
    monkeypatch.setenv("SERVED_API_KEY", "any")  # eval.yaml's api_key_env (preflight checks it is set)
    with ChatServer() as srv:
        cfg = eval_only_config(
            tmp_path,
            models=["mine", "served"],
            model_paths={"mine": str(tiny_model_dir)},
            benchmarks=["figstep"],
            pairs=[["served", "mine"]],
            n_bootstrap=50,
        )
        cfg["generate"]["models"]["served"].update(base_url=srv.base_url, served_model="chat")
        cfg["fixtures"] = {"n_per_benchmark": 8}
        cfg["mlflow"] = {"enabled": False}
        path = tmp_path / "eval.yaml"
        path.write_text(yaml.safe_dump(cfg))
        r = snakemake("-d", str(tmp_path), "--cores", "2", "all", "--configfile", str(path))
        assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
        assert srv.total >= 8  # every figstep item went to the endpoint
    out = tmp_path / "results" / "evaluate"
    served = pd.read_parquet(out / "eval/served/figstep/responses.parquet")
    assert (served["response"] == served["question"].map(honest_verdict)).all()  # the endpoint's replies
    assert not (out / "checkpoints").exists() and not (out / "data" / "pool.parquet").exists()
    paired = pd.read_csv(out / "report" / "paired.csv")
    assert {("mine", "served")} <= set(zip(paired["a"], paired["b"], strict=True))
    assert "served" in (out / "report" / "table.md").read_text()


@pytest.mark.slow
def test_shipped_eval_config_runs_to_the_end_against_a_served_reasoning_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make eval` as shipped (one served reasoning model, no pairs, one seed and judge), with
    only the endpoint moved to a local server that answers as `vllm serve --reasoning-parser`
    does (chain of thought in `message.reasoning`, max_tokens enforced): every job runs, the
    reasoning is kept, nothing is cut at the budget, and counts.md is written."""
    shipped = yaml.safe_load((ROOT / "config" / "eval.yaml").read_text())
    served = shipped["generate"]["models"]["served"]
    assert shipped["eval"]["models"] == ["served"] and shipped["eval"]["pairs"] == []
    monkeypatch.setenv(served["api_key_env"], "k3y")
    with VLLMServer(models=("my-model",), api_key="k3y") as srv:
        override = {
            "generate": {"models": {"served": {**served, "base_url": srv.base_url}}},
            "eval": {"benchmarks": ["vlguard", "figstep"]},
            "fixtures": {"n_per_benchmark": 6},
        }
        path = tmp_path / "endpoint.yaml"
        path.write_text(yaml.safe_dump(override))
        r = snakemake(
            "-d", str(tmp_path), "--cores", "2", "all",
            "--configfile", str(ROOT / "config" / "eval.yaml"), str(path),
        )  # fmt: skip
        assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
        assert {b["max_tokens"] for b in srv.bodies} == {4096}  # reasoning: true's budget
    out = tmp_path / "results" / "evaluate"
    responses = pd.concat(pd.read_parquet(p) for p in out.glob("eval/served/*/responses.parquet"))
    assert len(responses) == srv.total > 6
    assert responses["reasoning_source"].eq("field").all() and responses["reasoning"].str.len().gt(0).all()
    assert not responses["truncated"].any() and responses["finish_reason"].eq("stop").all()
    assert not responses["answer"].str.contains("think>").any()
    counts = (out / "report" / "counts.md").read_text()
    assert "n_truncated" in counts and "served" in counts
    assert "served" in (out / "report" / "table.md").read_text()
