"""Pieces shared by the SFT and GRPO entry points."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import DistributedType

from safervlm.config import TrainParams, TrlArg
from safervlm.errors import ConfigError
from safervlm.io import atomic_path, write_json
from safervlm.train.strategy import Runtime, check_strategy, strategy_args

log = logging.getLogger(__name__)


def trl_args(params: TrainParams) -> dict[str, Any]:
    """The TRL config fields our keys map onto 1:1, as declared by their :class:`TrlArg` markers."""
    return {
        marker.name: getattr(params, key)
        for key, info in type(params).model_fields.items()
        for marker in info.metadata
        if isinstance(marker, TrlArg)
    }


def common_args(output_dir: str | Path, seed: int, params: TrainParams) -> dict[str, Any]:
    """TRL config fields: the params' mapped keys plus the run settings both trainers share.

    We log to MLflow ourselves (under a lock), so ``report_to`` is empty.
    """
    return {
        **trl_args(params),
        **strategy_args(params.strategy),
        "output_dir": str(output_dir),
        "seed": seed,
        "data_seed": seed,
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 1,
        "use_cpu": not torch.cuda.is_available(),
        "bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


def lora_config(
    params: TrainParams, model: Any = None, default_targets: Sequence[str] = (), scope: str | None = None
) -> Any:
    """A peft LoRA config on ``params.lora_targets`` (checked against ``model``), or None.

    ``default_targets`` (the model family's) apply where ``lora_targets`` is null. ``scope``
    (the family's ``lora_scope``) keeps the targets to modules under that submodule name.

    Raises:
        ConfigError: when a target names no module of the model (before training starts).
    """
    if not params.lora:
        return None
    from peft import LoraConfig

    targets = list(default_targets) if params.lora_targets is None else params.lora_targets
    if not targets:
        raise ConfigError("lora_targets is empty")
    # peft matches a string target as a regex over the whole module name.
    scoped = re.compile(rf"(.*\.)?{re.escape(scope)}\..*") if scope else None
    if model is not None:
        modules = [(n, m) for n, m in model.named_modules() if scoped is None or scoped.fullmatch(n)]
        leaves = {name.rsplit(".", 1)[-1] for name, _ in modules}
        missing = [t for t in targets if t not in leaves]
        if missing:
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in modules if isinstance(m, torch.nn.Linear)})
            where = f" under {scope!r}" if scope else ""
            raise ConfigError(
                f"lora_targets {missing} name no module of the model{where}; linear modules: {linear}"
            )
    names = "|".join(re.escape(t) for t in targets)
    target_modules = rf"(.*\.)?{re.escape(scope)}\..*\.({names})" if scope else targets
    return LoraConfig(
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=0.0,
        target_modules=target_modules,
        task_type="CAUSAL_LM",
    )


def check_runtime_strategy(params: TrainParams) -> None:
    """Refuse, before any work, a strategy this process cannot run; log what will run.

    Raises:
        ConfigError: see :func:`safervlm.train.strategy.check_strategy`.
    """
    log.info("strategy: %s", check_strategy(params.strategy, Runtime.detect(), params.deepspeed))


def log_world(state: Any) -> None:
    """Log which of how many training processes this is (each process logs its own line)."""
    log.info(
        "training process %d of %d (%s)",
        state.process_index,
        state.num_processes,
        state.distributed_type.value,
    )


def save_policy(trainer: Any, processor: Any, out: str | Path, extra: dict[str, Any]) -> None:
    """Save the trained policy (LoRA merged) and its processor atomically, with a train log.

    Every training process calls it; the main process alone writes, once every process has
    finished training, and the others return only when the output is complete. A sharded model
    (FSDP, DeepSpeed ZeRO-3) is gathered by the accelerator, which needs every process. A run
    of several processes records their number in the train log (``processes``).
    """
    accelerator = trainer.accelerator
    if accelerator.num_processes > 1:
        extra = {**extra, "processes": accelerator.num_processes}
    accelerator.wait_for_everyone()
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    state_dict = None
    if accelerator.num_processes > 1 and accelerator.distributed_type in (
        DistributedType.FSDP,
        DistributedType.DEEPSPEED,
    ):
        state_dict = _untied(accelerator.get_state_dict(trainer.model_wrapped), model)
    if accelerator.is_main_process:
        with atomic_path(out) as tmp:
            if state_dict is None:
                model.save_pretrained(tmp)
            else:
                model.save_pretrained(tmp, state_dict=state_dict)
            processor.save_pretrained(tmp)
            write_json({"log_history": trainer.state.log_history, **extra}, tmp / "train_log.json")
        log.info("saved policy to %s", out)
    accelerator.wait_for_everyone()


def _untied(state_dict: dict[str, Any] | None, model: Any) -> dict[str, Any] | None:
    """A gathered state dict without the copies of tied weights (``lm_head`` of tied embeddings).

    Gathering (FSDP, ZeRO-3) gives each tied name a tensor of its own, so ``save_pretrained``,
    which finds ties by shared storage, would write both; the model re-ties them on load.
    """
    if state_dict is None:  # a process other than the main one (ZeRO-3 gathers to the main)
        return None
    tied: dict[str, str] = getattr(model, "all_tied_weights_keys", None) or {}
    return {k: v for k, v in state_dict.items() if k not in tied or tied[k] not in state_dict}


def step_logs(trainer: Any) -> list[dict[str, Any]]:
    """Per-step numeric logs from the trainer state (for MLflow)."""
    return [h for h in trainer.state.log_history if "step" in h]
