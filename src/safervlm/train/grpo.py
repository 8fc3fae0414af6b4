"""GRPO on QI-Safe prompts with TRL's ``GRPOTrainer``, rewarded through the judge.

The safety-aware rollout (reflect-and-correct) plugs in here in a later stage of the
project; this entry point already trains with the real trainer and the structured
reward scored by the configured judge.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, set_seed
from trl import GRPOConfig, GRPOTrainer

from safervlm import tracking
from safervlm.config import GRPOParams
from safervlm.io import read_parquet
from safervlm.judge import build_judge
from safervlm.models import load_policy
from safervlm.rewards import get_reward
from safervlm.train.common import common_args, lora_config, save_policy, step_logs
from safervlm.train.data import prompt_dataset

log = logging.getLogger(__name__)


class RewardComponentsCallback(TrainerCallback):
    """Adds the mean structured-reward components since the last log to each log entry.

    Keys are ``reward_components/<name>`` (see :mod:`safervlm.rewards.structured`).
    """

    def __init__(self, reward: Any) -> None:
        self.reward = reward
        self._seen = 0

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        history = getattr(self.reward, "history", [])
        new = history[self._seen :]
        self._seen = len(history)
        if not new or not state.log_history:
            return
        for key in sorted({k for h in new for k in h}):
            values = [h[key] for h in new if key in h and not math.isnan(h[key])]
            if values:
                state.log_history[-1][f"reward_components/{key}"] = sum(values) / len(values)


def run_grpo(
    model_path: str,
    data_path: str,
    out: str,
    params: GRPOParams,
    judge_name: str = "reference",
    judge_params: dict[str, Any] | None = None,
    judge_cache: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train ``model_path`` with GRPO on the prompts of ``data_path``; save to ``out``."""
    set_seed(seed)
    log.info("GRPO params: %s", params)
    df = read_parquet(data_path, required=["id", "question", "image", "should_refuse", "image_objects"])
    dataset = prompt_dataset(df, data_path)
    judge = build_judge(judge_name, judge_params, judge_cache)
    reward = get_reward(params.reward, judge=judge, **params.reward_params)
    model, processor = load_policy(model_path)
    with tempfile.TemporaryDirectory(prefix="grpo-") as workdir:
        args = GRPOConfig(
            **common_args(workdir, seed, params),
            max_steps=params.max_steps,
            num_generations=params.num_generations,
            max_completion_length=params.max_completion_length,
            temperature=params.temperature,
            beta=params.beta,
        )
        trainer = GRPOTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            reward_funcs=[reward],
            processing_class=processor,
            callbacks=[RewardComponentsCallback(reward)],
            peft_config=lora_config(params),
        )
        trainer.train()
    history = step_logs(trainer)
    rewards = [h["reward"] for h in history if "reward" in h]
    k = max(1, len(rewards) // 4)
    metrics = {
        "steps": trainer.state.global_step,
        "n_prompts": len(dataset),
        "reward_first_quarter": sum(rewards[:k]) / k if rewards else float("nan"),
        "reward_last_quarter": sum(rewards[-k:]) / k if rewards else float("nan"),
    }
    save_policy(trainer, processor, out, {"metrics": metrics, "params": dataclasses.asdict(params)})
    tracking.log_stage(
        "grpo",
        params={**dataclasses.asdict(params), "model": model_path, "data": data_path, "judge": judge_name},
        metrics=metrics,
        step_metrics=history,
        artifacts=[Path(out) / "train_log.json"],
    )
    return metrics
