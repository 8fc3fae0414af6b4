"""GRPO on QI-Safe prompts with TRL's ``GRPOTrainer``, rewarded through the judge.

Reads top to bottom: check the config, seed, find the run state (resume), load data,
policy and processor, build the reward (and the safety-aware rollout), build the trainer,
train, save, log to MLflow. With ``safety_aware`` the rollout reflects on and corrects
unsafe samples (:mod:`safervlm.train.rollout`); without it this is plain GRPO.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, set_seed
from trl import GRPOConfig

from safervlm import tracking
from safervlm.config import GRPOParams
from safervlm.errors import ConfigError, InputError
from safervlm.io import read_parquet
from safervlm.judge import build_judge
from safervlm.models import family_of, load_policy
from safervlm.rewards import available_rewards, get_reward
from safervlm.train.common import (
    check_runtime_strategy,
    common_args,
    log_world,
    lora_config,
    save_policy,
    step_logs,
)
from safervlm.train.data import prompt_dataset
from safervlm.train.resume import (
    CheckpointMarker,
    fingerprint,
    last_checkpoint,
    run_state_dir,
    state_path,
)
from safervlm.train.rollout import (
    SafetyAwareGRPOTrainer,
    SafetyAwareRollout,
    SampleSafetyMonitor,
    skip_padding,
)
from safervlm.train.strategy import StrategyCheck

log = logging.getLogger(__name__)

# Params that change how often state is saved, not what is trained: not part of the run key.
_NOT_IN_KEY = ("save_steps",)


class RewardComponentsCallback(TrainerCallback):
    """Adds the mean structured-reward components since the last log to each log entry.

    Keys are ``<prefix><name>``: ``reward_components/<name>`` for the structured reward (see
    :mod:`safervlm.rewards.structured`); any object with a ``history`` of dicts works.
    """

    def __init__(self, reward: Any, prefix: str = "reward_components/") -> None:
        self.reward = reward
        self.prefix = prefix
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
                state.log_history[-1][f"{self.prefix}{key}"] = sum(values) / len(values)


def require_runtime(params: GRPOParams) -> None:
    """What the ``grpo`` section's model cannot know: the reward registry and an installed vLLM.

    Raises:
        ConfigError: an unknown reward (listing the known ones), or ``use_vllm`` without vLLM.
    """
    if params.reward not in available_rewards():
        raise ConfigError(
            f"config section 'grpo': unknown reward {params.reward!r}; known rewards: {available_rewards()}"
        )
    if params.use_vllm and importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            "config section 'grpo': use_vllm is true but vLLM is not installed "
            "(pip install vllm, on a GPU node)"
        )


def _grpo_args(workdir: str, seed: int, params: GRPOParams) -> GRPOConfig:
    # Checkpoints every save_steps are the run state a rerun resumes from.
    args = {**common_args(workdir, seed, params), "save_strategy": "steps", "save_total_limit": 2}
    if params.max_steps is not None:
        args["max_steps"] = params.max_steps
    else:
        args["num_train_epochs"] = params.epochs
    return GRPOConfig(**args)


def _drop_long_prompts(df: Any, processor: Any, max_len: int | None, path: str) -> Any:
    """Drop prompts whose question is longer than ``max_len`` tokens (None: keep all)."""
    if max_len is None:
        return df
    lengths = [len(ids) for ids in processor.tokenizer(df["question"].tolist())["input_ids"]]
    keep = [n <= max_len for n in lengths]
    if sum(keep) < len(df):
        log.warning("%s: dropping %d prompts longer than %d tokens", path, len(df) - sum(keep), max_len)
    if not any(keep):
        raise InputError(f"every prompt is longer than max_prompt_length={max_len} tokens", path=path)
    return df[keep].reset_index(drop=True)


def _prepare_state(
    dist: Any, state_root: str | None, key: dict[str, Any] | None, workdir: Path
) -> str | None:
    """The checkpoint to resume from: the main process prepares the run state, the others wait and read."""
    main = dist.is_main_process
    if main and state_root and key is not None:
        run_state_dir(state_root, key)  # removes stale state, writes the key
    resume = last_checkpoint(workdir) if main else None  # drops a checkpoint written halfway
    dist.wait_for_everyone()
    return resume if main else last_checkpoint(workdir, clean=False)


def _metrics(trainer: Any, n_prompts: int, resumed_from: str | None) -> dict[str, Any]:
    history = step_logs(trainer)
    rewards = [h["reward"] for h in history if "reward" in h]
    k = max(1, len(rewards) // 4)
    out: dict[str, Any] = {
        "steps": trainer.state.global_step,
        "n_prompts": n_prompts,
        "resumed_from_step": int(resumed_from.rsplit("-", 1)[1]) if resumed_from else 0,
        "reward_first_quarter": sum(rewards[:k]) / k if rewards else float("nan"),
        "reward_last_quarter": sum(rewards[-k:]) / k if rewards else float("nan"),
    }
    for key in (
        "rollout/unsafe_rate",
        "rollout/correction_success",
        "rollout/sample_safety",
        "rollout/harmful_sample_safety",
    ):
        values = [h[key] for h in history if key in h]
        if values:
            out[key.replace("rollout/", "mean_")] = sum(values) / len(values)
    return out


def run_grpo(
    model_path: str,
    data_path: str,
    out: str,
    params: GRPOParams,
    judge_name: str = "reference",
    judge_params: dict[str, Any] | None = None,
    judge_cache: str | None = None,
    seed: int = 0,
    state_root: str | None = None,
) -> dict[str, Any]:
    """Train ``model_path`` with GRPO on the prompts of ``data_path``; save to ``out``.

    Args:
        state_root: folder for resumable run state (checkpoints every ``save_steps``);
            None keeps checkpoints in a temporary folder (no resume).
    """
    require_runtime(params)
    check_runtime_strategy(params)
    set_seed(seed)
    log.info("GRPO params: %s", params)
    df = read_parquet(data_path, required=["id", "question", "image", "should_refuse", "image_objects"])
    family = family_of(model_path)  # an unsupported model fails here, before any work
    log.info("model family: %s", family.describe())
    judge = build_judge(judge_name, judge_params, judge_cache)
    # Plain GRPO: the reward's judge calls record the policy samples' safety (same keys as the rollout).
    monitor = None if params.safety_aware else SampleSafetyMonitor(judge, params)
    reward = get_reward(params.reward, judge=monitor or judge, **params.reward_params)
    model, processor = load_policy(model_path, params.dtype)
    peft_config = lora_config(params, model, family.lora_targets, family.lora_scope)
    df = _drop_long_prompts(df, processor, params.max_prompt_length, data_path)
    dataset = prompt_dataset(df, data_path, blank_image=family.needs_image)
    rollout = SafetyAwareRollout(judge, params) if params.safety_aware else None

    with tempfile.TemporaryDirectory(prefix="grpo-") as tmp:
        key = None
        if state_root:
            key = {
                "params": {k: v for k, v in params.model_dump().items() if k not in _NOT_IN_KEY},
                "seed": seed,
                "judge": [judge_name, judge_params or {}],
                "model": fingerprint(model_path),
                "data": fingerprint(data_path),
            }
            workdir = state_path(state_root, key)
        else:
            workdir = Path(tmp)  # no resume: each process checkpoints into a folder of its own
        args = _grpo_args(str(workdir), seed, params)
        dist = args.distributed_state  # set up by the config: one process or several
        log_world(dist)
        resume = _prepare_state(dist, state_root, key, workdir)
        log.info("resuming from %s" if resume else "starting from step 0%s", resume or "")
        trainer = SafetyAwareGRPOTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            reward_funcs=[skip_padding(reward) if rollout else reward],
            processing_class=processor,
            callbacks=[
                RewardComponentsCallback(reward),
                *([RewardComponentsCallback(monitor, prefix="")] if monitor else []),
                CheckpointMarker(),
            ],
            peft_config=peft_config,
            rollout_func=rollout,
            compile_generation=params.compile,
        )
        trainer.add_callback(StrategyCheck(trainer, params.strategy, params.deepspeed))
        trainer.train(resume_from_checkpoint=resume)
        metrics = _metrics(trainer, len(dataset), resume)
        extra = {"metrics": metrics, "params": params.model_dump(), "family": family.name}
        save_policy(trainer, processor, out, extra)  # returns once the main process has written it
        if state_root and dist.is_main_process:
            shutil.rmtree(workdir, ignore_errors=True)  # the run finished: its state is no longer needed
    if dist.is_main_process:  # one MLflow run per stage, not one per process
        tracking.log_stage(
            "grpo",
            params={**params.model_dump(), "model": model_path, "data": data_path, "judge": judge_name},
            metrics=metrics,
            step_metrics=step_logs(trainer),
            artifacts=[Path(out) / "train_log.json"],
            run_name=f"grpo:{Path(out).name}",  # grpo and grpo_plain: one run name each
        )
    return metrics
