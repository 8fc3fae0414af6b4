"""SFT and GRPO entry points on real TRL trainers with the tiny policy (seconds on CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import vlguard_train_parquet
from safetensors.torch import load_file

from safervlm.config import GRPOParams, SFTParams
from safervlm.errors import ConfigError, InputError
from safervlm.io import write_parquet
from safervlm.train.data import correction_demos
from safervlm.train.grpo import run_grpo
from safervlm.train.sft import run_sft


@pytest.fixture(scope="module")
def train_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vlguard_train_parquet(tmp_path_factory.mktemp("train"))


def _losses(out: Path) -> list[float]:
    log = json.loads((out / "train_log.json").read_text())["log_history"]
    return [h["loss"] for h in log if "loss" in h]


def test_sft_learns_and_saves_a_loadable_policy(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sft"
    metrics = run_sft(
        str(tiny_model_dir),
        str(train_parquet),
        str(out),
        SFTParams(epochs=10, batch_size=8, learning_rate=3e-3, warmup_steps=0),
    )
    losses = _losses(out)
    assert metrics["steps"] == len(losses) >= 4
    assert losses[-1] < 0.75 * losses[0]  # 6.4 -> 3.8 measured on this data
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert before.keys() == after.keys()


def test_sft_with_lora_merges_the_adapter(tiny_model_dir: Path, train_parquet: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft-lora"
    run_sft(
        str(tiny_model_dir),
        str(train_parquet),
        str(out),
        SFTParams(epochs=1, batch_size=8, lora=True, lora_r=4, lora_alpha=8, learning_rate=1e-2),
    )
    assert not (out / "adapter_config.json").exists()  # merged into the base weights
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    changed = [k for k in before if "q_proj.weight" in k and not before[k].equal(after[k])]
    assert changed, "LoRA training left the attention weights unchanged"


def test_sft_in_bfloat16_with_gradient_checkpointing(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path
) -> None:
    """``dtype`` and ``gradient_checkpointing`` reach the model and the trainer."""
    out = tmp_path / "sft-bf16"
    run_sft(
        str(tiny_model_dir),
        str(train_parquet),
        str(out),
        SFTParams(epochs=1, batch_size=8, dtype="bfloat16", gradient_checkpointing=True),
    )
    after = load_file(out / "model.safetensors")
    assert {t.dtype for t in after.values()} == {torch.bfloat16}
    assert all(torch.isfinite(t.float()).all() for t in after.values())
    assert json.loads((out / "config.json").read_text())["text_config"]["dtype"] == "bfloat16"


def test_grpo_trains_with_the_judge_reward(tiny_model_dir: Path, train_parquet: Path, tmp_path: Path) -> None:
    out = tmp_path / "grpo"
    metrics = run_grpo(
        str(tiny_model_dir),
        str(train_parquet),
        str(out),
        GRPOParams(max_steps=2, batch_size=4, num_generations=2, max_completion_length=8),
    )
    assert metrics["steps"] == 2
    log = json.loads((out / "train_log.json").read_text())["log_history"]
    rewards = [h["reward"] for h in log if "reward" in h]
    assert len(rewards) == 2 and all(-1.0 <= r <= 1.0 for r in rewards)
    # Each structured-reward component is logged per step, and their reward is TRL's reward.
    steps = [h for h in log if "reward" in h]
    for h in steps:
        for name in (
            "safety",
            "helpfulness",
            "format",
            "hallucination_penalty",
            "contradiction_penalty",
            "reward",
        ):
            assert f"reward_components/{name}" in h, sorted(h)
        # The safety-aware rollout (default) logs the policy samples' unsafe rate and safety.
        assert 0.0 <= h["rollout/unsafe_rate"] <= 1.0 and 0.0 <= h["rollout/sample_safety"] <= 1.0
        assert h["reward_components/reward"] == pytest.approx(h["reward"], abs=1e-5)
        # Where the rollout's time goes, per phase (sampling and judging at least).
        assert h["rollout/generate_s"] > 0 and h["rollout/judge_s"] >= 0
    assert (out / "model.safetensors").exists()


def test_correction_demonstrations_teach_the_correction_prompt(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path
) -> None:
    """``correction_demos`` adds should-refuse records as (correction prompt -> safe response)."""
    df = pd.read_parquet(train_parquet)
    template = "{question} || critique: {critique} || again:"
    demos = correction_demos(df, 0.5, template, "too harmful", seed=0)
    harmful = df[df["should_refuse"].astype(bool)]
    assert len(demos) == round(0.5 * len(harmful)) > 0
    assert set(demos["id"]) <= {f"{i}#correction" for i in harmful["id"]}
    for _, row in demos.iterrows():
        original = df[df["id"] == row["id"].removesuffix("#correction")].iloc[0]
        assert row["question"] == template.format(question=original["question"], critique="too harmful")
        assert row["response"] == original["response"] and row["image"] == original["image"]
    assert correction_demos(df, 0.0, template, "x").empty
    assert correction_demos(df, 0.5, template, "too harmful", seed=0).equals(demos)  # seeded

    out = tmp_path / "sft-demos"
    metrics = run_sft(
        str(tiny_model_dir),
        str(train_parquet),
        str(out),
        SFTParams(epochs=1, batch_size=8, correction_demos=1.0, correction_template=template),
    )
    assert metrics["n_correction_demos"] == len(harmful)
    assert metrics["n_examples"] == len(df) + len(harmful)
    with pytest.raises(ConfigError, match="'correction_demos' must be less than or equal to 1"):
        run_sft(str(tiny_model_dir), str(train_parquet), str(tmp_path / "x"), SFTParams(correction_demos=2.0))
    with pytest.raises(ConfigError, match="correction_template may only use"):
        run_sft(
            str(tiny_model_dir),
            str(train_parquet),
            str(tmp_path / "x"),
            SFTParams(correction_demos=0.5, correction_template="{question} {nope}"),
        )
    assert not (tmp_path / "x").exists()


def test_sft_rejects_empty_targets(tiny_model_dir: Path, train_parquet: Path, tmp_path: Path) -> None:
    df = pd.read_parquet(train_parquet)
    df.loc[1, "response"] = " "
    bad = tmp_path / "bad.parquet"
    write_parquet(df, bad)
    with pytest.raises(InputError, match=r"bad\.parquet.*record .*empty reference response"):
        run_sft(str(tiny_model_dir), str(bad), str(tmp_path / "out"), SFTParams(epochs=1))
    assert not (tmp_path / "out").exists()


def test_grpo_trains_with_one_continuation_and_a_larger_generation_batch(
    tiny_model_dir: Path, train_parquet: Path, tmp_path: Path
) -> None:
    """The generation options on the real trainer: critique and correction as one continuation,
    one generation batch for two steps, a static KV cache."""
    out = tmp_path / "grpo"
    params = GRPOParams(
        max_steps=2,
        batch_size=4,
        num_generations=2,
        max_completion_length=8,
        reflection_max_tokens=4,
        critique_and_correction="one_continuation",
        steps_per_generation=2,
        cache_implementation="static",
    )
    metrics = run_grpo(str(tiny_model_dir), str(train_parquet), str(out), params)
    assert metrics["steps"] == 2
    log = json.loads((out / "train_log.json").read_text())["log_history"]
    steps = [h for h in log if "loss" in h]
    assert len(steps) == 2
    # One generation batch (8 rows) served both steps: the rollout logged once, before step 1.
    rollouts = [h for h in steps if "rollout/sample_safety" in h]
    assert len(rollouts) >= 1 and all("rollout/reflect_s" not in h for h in rollouts)
    # The untrained tiny policy answers harmful requests: some samples are unsafe and corrected.
    assert any(h["rollout/unsafe_rate"] > 0 for h in rollouts)
    assert any(h["rollout/continuation_s"] > 0 and h["rollout/corrected"] > 0 for h in rollouts)
