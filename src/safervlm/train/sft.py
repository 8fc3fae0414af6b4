"""SFT warm-up on QI-Safe with TRL's ``SFTTrainer``.

Reads top to bottom: seed, log args, load data, load policy and processor, build the
trainer, train, save, log to MLflow.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from transformers import set_seed
from trl import SFTConfig, SFTTrainer

from safervlm import tracking
from safervlm.config import SFTParams
from safervlm.io import read_parquet
from safervlm.models import family_of, load_policy
from safervlm.train.common import (
    check_runtime_strategy,
    common_args,
    log_world,
    lora_config,
    save_policy,
    step_logs,
)
from safervlm.train.data import correction_demos, sft_dataset
from safervlm.train.strategy import StrategyCheck, StrategyTrainer

log = logging.getLogger(__name__)


class _SFTTrainer(StrategyTrainer, SFTTrainer):
    """TRL's SFTTrainer with the strategy set up as configured (FSDP on CPU too)."""


def run_sft(model_path: str, data_path: str, out: str, params: SFTParams, seed: int = 0) -> dict[str, Any]:
    """Fine-tune ``model_path`` on the ``response`` column of ``data_path``; save to ``out``."""
    set_seed(seed)
    log.info("SFT params: %s", params)
    check_runtime_strategy(params)
    df = read_parquet(data_path, required=["id", "question", "image", "response"])
    demos = correction_demos(
        df, params.correction_demos, params.correction_template, params.demo_critique, seed
    )
    family = family_of(model_path)  # an unsupported model fails here, before any work
    log.info("model family: %s", family.describe())
    dataset = sft_dataset(df, data_path, demos=demos, blank_image=family.needs_image)
    model, processor = load_policy(model_path, params.dtype)
    with tempfile.TemporaryDirectory(prefix="sft-") as workdir:
        args = SFTConfig(**common_args(workdir, seed, params), lr_scheduler_type="cosine")
        log_world(args.distributed_state)  # one process, or one of several (train-launch)
        trainer = _SFTTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=processor,  # AutoProcessor would return only the tokenizer here
            peft_config=lora_config(params, model, family.lora_targets, family.lora_scope),
        )
        trainer.add_callback(StrategyCheck(trainer, params.strategy, params.deepspeed))
        result = trainer.train()
    metrics = {
        "train_loss": result.training_loss,
        "n_examples": len(dataset),
        "n_correction_demos": len(demos),
        "steps": trainer.state.global_step,
    }
    final = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    metrics["final_loss"] = final[-1] if final else float("nan")
    extra = {"metrics": metrics, "params": params.model_dump(), "family": family.name}
    save_policy(trainer, processor, out, extra)  # returns once the main process has written it
    if trainer.accelerator.is_main_process:  # one MLflow run per stage, not one per process
        tracking.log_stage(
            "sft",
            params={**params.model_dump(), "model": model_path, "data": data_path, "seed": seed},
            metrics=metrics,
            step_metrics=step_logs(trainer),
            artifacts=[Path(out) / "train_log.json"],
        )
    return metrics
